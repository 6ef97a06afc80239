"""Thermal-only screening on the 14 real kiosk recordings: decisions per file against people, and speed.

    .venv/bin/python bench/thermal_only.py [--data ../shared/data/kiosk-cptv] [--dir /tmp/kiosk-bench]

Imports each CPTV file (``station import``), screens it headless as fast as it decodes (no visible
camera: faces are found in the thermal frames; the reference disc, found in the frames, held at the
kiosk's calibration temperature from ``labels.csv``), and prints per file the decisions (measured, and
``retry`` with its reasons) against the labeller's ``people_scanned``, then the frames per second the
engine sustained on the 160x120 frames (import excluded).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from station.headless import open_station  # noqa: E402
from station.importers.cptv import import_cptv  # noqa: E402
from station.intake import open_intake  # noqa: E402
from station.pipeline import Tick  # noqa: E402
from station.types import ScreeningDecision  # noqa: E402


def screen(recording: Path, reference_c: float | None) -> tuple[list[ScreeningDecision], int, float]:
    decisions: list[ScreeningDecision] = []
    frames = 0
    with open_intake(None, None, recording, None, fast=True, status=None, reference_c=reference_c) as intake:
        with open_station(intake, db=None) as station:
            start = time.perf_counter()
            for item in station.run():
                if isinstance(item, Tick):
                    frames += 1
                    decisions += item.decisions
                elif isinstance(item, ScreeningDecision):
                    decisions.append(item)
            elapsed = time.perf_counter() - start
    return decisions, frames, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kiosk-cptv")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    labels = {row["file"]: row for row in csv.DictReader(open(args.data / "labels.csv", newline=""))}
    total_frames, total_s, exact_decisions, exact_measured, false_alarms = 0, 0.0, 0, 0, 0
    print(f"{'file':<44}{'people':>7}{'decided':>9}{'measured':>10}  retry reasons / levels")
    try:
        for name, row in sorted(labels.items()):
            out = folder / Path(name).stem
            if not out.exists():
                import_cptv(args.data / name, out)
            # each kiosk's reference disc is held at its own calibration temperature (labels.csv)
            decisions, frames, elapsed = screen(out, float(row["kiosk_calibration_c"]))
            total_frames += frames
            total_s += elapsed
            people = int(row["people_scanned"])
            measured = [d for d in decisions if d.level != "retry"]
            exact_decisions += len(decisions) == people
            exact_measured += len(measured) == people
            if people == 0:
                false_alarms += sum(d.level in ("elevated", "fever") for d in decisions)
            notes = ", ".join(f"{d.level} {d.body_c:.1f}" if d.level != "retry"
                              else "retry:" + "+".join(sorted(d.quality)) for d in decisions)
            print(f"{name[:43]:<44}{people:>7}{len(decisions):>9}{len(measured):>10}  {notes}")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    n = len(labels)
    print(f"decisions per file exact: {exact_decisions}/{n}; measured decisions exact: {exact_measured}/{n}; "
          f"alarms on empty recordings: {false_alarms}")
    print(f"engine speed, thermal only (160x120 frames, detection on every frame as needed): "
          f"{total_frames / total_s:.1f} frames/s ({total_frames} frames in {total_s:.1f} s)")


if __name__ == "__main__":
    main()
