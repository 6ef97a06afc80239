"""The data that flows between the station's parts.

Arrays are validated when a value is built, so a wrong shape or dtype fails where it was made, with a
message that says what was expected and what arrived, instead of deep inside the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from station.errors import StationError

Stream = Literal["visible", "thermal"]
STREAMS: tuple[Stream, ...] = ("visible", "thermal")


def _names(members) -> tuple[str, ...]:
    """Enum members as the plain strings they stand for, so messages read as they always have."""
    return tuple(str(m) for m in members)


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
    ``stream`` is for listeners in the process only (the window tracks which camera is lost by it): it is
    neither in that line nor in the database, where ``detail`` says the same for people.
    """

    kind: str
    t: float
    detail: str = ""
    stream: Stream | None = None  # "thermal" or "visible" for camera_lost / camera_recovered / source_finished

    def to_json(self) -> dict[str, Any]:
        return {"type": "system", "kind": self.kind, "t": round(float(self.t), 4), "detail": self.detail}


def _check_array(owner: str, array: np.ndarray, shape_tail: tuple[int, ...], n: int | None = None) -> None:
    """Raise with 'expected X, got Y' unless ``array`` is (n, *shape_tail) (any n when None)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{owner}: expected a numpy array, got {type(array).__name__}")
    expected = ("N" if n is None else str(n),) + tuple(str(d) for d in shape_tail)
    ok = array.ndim == 1 + len(shape_tail) and array.shape[1:] == shape_tail and (n is None or len(array) == n)
    if not ok:
        want = "(" + ", ".join(expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{owner}: expected shape {want}, got {tuple(array.shape)}")


@dataclass(frozen=True, eq=False)
class Faces:
    """Faces found in one visible frame, column-oriented (one row per face), in visible pixels.

    ``landmarks`` are CenterFace's five points per face: left eye, right eye (as they appear in the
    image), nose tip, left and right mouth corner. Index with a boolean mask or integer array to keep
    some faces: ``faces[faces.score > 0.5]``.
    """

    xyxy: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.asarray(self.xyxy, dtype=np.float32))
        object.__setattr__(self, "score", np.asarray(self.score, dtype=np.float32))
        object.__setattr__(self, "landmarks", np.asarray(self.landmarks, dtype=np.float32))
        _check_array("Faces.xyxy", self.xyxy, (4,))
        n = len(self.xyxy)
        _check_array("Faces.score", self.score, (), n)
        _check_array("Faces.landmarks", self.landmarks, (5, 2), n)

    @classmethod
    def empty(cls) -> Faces:
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Faces:
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Faces(self.xyxy[index], self.score[index], self.landmarks[index])

    @property
    def eyes(self) -> np.ndarray:
        """(N, 2, 2): the two eye landmarks of each face."""
        return self.landmarks[:, :2]

    @property
    def eye_distance_px(self) -> np.ndarray:
        """(N,) pixels between the eyes: the station's ruler for distance and ROI size."""
        return np.linalg.norm(self.landmarks[:, 1] - self.landmarks[:, 0], axis=1)


@dataclass(frozen=True, eq=False)
class ThermalImage:
    """A thermal frame converted to °C (after gain/offset and the blackbody correction, if any)."""

    celsius: np.ndarray
    raw: np.ndarray
    t: float
    index: int
    blackbody_error_c: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.celsius, np.ndarray) and self.celsius.ndim == 2 and self.celsius.dtype == np.float32):
            got = _describe(self.celsius) if isinstance(self.celsius, np.ndarray) else type(self.celsius).__name__
            raise ValueError(f"ThermalImage.celsius: expected (H,W) float32, got {got}")
        if self.raw.shape != self.celsius.shape:
            raise ValueError(
                f"ThermalImage.raw: expected shape {self.celsius.shape} like celsius, got {self.raw.shape}"
            )


class Flag(StrEnum):
    """Why a reading cannot be trusted (or, for an advisory flag, how it could be better)."""

    TOO_FAR = "too_far"
    OFF_AXIS = "off_axis"
    GLASSES = "glasses"
    SEVERAL_FACES = "several_faces"
    BLACKBODY_BAD = "blackbody_bad"
    CALIBRATION_EXPIRED = "calibration_expired"
    MOTION = "motion"
    # no blackbody and no reference disc at a known temperature: no absolute temperature can be claimed
    UNREFERENCED = "unreferenced"
    # a body temperature no living, walking person has: a measurement fault, never a level
    IMPLAUSIBLE = "implausible"
    # measured, but the interval (body_c +- u95_c) reaches the fever threshold: re-measure
    UNCERTAIN = "uncertain"
    # advisory, never blocks a reading: measurable, but too few pixels span the canthus to read it well
    STEP_CLOSER = "step_closer"


QUALITY_FLAGS = frozenset(Flag)
#: Flags that advise the person but never withhold a reading.
ADVISORY_FLAGS = frozenset({Flag.STEP_CLOSER})


class Level(StrEnum):
    """A screening's outcome; members equal (and serialise as) their strings."""

    NORMAL = "normal"
    ELEVATED = "elevated"
    FEVER = "fever"
    RETRY = "retry"


