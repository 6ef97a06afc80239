"""Thermal-only screening on the 14 real kiosk recordings: decisions per file against people, and speed.

    .venv/bin/python bench/thermal_only.py [--data ../shared/data/kiosk-cptv] [--dir /tmp/kiosk-bench]
                                           [--returns] [--no-returns]

Imports each CPTV file (``station import``), screens it headless as fast as it decodes (no visible
camera: faces are found in the thermal frames; the reference disc, found in the frames, held at the
kiosk's calibration temperature from ``labels.csv``), and prints per file the people the labeller counted,
the decisions (and of those, the measured ones: a temperature, not ``retry``) with their levels and
``retry`` reasons, then the totals and the frames per second the engine sustained on the 160x120 frames
(import excluded).

``--returns`` also screens real recordings spliced (:func:`splice`) into the cases one person, one
decision is about: a person who vanishes from the view where they stood and is back 2-4 s later (a step
out of the zone and back: one decision), and two different people in succession at the same spot 1.4-3 s
apart (two). ``--no-returns`` screens as the station did before it recognised returns
(``THERMAL_ONLY_RETURN_S = 0``), for comparison.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import station.pipeline  # noqa: E402
from station.acquire.importers.cptv import import_cptv  # noqa: E402
from station.acquire.intake import open_intake  # noqa: E402
from station.acquire.reference_disc import find_reference_disc  # noqa: E402
from station.headless import open_station  # noqa: E402
from station.pipeline import Tick  # noqa: E402
from station.types import ScreeningDecision  # noqa: E402

TKO8 = "TKO8-810440-2021-03-23T22:40:09.052Z.cptv"
FRAME_S = 0.114  # the Lepton kiosks' 8.8 Hz


def _away(seconds: float) -> int:
    return int(round(seconds / FRAME_S))


#: Spliced cases, as (name, source file, people, pieces): each piece a [start, stop) range of the source's
#: frames, played one after the other. A person "steps out" where the recording jumps from their stay to
#: frames of the empty kiosk (taken from the same recording) and "comes back" where it jumps back; two
#: people "in succession at the spot": the first vanishes where they stood instead of walking off.
SPLICES: list[tuple[str, str, int, list[tuple[int, int]]]] = [
    *[(f"134824: out {s:g} s and back", "20210324-134824.cptv", 1,
       [(0, 60), (128, 128 + _away(s)), (60, 164)]) for s in (2, 3, 4)],
    *[(f"815076 (glasses): out {s:g} s and back", "fs-1228-815076-2021-03-29T15:35:10.096Z.cptv", 1,
       [(0, 62), (70, 70 + _away(s)), (62, 105)]) for s in (2, 3, 4)],
    *[(f"TKO8 first: out {s:g} s and back", TKO8, 3, [(0, 45), (152, 152 + _away(s)), (45, 188)])
      for s in (2, 3, 4)],
    *[(f"052519 first: out {s:g} s and back", "20210324-052519.cptv", 2, [(0, 45), (62, 62 + _away(s)), (45, 161)])
      for s in (2, 3, 3.8)],
    ("052519: 1st gone at the spot, 2nd 1.5 s later", "20210324-052519.cptv", 2, [(0, 50), (62, 75), (96, 161)]),
    ("TKO8: 2nd gone at the spot, 3rd 1.4 s later", TKO8, 3, [(0, 105), (108, 120), (120, 188)]),
    ("TKO8: 1st gone at the spot, 2nd 3 s later", TKO8, 3, [(0, 59), (65, 91), (91, 188)]),
    ("TKO8: 1st gone at the spot, 2nd 1.5 s later", TKO8, 3, [(0, 59), (78, 91), (91, 188)]),
]


def splice(src: Path, dst: Path, pieces: list[tuple[int, int]]) -> None:
    """Write a copy of the imported recording ``src`` made of ``pieces`` of its frames, re-timed evenly.

    Each piece after the first is shifted by one constant so the reference disc reads on across the cut as
    the Lepton's slow drift would leave it: a jump would make the blackbody monitor pause screening.
    """
    meta = json.loads((src / "meta.json").read_text())
    frames = np.load(src / "thermal.npy", mmap_mode="r")
    disc = find_reference_disc(np.asarray(frames[:60:3], np.float32) / 100.0 - 273.15)
    x1, y1, x2, y2 = disc.roi if disc is not None else (0, 0, frames.shape[2], frames.shape[1])

    def level(frame: np.ndarray) -> float:
        return float(np.median(frame[y1 : y2 + 1, x1 : x2 + 1]))

    parts: list[np.ndarray] = []
    for start, stop in pieces:
        part = np.asarray(frames[start:stop], np.int32)
        if parts:
            part = part + int(round(level(parts[-1][-1]) - level(part[0])))
        parts.append(part)
    out = np.clip(np.concatenate(parts), 0, 65535).astype(np.uint16)
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    np.save(dst / "thermal.npy", out)
    meta["thermal"]["frames"] = len(out)
    (dst / "meta.json").write_text(json.dumps(meta, indent=2))
    dt = float(np.median(np.diff(np.loadtxt(src / "frames.csv", delimiter=",", skiprows=1, usecols=2))))
    rows = "".join(f"thermal,{k},{k * dt:.3f}\n" for k in range(len(out)))
    (dst / "frames.csv").write_text("stream,index,t\n" + rows)


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


def _notes(decisions: list[ScreeningDecision]) -> str:
    return ", ".join(f"{d.level} {d.body_c:.1f}" if d.level != "retry" else "retry:" + "+".join(sorted(d.quality))
                     for d in decisions)


class Tally:
    """People against decisions and measured decisions, per row and in total."""

    def __init__(self) -> None:
        self.rows = self.people = self.decisions = self.measured = self.exact = self.exact_measured = 0

    def add(self, name: str, people: int, decisions: list[ScreeningDecision]) -> None:
        measured = sum(d.level != "retry" for d in decisions)
        self.rows += 1
        self.people += people
        self.decisions += len(decisions)
        self.measured += measured
        self.exact += len(decisions) == people
        self.exact_measured += measured == people
        print(f"{name[:47]:<48}{people:>7}{len(decisions):>10}{measured:>10}  {_notes(decisions)}")

    def total(self, what: str) -> None:
        print(f"{'total':<48}{self.people:>7}{self.decisions:>10}{self.measured:>10}")
        print(f"one decision per person on {self.exact}/{self.rows} {what}, one measured decision per person on "
              f"{self.exact_measured}/{self.rows}")


def header(what: str) -> str:
    return f"{what:<48}{'people':>7}{'decisions':>10}{'measured':>10}  levels (body °C) / retry reasons"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "kiosk-cptv")
    parser.add_argument("--dir", type=Path, default=None, help="keep the imported recordings here (reused)")
    parser.add_argument("--returns", action="store_true", help="also screen the spliced step-out-and-back cases")
    parser.add_argument("--no-returns", action="store_true", help="screen without recognising returns (before)")
    args = parser.parse_args()
    if args.no_returns:
        station.pipeline.THERMAL_ONLY_RETURN_S = 0.0
    folder = args.dir or Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    labels = {row["file"]: row for row in csv.DictReader(open(args.data / "labels.csv", newline=""))}
    total_frames, total_s, false_alarms = 0, 0.0, 0
    tally = Tally()
    print(header("file"))
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
            if people == 0:
                false_alarms += sum(d.level in ("elevated", "fever") for d in decisions)
            tally.add(name, people, decisions)
        tally.total("files")
        print(f"alarms on empty recordings: {false_alarms}")
        print(f"engine speed, thermal only (160x120 frames, detection on every frame as needed): "
              f"{total_frames / total_s:.1f} frames/s ({total_frames} frames in {total_s:.1f} s)")
        if args.returns:
            print()
            print(header("spliced recording"))
            spliced = Tally()
            for case, name, people, pieces in SPLICES:
                out = folder / "spliced" / case.replace(" ", "_").replace(":", "").replace(",", "")
                source = folder / Path(name).stem
                splice(source, out, pieces)
                decisions, _, _ = screen(out, float(labels[name]["kiosk_calibration_c"]))
                spliced.add(case, people, decisions)
            spliced.total("spliced recordings")
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
