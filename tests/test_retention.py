"""Retention on real SQLite files and real snapshot files: what goes, what stays, and that the log still verifies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from station.cli.purge import purge
from station.config import StationConfig, default_config_path, load_config, save_config
from station.errors import StationError
from station.headless import snapshots_dir_for
from station.log.retention import (
    RetentionPolicy,
    RetentionSchedule,
    apply_purge,
    consistent_prefixes,
    orphan_snapshot_names,
    plan_purge,
)
from station.log.store import EventStore, utc_iso
from station.types import ScreeningDecision, SystemEvent

NOW = datetime(2027, 12, 1, 12, 0, tzinfo=UTC)


def days_ago(days: float, now: datetime = NOW) -> datetime:
    return now - timedelta(days=days)


class Wall:
    """A settable wall clock: acknowledgements take the store's clock, so set it to make old ones."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def crops() -> dict[str, np.ndarray]:
    return {"visible": np.zeros((8, 8, 3), np.uint8), "thermal": np.full((4, 4), 36.0, np.float32)}


def screen(store: EventStore, when: datetime, level: str = "normal", track: int = 1) -> int:
    body = {"normal": 36.8, "elevated": 37.6, "fever": 38.6}[level]
    decision = ScreeningDecision(track, 1.0, 1.8, round(body - 1.24, 2), body, level, frozenset())
    return store.record_screening(decision, calibration_id="entrance-1@2027-01-01T00:00:00Z", model_sha256=None,
                                  blackbody_error_c=None, source="cameras",
                                  snapshots=crops() if level != "normal" else None, wall_time=when)


def ack(store: EventStore, screening_id: int, when: datetime) -> int:
    store._clock.now = when  # type: ignore[attr-defined]  # the Wall clock above
    return store.acknowledge(screening_id, "referred", operator="guard-1")


def event(store: EventStore, when: datetime, kind: str = "camera_lost") -> int:
    return store.record_system_event(SystemEvent(kind, 1.0, "thermal"), wall_time=when)


def ids(store: EventStore, table: str) -> list[int]:
    return [r[0] for r in store.db.execute(f"SELECT id FROM {table} ORDER BY id")]


def purge_now(store: EventStore, policy: RetentionPolicy | None = None, now: datetime = NOW):
    plan = plan_purge(store, now, policy or RetentionPolicy())
    return plan, apply_purge(store, plan, now)


def consistent(store: EventStore) -> None:
    """No acknowledgement or snapshot without its screening, and every chain verifies from its anchor."""
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert store.db.execute("SELECT COUNT(*) FROM acknowledgements a LEFT JOIN screenings s "
                            "ON s.id = a.screening_id WHERE s.id IS NULL").fetchone()[0] == 0
    assert store.verify_chains() == []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.db", snapshots_dir=tmp_path / "snaps", clock=Wall()) as s:
        yield s


# ---------------------------------------------------------------------- images


def test_images_older_than_the_policy_go_while_their_screenings_stay(store: EventStore) -> None:
    old = screen(store, days_ago(10), "fever")
    normal = screen(store, days_ago(9))
    recent = screen(store, days_ago(3), "elevated")
    old_files = [s["file"] for s in store.snapshots(old)]
    recent_files = [s["file"] for s in store.snapshots(recent)]
    assert len(old_files) == 2 and all(f.is_file() for f in old_files + recent_files)

    plan, result = purge_now(store)

    assert [s.screening_id for s in plan.snapshots] == [old, old]
    assert plan.snapshot_times == (store.screening(old)["wall_time"],) * 2
    assert not any(f.exists() for f in old_files) and all(f.is_file() for f in recent_files)
    assert store.snapshots(old) == [] and len(store.snapshots(recent)) == 2
    assert ids(store, "screenings") == [old, normal, recent], "the record of the alarm outlives its picture"
    assert (result.snapshot_rows, result.files_deleted, result.files_missing, result.screenings) == (2, 2, 0, 0)
    consistent(store)


def test_a_snapshot_file_already_gone_is_counted_not_fatal(store: EventStore) -> None:
    sid = screen(store, days_ago(8), "fever")
    store.snapshots(sid)[0]["file"].unlink()
    _, result = purge_now(store)
    assert (result.files_deleted, result.files_missing) == (1, 1)
    assert store.snapshots(sid) == []


