"""Nothing logged is lost: a station killed mid-run, and a log that cannot be written for a while."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from station.acquire.intake import open_intake
from station.cli.main import DEMO_RECORDING
from station.headless import open_station
from station.pipeline import Tick
from station.types import ScreeningDecision, SystemEvent


def test_a_station_killed_mid_run_keeps_every_decision_it_printed(tmp_path, face_model):
    db = tmp_path / "station.db"
    command = [sys.executable, "-m", "station.cli.main", "run", "--recording", str(DEMO_RECORDING), "--headless",
               "--fast", "--db", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed = []
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            item = json.loads(line)
            if item["type"] == "screening":
                printed.append(item)
                if len(printed) == 3:
                    process.send_signal(signal.SIGKILL)  # no handler, no flush, no close
                    break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL and len(printed) == 3
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        logged = {(r[0], round(r[1], 4)) for r in conn.execute("SELECT track_id, t_decided FROM screenings")}
    finally:
        conn.close()
    assert {(p["track_id"], p["t_decided"]) for p in printed} <= logged
    from station.log.store import EventStore

    with EventStore(db) as store:  # reopens cleanly, and the chains hold
        assert store.verify_chains() == []


def _read_only_directory(path: Path):
    """Make a directory unwritable even for root (chattr +i), or by mode for a normal user; return the undo."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        return lambda: path.chmod(0o700)
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode == 0
    if not done:
        pytest.fail("running as root without a working chattr +i: cannot make a directory read-only here")
    return lambda: subprocess.run([chattr, "-i", str(path)], check=True)


def test_a_read_only_log_directory_keeps_screening_and_alarming_and_the_rows_land_later(tmp_path, face_model):
    folder = tmp_path / "log"
    folder.mkdir(mode=0o700)
    undo = _read_only_directory(folder)
    decisions: list[ScreeningDecision] = []
    events: list[SystemEvent] = []
    faulted_decisions = 0
    try:
        with open_intake(None, None, DEMO_RECORDING, None, fast=True, status=None) as intake:
            with open_station(intake, db=folder / "station.db") as station:
                station.log.retry_s = 0.0  # retry on every pair once the folder is writable again
                assert station.store is None and station.log.fault is not None
                for item in station.run():
                    if isinstance(item, Tick):
                        decisions += item.decisions
                        events += item.events
                    elif isinstance(item, ScreeningDecision):
                        decisions.append(item)
                    elif isinstance(item, SystemEvent):
                        events.append(item)
                    if undo is not None and len(decisions) >= 4:
                        faulted_decisions = len(decisions)
                        undo()
                        undo = None
    finally:
        if undo is not None:
            undo()
    kinds = [e.kind for e in events]
    assert "storage_fault" in kinds and "storage_recovered" in kinds
    assert kinds.index("storage_fault") < kinds.index("storage_recovered")
    levels = [d.level for d in decisions[:faulted_decisions]]
    assert "fever" in levels  # the alarm went up while nothing could be logged
    conn = sqlite3.connect(folder / "station.db")
    try:
        logged = [(r[0], round(r[1], 4), r[2]) for r in
                  conn.execute("SELECT track_id, t_decided, level FROM screenings ORDER BY id")]
        logged_kinds = [r[0] for r in conn.execute("SELECT kind FROM system_events ORDER BY id")]
        models = {(r[0], r[1]) for r in conn.execute(
            "SELECT site, body_model FROM screenings WHERE body_c IS NOT NULL")}
    finally:
        conn.close()
    assert logged == [(d.track_id, round(d.t_decided, 4), d.level) for d in decisions]
    assert logged_kinds[:2] == ["storage_fault", "started"] and "storage_recovered" in logged_kinds
    from station.screen.body_model import load_glasses_model, load_model

    # each decision says where it was read and which skin-to-body model gave its body_c
    by_site = {"canthus": load_model().id, "forehead_mouth": load_glasses_model().id}
    assert models and all(by_site[site] == model for site, model in models)


