"""``station purge``: apply the retention policy now, or with ``--dry-run`` show what it would delete.

The engine purges by itself at start-up and daily (:class:`~station.log.retention.RetentionSchedule`); this
command is for a technician who wants to see what goes before it goes, or to purge a copied log. The
numbers default to the station's settings, so a dry run shows what the station itself would do.

The numbers are bounded by :class:`~station.log.retention.RetentionPolicy` (whole days, images at least 1,
records at least 30 and at least the images'), whether they come from the settings or the options,
and a dry run is refused on the same terms as a purge: it shows only what a purge could do. A dry run
opens the log read-only (:meth:`~station.log.store.EventStore.open_read_only`): looking changes no byte.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from station.errors import StationError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_DAYS = click.FloatRange(min=0, min_open=True, max=36_500)


def _now() -> datetime:
    """The wall clock the purge's cutoffs are taken from (tests replace it)."""
    return datetime.now(UTC)


def _span(oldest: str | None, newest: str | None) -> str:
    return f", {oldest} to {newest}" if oldest else ""


def describe_plan(plan, *, list_files: bool) -> list[str]:
    """The plan as lines a technician reads: per kind, how many, and from when to when."""
    from station.log.store import utc_iso

    snaps = plan.snapshots
    screenings_with_images = len({s.screening_id for s in snaps})
    lines = [f"images older than {plan.policy.images_days:g} days (before {utc_iso(plan.images_cutoff)}):",
             f"  snapshots         {len(snaps):>7} of {screenings_with_images} screenings{_span(*plan.snapshot_times)}"]
    if plan.orphan_files:
        lines.append(f"  orphaned files    {len(plan.orphan_files):>7} (snapshot files no row names)")
    if list_files:
        lines += [f"    {s.file if s.file is not None else s.kind + ' of screening ' + str(s.screening_id)}"
                  for s in snaps]
        lines += [f"    {path}" for path in plan.orphan_files]
    lines.append(f"records older than {plan.policy.records_days:g} days (before {utc_iso(plan.records_cutoff)}):")
    for prefix in plan.prefixes:
        ids = f" (ids up to {prefix.through_id})" if prefix.count else ""
        lines.append(f"  {prefix.table:<17} {prefix.count:>7} rows{ids}{_span(prefix.oldest, prefix.newest)}")
    lines.append("  exports           kept: the record of who exported what is never purged")
    return lines


@click.command("purge", context_settings=CONTEXT)
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; change nothing.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store (default: the station's).")
@click.option("--images-days", type=_DAYS, metavar="N", help="Delete alarm images older than N whole days, "
              "at least 1 (default: the settings' retention_images_days, 7).")
@click.option("--records-days", type=_DAYS, metavar="N", help="Delete records older than N whole days, "
              "at least 30 and at least --images-days (default: the settings' retention_records_days, 365).")
def purge(dry_run: bool, db: Path | None, images_days: float | None, records_days: float | None) -> None:
    """Delete alarm images and records past the retention period, and log that it happened.

    Images (snapshot files and rows) go after --images-days; screenings, acknowledgements and system
    events after --records-days, oldest first so the log's hash chains stay verifiable. Screenings of
    purged images stay until their records expire. Exports are never purged.

    \b
    Examples:
      station purge --dry-run                what would go under the station's settings
      station purge                          purge now
      station purge --db copy.db --records-days 30 --dry-run
    """
    try:
        _purge(dry_run, db, images_days, records_days)
    except StationError as exc:  # one line also when called outside the station's command group
        raise click.ClickException(str(exc)) from None


def _purge(dry_run: bool, db: Path | None, images_days: float | None, records_days: float | None) -> None:
    from station.config import default_config_path, load_config
    from station.headless import snapshots_dir_for
    from station.log.retention import RetentionPolicy, apply_purge, plan_purge
    from station.log.store import EventStore
    from station.paths import default_db_path

    config = load_config(default_config_path())
    try:
        policy = RetentionPolicy(images_days if images_days is not None else config.retention_images_days,
                                 records_days if records_days is not None else config.retention_records_days)
    except ValueError as exc:
        raise click.UsageError(f"--{str(exc).replace('_', '-')}") from None
    path = db or default_db_path()
    if not path.is_file():
        raise StationError(f"{path}: no such event store (give --db FILE)")
    snapshots_dir = snapshots_dir_for(path)
    # Never create the images directory just to look into it (a dry run changes nothing).
    images = snapshots_dir if snapshots_dir.is_dir() else None
    store = EventStore.open_read_only(path, snapshots_dir=images) if dry_run else EventStore(path, snapshots_dir=images)
    try:
        now = _now()
        plan = plan_purge(store, now, policy)
        if dry_run:
            click.echo(f"dry run: nothing was deleted from {path}")
            for line in describe_plan(plan, list_files=True):
                click.echo(line)
            return
        result = apply_purge(store, plan, now)
    finally:
        store.close()
    for line in describe_plan(plan, list_files=False):
        click.echo(line)
    click.echo(f"purged: {result.snapshot_rows} snapshots ({result.files_deleted} files deleted, "
               f"{result.files_missing} already missing), {result.orphans_deleted} orphaned files, "
               f"{result.screenings} screenings, {result.acknowledgements} acknowledgements, "
               f"{result.system_events} system events; logged as system event {result.event_id}")
    if result.files_failed:
        click.echo(f"warning: {result.files_failed} files could not be deleted (check the permissions of "
                   f"{snapshots_dir}); the next purge tries again", err=True)
