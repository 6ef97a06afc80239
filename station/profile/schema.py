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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
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

# What a profile may say about the geometry, checked on load (:meth:`CalibrationProfile.from_dict`).
# Every bound is far outside what a working station has and far inside what breaks the arithmetic: a
# value beyond one is a typo, a unit mistake (mm for m) or a broken fit, never a camera, and letting it
# through turns into NaN pixel coordinates deep in the measurement instead of one line at start-up.

#: Metres at which the homography may be exact: the same range ``station calibrate register
#: --reference-distance`` accepts. A target is held from about 20 cm (a board filling both views) to a
#: few metres; screening happens at 0.5-3 m. 1e-300 m would make the parallax term overflow.
REFERENCE_DISTANCE_RANGE_M = (0.2, 10.0)
#: The visible camera's focal length in pixels: the range ``register --visible-focal-px`` accepts.
#: 50 px is a 160-degree fish-eye on a 640-pixel-wide image, 20000 px a 10-degree lens on an 8K sensor;
#: a face's distance is ``focal * 63 mm / eye spacing``, so a focal outside this makes every distance,
#: and with it every parallax shift, wrong by the same factor.
VISIBLE_FOCAL_RANGE_PX = (50.0, 20000.0)
#: Largest parallax, thermal pixels x metres. The parallax is the thermal camera's focal length in pixels
#: times the cameras' baseline: the widest thermal sensor made is 1280 pixels, which behind a 12-degree
#: lens is a focal of ~6100 px, and the two cameras of one station sit within ~0.5 m of each other (a few
#: centimetres in practice), so ~3000 px*m is the most any real rig has. 1e300 px*m overflows to NaN.
MAX_PARALLAX_PX_M = 5000.0
#: Smallest ratio of the homography's smallest to largest singular value. Scale-free (unlike the
#: determinant, which multiplying the matrix by 1e4 changes by 1e12 without changing the mapping): a
#: rank-2 matrix, which collapses the visible image onto a line, has a ratio at double precision's
#: rounding (~1e-17), while a real visible -> thermal homography in pixel coordinates (scale 0.01-10,
#: offsets up to ~1e4 px) stays above ~1e-8.
MIN_HOMOGRAPHY_SINGULAR_RATIO = 1e-12


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
    #: A kiosk's heated reference disc found in the frames and held at a temperature the operator gave,
    #: rather than a calibrated blackbody: known less well (never written to a profile file).
    disc: bool = False


