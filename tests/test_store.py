"""Event store on a real SQLite file: migrations, WAL, durability, round trips, snapshots, faults."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlite_utils

from station.errors import StationError
from station.log.store import MIGRATIONS, EventStore, read_thermal_snapshot
from station.types import ScreeningDecision, SystemEvent

START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
CALIBRATION = "entrance-1@2026-11-23T10:00:00Z"
MODEL = "ab" * 32


class Clock:
    """A wall clock that advances one minute per reading, so every row has its own time."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def decision(track_id: int = 1, level: str = "normal", body: float | None = 36.9, quality=()) -> ScreeningDecision:
    skin = None if body is None else round(body - 1.24, 2)
    u95 = None if body is None else 0.62
    return ScreeningDecision(track_id, 10.0 + track_id, 10.8 + track_id, skin, body, level, frozenset(quality),
                             u95_c=u95)


def record(store: EventStore, d: ScreeningDecision, snapshots=None) -> int:
    return store.record_screening(
        d, calibration_id=CALIBRATION, model_sha256=MODEL, blackbody_error_c=0.12, source="recordings/demo",
        snapshots=snapshots,
    )


def crops() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    thermal = (34.0 + rng.random((12, 10)) * 3).astype(np.float32)
    thermal[0, 0] = np.nan
    return {"visible": rng.integers(0, 255, (24, 20, 3), dtype=np.uint8), "thermal": thermal}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(db_path: Path, tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(db_path, snapshots_dir=tmp_path / "snapshots", clock=Clock()) as s:
        yield s


# ---------------------------------------------------------------------- opening and migrations


def test_new_database_is_private_in_wal_mode_and_migrated_once(db_path: Path) -> None:
    store = EventStore(db_path)
    assert mode(db_path) == 0o600
    assert store.db.journal_mode == "wal"
    record(store, decision())
    wal = Path(str(db_path) + "-wal")
    assert wal.exists() and mode(wal) == 0o600  # SQLite gives its side files the database's mode
    assert mode(Path(str(db_path) + "-shm")) == 0o600
    assert [m.name for m in MIGRATIONS.applied(store.db)] == ["m001_initial", "m002_hash_chains_and_exports",
                                                              "m003_body_model", "m004_site", "m005_evidence",
                                                              "m006_uncertainty", "m007_outbox"]
    assert {"screenings", "system_events", "acknowledgements", "snapshots"} <= set(store.db.table_names())
    store.close()
    store.close()  # idempotent


def test_reopening_is_idempotent_and_keeps_the_data(db_path: Path) -> None:
    with EventStore(db_path) as store:
        record(store, decision(1))
    with EventStore(db_path) as store:
        record(store, decision(2))
        rows = list(store.db.query("SELECT name FROM _sqlite_migrations"))
        assert rows == [{"name": "m001_initial"}, {"name": "m002_hash_chains_and_exports"},
                        {"name": "m003_body_model"}, {"name": "m004_site"}, {"name": "m005_evidence"},
                        {"name": "m006_uncertainty"}, {"name": "m007_outbox"}]
        assert [r["track_id"] for r in store.screenings()] == [1, 2]
        assert store.db.journal_mode == "wal"


def test_schema_has_no_column_for_names_or_identities(store: EventStore) -> None:
    columns = {c.name for t in store.db.tables if not t.name.startswith("_") for c in t.columns}
    assert not {"name", "person", "person_name", "face_id", "identity"} & columns


def test_written_screening_is_readable_by_another_connection_at_once(store: EventStore, db_path: Path) -> None:
    sid = record(store, decision(5, "fever", 38.4))
    other = sqlite3.connect(db_path)  # while the store stays open: committed, not merely buffered
    try:
        assert other.execute("SELECT track_id, level, body_c FROM screenings WHERE id = ?", [sid]).fetchone() == (
            5, "fever", 38.4,
        )
    finally:
        other.close()
    assert not store.db.conn.in_transaction
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_database_from_a_newer_station_is_refused(db_path: Path) -> None:
    EventStore(db_path).close()
    db = sqlite_utils.Database(db_path)
    db["_sqlite_migrations"].insert(
        {"migration_set": "station-events", "name": "m099_future", "applied_at": "2030-01-01 00:00:00+00:00"}
    )
    db.close()
    with pytest.raises(StationError) as info:
        EventStore(db_path)
    assert str(info.value) == (
        f"event store {db_path}: written by a newer station (unknown migration m099_future); "
        "upgrade the station to open it"
    )


# ---------------------------------------------------------------------- faults at open


def one_line(info: pytest.ExceptionInfo, path: Path) -> str:
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_not_sqlite_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 50)
    with pytest.raises(StationError) as info:
        EventStore(path)
    assert "not an SQLite database" in one_line(info, path)


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "events.db"
    with pytest.raises(StationError) as info:
        EventStore(path)
    assert one_line(info, path) == f"event store {path}: directory {path.parent} does not exist"
    assert not path.parent.exists()