# ------------------------------------------------------------------------------------------- the guard itself
def _decision(k: int, level: str = "fever") -> ScreeningDecision:
    return ScreeningDecision(k, float(k), k + 1.0, 37.3, 38.5, level, frozenset())


def _options() -> dict:
    return {"calibration_id": "c@2026-11-01T00:00:00Z", "model_sha256": None, "blackbody_error_c": None,
            "source": "test"}


def test_a_full_disk_keeps_rows_in_memory_until_there_is_room(tmp_path):
    from station.log.guarded import GuardedLog
    from station.log.store import EventStore

    log = GuardedLog(lambda: EventStore(tmp_path / "station.db"), retry_s=0.0)
    assert log.screening(_decision(1), 1.0, **_options()) == 1
    pages = log.store.db.execute("PRAGMA page_count").fetchone()[0]
    log.store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own "database or disk is full"
    k = 1
    while log.fault is None and k < 2000:  # the last pages fill up
        k += 1
        log.screening(_decision(k), float(k), **_options())
    assert log.fault is not None and "full" in log.fault
    for later in range(k + 1, k + 20):
        assert log.screening(_decision(later), float(later), **_options()) is None
    assert len(log.pending) >= 20  # 20 decisions (and the storage_fault event, unless it fitted)
    log.store.db.execute("PRAGMA max_page_count = 1073741823")
    log.poll(float(k + 20))
    assert log.fault is None and not log.pending
    assert [n.kind for n in log.notices] == ["storage_fault", "storage_recovered"]
    rows = log.store.screenings()
    assert [r["track_id"] for r in rows] == list(range(1, k + 20))
    assert log.store.verify_chains() == []
    log.close()


def test_a_locked_database_is_ridden_out(tmp_path):
    from station.log.guarded import GuardedLog
    from station.log.store import EventStore

    db = tmp_path / "station.db"
    log = GuardedLog(lambda: EventStore(db), retry_s=0.0)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a maintenance job holding the write lock
    assert log.screening(_decision(1), 1.0, **_options()) is None
    assert "locked" in log.fault
    other.execute("COMMIT")
    other.close()
    log.poll(2.0)
    assert log.fault is None and [r["track_id"] for r in log.store.screenings()] == [1]
    log.close()


def test_a_wrong_log_path_is_still_bad_input(tmp_path):
    from station.errors import StationError
    from station.log.guarded import GuardedLog
    from station.log.store import EventStore

    with pytest.raises(StationError, match="does not exist"):
        GuardedLog(lambda: EventStore(tmp_path / "no-such-dir" / "station.db"))
    (tmp_path / "junk.db").write_text("not a database at all, just text " * 50)
    with pytest.raises(StationError, match="not an SQLite database"):
        GuardedLog(lambda: EventStore(tmp_path / "junk.db"))


# ------------------------------------------------------------------------------- issue 13: faults, signals, exit codes
def _start(db: Path, stderr: Path) -> subprocess.Popen:
    """``station run`` on the demo recording, headless and fast, logging to ``db``; standard error to a file."""
    command = [sys.executable, "-m", "station.cli.main", "run", "--recording", str(DEMO_RECORDING), "--headless",
               "--fast", "--db", str(db)]
    with stderr.open("w") as err:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)


def _read_until(process: subprocess.Popen, decisions: int, then: signal.Signals) -> list[dict]:
    """Every line printed, in order; ``then`` is sent once ``decisions`` screenings were printed.

    After SIGKILL nothing more is read; after any other signal the rest of the output is read to its end.
    """
    printed: list[dict] = []
    sent = False
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            printed.append(json.loads(line))
            if not sent and sum(p["type"] == "screening" for p in printed) == decisions:
                process.send_signal(then)
                sent = True
                if then == signal.SIGKILL:
                    break
        process.wait(timeout=120)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert sent, f"the run ended after {len(printed)} lines, before {decisions} decisions"
    return printed


