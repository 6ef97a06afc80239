"""Rows held during a storage fault are durable: the spill file beside the log, replayed once, in order.

Issue 13: a station killed (``kill -9``) while its log was locked lost every decision printed since the
fault, because held rows lived only in memory. These tests drive :class:`station.log.guarded.GuardedLog`
directly; ``tests/test_durability.py`` kills a real station.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from station.headless import EXIT_HELD, EXIT_LOST, log_outcome, snapshots_dir_for
from station.log.guarded import GuardedLog, spill_path_for
from station.log.store import EventStore, read_thermal_snapshot
from station.types import ScreeningDecision, SystemEvent

T0 = datetime(2031, 3, 4, 8, 0, tzinfo=UTC)  # a fixed wall clock: nothing here depends on today's date


class Wall:
    """A wall clock that ticks 1.5 s per reading, so every row has its own time."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1.5)
        return self.now


def _decision(k: int, level: str = "normal") -> ScreeningDecision:
    return ScreeningDecision(k, float(k), k + 0.5, 36.2, 37.44 if level == "normal" else 38.6, level, frozenset())


def _options(snapshots=None) -> dict:
    return {"calibration_id": "c@2031-01-01T00:00:00Z", "model_sha256": "ab" * 32,
            "blackbody_error_c": np.float32(0.05), "source": "test", "snapshots": snapshots,
            "body_model": "body-model@1"}


def _snapshots() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    thermal = (34.0 + rng.random((9, 11))).astype(np.float32)
    thermal[0, 0] = np.nan
    return {"visible": rng.integers(0, 255, (20, 16, 3), dtype=np.uint8), "thermal": thermal}


