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

Pure functions only: :class:`~station.store.EventStore` calls them while writing and auditing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CHAINED_TABLES: tuple[str, ...] = ("screenings", "acknowledgements", "system_events", "exports")
HASH_COLUMNS = ("prev_hash", "row_hash")
GENESIS = "0" * 64


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
