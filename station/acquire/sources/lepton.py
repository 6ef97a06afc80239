"""A FLIR Lepton 3.x on a PureThermal board, through flirpy.

The PureThermal firmware sends Y16 frames in TLinear mode: each pixel is the scene temperature in
centikelvin. Every frame carries two telemetry rows at the bottom (160x122), which flirpy's own
``grab()`` decodes and strips. The source wraps flirpy rather than reading the device itself, so the
telemetry layout and the device search stay flirpy's.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from flirpy.camera import lepton as flirpy_lepton

from station.acquire.sources import flirpy_video
from station.acquire.sources.base import Source
from station.errors import SourceError
from station.types import Frame

#: Lepton 3.x image size once flirpy has stripped the two telemetry rows.
LEPTON_SHAPE = (120, 160)

#: The telemetry flirpy decodes from each frame's footer, surfaced under flirpy's own attribute names.
TELEMETRY_KEYS = (
    "fpa_temp_k",
    "ffc_temp_k",
    "frame_count",
    "uptime_ms",
    "ffc_elapsed_ms",
    "status",
    "frame_mean",
)


class LeptonSource(Source):
    """A Lepton on a PureThermal board: ``(120, 160) uint16`` TLinear centikelvin frames.

    Parameters
    ----------
    device
        Video device index; ``None`` lets flirpy find the board by its USB ids.
    clock
        Stamps each frame as it is delivered; the station's shared monotonic clock.

    Notes
    -----
    Each frame's ``meta`` carries the telemetry flirpy decoded from it: ``fpa_temp_k`` and ``ffc_temp_k``
    (kelvin), ``frame_count``, ``uptime_ms``, ``ffc_elapsed_ms`` (time since the last flat-field
    correction, which radiometry uses to distrust frames just after one), ``status`` and ``frame_mean``.
    """

    stream = "thermal"

    def __init__(self, device: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.name = "lepton" if device is None else f"lepton:{device}"
        self._clock = clock
        self._camera: flirpy_lepton.Lepton | None = None
        # Counts on across reopenings, so a recovered camera's frames are newer than the lost ones.
        self._index = 0

    def open(self) -> None:
        if self._camera is not None:
            return
        flirpy_video.quieten_flirpy_logger(flirpy_lepton.__name__)
        self._camera = flirpy_video.setup_video(
            flirpy_lepton.Lepton(), self.device, name=self.name, model="PureThermal Lepton"
        )

    def read(self) -> Frame | None:
        camera = self._camera
        if camera is None:
            return None
        # flirpy decodes telemetry only for a frame it actually captured; clearing the last decode first
        # tells a fresh frame from a failed grab, whose returned buffer flirpy does not check.
        camera.telemetry = None
        try:
            image = camera.grab()
        except cv2.error:
            return None
        except (IndexError, struct.error) as exc:
            raise SourceError(
                f"thermal camera {self.name}: flirpy could not decode the frame's telemetry ({exc}); "
                "expected (122, 160) uint16 Y16 frames from OpenCV, which this OpenCV build may not give"
            ) from None
        if image is None or camera.telemetry is None:
            return None
        if not isinstance(image, np.ndarray) or image.dtype != np.uint16 or image.shape != LEPTON_SHAPE:
            got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, np.ndarray) else repr(image)
            raise SourceError(
                f"thermal camera {self.name}: expected uint16 {LEPTON_SHAPE} frames once flirpy strips "
                f"the telemetry, got {got}"
            )
        t = self._clock()
        frame = Frame(image, t, self._index, _telemetry(camera))
        self._index += 1
        return frame

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "device": "auto" if self.device is None else self.device,
            "encoding": "tlinear-centikelvin",
            "width": LEPTON_SHAPE[1],
            "height": LEPTON_SHAPE[0],
        }


def _telemetry(camera: flirpy_lepton.Lepton) -> dict[str, Any]:
    meta: dict[str, Any] = {"encoding": "tlinear-centikelvin"}
    for key in TELEMETRY_KEYS:
        meta[key] = getattr(camera, key)
    return meta