def test_files_left_by_an_interrupted_purge_are_found_by_name(store: EventStore) -> None:
    sid = screen(store, days_ago(8), "fever")
    files = store.delete_snapshots([s["id"] for s in store.snapshots(sid)])  # rows gone, then "power cut"
    assert len(files) == 2 and all(f.is_file() for f in files)
    young = screen(store, days_ago(1), "fever")
    stranger = store.snapshots_dir / "notes.png"
    stranger.write_bytes(b"not ours")

    plan, result = purge_now(store)

    assert sorted(plan.orphan_files) == sorted(files) and result.orphans_deleted == 2
    assert not any(f.exists() for f in files)
    assert stranger.exists() and all(s["file"].is_file() for s in store.snapshots(young))


def test_orphan_names_are_only_old_store_names_without_rows() -> None:
    names = ["20271120T100000.000Z-00000001-visible.png", "20271120T100000.000Z-00000002-thermal.png",
             "20271130T100000.000Z-00000003-visible.png", "20271120T100000.000Z-00000004-face.png", "x.png"]
    known = {"20271120T100000.000Z-00000002-thermal.png"}
    assert orphan_snapshot_names(names, known, "2027-11-24T12:00:00.000Z") == [names[0]]


# ---------------------------------------------------------------------- records


def test_records_older_than_the_policy_go_and_the_chains_resume_at_the_anchor(store: EventStore) -> None:
    s1 = screen(store, days_ago(400), "fever")
    ack(store, s1, days_ago(400))
    screen(store, days_ago(399))
    s3 = screen(store, days_ago(398), "elevated")
    a2 = ack(store, s3, days_ago(398))
    s4 = screen(store, days_ago(10))
    e1 = event(store, days_ago(500))
    e2 = event(store, days_ago(1))
    late = event(store, days_ago(600))  # logged late with its own, older time: waits for e2 to go
    kept_files = [s["file"] for s in store.snapshots(s1) + store.snapshots(s3)]

    plan, result = purge_now(store)

    assert (plan.screenings.through_id, plan.screenings.count) == (s3, 3)
    assert (plan.screenings.oldest, plan.screenings.newest) == (utc_iso(days_ago(400)), utc_iso(days_ago(398)))
    assert (plan.acknowledgements.through_id, plan.acknowledgements.count) == (a2, 2)
    assert (plan.system_events.through_id, plan.system_events.count) == (e1, 1)
    assert ids(store, "screenings") == [s4] and ids(store, "acknowledgements") == []
    assert ids(store, "system_events")[:2] == [e2, late]
    assert not any(f.exists() for f in kept_files), "the images of purged screenings go with them"
    assert (result.screenings, result.acknowledgements, result.system_events, result.snapshot_rows) == (3, 2, 1, 4)
    consistent(store)

    # The chains go on from the anchors, and a later purge anchors again.
    s5 = screen(store, days_ago(0), "fever")
    ack(store, s5, NOW)
    event(store, NOW)
    consistent(store)
    purge_now(store, now=NOW + timedelta(days=360))  # s4 is 370 days old by then
    assert ids(store, "screenings") == [s5] and ids(store, "system_events")[0] == e2  # 361 days old: stays
    consistent(store)


def test_deleting_a_row_in_the_middle_after_a_purge_is_still_caught(store: EventStore) -> None:
    screen(store, days_ago(400))
    kept = [screen(store, days_ago(d)) for d in (30, 20, 10)]
    purge_now(store)
    assert store.verify_chains() == []
    store.db.execute("DELETE FROM screenings WHERE id = ?", [kept[1]])
    store.db.conn.commit()
    (found,) = store.verify_chains()
    assert (found.table, found.row_id) == ("screenings", kept[2])


def test_a_surviving_acknowledgement_keeps_its_screening_and_every_later_one(store: EventStore) -> None:
    s1 = screen(store, days_ago(400), "fever")
    s2 = screen(store, days_ago(400), "fever")
    s3 = screen(store, days_ago(399))
    s4 = screen(store, days_ago(2), "fever")
    a1 = ack(store, s1, days_ago(400))
    ack(store, s4, days_ago(2))
    ack(store, s2, days_ago(1))  # the old alarm was looked at again this week: its ack is after s4's

    plan, _ = purge_now(store)

    assert (plan.screenings.through_id, plan.acknowledgements.through_id) == (s1, a1)
    assert ids(store, "screenings") == [s2, s3, s4]
    assert [a["screening_id"] for a in store.acknowledgements()] == [s4, s2]
    consistent(store)


