"""The whole engine on the bundled demo: real model, real recording, real SQLite file.

What a guard and an auditor rely on: one decision per visitor, the febrile visitor raised as an alarm,
every row naming its calibration and model, snapshots for alarms only (and their hashes true), system
events logged, acknowledgements written, and nothing lost when the input fails halfway.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from station.acquire.intake import open_intake
from station.acquire.recording import Recording
from station.cli.main import DEMO_RECORDING, main
from station.errors import StationError
from station.headless import json_line_writer, open_station, run_headless, snapshots_dir_for
from station.log.store import EventStore
from station.screen.body_model import load_glasses_model, load_model

SCREENING_KEYS = {"type", "track_id", "t_first_seen", "t_decided", "skin_c", "body_c", "level", "quality", "site",
                  "u95_c"}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, face_model):
    """``station run`` on the demo, once for the module: its JSON lines and its database."""
    folder = tmp_path_factory.mktemp("demo-run")
    db, events = folder / "station.db", folder / "events.jsonl"
    result = CliRunner().invoke(main, ["run", "--recording", str(DEMO_RECORDING), "--headless", "--fast",
                                       "--db", str(db), "--events", str(events)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    return lines, db


def test_json_lines_keep_the_contract_and_the_recording_clock(demo_run):
    lines, _ = demo_run
    duration = Recording.open(DEMO_RECORDING).duration
    screenings = [line for line in lines if line["type"] == "screening"]
    system = [line for line in lines if line["type"] == "system"]
    assert screenings and all(set(line) == SCREENING_KEYS for line in screenings)
    assert all(set(line) == {"type", "kind", "t", "detail"} for line in system)
    assert all(0.0 <= line["t_first_seen"] <= line["t_decided"] <= duration + 0.5 for line in screenings)
    assert all(0.0 <= line["t"] <= duration + 0.5 for line in system)
    assert "blackbody_ok" in {line["kind"] for line in system}


def test_every_visitor_gets_one_decision_and_the_febrile_one_an_alarm(demo_run):
    lines, _ = demo_run
    truth = Recording.open(DEMO_RECORDING).truth()
    screenings = [line for line in lines if line["type"] == "screening"]
    assert len({line["track_id"] for line in screenings}) == len(screenings), "one decision per track"
    assert len(screenings) == len(truth), "nine visitors, nine decisions"
    hottest = max(truth, key=lambda person: person["body_c"])
    assert hottest["body_c"] > 38.5
    alarms = [line for line in screenings if line["level"] in ("elevated", "fever")]
    # the febrile visitor's canthus is a small hot spot (2.2 mm): read low through the optics, still a fever,
    # and their true body temperature inside the interval the station gave
    assert any(line["level"] == "fever" and abs(line["body_c"] - hottest["body_c"]) <= line["u95_c"]
               for line in alarms)
    measured = [line for line in screenings if line["skin_c"] is not None]
    # body temperature by the shipped skin-to-body model of the site read, at the room temperature the frame showed
    models = {"canthus": load_model(), "forehead_mouth": load_glasses_model()}
    for line in measured:
        model = models[line["site"]]
        low, high = model.ranges["ambient"]
        bounds = sorted((model.predict(line["skin_c"], low), model.predict(line["skin_c"], high)))
        assert bounds[0] - 0.011 <= line["body_c"] <= bounds[1] + 0.011
    # the glasses wearer (lenses hide the canthi) is measured on the forehead and mouth, within the legal 0.5 °C
    [wearer] = [person for person in truth if person["glasses"]]
    [read] = [line for line in measured if line["site"] == "forehead_mouth"]
    assert abs(read["body_c"] - wearer["body_c"]) < 0.5


def test_the_log_names_calibration_model_and_blackbody_for_every_row(demo_run, face_model):
    lines, db = demo_run
    store = EventStore(db)
    try:
        rows = store.screenings()
        assert len(rows) == sum(line["type"] == "screening" for line in lines)
        sha = hashlib.sha256(Path(face_model).read_bytes()).hexdigest()
        for row in rows:
            assert row["calibration_id"] == "simulated-entrance@2026-11-23T10:00:00Z"
            assert row["model_sha256"] == sha
            assert row["blackbody_error_c"] is not None and abs(row["blackbody_error_c"]) < 2.0
        kinds = {event["kind"] for event in store.system_events()}
        assert {"started", "blackbody_ok", "stopped"} <= kinds
    finally:
        store.close()


def test_snapshots_only_for_alarms_and_their_hashes_hold(demo_run):
    _, db = demo_run
    store = EventStore(db, snapshots_dir=snapshots_dir_for(db))
    try:
        for row in store.screenings():
            snaps = store.snapshots(row["id"])
            if row["level"] in ("elevated", "fever"):
                assert {s["kind"] for s in snaps} == {"visible", "thermal"}
                for snap in snaps:
                    data = (snapshots_dir_for(db) / snap["path"]).read_bytes()
                    assert hashlib.sha256(data).hexdigest() == snap["sha256"]
            else:
                assert snaps == [], f"a {row['level']} screening keeps no image"
    finally:
        store.close()


def test_an_alarm_is_acknowledged_through_the_store(demo_run, tmp_path):
    _, db = demo_run
    copy = tmp_path / "copy.db"
    with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # acknowledge on a copy: the module's other tests read the original
    store = EventStore(copy)
    try:
        alarm = next(row for row in store.screenings() if row["level"] == "fever")
        assert alarm["id"] in {row["id"] for row in store.unacknowledged_alarms()}
        store.acknowledge(alarm["id"], "cleared_secondary_check", thermometer_c=36.9, note="oral 36.9")
        assert alarm["id"] not in {row["id"] for row in store.unacknowledged_alarms()}
        [ack] = store.acknowledgements(alarm["id"])
        assert ack["action"] == "cleared_secondary_check" and ack["thermometer_c"] == 36.9
        with pytest.raises(StationError):
            store.acknowledge(alarm["id"], "shrugged")
    finally:
        store.close()


def test_rows_written_before_the_input_fails_stay_written(tmp_path, face_model):
    """A camera that dies mid-shift (here: the intake raising after 20 s) must not cost the log."""
    db = tmp_path / "station.db"
    emitted: list[dict] = []
    with open_intake(None, None, DEMO_RECORDING, None, fast=True, status=None) as intake:
        frames = intake.run

        def failing_run():
            for item in frames():
                if getattr(item, "t", 0.0) > 20.0:
                    raise StationError("thermal camera: device vanished")
                yield item

        intake.run = failing_run  # type: ignore[method-assign]
        with pytest.raises(StationError, match="vanished"), open_station(intake, db=db) as station:
            run_headless(station, json_line_writer_into(emitted))
    decided = [line for line in emitted if line["type"] == "screening"]
    assert decided, "decisions were made before the failure"
    store = EventStore(db)
    try:
        assert len(store.screenings()) == len(decided)
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        store.close()


def json_line_writer_into(sink: list[dict]):
    class Lines:
        def write(self, text: str) -> None:
            sink.extend(json.loads(line) for line in text.splitlines() if line)

        def flush(self) -> None:
            pass

    return json_line_writer(Lines())  # type: ignore[arg-type]


def test_demo_keeps_its_own_database(face_model, private_station_dirs):
    result = CliRunner().invoke(main, ["demo", "--fast", "--headless"])
    assert result.exit_code == 0, result.output
    data = private_station_dirs / "data" / "fever-station"
    assert (data / "demo.db").is_file() and not (data / "station.db").exists()
    assert "logged in" in result.stderr


def _decisions(idle_detect_every: int) -> tuple[list, int]:
    from station.headless import radiometer_for
    from station.pipeline import Station, Tick
    from station.screen.alarm import AlarmPolicy, AlarmSettings
    from station.screen.detect import FaceDetector
    from station.types import ScreeningDecision

    decisions, skipped = [], 0
    with open_intake(None, None, DEMO_RECORDING, None, fast=True, status=None) as intake:
        station = Station(intake, FaceDetector(), intake.profile, radiometer_for(intake, intake.profile),
                          AlarmPolicy(AlarmSettings()), idle_detect_every=idle_detect_every)
        for item in station.run():
            if isinstance(item, Tick):
                decisions += item.decisions
                skipped += not item.detected
            elif isinstance(item, ScreeningDecision):
                decisions.append(item)
    return decisions, skipped


def test_the_idle_detection_schedule_saves_work_without_changing_a_decision(face_model):
    every_pair, none_skipped = _decisions(1)
    scheduled, skipped = _decisions(2)
    assert none_skipped == 0 and skipped > 20, "the entrance is empty or settled often enough to skip"
    # A newcomer far away may be first seen a frame later; what the guard is told, and when, is the same.
    def told(decisions):
        return [(d.t_decided, d.skin_c, d.level, d.quality) for d in decisions]

    assert told(scheduled) == told(every_pair)


def test_an_expired_calibration_pauses_screening_and_says_so(tmp_path, face_model):
    from station.headless import radiometer_for
    from station.pipeline import Station, Tick
    from station.screen.alarm import AlarmPolicy, AlarmSettings
    from station.screen.detect import FaceDetector
    from station.types import ScreeningDecision, SystemEvent

    old = tmp_path / "old.toml"
    text = (DEMO_RECORDING / "calibration.toml").read_text()
    old.write_text(text.replace("2026-11-23T10:00:00Z", "2025-01-02T10:00:00Z"))
    decisions, events = [], []
    with open_intake(None, None, DEMO_RECORDING, old, fast=True, status=None) as intake:
        station = Station(intake, FaceDetector(), intake.profile, radiometer_for(intake, intake.profile),
                          AlarmPolicy(AlarmSettings()))
        for item in station.run():
            if isinstance(item, Tick):
                decisions += item.decisions
                assert item.screening_paused
            elif isinstance(item, ScreeningDecision):
                decisions.append(item)
            elif isinstance(item, SystemEvent):
                events.append(item)
    assert events[0].kind == "calibration_expired" and "days old" in events[0].detail
    assert decisions and all(d.level == "retry" and d.skin_c is None for d in decisions), decisions
    assert any("calibration_expired" in d.quality for d in decisions)


# ------------------------------------------------------------------ judged at the time it was recorded
def _screen(recording: Path, calibration: Path | None = None) -> tuple[list, list]:
    """Decisions and system events of one fast, unlogged run of ``recording``."""
    from station.headless import radiometer_for
    from station.pipeline import Station, Tick
    from station.screen.alarm import AlarmPolicy, AlarmSettings
    from station.screen.detect import FaceDetector
    from station.types import ScreeningDecision, SystemEvent

    decisions, events = [], []
    with open_intake(None, None, recording, calibration, fast=True, status=None) as intake:
        station = Station(intake, FaceDetector(), intake.profile, radiometer_for(intake, intake.profile),
                          AlarmPolicy(AlarmSettings()))
        for item in station.run():
            if isinstance(item, Tick):
                decisions += item.decisions
                events += item.events
            elif isinstance(item, ScreeningDecision):
                decisions.append(item)
            elif isinstance(item, SystemEvent):
                events.append(item)
    return decisions, events


def _profile_made(tmp_path: Path, created: datetime) -> Path:
    path = tmp_path / "profile.toml"
    text = (DEMO_RECORDING / "calibration.toml").read_text()
    path.write_text(text.replace("2026-11-23T10:00:00Z", created.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return path


def test_a_recording_screens_the_same_years_after_it_was_made(demo_run, tmp_path):
    """The demo's 30-day calibration is judged when the demo was recorded, not on the day it is replayed."""
    import time_machine

    lines, _ = demo_run
    today = [(line["track_id"], line["level"], line["body_c"]) for line in lines if line["type"] == "screening"]
    events = tmp_path / "later.jsonl"
    with time_machine.travel(datetime(2031, 7, 1, 12, tzinfo=UTC), tick=True):
        result = CliRunner().invoke(main, ["run", "--recording", str(DEMO_RECORDING), "--headless", "--fast",
                                           "--db", str(tmp_path / "later.db"), "--events", str(events)])
    assert result.exit_code == 0, result.output
    later = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(line["track_id"], line["level"]) for line in later if line["type"] == "screening"] == \
        [(track, level) for track, level, _ in today]
    measured = [line["body_c"] for line in later if line["type"] == "screening"]
    assert measured == pytest.approx([body for _, _, body in today], abs=0.01)
    assert sum(level != "retry" for _, level, _ in today) >= 6  # the demo measures people: the check means something
    assert "calibration_expired" not in {line.get("kind") for line in later}


