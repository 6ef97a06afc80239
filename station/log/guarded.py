"""The engine's log that never stops screening: rows it cannot write wait until it can, on disk.

A full disk, a database left read-only or locked by a maintenance job must not silence a fever alarm,
nor lose the decision. So the engine writes through this guard: when the store cannot be opened or
written, the row (with the time it was decided) is *held*: kept in order in memory and appended to a
spill file beside the database (:class:`Spill`, ``station.db.spill``), fsynced before the call returns,
so before the decision is printed or shown. A ``storage_fault`` system event says so once, and every
second or so the guard tries again, first to open the store if it never could, then to write what
waits, oldest first. When everything has landed it removes the spill and says ``storage_recovered``.
The fault and the recovery are logged too, so the record shows the gap.

Why a spill file and not memory alone: a station killed during a fault (``kill -9``, a power cut, the
OOM killer) would otherwise lose every decision it had printed since the fault began, among them the
fevers. The spill is the one thing that must be writable when the database is not, so it is the
simplest thing there is: an append-only file of JSON lines, one row each, with everything needed to
log it later (the decision or event, its wall time, the store's options, the alarm snapshots as
``.npy`` bytes in base64). The next guard opened on the same database replays it, in order, before
anything else is written, and only then removes it.

Replaying is idempotent. A crash can come between writing a held row to the store and removing the
spill, so before writing a held row the guard looks for it in the store: a screening by its wall time,
track id, decision time and source, an event by its wall time, kind, time and detail. Those identify a
row (two different decisions never share all four), so a row replayed twice is logged once.

When even the spill cannot be written (the directory is read-only too, or the disk is full), the guard
says so on standard error and keeps the row in memory only, as before; :attr:`GuardedLog.only_in_memory`
counts such rows so a headless run can exit non-zero (see :mod:`station.headless`).

What is held is bounded only by the machine: a station runs for hours on a few megabytes of decisions
(snapshots are the large part: about 20 kB per alarm in memory, a little more in the spill).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from station.errors import StationError, StorageUnavailable
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

RETRY_S = 1.0
SPILL_SUFFIX = ".spill"
SPILL_VERSION = 1


def spill_path_for(db: Path) -> Path:
    """Where held rows wait on disk: beside the database, ``station.db`` -> ``station.db.spill``.

    Beside it because that is where an operator looks, and because it is the same disk: a database
    directory that is writable again makes the spill writable too (and a spill that could be written
    on another disk would outlive the database it belongs to).
    """
    db = Path(db)
    return db.with_name(db.name + SPILL_SUFFIX)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class _Pending:
    kind: str  # "screening" | "event"
    wall_time: datetime
    payload: Any
    options: dict[str, Any] = field(default_factory=dict)
    spilled: bool = False  # durable in the spill file (else in memory only)


# ---------------------------------------------------------------------- the spill file
def _plain(value: Any) -> Any:
    """JSON for what ``json`` does not know: numpy scalars (a blackbody error, a track id), quality sets."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(f"cannot keep a {type(value).__name__} in the spill file")


def _array_text(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(image), allow_pickle=False)  # exact: dtype, shape and every value
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _array_from(text: str) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)


