"""What the flirpy-backed sources (Lepton, Boson) share: opening flirpy's video path quietly.

flirpy finds its camera, opens it and reports failure in its own ways: a ``ValueError`` when it found no
camera, an ``IOError`` when the device would not open, a ``warnings.warn`` when Linux has no Video4Linux,
and a logged warning on every failed grab. The station reports all of these once, as a one-line
:class:`~station.errors.SourceError` or a ``camera_lost`` event, so this module translates and quietens
them in one place.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

from station.acquire.sources.devices import CAMERAS_HINT, V4L2_SYSFS, quiet_opencv, why_not_opened
from station.errors import SourceError

# The exact text flirpy's find_video_device warns with on a Linux machine without V4L2.
_NO_V4L2_WARNING = "Video4Linux not found"


def quieten_flirpy_logger(module_name: str) -> None:
    """Let only errors through flirpy's logger for one camera module.

    flirpy logs "Failed to capture image" on every failed grab, which for a camera that stopped
    answering is a line every few milliseconds; the capture thread reports the outage once instead.
    """
    logging.getLogger(module_name).setLevel(logging.ERROR)


def setup_video(camera: Any, device: int | None, *, name: str, model: str) -> Any:
    """Run flirpy's ``setup_video`` and turn its failures into one-line :class:`SourceError`.

    Returns the camera, ready to ``grab()``; on failure the camera is closed (serial port included)
    before the error is raised, so a retrying capture thread never leaks a half-open device.

    Parameters
    ----------
    camera
        A flirpy camera object (``Lepton`` or ``Boson``).
    device
        The video device index, or ``None`` for flirpy to find the camera by its USB ids.
    name, model
        How the message names the source (``lepton:1``) and what flirpy looked for ("PureThermal Lepton").
    """
    try:
        _setup_video(camera, device, name=name, model=model)
    except SourceError:
        camera.close()
        raise
    return camera


def _setup_video(camera: Any, device: int | None, *, name: str, model: str) -> None:
    try:
        with warnings.catch_warnings(), quiet_opencv():
            # A narrow filter: catch_warnings is process-wide, and should two capture threads open at once
            # and restore out of order, only this one harmless message stays hidden.
            warnings.filterwarnings("ignore", message=_NO_V4L2_WARNING)
            camera.setup_video(device)
    except ValueError:
        reason = f"no {model} found"
        if sys.platform.startswith("linux") and not V4L2_SYSFS.exists():
            reason += " (this machine has no Video4Linux devices)"
        raise SourceError(f"thermal camera {name} could not be opened: {reason}; {CAMERAS_HINT}") from None
    except OSError as exc:
        reason = why_not_opened(device) if device is not None else f"flirpy: {exc}"
        raise SourceError(f"thermal camera {name} could not be opened: {reason}; {CAMERAS_HINT}") from None
    except Exception as exc:  # flirpy's device search runs external tools and udev; any of them may fail
        raise SourceError(
            f"thermal camera {name} could not be opened: {type(exc).__name__}: {exc}; {CAMERAS_HINT}"
        ) from None
