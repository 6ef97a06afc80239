"""``station fleet``: the central side of the fleet (the ingester, the fleet log's checks and exports).

Every command takes the fleet log as ``--postgres DSN`` (a libpq connection string or URI). Passwords
belong in ``~/.pgpass`` or ``PGPASSWORD``, not on the command line, where ``ps`` would show them.
"""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from station.cli.audit import EXIT_LOG_ALTERED, MAX_PERIOD, _parse_day_or_time
from station.cli.fleet_demo import demo
from station.cli.fleet_desk import desk
from station.cli.group import CONTEXT, StationGroup
from station.errors import StationError
from station.types import LEVELS

_POSTGRES = click.option("--postgres", "dsn", required=True, metavar="DSN",
                         help="The fleet log: a PostgreSQL connection string, e.g. 'host=db dbname=fleet user=audit'.")


@click.group("fleet", cls=StationGroup, context_settings=CONTEXT)
def fleet() -> None:
    """The fleet: many stations' logs in one PostgreSQL, over one Mosquitto broker."""


@fleet.command("migrate", context_settings=CONTEXT)
@_POSTGRES
def fleet_migrate(dsn: str) -> None:
    """Create or upgrade the fleet log's schema and roles (as the database's owner; idempotent).

    \b
    Example:
      station fleet migrate --postgres "host=/run/postgresql dbname=fleet user=postgres"
    """
    from station.fleet.central import connect, migrate

    with connect(dsn) as conn:
        done = migrate(conn)
    click.echo(f"applied {', '.join(done)}" if done else "the fleet schema is current")


