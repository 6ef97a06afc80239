"""Can Qt's platform plugin start here? Asked of a short-lived child process, because Qt's "no" is abort().

When Qt's platform plugin cannot load (a library it links is not installed, as PyQt6's wheels leave
``libxcb-icccm4`` and ``libxcb-keysyms1`` to the system) or cannot reach its display (``DISPLAY=:99``
with nothing there), Qt prints its own multi-line message and calls ``abort()``: the process dies of
SIGABRT, exit 134, before any Python handler runs. Nothing in-process can catch that, so before the
window's ``QApplication`` exists the question is put to a child process with the same environment,
which only creates a ``QGuiApplication`` and says which platform started. Its exit status and Qt's own
diagnostics (``QT_DEBUG_PLUGINS=1`` names the shared object that failed to load) become one line that
says why and names the fix: the exact ``apt-get install`` line, or the display to start.

This module is part of the engine, which never imports PyQt6 or ``ui`` (import-linter's contract): it
only launches the child (its code is a string run by ``python -c``), reads its output, and inspects
the surroundings itself (``ldd``, the X server's socket). ``station demo``/``station run`` call it
before opening the window and screen headless when it says no; ``station doctor`` reports it.

Run as ``python -m station.qt_probe`` it prints the verdict (exit 1 when the window cannot open);
``--missing-packages`` prints the Debian packages Qt's X11 plugin lacks here (``make qt-libs`` installs
them).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: How long the child may take to start Qt. A healthy start takes well under a second; a display that
#: accepts the connection but never answers would otherwise hang the station's start for good.
TIMEOUT_S = 5.0

#: The child: create the application object (this is where Qt loads the platform plugin and connects
#: to the display, or aborts) and say which platform started. A string, so the engine imports no Qt.
CHILD = (
    "import sys\n"
    "from PyQt6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "print('platform=' + app.platformName(), flush=True)\n"
)

#: Shared objects whose Debian package does not follow the usual naming rule (see :func:`debian_package`),
#: plus the ones Qt's X11 plugin is known to need on a desktop install, spelt out for the reader.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-util.so.1": "libxcb-util1",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libz.so.1": "zlib1g",
}

#: Where Debian keeps the system's libraries: a broken file there is reinstalled, not taken off a path.
SYSTEM_LIBRARY_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")

_MISSING = re.compile(r"([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file")
_BROKEN = re.compile(r"Cannot load library \S+?: (/[^:\s]+\.so(?:\.\d+)*): ([^\"\n]+)")
_PLUGIN_FILE = re.compile(r"Cannot load library (\S+?\.so): ")
_PLUGIN = re.compile(r'Could not load the Qt platform plugin "([^"]+)"')
_NO_SUCH_PLUGIN = re.compile(r'Could not find the Qt platform plugin "([^"]*)"')
_AVAILABLE = re.compile(r"Available platform plugins are: ([^\n]+?)\.?$", re.MULTILINE)
_XCB_REFUSED = re.compile(r"could not connect to display ?(\S*)")
_WAYLAND_REFUSED = "Failed to create wl_display"


@dataclass(frozen=True)
class PlatformProbe:
    """What the child found: ``ok`` and the platform that started, or why not and what to do.

    Attributes
    ----------
    ok
        Qt's platform plugin started in the child: the window can open here.
    platform
        The plugin that started, or the one that failed (``"xcb"``), or ``""`` when unknown.
    cause, fix
        One phrase each, for one line on the terminal: what stops the window, and what removes it.
    missing
        Shared objects the plugin could not load (not installed, or a broken file in the way).
    packages
        The Debian packages that provide ``missing``: the ``apt-get install`` line's arguments.
    """

    ok: bool
    platform: str
    cause: str = ""
    fix: str = ""
    missing: tuple[str, ...] = field(default=())
    packages: tuple[str, ...] = field(default=())

    def message(self) -> str:
        """One line for the terminal or the doctor: why the window cannot open, and the fix."""
        if self.ok:
            return f"Qt's {self.platform} platform plugin starts"
        return f"the window cannot open: {self.cause}; fix: {self.fix}"


def probe_platform(env: Mapping[str, str] | None = None, *, timeout_s: float = TIMEOUT_S,
                   python: str | None = None) -> PlatformProbe:
    """Start Qt's platform plugin in a child process and report whether it started, or why not.

    The child gets ``QT_DEBUG_PLUGINS=1`` so that a plugin that fails to load names the shared object
    at fault; nothing else in the environment changes, so the answer holds for the window this
    process is about to open.

    Parameters
    ----------
    env
        The environment to ask about; this process's by default.
    timeout_s
        How long the child may take. One that has not answered by then is killed and counts as a
        failure of its own kind (a display that accepts connections but never answers), so that a
        station never hangs at start-up for want of a window.
    python
        The interpreter to run the child with (this one by default: the same PyQt6).

    Returns
    -------
    PlatformProbe
        ``ok`` with the platform's name, or the cause and the fix in one line each.
    """
    env = dict(os.environ if env is None else env)
    child_env = {**env, "QT_DEBUG_PLUGINS": "1"}
    try:
        done = subprocess.run([python or sys.executable, "-c", CHILD], env=child_env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return _timed_out(env, timeout_s)
    except OSError as exc:
        return PlatformProbe(False, "", f"the Qt probe could not start ({exc})",
                             "check that this Python runs (the station's .venv)")
    for line in done.stdout.splitlines():
        if line.startswith("platform="):
            return PlatformProbe(True, line.removeprefix("platform="))
    return diagnose(done.stderr, done.returncode, env)


def diagnose(output: str, returncode: int, env: Mapping[str, str]) -> PlatformProbe:
    """Turn a failed child's stderr (Qt's debug lines and message) into a cause and a fix.

    Looks for an unknown platform name; shared objects that are missing or broken, plus, from ``ldd``
    on the failed plugin, the ones the dynamic loader had not reached yet (it stops at the first), so
    that one ``apt-get install`` line names them all; and a display that cannot be reached, checked at
    its socket as well because Qt reports a missing library before it ever tries the display, so a
    desktop with both faults hears of both at once. Otherwise Qt's own last platform line.

    Parameters
    ----------
    output
        The child's stderr.
    returncode
        The child's exit status (negative: killed by that signal; -6 is Qt's abort).
    env
        The environment the child ran in (DISPLAY, LD_LIBRARY_PATH, QT_QPA_PLATFORM are read).

    Returns
    -------
    PlatformProbe
        Never ``ok``.
    """
    named = _NO_SUCH_PLUGIN.search(output)
    if named:
        available = _AVAILABLE.search(output)
        there = f" (there are: {available.group(1).strip()})" if available else ""
        return PlatformProbe(False, named.group(1),
                             f"QT_QPA_PLATFORM={named.group(1)} names no Qt platform plugin{there}",
                             "set QT_QPA_PLATFORM to one of them, or unset it")
    plugin_match = _PLUGIN.search(output)
    platform = plugin_match.group(1) if plugin_match else _expected_platform(env)
    broken = {Path(path).name: (path, reason.strip()) for path, reason in _BROKEN.findall(output)
              if "cannot open shared object file" not in reason}
    missing = [name for name in dict.fromkeys(_MISSING.findall(output)) if name not in broken]
    unresolved: list[str] = []  # what the loader will still miss once the broken files are out of the way
    plugin_file = _PLUGIN_FILE.search(output)
    if plugin_file and (missing or broken):
        stripped = _without_dirs(env, {str(Path(path).parent) for path, _ in broken.values()})
        unresolved = unresolved_libraries(Path(plugin_file.group(1)), stripped)
        missing += [name for name in unresolved if name not in missing and name not in broken]
    causes, fixes = [], []
    packages: list[str] = []
    if missing or broken:
        who = f"Qt's {platform} plugin" if platform else "Qt"
        parts = [f"cannot load {path} ({reason})" for path, reason in broken.values()]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            parts.append(f"needs {_and(missing)}, which {verb} not installed")
        causes.append(f"{who} {' and '.join(parts)}")
        path_dirs = _ld_library_path(env)
        reinstall = []
        for path, _ in broken.values():
            if str(Path(path).parent) in path_dirs:
                fixes.append(f"take {Path(path).parent} off LD_LIBRARY_PATH")
            elif path.startswith(SYSTEM_LIBRARY_DIRS):
                reinstall.append(debian_package(Path(path).name) or Path(path).name)
            else:
                fixes.append(f"remove {path}")
        needed = missing + [name for name in broken if name in unresolved]
        packages = sorted({debian_package(name) or name for name in needed})
        if packages:
            fixes.append(apt_line(packages))
        if reinstall:
            fixes.append(apt_line(reinstall, reinstall=True))
    display_cause, display_fix = _display_problem(output, platform, env)
    if display_cause:
        causes.append(display_cause)
        fixes.append(display_fix)
    if not causes:
        causes.append(f"Qt's {platform or 'platform'} plugin did not start ({_last_qt_line(output, returncode)})")
        fixes.append("run with QT_DEBUG_PLUGINS=1 to see Qt's details, or add --headless")
    all_missing = tuple(dict.fromkeys([*broken, *missing]))
    return PlatformProbe(False, platform, ", and ".join(causes), ", and ".join(fixes), all_missing,
                         tuple(dict.fromkeys(packages)))


# ------------------------------------------------------------------------------------------ libraries
def debian_package(soname: str) -> str | None:
    """The Debian package that ships ``soname``: the table, else Debian policy's naming rule.

    Policy 8.1 names a library package after its soname: ``libfoo.so.N`` is in ``libfooN``, and in
    ``libfoo-N`` when the name ends in a digit (``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``).
    None when ``soname`` is not of that form.
    """
    if soname in DEBIAN_PACKAGES:
        return DEBIAN_PACKAGES[soname]
    match = re.fullmatch(r"(lib[\w+.-]*?)\.so\.(\d+)(?:\.\d+)*", soname)
    if not match:
        return None
    name, major = match.group(1).lower().replace("_", "-"), match.group(2)
    return f"{name}-{major}" if name[-1].isdigit() else f"{name}{major}"


def apt_line(packages: list[str] | tuple[str, ...], *, reinstall: bool = False) -> str:
    """The exact command to type, to be copied as it is.

    Parameters
    ----------
    packages
        Debian package names.
    reinstall
        For a library file that is there but broken (``--reinstall`` puts the package's copy back).

    Returns
    -------
    str
        ``apt-get install ...``, with ``sudo`` in front only when this user is not root already.
    """
    sudo = "" if os.geteuid() == 0 else "sudo "
    again = "--reinstall " if reinstall else ""
    return f"{sudo}apt-get install {again}{' '.join(packages)}"


def plugin_path(platform: str = "xcb") -> Path | None:
    """The platform plugin's file inside PyQt6's wheel, found without importing PyQt6."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "Qt6" / "plugins" / "platforms" / f"libq{platform}.so"
    return path if path.is_file() else None


def unresolved_libraries(plugin: Path, env: Mapping[str, str] | None = None) -> list[str]:
    """The shared objects ``plugin`` links that the dynamic loader cannot find, by ``ldd``.

    The loader stops at the first missing library, and Qt reports only that one; ``ldd`` lists them
    all, so one install line fixes the lot.

    Parameters
    ----------
    plugin
        A Qt plugin (or any ELF file).
    env
        The environment whose LD_LIBRARY_PATH counts; this process's by default.

    Returns
    -------
    list of str
        Sonames, in ``ldd``'s order. Empty when ``ldd`` is absent or fails (a broken file on the
        path makes it give up): the caller still has the library Qt named.
    """
    ldd = shutil.which("ldd")
    if ldd is None or not plugin.is_file():
        return []
    try:
        done = subprocess.run([ldd, str(plugin)], env=dict(os.environ if env is None else env),
                              capture_output=True, text=True, errors="replace", timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = re.findall(r"^\s*(\S+) => not found", done.stdout, re.MULTILINE)
    return list(dict.fromkeys(found))


def missing_packages(platform: str = "xcb") -> list[str]:
    """Debian packages the platform plugin needs and this machine lacks; no display needed to ask."""
    plugin = plugin_path(platform)
    if plugin is None:
        return []
    names = unresolved_libraries(plugin)
    return list(dict.fromkeys(debian_package(name) or name for name in names))


# ------------------------------------------------------------------------------------------ displays
def display_configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether this environment asks for a window at all (else headless is the expected way to run)."""
    env = os.environ if env is None else env
    return any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def x_display_problem(display: str) -> str | None:
    """Whether anything accepts connections for an X display, the way libxcb would connect.

    A socket connect, no X protocol: enough to tell "nothing there" from "there, but Qt failed", and
    usable when Qt never got as far as the display (a missing library stops it first).

    Parameters
    ----------
    display
        ``DISPLAY``'s value: ``:N`` or ``unix:N`` (the local socket ``/tmp/.X11-unix/XN``, abstract or
        on disk) or ``host:N`` (TCP port 6000 + N), with an optional ``.screen``.

    Returns
    -------
    str or None
        None when something listens; else why not, as a phrase for the one-line message.
    """
    if not display:
        return "DISPLAY is not set"
    host, colon, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not colon or not number.isdigit():
        return f"DISPLAY={display} is not of the form [host]:N"
    if host in ("", "unix") or host.endswith("/unix"):
        path = f"/tmp/.X11-unix/X{number}"
        for address in ("\0" + path, path):  # the abstract socket first, as libxcb tries them
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                try:
                    sock.connect(address)
                except OSError:
                    continue
                return None
        return f"nothing listens on {path}"
    port = 6000 + int(number)
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except OSError as exc:
        return f"{host}:{port} does not answer ({exc.strerror or exc})"
    return None


def _display_problem(output: str, platform: str, env: Mapping[str, str]) -> tuple[str, str]:
    """The display half of a failure: (cause, fix), or empty strings when the display is not at fault."""
    if platform == "xcb":
        display = env.get("DISPLAY", "")
        problem = x_display_problem(display)
        if not display:
            return ("there is no display to open it on (DISPLAY is not set)",
                    "set DISPLAY (X11) or WAYLAND_DISPLAY (Wayland), or add --headless")
        if problem:
            return (f"display {display} cannot be reached ({problem})",
                    f"start the X server for {display} or set DISPLAY to one that runs")
        if _XCB_REFUSED.search(output):
            return (f"the X server on display {display} refused Qt's connection",
                    "let this user in (XAUTHORITY, or xhost on the display's owner)")
    if platform == "wayland" and _WAYLAND_REFUSED in output:
        display = env.get("WAYLAND_DISPLAY") or "wayland-0"
        return (f"Wayland display {display} cannot be reached",
                "run from the desktop session (XDG_RUNTIME_DIR, WAYLAND_DISPLAY), or add --headless")
    return "", ""


def _timed_out(env: Mapping[str, str], timeout_s: float) -> PlatformProbe:
    platform = _expected_platform(env)
    where = f" on display {env.get('DISPLAY')}" if platform == "xcb" and env.get("DISPLAY") else ""
    return PlatformProbe(False, platform,
                         f"Qt's {platform} platform plugin did not start within {timeout_s:g} s{where}",
                         "check that the display answers (xdpyinfo), or add --headless")


def _expected_platform(env: Mapping[str, str]) -> str:
    """The plugin Qt will try first in ``env``: QT_QPA_PLATFORM's first entry, else Qt 6's own choice."""
    chosen = (env.get("QT_QPA_PLATFORM") or "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


# ------------------------------------------------------------------------------------------ helpers
def _ld_library_path(env: Mapping[str, str]) -> set[str]:
    return {str(Path(d)) for d in (env.get("LD_LIBRARY_PATH") or "").split(":") if d}


def _without_dirs(env: Mapping[str, str], dirs: set[str]) -> dict[str, str]:
    """``env`` with ``dirs`` taken off LD_LIBRARY_PATH: what ``ldd`` sees once the broken file is gone."""
    kept = [d for d in (env.get("LD_LIBRARY_PATH") or "").split(":") if d and str(Path(d)) not in dirs]
    out = {k: v for k, v in env.items() if k not in ("LD_LIBRARY_PATH", "QT_DEBUG_PLUGINS")}
    if kept:
        out["LD_LIBRARY_PATH"] = ":".join(kept)
    return out


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _last_qt_line(output: str, returncode: int) -> str:
    """Qt's last line about the platform, without the boilerplate every failure prints."""
    boiler = ("From 6.5.0, xcb-cursor0", "Could not load the Qt platform plugin", "This application failed",
              "Available platform plugins", "Reinstalling the application")
    lines = [line.strip() for line in output.splitlines()
             if (line.startswith(("qt.qpa", "ImportError", "Error")) and not any(b in line for b in boiler))]
    return lines[-1] if lines else f"exit status {returncode}"


def main(argv: list[str] | None = None) -> int:
    """``python -m station.qt_probe``: the verdict (exit 1 if the window cannot open here), or with
    ``--missing-packages`` the Debian packages Qt's X11 plugin lacks, one per line (for ``make qt-libs``)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--missing-packages"]:
        for package in missing_packages():
            print(package)
        return 0
    if args:
        print("usage: python -m station.qt_probe [--missing-packages]", file=sys.stderr)
        return 2
    probe = probe_platform()
    print(probe.message())
    return 0 if probe.ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
