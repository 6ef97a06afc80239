"""Tamper evidence for the event store: every row carries a hash chained to the row before it.

The log is evidence. An edited temperature, a deleted alarm or a row slipped in later must show, even
to someone who can open the SQLite file with any tool. Each row of a chained table stores

* ``prev_hash``: the ``row_hash`` of the row before it in the same table (``GENESIS`` for the first),
* ``row_hash``: ``sha256(prev_hash + "\\n" + canonical JSON of every other column, id included)``.

Editing a row breaks its own hash; deleting or reordering rows breaks the next row's link; inserting
a row in the middle needs the hashes of every later row recomputed, and those are what exports record
(each export keeps every table's chain head at the time, so an auditor's earlier export pins the log).
Truncating the newest rows is the one change a chain cannot show by itself, which is why the heads
are recorded with every export.

Retention deletes the oldest rows on purpose. It records the last deleted row's id and hash as the
table's *anchor*, and the chain resumes from there; anything else missing is a break.

Anchors are evidence too
------------------------
An anchor says "the rows before this one were deleted lawfully". Kept as a plain row (the
``chain_anchors`` table), anyone could delete the oldest screenings, a fever alarm among them, write an
anchor for the first row left, and the log would verify. So every purge also appends one row to
``retention_log``, itself a hash chain that is never purged, holding *all* the anchors after that purge
(and the images horizon, below), and the ``retention_purge`` system event written **in the same
transaction** records that row's id and hash. :func:`verify_retention` then requires

* the newest ``retention_log`` row to be named, with its hash, by a surviving purge event (the newest
  purge event always survives: a purge can only delete events older than itself);
* every purge event's reference to resolve to a row with that hash;
* ``chain_anchors`` (what the writer resumes from) to be exactly the anchors of the newest row;
* each purge to be one the policy allows: cutoffs at least :data:`MIN_IMAGES_DAYS` and
  :data:`MIN_RECORDS_DAYS` before the purge, and the last screening or system event it deleted older
  than its records cutoff;
* an ``adopted`` row (anchors an older station set, taken over by the upgrade that added this log,
  which cannot be checked) only as the very first row.

An anchor slipped in by hand therefore breaks the log unless the forger also appends a consistent
``retention_log`` row *and* a purge event dated at least :data:`MIN_RECORDS_DAYS` after the rows it
claims to have deleted, i.e. rewrites two chains by the rules in this file. Without a secret key no
scheme can stop someone who can rewrite the whole file from doing that; what stops them is an export
made earlier (its chain heads pin every chain, this one included) and the purge history that
``audit verify`` shows.

Alarm snapshots
---------------
A screening that raised an alarm records the sha256 of each snapshot taken of it in its own chained
row (``snapshot_sha256``, a JSON object ``{kind: sha256}``; ``{}`` when no image was kept). The
``snapshots`` rows and the PNG files must agree with it: a swapped file, an edited or inserted row,
or a deleted row or file is a break (:func:`check_screening_snapshots`). Images retention purged on
purpose are told apart by the *images horizon*: the latest images cutoff any purge applied, recorded
cumulatively in ``retention_log``; a screening older than it may have lost its images, and only that.
Screenings logged before this protection (no ``snapshot_sha256``) can only be checked against their
``snapshots`` rows.

Pure functions only: :class:`~station.log.store.EventStore` calls them while writing and auditing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from station.types import ALARM_LEVELS

CHAINED_TABLES: tuple[str, ...] = ("screenings", "acknowledgements", "system_events", "exports", "retention_log")
#: The tables retention may shorten (oldest rows first); ``exports`` and ``retention_log`` are kept for good.
PURGEABLE_TABLES: tuple[str, ...] = ("screenings", "acknowledgements", "system_events")
HASH_COLUMNS = ("prev_hash", "row_hash")
GENESIS = "0" * 64
#: System events that vouch for a ``retention_log`` row: a purge, or the upgrade that adopted older anchors.
VOUCHING_KINDS: tuple[str, ...] = ("retention_purge", "retention_log_adopted")
#: The shortest retention any purge may apply (see :mod:`station.log.retention`, which enforces them on the
#: policy; the audit checks every logged purge against them).
MIN_IMAGES_DAYS = 1
MIN_RECORDS_DAYS = 30


def canonical(row: Mapping[str, Any]) -> str:
    """The row's content as one canonical text: sorted keys, no whitespace, floats as Python writes them.

    SQLite stores REAL as IEEE doubles, and Python's ``repr`` of a double round-trips exactly, so the
    text of a row read back is the text of the row written.
    """
    # Null columns are left out: a column added by a later migration (null in older rows) leaves their
    # hashes as they were written; a value edited to NULL still changes the text.
    content = {k: v for k, v in row.items() if k not in HASH_COLUMNS and v is not None}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def row_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash a row must carry after ``prev_hash``."""
    return hashlib.sha256((prev_hash + "\n" + canonical(row)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where a table's chain first fails, and how, in words an auditor can act on."""

    table: str
    row_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.table} row {self.row_id}" if self.row_id is not None else self.table
        return f"{where}: {self.problem}"


def verify_chain(
    table: str, rows: Iterable[Mapping[str, Any]], anchor: tuple[int, str] | None = None,
    head: tuple[int, str] | None = None,
) -> ChainBreak | None:
    """The first break in one table's chain, or None when every row holds.

    Parameters
    ----------
    table
        The table's name, for the report.
    rows
        Every row of the table in ``id`` order, with all its columns.
    anchor
        ``(last purged id, its hash)`` when retention deleted the oldest rows; the chain starts there.
    head
        ``(id, hash)`` of the newest row when an export last recorded it: that row must still be there,
        unchanged, so rows deleted from the end since then show too.
    """
    if head is not None and anchor is not None and head[0] <= anchor[0]:
        if head[0] == anchor[0] and head[1] != anchor[1]:
            return ChainBreak(table, head[0], "differs from the row an earlier export recorded")
        head = None  # retention deleted the recorded head on purpose; the anchor stands for the rows before it
    expected_prev, last_id = (anchor[1], anchor[0]) if anchor else (GENESIS, 0)
    seen_head = head is None
    for row in rows:
        row_id = int(row["id"])
        if row_id <= last_id:
            return ChainBreak(table, row_id, f"id {row_id} is not after {last_id}: rows out of order")
        if row.get("prev_hash") != expected_prev:
            what = "the start of the log" if last_id == 0 and anchor is None else f"row {last_id}"
            return ChainBreak(table, row_id, f"does not follow {what}: a row was deleted, inserted or reordered "
                                             "before it")
        if row_hash(expected_prev, row) != row.get("row_hash"):
            return ChainBreak(table, row_id, "its contents do not match its hash: the row was edited")
        if head is not None and row_id == head[0]:
            if row["row_hash"] != head[1]:
                return ChainBreak(table, row_id, "differs from the row an earlier export recorded")
            seen_head = True
        expected_prev, last_id = str(row["row_hash"]), row_id
    if not seen_head:
        assert head is not None
        return ChainBreak(table, head[0], f"is missing: an earlier export recorded the log up to row {head[0]}, "
                                          f"and it now ends at row {last_id}: rows were deleted from the end")
    return None


# ---------------------------------------------------------------------- retention log and anchors
def parse_utc(text: str) -> datetime:
    """A store ``wall_time`` (``2026-11-23T10:00:00.123Z``) back as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def retention_ref(detail: str) -> tuple[int, str] | None:
    """The ``retention_log`` row a vouching system event names (``"retention_log": [id, hash]``), or None.

    Purge events written before the retention log existed name none; their detail is still JSON.
    """
    try:
        ref = json.loads(detail).get("retention_log")
        return (int(ref[0]), str(ref[1])) if ref else None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError):
        return None


def log_anchors(row: Mapping[str, Any] | None) -> dict[str, tuple[int, str, str | None]]:
    """The anchors a ``retention_log`` row records: ``{table: (last id, its hash, its wall_time)}``.

    Unreadable JSON reads as no anchors: the row's own hash reports the edit.
    """
    if row is None:
        return {}
    try:
        raw = json.loads(row["anchors"])
        return {str(t): (int(a[0]), str(a[1]), None if len(a) < 3 or a[2] is None else str(a[2]))
                for t, a in raw.items()}
    except (ValueError, TypeError, AttributeError, IndexError):
        return {}


def verify_retention(
    log_rows: Sequence[Mapping[str, Any]],
    vouchers: Iterable[tuple[int, str]],
    chain_anchors: Iterable[Mapping[str, Any]],
) -> list[ChainBreak]:
    """Every anchor was set by a logged retention purge the policy allows; the breaks found (none: it holds).

    Parameters
    ----------
    log_rows
        ``retention_log`` in id order (its own chain is checked by :func:`verify_chain` like any other).
    vouchers
        ``(id, detail)`` of the surviving system events of :data:`VOUCHING_KINDS`, in id order.
    chain_anchors
        The rows of ``chain_anchors``, what the writer resumes each emptied chain from.

    Why each check: see the module notes. In short, the newest row must be vouched for by an event
    in another chain written in the same transaction, so adding an anchor means forging both; and each
    purge must look like one the station could have made, so a forged one cannot claim to have
    deleted yesterday's alarm.
    """
    breaks: list[ChainBreak] = []
    by_id = {int(r["id"]): r for r in log_rows}
    vouched: set[int] = set()
    for event_id, detail in vouchers:
        ref = retention_ref(detail)
        if ref is None:
            continue
        row = by_id.get(ref[0])
        if row is None or row.get("row_hash") != ref[1]:
            state = "is missing" if row is None else "differs from the row"
            breaks.append(ChainBreak("retention_log", ref[0], f"{state} system event {event_id} (a retention purge) "
                                                              "recorded: the retention log was rewritten"))
        else:
            vouched.add(ref[0])
    newest = log_rows[-1] if log_rows else None
    if newest is not None and int(newest["id"]) not in vouched:
        breaks.append(ChainBreak("retention_log", int(newest["id"]),
                                 "no retention purge logged it: its anchors were not set by the station"))
    previous: dict[str, tuple[int, str, str | None]] = {}
    for position, row in enumerate(log_rows):
        anchors = log_anchors(row)
        problem = None
        if row.get("kind") == "purge":
            problem = _implausible_purge(row, anchors, previous)
        elif row.get("kind") == "adopted":  # only the upgrade writes one, and before any purge of this version
            if position or row.get("prev_hash") != GENESIS:
                problem = "adopts anchors after the log was already keeping them: no upgrade wrote it"
        else:
            problem = f"is of no kind retention writes ({row.get('kind')!r})"
        if problem:
            breaks.append(ChainBreak("retention_log", int(row["id"]), problem))
        previous = anchors
    expected = {t: (a[0], a[1]) for t, a in log_anchors(newest).items()}
    actual = {str(r["table_name"]): (int(r["last_id"]), str(r["last_hash"])) for r in chain_anchors}
    for table in sorted(set(expected) | set(actual)):
        if expected.get(table) != actual.get(table):
            have = f"anchored at row {actual[table][0]}" if table in actual else "not anchored"
            want = f"row {expected[table][0]}" if table in expected else "no anchor"
            breaks.append(ChainBreak("chain_anchors", None, f"{table} is {have}, but the retention log records "
                                                            f"{want}: the anchor was set by hand"))
    return breaks


def _implausible_purge(row: Mapping[str, Any], anchors: Mapping[str, tuple[int, str, str | None]],
                       previous: Mapping[str, tuple[int, str, str | None]]) -> str | None:
    """Why a logged purge is not one the station could have made, or None."""
    try:
        when = parse_utc(str(row["wall_time"]))
        records_cutoff = parse_utc(str(row["records_cutoff"]))
        # None: a purge of records only (EventStore.purge_prefix), which moved no images horizon
        images_cutoff = None if row.get("images_cutoff") is None else parse_utc(str(row["images_cutoff"]))
    except (TypeError, ValueError, KeyError):
        return "a purge without readable times and cutoffs"
    if images_cutoff is not None and images_cutoff > when - timedelta(days=MIN_IMAGES_DAYS):
        return f"a purge of images younger than {MIN_IMAGES_DAYS} day, which no retention policy allows"
    if records_cutoff > when - timedelta(days=MIN_RECORDS_DAYS):
        return f"a purge of records younger than {MIN_RECORDS_DAYS} days, which no retention policy allows"
    for table in ("screenings", "system_events"):  # an acknowledgement goes with its screening, whatever its age
        anchor = anchors.get(table)
        if anchor is None or anchor == previous.get(table):
            continue
        if anchor[2] is None or anchor[2] >= str(row["records_cutoff"]):
            return (f"anchors {table} at row {anchor[0]}, logged {anchor[2]}, which is not before its records cutoff "
                    f"{row['records_cutoff']}")
    return None


# ---------------------------------------------------------------------- snapshots
def snapshot_name(wall_time: str, screening_id: int, kind: str) -> str:
    """The file name the store gives a snapshot: ``<wall time, no separators>-<screening id>-<kind>.png``."""
    return f"{wall_time.replace(':', '').replace('-', '')}-{int(screening_id):08d}-{kind}.png"


def recorded_snapshots(screening: Mapping[str, Any]) -> dict[str, str] | None:
    """The ``{kind: sha256}`` a screening's chained row records, or None (not an alarm, or logged before)."""
    text = screening.get("snapshot_sha256")
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {}  # the row's hash reports the edit; expect nothing rather than fail here
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def check_screening_snapshots(
    screening: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], images_horizon: str | None,
) -> tuple[list[ChainBreak], int]:
    """Whether a screening's ``snapshots`` rows are the images its chained row recorded.

    Parameters
    ----------
    screening
        The screening row (``id``, ``level``, ``wall_time``, ``snapshot_sha256``).
    rows
        Its ``snapshots`` rows.
    images_horizon
        The latest images cutoff retention applied (``None``: it never purged images).

    Returns
    -------
    (breaks, purged)
        What does not match, and how many recorded images are absent because retention purged them.
        The files themselves are compared with the rows by the caller, which has the directory.
    """
    sid = int(screening["id"])
    recorded = recorded_snapshots(screening)
    breaks: list[ChainBreak] = []
    if screening.get("level") not in ALARM_LEVELS:
        breaks += [ChainBreak("snapshots", int(r["id"]), f"belongs to screening {sid}, which raised no alarm: "
                                                         "the row was inserted") for r in rows]
        return breaks, 0
    if recorded is None:
        return breaks, 0  # logged before screenings recorded their images: the files are still checked
    seen: set[str] = set()
    for row in rows:
        kind = str(row["kind"])
        if kind in seen:
            breaks.append(ChainBreak("snapshots", int(row["id"]), f"a second {kind} image of screening {sid}: "
                                                                  "the row was inserted"))
        elif kind not in recorded or row.get("sha256") != recorded[kind]:
            breaks.append(ChainBreak("snapshots", int(row["id"]), f"is not the {kind} image screening {sid} "
                                                                  "recorded: the row was edited or inserted"))
        elif row.get("path") != snapshot_name(str(screening["wall_time"]), sid, kind):
            breaks.append(ChainBreak("snapshots", int(row["id"]), f"names the file {row.get('path')!r}, not the "
                                                                  "one the store wrote: the row was edited"))
        seen.add(kind)
    purged = 0
    for kind in sorted(set(recorded) - seen):
        if images_horizon is not None and str(screening["wall_time"]) < images_horizon:
            purged += 1
        else:
            breaks.append(ChainBreak("snapshots", None, f"the {kind} image of screening {sid} is missing: its row "
                                                        "was deleted, and retention did not purge it"))
    return breaks, purged