class Clock:
    """Monotonic seconds that move only when a test says: a locked store is retried when the test wants."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


_WALL = Wall()  # one wall clock for every start in a test, as on a real station: no two rows share a time


def _log(db, wall=None, **kwargs) -> GuardedLog:
    kwargs.setdefault("clock", Clock())
    return GuardedLog(lambda: EventStore(db, snapshots_dir=snapshots_dir_for(db)), spill=spill_path_for(db),
                      wall_clock=wall or _WALL, **kwargs)


@pytest.fixture
def locked_db(tmp_path):
    """A log another process holds the write lock on (a maintenance job's ``BEGIN EXCLUSIVE``)."""
    db = tmp_path / "station.db"
    EventStore(db).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")

    released: list[bool] = []

    def release() -> None:
        if not released:
            other.execute("COMMIT")
            other.close()
            released.append(True)

    yield db, release
    release()


def _hold_some(log: GuardedLog, snapshots) -> None:
    log.event(SystemEvent("started", 0.0, "test"))
    log.screening(_decision(1), 1.5, **_options())
    log.screening(_decision(2, "fever"), 2.5, **_options(snapshots))
    log.screening(_decision(3), 3.5, **_options())


def test_held_rows_are_on_disk_before_the_call_returns_and_the_next_start_logs_them_in_order(locked_db):
    db, release = locked_db
    snapshots = _snapshots()
    log = _log(db)
    assert log.store is None and "locked" in log.fault
    _hold_some(log, snapshots)
    spill = spill_path_for(db)
    lines = spill.read_bytes().splitlines()  # read as another process would after a kill -9: no close, no flush
    assert [json.loads(line)["kind"] for line in lines] == ["event", "event", "screening", "screening", "screening"]
    assert (log.held_in_spill, log.only_in_memory) == (5, 0)
    del log  # killed: nothing more is written

    release()
    again = _log(db)  # the next start on this database
    assert again.fault is None and not again.pending and not spill.exists()
    store = again.store
    rows = store.screenings()
    assert [(r["track_id"], r["level"]) for r in rows] == [(1, "normal"), (2, "fever"), (3, "normal")]
    held_times = [json.loads(line)["wall_time"] for line in lines]
    assert [r["wall_time"] for r in rows] == [datetime.fromisoformat(t).isoformat(timespec="milliseconds")
                                              .replace("+00:00", "Z") for t in held_times[2:]]
    assert rows[1]["blackbody_error_c"] == pytest.approx(0.05) and rows[1]["body_model"] == "body-model@1"
    kinds = [e["kind"] for e in store.system_events()]
    assert kinds == ["storage_fault", "started", "storage_recovered"]
    assert "5 rows kept in" in store.system_events()[-1]["detail"]
    assert "(5 of them by an earlier run)" in store.system_events()[-1]["detail"]
    files = {s["kind"]: s["file"] for s in store.snapshots(rows[1]["id"])}
    assert set(files) == {"visible", "thermal"}
    import cv2

    assert np.array_equal(cv2.imread(str(files["visible"])), snapshots["visible"])
    thermal = read_thermal_snapshot(files["thermal"])
    assert np.isnan(thermal[0, 0]) and np.allclose(thermal[1:], snapshots["thermal"][1:], atol=0.006)
    assert store.verify_chains() == []
    again.close()


def test_a_crash_between_logging_held_rows_and_removing_the_spill_logs_nothing_twice(locked_db):
    db, release = locked_db
    log = _log(db)
    _hold_some(log, _snapshots())
    spill = spill_path_for(db)
    kept = spill.read_bytes()
    release()
    log._clock.now += 5.0  # the next retry is due
    log.poll(9.0)  # recovers within the run: every row logged, the spill removed
    assert log.fault is None and not spill.exists()
    log.close()
    spill.write_bytes(kept)  # as if killed after the rows were committed but before the spill was removed

    again = _log(db)
    assert not spill.exists() and not again.pending
    assert [r["track_id"] for r in again.store.screenings()] == [1, 2, 3]
    assert [e["kind"] for e in again.store.system_events()] == [
        "storage_fault", "started", "storage_recovered", "storage_recovered"]
    assert len(again.store.snapshots(2)) == 2
    assert again.store.verify_chains() == []
    again.close()


def test_a_line_torn_by_the_kill_is_dropped_and_the_spill_goes_on_after_it(locked_db):
    db, release = locked_db
    log = _log(db)
    _hold_some(log, None)
    spill = spill_path_for(db)
    with spill.open("ab") as out:  # killed in the middle of writing a fourth decision: it was never printed
        out.write(b'{"v":1,"kind":"screening","wall_ti')
    del log

    second = _log(db)  # still locked: the earlier rows wait, and new ones follow them on lines of their own
    assert [row.kind for row in second.pending] == ["event", "event", "screening", "screening", "screening", "event"]
    second.screening(_decision(4), 4.5, **_options())
    assert all(json.loads(line) for line in spill.read_bytes().splitlines())
    del second
    release()
    third = _log(db)
    assert [r["track_id"] for r in third.store.screenings()] == [1, 2, 3, 4]
    assert [e["kind"] for e in third.store.system_events()] == [
        "storage_fault", "started", "storage_fault", "storage_recovered"]
    assert third.store.verify_chains() == [] and not spill.exists()
    third.close()


def test_a_damaged_spill_line_is_skipped_and_the_file_kept_as_evidence(locked_db):
    db, release = locked_db
    log = _log(db)
    _hold_some(log, None)
    del log
    spill = spill_path_for(db)
    lines = spill.read_bytes().splitlines()
    spill.write_bytes(b"\n".join([*lines[:3], b"this is not a held row", *lines[3:]]) + b"\n")
    release()
    said: list[str] = []
    again = _log(db, warn=said.append)
    assert [r["track_id"] for r in again.store.screenings()] == [1, 2, 3]
    assert not spill.exists() and len(list(db.parent.glob("station.db.spill.damaged-*"))) == 1
    assert any("1 lines" in s and "kept" in s for s in said)
    again.close()


def test_when_even_the_spill_cannot_be_written_it_is_said_and_rows_stay_in_memory(locked_db, tmp_path):
    db, release = locked_db
    said: list[str] = []
    clock = Clock()
    log = GuardedLog(lambda: EventStore(db), spill=tmp_path / "gone" / "station.db.spill", clock=clock,
                     wall_clock=Wall(), warn=said.append)
    _hold_some(log, None)
    assert (log.held_in_spill, log.only_in_memory) == (0, 5)
    assert len(said) == 1 and "cannot hold rows" in said[0] and "memory only" in said[0]
    release()
    clock.now += 5.0
    log.poll(5.0)  # the memory path still works
    assert log.fault is None and [r["track_id"] for r in log.store.screenings()] == [1, 2, 3]
    log.close()


def test_the_closing_line_and_exit_code_say_where_the_rows_are(locked_db, tmp_path):
    db, release = locked_db
    assert log_outcome(None, None) == ("nowhere", 0)
    log = _log(db)
    _hold_some(log, None)
    log.close()  # still locked at the end of the run
    text, code = log_outcome(log, db)
    assert code == EXIT_HELD == 4
    assert text.startswith(f"5 rows held in {spill_path_for(db)} until the log can be written") and "NOT" not in text

    memory_only = GuardedLog(lambda: EventStore(db), spill=tmp_path / "gone" / "x.spill", wall_clock=Wall(),
                             clock=Clock(), warn=lambda _: None)
    _hold_some(memory_only, None)
    memory_only.close()
    text, code = log_outcome(memory_only, db)
    assert code == EXIT_LOST == 5 and text.startswith("5 rows NOT logged (")

    release()
    fine = _log(db)
    fine.close()
    assert log_outcome(fine, db) == (f"logged in {db}", 0)
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)