def encode_row(row: _Pending) -> bytes:
    """One held row as a JSON line (no newline): everything :meth:`GuardedLog._write` needs to log it."""
    payload = {f.name: getattr(row.payload, f.name) for f in fields(row.payload)}
    options = dict(row.options)
    snapshots = options.get("snapshots")
    if snapshots:
        options["snapshots"] = {kind: _array_text(image) for kind, image in snapshots.items()}
    line = {"v": SPILL_VERSION, "kind": row.kind, "wall_time": row.wall_time.isoformat(), "payload": payload,
            "options": options}
    return json.dumps(line, default=_plain, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_row(line: bytes) -> _Pending:
    """A row back from its JSON line; ValueError (or KeyError, TypeError, EOFError) when the line is not one."""
    raw = json.loads(line)
    if not isinstance(raw, dict) or raw.get("v") != SPILL_VERSION:
        raise ValueError(f"not a version {SPILL_VERSION} spill line")
    wall = datetime.fromisoformat(raw["wall_time"])
    if wall.tzinfo is None:
        raise ValueError("a spill line's wall time has no time zone")
    payload = dict(raw["payload"])
    if raw["kind"] == "screening":
        payload["quality"] = frozenset(payload.get("quality", ()))
        item: Any = ScreeningDecision(**payload)
    elif raw["kind"] == "event":
        item = SystemEvent(**payload)
    else:
        raise ValueError(f"unknown spill row kind {raw['kind']!r}")
    options = dict(raw["options"])
    if options.get("snapshots"):
        options["snapshots"] = {kind: _array_from(text) for kind, text in options["snapshots"].items()}
    return _Pending(raw["kind"], wall, item, options, spilled=True)


class Spill:
    """An append-only file of held rows, one JSON line each, fsynced line by line.

    Parameters
    ----------
    path
        The file (see :func:`spill_path_for`); created mode 0600 on the first held row.
    warn
        Where to say that the spill cannot be written (once per failure) or could not be read.
    """

    def __init__(self, path: Path, warn: Callable[[str], None] = _stderr) -> None:
        self.path = Path(path)
        self._warn = warn
        self._fd: int | None = None
        self.error: str | None = None  # why the last append failed (None: the spill takes rows)
        self.damaged = 0  # lines of an earlier run's spill that could not be read back
        self._keep = False  # the file must not be removed: part of it could not be read

    # ------------------------------------------------------------------ reading an earlier run's rows
    def load(self) -> list[_Pending]:
        """The rows an earlier run held, oldest first.

        A last line without its newline was being written when the process died: its row had not been
        returned, so its decision was never printed; it is dropped (and cut off, so the next line
        appended starts on a line of its own). Any other line that cannot be read is counted in
        :attr:`damaged`; the file is then kept (renamed) instead of removed once the rest is logged.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._keep = True
            self._warn(f"storage: cannot read the held rows in {self.path} ({exc.strerror}): they are not "
                       "logged, and the file is kept")
            return []
        lines = data.split(b"\n")
        torn = lines.pop()  # what follows the last newline: empty unless a write was cut short
        if torn:
            try:
                os.truncate(self.path, len(data) - len(torn))
            except OSError:
                self._keep = True
        rows = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rows.append(decode_row(line))
            except (ValueError, KeyError, TypeError, EOFError):  # EOFError: a cut-short snapshot array
                self.damaged += 1
        if self.damaged:
            self._keep = True
            self._warn(f"storage: {self.damaged} lines of {self.path} cannot be read back: the rest are logged, "
                       "and the file is kept as evidence")
        return rows

    # ------------------------------------------------------------------ holding
    def append(self, row: _Pending) -> bool:
        """Append ``row`` and fsync it; False (said once) when it cannot be, and then nothing of it stays."""
        start = None
        try:
            line = encode_row(row) + b"\n"
            if self._fd is None:
                self._open()
            assert self._fd is not None
            start = os.lseek(self._fd, 0, os.SEEK_END)
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except BaseException as exc:
            if start is not None and self._fd is not None:
                try:  # a half-written line would glue itself to the next one
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass
            if not isinstance(exc, OSError | TypeError | ValueError):
                raise  # a second Ctrl-C: the run ends, and the line it cut short is gone
            reason = getattr(exc, "strerror", None) or str(exc)
            if self.error is None:
                self._warn(f"storage: cannot hold rows in {self.path} either ({reason}): they are kept in "
                           "memory only, and a crash now would lose them")
            self.error = reason
            return False
        if self.error is not None:
            self._warn(f"storage: {self.path} takes held rows again")
            self.error = None
        return True

    def _open(self) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fd = fd
        if created:  # the file's name must survive a power cut as well as its lines
            try:
                os.fchmod(fd, 0o600)
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ done
    def discard(self) -> None:
        """Everything held is logged: remove the file (or keep it, renamed, when part of it was unreadable).

        A file that cannot be removed does no harm: its rows are found in the store when it is
        replayed again, and skipped.
        """
        self.close()
        try:
            if self._keep:
                if self.path.exists():
                    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                    self.path.rename(self.path.with_name(f"{self.path.name}.damaged-{stamp}"))
            else:
                self.path.unlink(missing_ok=True)
        except OSError:
            return
        self._keep = False
        self.damaged = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------------- the guard
class GuardedLog:
    """Writes screenings and system events to the store, or holds them until it can.

    Parameters
    ----------
    open_store
        Opens the event store (raising :class:`StationError` when it cannot): called at once, and
        again while it fails, so a station started with its log unavailable still logs later.
    clock, wall_clock
        Monotonic seconds for retry pacing; UTC wall time stamped on rows when they are decided.
    retry_s
        How often to try the store again while it fails.
    spill
        The spill file (:func:`spill_path_for` of the database), or ``None`` to hold rows in memory
        only. Rows an earlier run left in it are logged first, as soon as the store opens.
    warn
        Where to say that the spill itself cannot be written (standard error by default).
    """

    def __init__(
        self,
        open_store: Callable[[], EventStore],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retry_s: float = RETRY_S,
        spill: Path | None = None,
        warn: Callable[[str], None] = _stderr,
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
        self.spill = None if spill is None else Spill(spill, warn)
        if self.spill is not None:
            self.pending.extend(self.spill.load())
        self._inherited = len(self.pending)  # rows an earlier run held, logged before anything of this one
        self._try_open(first=True)
        if self.store is not None and self.pending:
            self._flush()

    # ------------------------------------------------------------------ writing
    def screening(self, decision: ScreeningDecision, t: float, **options: Any) -> int | None:
        """Log a decision; its screening id, or None while it is held (durably, when the spill takes it)."""
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
        """Write what waits one last time; the store closes whatever happens, held rows stay in the spill."""
        if self.pending:
            self._flush()
        if self.spill is not None:
            self.spill.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    # ------------------------------------------------------------------ what is held
    @property
    def held_in_spill(self) -> int:
        """Rows not yet logged but safe in the spill file: the next guard on this database logs them."""
        return sum(1 for row in self.pending if row.spilled)

    @property
    def only_in_memory(self) -> int:
        """Rows not yet logged and kept nowhere but in this process: lost if it ends now."""
        return sum(1 for row in self.pending if not row.spilled)

    # ------------------------------------------------------------------ internals
    def _write_or_keep(self, row: _Pending) -> int | None:
        if self.fault is None:
            try:
                return self._write(row)
            except StationError as exc:
                self._fail(str(exc))
        self._hold(row)
        if self._clock() >= self._next_try:
            self._flush()
        return None

    def _hold(self, row: _Pending) -> None:
        """Keep ``row`` until the store takes it: on disk first (fsynced), then in memory."""
        if self.spill is not None and not row.spilled:
            row.spilled = self.spill.append(row)
        self.pending.append(row)

    def _write(self, row: _Pending) -> int | None:
        if self.store is None:
            raise StationError("event store not open")
        if row.kind == "screening":
            return self.store.record_screening(row.payload, wall_time=row.wall_time, **row.options)
        self.store.record_system_event(row.payload, wall_time=row.wall_time)
        return None

    def _already_logged(self, row: _Pending) -> bool:
        """Whether a held row is in the store already (written just before a crash, or a replay before)."""
        assert self.store is not None
        if row.kind == "screening":
            decision: ScreeningDecision = row.payload
            return self.store.is_logged_screening(row.wall_time, decision.track_id, decision.t_decided,
                                                  str(row.options.get("source")))
        event: SystemEvent = row.payload
        return self.store.is_logged_system_event(row.wall_time, event.kind, event.t, event.detail)

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
            where = "in memory" if self.spill is None else f"in {self.spill.path}"
            notice = SystemEvent("storage_fault", self._t, f"{message}; screening goes on, rows kept {where}")
            self.notices.append(notice)
            self._hold(_Pending("event", self._wall(), notice))

    def _flush(self) -> None:
        if self.store is None:
            self._try_open()
            if self.store is None:
                return
        written = 0
        try:
            while self.pending:
                row = self.pending[0]
                if not self._already_logged(row):
                    self._write(row)
                self.pending.popleft()
                written += 1
        except StationError as exc:
            if self.fault is None:  # an earlier run's rows that do not fit either
                self._fail(str(exc))
            self._next_try = self._clock() + self.retry_s
            self.fault = str(exc)
            return
        if self.spill is not None:
            self.spill.discard()  # everything in it is logged now
        if self.fault is not None or self._inherited:
            where = "in memory" if self.spill is None else f"in {self.spill.path}"
            earlier = f" ({self._inherited} of them by an earlier run)" if self._inherited else ""
            self.fault = None
            self._inherited = 0
            notice = SystemEvent("storage_recovered", self._t, f"{written} rows kept {where}{earlier} are now logged")
            self.notices.append(notice)
            try:
                self._write(_Pending("event", self._wall(), notice))
            except StationError as exc:
                self._fail(str(exc))