@pytest.mark.parametrize(
    ("through", "acks", "expected"),
    [
        (5, [], (5, 0)),
        (5, [(1, 2), (2, 5)], (5, 2)),
        (3, [(1, 1), (2, 4), (3, 2)], (1, 1)),  # ack 3 stays behind ack 2, so screening 2 stays
        (3, [(7, 9), (8, 1)], (0, 0)),  # the first ack stays: nothing older than its screening may go
        (0, [(1, 1)], (0, 0)),
    ],
)
def test_consistent_prefixes(through, acks, expected) -> None:
    assert consistent_prefixes(through, acks) == expected


def test_exports_are_never_purged(store: EventStore) -> None:
    store._clock.now = days_ago(900)  # type: ignore[attr-defined]
    export_id = store.record_export({"operator": "audit-1", "period_from": "a", "period_to": "b", "filters": "{}",
                                     "format": "csv", "row_count": 0, "include_images": 0, "path": "x.csv",
                                     "sha256": "0" * 64})
    screen(store, days_ago(800))
    screen(store, days_ago(1))
    plan, _ = purge_now(store)
    assert "exports" not in {p.table for p in plan.prefixes}
    assert ids(store, "exports") == [export_id]


def test_the_purge_is_logged_as_one_system_event_without_personal_data(store: EventStore) -> None:
    screen(store, days_ago(400), "fever")
    screen(store, days_ago(8), "fever")
    _, result = purge_now(store)
    (logged,) = [e for e in store.system_events() if e["kind"] == "retention_purge"]
    assert logged["id"] == result.event_id and logged["wall_time"] == "2027-12-01T12:00:00.000Z"
    detail = json.loads(logged["detail"])
    assert detail["snapshot_rows"] == 4 and detail["screenings"] == 1 and detail["files_deleted"] == 4
    assert detail["images_cutoff"] == "2027-11-24T12:00:00.000Z"
    assert detail["records_cutoff"] == "2026-12-01T12:00:00.000Z"
    assert detail["through"] == {"acknowledgements": 0, "screenings": 1, "system_events": 0}
    assert not {"skin_c", "body_c", "path", "file"} & set(detail)
    assert " " not in logged["detail"], "compact"
    # A purge that finds nothing still says that retention ran.
    _, again = purge_now(store)
    assert json.loads(again.event.detail)["snapshot_rows"] == 0


def test_the_plan_changes_nothing(store: EventStore) -> None:
    screen(store, days_ago(400), "fever")
    before = {t: ids(store, t) for t in ("screenings", "snapshots", "system_events")}
    plan = plan_purge(store, NOW, RetentionPolicy())
    assert plan.screenings.count == 1 and len(plan.snapshots) == 2 and not plan.empty
    assert {t: ids(store, t) for t in before} == before and not store.db.conn.in_transaction
    assert all(s.file.is_file() for s in plan.snapshots)


# ---------------------------------------------------------------------- schedule


def test_the_schedule_is_due_at_start_up_and_then_every_24_hours(store: EventStore) -> None:
    schedule = RetentionSchedule(RetentionPolicy(), clock=lambda: 42.5)
    screen(store, days_ago(8), "fever")
    assert schedule.due(NOW)
    logged = schedule.run(store, NOW)
    assert (logged.kind, logged.t) == ("retention_purge", 42.5)
    assert json.loads(logged.detail)["snapshot_rows"] == 2
    assert not schedule.due(NOW + timedelta(hours=23, minutes=59))
    assert schedule.due(NOW + timedelta(hours=24))
    assert schedule.due(NOW - timedelta(hours=1)), "a wall clock set back does not postpone retention"


# ---------------------------------------------------------------------- policy and settings


