"""The command line as an operator meets it: the happy paths, and one clear line for every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.acquire.recording import Recording
from station.cli.main import main


@pytest.fixture(scope="module")
def recording(tmp_path_factory, face_model) -> Path:
    """A small simulated recording; screening it needs the real face model, prepared first."""
    out = tmp_path_factory.mktemp("cli") / "rec"
    result = CliRunner().invoke(main, ["simulate", str(out), "--people", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["-h"])
    assert result.exit_code == 0
    for command in ("demo", "run", "simulate", "cameras", "doctor"):
        assert command in result.output


def test_simulate_writes_a_valid_recording_with_truth(recording):
    rec = Recording.open(recording)
    assert rec.source == "simulated"
    assert rec.visible is not None and (rec.visible.width, rec.visible.height) == (640, 480)
    assert (rec.thermal.width, rec.thermal.height, rec.thermal.encoding) == (160, 120, "tlinear-centikelvin")
    assert len(rec.truth()) == 2
    assert "[registration]" in rec.calibration_text()
    assert rec.extra["simulation"]["config"]["seed"] == 3


def test_run_fast_headless_pairs_every_thermal_frame(recording):
    result = CliRunner().invoke(main, ["run", "--recording", str(recording), "--headless", "--fast"])
    assert result.exit_code == 0, result.output
    lines = _json_lines(result.stdout)
    assert lines[0]["type"] == "system" and lines[0]["kind"] == "started"
    assert lines[-1]["kind"] == "stopped"
    n_thermal = Recording.open(recording).count("thermal")
    assert lines[-1]["detail"].startswith(f"{n_thermal} frame pairs, 0 thermal frames unpaired")
    system = {"type", "kind", "t", "detail"}
    screening = {"type", "track_id", "t_first_seen", "t_decided", "skin_c", "body_c", "level", "quality", "site",
                 "u95_c"}
    assert all(set(line) == (system if line["type"] == "system" else screening) for line in lines)
    assert {line["type"] for line in lines} == {"system", "screening"}, "the two visitors are screened"


def test_run_writes_events_to_a_file(recording, tmp_path):
    events = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        main, ["run", "--recording", str(recording), "--headless", "--fast", "--events", str(events)]
    )
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line).get("kind") for line in events.read_text().splitlines()]
    assert kinds[0] == "started" and kinds[-1] == "stopped"


def test_run_in_a_window_checks_its_inputs_before_qt_starts(tmp_path):
    line = one_line_error(CliRunner().invoke(main, ["run", "--recording", str(tmp_path / "nope")]))
    assert "nope" in line


def test_missing_recording_is_one_line(tmp_path):
    line = one_line_error(CliRunner().invoke(main, ["run", "--recording", str(tmp_path / "nope"), "--headless"]))
    assert "nope" in line


def test_corrupt_recording_names_the_file_and_the_fault(recording, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(recording, broken)
    npy = broken / "thermal.npy"
    npy.write_bytes(npy.read_bytes()[:-1000])
    line = one_line_error(CliRunner().invoke(main, ["run", "--recording", str(broken), "--headless", "--fast"]))
    assert "thermal.npy" in line and "truncated" in line


def test_wrong_calibration_names_the_key(recording, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text((recording / "calibration.toml").read_text().replace("visible_focal_px", "focal"))
    line = one_line_error(CliRunner().invoke(
        main, ["run", "--recording", str(recording), "--calibration", str(bad), "--headless", "--fast"]
    ))
    assert "visible_focal_px" in line


def test_unknown_thermal_source_names_the_kinds():
    line = one_line_error(CliRunner().invoke(main, ["run", "--thermal", "lepon", "--headless"]))
    for kind in ("lepton", "boson", "uvc:N", "sim"):
        assert kind in line


def test_absent_camera_fails_at_once_in_one_line():
    line = one_line_error(CliRunner().invoke(main, ["run", "--thermal", "uvc:57", "--headless"]))
    assert "57" in line


def test_recording_and_cameras_are_exclusive(recording):
    line = one_line_error(CliRunner().invoke(
        main, ["run", "--recording", str(recording), "--thermal", "lepton", "--headless"]
    ))
    assert "--recording" in line


def test_simulate_refuses_to_overwrite_a_recording(recording):
    line = one_line_error(CliRunner().invoke(main, ["simulate", str(recording), "--people", "1"]))
    assert str(recording) in line


def test_simulate_rejects_an_unknown_camera(tmp_path):
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "x"), "--thermal-camera", "tau"])
    assert result.exit_code == 2
    assert "lepton" in result.output and "boson" in result.output


def test_cameras_reports_none_here():
    result = CliRunner().invoke(main, ["cameras"])
    assert result.exit_code == 0
    assert "no cameras found" in result.output


def test_doctor_reports_each_part(recording):
    result = CliRunner().invoke(main, ["doctor", "--recording", str(recording)])
    assert result.exit_code == 0, result.output
    names = [line.split()[1] for line in result.output.splitlines()]
    for name in ("opencv", "onnxruntime", "qt", "recording", "calibration", "cameras"):
        assert name in names
    assert result.output.splitlines()[0].startswith("ok")


def test_doctor_fails_on_a_broken_recording(tmp_path):
    (tmp_path / "meta.json").write_text("{not json")
    result = CliRunner().invoke(main, ["doctor", "--recording", str(tmp_path)])
    assert result.exit_code == 1
    assert any(line.startswith("FAIL  recording") for line in result.output.splitlines())
