"""The data that flows between the station's parts.

Arrays are validated when a value is built, so a wrong shape or dtype fails where it was made, with a
message that says what was expected and what arrived, instead of deep inside the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

Stream = Literal["visible", "thermal"]
STREAMS: tuple[Stream, ...] = ("visible", "thermal")


def _describe(array: np.ndarray) -> str:
    return f"{array.dtype} {tuple(array.shape)}"


@dataclass(frozen=True, eq=False)
class Frame:
    """One image from one camera.

    Parameters
    ----------
    image
        Visible frames are ``(H, W, 3) uint8`` BGR (OpenCV's order); thermal frames are ``(H, W) uint16``
        raw sensor values, whose meaning (TLinear centikelvin or raw counts) the source's metadata says.
    t
        Seconds on one monotonic clock shared by both cameras of a station (for a recording, seconds from
        its start), so the two streams can be paired by time.
    index
        The frame's position in its own stream, from 0.
    meta
        Per-frame extras a source knows (telemetry, FPA temperature); read-only.
    """

    image: np.ndarray
    t: float
    index: int
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray):
            raise TypeError(f"Frame.image: expected a numpy array, got {type(image).__name__}")
        visible = image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        thermal = image.ndim == 2 and image.dtype == np.uint16
        if not (visible or thermal):
            raise ValueError(
                "Frame.image: expected (H,W,3) uint8 BGR or (H,W) uint16 thermal, got " + _describe(image)
            )
        if not np.isfinite(self.t):
            raise ValueError(f"Frame.t: expected a finite time in seconds, got {self.t!r}")
        if self.index < 0:
            raise ValueError(f"Frame.index: expected >= 0, got {self.index}")
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    @property
    def stream(self) -> Stream:
        """Which camera kind the image came from, read from its layout."""
        return "thermal" if self.image.ndim == 2 else "visible"

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class FramePair:
    """A thermal frame and the visible frame nearest to it in time (``None`` in thermal-only mode)."""

    thermal: Frame
    visible: Frame | None

    def __post_init__(self) -> None:
        if self.thermal.stream != "thermal":
            raise ValueError(f"FramePair.thermal: expected a thermal frame, got {_describe(self.thermal.image)}")
        if self.visible is not None and self.visible.stream != "visible":
            raise ValueError(f"FramePair.visible: expected a visible frame, got {_describe(self.visible.image)}")

    @property
    def t(self) -> float:
        return self.thermal.t

    @property
    def skew(self) -> float:
        """Visible minus thermal capture time, seconds (0 without a visible frame)."""
        return 0.0 if self.visible is None else self.visible.t - self.thermal.t


@dataclass(frozen=True)
class SystemEvent:
    """Something about the station itself (a camera lost or back, a recording ended), not about a person.

    Serialised by :meth:`to_json` as the ``{"type": "system", ...}`` line of the headless contract.
    """

    kind: str
    t: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"type": "system", "kind": self.kind, "t": round(float(self.t), 4), "detail": self.detail}
