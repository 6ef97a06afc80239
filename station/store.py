"""The event store: every screening, system event and acknowledgement, in one SQLite file.

Why it looks as it does:

* **SQLite through sqlite-utils, in WAL mode.** One file an auditor can copy and open with any tool;
  WAL lets the auditors' exports read while the station writes, without either waiting.
* **Durable when the call returns.** Each write is one ``db.atomic()`` transaction (sqlite-utils 4's
  transaction context manager: ``BEGIN`` ... ``COMMIT``, savepoints when nested), and the connection
  runs with ``synchronous=FULL``, so a decision that was logged survives a power cut a second later.
  A screening is one row per person, a few a minute: durability costs nothing worth saving.
* **Schema changes only through migrations.** sqlite-utils 4 ships ``Migrations`` (the former
  ``sqlite-migrate`` package, now built in): named functions applied in order, each in a transaction
  with the record of it in ``_sqlite_migrations``. Never edit or rename a released migration; add the
  next one (the auditors' ``exports`` table will be ``m002``). A database that has migrations this
  code does not know was written by a newer station and is refused rather than half-understood.
* **No identities.** Nothing here names a screened person: a track id is a number that lives for one
  pass in front of the camera. Face crops are kept only for alarms (so the guard and the auditor can
  check who the alarm was about), in a directory only the station's user can read.
* **One-line faults.** Anything wrong with the file (missing directory, not SQLite, read-only, newer
  schema) is a :class:`~station.errors.StationError` naming the file.

Snapshot files
--------------
``<wall time>-<screening id>-<kind>.png`` in ``snapshots_dir`` (mode 0700, files 0600), with the
file's sha256 in the ``snapshots`` table so an audit can tell a file was not altered. ``visible`` is the
BGR crop as an 8-bit PNG. ``thermal`` is a 16-bit greyscale PNG of centikelvin (``°C = v / 100 -
273.15``, 0 where there was no reading): exact to 0.01 K, finer than any microbolometer's NETD; the same
unit as Lepton TLinear and the recording format; opens in any image viewer an auditor has; one file
format for both kinds. Read it back with :func:`read_thermal_snapshot`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from sqlite_utils import Database, Migrations

from station.alarm import ALARM_LEVELS, check_action
from station.chain import CHAINED_TABLES, GENESIS, ChainBreak, row_hash, verify_chain
from station.errors import StationError, StorageUnavailable
from station.types import LEVELS, ScreeningDecision, SystemEvent

SNAPSHOT_KINDS: tuple[str, ...] = ("visible", "thermal")
_KELVIN = 273.15

# ---------------------------------------------------------------------- migrations
#: The store's schema, as an ordered list of named steps. Append only.
MIGRATIONS = Migrations("station-events")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    """Screenings, system events, acknowledgements and alarm snapshots."""
    db["screenings"].create(
        {
            "id": int,
            "track_id": int,
            "t_first_seen": float,  # seconds on the station's (or recording's) timeline
            "t_decided": float,
            "wall_time": str,  # ISO 8601 UTC, fixed width, so text order is time order
            "skin_c": float,
            "body_c": float,
            "level": str,
            "quality": str,  # JSON list of flags, sorted
            "calibration_id": str,  # profile station_id@created
            "model_sha256": str,
            "blackbody_error_c": float,
            "recording": str,  # the source's label: a recording's path or the cameras'
            "alarm_id": int,  # the store's alarm number, set for elevated/fever only
        },
        pk="id",
        not_null={"track_id", "t_first_seen", "t_decided", "wall_time", "level", "quality", "recording"},
    )
    db["screenings"].create_index(["wall_time"])
    db["screenings"].create_index(["alarm_id"], unique=True)  # NULLs do not collide
    db["system_events"].create(
        {"id": int, "kind": str, "t": float, "wall_time": str, "detail": str},
        pk="id",
        not_null={"kind", "t", "wall_time", "detail"},
    )
    db["system_events"].create_index(["wall_time"])
    db["acknowledgements"].create(
        {
            "id": int,
            "screening_id": int,
            "wall_time": str,
            "action": str,
            "thermometer_c": float,
            "note": str,
            "operator": str,
        },
        pk="id",
        not_null={"screening_id", "wall_time", "action", "note", "operator"},
        foreign_keys=[("screening_id", "screenings", "id")],
    )
    db["acknowledgements"].create_index(["screening_id"])
    db["snapshots"].create(
        {"id": int, "screening_id": int, "kind": str, "path": str, "sha256": str},
        pk="id",
        not_null={"screening_id", "kind", "path", "sha256"},
        foreign_keys=[("screening_id", "screenings", "id")],
    )
    db["snapshots"].create_index(["screening_id"])


@MIGRATIONS()
def m002_hash_chains_and_exports(db: Database) -> None:
    """Hash chains on every evidence table (see :mod:`station.chain`), the exports log, retention anchors.

    Rows logged before this migration are chained here, in id order, so an old station's log gains the
    same protection from the moment it is upgraded (what was changed before then cannot be known).
    """
    for table in ("screenings", "acknowledgements", "system_events"):
        db[table].add_column("prev_hash", str)
        db[table].add_column("row_hash", str)
        prev = GENESIS
        for row in list(db.query(f"SELECT * FROM {table} ORDER BY id")):
            digest = row_hash(prev, row)
            db.execute(f"UPDATE {table} SET prev_hash = ?, row_hash = ? WHERE id = ?", [prev, digest, row["id"]])
            prev = digest
    db["exports"].create(
        {
            "id": int,
            "wall_time": str,
            "operator": str,  # the name the auditor gave
            "period_from": str,
            "period_to": str,
            "filters": str,  # JSON object of the filters applied
            "format": str,
            "row_count": int,
            "include_images": int,  # 0 or 1
            "path": str,
            "sha256": str,  # of the file written
            "chain_heads": str,  # JSON {table: [id, row_hash]} when the export was made
            "prev_hash": str,
            "row_hash": str,
        },
        pk="id",
        not_null={"wall_time", "operator", "filters", "format", "row_count", "include_images", "path", "sha256",
                  "chain_heads"},
    )
    db["chain_anchors"].create(
        {"table_name": str, "last_id": int, "last_hash": str, "wall_time": str}, pk="table_name",
        not_null={"last_id", "last_hash", "wall_time"},
    )


@MIGRATIONS()
def m003_body_model(db: Database) -> None:
    """Which skin-to-body model produced each decision's body temperature (null before it was logged)."""
    db["screenings"].add_column("body_model", str)