def test_a_calibration_expires_at_the_frame_that_passes_its_age(tmp_path, face_model):
    """A station running past its calibration's 30 days stops screening there, mid-run, and says when."""
    recorded_at = Recording.open(DEMO_RECORDING).recorded_at
    expires_at_s = 15.0
    created = recorded_at - timedelta(days=30) + timedelta(seconds=expires_at_s)
    decisions, events = _screen(DEMO_RECORDING, _profile_made(tmp_path, created))
    expired = [e for e in events if e.kind == "calibration_expired"]
    assert len(expired) == 1 and expires_at_s <= expired[0].t < expires_at_s + 0.2, expired
    measured = [d for d in decisions if d.skin_c is not None]
    assert measured and all(d.t_decided <= expired[0].t for d in measured)
    assert any("calibration_expired" in d.quality for d in decisions if d.t_decided > expired[0].t)


def test_a_profile_dated_after_the_recording_is_not_trusted(tmp_path, face_model):
    recorded_at = Recording.open(DEMO_RECORDING).recorded_at
    decisions, events = _screen(DEMO_RECORDING, _profile_made(tmp_path, recorded_at + timedelta(days=400)))
    assert events[0].kind == "calibration_expired" and "after this frame" in events[0].detail
    assert decisions and all(d.skin_c is None for d in decisions)


