"""``station doctor``: one line per thing the station depends on, saying whether it is fine.

A technician at a dead station needs to know in seconds *which* part is at fault, so each check is
small, independent, and catches its own failure instead of stopping the rest.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from station.errors import StationError
from station.screen.model_setup import sha256_file


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn" or "FAIL"
    detail: str


def run_checks(*, calibration: Path | None, recording: Path | None) -> Iterator[Check]:
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("opencv", _opencv),
        ("onnxruntime", _onnxruntime),
        ("qt", _qt),
        ("window", _window),
        ("face model", _model),
        ("recording", lambda: _recording(recording)),
        ("calibration", lambda: _calibration(calibration, recording)),
        ("cameras", _cameras),
    ]
    for name, check in checks:
        try:
            yield check()
        except StationError as exc:
            yield Check(name, "FAIL", str(exc))
        except Exception as exc:  # noqa: BLE001 - a doctor reports every failure and carries on
            yield Check(name, "FAIL", f"{type(exc).__name__}: {exc}")


def _installed(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _opencv() -> Check:
    full = _installed("opencv-python")
    if full:
        return Check("opencv", "FAIL", f"opencv-python {full} is installed: it breaks PyQt6; "
                                       "pip uninstall opencv-python and keep opencv-python-headless")
    before = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH")
    import cv2

    if os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH") != before:
        return Check("opencv", "FAIL", "importing cv2 changed QT_QPA_PLATFORM_PLUGIN_PATH")
    return Check("opencv", "ok", f"{cv2.__version__} (headless)")


def _onnxruntime() -> Check:
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    usable = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in providers]
    if not usable:
        return Check("onnxruntime", "FAIL", f"no CUDA or CPU provider among {providers}")
    return Check("onnxruntime", "ok", f"{onnxruntime.__version__}, providers {', '.join(usable)}")


def _qt() -> Check:
    # Found, not imported: the engine never loads Qt.
    if importlib.util.find_spec("PyQt6") is None:
        return Check("qt", "FAIL", "PyQt6 is not installed")
    return Check("qt", "ok", f"PyQt6 {_installed('PyQt6') or '?'}")


def _window() -> Check:
    """Whether Qt's platform plugin starts here: the check ``station demo`` and ``run`` make first.

    Asked of a child process (:mod:`station.qt_probe`), because a plugin that cannot load or reach its
    display aborts the process that tries. A failure is FAIL where a window is asked for (DISPLAY,
    WAYLAND_DISPLAY or QT_QPA_PLATFORM set), and only a warning on a machine without a display, where
    the station is meant to screen headless; either way the line names the missing libraries with
    their ``apt-get install`` line, or the display that cannot be reached.
    """
    from station.qt_probe import display_configured, probe_platform

    probe = probe_platform()
    if probe.ok:
        return Check("window", "ok", f"Qt's {probe.platform} platform plugin starts")
    if display_configured():
        return Check("window", "FAIL", f"{probe.message()} (the station screens headless until then)")
    return Check("window", "warn", f"{probe.message()} (headless screening works)")


def _model() -> Check:
    """The prepared face model, hashed against the manifest: the same check every start makes."""
    from station.screen.detect import default_providers
    from station.screen.model_setup import load_model_path

    try:
        path = load_model_path()
    except StationError as exc:
        return Check("face model", "FAIL", str(exc))
    return Check("face model", "ok", f"{path.name} sha256 {sha256_file(path)[:12]}..., "
                 f"providers {', '.join(default_providers())}")


def _recording(path: Path | None) -> Check:
    if path is None:
        return Check("recording", "warn", "none given")
    from station.acquire.recording import Recording

    rec = Recording.open(path)
    visible = f" + visible {rec.visible.width}x{rec.visible.height}" if rec.visible else " (thermal only)"
    return Check(
        "recording", "ok",
        f"{path}: {rec.duration:.1f} s, thermal {rec.thermal.camera} {rec.thermal.width}x{rec.thermal.height}{visible}",
    )


def _calibration(path: Path | None, recording: Path | None) -> Check:
    from station.acquire.recording import Recording
    from station.profile.schema import MAX_CALIBRATION_AGE_DAYS, CalibrationProfile

    if path is None and recording is not None:
        path = recording / "calibration.toml"
    if path is None:
        return Check("calibration", "warn", "no profile given")
    profile = CalibrationProfile.load(path)
    # A recording is screened as of when it was made; cameras (no recording) as of now.
    when = Recording.open(recording).recorded_at if recording is not None else datetime.now(UTC)
    if when is None:
        return Check("calibration", "warn", f"{path}: station {profile.station_id}, made {profile.created}; "
                     "the recording does not say when it was made (no recorded_at), so its age is not checked")
    age = profile.age_days(when)
    ago = "days before it was recorded" if recording is not None else "days ago"
    detail = f"{path}: station {profile.station_id}, made {profile.created} ({age:.0f} {ago}), " \
             f"registration RMS {profile.registration.rms_error_px:.2f} px"
    if profile.blackbody is None:
        return Check("calibration", "warn", detail + "; no blackbody in the profile")
    if age > MAX_CALIBRATION_AGE_DAYS:
        return Check("calibration", "warn", detail + f"; older than {MAX_CALIBRATION_AGE_DAYS:.0f} days")
    return Check("calibration", "ok", detail)


def _cameras() -> Check:
    from station.acquire.sources.registry import discover_cameras

    found = discover_cameras()
    if not found:
        return Check("cameras", "warn", "none connected (recordings and the simulator still work)")
    return Check("cameras", "ok", "; ".join(str(c.get("name", c)) for c in found))
