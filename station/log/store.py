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
* **Audits change no byte.** :meth:`EventStore.open_read_only` is how the auditors' checks open the
  log: a read-only connection (``mode=ro``; ``immutable=1`` for a WAL file with no ``-wal`` beside it,
  so SQLite creates no ``-wal``/``-shm`` next to the evidence), no WAL switch, no migration on disk (a
  log from an older station is copied into memory and upgraded there), and every write refused.

Snapshot files
--------------
``<wall time>-<screening id>-<kind>.png`` in ``snapshots_dir`` (mode 0700, files 0600), with the
file's sha256 in the ``snapshots`` table and, since ``m005``, in the screening's own chained row
(``snapshot_sha256``), so an audit can tell a file was not altered and a row was not deleted
(:meth:`EventStore.verify_snapshots`, :func:`station.log.chain.check_screening_snapshots`). ``visible`` is the
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
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np
from sqlite_utils import Database, Migrations

from station.errors import StationError, StorageUnavailable
from station.log.chain import (
    CHAINED_TABLES,
    GENESIS,
    MIN_RECORDS_DAYS,
    PURGEABLE_TABLES,
    VOUCHING_KINDS,
    ChainBreak,
    check_screening_snapshots,
    log_anchors,
    row_hash,
    snapshot_name,
    verify_chain,
    verify_retention,
)
from station.types import ALARM_LEVELS, LEVELS, ScreeningDecision, SystemEvent, check_action

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
    """Hash chains on every evidence table (see :mod:`station.log.chain`), the exports log, retention anchors.

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


@MIGRATIONS()
def m005_evidence(db: Database) -> None:
    """Alarm snapshots recorded in their screening's chained row; the retention log that vouches for anchors.

    ``screenings.snapshot_sha256`` is null in older rows, so their hashes stay as written
    (:func:`station.log.chain.canonical` leaves nulls out). ``retention_log`` is the chain of anchors (see
    :mod:`station.log.chain`). Anchors an older station's retention set are adopted as they are, in a first
    ``adopted`` row vouched for by a ``retention_log_adopted`` system event: what was done to them before
    this upgrade cannot be known, and the event says when protection began.
    """
    db["screenings"].add_column("snapshot_sha256", str)
    db["retention_log"].create(
        {
            "id": int,
            "kind": str,  # "purge", or "adopted" for the anchors found at this upgrade
            "wall_time": str,  # when the purge ran
            "images_cutoff": str,  # snapshots of screenings before this went (null: no images purged)
            "records_cutoff": str,  # records before this went (as far as the chains allowed)
            "images_horizon": str,  # the latest images cutoff of any purge so far: older images may be gone
            "anchors": str,  # JSON {table: [last id, its row_hash, its wall_time]}: every anchor after it
            "prev_hash": str,
            "row_hash": str,
        },
        pk="id",
        not_null={"kind", "wall_time", "anchors"},
    )
    found = list(db.query("SELECT * FROM chain_anchors ORDER BY table_name"))
    if not found:
        return
    now = utc_iso(datetime.now(UTC))
    anchors = {r["table_name"]: [int(r["last_id"]), str(r["last_hash"]), None] for r in found}
    log_id, log_hash = _append_chained(db, "retention_log", {
        "kind": "adopted", "wall_time": now, "anchors": _compact(anchors)})
    _append_chained(db, "system_events", {
        "kind": "retention_log_adopted", "t": 0.0, "wall_time": now,
        "detail": _compact({"retention_log": [log_id, log_hash], "through": {t: a[0] for t, a in anchors.items()}}),
    })


@MIGRATIONS()
def m006_uncertainty(db: Database) -> None:
    """Each decision's expanded uncertainty (k=2, °C) of its body temperature (null before it was logged,
    and for a retry); older rows keep their hashes, as nulls stay out of the chain (station.log.chain)."""
    db["screenings"].add_column("u95_c", float)


@MIGRATIONS()
def m007_outbox(db: Database) -> None:
    """The fleet's outbox: every published row, written in the same transaction as the row itself.

    ``outbox`` holds each row of :data:`OUTBOX_TABLES` as it travels to the fleet (its canonical JSON, id and
    hashes included) until the fleet's ingester says it holds it (a high-water mark); ``outbox_cursor`` is
    the highest row id of each table ever put in the outbox, so rows logged while the station ran without
    the fleet are queued when it next runs with it. Only a store opened with ``outbox=True`` fills them.
    """
    db["outbox"].create(
        {"id": int, "table_name": str, "row_id": int, "row_json": str},
        pk="id",
        not_null={"table_name", "row_id", "row_json"},
    )
    db["outbox"].create_index(["table_name", "row_id"])
    db["outbox_cursor"].create({"table_name": str, "through_id": int}, pk="table_name", not_null={"through_id"})


# ---------------------------------------------------------------------- helpers
def _compact(value: Any) -> str:
    """JSON as the log keeps it in text columns: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _append_chained(db: Database, table: str, row: Mapping[str, Any], *, outbox: bool = False) -> tuple[int, str]:
    """Insert a row after the table's last one (or its anchor), with its id and hashes; ``(id, row_hash)``.

    The caller holds the write transaction, so nothing can be inserted between the read and the insert.
    With ``outbox`` (a store publishing to the fleet), a row of :data:`OUTBOX_TABLES` also goes into the
    outbox, in the same transaction: it is published if and only if it is logged.
    """
    last = db.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    if last is None:
        anchor = db.execute("SELECT last_id, last_hash FROM chain_anchors WHERE table_name = ?", [table]).fetchone()
        last = anchor if anchor is not None else (0, GENESIS)
    full = {"id": int(last[0]) + 1, **row}
    full["prev_hash"] = str(last[1])
    full["row_hash"] = row_hash(full["prev_hash"], full)
    db[table].insert(full)
    if outbox and table in OUTBOX_TABLES:
        _enqueue(db, table, [full])
    return int(full["id"]), str(full["row_hash"])


