"""The bundled demo recording: what it must show, and proof that its seed remakes it exactly."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from station.cli import DEMO_RECORDING, DEMO_SETTINGS, main
from station.recording import Recording
from station.sim.simulator import Simulation, SimulationConfig, write_recording


def test_demo_recording_shows_every_case_a_guard_must_see():
    rec = Recording.open(DEMO_RECORDING)
    size = sum(f.stat().st_size for f in DEMO_RECORDING.iterdir())
    assert size <= 15 * 1024 * 1024
    assert 30.0 <= rec.duration <= 60.0
    truth = rec.truth()
    assert len(truth) >= 8
    assert sum(r["body_c"] >= 37.6 for r in truth) >= 2
    assert any(r["glasses"] for r in truth)
    groups = [r["group"] for r in truth]
    assert any(groups.count(g) == 2 for g in groups), "a pair walks up together"


@pytest.mark.slow
def test_demo_recording_regenerates_byte_for_byte(tmp_path):
    out = write_recording(Simulation(SimulationConfig(**DEMO_SETTINGS)), tmp_path / "demo")
    committed = sorted(p.name for p in DEMO_RECORDING.iterdir())
    assert sorted(p.name for p in out.iterdir()) == committed
    for name in committed:
        assert (out / name).read_bytes() == (DEMO_RECORDING / name).read_bytes(), name


def test_demo_command_replays_the_demo():
    result = CliRunner().invoke(main, ["demo", "--fast", "--headless"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["kind"] == "stopped"
    assert last["detail"].startswith(f"{Recording.open(DEMO_RECORDING).count('thermal')} frame pairs")
