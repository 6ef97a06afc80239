"""The calibration profile: where a visible pixel lands on the thermal image, and what a reading means in °C.

Schema 1 is a contract (DESIGN.md): recordings carry one, technicians write them and the engine reads
them. It lives in ``station`` rather than ``calibration`` because the engine must read profiles and the
engine never imports the technicians' package; ``calibration`` holds the routines that *fit* them.

Schema bump rules: adding an optional key keeps ``schema_version``; renaming or removing a key, or
changing a key's meaning or unit, bumps it, and this reader keeps reading every older version.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from station.errors import ProfileError

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = (1,)


# A calibration older than this is not trusted: drift, a knocked camera, a re-aimed blackbody. The
# station pauses screening (and says so) until a technician recalibrates.
MAX_CALIBRATION_AGE_DAYS = 30.0

@dataclass(frozen=True)
class Registration:
    """Visible pixels to thermal pixels.

    The homography is exact for points on a plane ``reference_distance_m`` in front of the cameras; a
    face at another distance ``d`` lands shifted by ``parallax_px_m * (1/d - 1/reference_distance_m)``
    thermal pixels, because the two cameras sit a few centimetres apart.
    """

    homography: tuple[tuple[float, float, float], ...]
    reference_distance_m: float
    visible_focal_px: float
    parallax_px_m: tuple[float, float]
    rms_error_px: float

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.homography, dtype=np.float64)


@dataclass(frozen=True)
class Radiometry:
    """``celsius = gain * sensor_celsius + offset_c``, for skin of the given emissivity."""

    gain: float = 1.0
    offset_c: float = 0.0
    emissivity: float = 0.98


@dataclass(frozen=True)
class Blackbody:
    """The reference source in the thermal view: its ROI in thermal pixels, set point and tolerance."""

    roi: tuple[int, int, int, int]
    setpoint_c: float
    tolerance_c: float = 0.3


@dataclass(frozen=True)
class CalibrationProfile:
    station_id: str
    created: str
    registration: Registration
    radiometry: Radiometry
    blackbody: Blackbody | None = None
    schema_version: int = SCHEMA_VERSION
    #: Who made it (optional key; profiles written by ``station calibrate`` always carry it).
    technician: str | None = None

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        reg = self.registration
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "station_id": self.station_id,
            "created": self.created,
            **({"technician": self.technician} if self.technician else {}),
            "registration": {
                "homography": [[float(v) for v in row] for row in reg.homography],
                "reference_distance_m": float(reg.reference_distance_m),
                "visible_focal_px": float(reg.visible_focal_px),
                "parallax_px_m": [float(v) for v in reg.parallax_px_m],
                "rms_error_px": float(reg.rms_error_px),
            },
            "radiometry": {
                "gain": float(self.radiometry.gain),
                "offset_c": float(self.radiometry.offset_c),
                "emissivity": float(self.radiometry.emissivity),
            },
        }
        if self.blackbody is not None:
            out["blackbody"] = {
                "roi": [int(v) for v in self.blackbody.roi],
                "setpoint_c": float(self.blackbody.setpoint_c),
                "tolerance_c": float(self.blackbody.tolerance_c),
            }
        return out

    def to_toml(self) -> str:
        header = (
            "# Calibration profile, schema 1 (see DESIGN.md). Adding an optional key keeps the schema;\n"
            "# renaming, removing or changing the unit of a key bumps schema_version.\n"
        )
        return header + tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_toml(cls, text: str, *, origin: str = "calibration profile") -> CalibrationProfile:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{origin}: not valid TOML ({exc})") from None
        return cls.from_dict(data, origin=origin)

    @classmethod
    def load(cls, path: str | Path) -> CalibrationProfile:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProfileError(f"{path}: calibration profile not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot read calibration profile ({exc})") from None
        return cls.from_toml(text, origin=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, origin: str = "calibration profile") -> CalibrationProfile:
        read = _Reader(data, origin)
        version = read.integer("schema_version")
        if version not in SUPPORTED_SCHEMAS:
            known = ", ".join(str(v) for v in SUPPORTED_SCHEMAS)
            raise ProfileError(f"{origin}: schema_version {version} is not one this station reads ({known})")
        registration = Registration(
            homography=read.matrix("registration.homography", 3, 3),
            reference_distance_m=read.number("registration.reference_distance_m", positive=True),
            visible_focal_px=read.number("registration.visible_focal_px", positive=True),
            parallax_px_m=read.vector("registration.parallax_px_m", 2),
            rms_error_px=read.number("registration.rms_error_px", minimum=0.0),
        )
        if abs(np.linalg.det(registration.matrix)) < 1e-12:
            raise ProfileError(f"{origin}: [registration] homography is singular")
        radiometry = Radiometry(
            gain=read.number("radiometry.gain", positive=True),
            offset_c=read.number("radiometry.offset_c"),
            emissivity=read.number("radiometry.emissivity", positive=True, maximum=1.0),
        )
        blackbody = None
        if "blackbody" in data:
            roi = read.vector("blackbody.roi", 4)
            if not all(float(v).is_integer() for v in roi) or not (roi[0] < roi[2] and roi[1] < roi[3]):
                raise ProfileError(f"{origin}: [blackbody] roi: expected whole pixels x1 < x2, y1 < y2, got {roi}")
            blackbody = Blackbody(
                roi=tuple(int(v) for v in roi),  # type: ignore[arg-type]
                setpoint_c=read.number("blackbody.setpoint_c"),
                tolerance_c=read.number("blackbody.tolerance_c", positive=True),
            )
        return cls(
            station_id=read.text("station_id"),
            created=read.timestamp("created"),
            registration=registration,
            radiometry=radiometry,
            blackbody=blackbody,
            schema_version=version,
            technician=read.text("technician") if "technician" in data else None,
        )

    # ------------------------------------------------------------------ derived
    def age_days(self, now: datetime | None = None) -> float:
        """Days since the profile was made; technicians re-check past a configured maximum."""
        now = now or datetime.now(UTC)
        created = datetime.fromisoformat(self.created.replace("Z", "+00:00"))
        return (now - created).total_seconds() / 86400.0


def utc_now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class _Reader:
    """Looks up dotted keys and names the exact key when a value is missing or of the wrong kind."""

    def __init__(self, data: dict[str, Any], origin: str) -> None:
        self.data = data
        self.origin = origin

    def _where(self, key: str) -> str:
        table, _, name = key.rpartition(".")
        return f"[{table}] {name}" if table else name

    def _get(self, key: str) -> Any:
        node: Any = self.data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ProfileError(f"{self.origin}: missing key {self._where(key)}")
            node = node[part]
        return node

    def _fail(self, key: str, expected: str, got: Any) -> ProfileError:
        return ProfileError(f"{self.origin}: {self._where(key)}: expected {expected}, got {got!r}")

    def number(
        self,
        key: str,
        *,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._fail(key, "a number", value)
        if positive and value <= 0:
            raise self._fail(key, "a number above 0", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"a number >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self._fail(key, f"a number <= {maximum}", value)
        return float(value)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "a whole number", value)
        return value

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str) or not value.strip():
            raise self._fail(key, "a non-empty string", value)
        return value

    def timestamp(self, key: str) -> str:
        value = self.text(key)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self._fail(key, "an ISO 8601 time such as 2026-11-23T10:00:00Z", value) from None
        if parsed.tzinfo is None:
            raise self._fail(key, "a time with its zone (end it with Z for UTC)", value)
        return value

    def vector(self, key: str, n: int) -> tuple[float, ...]:
        value = self._get(key)
        if not isinstance(value, list) or len(value) != n:
            raise self._fail(key, f"a list of {n} numbers", value)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise self._fail(key, f"a list of {n} numbers", value)
        return tuple(float(v) for v in value)

    def matrix(self, key: str, rows: int, cols: int) -> tuple[tuple[float, ...], ...]:
        value = self._get(key)
        if not isinstance(value, list) or len(value) != rows:
            raise self._fail(key, f"a {rows}x{cols} array of numbers", value)
        out = []
        for row in value:
            if not isinstance(row, list) or len(row) != cols:
                raise self._fail(key, f"a {rows}x{cols} array of numbers", value)
            if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in row):
                raise self._fail(key, f"a {rows}x{cols} array of numbers", value)
            out.append(tuple(float(v) for v in row))
        return tuple(out)


#: Horizontal fields of view of thermal cameras a recording may name, for a default focal length.
THERMAL_HFOV_DEG = {"lepton3.5": 57.0, "lepton3": 57.0, "boson": 50.0}


def focal_from_hfov(width_px: float, hfov_deg: float) -> float:
    """A pinhole camera's focal length in pixels from its image width and horizontal field of view."""
    return (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)


def thermal_only_profile(camera: str, width: int, *, station_id: str = "thermal-only") -> CalibrationProfile:
    """The profile of a station with only a thermal camera: identity registration, no gain/offset.

    The engine then finds faces in the thermal image itself, so the "visible" camera of the profile is
    the thermal camera: its focal length (from the camera's field of view; a Lepton's 57° by default)
    turns a face's eye spacing into its distance. Screening needs no other number: without a blackbody
    table the readings are the camera's own, and a reference disc in view is found automatically.
    """
    hfov = THERMAL_HFOV_DEG.get(camera.lower(), 57.0)
    sensor_width = max(width, 160)  # the sensor's long side: a kiosk turns its Lepton upright
    focal = focal_from_hfov(sensor_width, hfov)
    return CalibrationProfile(
        station_id=station_id,
        created=utc_now_iso(),
        registration=Registration(
            homography=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
            reference_distance_m=1.0, visible_focal_px=round(focal, 3), parallax_px_m=(0.0, 0.0), rms_error_px=0.0,
        ),
        radiometry=Radiometry(),
    )