def test_a_recording_that_does_not_say_when_it_was_made_is_screened_and_says_so(tmp_path, face_model):
    """Recordings made before ``recorded_at`` existed still screen; the unchecked age is said, not guessed."""
    copy = tmp_path / "old-recording"
    copy.mkdir()
    for item in DEMO_RECORDING.iterdir():
        (copy / item.name).symlink_to(item)
    meta = json.loads((DEMO_RECORDING / "meta.json").read_text())
    del meta["recorded_at"]
    (copy / "meta.json").unlink()
    (copy / "meta.json").write_text(json.dumps(meta))
    decisions, events = _screen(copy)
    assert events[0].kind == "calibration_age_unknown" and "not checked" in events[0].detail
    assert sum(d.skin_c is not None for d in decisions) >= 6


def test_live_cameras_judge_the_calibration_by_the_wall_clock(tmp_path, face_model):
    """Cameras have no recording time: their frames are taken now, so a live station's profile ages."""
    import time_machine

    from station.acquire.intake import Intake
    from station.acquire.radiometry import Radiometer
    from station.acquire.sources.replay import ReplaySource
    from station.pipeline import Station
    from station.profile.schema import CalibrationProfile
    from station.screen.alarm import AlarmPolicy, AlarmSettings
    from station.screen.detect import FaceDetector

    profile = CalibrationProfile.load(DEMO_RECORDING / "calibration.toml")
    made = datetime(2026, 11, 23, 10, tzinfo=UTC)
    intake = Intake(thermal=ReplaySource(Recording.open(DEMO_RECORDING), "thermal"), visible=None, fast=True,
                    label="cameras", profile=profile, status=None)

    def station() -> Station:
        return Station(intake, FaceDetector(), profile, Radiometer("tlinear-centikelvin", profile),
                       AlarmPolicy(AlarmSettings()))

    with time_machine.travel(made + timedelta(days=29)):
        assert not station().calibration_expired
    with time_machine.travel(made + timedelta(days=31)):
        late = station()
        assert late.calibration_expired and late.calibration_age_days == pytest.approx(31.0)


