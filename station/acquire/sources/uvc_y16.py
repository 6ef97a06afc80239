"""Any UVC camera that speaks Y16 (16-bit grey), read through OpenCV.

Thermal cores behind a UVC bridge (PureThermal, Boson, many OEM modules) deliver their raw 16-bit values
as Y16. OpenCV only passes them through unconverted when asked for FOURCC ``Y16 `` and then told not to
convert to RGB, in that order (flirpy's ``setup_video`` notes the order matters). How the 16-bit frame
then arrives depends on the OpenCV build: as ``(H, W) uint16``, or, on older V4L2 backends, as the raw
byte buffer in a flat ``uint8`` array. :func:`decode_y16` turns either into ``(H, W) uint16``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from station.acquire.sources.base import Source
from station.acquire.sources.devices import CAMERAS_HINT, capture_backend, quiet_opencv, why_not_opened
from station.errors import SourceError
from station.types import Frame

ENCODINGS = ("raw-counts", "tlinear-centikelvin")


def decode_y16(image: np.ndarray, shape: tuple[int, int] | None, *, camera: str) -> np.ndarray:
    """A Y16 frame as ``(H, W) uint16``, whichever way OpenCV handed it over.

    Parameters
    ----------
    image
        What ``VideoCapture.read`` returned.
    shape
        ``(height, width)`` of the device's frames, needed only to unflatten a raw byte buffer; ``None``
        when the device did not say.
    camera
        Names the camera in the error message.

    Raises
    ------
    SourceError
        The frame is neither 16-bit nor a byte buffer of the expected size; typically 8-bit colour, which
        means the camera ignored the Y16 request.
    """
    if image.dtype == np.uint16:
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim == 2:
            return image
    elif image.dtype == np.uint8 and not (image.ndim == 3 and image.shape[2] in (3, 4)):
        if shape is not None and image.size == 2 * shape[0] * shape[1]:
            # The buffer holds little-endian 16-bit pixels, row after row (Y16 is defined little-endian).
            pixels = np.ascontiguousarray(image).reshape(-1).view("<u2")
            return pixels.reshape(shape).astype(np.uint16, copy=False)
        expected = "an unknown size" if shape is None else f"{2 * shape[0] * shape[1]} bytes for {shape}"
        raise SourceError(
            f"thermal camera {camera}: got a raw buffer of {image.size} bytes, expected {expected}; "
            "pass the frame width and height"
        )
    raise SourceError(
        f"thermal camera {camera}: expected 16-bit Y16 frames, got {image.dtype} {tuple(image.shape)} "
        "(the camera ignored the Y16 request: does it speak Y16?)"
    )


def reported_shape(cap: cv2.VideoCapture) -> tuple[int, int] | None:
    """``(height, width)`` the capture says it delivers, or ``None`` when it does not say."""
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    return (height, width) if width > 0 and height > 0 else None


class UVCY16Source(Source):
    """A UVC camera delivering Y16 frames, opened by device index.

    Parameters
    ----------
    device
        The camera's index (``/dev/videoN`` on Linux).
    width, height
        Frame size to ask the device for, telemetry rows included (the size the camera itself reports,
        e.g. 160x122 for a Lepton). Left ``None``, the device's own format is used.
    telemetry_rows
        Rows at the bottom of each frame that carry telemetry rather than pixels; they are cut off.
    encoding
        What the 16-bit values mean, recorded in each frame's metadata for radiometry:
        ``"raw-counts"`` or ``"tlinear-centikelvin"``.
    clock
        Stamps each frame as it is delivered; the station's shared monotonic clock.
    """

    stream = "thermal"

    def __init__(
        self,
        device: int,
        *,
        width: int | None = None,
        height: int | None = None,
        telemetry_rows: int = 0,
        encoding: str = "raw-counts",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: expected one of {', '.join(ENCODINGS)}, got {encoding!r}")
        if telemetry_rows < 0:
            raise ValueError(f"telemetry_rows: expected >= 0, got {telemetry_rows}")
        self.device = int(device)
        self.name = f"uvc:{self.device}"
        self.encoding = encoding
        self.telemetry_rows = telemetry_rows
        self._requested = (width, height)
        self._clock = clock
        self._cap: cv2.VideoCapture | None = None
        self._shape: tuple[int, int] | None = None
        # Counts on across reopenings, so a recovered camera's frames are newer than the lost ones.
        self._index = 0

    def open(self) -> None:
        if self._cap is not None:
            return
        with quiet_opencv():
            cap = cv2.VideoCapture(self.device, capture_backend(y16=True))
        if not cap.isOpened():
            cap.release()
            reason = why_not_opened(self.device)
            raise SourceError(f"thermal camera {self.name} could not be opened: {reason}; {CAMERAS_HINT}")
        width, height = self._requested
        if width is not None:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(width))
        if height is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(height))
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"Y16 "))
        cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        self._shape = reported_shape(cap)
        if self._shape is None and width is not None and height is not None:
            self._shape = (height, width)
        self._cap = cap

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None:
            return None
        try:
            ok, image = cap.read()
        except cv2.error:
            return None
        if not ok or image is None:
            return None
        y16 = decode_y16(image, self._shape, camera=self.name)
        t = self._clock()
        rows = self.telemetry_rows
        if rows:
            if y16.shape[0] <= rows:
                raise SourceError(
                    f"thermal camera {self.name}: expected more than {rows} rows (telemetry_rows), "
                    f"got a frame of {y16.shape}"
                )
            y16 = y16[:-rows]
        frame = Frame(y16, t, self._index, {"encoding": self.encoding})
        self._index += 1
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {
            **super().describe(),
            "device": self.device,
            "encoding": self.encoding,
            "telemetry_rows": self.telemetry_rows,
        }
        if self._shape is not None:
            info["height"], info["width"] = self._shape[0] - self.telemetry_rows, self._shape[1]
        return info
