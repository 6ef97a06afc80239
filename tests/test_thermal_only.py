"""Thermal-only screening: faces found in the thermal frames of real kiosk recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from station.cli import main
from station.thermal_faces import ThermalFaceSettings, skin_like, to_grey8
from station.types import Faces

KIOSK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "kiosk-cptv"


@pytest.fixture(scope="module")
def kiosk() -> Path:
    if not (KIOSK / "labels.csv").is_file():  # a fresh clone without ../shared; CI always has it
        pytest.skip(f"needs the real kiosk recordings in {KIOSK} (../shared/data beside the repository)")
    return KIOSK


def _screen(kiosk: Path, tmp_path: Path, name: str) -> list[dict]:
    out = tmp_path / Path(name).stem
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(kiosk / name), str(out)]).exit_code == 0
    result = runner.invoke(main, ["run", "--recording", str(out), "--headless", "--fast", "--db",
                                  str(tmp_path / "station.db")])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith('{"type": "screening"')]


def test_three_people_at_a_kiosk_are_three_decisions(kiosk, tmp_path, face_model):
    decisions = _screen(kiosk, tmp_path, "TKO8-810440-2021-03-23T22:40:09.052Z.cptv")
    assert [d["level"] for d in decisions] == ["normal", "normal", "normal"]
    # an uncorrected Lepton reads canthi a degree or two low: plausible skin, never a fever
    assert all(32.0 < d["skin_c"] < 37.0 for d in decisions)


def test_an_empty_kiosk_recording_raises_nothing(kiosk, tmp_path, face_model):
    assert _screen(kiosk, tmp_path, "fs-1220-814675-2021-03-28T23:26:49.781Z.cptv") == []


def test_the_window_maps_the_room_and_skin_to_the_same_grey_whatever_else_is_in_view():
    frame = np.full((160, 120), 22.0, np.float32)
    frame[40:80, 40:80] = 33.0  # a face
    settings = ThermalFaceSettings(scale=1.0)
    plain = to_grey8(frame, settings)
    frame[150:156, 10:16] = 45.0  # a hot reference disc in the corner
    with_disc = to_grey8(frame, settings)
    assert plain[60, 60] == with_disc[60, 60] == int((33 - 22) / 12 * 255)  # the same grey either way


def test_only_warm_skin_counts_as_a_face():
    frame = np.full((160, 120), 22.0, np.float32)
    frame[20:60, 20:60] = 34.5  # a face
    frame[90:130, 60:100] = 23.0  # a poster of a face: room temperature
    boxes = np.array([[20, 20, 60, 60], [60, 90, 100, 130]], np.float32)
    faces = Faces(xyxy=boxes, score=np.array([0.9, 0.9], np.float32),
                  landmarks=np.zeros((2, 5, 2), np.float32))
    assert skin_like(frame, faces, ThermalFaceSettings()).tolist() == [True, False]
