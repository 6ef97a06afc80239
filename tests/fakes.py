"""A fake V4L2 bus: cameras that stand in for hardware behind ``cv2.VideoCapture``.

The fake replaces only the hardware boundary. It is installed on ``cv2.VideoCapture``, the name both
flirpy and the station's adapters call, so flirpy's real ``setup_video``, ``grab`` and
``decode_telemetry`` run against it exactly as they would against a PureThermal board or a Boson.

It behaves like the devices in the ways the adapters depend on:

- A Y16 camera sends 16-bit frames only once asked for FOURCC ``Y16 `` and then told not to convert to
  RGB. Changing the FOURCC renegotiates the stream and turns conversion back on (flirpy warns that the
  order of the two calls matters), so an adapter that sets them the wrong way round gets 8-bit BGR.
- Depending on the OpenCV build, 16-bit frames arrive as ``(H, W) uint16`` or as the raw byte buffer in
  a flat ``(1, 2*H*W) uint8`` array; a camera can be told which.
- A Lepton's frames carry two telemetry rows at the bottom, the second-to-last laid out as flirpy's
  ``Lepton.decode_telemetry`` unpacks it, with a known FPA temperature and a running frame counter.
- A camera can be told to stop answering after N frames, as a USB camera does when it resets: reads
  fail and it drops off the bus (opening it fails) until told to answer again.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np
import pytest

#: flirpy 0.6's ``Lepton.decode_telemetry`` format, over the second-to-last row's 320 bytes.
LEPTON_TELEMETRY_FORMAT = "<2cII16x4h6xIh2xh8xhI4xhhhhhh64xI172x"

#: Scene value of the fake thermal frames: 25.00 °C in TLinear centikelvin.
SCENE_CENTIKELVIN = 29815

Pixels = Literal["y16", "bgr"]
Layout = Literal["uint16", "flat-uint8"]


def lepton_telemetry_rows(
    *,
    frame_count: int,
    fpa_temp_k: float,
    ffc_temp_k: float,
    uptime_ms: int,
    ffc_elapsed_ms: int,
    status: int = 0,
    frame_mean: int = SCENE_CENTIKELVIN,
    width: int = 160,
) -> np.ndarray:
    """The two telemetry rows of a Lepton frame, as ``(2, width) uint16``."""
    packed = struct.pack(
        LEPTON_TELEMETRY_FORMAT,
        b"\x0e",  # telemetry revision, major
        b"\x00",  # minor
        uptime_ms,
        status,
        *(3, 0, 0, 0),  # software revision
        frame_count,
        frame_mean,
        round(fpa_temp_k * 100),
        round(ffc_temp_k * 100),
        ffc_elapsed_ms,
        *(0, 0, 119, 159),  # AGC ROI
        0,  # AGC clip high
        0,  # AGC clip low
        7,  # video format
    )
    rows = np.zeros((2, width), np.uint16)
    rows[0, : len(packed) // 2] = np.frombuffer(packed, "<u2")
    return rows


class FakeCamera:
    """One device on the fake bus.

    Parameters
    ----------
    width, height
        Image size, telemetry rows not included.
    pixels
        ``"y16"`` for a thermal core, ``"bgr"`` for a colour webcam.
    telemetry
        ``"lepton"`` adds the two telemetry rows to every Y16 frame.
    layout
        How 16-bit frames come out of OpenCV: ``"uint16"`` (H, W) or ``"flat-uint8"`` raw bytes.
    fps
        Frame rate; a read blocks for one frame period, as a real device does.
    fpa_temp_k
        FPA temperature written into the telemetry.
    """

    def __init__(
        self,
        width: int,
        height: int,
        *,
        pixels: Pixels = "y16",
        telemetry: Literal["none", "lepton"] = "none",
        layout: Layout = "uint16",
        fps: float = 200.0,
        fpa_temp_k: float = 305.12,
    ) -> None:
        self.width = width
        self.height = height
        self.pixels = pixels
        self.telemetry = telemetry
        self.layout = layout
        self.period_s = 1.0 / fps
        self.fpa_temp_k = fpa_temp_k
        self.frames_sent = 0
        self.open_attempts = 0
        self.first_frame_count = 1000
        self._lock = threading.Lock()
        self._answer_until: int | None = None

    @property
    def telemetry_rows(self) -> int:
        return 2 if self.telemetry == "lepton" else 0

    @property
    def answering(self) -> bool:
        with self._lock:
            return self._answer_until is None or self.frames_sent < self._answer_until

    def stop_answering_after(self, frames: int) -> None:
        """After ``frames`` more frames, reads fail and the device drops off the bus."""
        with self._lock:
            self._answer_until = self.frames_sent + frames

    def answer_again(self) -> None:
        with self._lock:
            self._answer_until = None

    def expected_pixel(self, n: int) -> int:
        """Top-left pixel of the ``n``-th frame sent (rows and columns add to it)."""
        return SCENE_CENTIKELVIN + n % 100

    def y16(self, n: int) -> np.ndarray:
        """The ``n``-th frame as the sensor produces it, telemetry rows included."""
        rows = np.arange(self.height, dtype=np.uint16)[:, None]
        cols = np.arange(self.width, dtype=np.uint16)[None, :]
        image = (self.expected_pixel(n) + rows + cols).astype(np.uint16)
        if self.telemetry == "lepton":
            footer = lepton_telemetry_rows(
                frame_count=self.first_frame_count + n,
                fpa_temp_k=self.fpa_temp_k,
                ffc_temp_k=self.fpa_temp_k - 0.5,
                uptime_ms=60_000 + 111 * n,
                ffc_elapsed_ms=5_000 + 111 * n,
                width=self.width,
            )
            image = np.vstack([image, footer])
        return image

    def bgr(self, n: int) -> np.ndarray:
        return np.full((self.height, self.width, 3), n % 256, np.uint8)

    def read(self, capture: FakeVideoCapture) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.period_s)
        with self._lock:
            if self._answer_until is not None and self.frames_sent >= self._answer_until:
                return False, None
            n = self.frames_sent
            self.frames_sent += 1
        if self.pixels == "bgr":
            return True, self.bgr(n)
        frame = self.y16(n)
        if capture.fourcc != cv2.VideoWriter_fourcc(*"Y16 ") or capture.convert_rgb:
            # What a V4L2 backend hands over when it converts: 8-bit colour, the 16 bits squeezed away.
            grey = (frame >> 8).astype(np.uint8)
            return True, np.repeat(grey[:, :, None], 3, axis=2)
        if self.layout == "flat-uint8":
            return True, frame.astype("<u2").view(np.uint8).reshape(1, -1).copy()
        return True, frame


class FakeVideoCapture:
    """Stands in for ``cv2.VideoCapture``: opens a device on the bus and records what is set on it."""

    def __init__(self, bus: FakeV4L2Bus, target: int | str, api: int = cv2.CAP_ANY, *params: object) -> None:
        if isinstance(target, int) and target >= 100:
            # The legacy form flirpy uses: backend + index in one number (cv2.CAP_V4L2 + 0 == 200).
            api, target = target - target % 100, target % 100
        self.target = target
        self.api = api
        self.camera = bus.cameras.get(target)
        if self.camera is not None:
            self.camera.open_attempts += 1
        self.opened = self.camera is not None and self.camera.answering
        self.set_calls: list[tuple[int, float]] = []
        self.fourcc = cv2.VideoWriter_fourcc(*"YUYV")
        self.convert_rgb = True
        self.fps = 0.0
        bus.captures.append(self)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.set_calls.append((prop, value))
        if not self.opened:
            return False
        if prop == cv2.CAP_PROP_FOURCC:
            self.fourcc = int(value)
            self.convert_rgb = True  # a new pixel format renegotiates the stream, conversion included
        elif prop == cv2.CAP_PROP_CONVERT_RGB:
            self.convert_rgb = bool(value)
        elif prop == cv2.CAP_PROP_FPS:
            self.fps = float(value)
        elif prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            return value == self.get(prop)  # the device has one mode and keeps it
        return True

    def get(self, prop: int) -> float:
        camera = self.camera
        if not self.opened or camera is None:
            return 0.0
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            return float(camera.width)
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:
            return float(camera.height + camera.telemetry_rows)
        if prop == cv2.CAP_PROP_FOURCC:
            return float(self.fourcc)
        if prop == cv2.CAP_PROP_CONVERT_RGB:
            return float(self.convert_rgb)
        if prop == cv2.CAP_PROP_FPS:
            return self.fps or 1.0 / camera.period_s
        return 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or self.camera is None:
            return False, None
        return self.camera.read(self)

    def release(self) -> None:
        self.opened = False


class FakeV4L2Bus:
    """The cameras "plugged in", by device index or URL, and every capture opened on them."""

    def __init__(self) -> None:
        self.cameras: dict[int | str, FakeCamera] = {}
        self.captures: list[FakeVideoCapture] = []

    def plug(self, target: int | str, camera: FakeCamera) -> FakeCamera:
        self.cameras[target] = camera
        return camera

    def video_capture(self, target: int | str, api: int = cv2.CAP_ANY, *params: object) -> FakeVideoCapture:
        return FakeVideoCapture(self, target, api, *params)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeV4L2Bus:
        monkeypatch.setattr(cv2, "VideoCapture", self.video_capture)
        return self

    def captures_of(self, target: int | str) -> list[FakeVideoCapture]:
        return [c for c in self.captures if c.target == target]


def lepton(**kwargs: object) -> FakeCamera:
    """A Lepton 3.5 on a PureThermal board: 160x120 Y16 plus two telemetry rows."""
    return FakeCamera(160, 120, telemetry="lepton", **kwargs)  # type: ignore[arg-type]


def boson(**kwargs: object) -> FakeCamera:
    """A Boson 320: 320x256 Y16 raw counts, no telemetry rows."""
    return FakeCamera(320, 256, **kwargs)  # type: ignore[arg-type]


def webcam(**kwargs: object) -> FakeCamera:
    """A small colour webcam."""
    return FakeCamera(64, 48, pixels="bgr", **kwargs)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], object], timeout: float = 2.0, interval: float = 0.005) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` passes; False if it never was."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
