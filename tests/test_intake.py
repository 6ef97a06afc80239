"""Frames into the station: the same pairs whether replayed fast, replayed live, or simulated live."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from station.acquire.intake import open_intake
from station.acquire.recording import Recording, RecordingWriter, ThermalStreamInfo
from station.sim.simulator import Simulation, SimulationConfig, write_recording
from station.types import Frame, FramePair, SystemEvent


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    sim = Simulation(SimulationConfig(people=1, seed=4))
    return write_recording(sim, tmp_path_factory.mktemp("intake") / "rec")


def _pairs(items) -> list[FramePair]:
    return [item for item in items if isinstance(item, FramePair)]


def test_fast_replay_pairs_each_thermal_frame_with_the_nearest_visible(recording):
    rec = Recording.open(recording)
    with open_intake(None, None, recording, None, fast=True, status=None) as intake:
        items = list(intake.run())
        closing = intake.finish()
    pairs = _pairs(items)
    assert len(pairs) == rec.count("thermal")
    visible_t = rec.times("visible")
    for pair in pairs[::10]:
        assert pair.visible.t == visible_t[np.argmin(np.abs(visible_t - pair.t))]
        assert abs(pair.skew) <= 0.5 / rec.visible.fps + 0.002
    assert isinstance(items[0], SystemEvent) and items[0].kind == "started"
    assert closing[-1].kind == "stopped"


def test_realtime_replay_runs_on_capture_threads_at_the_recorded_pace(recording):
    with open_intake(None, None, recording, None, fast=False, status=None) as intake:
        start = time.monotonic()
        pairs = []
        for item in intake.run():
            if isinstance(item, FramePair):
                pairs.append(item)
                if len(pairs) == 12:
                    break
        elapsed = time.monotonic() - start
        intake.stop()
    # 12 thermal frames at 8.7 Hz take about 1.3 s of recording time, so about as long to replay.
    assert pairs[-1].t - pairs[0].t == pytest.approx(11 / 8.7, abs=0.05)
    assert elapsed >= pairs[-1].t - 0.1
    assert all(p.visible is not None and abs(p.skew) < 0.06 for p in pairs)


def test_live_simulator_delivers_pairs_from_one_scene():
    with open_intake("sim:9", "sim:9", None, None, status=None) as intake:
        pairs = []
        for item in intake.run():
            if isinstance(item, FramePair):
                pairs.append(item)
                if len(pairs) == 6:
                    break
        intake.stop()
    assert [p.thermal.index for p in pairs] == list(range(pairs[0].thermal.index, pairs[0].thermal.index + 6))
    assert all(abs(p.skew) < 0.06 for p in pairs)


def test_thermal_only_recording_pairs_without_visible(tmp_path):
    info = ThermalStreamInfo(width=32, height=24, fps=9.0, camera="test", encoding="tlinear-centikelvin")
    with RecordingWriter(tmp_path / "t", source="import", thermal=info, visible=None) as writer:
        for k in range(5):
            writer.write(Frame(np.full((24, 32), 30000, np.uint16), t=k / 9.0, index=k))
    with open_intake(None, None, tmp_path / "t", None, fast=True, status=None) as intake:
        pairs = _pairs(intake.run())
    assert len(pairs) == 5 and all(p.visible is None for p in pairs)


def test_importing_cv2_leaves_qt_plugin_path_alone():
    """opencv-python (not -headless) points Qt at its own plugins on import and breaks PyQt6."""
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM_PLUGIN_PATH"}
    code = "import os, cv2; print(repr(os.environ.get('QT_QPA_PLATFORM_PLUGIN_PATH')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def test_headless_commands_never_load_qt():
    code = (
        "import sys, station.cli.main, station.acquire.intake, station.sim.simulator\n"
        "import station.acquire.sources.registry, station.cli.doctor\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(station.cli.main.main, ['doctor'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('PyQt6', 'ui'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_replay_events_are_on_the_recordings_clock(recording):
    rec = Recording.open(recording)
    with open_intake(None, None, recording, None, fast=False, speed=8.0, status=None) as intake:
        items = list(intake.run())
        closing = intake.finish()
    finished = [e for e in [*items, *closing] if isinstance(e, SystemEvent) and e.kind == "source_finished"]
    assert len(finished) == 2
    assert all(0 <= e.t <= rec.duration + 0.5 for e in finished), [e.t for e in finished]
