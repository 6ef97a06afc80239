"""The window's first step on a desktop: ask a child process whether Qt's platform plugin starts.

Qt answers a missing library or an unreachable display by aborting the process (exit 134) with its own
multi-line message. These tests run the real probe child (and the real ``station demo``/``run``) in the
situations that used to abort: a display nothing listens on, and a library hidden by an empty file of
its name on LD_LIBRARY_PATH. Each must end in one line that says why and names the fix, then screening
headless; never exit 134.
"""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest

from station.cli.main import DEMO_RECORDING
from station.qt_probe import debian_package, diagnose, probe_platform, x_display_problem

QT_ABORT = 134


def desktop_env(**extra: str) -> dict[str, str]:
    """This process's environment as a desktop session would have it: no offscreen, no inherited display."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "LD_LIBRARY_PATH")}
    env.update(extra)
    return env


def free_display() -> str:
    """An X display number nothing listens on (neither the socket file nor the abstract socket)."""
    for number in range(99, 300):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and x_display_problem(f":{number}"):
            return f":{number}"
    pytest.skip("no free X display number")


@contextmanager
def listening_display():
    """A display whose socket accepts connections (an abstract unix socket, as an X server binds), so
    that only the library is at fault: Qt fails to load its plugin before it would ever speak X."""
    display = free_display()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0/tmp/.X11-unix/X{display[1:]}")
        server.listen(8)
        yield display


@pytest.fixture
def hidden_library(tmp_path):
    """A directory holding an empty libxcb-icccm.so.4: on LD_LIBRARY_PATH it hides the real one."""
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (libdir / "libxcb-icccm.so.4").write_bytes(b"")
    return libdir


def station(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def window_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "window cannot open" in line]


def assert_no_qt_abort(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != QT_ABORT and result.returncode >= 0, result.stderr[-2000:]
    assert "Aborted" not in result.stderr and "could not be initialized" not in result.stderr


@pytest.mark.slow
def test_an_unreachable_display_is_named_and_the_demo_screens_headless(tmp_path, face_model):
    display = free_display()
    result = station("demo", "--fast", "--db", str(tmp_path / "s.db"), env=desktop_env(DISPLAY=display))
    assert_no_qt_abort(result)
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = window_lines(result.stderr)
    assert f"display {display} cannot be reached" in line and f"start the X server for {display}" in line
    assert line.endswith("; screening headless")
    events = [json.loads(row) for row in result.stdout.splitlines() if row.startswith("{")]
    assert any(e["type"] == "screening" for e in events), "the demo's visitors, screened headless"
    assert "screened:" in result.stderr


@pytest.mark.slow
def test_a_hidden_library_is_named_with_its_fix_and_run_screens_headless(tmp_path, hidden_library, face_model):
    events = tmp_path / "events.jsonl"
    with listening_display() as display:
        env = desktop_env(DISPLAY=display, QT_QPA_PLATFORM="xcb", LD_LIBRARY_PATH=str(hidden_library))
        result = station("run", "--recording", str(DEMO_RECORDING), "--fast", "--db", str(tmp_path / "s.db"),
                         "--events", str(events), env=env)
    assert_no_qt_abort(result)
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = window_lines(result.stderr)
    assert f"cannot load {hidden_library}/libxcb-icccm.so.4 (file too short)" in line
    assert f"take {hidden_library} off LD_LIBRARY_PATH" in line
    if ctypes.util.find_library("xcb-icccm") is None:  # not installed here either: the apt line says so
        assert "apt-get install " in line and "libxcb-icccm4" in line
    assert "display" not in line.split("; fix:")[0], "the display answers: only the library is at fault"
    assert line.endswith("; screening headless")
    screenings = [json.loads(row) for row in events.read_text().splitlines() if '"screening"' in row]
    assert screenings, "screened headless, each decision a JSON line"


def test_a_screenshot_with_an_unreachable_display_is_drawn_offscreen(tmp_path, face_model):
    out = tmp_path / "demo.png"
    result = station("demo", "--screenshot", str(out), "--after", "2", "--fast", "--db", str(tmp_path / "s.db"),
                     env=desktop_env(DISPLAY=free_display()))
    assert_no_qt_abort(result)
    assert result.returncode == 0, result.stderr[-2000:]
    [line] = window_lines(result.stderr)
    assert line.endswith("; drawing the screenshot offscreen")
    assert out.stat().st_size > 10_000


def test_offscreen_starts_as_before():
    probe = probe_platform(desktop_env(QT_QPA_PLATFORM="offscreen"))
    assert probe.ok and probe.platform == "offscreen", probe.message()


def test_the_probe_names_the_display_nothing_listens_on():
    display = free_display()
    probe = probe_platform(desktop_env(DISPLAY=display, QT_QPA_PLATFORM="xcb"))
    assert not probe.ok and probe.platform == "xcb"
    assert f"display {display} cannot be reached (nothing listens on /tmp/.X11-unix/X{display[1:]})" in probe.cause
    assert "\n" not in probe.message()


def test_the_probe_names_a_hidden_library(hidden_library):
    with listening_display() as display:
        probe = probe_platform(desktop_env(DISPLAY=display, LD_LIBRARY_PATH=str(hidden_library)))
    assert not probe.ok and "libxcb-icccm.so.4" in probe.missing
    assert probe.message().startswith("the window cannot open: Qt's xcb plugin cannot load ")


def test_a_probe_that_times_out_is_a_failure_of_its_own():
    probe = probe_platform(desktop_env(QT_QPA_PLATFORM="offscreen"), timeout_s=0.001)
    assert not probe.ok and "did not start within 0.001 s" in probe.cause
    assert "--headless" in probe.fix


def test_an_unknown_platform_name_is_named_with_the_ones_there_are():
    probe = probe_platform(desktop_env(QT_QPA_PLATFORM="nosuch"))
    assert not probe.ok and "QT_QPA_PLATFORM=nosuch names no Qt platform plugin" in probe.cause
    assert "offscreen" in probe.cause and "xcb" in probe.cause


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb (apt-get install xvfb)")
def test_a_real_x_display_opens_or_names_only_the_missing_libraries():
    """Under a real X server the display is never blamed: the window starts, or the libraries PyQt6's
    wheel leaves to the system are named with their packages (a Debian desktop's usual case)."""
    display = free_display()
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while x_display_problem(display) and time.monotonic() < deadline:
            time.sleep(0.1)
        probe = probe_platform(desktop_env(DISPLAY=display))
    finally:
        server.terminate()
        server.wait(10)
    if probe.ok:
        assert probe.platform == "xcb"
        return
    assert "display" not in probe.cause and probe.packages, probe.message()
    assert all(debian_package(name) in probe.packages for name in probe.missing)
    assert "apt-get install " + " ".join(probe.packages) in probe.fix


def test_qt_s_own_words_become_one_line_with_the_apt_line():
    """Qt's output on a Debian desktop without libxcb-icccm4 (QT_DEBUG_PLUGINS=1), as it comes."""
    plugin = "/venv/PyQt6/Qt6/plugins/platforms/libqxcb.so"
    output = (
        f'qt.core.library: "{plugin}" cannot load: Cannot load library {plugin}: '
        "libxcb-icccm.so.4: cannot open shared object file: No such file or directory\n"
        'qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin.\n'
        'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.\n'
        "This application failed to start because no Qt platform plugin could be initialized.\n"
    )
    with listening_display() as display:
        probe = diagnose(output, -6, {"DISPLAY": display})
    assert probe.missing == ("libxcb-icccm.so.4",) and probe.packages == ("libxcb-icccm4",)
    assert probe.cause == "Qt's xcb plugin needs libxcb-icccm.so.4, which is not installed"
    assert probe.fix.endswith("apt-get install libxcb-icccm4")
    assert "xcb-cursor0" not in probe.message(), "Qt's boilerplate about xcb-cursor0 is not the cause"


def test_shared_objects_map_to_their_debian_packages():
    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxcb-keysyms.so.1") == "libxcb-keysyms1"
    assert debian_package("libxcb-render-util.so.0") == "libxcb-render-util0"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libxcb-shape.so.0") == "libxcb-shape0"
    assert debian_package("libwayland-cursor.so.0") == "libwayland-cursor0"  # by Debian's naming rule
    assert debian_package("libEGL.so.1") == "libegl1"
    assert debian_package("libglib-2.0.so.0") == "libglib2.0-0"
    assert debian_package("not-a-library") is None


def test_the_display_check_reads_display_names():
    assert x_display_problem("") == "DISPLAY is not set"
    assert "not of the form" in x_display_problem("nonsense")
    with listening_display() as display:
        assert x_display_problem(display) is None
        assert x_display_problem(f"unix{display}.0") is None
