"""The auditors' export, the hash chains and ``audit verify``, on real SQLite files."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.cli.main import main
from station.log.store import EventStore
from station.types import ScreeningDecision, SystemEvent

CALIBRATION = "entrance-1@2026-11-20T08:00:00Z"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _decision(track: int, level: str, body: float) -> ScreeningDecision:
    return ScreeningDecision(track_id=track, t_first_seen=10.0 * track, t_decided=10.0 * track + 1.2,
                             skin_c=round(body - 1.24, 2), body_c=body, level=level,
                             quality=frozenset({"glasses"} if level == "retry" else set()))


@pytest.fixture
def log(tmp_path) -> Path:
    """A station log over two days: 8 screenings (2 alarms, one acknowledged), system events."""
    db = tmp_path / "station.db"
    clock = iter(START + timedelta(hours=3 * k) for k in range(100))
    with EventStore(db, snapshots_dir=tmp_path / "station-snapshots", clock=lambda: next(clock)) as store:
        store.record_system_event(SystemEvent("started", 0.0, "cameras"))
        crops = {"visible": np.full((8, 8, 3), 90, np.uint8), "thermal": np.full((4, 4), 37.9, np.float32)}
        levels = ["normal", "fever", "normal", "elevated", "retry", "normal", "normal", "normal"]
        ids = []
        for k, level in enumerate(levels, start=1):
            body = {"normal": 36.6, "fever": 38.6, "elevated": 37.6, "retry": None}[level]
            d = _decision(k, level, body if body is not None else 36.0)
            if body is None:
                d = ScreeningDecision(k, 10.0 * k, 10.0 * k + 2, None, None, "retry", frozenset({"glasses"}))
            ids.append(store.record_screening(d, calibration_id=CALIBRATION, model_sha256="ab" * 32,
                                              blackbody_error_c=0.05, source="cameras", snapshots=crops))
        store.acknowledge(ids[1], "referred", note="sent to nurse", operator="guard-2")
        store.record_system_event(SystemEvent("blackbody_out_of_tolerance", 50.0, "0.6 °C off"))
        store.record_system_event(SystemEvent("blackbody_ok", 60.0, "back"))
    return db


def _run(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def _rows(db: Path, sql: str) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- export
def test_csv_and_json_exports_are_the_database_rows_without_identifying_fields(log, tmp_path):
    db_rows = _rows(log, "SELECT s.*, EXISTS (SELECT 1 FROM acknowledgements a WHERE a.screening_id = s.id) "
                         "AS acknowledged FROM screenings s ORDER BY id")
    for row in db_rows:
        del row["track_id"], row["snapshot_sha256"]  # the crops' sha256 stands for the faces: left out too
    result = _run("export", "--from", "2026-11-23", "--to", "2026-11-24", "--format", "csv", "--out",
                  tmp_path / "all.csv", "--operator", "audit-1", "--db", log)
    assert result.exit_code == 0, result.output
    with open(tmp_path / "all.csv", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert not {"track_id", "snapshot_sha256", "images"} & set(exported[0])
    assert [{k: str(v) if v is not None else "" for k, v in r.items()} for r in db_rows] == exported

    result = _run("export", "--from", "2026-11-23", "--to", "2026-11-24", "--format", "json", "--out",
                  tmp_path / "all.json", "--operator", "audit-1", "--db", log)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "all.json").read_text())
    assert doc["export"]["deidentified"] is True
    assert doc["screenings"] == [{**r, "quality": json.loads(r["quality"])} for r in db_rows]
    assert [a["note"] for a in doc["acknowledgements"]] == ["sent to nurse"]
    assert all("track_id" not in r for r in doc["screenings"])


def test_filters_select_levels_and_acknowledgement(log, tmp_path):
    out = tmp_path / "open.csv"
    result = _run("export", "--from", "2026-11-23", "--to", "2026-11-23", "--format", "csv", "--out", out,
                  "--level", "fever", "--level", "elevated", "--acknowledged", "no", "--operator", "a", "--db", log)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, newline="")))
    assert [(r["level"], r["acknowledged"]) for r in rows] == [("elevated", "0")]


def test_every_export_is_recorded_with_the_sha256_of_its_file(log, tmp_path):
    out = tmp_path / "report.json"
    assert _run("export", "--from", "2026-11-23", "--to", "2026-11-25", "--format", "json", "--out", out,
                "--operator", "Dr Audit", "--db", log).exit_code == 0
    (row,) = _rows(log, "SELECT * FROM exports")
    assert row["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (row["operator"], row["format"], row["row_count"], row["include_images"]) == ("Dr Audit", "json", 8, 0)
    assert json.loads(row["filters"]) == {"from": "2026-11-23T00:00:00.000Z", "to": "2026-11-26T00:00:00.000Z"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_images_need_the_auditor_pin_and_are_recorded(log, tmp_path):
    out = tmp_path / "with-images.json"
    args = ["export", "--from", "2026-11-23", "--to", "2026-11-25", "--format", "json", "--out", out,
            "--operator", "audit-1", "--db", log, "--include-images"]
    assert "no auditor PIN is set" in one_line_error(_run(*args, "--pin", "1234"))
    assert _run("audit", "set-pin", input="4321\n4321\n").exit_code == 0
    assert "wrong auditor PIN" in one_line_error(_run(*args, "--pin", "1234"))
    assert not out.exists() and _rows(log, "SELECT * FROM exports") == []
    result = _run(*args, input="4321\n")
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    fever = next(r for r in doc["screenings"] if r["level"] == "fever")
    assert fever["track_id"] == 2 and {i["kind"] for i in fever["images"]} == {"visible", "thermal"}
    for image in fever["images"]:
        assert hashlib.sha256((tmp_path / image["file"]).read_bytes()).hexdigest() == image["sha256"]
    assert stat.S_IMODE((tmp_path / f"{out.name}.images").stat().st_mode) == 0o700
    (row,) = _rows(log, "SELECT * FROM exports")
    assert row["include_images"] == 1


def test_export_bad_input_is_one_line(log, tmp_path):
    out = tmp_path / "x.csv"
    base = ["--format", "csv", "--out", out, "--operator", "a"]
    assert "no such file" in one_line_error(_run("export", "--from", "2026-11-23", "--to", "2026-11-24", *base,
                                                 "--db", tmp_path / "nope.db"))
    result = _run("export", "--from", "23/11/2026", "--to", "2026-11-24", *base, "--db", log)
    assert result.exit_code == 2 and "expected a date such as 2026-11-30" in result.output
    out.write_text("keep me")
    assert "already exists" in one_line_error(_run("export", "--from", "2026-11-23", "--to", "2026-11-24", *base,
                                                   "--db", log))
    assert out.read_text() == "keep me"


# ------------------------------------------------------------------------------------------- audit
def _verify(db: Path):
    return _run("audit", "verify", "--db", db)


def test_an_untouched_log_verifies(log):
    result = _verify(log)
    assert result.exit_code == 0, result.output
    assert "screenings               8 rows  ok" in result.output and "sqlite integrity  ok" in result.output


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_an_edited_row_is_caught(log):
    _sql(log, "UPDATE screenings SET body_c = 36.9, level = 'normal' WHERE id = 2")
    result = _verify(log)
    assert result.exit_code == 3
    assert "screenings row 2: its contents do not match its hash: the row was edited" in result.output


def test_a_deleted_row_is_caught(log):
    _sql(log, "DELETE FROM snapshots WHERE screening_id = 4", "DELETE FROM screenings WHERE id = 4")
    result = _verify(log)
    assert result.exit_code == 3
    assert "screenings row 5: does not follow row 3" in result.output


def test_a_reordered_row_is_caught(log):
    # swap the contents of events 2 and 3 (keeping their hashes): the order of the log changed
    _sql(log, "UPDATE system_events SET id = -2 WHERE id = 2", "UPDATE system_events SET id = 2 WHERE id = 3",
         "UPDATE system_events SET id = 3 WHERE id = -2")
    result = _verify(log)
    assert result.exit_code == 3
    assert "system_events row 2: does not follow row 1" in result.output


def test_rows_deleted_from_the_end_after_an_export_are_caught(log, tmp_path):
    assert _run("export", "--from", "2026-11-23", "--to", "2026-11-25", "--format", "csv", "--out",
                tmp_path / "a.csv", "--operator", "a", "--db", log).exit_code == 0
    _sql(log, "DELETE FROM snapshots WHERE screening_id = 8", "DELETE FROM screenings WHERE id = 8")
    result = _verify(log)
    assert result.exit_code == 3
    assert "screenings row 8: is missing" in result.output


def test_an_edited_export_record_is_caught(log, tmp_path):
    assert _run("export", "--from", "2026-11-23", "--to", "2026-11-25", "--format", "csv", "--out",
                tmp_path / "a.csv", "--operator", "a", "--db", log).exit_code == 0
    _sql(log, "UPDATE exports SET include_images = 1")
    assert "exports row 1: its contents do not match its hash" in _verify(log).output


def test_a_log_from_before_the_chains_is_chained_on_upgrade(tmp_path):
    from sqlite_utils import Database

    from station.log.store import MIGRATIONS

    db = tmp_path / "old.db"
    old = Database(db)
    first = next(iter(MIGRATIONS.pending(old)))
    first.fn(old)  # the m001 schema only, as an old station left it
    old["system_events"].insert({"kind": "started", "t": 0.0, "wall_time": "2026-11-01T00:00:00.000Z",
                                 "detail": ""})
    old["_sqlite_migrations"].insert({"migration_set": "station-events", "name": first.name,
                                      "applied_at": "2026-11-01 00:00:00"})
    old.close()
    with EventStore(db) as store:
        store.record_system_event(SystemEvent("stopped", 1.0, ""))
        assert store.verify_chains() == []


def test_the_html_export_is_one_self_contained_report(log, tmp_path):
    out = tmp_path / "report.html"
    result = _run("export", "--from", "2026-11-23", "--to", "2026-11-24", "--format", "html", "--out", out,
                  "--operator", "audit-1", "--db", log)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3
    assert "sent to nurse" in page and "NOT ACKNOWLEDGED" in page  # the fever was acknowledged, the other not
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    (row,) = _rows(log, "SELECT format, row_count FROM exports")
    assert row == {"format": "html", "row_count": 8}