#: What a thermal camera's PSF sigma may be (px): below 0.2 px no f/1 lens in 8-14 µm gets on 12 µm pixels
#: (diffraction alone is ~0.4 px); beyond 3 px the camera is out of focus and no canthus can be read.
PSF_SIGMA_RANGE_PX: tuple[float, float] = (0.2, 3.0)


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
    #: The thermal optics' point-spread function as a Gaussian sigma in pixels (optional ``[optics]``
    #: table, from ``station calibrate spot-size``); None: the camera model's documented default
    #: (:data:`station.screen.spot_size.PSF_SIGMA_PX`).
    optics_psf_sigma_px: float | None = None

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
        if self.optics_psf_sigma_px is not None:
            out["optics"] = {"psf_sigma_px": float(self.optics_psf_sigma_px)}
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
        near, far = REFERENCE_DISTANCE_RANGE_M
        low_f, high_f = VISIBLE_FOCAL_RANGE_PX
        registration = Registration(
            homography=read.matrix("registration.homography", 3, 3),
            reference_distance_m=read.number("registration.reference_distance_m", minimum=near, maximum=far,
                                             unit="m"),
            visible_focal_px=read.number("registration.visible_focal_px", minimum=low_f, maximum=high_f,
                                         unit="px"),
            parallax_px_m=read.vector("registration.parallax_px_m", 2),
            rms_error_px=read.number("registration.rms_error_px", minimum=0.0),
        )
        _check_homography(registration.matrix, origin)
        parallax = math.hypot(*registration.parallax_px_m)
        if parallax > MAX_PARALLAX_PX_M:
            raise ProfileError(
                f"{origin}: [registration] parallax_px_m: expected a shift of at most {MAX_PARALLAX_PX_M:g} px*m "
                f"(thermal focal length x camera baseline), got {_shown(list(registration.parallax_px_m))} "
                f"({parallax:.3g} px*m)"
            )
        radiometry = Radiometry(
            gain=read.number("radiometry.gain", positive=True),
            offset_c=read.number("radiometry.offset_c"),
            emissivity=read.number("radiometry.emissivity", positive=True, maximum=1.0),
        )
        blackbody = None
        if "blackbody" in data:
            roi = read.vector("blackbody.roi", 4)
            if not all(float(v).is_integer() for v in roi) or not (0 <= roi[0] < roi[2] and 0 <= roi[1] < roi[3]):
                raise ProfileError(f"{origin}: [blackbody] roi: expected whole pixels 0 <= x1 < x2, 0 <= y1 < y2, "
                                   f"got {_shown([int(v) if float(v).is_integer() else v for v in roi])}")
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
            optics_psf_sigma_px=(read.number("optics.psf_sigma_px", minimum=PSF_SIGMA_RANGE_PX[0],
                                             maximum=PSF_SIGMA_RANGE_PX[1], unit="px")
                                 if "optics" in data else None),
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
        return ProfileError(f"{self.origin}: {self._where(key)}: expected {expected}, got {_shown(got)}")

    def number(
        self,
        key: str,
        *,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        unit: str = "",
    ) -> float:
        """A finite number, optionally within bounds; a range is named whole so the fix is obvious."""
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self._fail(key, "a number", value)
        if positive and value <= 0:
            raise self._fail(key, "a number above 0", value)
        suffix = f" {unit}" if unit else ""
        if minimum is not None and maximum is not None and not minimum <= value <= maximum:
            raise self._fail(key, f"a number from {minimum:g} to {maximum:g}{suffix}", value)
        if minimum is not None and value < minimum:
            raise self._fail(key, f"a number >= {minimum:g}{suffix}", value)
        if maximum is not None and value > maximum:
            raise self._fail(key, f"a number <= {maximum:g}{suffix}", value)
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
        """An ISO 8601 time with its zone, as a string.

        Schema 1 writes ``created`` as a quoted string, but TOML has a datetime type of its own, and a
        technician editing a profile by hand naturally writes ``created = 2026-11-23T10:00:00Z`` without
        quotes. An offset datetime means exactly one instant, so it is accepted and normalised to the
        string the station itself writes (``...Z`` for UTC, else ``+HH:MM``); the profile then compares,
        saves and ages like any other. A TOML *local* datetime, date or time has no zone, so it cannot say
        when the calibration was made, and is refused with the fix rather than a Python repr.
        """
        value = self._get(key)
        if isinstance(value, datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise self._fail(key, "a time with its zone (end it with Z for UTC)", value)
            return value.isoformat().replace("+00:00", "Z")
        if isinstance(value, date | time):
            raise self._fail(key, "a date and time with its zone, such as 2026-11-23T10:00:00Z", value)
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


def _shown(value: Any) -> str:
    """A value as the profile's TOML spells it, for messages: ``2026-11-23T10:00:00``, not a Python repr."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else str(value)
    return str(value)


def _check_homography(matrix: np.ndarray, origin: str) -> None:
    """Refuse a homography that is not invertible to double precision, whatever its overall scale.

    A homography is only defined up to scale, so any test of it must not change when the matrix is
    multiplied by a constant. ``abs(det) < 1e-12`` did: the rank-2 matrix
    ``[[1e4, 2e4, 3e4], [4e4, 5e4, 6e4], [7e4, 8e4, 9e4]]`` has a determinant of about 4e-3 in floating
    point and passed, although it maps the whole visible image onto one line. The ratio of the smallest
    to the largest singular value is scale-free and measures how close the matrix is to rank 2
    (:data:`MIN_HOMOGRAPHY_SINGULAR_RATIO`). Whether the visible frame lands on the thermal frame needs
    the frame sizes, which the profile does not know: :func:`check_profile_fits` does that when the
    profile meets its cameras.
    """
    singular = np.linalg.svd(matrix, compute_uv=False)
    ratio = float(singular[-1] / singular[0]) if singular[0] > 0 else 0.0
    if not ratio >= MIN_HOMOGRAPHY_SINGULAR_RATIO:
        raise ProfileError(
            f"{origin}: [registration] homography is singular or ill-conditioned (smallest / largest "
            f"singular value {ratio:.1e}, at least {MIN_HOMOGRAPHY_SINGULAR_RATIO:g} expected): it would squash "
            "the visible image onto a line or throw it far off the thermal frame; recalibrate with station "
            "calibrate register"
        )


def frame_size(shape: Sequence[int], name: str) -> tuple[int, int]:
    """(width, height) from an image shape ``(height, width[, channels])``."""
    try:
        height, width = (int(v) for v in tuple(shape)[:2])
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an image shape (height, width[, channels]), got {shape!r}") from None
    if len(tuple(shape)) not in (2, 3) or height <= 0 or width <= 0:
        raise ValueError(f"{name}: expected an image shape (height, width[, channels]), got {shape!r}")
    return width, height


def check_profile_fits(
    profile: CalibrationProfile,
    thermal_shape: Sequence[int],
    visible_shape: Sequence[int] | None = None,
    *,
    origin: str = "calibration profile",
) -> None:
    """Check a profile against the frames it is about to screen; a misfit is one-line :class:`ProfileError`.

    What a profile says in pixels only makes sense for the cameras it was made with, and it does not
    record their frame sizes, so these checks wait until the profile meets its sources: call this once
    the first frame of each stream (or the recording's meta) gives the sizes, before screening starts.
    Found here, a wrong profile is one line naming the file; found later, it is a ``ValueError`` in the
    blackbody monitor that stops the engine mid-run, or a registration that silently screens nobody.

    Parameters
    ----------
    profile
        The profile the station will screen with.
    thermal_shape
        The thermal frame's shape, ``(height, width)`` as ``frame.image.shape`` gives it.
    visible_shape
        The visible frame's shape, ``(height, width[, 3])``; ``None`` for a thermal-only station, whose
        faces are found in the thermal image and which has no visible frame to register.
    origin
        How the message names the profile (its path).

    Raises
    ------
    ProfileError
        The blackbody ROI is not inside the thermal frame, or (with ``visible_shape``) the registration
        does not put the visible frame on the thermal one
        (:func:`station.profile.registration.check_registration_covers`).
    ValueError
        A shape that is not an image shape: a bug in the caller, not in the profile.
    """
    width, height = frame_size(thermal_shape, "thermal_shape")
    if profile.blackbody is not None:
        x1, y1, x2, y2 = profile.blackbody.roi
        if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
            raise ProfileError(
                f"{origin}: [blackbody] roi {list(profile.blackbody.roi)} is not inside the {width}x{height} thermal "
                f"frame (expected 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height}): the profile was made for "
                "another thermal camera or resolution; find the blackbody again with station calibrate blackbody"
            )
    if visible_shape is not None:
        from station.profile.registration import check_registration_covers  # it imports this module

        check_registration_covers(profile.registration, visible_shape, thermal_shape, origin=origin)


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