def test_directory_instead_of_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StationError) as info:
        EventStore(tmp_path)
    assert "is a directory" in one_line(info, tmp_path)


@pytest.fixture
def make_read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file read-only for this process: chmod for a normal user, chattr +i for root."""
    undo: list[Callable[[], object]] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o400)
            undo.append(lambda: path.chmod(0o600))
            return
        chattr = shutil.which("chattr")
        if chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode == 0:
            undo.append(lambda: subprocess.run([chattr, "-i", str(path)], check=True))
            return
        pytest.skip("running as root without chattr +i: cannot make a file read-only")

    yield make
    for step in undo:
        step()


def test_read_only_database_fails_at_open_not_at_the_first_alarm(db_path: Path, make_read_only) -> None:
    with EventStore(db_path) as store:
        record(store, decision())
    make_read_only(db_path)
    with pytest.raises(StationError) as info:
        EventStore(db_path)
    assert one_line(info, db_path).startswith(f"event store {db_path}: ")


def test_snapshots_directory_open_to_others_is_refused(tmp_path: Path, db_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(StationError) as info:
        EventStore(db_path, snapshots_dir=shared)
    assert "open to other users (mode 0755); expected 0700" in one_line(info, shared)


def test_use_after_close_is_a_station_error(db_path: Path) -> None:
    store = EventStore(db_path)
    store.close()
    with pytest.raises(StationError, match="already closed"):
        record(store, decision())


# ---------------------------------------------------------------------- screenings


def test_screening_round_trip(store: EventStore) -> None:
    sid = record(store, decision(7, "elevated", 37.42, quality={"glasses"}))
    row = store.screening(sid)
    assert (row.pop("prev_hash"), len(row.pop("row_hash"))) == ("0" * 64, 64)  # the first link of the chain
    assert row == {
        "id": sid,
        "track_id": 7,
        "t_first_seen": 17.0,
        "t_decided": 17.8,
        "wall_time": "2026-11-23T10:01:00.000Z",
        "skin_c": 36.18,
        "body_c": 37.42,
        "level": "elevated",
        "quality": ["glasses"],
        "calibration_id": CALIBRATION,
        "model_sha256": MODEL,
        "blackbody_error_c": 0.12,
        "recording": "recordings/demo",
        "alarm_id": 1,
        "body_model": None,
        "site": "canthus",
        "snapshot_sha256": "{}",  # an alarm kept without images records that it has none
        "u95_c": 0.62,
    }


def test_retry_is_logged_without_temperatures_or_alarm(store: EventStore) -> None:
    sid = store.record_screening(
        decision(2, "retry", None, quality={"too_far", "motion"}),
        calibration_id=None, model_sha256=None, blackbody_error_c=None, source="cameras",
    )
    row = store.screening(sid)
    assert (row["skin_c"], row["body_c"], row["alarm_id"], row["quality"]) == (None, None, None, ["motion", "too_far"])


def test_alarms_are_numbered_across_restarts(db_path: Path) -> None:
    with EventStore(db_path) as store:
        ids = [record(store, decision(i, level, 38.2)) for i, level in enumerate(["fever", "normal", "elevated"])]
        assert [store.screening(i)["alarm_id"] for i in ids] == [1, None, 2]
    with EventStore(db_path) as store:
        assert store.screening(record(store, decision(9, "fever", 38.9)))["alarm_id"] == 3


def test_screenings_filter_by_wall_time_and_level(store: EventStore) -> None:
    for i, level in enumerate(["normal", "fever", "normal", "retry"]):
        record(store, decision(i, level, None if level == "retry" else 37.0))
    # wall times are 10:01, 10:02, 10:03, 10:04
    assert [r["track_id"] for r in store.screenings()] == [0, 1, 2, 3]
    since, until = START + timedelta(minutes=2), START + timedelta(minutes=4)
    assert [r["track_id"] for r in store.screenings(since=since, until=until)] == [1, 2]
    assert [r["track_id"] for r in store.screenings(level="normal")] == [0, 2]
    assert [r["track_id"] for r in store.screenings(since=since.astimezone(), level="retry")] == [3]
    with pytest.raises(ValueError, match="expected one of"):
        store.screenings(level="hot")
    with pytest.raises(ValueError, match="expected a timezone-aware datetime"):
        store.screenings(since=datetime(2026, 11, 23))


def test_system_events_round_trip(store: EventStore) -> None:
    store.record_system_event(SystemEvent("camera_lost", 3.25, "thermal: no frame for 2 s"))
    store.record_system_event(SystemEvent("stopped", 9.0))
    rows = store.system_events()
    assert [(r["kind"], r["t"], r["detail"]) for r in rows] == [
        ("camera_lost", 3.25, "thermal: no frame for 2 s"),
        ("stopped", 9.0, ""),
    ]
    assert rows[0]["wall_time"] == "2026-11-23T10:01:00.000Z"


# ---------------------------------------------------------------------- snapshots


def test_snapshots_are_kept_only_for_alarms(store: EventStore, tmp_path: Path) -> None:
    snapshots_dir = tmp_path / "snapshots"
    normal = record(store, decision(1, "normal", 36.8), crops())
    retry = record(store, decision(2, "retry", None), crops())
    assert store.snapshots(normal) == [] and store.snapshots(retry) == []
    assert list(snapshots_dir.iterdir()) == []

    fever = record(store, decision(3, "fever", 38.6), crops())
    rows = store.snapshots(fever)
    assert [r["kind"] for r in rows] == ["visible", "thermal"]
    assert mode(snapshots_dir) == 0o700
    for row in rows:
        file = row["file"]
        assert file.parent == snapshots_dir and row["path"] == file.name
        assert mode(file) == 0o600
        assert hashlib.sha256(file.read_bytes()).hexdigest() == row["sha256"]
    assert len(list(snapshots_dir.iterdir())) == 2


def test_an_alarm_records_its_snapshots_sha256_in_its_chained_row(store: EventStore) -> None:
    """The snapshots table is not chained; the screening row is, so it carries what the images must be."""
    import json

    fever = record(store, decision(3, "fever", 38.6), crops())
    normal = record(store, decision(4, "normal", 36.8), crops())
    recorded = json.loads(store.screening(fever)["snapshot_sha256"])
    assert recorded == {r["kind"]: r["sha256"] for r in store.snapshots(fever)}
    assert store.screening(normal)["snapshot_sha256"] is None
    assert store.verify_chains() == [] and store.verify_snapshots().breaks == []
    assert (store.verify_snapshots().rows, store.verify_snapshots().files) == (2, 2)


def test_snapshot_images_round_trip(store: EventStore) -> None:
    images = crops()
    sid = record(store, decision(3, "elevated", 37.6), images)
    visible, thermal = (r["file"] for r in store.snapshots(sid))
    assert np.array_equal(cv2.imread(str(visible), cv2.IMREAD_UNCHANGED), images["visible"])
    back = read_thermal_snapshot(thermal)
    assert back.dtype == np.float32 and np.isnan(back[0, 0])
    np.testing.assert_allclose(back[1:], images["thermal"][1:], atol=0.006)


def test_no_snapshots_without_a_directory_or_for_empty_crops(db_path: Path, tmp_path: Path) -> None:
    with EventStore(db_path) as store:
        assert store.snapshots(record(store, decision(1, "fever", 38.6), crops())) == []
    with EventStore(db_path, snapshots_dir=tmp_path / "s") as store:
        empty = {"visible": np.zeros((0, 5, 3), np.uint8), "thermal": np.full((4, 4), 36.0, np.float32)}
        assert [r["kind"] for r in store.snapshots(record(store, decision(2, "fever", 38.6), empty))] == ["thermal"]


def test_bad_snapshot_arrays_are_refused_before_anything_is_logged(store: EventStore) -> None:
    with pytest.raises(ValueError, match=r"snapshots\['thermal'\]: expected \(H,W\) float °C, got uint16"):
        record(store, decision(1, "fever", 38.6), {"thermal": np.zeros((4, 4), np.uint16)})
    with pytest.raises(ValueError, match="expected kinds from"):
        record(store, decision(1, "fever", 38.6), {"depth": np.zeros((4, 4), np.float32)})
    assert store.screenings() == []


def test_failed_snapshot_write_logs_nothing_and_leaves_no_files(store: EventStore, tmp_path: Path) -> None:
    snapshots_dir = tmp_path / "snapshots"
    # The store's clock will stamp 10:01:00.000 and the row will be id 1: occupy the thermal file's name.
    blocker = snapshots_dir / "20261123T100100.000Z-00000001-thermal.png"
    blocker.write_bytes(b"")
    with pytest.raises(StationError) as info:
        record(store, decision(1, "fever", 38.6), crops())
    assert one_line(info, blocker) == f"snapshot {blocker}: cannot write (File exists)"
    assert store.screenings() == []
    assert list(snapshots_dir.iterdir()) == [blocker]  # the visible file written first was removed


# ---------------------------------------------------------------------- acknowledgements


def test_acknowledgements_round_trip_and_clear_unacknowledged(store: EventStore) -> None:
    first = record(store, decision(1, "elevated", 37.5))
    record(store, decision(2, "normal", 36.7))
    third = record(store, decision(3, "fever", 38.7))
    assert [r["id"] for r in store.unacknowledged_alarms()] == [first, third]

    ack = store.acknowledge(first, "re_measure", note="stood still 1 s", operator="guard-2")
    store.acknowledge(first, "cleared_secondary_check", thermometer_c=36.9, operator="guard-2")
    assert [r["id"] for r in store.unacknowledged_alarms()] == [third]
    rows = store.acknowledgements(first)
    assert [(r["action"], r["thermometer_c"], r["note"], r["operator"]) for r in rows] == [
        ("re_measure", None, "stood still 1 s", "guard-2"),
        ("cleared_secondary_check", 36.9, "", "guard-2"),
    ]
    assert rows[0]["id"] == ack and rows[0]["screening_id"] == first

    store.acknowledge(third, "referred")
    assert store.unacknowledged_alarms() == []


def test_acknowledge_refuses_unknown_screenings_normals_and_actions(store: EventStore, db_path: Path) -> None:
    normal = record(store, decision(1, "normal", 36.7))
    fever = record(store, decision(2, "fever", 38.7))
    with pytest.raises(StationError) as info:
        store.acknowledge(99, "referred")
    assert one_line(info, db_path) == f"event store {db_path}: no screening 99 to acknowledge"
    with pytest.raises(StationError, match="raised no alarm \\(level normal\\)"):
        store.acknowledge(normal, "referred")
    with pytest.raises(StationError, match="expected one of cleared_secondary_check, referred, re_measure"):
        store.acknowledge(fever, "ignored")
    with pytest.raises(StationError, match="thermometer reading: expected 30 to 45"):
        store.acknowledge(fever, "cleared_secondary_check", thermometer_c=310.0)
    assert store.acknowledgements() == []
    with pytest.raises(StationError, match="no screening 99$"):
        store.screening(99)
