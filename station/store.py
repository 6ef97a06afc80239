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
from station.errors import StationError
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


# ---------------------------------------------------------------------- helpers
def utc_iso(moment: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``: fixed width, so comparing the text compares the times."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
            raise StationError(f"event store {self.path}: {self._describe(exc)}") from exc
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
            raise StationError(f"event store {self.path}: cannot create ({exc.strerror})") from exc
        os.fchmod(fd, 0o600)  # an empty file is an empty SQLite database; SQLite gives -wal/-shm its mode
        os.close(fd)

    def _open(self) -> None:
        db = self.db
        db.enable_wal()
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 5000")  # an export's checkpoint may hold the lock briefly
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
            raise StationError(f"snapshots directory {directory}: cannot create ({exc.strerror})") from exc
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
            raise StationError(f"event store {self.path}: {doing}: {self._describe(exc)}") from exc

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
        wall = utc_iso(self._clock())
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
        }
        written: list[Path] = []
        try:
            with self._faults("logging a screening"), self.db.atomic() as db:
                if alarm:
                    row["alarm_id"] = db.execute("SELECT COALESCE(MAX(alarm_id), 0) + 1 FROM screenings").fetchone()[0]
                screening_id = int(db["screenings"].insert(row).last_pk)
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

    def record_system_event(self, event: SystemEvent) -> int:
        """Log something about the station itself (camera lost, blackbody out of tolerance, stopped)."""
        row = {"kind": event.kind, "t": float(event.t), "wall_time": utc_iso(self._clock()), "detail": event.detail}
        with self._faults("logging a system event"), self.db.atomic() as db:
            return int(db["system_events"].insert(row).last_pk)

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
        with self._faults("logging an acknowledgement"), self.db.atomic() as db:
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
            return int(db["acknowledgements"].insert(row).last_pk)

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
