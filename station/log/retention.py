"""Retention: alarm images go after a week, the records after a year, and the log stays verifiable.

Data collected for epidemic control may be kept only as long as it serves that purpose. Face crops are
the most sensitive thing the station keeps, so they go first (``images_days``, default 7: long enough
for a guard's follow-up and a weekly audit); the rows that say what happened go later
(``records_days``, default 365: a year of evidence for the auditors). The two numbers live in the
station's settings (``retention_images_days``, ``retention_records_days``).

How short retention may be
--------------------------
Both are whole days, and each has a floor (:data:`MIN_IMAGES_DAYS`, :data:`MIN_RECORDS_DAYS`), because
a retention so short that it erases what the station exists to keep is not retention but deletion:
``retention_images_days = 0.00001`` once made the start-up purge delete the whole log, fever alarms
included, and the audit pass.

* **Whole days**, because retention runs at start-up and then every 24 hours (:data:`INTERVAL`): a
  fraction of a day cannot be honoured as written, only as "at the next daily run" or, at start-up,
  as "now".
* **Images at least 1 day**: the snapshot is how the guard on duty, and the one on the next shift,
  check who an alarm was about (the window reopens unacknowledged alarms after a restart). A day
  covers the shift that saw the alarm and the one after it; 0 would purge an alarm before anyone saw it.
* **Records at least 30 days, and at least as long as the images**: the station's calibration is
  valid for 30 days (older, screening pauses), so 30 days of records are the least that lets an audit
  tie every kept decision to the calibration and blackbody verifications logged around it, and a
  monthly audit find the month it is auditing. A snapshot may never outlive its screening row.

The floors are also checked by ``audit verify`` on every purge the log records
(:mod:`station.log.chain`), so a purge that claims a shorter retention than any policy allows is a break.

What goes, and why only that:

* **Snapshots** (rows and PNG files) of screenings older than ``images_days``. Their screening rows stay:
  the record that an alarm happened outlives the picture of who it was.
* **Screenings, acknowledgements, system events** older than ``records_days``, but only as a *prefix*
  of each table: the tables are hash chains (:mod:`station.log.chain`), and only the oldest rows can be
  deleted without breaking them; :meth:`~station.log.store.EventStore.purge_prefix` anchors the chain at
  the last deleted row so :meth:`~station.log.store.EventStore.verify_chains` still holds. A row logged
  late with an old time (kept in memory while the disk was full) waits until the rows before it go.
* An acknowledgement goes with its screening, never before and never after: a surviving
  acknowledgement keeps its screening (and the screenings after it), so there is never an
  acknowledgement of nothing (the foreign key would refuse it anyway).
* **Exports are never purged.** Who exported what, when, with or without images, is the record that
  the data was handled lawfully, and it holds nothing about a screened person.

Every purge, even one that found nothing, is logged as one ``retention_purge`` system event with the
counts and cutoffs (never temperatures or images), so an auditor can see that retention ran. The
deletions, the anchors, the ``retention_log`` row that records them and that event are one transaction
(:meth:`~station.log.store.EventStore.apply_retention`): an anchor is only ever written with the purge
event that vouches for it, and images purged on purpose are told apart from images deleted by hand.

:func:`plan_purge` only reads, so ``station purge --dry-run`` shows exactly what :func:`apply_purge`
would delete. The decisions themselves are small pure functions (:func:`consistent_prefixes`,
:func:`orphan_snapshot_names`) tested without a database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.log.chain import MIN_IMAGES_DAYS, MIN_RECORDS_DAYS
from station.types import SystemEvent

if TYPE_CHECKING:
    from station.log.store import EventStore

#: Longest retention accepted: a century is "keep it", and anything longer overflows the calendar.
MAX_DAYS = 36_500.0
#: How often the engine purges after the run at start-up.
INTERVAL = timedelta(hours=24)
EVENT_KIND = "retention_purge"
#: ``<wall time, no separators>-<screening id>-<kind>.png``, as :meth:`EventStore.record_screening` names them.
_SNAPSHOT_NAME = re.compile(r"^(\d{8}T\d{6}\.\d{3}Z)-(\d+)-(visible|thermal)\.png$")


# ---------------------------------------------------------------------- policy
def check_retention_days(images_days: Any, records_days: Any, *, prefix: str = "") -> None:
    """Raise a one-line ValueError naming the first bad key (``{prefix}images_days`` or ``{prefix}records_days``).

    Both are whole days from their floor to :data:`MAX_DAYS` (why these floors: the module notes),
    and images may not outlive the records they belong to: a snapshot without its screening row would
    be a face with no reason to be kept. ``7.0`` is accepted as 7 days (TOML floats); ``0.5`` is not.
    """
    floors = {"images_days": (MIN_IMAGES_DAYS, "images are kept at least a day, so guards can review the alarm"),
              "records_days": (MIN_RECORDS_DAYS, "records are kept at least one 30-day calibration period")}
    for key, value in (("images_days", images_days), ("records_days", records_days)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{prefix}{key}: expected a number of days, got {value!r}")
        floor, why = floors[key]
        if not (math.isfinite(value) and value == int(value) and floor <= value <= MAX_DAYS):
            raise ValueError(f"{prefix}{key}: expected whole days from {floor} to {MAX_DAYS:g} ({why}), "
                             f"got {value!r}")
    if images_days > records_days:
        raise ValueError(f"{prefix}images_days: expected at most {prefix}records_days ({records_days:g}), "
                         f"got {images_days:g}: images cannot outlive their records")


@dataclass(frozen=True)
class RetentionPolicy:
    """How long images and records are kept, in whole days; validated on creation.

    Every path that purges builds one (the settings, ``station purge``, the engine's schedule), so the
    bounds of :func:`check_retention_days` hold wherever a purge can start.
    """

    images_days: float = 7.0
    records_days: float = 365.0

    def __post_init__(self) -> None:
        check_retention_days(self.images_days, self.records_days)

    def images_cutoff(self, now: datetime) -> datetime:
        """Snapshots of screenings before this go."""
        return now - timedelta(days=self.images_days)

    def records_cutoff(self, now: datetime) -> datetime:
        """Records before this go (as far as the chains allow)."""
        return now - timedelta(days=self.records_days)


# ---------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class PrefixPurge:
    """The oldest rows of one chained table that would go: ids up to ``through_id`` (0: none)."""

    table: str
    through_id: int
    count: int
    oldest: str | None  # wall_time of the oldest row that would go
    newest: str | None


@dataclass(frozen=True)
class SnapshotPurge:
    """One snapshot that would go: its row, its file (``None``: the store was opened without images)."""

    id: int
    screening_id: int
    kind: str
    file: Path | None
    wall_time: str  # its screening's


@dataclass(frozen=True)
class PurgePlan:
    """What a purge at ``now`` would delete; :func:`apply_purge` deletes exactly this."""

    now: datetime
    policy: RetentionPolicy
    images_cutoff: datetime
    records_cutoff: datetime
    snapshots: tuple[SnapshotPurge, ...]
    #: Snapshot files older than the images cutoff that no row names (left by an interrupted purge).
    orphan_files: tuple[Path, ...]
    screenings: PrefixPurge
    acknowledgements: PrefixPurge
    system_events: PrefixPurge

    @property
    def prefixes(self) -> tuple[PrefixPurge, ...]:
        """In the order they must be deleted: acknowledgements before the screenings they reference."""
        return (self.acknowledgements, self.screenings, self.system_events)

    @property
    def snapshot_times(self) -> tuple[str | None, str | None]:
        """Oldest and newest screening time of the snapshots that would go."""
        times = [s.wall_time for s in self.snapshots]
        return (min(times), max(times)) if times else (None, None)

    @property
    def empty(self) -> bool:
        return not (self.snapshots or self.orphan_files or any(p.count for p in self.prefixes))


def consistent_prefixes(screenings_through: int, acks: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Lower the screenings prefix until no surviving acknowledgement references a deleted screening.

    Parameters
    ----------
    screenings_through
        The last screening id old enough to go.
    acks
        Every acknowledgement as ``(ack id, screening id)``, in ack id order.

    Returns
    -------
    (screenings_through, acks_through)
        Both prefixes, consistent: the acknowledgements that go are a prefix of their chain (so it
        stays verifiable) and reference only screenings that go, and every acknowledgement that stays
        references a screening that stays. Each round only lowers ``screenings_through``, so it ends.
    """
    through = screenings_through
    while True:
        acks_through = 0
        for ack_id, screening_id in acks:
            if screening_id > through:
                break  # the first ack that must stay ends the prefix: later ones stay too
            acks_through = ack_id
        kept = [screening_id for ack_id, screening_id in acks if ack_id > acks_through]
        lowest = min(kept, default=through + 1)
        if lowest > through:
            return through, acks_through
        through = lowest - 1


def snapshot_name_time(moment: str) -> str:
    """A store ``wall_time`` as it appears in snapshot file names (same fixed width, so same order)."""
    return moment.replace(":", "").replace("-", "")


def orphan_snapshot_names(names: Iterable[str], known: set[str], cutoff: str) -> list[str]:
    """Snapshot file names older than ``cutoff`` (a store ``wall_time``) that no snapshot row names.

    Rows are deleted before files, so a purge interrupted in between leaves files that nothing would
    ever find again: an image kept past retention. Only names the store writes are considered.
    """
    limit = snapshot_name_time(cutoff)
    out = []
    for name in names:
        match = _SNAPSHOT_NAME.match(name)
        if match and match.group(1) < limit and name not in known:
            out.append(name)
    return sorted(out)


def _prefix(store: EventStore, table: str, through: int) -> PrefixPurge:
    count, oldest, newest = store.prefix_span(table, through)
    return PrefixPurge(table, through if count else 0, count, oldest, newest)


def plan_purge(store: EventStore, now: datetime, policy: RetentionPolicy) -> PurgePlan:
    """What a purge at ``now`` would delete, read in one transaction and changing nothing.

    Snapshots of screenings older than ``images_days`` (and of any screening that goes), plus orphaned
    snapshot files; for ``screenings``, ``acknowledgements`` and ``system_events`` the prefix of rows
    older than ``records_days`` that may go (see the module notes). ``exports`` are never purged.
    Every count sees the same log (:meth:`~station.log.store.EventStore.consistent_read`, rolled back).
    """
    from station.log.store import utc_iso  # here, not at the top: config imports this module for the policy

    images_cutoff, records_cutoff = policy.images_cutoff(now), policy.records_cutoff(now)
    images_iso = utc_iso(images_cutoff)
    with store.consistent_read("planning the retention purge"):
        screenings_through = store.prefix_before("screenings", records_cutoff)
        screenings_through, acks_through = consistent_prefixes(screenings_through, store.acknowledgement_links())
        snapshots = tuple(
            SnapshotPurge(i, s, kind, None if store.snapshots_dir is None else store.snapshots_dir / path, wall)
            for i, s, kind, path, wall in store.snapshots_due(images_cutoff, screenings_through))
        orphans: tuple[Path, ...] = ()
        if store.snapshots_dir is not None and store.snapshots_dir.is_dir():
            known = store.snapshot_paths()
            names = (p.name for p in store.snapshots_dir.iterdir())
            orphans = tuple(store.snapshots_dir / n for n in orphan_snapshot_names(names, known, images_iso))
        return PurgePlan(
            now=now, policy=policy, images_cutoff=images_cutoff, records_cutoff=records_cutoff,
            snapshots=snapshots, orphan_files=orphans,
            screenings=_prefix(store, "screenings", screenings_through),
            acknowledgements=_prefix(store, "acknowledgements", acks_through),
            system_events=_prefix(store, "system_events", store.prefix_before("system_events", records_cutoff)),
        )


# ---------------------------------------------------------------------- applying it
@dataclass(frozen=True)
class PurgeResult:
    """What a purge deleted, and the ``retention_purge`` event that says so."""

    snapshot_rows: int
    files_deleted: int
    files_missing: int  # rows whose file was already gone (deleted by hand, or no images directory)
    files_failed: int  # files that could not be deleted (permissions): found again as orphans next time
    orphans_deleted: int
    screenings: int
    acknowledgements: int
    system_events: int
    event: SystemEvent
    event_id: int


def _unlink(paths: Iterable[Path]) -> tuple[int, int, int]:
    """Delete files; count (deleted, already missing, failed). A failure must not stop the purge."""
    deleted = missing = failed = 0
    for path in paths:
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            missing += 1
        except OSError:
            failed += 1
    return deleted, missing, failed


def purge_detail(plan: PurgePlan, counts: dict[str, int]) -> dict[str, Any]:
    """The event's detail: the policy, the cutoffs and the counts; nothing about a person.

    ``through`` is the last id planned for deletion from each chain (0: none). The store adds
    ``retention_log``, the hash-chained record of the anchors this purge set, which is what lets an
    auditor tell a legitimate anchor from one written by hand (:mod:`station.log.chain`).
    """
    from station.log.store import utc_iso

    return {"images_days": plan.policy.images_days, "records_days": plan.policy.records_days,
            "images_cutoff": utc_iso(plan.images_cutoff), "records_cutoff": utc_iso(plan.records_cutoff),
            "through": {p.table: p.through_id for p in plan.prefixes}, **counts}


def apply_purge(store: EventStore, plan: PurgePlan, now: datetime, *, t: float = 0.0) -> PurgeResult:
    """Delete what ``plan`` lists and log it in one transaction, then delete the files.

    The snapshot rows, the prefixes (acknowledgements, screenings, system events), the anchors, the
    ``retention_log`` row and the ``retention_purge`` event at ``now`` (``t``: the station's timeline,
    0 from the command line) are committed together by :meth:`EventStore.apply_retention`: a fault
    part-way changes nothing, and the next run does the job. Only then are the snapshot files and the
    orphaned files unlinked (rows before files, see :meth:`EventStore.delete_snapshots`).

    The event counts ``files_deleted`` as the files there to delete when the rows went and
    ``files_missing`` as those already gone; a file that then cannot be deleted (permissions) is
    counted in the result for the command to report, and the next purge finds it as an orphan and
    logs it there.
    """
    present = sum(1 for s in plan.snapshots if s.file is not None and s.file.is_file())
    orphans_present = sum(1 for path in plan.orphan_files if path.is_file())

    def detail(counts: Mapping[str, int]) -> dict[str, Any]:
        return purge_detail(plan, {**counts, "files_deleted": present, "files_missing": len(plan.snapshots) - present,
                                   "orphans_deleted": orphans_present})

    written = store.apply_retention(
        snapshot_ids=[s.id for s in plan.snapshots],
        throughs={p.table: p.through_id for p in plan.prefixes if p.count},
        images_cutoff=plan.images_cutoff, records_cutoff=plan.records_cutoff, wall_time=now, t=t, detail=detail)
    deleted, missing, failed = _unlink(written.files)
    missing += len(plan.snapshots) - len(written.files)  # no images directory: nothing to delete on disk
    orphans, _, orphan_failed = _unlink(plan.orphan_files)
    counts = written.counts
    return PurgeResult(counts["snapshot_rows"], deleted, missing, failed + orphan_failed, orphans,
                       counts["screenings"], counts["acknowledgements"], counts["system_events"], written.event,
                       written.event_id)


# ---------------------------------------------------------------------- schedule
class RetentionSchedule:
    """When the engine purges: at start-up (the first :meth:`due`) and then every 24 hours.

    Parameters
    ----------
    policy
        How long things are kept.
    clock
        The station's timeline (seconds), for the logged event's ``t``, like every other system event.

    The interval is measured on the wall time the caller passes as ``now``, which is also what the
    cutoffs are computed from. A wall clock set back makes the next call due rather than waiting for
    the clock to catch up. A run that fails (the disk full) still counts: retention is not urgent,
    and retrying on every frame would flood the log; the next day's run deletes what this one missed.
    """

    def __init__(self, policy: RetentionPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self.last_run: datetime | None = None

    def due(self, now: datetime) -> bool:
        last = self.last_run
        return last is None or now < last or now - last >= INTERVAL

    def run(self, store: EventStore, now: datetime) -> SystemEvent:
        """Plan and apply a purge at ``now``; return the logged ``retention_purge`` event."""
        self.last_run = now
        return apply_purge(store, plan_purge(store, now, self.policy), now, t=self._clock()).event