@MIGRATIONS()
def m004_site(db: Database) -> None:
    """Where each decision's skin temperature was read: canthus, or forehead_mouth for a spectacle wearer
    (null before it was logged: those were all canthus)."""
    db["screenings"].add_column("site", str)


# ---------------------------------------------------------------------- helpers
def utc_iso(moment: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``: fixed width, so comparing the text compares the times."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_UNAVAILABLE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EIO}
_UNAVAILABLE_SQLITE = ("readonly", "read-only", "locked", "is full", "disk i/o", "unable to open", "busy")


def _error_for(exc: sqlite3.Error) -> type[StationError]:
    """A storage state that can pass (read-only, locked, full) or a fault in the input (not a database)."""
    text = str(exc).lower()
    return StorageUnavailable if any(word in text for word in _UNAVAILABLE_SQLITE) else StationError


def _now() -> datetime:
    return datetime.now(UTC)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _decode(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if "quality" in out:
        out["quality"] = json.loads(out["quality"])
    return out


def encode_thermal(celsius: np.ndarray) -> np.ndarray:
    """°C -> uint16 centikelvin, 0 where not finite (see the module notes)."""
    ck = np.round((np.asarray(celsius, dtype=np.float64) + _KELVIN) * 100.0)
    ck = np.where(np.isfinite(ck), ck, 0.0)
    return np.clip(ck, 0, 65535).astype(np.uint16)


def read_thermal_snapshot(path: Path) -> np.ndarray:
    """A thermal snapshot PNG back in °C (float32, NaN where there was no reading)."""
    ck = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ck is None or ck.dtype != np.uint16 or ck.ndim != 2:
        raise StationError(f"{path}: not a 16-bit greyscale thermal snapshot")
    celsius = ck.astype(np.float32) / 100.0 - np.float32(_KELVIN)
    return np.where(ck == 0, np.float32(np.nan), celsius).astype(np.float32)


def _encode_snapshot(kind: str, image: np.ndarray) -> bytes | None:
    """PNG bytes for one crop; ``None`` for an empty crop (a face at the image edge)."""
    if kind not in SNAPSHOT_KINDS:
        raise ValueError(f"snapshots: expected kinds from {SNAPSHOT_KINDS}, got {kind!r}")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"snapshots[{kind!r}]: expected a numpy array, got {type(image).__name__}")
    if kind == "visible" and not (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError(f"snapshots['visible']: expected (H,W,3) uint8 BGR, got {image.dtype} {image.shape}")
    if kind == "thermal" and not (image.ndim == 2 and np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"snapshots['thermal']: expected (H,W) float °C, got {image.dtype} {image.shape}")
    if image.size == 0:
        return None
    pixels = encode_thermal(image) if kind == "thermal" else np.ascontiguousarray(image)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"snapshots[{kind!r}]: PNG encoding failed for {image.dtype} {image.shape}")
    return png.tobytes()


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwrite) readable by the owner only, and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits, but be explicit
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- the store
class EventStore:
    """The station's log. Open it on the thread that will use it (SQLite connections stay put).

    Parameters
    ----------
    path
        The database file; created (mode 0600) if missing, and migrated to the current schema.
    snapshots_dir
        Where alarm snapshots go (created mode 0700). ``None``: this station keeps no images at all.
    clock
        Wall-clock source for ``wall_time``; tests pass a fixed one.
    """

    def __init__(
        self, path: Path, *, snapshots_dir: Path | None = None, clock: Callable[[], datetime] = _now
    ) -> None:
        self.path = Path(path)
        self.snapshots_dir = None if snapshots_dir is None else Path(snapshots_dir)
        self._clock = clock
        self._db: Database | None = None
        self._create_file()
        try:
            self._db = Database(self.path, execute_plugins=False)
            self._open()
        except sqlite3.Error as exc:
            self.close()
            raise _error_for(exc)(f"event store {self.path}: {self._describe(exc)}") from exc
        except StationError:
            self.close()
            raise
        if self.snapshots_dir is not None:
            self._prepare_snapshots_dir(self.snapshots_dir)

    # ------------------------------------------------------------------ opening
    def _create_file(self) -> None:
        if not self.path.parent.is_dir():
            raise StationError(f"event store {self.path}: directory {self.path.parent} does not exist")
        if self.path.is_dir():
            raise StationError(f"event store {self.path}: is a directory, expected a database file")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        except OSError as exc:
            kind = StorageUnavailable if exc.errno in _UNAVAILABLE_ERRNOS else StationError
            raise kind(f"event store {self.path}: cannot create ({exc.strerror})") from exc
        os.fchmod(fd, 0o600)  # an empty file is an empty SQLite database; SQLite gives -wal/-shm its mode
        os.close(fd)

    def _open(self) -> None:
        db = self.db
        db.enable_wal()
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        # Wait a little for a lock (a checkpoint, a purge in another process), never long: the engine must
        # keep screening, and a longer lock is a storage fault the guarded log rides out.
        db.execute("PRAGMA busy_timeout = 300")
        self._probe_writable()
        # Everything registered is pending on an empty database: the public way to list the set.
        known = {m.name for m in MIGRATIONS.pending(Database(memory=True, execute_plugins=False))}
        unknown = [m.name for m in MIGRATIONS.applied(db) if m.name not in known]
        if unknown:
            raise StationError(
                f"event store {self.path}: written by a newer station (unknown migration {unknown[0]}); "
                "upgrade the station to open it"
            )
        MIGRATIONS.apply(db)

    def _probe_writable(self) -> None:
        """Fail at open, not at the first alarm, when the file cannot be written (read-only file or disk).

        Opening a read-only database succeeds and a fully migrated one needs no write, so write
        something in a transaction that is always rolled back.
        """
        conn = self.db.conn
        conn.execute("BEGIN")
        try:
            conn.execute("CREATE TABLE _write_probe (x)")
        finally:
            conn.execute("ROLLBACK")

    def _describe(self, exc: sqlite3.Error) -> str:
        text = _one_line(exc)
        if "not a database" in text or "malformed" in text:
            return f"not an SQLite database, or damaged ({text})"
        if "readonly" in text or "read-only" in text:
            return f"cannot be written ({text})"
        return text

    @staticmethod
    def _prepare_snapshots_dir(directory: Path) -> None:
        try:
            if not directory.exists():
                directory.mkdir(mode=0o700, parents=True)
                directory.chmod(0o700)
        except OSError as exc:
            kind = StorageUnavailable if exc.errno in _UNAVAILABLE_ERRNOS else StationError
            raise kind(f"snapshots directory {directory}: cannot create ({exc.strerror})") from exc
        if not directory.is_dir():
            raise StationError(f"snapshots directory {directory}: is not a directory")
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o077:
            raise StationError(
                f"snapshots directory {directory}: open to other users (mode {mode:04o}); "
                f"expected 0700 (chmod 700 {directory})"
            )

    @property
    def db(self) -> Database:
        if self._db is None:
            raise StationError(f"event store {self.path}: already closed")
        return self._db

    @contextmanager
    def _faults(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise _error_for(exc)(f"event store {self.path}: {doing}: {self._describe(exc)}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Database]:
        """A write transaction that takes the write lock first (``BEGIN IMMEDIATE``).

        Chained rows read the table's last hash and insert after it: with a deferred ``BEGIN`` a second
        connection (the window's, logging an acknowledgement) could commit in between, and two rows
        would claim the same predecessor. Taking the lock up front makes read-then-insert atomic.
        """
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def _insert_chained(self, db: Database, table: str, row: dict[str, Any]) -> int:
        """Insert a row after the table's last one, with its id and hashes; return the id."""
        last = db.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
        if last is None:
            anchor = db.execute("SELECT last_id, last_hash FROM chain_anchors WHERE table_name = ?",
                                [table]).fetchone()
            last = anchor if anchor is not None else (0, GENESIS)
        full = {"id": int(last[0]) + 1, **row}
        full["prev_hash"] = str(last[1])
        full["row_hash"] = row_hash(full["prev_hash"], full)
        db[table].insert(full)
        return full["id"]

    # ------------------------------------------------------------------ writing
    def record_screening(
        self,
        decision: ScreeningDecision,
        *,
        calibration_id: str | None,
        model_sha256: str | None,
        blackbody_error_c: float | None,
        source: str,
        snapshots: Mapping[str, np.ndarray] | None = None,
        wall_time: datetime | None = None,
        body_model: str | None = None,
    ) -> int:
        """Log one person's decision; return its screening id.

        Parameters
        ----------
        decision
            The tracker's decision with the alarm policy's level.
        calibration_id
            The calibration profile in effect, ``"<station_id>@<created>"``.
        model_sha256
            The face model's sha256 (``None`` in thermal-only mode).
        blackbody_error_c
            The blackbody correction applied at the decision (``None``: no blackbody fitted).
        source
            What was screened: a recording's path or the live cameras' label.
        snapshots
            ``{"visible": BGR uint8 crop, "thermal": float °C crop}``. Written only when the level is an
            alarm (elevated/fever) and the store has a ``snapshots_dir``; otherwise ignored, so the caller
            never has to decide whether a face may be kept. Empty crops are skipped.
        body_model
            The skin-to-body model that gave ``body_c`` (its id), so a decision can be re-read later.
        wall_time
            When it was decided (default now): a row kept in memory while the disk could not be written
            is logged later with its own time.

        Alarms get the next alarm number (``alarm_id``, unique in this database, shown to the guard).
        The row, its alarm number and its snapshot rows are one transaction, committed before this
        returns; if a snapshot file cannot be written nothing is logged and the files are removed.
        """
        if not isinstance(decision, ScreeningDecision):
            raise TypeError(f"record_screening: expected a ScreeningDecision, got {type(decision).__name__}")
        alarm = decision.level in ALARM_LEVELS
        encoded: dict[str, bytes] = {}
        if alarm and snapshots and self.snapshots_dir is not None:
            for kind, image in snapshots.items():
                png = _encode_snapshot(kind, image)
                if png is not None:
                    encoded[kind] = png
        wall = utc_iso(wall_time or self._clock())
        row = {
            "track_id": int(decision.track_id),
            "t_first_seen": float(decision.t_first_seen),
            "t_decided": float(decision.t_decided),
            "wall_time": wall,
            "skin_c": None if decision.skin_c is None else float(decision.skin_c),
            "body_c": None if decision.body_c is None else float(decision.body_c),
            "level": decision.level,
            "quality": json.dumps(sorted(decision.quality)),
            "calibration_id": calibration_id,
            "model_sha256": model_sha256,
            "blackbody_error_c": None if blackbody_error_c is None else float(blackbody_error_c),
            "recording": str(source),
            "alarm_id": None,
            "body_model": body_model,
            "site": decision.site if decision.skin_c is not None else None,
        }
        written: list[Path] = []
        try:
            with self._faults("logging a screening"), self._transaction() as db:
                if alarm:
                    row["alarm_id"] = db.execute("SELECT COALESCE(MAX(alarm_id), 0) + 1 FROM screenings").fetchone()[0]
                screening_id = self._insert_chained(db, "screenings", row)
                for kind, png in encoded.items():
                    name = f"{wall.replace(':', '').replace('-', '')}-{screening_id:08d}-{kind}.png"
                    path = self.snapshots_dir / name  # type: ignore[operator]  # set whenever encoded
                    try:
                        _write_private(path, png)
                    except OSError as exc:
                        raise StationError(f"snapshot {path}: cannot write ({exc.strerror})") from exc
                    written.append(path)
                    db["snapshots"].insert(
                        {
                            "screening_id": screening_id,
                            "kind": kind,
                            "path": name,
                            "sha256": hashlib.sha256(png).hexdigest(),
                        }
                    )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return screening_id

    def record_system_event(self, event: SystemEvent, wall_time: datetime | None = None) -> int:
        """Log something about the station itself (camera lost, blackbody out of tolerance, stopped)."""
        row = {"kind": event.kind, "t": float(event.t), "wall_time": utc_iso(wall_time or self._clock()),
               "detail": event.detail}
        with self._faults("logging a system event"), self._transaction() as db:
            return self._insert_chained(db, "system_events", row)

    def acknowledge(
        self,
        screening_id: int,
        action: str,
        *,
        thermometer_c: float | None = None,
        note: str = "",
        operator: str = "",
    ) -> int:
        """Log what a guard did about an alarm; return the acknowledgement's id.

        ``action`` is one of ``cleared_secondary_check`` (a clinical thermometer said no fever; give
        ``thermometer_c``), ``referred`` or ``re_measure``. ``operator`` is a role or badge label
        ("guard-2"), and ``note`` free text: neither should ever name the screened person. Only alarms
        can be acknowledged, and one alarm may collect several acknowledgements (re-measure, then
        cleared), which is its history.
        """
        check_action(action, thermometer_c)
        with self._faults("logging an acknowledgement"), self._transaction() as db:
            found = db.execute("SELECT level FROM screenings WHERE id = ?", [screening_id]).fetchone()
            if found is None:
                raise StationError(f"event store {self.path}: no screening {screening_id} to acknowledge")
            if found[0] not in ALARM_LEVELS:
                raise StationError(
                    f"event store {self.path}: screening {screening_id} raised no alarm (level {found[0]})"
                )
            row = {
                "screening_id": int(screening_id),
                "wall_time": utc_iso(self._clock()),
                "action": action,
                "thermometer_c": None if thermometer_c is None else float(thermometer_c),
                "note": str(note),
                "operator": str(operator),
            }
            return self._insert_chained(db, "acknowledgements", row)

    # ------------------------------------------------------------------ reading
    def screening(self, screening_id: int) -> dict[str, Any]:
        """One screening row (``quality`` decoded to a list)."""
        with self._faults("reading a screening"):
            rows = list(self.db.query("SELECT * FROM screenings WHERE id = ?", [screening_id]))
        if not rows:
            raise StationError(f"event store {self.path}: no screening {screening_id}")
        return _decode(rows[0])

    def screenings(
        self, since: datetime | None = None, until: datetime | None = None, level: str | None = None
    ) -> list[dict[str, Any]]:
        """Screenings with ``since <= wall_time < until`` (either open), optionally of one level, oldest first."""
        where, params = [], []
        if since is not None:
            where.append("wall_time >= ?")
            params.append(utc_iso(since))
        if until is not None:
            where.append("wall_time < ?")
            params.append(utc_iso(until))
        if level is not None:
            if level not in LEVELS:
                raise ValueError(f"screenings.level: expected one of {LEVELS}, got {level!r}")
            where.append("level = ?")
            params.append(level)
        sql = "SELECT * FROM screenings" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        with self._faults("reading screenings"):
            return [_decode(r) for r in self.db.query(sql, params)]

    def unacknowledged_alarms(self) -> list[dict[str, Any]]:
        """Alarm screenings no guard has acknowledged yet, oldest first (what a restarted window shows)."""
        sql = (
            "SELECT * FROM screenings s WHERE s.level IN (?, ?) AND NOT EXISTS "
            "(SELECT 1 FROM acknowledgements a WHERE a.screening_id = s.id) ORDER BY s.id"
        )
        with self._faults("reading alarms"):
            return [_decode(r) for r in self.db.query(sql, list(ALARM_LEVELS))]

    def acknowledgements(self, screening_id: int | None = None) -> list[dict[str, Any]]:
        """Acknowledgements, oldest first, of one screening or all."""
        sql, params = "SELECT * FROM acknowledgements", []
        if screening_id is not None:
            sql, params = sql + " WHERE screening_id = ?", [screening_id]
        with self._faults("reading acknowledgements"):
            return list(self.db.query(sql + " ORDER BY id", params))

    def system_events(self) -> list[dict[str, Any]]:
        with self._faults("reading system events"):
            return list(self.db.query("SELECT * FROM system_events ORDER BY id"))

    def last_system_event(self, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        """The newest system event of one of ``kinds`` (the last blackbody verification, say), or None."""
        marks = ", ".join("?" for _ in kinds)
        with self._faults("reading system events"):
            rows = list(self.db.query(
                f"SELECT * FROM system_events WHERE kind IN ({marks}) ORDER BY id DESC LIMIT 1", list(kinds)))
        return rows[0] if rows else None

    def snapshots(self, screening_id: int) -> list[dict[str, Any]]:
        """A screening's snapshot rows; ``file`` is the full path (``path`` is relative to the directory)."""
        with self._faults("reading snapshots"):
            rows = list(self.db.query("SELECT * FROM snapshots WHERE screening_id = ? ORDER BY id", [screening_id]))
        for row in rows:
            row["file"] = None if self.snapshots_dir is None else self.snapshots_dir / row["path"]
        return rows

    def delete_snapshots(self, ids: list[int]) -> list[Path]:
        """Delete snapshot rows (retention only) in one transaction; return their files for the caller to unlink.

        Rows go first and files after: a crash in between leaves files without rows, which retention
        finds by their names and removes on its next run, never a row pointing at a file that was never
        meant to go. Unknown ids are skipped. A store opened without ``snapshots_dir`` returns no files.
        """
        wanted = sorted({int(i) for i in ids})
        names: list[str] = []
        with self._faults("deleting snapshots"), self._transaction() as db:
            for start in range(0, len(wanted), 500):  # well under SQLite's limit on bound parameters
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                names.extend(r[0] for r in db.execute(f"SELECT path FROM snapshots WHERE id IN ({marks})", chunk))
                db.execute(f"DELETE FROM snapshots WHERE id IN ({marks})", chunk)
        return [] if self.snapshots_dir is None else [self.snapshots_dir / name for name in names]

    # ------------------------------------------------------------------ audit
    def chain_heads(self) -> dict[str, list]:
        """Each chained table's newest row as ``[id, row_hash]`` (``[0, anchor or GENESIS]`` when empty)."""
        heads: dict[str, list] = {}
        with self._faults("reading the chain heads"):
            for table in CHAINED_TABLES:
                last = self.db.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
                heads[table] = [int(last[0]), str(last[1])] if last else [0, GENESIS]
        return heads

    def verify_chains(self) -> list[ChainBreak]:
        """The first break of every chained table (empty when the whole log holds).

        Each table is checked from its retention anchor (or the start) to its end, and against the
        newest head any export recorded for it, so rows deleted from the end since an export show too.
        """
        breaks = []
        with self._faults("auditing the log"):
            anchors = {r["table_name"]: (int(r["last_id"]), str(r["last_hash"]))
                       for r in self.db.query("SELECT * FROM chain_anchors")}
            recorded: dict[str, tuple[int, str]] = {}
            for export in self.db.query("SELECT chain_heads FROM exports ORDER BY id"):
                try:
                    heads = json.loads(export["chain_heads"])
                except ValueError:
                    continue  # the exports chain itself reports the edit
                for table, (head_id, head_hash) in heads.items():
                    if head_id and (table not in recorded or head_id > recorded[table][0]):
                        recorded[table] = (int(head_id), str(head_hash))
            for table in CHAINED_TABLES:
                rows = self.db.query(f"SELECT * FROM {table} ORDER BY id")
                found = verify_chain(table, rows, anchors.get(table), recorded.get(table))
                if found is not None:
                    breaks.append(found)
        return breaks

    def record_export(self, row: Mapping[str, Any]) -> int:
        """Log one export (who, when, filters, format, rows, images or not, the file's sha256); chained.

        The current chain heads are recorded with it: they pin the log as the auditor saw it.
        """
        with self._faults("logging an export"), self._transaction() as db:
            full = dict(row)
            full.setdefault("wall_time", utc_iso(self._clock()))
            full["chain_heads"] = json.dumps(self.chain_heads(), sort_keys=True)
            return self._insert_chained(db, "exports", full)

    def exports(self) -> list[dict[str, Any]]:
        with self._faults("reading exports"):
            return list(self.db.query("SELECT * FROM exports ORDER BY id"))

    def purge_prefix(self, table: str, through_id: int) -> int:
        """Delete a chained table's rows up to ``through_id`` (retention only) and anchor the chain there.

        Only the oldest rows may go, so the chain stays verifiable from the anchor: the last deleted
        row's id and hash. Returns how many rows were deleted. Callers delete dependent rows
        (acknowledgements, snapshots) first.
        """
        if table not in CHAINED_TABLES:
            raise ValueError(f"purge_prefix: expected one of {CHAINED_TABLES}, got {table!r}")
        with self._faults(f"purging {table}"), self._transaction() as db:
            last = db.execute(f"SELECT id, row_hash FROM {table} WHERE id <= ? ORDER BY id DESC LIMIT 1",
                              [through_id]).fetchone()
            if last is None:
                return 0
            count = db.execute(f"DELETE FROM {table} WHERE id <= ?", [int(last[0])]).rowcount
            db["chain_anchors"].upsert({"table_name": table, "last_id": int(last[0]), "last_hash": str(last[1]),
                                        "wall_time": utc_iso(self._clock())}, pk="table_name")
            return int(count)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
