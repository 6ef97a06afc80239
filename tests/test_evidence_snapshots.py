"""Issue 13, 5.1: alarm snapshots are evidence. ``audit verify`` hashes them against the log, and an export
with images never hands over a face the log did not record; images retention purged stay told apart."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from station.cli.main import main
from station.headless import snapshots_dir_for
from station.log.retention import RetentionPolicy, apply_purge, plan_purge
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PIN = "2468"


class Wall:
    """A settable wall clock (acknowledgements and exports take the store's clock)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def crops(shade: int) -> dict[str, np.ndarray]:
    """A face crop and its thermal crop; ``shade`` makes each alarm's images different files."""
    return {"visible": np.full((8, 8, 3), shade, np.uint8), "thermal": np.full((4, 4), 36.0 + shade / 100, np.float32)}


def screen(store: EventStore, when: datetime, level: str, shade: int = 90) -> int:
    body = {"normal": 36.7, "elevated": 37.6, "fever": 38.7}[level]
    decision = ScreeningDecision(shade, 1.0, 2.0, round(body - 1.24, 2), body, level, frozenset())
    return store.record_screening(decision, calibration_id="entrance-1@2026-11-20T08:00:00Z", model_sha256=None,
                                  blackbody_error_c=0.05, source="cameras", snapshots=crops(shade), wall_time=when)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Screenings over ten days: an old fever (day 0), a normal, a recent elevated (day 9) and a recent fever."""
    db = tmp_path / "station.db"
    with EventStore(db, snapshots_dir=snapshots_dir_for(db), clock=Wall(START)) as store:
        store.record_system_event(SystemEvent("started", 0.0, "cameras"), wall_time=START)
        screen(store, START, "fever", shade=60)
        screen(store, START + timedelta(days=1), "normal", shade=70)
        screen(store, START + timedelta(days=9), "elevated", shade=80)
        screen(store, START + timedelta(days=9, hours=1), "fever", shade=100)
    return db


def files(db: Path) -> list[Path]:
    return sorted(snapshots_dir_for(db).iterdir())


def named(db: Path, screening_id: int, kind: str) -> Path:
    (found,) = [p for p in files(db) if p.name.endswith(f"-{screening_id:08d}-{kind}.png")]
    return found


def run(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def verify(db: Path):
    return run("audit", "verify", "--db", db)


def sql(db: Path, *statements: str, params=()) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement, params)
    conn.close()


def export_images(db: Path, out: Path):
    assert run("audit", "set-pin", input=f"{PIN}\n{PIN}\n").exit_code == 0
    return run("export", "--from", "2026-11-23", "--to", "2026-12-31", "--format", "json", "--out", out,
               "--operator", "audit-1", "--db", db, "--include-images", "--pin", PIN)


def export_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id FROM exports").fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- verify
def test_an_untouched_log_verifies_with_every_file_hashed(log):
    result = verify(log)
    assert result.exit_code == 0, result.output
    assert "snapshots                6 rows  ok (6 files match the log; 0 images purged by retention)" in result.output


def test_an_alarm_image_replaced_by_another_face_breaks_the_log(log):
    shutil.copyfile(named(log, 4, "visible"), named(log, 1, "visible"))  # the recent fever's face on the old alarm
    result = verify(log)
    assert result.exit_code == 3
    assert "snapshots                6 rows  BROKEN at snapshots row 1: its file" in result.output
    assert "was altered or replaced" in result.output


def test_a_replaced_image_is_caught_even_with_its_row_rewritten_to_match(log):
    """The snapshots table is not chained; the sha256 the screening's chained row recorded is what counts."""
    shutil.copyfile(named(log, 4, "visible"), named(log, 1, "visible"))
    swapped = hashlib.sha256(named(log, 1, "visible").read_bytes()).hexdigest()
    sql(log, "UPDATE snapshots SET sha256 = ? WHERE screening_id = 1 AND kind = 'visible'", params=[swapped])
    result = verify(log)
    assert result.exit_code == 3
    assert "is not the visible image screening 1 recorded: the row was edited or inserted" in result.output


def test_deleted_snapshot_rows_and_files_break_the_log(log):
    for path in (named(log, 4, "visible"), named(log, 4, "thermal")):
        path.unlink()
    sql(log, "DELETE FROM snapshots WHERE screening_id = 4")
    result = verify(log)
    assert result.exit_code == 3
    assert ("BROKEN at snapshots: the thermal image of screening 4 is missing: its row was deleted, and retention "
            "did not purge it (and 1 more)") in result.output


def test_a_deleted_snapshot_file_breaks_the_log(log):
    named(log, 3, "thermal").unlink()
    result = verify(log)
    assert result.exit_code == 3
    assert "is missing: deleted, and retention did not purge it" in result.output


def test_a_snapshot_row_slipped_in_for_a_normal_screening_breaks_the_log(log):
    shutil.copyfile(named(log, 4, "visible"), snapshots_dir_for(log) / "extra.png")
    digest = hashlib.sha256((snapshots_dir_for(log) / "extra.png").read_bytes()).hexdigest()
    sql(log, "INSERT INTO snapshots (screening_id, kind, path, sha256) VALUES (2, 'visible', 'extra.png', ?)",
        params=[digest])
    result = verify(log)
    assert result.exit_code == 3
    assert "belongs to screening 2, which raised no alarm: the row was inserted" in result.output


def test_images_purged_by_retention_are_not_tampering_but_a_younger_one_deleted_is(log):
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        now = START + timedelta(days=10)  # the day-0 fever's images are 10 days old, the others 1 day
        apply_purge(store, plan_purge(store, now, RetentionPolicy(7, 365)), now)
    assert len(files(log)) == 4
    result = verify(log)
    assert result.exit_code == 0, result.output
    assert "(4 files match the log; 2 images purged by retention)" in result.output

    named(log, 3, "visible").unlink()  # younger than any purge: not retention's doing
    sql(log, "DELETE FROM snapshots WHERE screening_id = 3 AND kind = 'visible'")
    result = verify(log)
    assert result.exit_code == 3
    assert "the visible image of screening 3 is missing" in result.output


def test_the_demo_run_log_catches_a_swapped_fever_face(tmp_path, face_model):
    """The issue's reproduction: a log made by ``station run`` on the demo recording."""
    from station.cli.main import DEMO_RECORDING

    db = tmp_path / "s.db"
    result = run("run", "--recording", DEMO_RECORDING, "--headless", "--fast", "--db", db)
    assert result.exit_code == 0, result.output
    assert verify(db).exit_code == 0
    fevers = sorted({p.name.split("-")[1] for p in files(db)})
    assert len(fevers) >= 2
    first, second = (int(f) for f in fevers[:2])
    shutil.copyfile(named(db, second, "visible"), named(db, first, "visible"))
    result = verify(db)
    assert result.exit_code == 3 and "was altered or replaced" in result.output


# ------------------------------------------------------------------------------------------- export
def test_an_export_with_images_refuses_a_swapped_file_and_leaves_nothing(log, tmp_path):
    shutil.copyfile(named(log, 4, "visible"), named(log, 1, "visible"))
    out = tmp_path / "with-images.json"
    result = export_images(log, out)
    assert result.exit_code == 3, result.output
    assert "Error: snapshots row 1: its file" in result.output and "nothing was exported" in result.output
    assert not out.exists() and not (tmp_path / f"{out.name}.images").exists()
    assert export_rows(log) == []


def test_an_export_with_images_refuses_a_missing_file_rather_than_report_it_exported(log, tmp_path):
    named(log, 3, "visible").unlink()
    out = tmp_path / "with-images.json"
    result = export_images(log, out)
    assert result.exit_code == 3 and "is missing" in result.output
    assert not out.exists() and export_rows(log) == []


def test_an_export_lists_images_retention_purged_as_purged(log, tmp_path):
    with EventStore(log, snapshots_dir=snapshots_dir_for(log)) as store:
        now = START + timedelta(days=10)
        apply_purge(store, plan_purge(store, now, RetentionPolicy(7, 365)), now)
    out = tmp_path / "with-images.json"
    result = export_images(log, out)
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(out.read_text())["screenings"]}
    assert [i.get("purged_by_retention") for i in rows[1]["images"]] == [True, True]
    assert all("file" not in i for i in rows[1]["images"])
    for image in rows[4]["images"]:  # every file exported is the one its sha256 names
        assert hashlib.sha256((tmp_path / image["file"]).read_bytes()).hexdigest() == image["sha256"]
    assert "images" not in rows[2]


def test_a_file_swapped_after_the_check_is_caught_by_the_copy_itself(log, tmp_path, monkeypatch):
    """The bytes copied are hashed as they are written: no window between check and copy lets a face through."""
    from station.log.store import SnapshotAudit

    monkeypatch.setattr(EventStore, "verify_snapshots", lambda self, ids=None, files=True: SnapshotAudit())
    shutil.copyfile(named(log, 1, "visible"), named(log, 4, "thermal"))
    out = tmp_path / "with-images.json"
    result = export_images(log, out)
    assert result.exit_code == 3 and "changed while it was being exported" in result.output
    assert not out.exists() and not (tmp_path / f"{out.name}.images").exists() and export_rows(log) == []