@pytest.mark.parametrize(
    ("images", "records", "key"),
    [(0, 365, "images_days"), (-1, 365, "images_days"), (7, float("nan"), "records_days"),
     (7, float("inf"), "records_days"), (400, 365, "images_days"), (True, 365, "images_days"),
     (7, "a year", "records_days"),
     # issue 13: retention shorter than the station's purpose allows, or in fractions of a day
     (0.00001, 0.00001, "images_days"), (0.5, 365, "images_days"), (7, 365.5, "records_days"),
     (7, 29, "records_days"), (1, 7, "records_days")],
)
def test_a_bad_policy_names_its_key(images, records, key) -> None:
    with pytest.raises(ValueError, match=f"^{key}: ") as info:
        RetentionPolicy(images, records)
    assert "\n" not in str(info.value)


def test_retention_settings_round_trip_and_old_files_get_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(StationConfig(retention_images_days=3.0, retention_records_days=90.0), path)
    loaded = load_config(path)
    assert (loaded.retention_images_days, loaded.retention_records_days) == (3.0, 90.0)
    path.write_text('palette = "grey"\n')  # a settings file from before retention
    assert (load_config(path).retention_images_days, load_config(path).retention_records_days) == (7.0, 365.0)
    path.write_text("retention_images_days = 3\n")  # TOML integers are days too
    assert load_config(path).retention_images_days == 3.0


@pytest.mark.parametrize(
    ("text", "key"),
    [("retention_images_days = 0", "retention_images_days"),
     ("retention_images_days = 40\nretention_records_days = 35", "retention_images_days"),
     ("retention_images_days = 0.00001\nretention_records_days = 0.00001", "retention_images_days"),
     ("retention_records_days = 7", "retention_records_days"),
     ('retention_records_days = "a year"', "retention_records_days"),
     ("retention_records_days = nan", "retention_records_days")],
)
def test_a_bad_retention_setting_names_its_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(StationError, match=key):
        load_config(path)


# ---------------------------------------------------------------------- station purge


@pytest.fixture
def station_db(tmp_path: Path, monkeypatch) -> Path:
    """A closed station log beside its snapshots directory, with rows of every age; ``station purge`` runs at NOW."""
    monkeypatch.setattr("station.cli.purge._now", lambda: NOW)
    path = tmp_path / "station.db"
    with EventStore(path, snapshots_dir=snapshots_dir_for(path)) as store:
        screen(store, days_ago(400), "fever")
        event(store, days_ago(400))
        screen(store, days_ago(10), "fever")
        screen(store, days_ago(2), "fever")
    return path


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_dry_run_shows_what_would_go_and_changes_nothing(station_db: Path) -> None:
    snaps = snapshots_dir_for(station_db)
    db_bytes, files = station_db.read_bytes(), files_of(snaps)

    result = CliRunner().invoke(purge, ["--dry-run", "--db", str(station_db)])

    assert result.exit_code == 0, result.output
    assert "dry run: nothing was deleted" in result.output
    assert "snapshots               4 of 2 screenings" in result.output
    assert "screenings              1 rows (ids up to 1)" in result.output
    assert "system_events           1 rows" in result.output
    assert "exports           kept" in result.output
    assert sum(name in result.output for name in files) == 4, "the files that would go are listed"
    assert station_db.read_bytes() == db_bytes and files_of(snaps) == files
    assert sorted(p.name for p in station_db.parent.iterdir()) == ["station-snapshots", "station.db"]


def test_purge_deletes_prints_and_logs(station_db: Path) -> None:
    result = CliRunner().invoke(purge, ["--db", str(station_db)])

    assert result.exit_code == 0, result.output
    assert "purged: 4 snapshots (4 files deleted, 0 already missing)" in result.output
    assert "1 screenings, 0 acknowledgements, 1 system events; logged as system event 2" in result.output
    assert len(list(snapshots_dir_for(station_db).iterdir())) == 2
    with EventStore(station_db) as store:
        assert [e["kind"] for e in store.system_events()] == ["retention_purge"]
        assert len(store.screenings()) == 2
        assert store.verify_chains() == []