#: The chained tables a station publishes to the fleet (``retention_log`` stays local); the same as
#: :data:`station.fleet.protocol.PUBLISHED_TABLES`, which this layer may not import (a test keeps them equal).
OUTBOX_TABLES: tuple[str, ...] = ("screenings", "acknowledgements", "system_events", "exports")


def _outbox_json(row: Mapping[str, Any]) -> str:
    """A row as the outbox keeps it: every column (nulls too), sorted keys, no spaces, no NaN."""
    return json.dumps(dict(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _enqueue(db: Database, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Put ``rows`` (of one table, in id order, inside the caller's transaction) in the outbox."""
    if not rows:
        return
    db.conn.executemany("INSERT INTO outbox (table_name, row_id, row_json) VALUES (?, ?, ?)",
                        [(table, int(r["id"]), _outbox_json(r)) for r in rows])
    db.execute("INSERT INTO outbox_cursor (table_name, through_id) VALUES (?, ?) ON CONFLICT (table_name) "
               "DO UPDATE SET through_id = MAX(through_id, excluded.through_id)", [table, int(rows[-1]["id"])])


def _enqueue_missed(db: Database) -> int:
    """Queue every published row the outbox never had (logged while the fleet was off); how many.

    Inside the caller's write transaction. A table with no cursor yet starts from its first row.
    """
    queued = 0
    for table in OUTBOX_TABLES:
        found = db.execute("SELECT through_id FROM outbox_cursor WHERE table_name = ?", [table]).fetchone()
        after = 0 if found is None else int(found[0])
        while True:
            rows = list(db.query(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT 1000", [after]))
            if not rows:
                break
            _enqueue(db, table, rows)
            queued += len(rows)
            after = int(rows[-1]["id"])
    return queued


def _read_only_uri(path: Path) -> str:
    """The SQLite URI that reads ``path`` without writing a byte beside it or in it.

    ``mode=ro`` is enough for a rollback-journal file. A WAL file needs its ``-shm`` index: read with
    ``mode=ro`` while nobody has it open, SQLite would create ``-wal`` and ``-shm`` beside the evidence
    and, being read-only, leave them there. When there is no ``-wal`` file, every committed row is in
    the main file, so ``immutable=1`` reads it as it is. With a ``-wal`` present (the station is
    running, or stopped without a checkpoint) its rows count, so it is read through ``mode=ro``.
    """
    with open(path, "rb") as handle:
        header = handle.read(20)
    wal = len(header) == 20 and header[18] == 2 and header[19] == 2  # file format versions: 2 is WAL
    quoted = urllib.parse.quote(str(path.resolve()))
    if wal and not Path(f"{path}-wal").exists():
        return f"file:{quoted}?mode=ro&immutable=1"
    return f"file:{quoted}?mode=ro"


def _sha256_file(path: Path) -> str | None:
    """The file's sha256, or None when it is not there (or not a file)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return digest.hexdigest()


def utc_iso(moment: datetime) -> str:
    """``2026-11-23T10:00:00.123Z``: fixed width, so comparing the text compares the times."""
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: Every table of the store's schema (``_sqlite_migrations`` aside): the names a query may put in its SQL.
STORE_TABLES: tuple[str, ...] = (
    "screenings", "system_events", "acknowledgements", "snapshots", "exports", "chain_anchors", "retention_log",
    "outbox", "outbox_cursor")

_ACKED = "EXISTS (SELECT 1 FROM acknowledgements a WHERE a.screening_id = s.id)"


def _check_table(table: str, allowed: Sequence[str], caller: str) -> str:
    """``table`` when it is one of ``allowed``; table names go into SQL text, so nothing else may."""
    if table not in allowed:
        raise ValueError(f"{caller}: expected a table of {tuple(allowed)}, got {table!r}")
    return table


def _export_where(
    since: datetime, until: datetime, levels: Sequence[str], acknowledged: bool | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (on ``screenings s``) and parameters of an auditor's export filter."""
    where = ["s.wall_time >= ?", "s.wall_time < ?"]
    params: list[Any] = [utc_iso(since), utc_iso(until)]
    if levels:
        where.append(f"s.level IN ({', '.join('?' for _ in levels)})")
        params.extend(levels)
    if acknowledged is not None:
        where.append(_ACKED if acknowledged else f"NOT {_ACKED}")
    return " AND ".join(where), params


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


# ---------------------------------------------------------------------- audit results
@dataclass
class SnapshotAudit:
    """What :meth:`EventStore.verify_snapshots` found: the breaks, and what it checked."""

    breaks: list[ChainBreak] = field(default_factory=list)
    rows: int = 0  # snapshot rows checked
    files: int = 0  # files hashed and found as the log says
    purged: int = 0  # recorded images absent because retention purged them


@dataclass(frozen=True)
class RetentionWrite:
    """What :meth:`EventStore.apply_retention` committed; ``files`` are for the caller to unlink now."""

    files: list[Path]
    counts: dict[str, int]
    event: SystemEvent
    event_id: int
    log_id: int


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
    outbox
        This station publishes to the fleet: every row of :data:`OUTBOX_TABLES` is also put in the
        ``outbox`` table in its own transaction, and rows logged while the fleet was off are queued at
        open (see :mod:`station.fleet.publisher`, which sends and prunes them).

    Auditors open the log with :meth:`open_read_only` instead.
    """

    #: True when opened by :meth:`open_read_only`: every write is refused.
    read_only: bool = False
    #: Migrations a read-only store applied to its in-memory copy (the file predates them).
    upgraded_in_memory: tuple[str, ...] = ()
    #: True when chained rows are also put in the fleet's outbox (never for a read-only store).
    outbox: bool = False

    def __init__(
        self, path: Path, *, snapshots_dir: Path | None = None, clock: Callable[[], datetime] = _now,
        outbox: bool = False,
    ) -> None:
        self.path = Path(path)
        self.snapshots_dir = None if snapshots_dir is None else Path(snapshots_dir)
        self._clock = clock
        self.outbox = bool(outbox)
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

    @classmethod
    def open_read_only(
        cls, path: Path, *, snapshots_dir: Path | None = None, clock: Callable[[], datetime] = _now
    ) -> EventStore:
        """Open a log for reading only, changing no byte of it and creating nothing beside it.

        An audit must be possible on the evidence as it was handed over: a read-only copy, a file on
        write-protected media, a log in rollback-journal mode (which opening for writing would switch
        to WAL). So the file is opened through :func:`_read_only_uri`, ``PRAGMA query_only`` is set, and
        :meth:`_transaction` refuses every write. A log written by an older station is copied into
        memory and migrated there (``upgraded_in_memory`` names the steps), so it is audited as the
        station would see it after an upgrade while the file stays as it is. ``snapshots_dir`` is only
        read: it is neither created nor checked for its mode.

        Raises
        ------
        StationError
            The file is missing, is not SQLite, or was written by a newer station; one line naming it.
        """
        store = cls.__new__(cls)
        store.path = Path(path)
        store.snapshots_dir = None if snapshots_dir is None else Path(snapshots_dir)
        store._clock = clock
        store._db = None
        store.read_only = True
        if not store.path.is_file():
            raise StationError(f"event store {store.path}: no such file")
        try:
            conn = sqlite3.connect(_read_only_uri(store.path), uri=True)
            store._db = Database(conn, execute_plugins=False)
            store.db.execute("PRAGMA query_only = ON")
            store._check_known_migrations()
            pending = MIGRATIONS.pending(store.db)
            if pending:
                memory = sqlite3.connect(":memory:")
                conn.backup(memory)
                conn.close()
                store._db = Database(memory, execute_plugins=False)
                MIGRATIONS.apply(store.db)
                store.db.execute("PRAGMA query_only = ON")
                store.upgraded_in_memory = tuple(m.name for m in pending)
        except (sqlite3.Error, OSError) as exc:
            store.close()
            text = store._describe(exc) if isinstance(exc, sqlite3.Error) else _one_line(exc)
            raise StationError(f"event store {store.path}: {text}") from exc
        except StationError:
            store.close()
            raise
        return store

    def _check_known_migrations(self) -> None:
        """Refuse a log that has migrations this code does not know: a newer station wrote it."""
        # Everything registered is pending on an empty database: the public way to list the set.
        known = {m.name for m in MIGRATIONS.pending(Database(memory=True, execute_plugins=False))}
        unknown = [m.name for m in MIGRATIONS.applied(self.db) if m.name not in known]
        if unknown:
            raise StationError(
                f"event store {self.path}: written by a newer station (unknown migration {unknown[0]}); "
                "upgrade the station to open it"
            )

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
        self._check_known_migrations()
        MIGRATIONS.apply(db)
        if self.outbox:
            with self._transaction() as tx:
                _enqueue_missed(tx)

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
        A store opened by :meth:`open_read_only` refuses here, before SQLite is asked.
        """
        if self.read_only:
            raise StationError(f"event store {self.path}: opened read-only for an audit: nothing can be written")
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
        """Insert a row after the table's last one, with its id and hashes (and in the outbox); return the id."""
        return _append_chained(db, table, row, outbox=self.outbox)[0]

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
        digests = {kind: hashlib.sha256(png).hexdigest() for kind, png in encoded.items()}
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
            "u95_c": None if decision.u95_c is None else float(decision.u95_c),
            # The images' sha256 in the chained row itself: a snapshot row deleted or a file swapped shows
            # (station.log.chain). "{}" for an alarm kept without images, so none can be slipped in later.
            "snapshot_sha256": _compact(digests) if alarm else None,
        }
        written: list[Path] = []
        try:
            with self._faults("logging a screening"), self._transaction() as db:
                if alarm:
                    row["alarm_id"] = db.execute("SELECT COALESCE(MAX(alarm_id), 0) + 1 FROM screenings").fetchone()[0]
                screening_id = self._insert_chained(db, "screenings", row)
                for kind, png in encoded.items():
                    name = snapshot_name(wall, screening_id, kind)
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
                            "sha256": digests[kind],
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

    # ------------------------------------------------------------------ queries for the log's other modules
    # Export, retention and the audit command ask the log these questions; the SQL stays here, next to
    # the schema and the migrations it depends on, so no module outside the store touches the database.

    def count_screenings_for_export(
        self, since: datetime, until: datetime, *, levels: Sequence[str] = (), acknowledged: bool | None = None
    ) -> int:
        """How many screenings an export of this filter would carry (shown before the export is made).

        Parameters
        ----------
        since, until
            The period, ``since <= wall_time < until``.
        levels
            Only these levels (empty: every level). Not checked against the known levels: a filter
            naming a level the log never wrote simply matches nothing.
        acknowledged
            True: only screenings some guard acknowledged; False: only those none did; None: both.

        Returns
        -------
        int
            The count :meth:`screenings_for_export` would return rows for, from the same WHERE clause.
        """
        where, params = _export_where(since, until, levels, acknowledged)
        with self._faults("counting screenings for an export"):
            return int(self.db.execute(f"SELECT COUNT(*) FROM screenings s WHERE {where}", params).fetchone()[0])

    def screenings_for_export(
        self, since: datetime, until: datetime, *, levels: Sequence[str] = (), acknowledged: bool | None = None
    ) -> list[dict[str, Any]]:
        """The screenings an auditor's export carries, oldest first, each with ``acknowledged`` (0/1).

        Parameters are those of :meth:`count_screenings_for_export`. Rows are as stored (``quality`` is
        the JSON text, not decoded): the export writes the log's own values and chooses itself which
        columns to leave out. ``acknowledged`` is computed here so a de-identified export can still say
        whether a guard acted on an alarm.
        """
        where, params = _export_where(since, until, levels, acknowledged)
        sql = f"SELECT s.*, {_ACKED} AS acknowledged FROM screenings s WHERE {where} ORDER BY s.id"
        with self._faults("reading screenings for an export"):
            return [dict(r) for r in self.db.query(sql, params)]

    def acknowledgements_for_export(self, screening_ids: Sequence[int]) -> list[dict[str, Any]]:
        """The acknowledgements of these screenings, as stored: what the guards did about exported alarms.

        Parameters
        ----------
        screening_ids
            The exported screenings' ids, in the export's order (ascending); read in chunks of 900,
            under SQLite's limit on bound parameters, each chunk oldest acknowledgement first.
        """
        return self._rows_of_screenings("acknowledgements", screening_ids, "reading acknowledgements for an export")

    def snapshots_for_export(self, screening_ids: Sequence[int]) -> list[dict[str, Any]]:
        """The snapshot rows of these screenings, as stored (``path`` relative, no ``file``), for an export
        with images: the export copies and re-hashes each file itself.

        ``screening_ids`` are read as by :meth:`acknowledgements_for_export`.
        """
        return self._rows_of_screenings("snapshots", screening_ids, "reading snapshots for an export")

    def _rows_of_screenings(self, table: str, screening_ids: Sequence[int], doing: str) -> list[dict[str, Any]]:
        ids = list(screening_ids)
        out: list[dict[str, Any]] = []
        with self._faults(doing):
            for k in range(0, len(ids), 900):  # SQLite's parameter limit
                chunk = ids[k : k + 900]
                sql = f"SELECT * FROM {table} WHERE screening_id IN ({', '.join('?' for _ in chunk)}) ORDER BY id"
                out.extend(dict(r) for r in self.db.query(sql, chunk))
        return out

    def system_events_for_export(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        """The station's own events with ``since <= wall_time < until``, oldest first: an export of a period
        carries what happened to the station in it (camera lost, calibration, purges) beside the decisions."""
        sql = "SELECT * FROM system_events WHERE wall_time >= ? AND wall_time < ? ORDER BY id"
        with self._faults("reading system events for an export"):
            return [dict(r) for r in self.db.query(sql, [utc_iso(since), utc_iso(until)])]

    @contextmanager
    def consistent_read(self, doing: str = "reading the log") -> Iterator[None]:
        """Run several reads in one read transaction, so they all see the same log; write nothing.

        Retention plans a purge from several questions (where each chain's old prefix ends, which
        acknowledgements reference which screenings, which snapshots are due): in WAL mode each of them
        alone would see whatever the station committed just before it, and the plan could disagree with
        itself. Inside this block they all read one snapshot of the log. The transaction is always rolled
        back, which also guarantees the block wrote nothing; it works on a store opened read-only.

        Parameters
        ----------
        doing
            What the reads are for, in the one-line error should SQLite fail to begin or end it.
        """
        conn = self.db.conn
        try:
            with self._faults(doing):
                conn.execute("BEGIN")
            yield
        finally:
            if conn.in_transaction:
                with self._faults(doing):
                    conn.execute("ROLLBACK")

    def prefix_before(self, table: str, cutoff: datetime) -> int:
        """The last id of a purgeable table's oldest rows, those before its first row at or after ``cutoff``.

        Retention may only delete a prefix of a hash chain, so a row logged late with an old time waits
        for the rows before it. Every id when no row is that young (the table's highest, 0 when empty).

        Parameters
        ----------
        table
            One of :data:`~station.log.chain.PURGEABLE_TABLES`.
        cutoff
            Rows with ``wall_time`` before this are old enough to go.
        """
        _check_table(table, PURGEABLE_TABLES, "prefix_before")
        with self._faults(f"reading {table} for retention"):
            first_young = self.db.execute(f"SELECT MIN(id) FROM {table} WHERE wall_time >= ?",
                                          [utc_iso(cutoff)]).fetchone()[0]
            if first_young is not None:
                return int(first_young) - 1
            return int(self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])

    def prefix_span(self, table: str, through_id: int) -> tuple[int, str | None, str | None]:
        """What the rows of a purgeable table up to ``through_id`` hold: ``(count, oldest, newest wall_time)``.

        How retention tells the operator what a purge would delete (``station purge --dry-run``) and
        logs it; ``(0, None, None)`` when there are none.
        """
        _check_table(table, PURGEABLE_TABLES, "prefix_span")
        with self._faults(f"reading {table} for retention"):
            count, oldest, newest = self.db.execute(
                f"SELECT COUNT(*), MIN(wall_time), MAX(wall_time) FROM {table} WHERE id <= ?",
                [int(through_id)]).fetchone()
        return int(count), oldest, newest

    def acknowledgement_links(self) -> list[tuple[int, int]]:
        """Every acknowledgement as ``(id, screening id)``, in id order.

        Retention needs only these links to keep acknowledgements and their screenings together
        (:func:`station.log.retention.consistent_prefixes`); nothing a guard wrote is read.
        """
        with self._faults("reading acknowledgements for retention"):
            return [(int(a), int(s)) for a, s in
                    self.db.execute("SELECT id, screening_id FROM acknowledgements ORDER BY id")]

    def snapshots_due(self, images_cutoff: datetime, screenings_through: int) -> list[tuple[int, int, str, str, str]]:
        """The snapshots retention would delete, as ``(id, screening id, kind, path, screening wall_time)``.

        Those of screenings before ``images_cutoff`` (face crops go first) and of every screening up to
        ``screenings_through`` (a snapshot never outlives its screening row), in snapshot id order.
        """
        with self._faults("reading snapshots for retention"):
            rows = self.db.execute(
                "SELECT p.id, p.screening_id, p.kind, p.path, s.wall_time FROM snapshots p "
                "JOIN screenings s ON s.id = p.screening_id WHERE s.wall_time < ? OR s.id <= ? ORDER BY p.id",
                [utc_iso(images_cutoff), int(screenings_through)]).fetchall()
        return [(int(i), int(s), str(kind), str(path), str(wall)) for i, s, kind, path, wall in rows]

    def snapshot_paths(self) -> set[str]:
        """Every file name a snapshot row records (relative to ``snapshots_dir``).

        A file in the directory that no row names was left by an interrupted purge (rows go before
        files): retention finds such orphans by comparing the directory with this set.
        """
        with self._faults("reading snapshots"):
            return {str(r[0]) for r in self.db.execute("SELECT path FROM snapshots")}

    def row_counts(self, tables: Iterable[str]) -> dict[str, int]:
        """How many rows each table holds, ``{table: count}`` in the order given.

        ``audit verify`` shows them beside each table's verdict, so an auditor sees what was checked.

        Parameters
        ----------
        tables
            Tables of :data:`STORE_TABLES`; any other name is refused (it would go into the SQL text).
        """
        names = [_check_table(t, STORE_TABLES, "row_counts") for t in tables]
        with self._faults("counting rows"):
            return {t: int(self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in names}

    def integrity_check(self) -> str:
        """SQLite's own verdict on the file (``PRAGMA integrity_check``): ``"ok"``, or its first problem.

        The hash chains prove rows were not edited; this catches damage below them (a torn page, a
        broken index) that an audit must report too. It only reads, so a read-only store can run it.
        """
        with self._faults("checking the database's integrity"):
            return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    def is_logged_screening(self, wall_time: datetime, track_id: int, t_decided: float, recording: str) -> bool:
        """Whether a screening with these values is in the log already.

        A row held in memory while the disk could not be written may have reached the log just before
        a crash, or in an earlier replay: the guarded log asks before writing it again.

        Raises
        ------
        StorageUnavailable
            SQLite failed: the log cannot be read now, so the row stays held.
        """
        sql = ("SELECT 1 FROM screenings WHERE wall_time = ? AND track_id = ? AND t_decided = ? "
               "AND recording = ? LIMIT 1")
        return self._holds(sql, [utc_iso(wall_time), int(track_id), float(t_decided), str(recording)])

    def is_logged_system_event(self, wall_time: datetime, kind: str, t: float, detail: str) -> bool:
        """Whether a system event with these values is in the log already (see :meth:`is_logged_screening`)."""
        sql = "SELECT 1 FROM system_events WHERE wall_time = ? AND kind = ? AND t = ? AND detail = ? LIMIT 1"
        return self._holds(sql, [utc_iso(wall_time), kind, float(t), detail])

    def _holds(self, sql: str, params: list[Any]) -> bool:
        try:
            return self.db.execute(sql, params).fetchone() is not None
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"event store {self.path}: looking for held rows: {exc}") from exc

    # ------------------------------------------------------------------ audit
    def chain_heads(self) -> dict[str, list]:
        """Each chained table's newest row as ``[id, row_hash]`` (``[0, anchor or GENESIS]`` when empty)."""
        heads: dict[str, list] = {}
        with self._faults("reading the chain heads"):
            for table in CHAINED_TABLES:
                last = self.db.execute(f"SELECT id, row_hash FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
                heads[table] = [int(last[0]), str(last[1])] if last else [0, GENESIS]
        return heads

    def chain_anchors(self) -> dict[str, tuple[int, str]]:
        """``{table: (last purged id, its row_hash)}`` of every table retention has shortened."""
        with self._faults("reading the chain anchors"):
            return {str(r[0]): (int(r[1]), str(r[2])) for r in self.db.execute(
                "SELECT table_name, last_id, last_hash FROM chain_anchors ORDER BY table_name")}

    def retention_log(self) -> list[dict[str, Any]]:
        """Every purge retention logged (and the anchors adopted at the upgrade), oldest first."""
        with self._faults("reading the retention log"):
            return list(self.db.query("SELECT * FROM retention_log ORDER BY id"))

    def images_horizon(self) -> str | None:
        """The latest images cutoff any purge applied (``wall_time`` text), or None: no image was ever purged.

        A screening older than this may have lost its snapshots to retention; a younger one may not.
        """
        with self._faults("reading the retention log"):
            found = self.db.execute("SELECT images_horizon FROM retention_log ORDER BY id DESC LIMIT 1").fetchone()
        return None if found is None or found[0] is None else str(found[0])

    def verify_chains(self) -> list[ChainBreak]:
        """Every break in the log's chains and anchors (empty when the whole log holds).

        Each chained table is checked from its retention anchor (or the start) to its end, and against
        the newest head any export recorded for it, so rows deleted from the end since an export show
        too. The anchors are the ones the retention log records, and that log must be vouched for by the
        purge events (:func:`station.log.chain.verify_retention`): ``chain_anchors`` alone proves nothing.
        At most one break per chained table (the first), then any of the retention log and anchors.
        Snapshots are checked by :meth:`verify_snapshots`.
        """
        breaks = []
        with self._faults("auditing the log"):
            log_rows = list(self.db.query("SELECT * FROM retention_log ORDER BY id"))
            marks = ", ".join("?" for _ in VOUCHING_KINDS)
            vouchers = [(int(r[0]), str(r[1])) for r in self.db.execute(
                f"SELECT id, detail FROM system_events WHERE kind IN ({marks}) ORDER BY id", list(VOUCHING_KINDS))]
            anchors = {t: (a[0], a[1]) for t, a in log_anchors(log_rows[-1] if log_rows else None).items()}
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
                anchor = anchors.get(table) if table in PURGEABLE_TABLES else None
                found = verify_chain(table, rows, anchor, recorded.get(table))
                if found is not None:
                    breaks.append(found)
            breaks += verify_retention(log_rows, vouchers, self.db.query("SELECT * FROM chain_anchors"))
        return breaks

    def verify_snapshots(self, screening_ids: Iterable[int] | None = None, *, files: bool = True) -> SnapshotAudit:
        """Whether the alarm snapshots are the images the log recorded: rows, and files when ``files``.

        Parameters
        ----------
        screening_ids
            Only these screenings' snapshots (an export's); None: every one, and snapshot rows of
            screenings that are not in the log.
        files
            Also hash every file in ``snapshots_dir`` against its row (a store opened without a
            directory has nothing to hash, and then every row counts as a missing file).

        Each screening's rows are compared with the sha256s its chained row recorded
        (:func:`station.log.chain.check_screening_snapshots`); images absent because retention purged them
        are counted in ``purged``, not as breaks. A missing or altered file is a break: an auditor must
        never be shown, or handed, a face the log did not record.
        """
        audit = SnapshotAudit()
        horizon = self.images_horizon()
        with self._faults("auditing the snapshots"):
            if screening_ids is None:
                marks = ", ".join("?" for _ in ALARM_LEVELS)
                screenings = list(self.db.query(
                    "SELECT id, level, wall_time, snapshot_sha256 FROM screenings WHERE level IN "
                    f"({marks}) OR snapshot_sha256 IS NOT NULL OR id IN (SELECT screening_id FROM snapshots) "
                    "ORDER BY id", list(ALARM_LEVELS)))
                snaps = list(self.db.query("SELECT * FROM snapshots ORDER BY id"))
            else:
                wanted = sorted({int(i) for i in screening_ids})
                screenings, snaps = [], []
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    marks = ", ".join("?" for _ in chunk)
                    screenings += self.db.query("SELECT id, level, wall_time, snapshot_sha256 FROM screenings "
                                                f"WHERE id IN ({marks}) ORDER BY id", chunk)
                    snaps += self.db.query(f"SELECT * FROM snapshots WHERE screening_id IN ({marks}) ORDER BY id",
                                           chunk)
        by_screening: dict[int, list[dict[str, Any]]] = {}
        for snap in snaps:
            by_screening.setdefault(int(snap["screening_id"]), []).append(snap)
        known = {int(s["id"]) for s in screenings}
        for sid in sorted(set(by_screening) - known):
            audit.breaks += [ChainBreak("snapshots", int(r["id"]), f"belongs to screening {sid}, which is not in "
                                        "the log: the row was inserted") for r in by_screening[sid]]
        for screening in screenings:
            found, purged = check_screening_snapshots(screening, by_screening.get(int(screening["id"]), []), horizon)
            audit.breaks += found
            audit.purged += purged
        audit.rows = len(snaps)
        if files:
            for snap in snaps:
                problem = self._snapshot_file_problem(snap)
                if problem is None:
                    audit.files += 1
                else:
                    audit.breaks.append(ChainBreak("snapshots", int(snap["id"]), problem))
        audit.breaks.sort(key=lambda b: (b.row_id is None, b.row_id or 0))
        return audit

    def _snapshot_file_problem(self, snap: Mapping[str, Any]) -> str | None:
        """Why a snapshot row's file is not the image it records, or None."""
        name = str(snap["path"])
        if self.snapshots_dir is None:
            return f"its file {name} cannot be checked: no snapshots directory"
        if Path(name).name != name:
            return f"names a file outside the snapshots directory ({name!r}): the row was edited"
        digest = _sha256_file(self.snapshots_dir / name)
        if digest is None:
            return f"its file {name} is missing: deleted, and retention did not purge it"
        if digest != snap["sha256"]:
            return (f"its file {name} was altered or replaced: its sha256 is {digest[:12]}..., the log recorded "
                    f"{str(snap['sha256'])[:12]}...")
        return None

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

    def apply_retention(
        self,
        *,
        snapshot_ids: Sequence[int],
        throughs: Mapping[str, int],
        images_cutoff: datetime | None,
        records_cutoff: datetime,
        wall_time: datetime,
        t: float,
        detail: Callable[[Mapping[str, int]], Mapping[str, Any]],
    ) -> RetentionWrite:
        """Delete what retention decided, anchor the chains, and log it: one transaction (retention only).

        Parameters
        ----------
        snapshot_ids
            Snapshot rows to delete; their files are returned for the caller to unlink after the commit
            (rows before files: a crash in between leaves files without rows, which retention finds by
            name, never a row whose image was deleted).
        throughs
            ``{table: last id}`` of the prefixes to delete, for the tables of
            :data:`~station.log.chain.PURGEABLE_TABLES` (0 or absent: none). Acknowledgements go before
            screenings, snapshots before both, as the foreign keys need.
        images_cutoff, records_cutoff
            The cutoffs applied (``images_cutoff`` None: no images were purged), recorded in the
            retention log so an audit can tell purged images from deleted ones and check the purge
            against the policy's minimums.
        wall_time, t
            When, on the wall clock and the station's timeline, for the ``retention_purge`` event.
        detail
            Given the counts deleted (``snapshot_rows`` and one per table), the event's detail; the
            store adds ``retention_log: [id, hash]``, the row this purge appended.

        Why one transaction: the anchors, the retention log row that records them and the event that
        vouches for it must land together, or an interrupted purge would look like a forged anchor.
        """
        ordered = [t_ for t_ in ("acknowledgements", "screenings", "system_events") if throughs.get(t_, 0) > 0]
        unknown = set(throughs) - set(PURGEABLE_TABLES)
        if unknown:
            raise ValueError(f"apply_retention: expected tables of {PURGEABLE_TABLES}, got {sorted(unknown)}")
        wanted = sorted({int(i) for i in snapshot_ids})
        names: list[str] = []
        counts: dict[str, int] = {}
        with self._faults("applying retention"), self._transaction() as db:
            for start in range(0, len(wanted), 500):  # well under SQLite's limit on bound parameters
                chunk = wanted[start:start + 500]
                marks = ", ".join("?" for _ in chunk)
                names.extend(r[0] for r in db.execute(f"SELECT path FROM snapshots WHERE id IN ({marks})", chunk))
                db.execute(f"DELETE FROM snapshots WHERE id IN ({marks})", chunk)
            counts["snapshot_rows"] = len(names)
            newest = db.execute("SELECT anchors, images_horizon FROM retention_log ORDER BY id DESC LIMIT 1").fetchone()
            anchors = {table: list(a) for table, a in log_anchors(
                None if newest is None else {"anchors": newest[0]}).items()}
            for table in PURGEABLE_TABLES:
                counts[table] = 0
            for table in ordered:
                last = db.execute(f"SELECT id, row_hash, wall_time FROM {table} WHERE id <= ? ORDER BY id DESC "
                                  "LIMIT 1", [int(throughs[table])]).fetchone()
                if last is None:
                    continue
                counts[table] = int(db.execute(f"DELETE FROM {table} WHERE id <= ?", [int(last[0])]).rowcount)
                anchors[table] = [int(last[0]), str(last[1]), str(last[2])]
                db["chain_anchors"].upsert({"table_name": table, "last_id": int(last[0]), "last_hash": str(last[1]),
                                            "wall_time": utc_iso(wall_time)}, pk="table_name")
            horizon = None if newest is None else newest[1]
            if images_cutoff is not None:
                horizon = max(filter(None, [horizon, utc_iso(images_cutoff)]))
            log_id, log_hash = _append_chained(db, "retention_log", {
                "kind": "purge", "wall_time": utc_iso(wall_time),
                "images_cutoff": None if images_cutoff is None else utc_iso(images_cutoff),
                "records_cutoff": utc_iso(records_cutoff), "images_horizon": horizon, "anchors": _compact(anchors)})
            event = SystemEvent("retention_purge", float(t), _compact({**detail(dict(counts)),
                                                                       "retention_log": [log_id, log_hash]}))
            event_id, _ = _append_chained(db, "system_events", {
                "kind": event.kind, "t": event.t, "wall_time": utc_iso(wall_time), "detail": event.detail},
                outbox=self.outbox)
        files = [] if self.snapshots_dir is None else [self.snapshots_dir / name for name in names]
        return RetentionWrite(files, counts, event, event_id, log_id)

    def purge_prefix(self, table: str, through_id: int) -> int:
        """Delete a chained table's rows up to ``through_id`` and anchor the chain there; how many went.

        Kept for callers of the earlier API; retention itself uses :meth:`apply_retention`, which this
        calls, so the anchor is logged and vouched for like any other. The purge is logged with a
        records cutoff :data:`~station.log.chain.MIN_RECORDS_DAYS` days ago: deleting younger rows this
        way is what no policy allows, and ``audit verify`` says so. Callers delete dependent rows
        (acknowledgements, snapshots) first.
        """
        if table not in PURGEABLE_TABLES:
            raise ValueError(f"purge_prefix: expected one of {PURGEABLE_TABLES}, got {table!r}")
        now = self._clock()
        written = self.apply_retention(
            snapshot_ids=(), throughs={table: int(through_id)}, images_cutoff=None,
            records_cutoff=now - timedelta(days=MIN_RECORDS_DAYS), wall_time=now, t=0.0,
            detail=lambda counts: {"through": {table: int(through_id)}, **counts})
        return written.counts[table]

    # ------------------------------------------------------------------ the fleet's outbox
    def outbox_rows(self, table: str, above_id: int = 0, limit: int = 500) -> list[tuple[int, str]]:
        """``(row_id, row_json)`` of ``table``'s outbox rows after ``above_id``, in id order, at most ``limit``.

        A row queued twice (never, but harmless) comes once.
        """
        _check_table(table, OUTBOX_TABLES, "outbox_rows")
        with self._faults("reading the outbox"):
            return [(int(r[0]), str(r[1])) for r in self.db.execute(
                "SELECT row_id, MIN(row_json) FROM outbox WHERE table_name = ? AND row_id > ? GROUP BY row_id "
                "ORDER BY row_id LIMIT ?", [table, int(above_id), int(limit)])]

    def outbox_count(self) -> int:
        """Rows waiting in the outbox for the fleet to confirm them."""
        with self._faults("reading the outbox"):
            return int(self.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def prune_outbox(self, table: str, through_id: int) -> int:
        """Delete ``table``'s outbox rows up to ``through_id`` (the fleet holds them); how many went."""
        _check_table(table, OUTBOX_TABLES, "prune_outbox")
        with self._faults("pruning the outbox"), self._transaction() as db:
            return int(db.execute("DELETE FROM outbox WHERE table_name = ? AND row_id <= ?",
                                  [table, int(through_id)]).rowcount)

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