@fleet.command("ingest", context_settings=CONTEXT)
@click.option("--broker", "broker_url", required=True, metavar="URL", help="mqtt://HOST[:PORT] or mqtts://...")
@_POSTGRES
@click.option("--credentials", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The ingester's MQTT user and password: 'user:password', or TOML username/password.")
@click.option("--ca-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="FILE",
              help="The CA to trust for mqtts:// (default: the system's).")
@click.option("--client-id", default="fleet-ingester", show_default=True,
              help="The MQTT client id: the broker keeps this session's queued rows while the ingester is down.")
@click.option("--verbose", "-v", is_flag=True, help="Log every batch.")
def fleet_ingest(broker_url: str, dsn: str, credentials: Path | None, ca_file: Path | None, client_id: str,
                 verbose: bool) -> None:
    """Ingest every station's rows into the fleet log and publish the high-water marks (a service).

    Logs to stderr; reconnects to the broker and PostgreSQL with back-off; SIGTERM or Ctrl-C finishes the
    batch, commits it, publishes its marks and exits 0.

    \b
    Example:
      station fleet ingest --broker mqtt://broker:1883 --postgres "host=db dbname=fleet user=ingester" \\
          --credentials /etc/station/ingester.cred
    """
    from station.fleet.credentials import read_credentials
    from station.fleet.ingester import Ingester
    from station.fleet.protocol import BrokerUrl

    BrokerUrl.parse(broker_url)  # a bad URL is one line, before anything connects
    secret = read_credentials(credentials) if credentials else None
    user, password = (secret.username or "ingester", secret.password) if secret else (None, None)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("psycopg").setLevel(logging.WARNING)
    ingester = Ingester(broker_url, dsn, username=user, password=password, ca_file=ca_file, client_id=client_id)

    def stop(_signum: int, _frame: Any) -> None:
        ingester.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ingester.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@fleet.command("verify", context_settings=CONTEXT)
@_POSTGRES
def fleet_verify(dsn: str) -> None:
    """Check every station's chains in the fleet log, and gaps (exit 3 when broken, naming the row).

    \b
    Example:
      station fleet verify --postgres "host=db dbname=fleet user=audit"
    """
    from station.fleet.central import connect, verify_fleet

    with connect(dsn) as conn:
        breaks, counts = verify_fleet(conn)
    for (station, site), tables in sorted(counts.items()):
        for table, n in sorted(tables.items()):
            found = [b for b in breaks if b.station == station and b.table == table]
            status = f"BROKEN at row {found[0].row_id}: {found[0].problem}" if found else "ok"
            click.echo(f"{station:<16} {site:<12} {table:<17} {n:>8} rows  {status}")
    if not counts:
        click.echo("the fleet log holds no rows yet")
    if breaks:
        for found in breaks:
            click.echo(f"BROKEN: {found}", err=True)
        click.echo("the fleet log was altered or is missing rows: keep the database as it is and report it", err=True)
        raise SystemExit(EXIT_LOG_ALTERED)


@fleet.command("status", context_settings=CONTEXT)
@_POSTGRES
def fleet_status(dsn: str) -> None:
    """A table of the stations in the fleet log: site, last row, rows per table, chains ok.

    \b
    Example:
      station fleet status --postgres "host=db dbname=fleet user=audit"
    """
    from tabulate import tabulate

    from station.fleet.central import connect, verify_fleet
    from station.fleet.protocol import PUBLISHED_TABLES

    with connect(dsn) as conn:
        breaks, counts = verify_fleet(conn)
        with conn.cursor() as cur:
            cur.execute("SELECT station_id, site, max(wall_time), max(received_at) FROM fleet_rows "
                        "GROUP BY station_id, site")
            last = {(s, site): (w, r) for s, site, w, r in cur.fetchall()}
    rows = []
    for (station, site), tables in sorted(counts.items()):
        broken = [b for b in breaks if b.station == station]
        wall, received = last.get((station, site), (None, None))
        rows.append([station, site, wall or "-", received.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                     if received else "-", *(tables.get(t, 0) for t in PUBLISHED_TABLES),
                     f"BROKEN {broken[0].table} row {broken[0].row_id}" if broken else "ok"])
    headers = ["station", "site", "last row", "received", *PUBLISHED_TABLES, "chains"]
    click.echo(tabulate(rows, headers=headers) if rows else "the fleet log holds no rows yet")


@fleet.command("export", context_settings=CONTEXT)
@_POSTGRES
@click.option("--from", "start", required=True, metavar="DATE", help="First day (or time) included, UTC.")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day included (or time excluded), UTC.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, metavar="FILE")
@click.option("--level", "levels", multiple=True, type=click.Choice(list(LEVELS)), help="Only these levels.")
@click.option("--acknowledged", type=click.Choice(["yes", "no"]), help="Only alarms acknowledged (or not).")
@click.option("--station", "stations", multiple=True, metavar="ID", help="Only these stations (default: all).")
@click.option("--operator", required=True, metavar="NAME", help="Who makes the export (recorded with it).")
@click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")
def fleet_export(dsn: str, start: str, end: str, fmt: str, out: Path, levels: tuple[str, ...],
                 acknowledged: str | None, stations: tuple[str, ...], operator: str, overwrite: bool) -> None:
    """Export the screenings of a period across stations (a station column), de-identified, recorded centrally.

    De-identified as ``station export`` is (no track ids, no image hashes); recorded in ``fleet_exports``
    with who, when, the filters, the row count and the file's sha256.

    \b
    Example:
      station fleet export --postgres "host=db dbname=fleet user=audit" --from 2026-11-01 --to 2026-11-30 \\
          --format csv --out fleet-nov.csv --operator audit-1
    """
    from station.fleet.export import FleetFilter, export_fleet
    from station.log.export import check_out_path

    filt = FleetFilter(_parse_day_or_time(start, end=False, option="--from"),
                       _parse_day_or_time(end, end=True, option="--to"), levels,
                       None if acknowledged is None else acknowledged == "yes", stations)
    if filt.end <= filt.start:
        raise click.BadParameter("--to must come after --from")
    if filt.end - filt.start > MAX_PERIOD:
        raise StationError(f"--from {start} --to {end}: one export spans at most {MAX_PERIOD.days} days")
    if not operator.strip():
        raise StationError("an export must name who makes it (--operator NAME)")
    check_out_path(out)
    if out.exists() and not overwrite:
        raise StationError(f"{out}: already exists (give --overwrite to replace it)")
    result = export_fleet(dsn, filt, fmt, out, operator=operator.strip())
    click.echo(f"exported {result.rows} screenings of {result.stations} stations (de-identified) to {out}; "
               f"sha256 {result.sha256}; recorded as fleet export {result.export_id}")


fleet.add_command(desk)  # station fleet desk: the security desk's window (station/cli/fleet_desk.py)
fleet.add_command(demo)  # station fleet demo: local servers, three stations and the desk (station/cli/fleet_demo.py)
