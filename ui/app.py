"""The window's entry point: a QApplication, the station window around an engine, and the event loop.

``station demo`` and ``station run`` call :func:`run_window` lazily (the command line is the only place
that imports ``ui``), so the headless commands never load Qt. Before the first QApplication exists, the
platform plugin is tried in a child process (:mod:`station.qt_probe`): where it cannot start, Qt would
abort this process with exit 134, so the window refuses in one line instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from station.config import StationConfig
from station.errors import StationError
from station.qt_probe import probe_platform
from ui.main_window import MainWindow
from ui.worker import StationFactory


def run_window(
    factory: StationFactory,
    *,
    db_path: Path | None,
    kiosk: bool = False,
    size: tuple[int, int] = (1280, 720),
    screenshot: Path | None = None,
    after_s: float = 5.0,
    config: StationConfig | None = None,
    config_path: Path | None = None,
) -> int:
    """Open the station window until it is closed, or grab it to a PNG and quit.

    Parameters
    ----------
    factory
        Opens the engine (on the worker's thread) and closes it when the window does.
    db_path
        The event store acknowledgements are written to; None for none.
    kiosk, size
        Full screen, or a window of ``size`` pixels.
    screenshot, after_s
        With ``screenshot``, grab the window to that PNG after ``after_s`` seconds and quit.
    config, config_path
        The settings the window starts with, and where the settings dialog saves them.

    Returns
    -------
    int
        The process exit code: non-zero when the engine failed or the screenshot could not be
        written, after saying why in one line on stderr.

    Raises
    ------
    StationError
        Qt's platform plugin cannot start here (a library missing, the display unreachable). Asked of
        a child process first, because Qt's own answer is to abort this process (exit 134) with a
        message nobody can act on; the caller (``station demo``/``run``) has usually asked already and
        screens headless instead, this is the last guard for any other caller.
    """
    app = QApplication.instance()
    if app is None:
        probe = probe_platform()
        if not probe.ok:
            raise StationError(probe.message())
        app = QApplication(sys.argv[:1])
    window = MainWindow(factory, db_path=db_path, config=config, config_path=config_path)
    outcome = {"code": 0}
    if kiosk:
        window.showFullScreen()
    else:
        window.resize(*size)
        window.show()
    if screenshot is not None:
        def grab() -> None:
            window.draw_latest()
            if not window.grab().save(str(screenshot), "PNG"):
                print(f"Error: {screenshot}: cannot write the screenshot", file=sys.stderr)
                outcome["code"] = 1
            window.close()

        QTimer.singleShot(int(after_s * 1000), grab)

    def on_failed(message: str) -> None:
        print(f"Error: {message}", file=sys.stderr)
        outcome["code"] = 1

    window.worker.failed.connect(on_failed)
    app.exec()
    window.shutdown()
    return outcome["code"]
