"""The engine's log that never stops screening: rows it cannot write wait in memory until it can.

A full disk, a database left read-only or locked by a maintenance job must not silence a fever alarm,
nor lose the decision. So the engine writes through this guard: when the store cannot be opened or
written, the row (with the time it was decided) is kept in order in memory, a ``storage_fault``
system event says so once, and every second or so the guard tries again, first to open the store if
it never could, then to write what waits, oldest first. When everything has landed it says
``storage_recovered``. The fault and the recovery are logged too, so the record shows the gap.

What is kept in memory is bounded only by the machine: a station runs for hours on a few megabytes of
decisions (snapshots are the large part: about 20 kB per alarm).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from station.errors import StationError, StorageUnavailable
from station.store import EventStore
from station.types import ScreeningDecision, SystemEvent

RETRY_S = 1.0


@dataclass
class _Pending:
    kind: str  # "screening" | "event"
    wall_time: datetime
    payload: Any
    options: dict[str, Any] = field(default_factory=dict)


class GuardedLog:
    """Writes screenings and system events to the store, or keeps them until it can.

    Parameters
    ----------
    open_store
        Opens the event store (raising :class:`StationError` when it cannot): called at once, and
        again while it fails, so a station started with its log unavailable still logs later.
    clock, wall_clock
        Monotonic seconds for retry pacing; UTC wall time stamped on rows when they are decided.
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry_s: float = RETRY_S,
    ) -> None:
        self._open_store = open_store
        self._clock = clock
        self._wall = wall_clock
        self.retry_s = retry_s
        self.store: EventStore | None = None
        self.pending: deque[_Pending] = deque()
        self.notices: list[SystemEvent] = []  # fault/recovery events for the caller to show, drained by it
        self.fault: str | None = None
        self._next_try = 0.0
        self._t = 0.0
        self._try_open(first=True)

    # ------------------------------------------------------------------ writing
    def screening(self, decision: ScreeningDecision, t: float, **options: Any) -> int | None:
        """Log a decision; its screening id, or None while it waits in memory."""
        self._t = t
        row = _Pending("screening", self._wall(), decision, options)
        return self._write_or_keep(row)

    def event(self, event: SystemEvent) -> None:
        self._t = max(self._t, event.t)
        self._write_or_keep(_Pending("event", self._wall(), event))

    def poll(self, t: float) -> None:
        """Retry when due (call once per frame pair): open the store, write what waits."""
        self._t = t
        if self.fault is not None and self._clock() >= self._next_try:
            self._flush()

    def close(self) -> None:
        """Write what waits one last time; the store closes whatever happens."""
        if self.pending:
            self._flush()
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ internals
    def _write_or_keep(self, row: _Pending) -> int | None:
        if self.fault is None:
            try:
                return self._write(row)
            except StationError as exc:
                self._fail(str(exc))
        self.pending.append(row)
        if self._clock() >= self._next_try:
            self._flush()
        return None

    def _write(self, row: _Pending) -> int | None:
        if self.store is None:
            raise StationError("event store not open")
        if row.kind == "screening":
            return self.store.record_screening(row.payload, wall_time=row.wall_time, **row.options)
        self.store.record_system_event(row.payload, wall_time=row.wall_time)
        return None

    def _try_open(self, *, first: bool = False) -> None:
        try:
            self.store = self._open_store()
        except StorageUnavailable as exc:
            self._fail(str(exc))
        except StationError as exc:
            if first:  # a wrong path or a file that is not a database: bad input, said at once
                raise
            self._fail(str(exc))  # mid-run, nothing stops the screening

    def _fail(self, message: str) -> None:
        self._next_try = self._clock() + self.retry_s
        if self.fault is None:
            self.fault = message
            notice = SystemEvent("storage_fault", self._t, f"{message}; screening goes on, rows kept in memory")
            self.notices.append(notice)
            self.pending.append(_Pending("event", self._wall(), notice))

    def _flush(self) -> None:
        if self.store is None:
            self._try_open()
            if self.store is None:
                return
        written = 0
        try:
            while self.pending:
                self._write(self.pending[0])
                self.pending.popleft()
                written += 1
        except StationError as exc:
            self._next_try = self._clock() + self.retry_s
            self.fault = str(exc)
            return
        if self.fault is not None:
            self.fault = None
            notice = SystemEvent("storage_recovered", self._t, f"{written} rows kept in memory are now logged")
            self.notices.append(notice)
            try:
                self._write(_Pending("event", self._wall(), notice))
            except StationError as exc:
                self._fail(str(exc))
