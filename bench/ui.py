"""The window's cost and the alarm's path: CPU used by drawing, and decision-to-banner delay.

Replays ``recordings/demo`` in real time twice: headless (the engine alone) and in the station window
(offscreen unless a display is set). Printed:

- process CPU over the run, in % of one core, for each, and the difference: what the window costs;
- the time spent in the window's ~30 Hz drawing, per frame drawn;
- for every alarm, the delay from the worker emitting the decision to the banner showing it.

Usage::

    python bench/ui.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Run as a script, this file would shadow the ``ui`` package it measures: drop its folder from the path.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from PyQt6.QtCore import QTimer  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from station.acquire.intake import open_intake  # noqa: E402
from station.cli.main import DEMO_RECORDING  # noqa: E402
from station.headless import open_station  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402


def headless(db: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the engine alone, real time."""
    cpu, wall = time.process_time(), time.perf_counter()
    with open_intake(None, None, DEMO_RECORDING, None, fast=False, status=None) as intake:
        with open_station(intake, db=db) as station:
            for _ in station.run():
                pass
    return time.process_time() - cpu, time.perf_counter() - wall


def windowed(db: Path) -> tuple[float, float, MainWindow, list]:
    """(CPU seconds, wall seconds, the window, the alarms shown) with the station window, real time."""
    app = QApplication.instance() or QApplication(sys.argv[:1])

    @contextmanager
    def factory():
        with open_intake(None, None, DEMO_RECORDING, None, fast=False, status=None) as intake:
            with open_station(intake, db=db) as station:
                yield station

    cpu, wall = time.process_time(), time.perf_counter()
    window = MainWindow(factory, db_path=db)
    alarms: list = []
    window.alarm_shown.connect(alarms.append)
    window.resize(1280, 720)
    window.show()
    poll = QTimer()
    poll.timeout.connect(lambda: window.ended and app.quit())
    poll.start(100)
    app.exec()
    used, elapsed = time.process_time() - cpu, time.perf_counter() - wall
    window.shutdown()
    return used, elapsed, window, alarms


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cpu_h, wall_h = headless(Path(folder) / "headless.db")
        cpu_w, wall_w, window, alarms = windowed(Path(folder) / "window.db")
    share_h, share_w = 100 * cpu_h / wall_h, 100 * cpu_w / wall_w
    print(f"demo recording, real time, platform {os.environ['QT_QPA_PLATFORM']}")
    print(f"headless engine: {share_h:5.1f} % of one core ({cpu_h:.1f} s CPU over {wall_h:.1f} s)")
    print(f"with the window: {share_w:5.1f} % of one core ({cpu_w:.1f} s CPU over {wall_w:.1f} s)")
    print(f"the window's share: {share_w - share_h:+.1f} % of one core; drawing "
          f"{1000 * window.draw_seconds / max(window.frames_drawn, 1):.1f} ms per frame, "
          f"{window.frames_drawn / wall_w:.1f} frames/s drawn")
    delays = [1000 * (a.shown_at - a.emitted_at) for a in alarms]
    listed = ", ".join(f"{d:.1f}" for d in delays) or "none"
    print(f"alarms: {len(alarms)}; decision-to-banner delay, ms: {listed}")


if __name__ == "__main__":
    main()
