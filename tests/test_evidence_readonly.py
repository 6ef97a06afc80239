"""Issue 13, 5.3: an auditor's check opens the evidence read-only and changes no byte of it, nor writes beside it."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from station.cli.main import main
from station.cli.purge import purge
from station.errors import StationError
from station.headless import snapshots_dir_for
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def screen(store: EventStore, when: datetime, level: str) -> int:
    body = {"normal": 36.7, "fever": 38.7}[level]
    crops = {"visible": np.full((8, 8, 3), 80, np.uint8), "thermal": np.full((4, 4), 37.5, np.float32)}
    return store.record_screening(ScreeningDecision(1, 1.0, 2.0, round(body - 1.24, 2), body, level, frozenset()),
                                  calibration_id="entrance-1@2026-11-20T08:00:00Z", model_sha256=None,
                                  blackbody_error_c=None, source="cameras", snapshots=crops, wall_time=when)


def make_log(db: Path) -> None:
    with EventStore(db, snapshots_dir=snapshots_dir_for(db), clock=lambda: START) as store:
        store.record_system_event(SystemEvent("started", 0.0, ""), wall_time=START)
        for k, level in enumerate(["normal", "fever", "normal"]):
            screen(store, START + timedelta(minutes=k), level)


def evidence_copy(tmp_path: Path, journal: str) -> Path:
    """A copy handed to an auditor: ``journal`` mode (``delete`` or ``wal``), closed, then made read-only (0444)."""
    db = tmp_path / "evidence" / "station.db"
    db.parent.mkdir()
    make_log(db)
    conn = sqlite3.connect(db)
    assert conn.execute(f"PRAGMA journal_mode = {journal}").fetchone()[0] == journal
    conn.close()
    assert sorted(p.name for p in db.parent.iterdir()) == ["station-snapshots", "station.db"]
    db.chmod(0o444)
    return db


def state(db: Path) -> tuple[str, int, list[str]]:
    """What must not change: the file's bytes, its mode, and what lies beside it."""
    return (hashlib.sha256(db.read_bytes()).hexdigest(), stat.S_IMODE(db.stat().st_mode),
            sorted(p.name for p in db.parent.iterdir()))


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_verify_on_a_read_only_copy_changes_no_byte_and_leaves_no_side_files(tmp_path, journal):
    db = evidence_copy(tmp_path, journal)
    before = state(db)
    result = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "screenings               3 rows  ok" in result.output
    assert "snapshots                2 rows  ok (2 files match the log" in result.output
    assert state(db) == before  # same sha256, still 0444, and no -wal, -shm or -journal beside it
    header = db.read_bytes()[18:20]
    assert header == (b"\x01\x01" if journal == "delete" else b"\x02\x02"), "the journal mode was left as handed over"


def test_verify_reads_the_rows_a_running_station_has_not_checkpointed(tmp_path):
    """With the station's -wal present, the audit reads it too (mode=ro), and still writes nothing."""
    db = tmp_path / "station.db"
    make_log(db)
    with EventStore(db, clock=lambda: START) as running:
        running.record_system_event(SystemEvent("blackbody_ok", 5.0, ""))
        assert Path(f"{db}-wal").stat().st_size > 0
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        result = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
        assert result.exit_code == 0, result.output
        assert "system_events            2 rows  ok" in result.output
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_read_only_store_refuses_every_write(tmp_path):
    db = evidence_copy(tmp_path, "delete")
    before = state(db)
    with EventStore.open_read_only(db) as store:
        assert store.read_only and store.upgraded_in_memory == ()
        with pytest.raises(StationError, match="opened read-only for an audit"):
            store.record_system_event(SystemEvent("started", 0.0, ""))
        with pytest.raises(StationError, match="opened read-only"):
            store.record_export({"operator": "a", "filters": "{}", "format": "csv", "row_count": 0,
                                 "include_images": 0, "path": "x", "sha256": "0" * 64})
        assert len(store.screenings()) == 3
    assert state(db) == before


def test_opening_something_that_is_not_a_log_read_only_is_one_line(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all " * 50)
    with pytest.raises(StationError, match=r"^event store .*junk\.db: not an SQLite database"):
        EventStore.open_read_only(junk)
    with pytest.raises(StationError, match="no such file"):
        EventStore.open_read_only(tmp_path / "missing.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db"]


def test_a_dry_run_purge_on_a_read_only_copy_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("station.cli.purge._now", lambda: START + timedelta(days=400))
    db = evidence_copy(tmp_path, "delete")
    before = state(db)
    result = CliRunner().invoke(purge, ["--dry-run", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "screenings              3 rows (ids up to 3)" in result.output
    assert state(db) == before
