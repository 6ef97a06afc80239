"""The auditors' commands: ``station export``, ``station audit verify``, ``station audit set-pin``.

Exports are de-identified unless the auditor asks for images, which needs the auditor PIN (a salted
scrypt hash in the station's config, separate from the technicians' PIN) and is recorded with the
export. ``audit verify`` checks every hash chain of the log and names the first row that breaks it,
checks that every retention anchor was set by a logged purge, and hashes every alarm snapshot against
the log. It opens the log read-only (:meth:`~station.log.store.EventStore.open_read_only`): an auditor's
check must work on a write-protected copy and change no byte of the evidence, which opening it for
writing would (switching a rollback-journal file to WAL, migrating an old one).

``station export`` reads the log through the station's own (writable) connection because every export
is itself recorded in the log, by design; it checks everything it can (the dates, the output path)
before it opens the log, so a mistyped command neither touches the log nor leaves a file behind.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from station.cli.group import CONTEXT
from station.config import check_pin, default_config_path, hash_pin, load_config, save_config
from station.errors import StationError
from station.types import LEVELS

#: Exit code of an audit that ran and found the log altered (1 is a fault, 2 a usage error). An export with
#: images refused because a snapshot is not what the log recorded exits with it too.
EXIT_LOG_ALTERED = 3
#: The longest period one export may span: a calendar century. The longest retention (36,500 days) is all a
#: log can hold, and a longer period would only make the HTML report draw a day axis of millennia.
MAX_PERIOD = timedelta(days=36_525)


def _parse_day_or_time(value: str, *, end: bool, option: str = "--to") -> datetime:
    """``2026-11-30`` (a whole day, UTC: ``--to`` includes it) or an ISO time with its zone, in UTC.

    A day or time the calendar cannot hold once turned into the period's end (``--to 9999-12-31`` ends
    at 10000-01-01) is refused in one line naming the option rather than crashing.
    """
    try:
        if len(value) == 10:
            day = datetime.fromisoformat(value).replace(tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise click.BadParameter(f"give the time's zone (end it with Z for UTC): {value!r}")
        return moment.astimezone(UTC)
    except OverflowError:
        raise StationError(f"{option} {value}: out of the calendar's range (a period can end on 9999-12-30 at the "
                           "latest)") from None
    except ValueError:
        raise click.BadParameter(f"expected a date such as 2026-11-30 or a time such as 2026-11-30T08:00Z, got "
                                 f"{value!r}") from None


def _open_store(db: Path | None, *, snapshots: bool = False, read_only: bool = False):
    """The log at ``db`` (default: the station's); read-only for checks, which must change no byte of it."""
    from station.headless import snapshots_dir_for
    from station.log.store import EventStore
    from station.paths import default_db_path

    path = db or default_db_path()
    if not path.is_file():
        raise StationError(f"event store {path}: no such file (give --db FILE)")
    if read_only:
        return EventStore.open_read_only(path, snapshots_dir=snapshots_dir_for(path))
    return EventStore(path, snapshots_dir=snapshots_dir_for(path) if snapshots else None)


@click.command("export", context_settings=CONTEXT)
@click.option("--from", "start", required=True, metavar="DATE", help="First day (or time) included, UTC.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day included (or time excluded), UTC.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "html"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="FILE")
@click.option("--level", "levels", multiple=True, type=click.Choice(list(LEVELS)), help="Only these levels.")
@click.option("--acknowledged", type=click.Choice(["yes", "no"]), help="Only alarms acknowledged (or not).")
@click.option("--operator", required=True, metavar="NAME", help="Who makes the export (recorded with it).")
@click.option("--include-images", is_flag=True, help="Add alarm snapshots (asks for the auditor PIN).")
@click.option("--pin", metavar="PIN", help="The auditor PIN (prompted for when not given).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store (default: the station's).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
@click.option("--postgres", "dsn", metavar="DSN",
              help="Export from the fleet log instead (every station, a station column; recorded centrally).")
@click.option("--station", "stations", multiple=True, metavar="ID", help="With --postgres: only these stations.")
@click.pass_context
def export_command(ctx: click.Context, start: str, end: str, fmt: str, out: Path, levels: tuple[str, ...],
                   acknowledged: str | None, operator: str, include_images: bool, pin: str | None, db: Path | None,
                   overwrite: bool, dsn: str | None, stations: tuple[str, ...]) -> None:
    """Export the screenings of a period, de-identified, and record the export in the log.

    With ``--postgres DSN`` the period is exported from the fleet log across stations (``station fleet
    export``): de-identified the same way and recorded in the fleet log; images never leave the stations.

    \b
    Examples:
      station export --from 2026-11-01 --to 2026-11-30 --format html --out nov.html --operator "audit-1"
      station export --from 2026-11-30 --to 2026-11-30 --format csv --out alarms.csv --level fever \\
          --acknowledged no --operator "audit-1"
      station export --postgres "host=db dbname=fleet user=audit" --from 2026-11-01 --to 2026-11-30 \\
          --format csv --out fleet-nov.csv --operator "audit-1"
    """
    if dsn is not None:
        from station.cli.fleet import fleet_export  # the fleet group imports this module: import it late

        for given, what in ((include_images, "--include-images (images stay at each station)"),
                            (db is not None, "--db (the fleet log is --postgres)"), (fmt == "html", "--format html")):
            if given:
                raise StationError(f"export --postgres: {what} is not available for the fleet log")
        ctx.invoke(fleet_export, dsn=dsn, start=start, end=end, fmt=fmt, out=out, levels=levels,
                   acknowledged=acknowledged, stations=stations, operator=operator, overwrite=overwrite)
        return
    if stations:
        raise StationError("export: --station chooses among the fleet's stations: give --postgres DSN too")
    from station.log.export import ExportFilter, SnapshotsAltered, check_out_path, count_screenings, export

    period = ExportFilter(_parse_day_or_time(start, end=False, option="--from"),
                          _parse_day_or_time(end, end=True, option="--to"), levels,
                          None if acknowledged is None else acknowledged == "yes")
    if period.end <= period.start:
        raise click.BadParameter("--to must come after --from")
    if period.end - period.start > MAX_PERIOD:
        raise StationError(f"--from {start} --to {end}: {(period.end - period.start).days} days; one export spans "
                           f"at most {MAX_PERIOD.days} days (a century: no log keeps records longer)")
    check_out_path(out)
    if out.exists() and not overwrite:
        raise StationError(f"{out}: already exists (give --overwrite to replace it)")
    config = load_config(default_config_path())
    if include_images:
        if not config.auditor_pin_hash:
            raise StationError("no auditor PIN is set: set one with `station audit set-pin` before exporting images")
        given = pin if pin is not None else click.prompt("auditor PIN", hide_input=True, err=True)
        if not check_pin(given, config.auditor_pin_hash):
            raise StationError("wrong auditor PIN: nothing was exported")
    store = _open_store(db, snapshots=include_images)
    try:
        total = count_screenings(store, period)
        with click.progressbar(length=max(total, 1), label=f"exporting {total} screenings", file=_stderr(),
                               show_pos=True) as bar:
            result = export(store, period, fmt, out, operator=operator, include_images=include_images,
                            elevated_c=config.elevated_c, fever_c=config.fever_c, progress=bar.update)
    except SnapshotsAltered as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(EXIT_LOG_ALTERED) from None
    finally:
        store.close()
    what = "with images" if include_images else "de-identified"
    click.echo(f"exported {result.rows} screenings ({what}) to {out}; sha256 {result.sha256}; "
               f"recorded as export {result.export_id}")


def _stderr():
    return sys.stderr


@click.group("audit", context_settings=CONTEXT)
def audit() -> None:
    """Check the log's hash chains; set the auditor PIN."""


@audit.command("verify", context_settings=CONTEXT)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store (default: the station's).")
def audit_verify(db: Path | None) -> None:
    """Check the log: every hash chain, the retention anchors, every alarm snapshot (exit 3 when altered).

    Names the first row that breaks each table. Snapshots are hashed against the log; images retention
    purged on purpose are counted, not reported. The log is opened read-only and nothing is written,
    beside it or in it: a write-protected copy can be checked, and is left byte for byte as it was.
    """
    from station.log.chain import CHAINED_TABLES

    store = _open_store(db, read_only=True)
    try:
        breaks = store.verify_chains()
        snapshots = store.verify_snapshots()
        breaks += snapshots.breaks
        tables = (*CHAINED_TABLES, "chain_anchors", "snapshots")
        counts = store.row_counts(tables)
        integrity = store.integrity_check()
        retention = store.retention_log()
        adopted = [r for r in retention if r["kind"] == "adopted"]
        purges = [r for r in retention if r["kind"] == "purge"]
        upgraded = store.upgraded_in_memory
    finally:
        store.close()
    for table in tables:
        found = [b for b in breaks if b.table == table]
        status = "ok"
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            status = f"BROKEN at {found[0]}{more}"
        elif table == "snapshots":
            status = f"ok ({snapshots.files} files match the log; {snapshots.purged} images purged by retention)"
        click.echo(f"{table:<17} {counts[table]:>8} rows  {status}")
    click.echo(f"sqlite integrity  {integrity}")
    if purges:  # what retention deleted on purpose, so an auditor can judge it: when, and up to when
        last = purges[-1]
        click.echo(f"retention         {len(purges)} purges logged, the last at {last['wall_time']}: records before "
                   f"{last['records_cutoff']}, images before {last['images_horizon'] or 'none'}")
    if upgraded:
        click.echo(f"note: the log predates {', '.join(upgraded)}; it was checked as an upgraded station reads it, "
                   "and the file was not changed")
    for row in adopted:
        click.echo(f"note: retention anchors set before {row['wall_time']} were adopted as they stood "
                   f"(retention_log row {row['id']}): they could not be checked")
    if breaks or integrity != "ok":
        click.echo("the log was altered: keep this database as it is and report it", err=True)
        raise SystemExit(EXIT_LOG_ALTERED)


@audit.command("set-pin", context_settings=CONTEXT)
def audit_set_pin() -> None:
    """Set or change the auditor PIN (4-12 digits) needed to export images."""
    path = default_config_path()
    config = load_config(path)
    if config.auditor_pin_hash:
        current = click.prompt("current auditor PIN", hide_input=True, err=True)
        if not check_pin(current, config.auditor_pin_hash):
            raise StationError("wrong auditor PIN: nothing changed")
    new = click.prompt("new auditor PIN", hide_input=True, confirmation_prompt=True, err=True)
    from dataclasses import replace

    save_config(replace(config, auditor_pin_hash=hash_pin(new)), path)
    click.echo(f"auditor PIN set in {path}")
