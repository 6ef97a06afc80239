"""Replay-and-pairing throughput: how many frame pairs per second the intake delivers from a recording.

Decoding must never be the station's bottleneck: a Lepton gives 8.7 pairs a second and a Boson 30, so
the intake should manage hundreds. This replays simulated recordings as fast as they decode (the
``--fast`` path: read both streams, merge by time, pair by nearest timestamp) and prints, per sensor
model and video codec, the pairs per second and what decoding each stream alone costs.

Usage::

    python bench/replay.py                 # makes its recordings in a temporary directory
    python bench/replay.py --people 10 --repeat 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from station.acquire.intake import open_intake
from station.acquire.recording import Recording
from station.sim.simulator import Simulation, SimulationConfig, write_recording
from station.types import FramePair

CASES = [(camera, video) for camera in ("lepton", "boson") for video in ("mp4", "avi", "mkv")]


def make_recording(root: Path, camera: str, video: str, people: int) -> Path:
    out = root / f"{camera}-{video}"
    if not out.exists():
        sim = Simulation(SimulationConfig(people=people, seed=1, thermal_camera=camera, visible_fps=15.0))
        write_recording(sim, out, visible_file=f"visible.{video}")
    return out


def time_pairs(path: Path) -> tuple[int, float]:
    start = time.perf_counter()
    with open_intake(None, None, path, None, fast=True, status=None) as intake:
        n = sum(isinstance(item, FramePair) for item in intake.run())
    return n, time.perf_counter() - start


def time_stream(path: Path, stream: str) -> tuple[int, float]:
    rec = Recording.open(path)
    start = time.perf_counter()
    n = sum(1 for _ in rec.frames(stream))
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is reported")
    parser.add_argument("--dir", type=Path, help="where to keep the recordings (default: a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(f"{'sensor':8} {'video':5} {'thermal':>9} {'visible':>9} {'pairs':>6} "
              f"{'pairs/s':>9} {'thermal fps':>12} {'visible fps':>12}")
        for camera, video in CASES:
            path = make_recording(root, camera, video, args.people)
            rec = Recording.open(path)
            best_pairs = min((time_pairs(path) for _ in range(args.repeat)), key=lambda r: r[1])
            thermal = min((time_stream(path, "thermal") for _ in range(args.repeat)), key=lambda r: r[1])
            visible = min((time_stream(path, "visible") for _ in range(args.repeat)), key=lambda r: r[1])
            n, seconds = best_pairs
            print(
                f"{camera:8} {video:5} {rec.thermal.width}x{rec.thermal.height:<5} "
                f"{rec.visible.width}x{rec.visible.height:<5} {n:6d} {n / seconds:9.0f} "
                f"{thermal[0] / thermal[1]:12.0f} {visible[0] / visible[1]:12.0f}"
            )


if __name__ == "__main__":
    main()
