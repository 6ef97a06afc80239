"""A FLIR Boson through flirpy: 16-bit raw counts (pre-AGC) over UVC, control over a serial port.

flirpy's ``Boson`` looks for the camera's serial port and connects as soon as it is built. The station
needs only the video, which comes through ``setup_video``/``grab`` like the Lepton's; the serial port
(FFC, FPA temperature, serial number) is a bonus. So a missing or busy port that nobody asked for leaves
the camera working on video alone, while a port the operator named that fails is an error they should
see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np
from flirpy.camera import boson as flirpy_boson

from station.acquire.sources import flirpy_video
from station.acquire.sources.base import Source
from station.acquire.sources.uvc_y16 import decode_y16, reported_shape
from station.errors import SourceError
from station.types import Frame

log = logging.getLogger(__name__)

#: ``(height, width)`` of the Boson models, to unflatten a raw buffer when the device does not say.
BOSON_SHAPES = ((256, 320), (512, 640))


class _VideoOnlyBoson(flirpy_boson.Boson):
    """flirpy's Boson without its serial port: it finds none, so it connects to none.

    Used when the port flirpy found would not open (held by another program, say), so the video, which
    never needed it, still comes through flirpy's own code.
    """

    @classmethod
    def find_serial_device(cls) -> None:
        return None


class BosonSource(Source):
    """A Boson 320 or 640: ``(256, 320)`` or ``(512, 640)`` uint16 raw-count frames.

    Parameters
    ----------
    device
        Video device index; ``None`` lets flirpy find the camera by its USB ids.
    port
        Serial control port (``/dev/ttyACM0``, ``COM3``); ``None`` lets flirpy look for one and carries on
        without control if there is none.
    clock
        Stamps each frame as it is delivered; the station's shared monotonic clock.
    """

    stream = "thermal"

    def __init__(
        self,
        device: int | None = None,
        port: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.port = port
        self.name = "boson" if device is None else f"boson:{device}"
        self._clock = clock
        self._camera: flirpy_boson.Boson | None = None
        self._control_note = "not opened"
        # Counts on across reopenings, so a recovered camera's frames are newer than the lost ones.
        self._index = 0

    @property
    def control(self) -> flirpy_boson.Boson | None:
        """The flirpy camera when its serial control port is connected (for FFC, FPA temperature)."""
        camera = self._camera
        if camera is not None and camera.conn is not None and camera.conn.is_open:
            return camera
        return None

    def open(self) -> None:
        if self._camera is not None:
            return
        flirpy_video.quieten_flirpy_logger(flirpy_boson.__name__)
        self._camera = flirpy_video.setup_video(self._connect(), self.device, name=self.name, model="FLIR Boson")

    def _connect(self) -> flirpy_boson.Boson:
        if self.port is not None:
            try:
                camera = flirpy_boson.Boson(port=self.port)
            except OSError as exc:  # serial.SerialException is an OSError
                raise SourceError(
                    f"thermal camera {self.name}: control port {self.port} could not be opened ({exc}); "
                    "leave the port out to run on video alone"
                ) from None
            self._control_note = f"connected on {self.port}"
            return camera
        try:
            camera = flirpy_boson.Boson()
        except OSError as exc:
            log.warning("Boson control port would not open (%s); carrying on with video only", exc)
            self._control_note = f"unavailable: {exc}"
            return _VideoOnlyBoson()
        self._control_note = "connected" if camera.conn is not None else "no serial port found"
        return camera

    def read(self) -> Frame | None:
        camera = self._camera
        if camera is None:
            return None
        try:
            image = camera.grab()
        except cv2.error:
            return None
        if image is None or not isinstance(image, np.ndarray) or image.size == 0:
            return None
        y16 = decode_y16(image, self._raw_shape(camera, image), camera=self.name)
        t = self._clock()
        frame = Frame(y16, t, self._index, {"encoding": "raw-counts"})
        self._index += 1
        return frame

    @staticmethod
    def _raw_shape(camera: flirpy_boson.Boson, image: np.ndarray) -> tuple[int, int] | None:
        # Only a flat byte buffer needs the shape; take the device's word, else the model whose size fits.
        if image.dtype != np.uint8:
            return None
        shape = reported_shape(camera.cap) if camera.cap is not None else None
        if shape is not None and 2 * shape[0] * shape[1] == image.size:
            return shape
        return next((s for s in BOSON_SHAPES if 2 * s[0] * s[1] == image.size), shape)

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            camera.close()

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "device": "auto" if self.device is None else self.device,
            "encoding": "raw-counts",
            "control": self._control_note,
        }
