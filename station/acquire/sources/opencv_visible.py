"""A visible camera, network stream or video file read through OpenCV.

One class covers the three because OpenCV's ``VideoCapture`` does; what differs is what a failed read
means. A file that stops delivering has ended (``finished``), while a camera or stream that stops has a
fault the capture thread should retry. The times differ too: a camera's frames are stamped with the
station's clock, a file's with its own position, so a file replays on its own time line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from station.acquire.sources.base import Source
from station.acquire.sources.devices import CAMERAS_HINT, capture_backend, quiet_opencv, why_not_opened
from station.errors import SourceError
from station.types import Frame

Kind = Literal["device", "url", "file"]


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FORMAT_PROPS = {
    "width": cv2.CAP_PROP_FRAME_WIDTH,
    "height": cv2.CAP_PROP_FRAME_HEIGHT,
    "fps": cv2.CAP_PROP_FPS,
}


def target_kind(target: int | str) -> Kind:
    """Whether a target names a camera index, a network stream or a file.

    Anything with a scheme (``rtsp://``, ``http://``) is a stream; any other string is a file path.
    """
    if isinstance(target, int):
        return "device"
    return "url" if _URL.match(target) else "file"


class OpenCVVisibleSource(Source):
    """A visible camera by device index, a URL (rtsp/http) or a video file.

    Parameters
    ----------
    target
        Device index, URL, or path to a video file.
    width, height, fps
        The capture format to ask a camera for. A camera may pick the nearest mode it has, so what it
        chose is read back into :meth:`describe`. Ignored for URLs and files, whose format is fixed.
    clock
        Stamps each camera or stream frame as it is delivered; the station passes the one monotonic
        clock both cameras share, so the pairer can match them by time.
    """

    stream = "visible"

    def __init__(
        self,
        target: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(target, bool) or not isinstance(target, int | str):
            raise TypeError(f"target: expected a device index, URL or file path, got {target!r}")
        self.target = target
        self.kind: Kind = target_kind(target)
        self.name = str(target)
        self._requested = {"width": width, "height": height, "fps": fps}
        self._clock = clock
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._file_fps = 0.0
        self.finished = False

    def open(self) -> None:
        if self._cap is not None:
            return
        with quiet_opencv():
            if self.kind == "device":
                cap = cv2.VideoCapture(self.target, capture_backend())
            else:
                cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(self._open_failure())
        if self.kind == "device":
            self._ask_format(cap)
        if self.kind == "file":
            # A file's index is its position, so reopening it starts the file (and the count) again.
            self._index = 0
            self._file_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.finished = False
        self._cap = cap

    def _ask_format(self, cap: cv2.VideoCapture) -> None:
        for key, value in self._requested.items():
            if value is not None:
                cap.set(_FORMAT_PROPS[key], float(value))

    def _open_failure(self) -> str:
        if self.kind == "device":
            reason = why_not_opened(int(self.target))
            return f"visible camera {self.target} could not be opened: {reason}; {CAMERAS_HINT}"
        if self.kind == "url":
            return (
                f"visible stream {self.target} could not be opened: "
                "no answer, or not a stream OpenCV can decode"
            )
        if not Path(self.target).exists():
            return f"visible video file {self.target} could not be opened: no such file"
        return f"visible video file {self.target} could not be opened: not a video OpenCV can decode"

    def read(self) -> Frame | None:
        cap = self._cap
        if cap is None or self.finished:
            return None
        try:
            ok, image = cap.read()
        except cv2.error:
            ok, image = False, None
        if not ok or image is None:
            # A file that stops delivering has ended; a camera or stream has a fault worth retrying.
            if self.kind == "file":
                self.finished = True
            return None
        t = self._file_time(cap) if self.kind == "file" else self._clock()
        frame = Frame(_as_bgr(image, self.name), t, self._index)
        self._index += 1
        return frame

    def _file_time(self, cap: cv2.VideoCapture) -> float:
        # POS_MSEC is the presentation time of the frame just read, which follows variable frame rates;
        # it reads 0 for the first frame and on containers without timestamps, so fall back to the index.
        pos_ms = float(cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        if pos_ms > 0:
            return pos_ms / 1000.0
        return self._index / self._file_fps if self._file_fps > 0 else 0.0

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def describe(self) -> dict[str, object]:
        info: dict[str, object] = {**super().describe(), "kind": self.kind, "target": self.target}
        cap = self._cap
        if cap is not None:
            info["width"] = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            info["height"] = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            info["fps"] = float(cap.get(cv2.CAP_PROP_FPS))
        return info


def _as_bgr(image: np.ndarray, name: str) -> np.ndarray:
    """The frame as ``(H, W, 3) uint8`` BGR, converting the layouts some cameras deliver.

    Monochrome cameras and some streams hand back grey or BGRA frames; converting here keeps the rest of
    the station to one layout. Anything else is a camera OpenCV cannot decode to 8-bit colour.
    """
    if image.dtype == np.uint8:
        if image.ndim == 3 and image.shape[2] == 3:
            return image
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim == 3 and image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    raise SourceError(
        f"visible source {name}: expected 8-bit BGR, grey or BGRA frames, "
        f"got {image.dtype} {tuple(image.shape)}"
    )
