"""Finding and naming video devices on this operating system.

The camera adapters share three needs that depend on the OS rather than on the camera: which OpenCV
backend to ask for, why a device index would not open (so the operator reads "no such device" rather
than a bare failure), and which ``/dev/video*`` nodes exist for ``station cameras``. Keeping them here
keeps the adapters about their cameras.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2

#: Where Linux lists its V4L2 devices, with a ``name`` file per node.
V4L2_SYSFS = Path("/sys/class/video4linux")
DEV = Path("/dev")

#: Appended to "could not be opened" messages for devices, so the operator knows the next step.
CAMERAS_HINT = "`station cameras` lists what is connected"


def capture_backend(*, y16: bool = False) -> int:
    """The OpenCV backend to open a camera by index with.

    Naming the backend avoids OpenCV trying each one in turn (slow, and noisy on failure). Y16 cameras
    follow flirpy's choice (V4L2 on Linux, DirectShow on Windows), because raw 16-bit frames only come
    through those; visible cameras use V4L2 on Linux and OpenCV's default elsewhere.
    """
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if y16 and sys.platform.startswith("win32"):
        return cv2.CAP_DSHOW
    return cv2.CAP_ANY


def why_not_opened(index: int, *, dev: Path = DEV) -> str:
    """A short reason a camera index failed to open, for a one-line error.

    On Linux the device node tells a missing camera from one that exists but refused (usually because
    another program holds it); elsewhere OpenCV gives no way to tell them apart.
    """
    if not sys.platform.startswith("linux"):
        return "no camera answered at that index"
    if not (dev / f"video{index}").exists():
        return "no such device"
    return f"{dev / f'video{index}'} exists but would not open (is another program using it?)"


def list_video_devices(*, sysfs: Path = V4L2_SYSFS, dev: Path = DEV) -> list[dict[str, object]]:
    """The V4L2 capture nodes present, with the names their drivers give them.

    A UVC camera usually shows up as two nodes, the picture and a metadata node; sysfs numbers the
    node's function in ``index`` and only function 0 delivers frames, so the others are left out rather
    than offered as cameras that never answer.

    Returns
    -------
    list of dict
        ``{"device": N, "path": "/dev/videoN", "name": "..."}`` sorted by N; empty when there is no V4L2.
    """
    found: dict[int, dict[str, object]] = {}
    for node in _video_nodes(sysfs, dev):
        number = int(node.removeprefix("video"))
        info = sysfs / node
        if _read(info / "index") not in ("", "0"):
            continue
        found[number] = {"device": number, "path": str(dev / node), "name": _read(info / "name") or node}
    return [found[n] for n in sorted(found)]


def _video_nodes(sysfs: Path, dev: Path) -> set[str]:
    names: set[str] = set()
    for root in (sysfs, dev):
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        names.update(e for e in entries if e.startswith("video") and e.removeprefix("video").isdigit())
    return names


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved = 0


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own ``[ WARN ]`` lines while a device is being opened.

    A failed open makes OpenCV print several backend warnings to stderr before the station prints its
    own one-line reason; the operator should see only the latter. OpenCV's log level is process-wide, so
    nested and concurrent uses (two capture threads opening at once) share one counter and the level is
    restored only by the last one out.
    """
    global _quiet_depth, _quiet_saved
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                cv2.utils.logging.setLogLevel(_quiet_saved)


#: FFmpeg's own log level for OpenCV's FFmpeg backend: ``-8`` is ``AV_LOG_QUIET``.
FFMPEG_QUIET = "-8"


def quiet_ffmpeg() -> None:
    """Keep FFmpeg's own log lines (``[mov,mp4,... @ 0x...] moov atom not found``) off stderr.

    The station reports a video it cannot open, or a stream that fails, itself, in one line that names
    the file; FFmpeg's lines above it only bury that line. OpenCV's FFmpeg backend reads
    ``OPENCV_FFMPEG_LOGLEVEL`` once, when the process opens its first FFmpeg capture, and never again
    (setting it afterwards, or OpenCV's own ``setLogLevel``, does not reach FFmpeg), so it is set when
    this module is imported (the camera sources and the recording reader import it), before any capture
    can open. ``setdefault``: whoever sets the variable
    themselves, to debug a stream, still gets FFmpeg's lines.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)


quiet_ffmpeg()