#: The level names as plain strings (command-line choices, SQL parameters), in the enum's order.
LEVELS: tuple[str, ...] = tuple(level.value for level in Level)
#: The levels that raise an alarm a guard must acknowledge.
ALARM_LEVELS = frozenset({Level.ELEVATED, Level.FEVER})
#: One colour per level, for the window and the report alike (``station`` never imports ``ui``).
LEVEL_COLOURS: Mapping[str, str] = MappingProxyType({
    Level.NORMAL: "#2e7d32",
    Level.ELEVATED: "#ff8f00",
    Level.FEVER: "#d50000",
    Level.RETRY: "#78909c",
})


class Site(StrEnum):
    """Where a skin temperature was read: the inner canthi (the standard's site), or, for a person whose
    glasses hide them, the hottest of the forehead and mouth regions
    (:func:`station.screen.measure.read_forehead_mouth`)."""

    CANTHUS = "canthus"
    FOREHEAD_MOUTH = "forehead_mouth"


#: The site names as plain strings (command-line choices, messages), in the enum's order.
SITES: tuple[str, ...] = tuple(site.value for site in Site)


class EventKind(StrEnum):
    """The kinds of :class:`SystemEvent` the station logs (the ``kind`` of a ``"system"`` line)."""

    STARTED = "started"
    STOPPED = "stopped"
    CAMERA_LOST = "camera_lost"
    CAMERA_RECOVERED = "camera_recovered"
    SOURCE_FINISHED = "source_finished"
    BLACKBODY_NOT_SEEN = "blackbody_not_seen"
    BLACKBODY_UNSTABLE = "blackbody_unstable"
    BLACKBODY_OUT_OF_TOLERANCE = "blackbody_out_of_tolerance"
    BLACKBODY_OK = "blackbody_ok"
    CALIBRATION_AGE_UNKNOWN = "calibration_age_unknown"
    CALIBRATION_EXPIRED = "calibration_expired"
    CALIBRATION_VERIFIED = "calibration_verified"
    CALIBRATION_VERIFY_FAILED = "calibration_verify_failed"
    UNREFERENCED = "unreferenced"
    RETENTION_PURGE = "retention_purge"
    RETENTION_FAILED = "retention_failed"
    STORAGE_FAULT = "storage_fault"
    STORAGE_RECOVERED = "storage_recovered"


@dataclass(frozen=True)
class Measurement:
    """One face in one frame pair: its skin temperature (at ``site``), or the reasons it could not be trusted."""

    track_id: int
    skin_c: float | None
    hottest_px: tuple[float, float] | None  # the hottest pixel of the site read (x, y, thermal image coordinates)
    thermal_xyxy: tuple[float, float, float, float]
    distance_m: float
    quality: frozenset[str] = frozenset()
    site: str = Site.CANTHUS  # where skin_c (and hottest_px) was read: the canthi, or the forehead and mouth

    def __post_init__(self) -> None:
        if self.site not in SITES:
            raise ValueError(f"Measurement.site: expected one of {_names(SITES)}, got {self.site!r}")
        unknown = set(self.quality) - QUALITY_FLAGS
        if unknown:
            known = sorted(_names(QUALITY_FLAGS))
            raise ValueError(f"Measurement.quality: expected flags from {known}, got {sorted(unknown)}")

    @property
    def good(self) -> bool:
        return not (self.quality - ADVISORY_FLAGS) and self.skin_c is not None


@dataclass(frozen=True)
class ScreeningDecision:
    """The one decision the station makes per person, as the headless contract prints it."""

    track_id: int
    t_first_seen: float
    t_decided: float
    skin_c: float | None
    body_c: float | None
    level: str
    quality: frozenset[str] = frozenset()
    site: str = Site.CANTHUS  # where skin_c was read (a retry keeps the default)
    #: Expanded uncertainty (k=2, °C) of body_c: readings' spread, sensor noise, the reference, the
    #: spot-size correction and the skin-to-body model's residual (station.screen.uncertainty). None for a retry.
    u95_c: float | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"ScreeningDecision.level: expected one of {_names(LEVELS)}, got {self.level!r}")
        if self.site not in SITES:
            raise ValueError(f"ScreeningDecision.site: expected one of {_names(SITES)}, got {self.site!r}")

    def to_json(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(float(v), 2)

        return {
            "type": "screening",
            "track_id": self.track_id,
            "t_first_seen": round(self.t_first_seen, 4),
            "t_decided": round(self.t_decided, 4),
            "skin_c": r(self.skin_c),
            "body_c": r(self.body_c),
            "level": self.level,
            "quality": sorted(self.quality),
            "site": self.site,
            "u95_c": r(self.u95_c),
        }


#: What a guard did about an alarm: the latch (station.screen.alarm), the log (station.log.store) and the
#: acknowledgement dialog share this vocabulary and its check.
ACK_ACTIONS: tuple[str, ...] = ("cleared_secondary_check", "referred", "re_measure")


def check_action(action: str, thermometer_c: float | None) -> None:
    """Raise :class:`StationError` unless ``action`` is a known one and the thermometer reading is sane."""
    if action not in ACK_ACTIONS:
        raise StationError(f"acknowledgement action: expected one of {', '.join(ACK_ACTIONS)}, got {action!r}")
    if thermometer_c is not None and not (
        isinstance(thermometer_c, int | float) and not isinstance(thermometer_c, bool) and 30.0 <= thermometer_c <= 45.0
    ):
        raise StationError(f"thermometer reading: expected 30 to 45 °C, got {thermometer_c!r}")