@pytest.fixture
def locked_log(tmp_path):
    """An existing log whose write lock another process holds (``BEGIN EXCLUSIVE``), and its release."""
    from station.log.store import EventStore

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


def _logged(db: Path) -> tuple[list[tuple], list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        screenings = [(r[0], round(r[1], 4), r[2]) for r in
                      conn.execute("SELECT track_id, t_decided, level FROM screenings ORDER BY id")]
        events = [(r[0], round(r[1], 4), r[2]) for r in
                  conn.execute("SELECT kind, t, detail FROM system_events ORDER BY id")]
    finally:
        conn.close()
    return screenings, events


def _audit_verify(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli.main", "audit", "verify", "--db", str(db)],
                          capture_output=True, text=True, timeout=120)


def test_a_station_killed_during_a_storage_fault_keeps_every_decision_it_printed(tmp_path, locked_log, face_model):
    from station.headless import open_log
    from station.log.guarded import spill_path_for

    db, release = locked_log
    printed = _read_until(_start(db, tmp_path / "stderr.txt"), 5, signal.SIGKILL)  # no handler, no flush, no close
    decisions = [(p["track_id"], p["t_decided"], p["level"]) for p in printed if p["type"] == "screening"]
    system = [(p["kind"], p["t"], p["detail"]) for p in printed if p["type"] == "system"]
    assert len(decisions) == 5 and "fever" in [d[2] for d in decisions]
    assert "storage_fault" in [s[0] for s in system]  # all five were decided while the log was locked
    assert _logged(db) == ([], [])
    release()
    assert spill_path_for(db).is_file()

    open_log(db).close()  # what the next start does first
    assert not spill_path_for(db).exists()
    screenings, events = _logged(db)
    assert screenings[:5] == decisions  # every decision printed, in order (and any held after the last print)
    assert all(s in events for s in system)
    assert [e[0] for e in events[:2]] == ["storage_fault", "started"] and events[-1][0] == "storage_recovered"
    conn = sqlite3.connect(db)
    try:
        fever_snapshots = conn.execute("SELECT COUNT(*) FROM snapshots WHERE screening_id = (SELECT id FROM "
                                       "screenings WHERE level = 'fever' ORDER BY id LIMIT 1)").fetchone()[0]
    finally:
        conn.close()
    assert fever_snapshots == 2  # the alarm's face crops were held too
    verified = _audit_verify(db)
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path, face_model, stop):
    db = tmp_path / "station.db"
    process = _start(db, tmp_path / "stderr.txt")
    printed = _read_until(process, 2, stop)
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()
    assert printed[-1]["type"] == "system" and printed[-1]["kind"] == "stopped"
    screenings, events = _logged(db)
    assert events[-1][0] == "stopped"
    assert screenings == [(p["track_id"], p["t_decided"], p["level"]) for p in printed if p["type"] == "screening"]
    assert _audit_verify(db).returncode == 0


def test_a_run_whose_rows_wait_in_the_spill_exits_4_and_says_where_they_are(tmp_path, locked_log, face_model):
    from station.headless import open_log
    from station.log.guarded import spill_path_for

    db, release = locked_log
    process = _start(db, tmp_path / "stderr.txt")
    printed = _read_until(process, 2, signal.SIGINT)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 4, stderr
    held = sum(p["type"] == "screening" for p in printed)
    assert f"held in {spill_path_for(db)} until the log can be written" in stderr
    release()
    open_log(db).close()
    assert len(_logged(db)[0]) == held


def test_a_run_that_could_log_nothing_exits_5(tmp_path, face_model):
    folder = tmp_path / "log"
    folder.mkdir(mode=0o700)
    undo = _read_only_directory(folder)  # neither the log nor its spill can be written
    try:
        process = _start(folder / "station.db", tmp_path / "stderr.txt")
        _read_until(process, 2, signal.SIGINT)
    finally:
        undo()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 5, stderr
    assert "rows NOT logged" in stderr and "cannot hold rows" in stderr