def test_purge_takes_its_defaults_from_the_settings(station_db: Path) -> None:
    save_config(StationConfig(retention_images_days=1.0, retention_records_days=30.0), default_config_path())
    result = CliRunner().invoke(purge, ["--dry-run", "--db", str(station_db)])
    assert "images older than 1 days" in result.output and "snapshots               6 of 3" in result.output
    assert "records older than 30 days" in result.output and "screenings              1 rows" in result.output
    override = CliRunner().invoke(purge, ["--dry-run", "--db", str(station_db), "--records-days", "1000"])
    assert "records older than 1000 days" in override.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [(["--db", "{missing}"], 1, "no such event store"),
     (["--images-days", "-1"], 2, "--images-days"),
     (["--records-days", "a year"], 2, "--records-days"),
     (["--images-days", "400"], 2, "--images-days: expected at most records-days (365)"),
     (["--images-days", "0.5"], 2, "--images-days: expected whole days from 1"),
     (["--records-days", "7"], 2, "--records-days: expected whole days from 30")],
)
def test_purge_faults_are_one_line(tmp_path: Path, station_db: Path, args, code, message) -> None:
    args = [a.replace("{missing}", str(tmp_path / "nope.db")) for a in args]
    if "--db" not in args:
        args += ["--db", str(station_db)]
    result = CliRunner().invoke(purge, args)
    assert result.exit_code == code and message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "nope.db").exists()


def test_a_purge_past_the_newest_export_still_verifies(store: EventStore) -> None:
    screen(store, days_ago(500))
    store._clock.now = days_ago(499)  # type: ignore[attr-defined]
    store.record_export({"operator": "audit-1", "period_from": "a", "period_to": "b", "filters": "{}",
                         "format": "csv", "row_count": 1, "include_images": 0, "path": "x.csv", "sha256": "0" * 64})
    screen(store, days_ago(1))
    purge_now(store)
    assert store.verify_chains() == []


def test_the_engine_purges_at_start_up(tmp_path, face_model) -> None:
    """A station started on an old log purges it before screening, and says so in the log."""
    from station.acquire.intake import open_intake
    from station.cli.main import DEMO_RECORDING
    from station.headless import open_station, snapshots_dir_for

    db = tmp_path / "station.db"
    old = datetime.now(UTC) - timedelta(days=400)
    with EventStore(db, snapshots_dir=snapshots_dir_for(db)) as log:
        log.record_system_event(SystemEvent("started", 0.0, "a year ago"), wall_time=old)
    with open_intake(None, None, DEMO_RECORDING, None, fast=True, status=None) as intake:
        with open_station(intake, db=db) as station:
            for _ in zip(range(3), station.run(), strict=False):
                pass
    with EventStore(db) as log:
        kinds = [e["kind"] for e in log.system_events()]
        assert "retention_purge" in kinds and "a year ago" not in [e["detail"] for e in log.system_events()]
        assert log.verify_chains() == []


# ---------------------------------------------------------------------- issue 13: retention bounded by purpose


ISSUE_CONFIG = "retention_images_days = 0.00001\nretention_records_days = 0.00001\n"


def test_retention_of_a_second_in_the_settings_purges_nothing_anywhere(station_db: Path) -> None:
    """The issue's config.toml: refused in one line by every path that would purge, and the log left whole."""
    from cli_checks import one_line_error

    from station.cli.main import DEMO_RECORDING, main

    path = default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ISSUE_CONFIG)
    before = station_db.read_bytes(), files_of(snapshots_dir_for(station_db))
    for args in (["--dry-run", "--db", str(station_db)], ["--db", str(station_db)]):
        line = one_line_error(CliRunner().invoke(purge, args))
        assert "retention_images_days: expected whole days from 1 to 36500" in line and "got 1e-05" in line
    run = CliRunner().invoke(main, ["run", "--recording", str(DEMO_RECORDING), "--headless", "--fast", "--db",
                                    str(station_db)])
    assert "retention_images_days" in one_line_error(run)
    assert (station_db.read_bytes(), files_of(snapshots_dir_for(station_db))) == before


def test_the_shortest_retention_allowed_keeps_a_day_of_images_and_30_days_of_records(store: EventStore) -> None:
    screen(store, days_ago(31))
    alarm_last_month = screen(store, days_ago(29), "fever")
    alarm_today = screen(store, days_ago(0.5), "fever")
    _, result = purge_now(store, RetentionPolicy(1, 30))
    assert ids(store, "screenings") == [alarm_last_month, alarm_today]
    assert len(store.snapshots(alarm_today)) == 2 and store.snapshots(alarm_last_month) == []
    assert (result.screenings, result.snapshot_rows) == (1, 2)
    consistent(store)
    assert store.verify_snapshots().breaks == []


def test_whole_days_as_toml_floats_are_accepted() -> None:
    assert RetentionPolicy(7.0, 365.0) == RetentionPolicy(7, 365)