def test_a_blackbody_roi_off_the_thermal_frame_is_one_line_when_the_frames_arrive(tmp_path, face_model):
    """The profile loads (it does not know its cameras' sizes); the first frames refuse it, in one line."""
    from cli_checks import one_line_error

    text = (DEMO_RECORDING / "calibration.toml").read_text()
    start = text.index("roi = [")
    end = text.index("]", start) + 1
    profile = tmp_path / "elsewhere.toml"
    profile.write_text(text[:start] + "roi = [1000, 1000, 1010, 1010]" + text[end:])
    result = CliRunner().invoke(main, ["run", "--recording", str(DEMO_RECORDING), "--headless", "--fast",
                                       "--calibration", str(profile), "--db", str(tmp_path / "s.db"),
                                       "--events", str(tmp_path / "events.jsonl")])
    line = one_line_error(result)
    assert "roi [1000, 1000, 1010, 1010] is not inside the 160x120 thermal frame" in line


def test_every_measured_decision_carries_its_uncertainty_to_the_log_and_the_export(demo_run, tmp_path):
    """u95_c in the JSON line, the log's row and the auditor's export; a retry has none."""
    import csv

    lines, db = demo_run
    screenings = [line for line in lines if line["type"] == "screening"]
    measured = [line for line in screenings if line["body_c"] is not None]
    assert measured and all(0.2 < line["u95_c"] < 1.5 for line in measured)
    assert all(line["u95_c"] is None for line in screenings if line["body_c"] is None)
    with EventStore.open_read_only(db) as store:
        logged = {row["track_id"]: row["u95_c"] for row in store.screenings()}
    assert {line["track_id"]: line["u95_c"] for line in screenings} == pytest.approx(logged, abs=0.005)
    out = tmp_path / "export.csv"
    result = CliRunner().invoke(main, ["export", "--from", "2020-01-01", "--to", "2090-01-01", "--format", "csv",
                                       "--out", str(out), "--operator", "auditor", "--db", str(db)])
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(out.open(newline="")))
    assert len(exported) == len(screenings)
    assert sorted(float(r["u95_c"]) for r in exported if r["u95_c"]) == \
        pytest.approx(sorted(line["u95_c"] for line in measured), abs=0.005)
