"""``station doctor`` makes the window's own first check: can Qt's platform plugin start here?

The answer comes from the same child-process probe ``station demo`` runs (Qt aborts the process that
tries and fails), so the technician sees the same line, with the same fix, without opening anything.
"""

from __future__ import annotations

from click.testing import CliRunner
from test_qt_probe import free_display

from station.cli.main import DEMO_RECORDING, main


def window_line(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.split()[1:2] == ["window"]]
    return line


def test_doctor_fails_the_window_on_a_display_nothing_listens_on(monkeypatch):
    display = free_display()
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", display)
    result = CliRunner().invoke(main, ["doctor", "--recording", str(DEMO_RECORDING)])
    assert result.exit_code == 1
    line = window_line(result.output)
    assert line.startswith("FAIL  window ")
    assert f"display {display} cannot be reached" in line and f"start the X server for {display}" in line


def test_doctor_only_warns_where_there_is_no_display(monkeypatch):
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["doctor", "--recording", str(DEMO_RECORDING)])
    line = window_line(result.output)
    assert line.startswith("warn  window ") and "DISPLAY is not set" in line
    assert line.endswith("(headless screening works)")


def test_doctor_passes_the_window_offscreen(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    result = CliRunner().invoke(main, ["doctor", "--recording", str(DEMO_RECORDING)])
    assert window_line(result.output) == "ok    window         Qt's offscreen platform plugin starts"
