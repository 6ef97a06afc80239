"""From a thermal camera's ``uint16`` output to degrees Celsius a fever decision can rest on.

Pure functions and one small stateful monitor: no I/O, no clock (times are passed in), no cameras. The
order of the steps is the physics, not a convenience:

1. **Sensor to °C at emissivity 1** (:func:`tlinear_to_celsius`, :func:`raw_to_celsius`). This is the
   *apparent* temperature: what a perfect black surface would have to be to send this much radiance.
2. **Profile gain and offset** (:func:`apply_gain_offset`): the camera's static error, fitted by a
   technician against reference sources. It is defined on the sensor's °C, so it comes first.
3. **Blackbody correction** (:class:`BlackbodyMonitor`): the slow drift left after the static fit,
   measured every frame on a reference source of known temperature and removed additively.
4. **Emissivity** (:func:`apparent_to_object_c`), applied only to skin readings by the measurement:
   skin (0.98) reflects about 2 % of the room, so its apparent temperature reads low by a few tenths
   of a degree. Doing this to the whole frame would wrongly "correct" the blackbody (emissivity ~1)
   and the background, so the frame stays apparent and :meth:`Radiometer.skin_c` corrects readings.

Emissivity and reflection mix *radiance*, not temperature, so corrections go through a Planck curve:
``S(T) = R / (exp(B / T) - F)`` (T in kelvin). Two conventions for the offset ``O`` are in use:

* the station's (recording format v1, ``recordings/README.md``): ``value = S + O``, so
  ``T = B / ln(R / (value - O) + F)``;
* FLIR's metadata (Planck R1, R2, B, F, O): ``value = R1 / (R2 (exp(B/T) - F)) - O``, so
  ``T = B / ln(R1 / (R2 (value + O)) + F)``; :func:`planck_from_flir` converts (``R = R1/R2``, ``O -> -O``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from station.profile.schema import CalibrationProfile
from station.types import EventKind, Frame, SystemEvent, ThermalImage

KELVIN = 273.15
ENCODINGS: tuple[str, ...] = ("tlinear-centikelvin", "raw-counts")
PLANCK_KEYS: tuple[str, ...] = ("R", "B", "F", "O")

#: A Lepton 3.5's Planck curve, of the order FLIR publishes (station convention). A Lepton in TLinear
#: mode reports apparent temperature at emissivity 1; only emissivity and reflection need its curve.
LEPTON_PLANCK: Mapping[str, float] = MappingProxyType({"R": 366545.0, "B": 1428.0, "F": 1.0, "O": -342.0})

#: The system events :class:`BlackbodyMonitor` reports, in order of precedence when several apply.
BLACKBODY_EVENTS: tuple[str, ...] = (
    "blackbody_not_seen",
    "blackbody_unstable",
    "blackbody_out_of_tolerance",
    "blackbody_ok",
)


# ----------------------------------------------------------------------------------------- validation
def _planck(planck: Mapping[str, float]) -> tuple[float, float, float, float]:
    """R, B, F, O as floats, or a ValueError that says which key is missing or wrong."""
    if not isinstance(planck, Mapping):
        raise TypeError(f"planck: expected a mapping with keys R, B, F, O, got {type(planck).__name__}")
    missing = [k for k in PLANCK_KEYS if k not in planck]
    if missing:
        raise ValueError(f"planck: expected keys R, B, F, O, got {sorted(planck)} (missing {', '.join(missing)})")
    values = []
    for key in PLANCK_KEYS:
        value = planck[key]
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise ValueError(f"planck.{key}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ValueError(f"planck.{key}: expected a finite number, got {value!r}")
        values.append(float(value))
    r, b, f, o = values
    if r <= 0 or b <= 0:
        raise ValueError(f"planck: expected R > 0 and B > 0, got R={r}, B={b}")
    return r, b, f, o


def _emissivity(value: float, name: str = "emissivity") -> float:
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name}: expected a number in (0, 1], got {value}")
    return value


def _real_array(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "uif":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {array.dtype}")
    return array


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


# ----------------------------------------------------------------------------------------- Planck curve
def signal_from_celsius(celsius: np.ndarray | float, planck: Mapping[str, float]) -> np.ndarray:
    """In-band signal ``S = R / (exp(B / T) - F)`` of a blackbody at ``celsius`` (float64, no offset O)."""
    r, b, f, _ = _planck(planck)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return r / (np.exp(b / (np.asarray(celsius, dtype=np.float64) + KELVIN)) - f)


def celsius_from_signal(signal: np.ndarray | float, planck: Mapping[str, float]) -> np.ndarray:
    """The blackbody temperature that gives ``signal`` (float64); NaN where the signal is not positive.

    A signal at or below zero has no temperature (a dead pixel, or an emissivity correction with a
    reflected surround hotter than the object could explain); NaN keeps it out of every robust
    statistic downstream instead of inventing a number.
    """
    r, b, f, _ = _planck(planck)
    s = np.asarray(signal, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = b / np.log(r / s + f) - KELVIN
    return np.where(s > 0, out, np.nan)


def _remove_reflection(signal: np.ndarray, emissivity: float, reflected_signal: np.ndarray | float) -> np.ndarray:
    """Object signal from a received one: ``S = eps S_obj + (1 - eps) S_refl``, solved for ``S_obj``."""
    if emissivity == 1.0:
        return signal
    return (signal - (1.0 - emissivity) * reflected_signal) / emissivity


def planck_from_flir(r1: float, r2: float, b: float, f: float, o: float) -> dict[str, float]:
    """FLIR's metadata constants (Planck R1, R2, B, F, O) in the station's convention.

    FLIR writes ``value = R1 / (R2 (exp(B/T) - F)) - O``; the station's ``value = R / (exp(B/T) - F) + O``.
    So ``R = R1 / R2`` and ``O`` changes sign. Without this, a FLIR camera's constants copied into a
    recording's ``planck`` would read tens of degrees off.
    """
    if r2 == 0:
        raise ValueError(f"r2: expected a non-zero Planck R2, got {r2}")
    return {"R": float(r1) / float(r2), "B": float(b), "F": float(f), "O": -float(o)}


# ----------------------------------------------------------------------------------------- sensor to °C
def tlinear_to_celsius(raw: np.ndarray) -> np.ndarray:
    """A TLinear frame (centikelvin, as a Lepton 3.5 or a Boson in TLinear mode sends) in °C, float32.

    The camera has already applied its own radiometry at emissivity 1, so this is a unit change; the
    result is the apparent temperature. float32 keeps 1e-5 °C at body temperature, far below the 0.01 K
    the encoding carries.
    """
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raise TypeError(f"raw: expected a uint16 TLinear array (centikelvin), got dtype {raw.dtype}")
    return (raw.astype(np.float64) * 0.01 - KELVIN).astype(np.float32)


def raw_to_celsius(
    raw: np.ndarray,
    planck: Mapping[str, float],
    *,
    emissivity: float = 1.0,
    reflected_c: float = 20.0,
) -> np.ndarray:
    """Raw counts through the camera's Planck curve (station convention) to °C, float32.

    ``T = B / ln(R / (S_obj - O) + F) - 273.15`` where the object's signal has the reflected part
    removed: ``S_obj = (S - (1 - eps) S_refl) / eps`` with ``S_refl`` the same curve at ``reflected_c``.
    The station calls this with ``emissivity=1`` for whole frames (see the module docstring for why);
    the parameters are here for sources whose metadata asks for the correction.

    Parameters
    ----------
    raw
        Raw counts (uint16 frames, or a float array such as an average of frames).
    planck
        ``{"R", "B", "F", "O"}`` in the station's convention (``value = S + O``).
    emissivity
        Of the surface, in (0, 1]; 1 gives the apparent temperature.
    reflected_c
        Apparent temperature of what the surface reflects (the room), °C.

    Returns
    -------
    numpy.ndarray
        float32, same shape as ``raw``; NaN where the counts are at or below what zero radiance gives.
    """
    raw = _real_array("raw", raw)
    r, b, f, o = _planck(planck)
    emissivity = _emissivity(emissivity)
    reflected_c = _finite("reflected_c", reflected_c)
    signal = raw.astype(np.float64) + (-o)  # the station's convention: value = S + O
    signal = _remove_reflection(signal, emissivity, signal_from_celsius(reflected_c, planck))
    return celsius_from_signal(signal, planck).astype(np.float32)


def apparent_to_object_c(
    apparent_c: np.ndarray | float,
    emissivity: float,
    reflected_c: float,
    planck: Mapping[str, float] = LEPTON_PLANCK,
) -> np.ndarray | float:
    """A surface's true temperature from its apparent (emissivity 1) temperature.

    A TLinear camera reports the temperature a blackbody would need to send the received radiance. For
    skin (emissivity 0.98) in a cooler room that reads a few tenths low. The correction goes through
    the camera's Planck curve because radiances add and temperatures do not: ``S = S(T_app)``, then
    ``S_obj = (S - (1 - eps) S(T_refl)) / eps`` and ``T = S^-1(S_obj)``. The simulator renders with
    exactly this physics, so this inverts it; a straight-line approximation in °C would leave a bias
    that grows with the skin-room difference.

    Parameters
    ----------
    apparent_c
        Apparent temperatures, °C (a number or an array).
    emissivity
        Of the surface, in (0, 1].
    reflected_c
        Apparent temperature of the surroundings the surface reflects, °C
        (:func:`estimate_reflected_c` when nothing better is known).
    planck
        The camera's curve, station convention; ``O`` plays no part (it cancels).

    Returns
    -------
    float or numpy.ndarray
        A float for a number, a float32 array for an array.
    """
    emissivity = _emissivity(emissivity)
    reflected_c = _finite("reflected_c", reflected_c)
    apparent = _real_array("apparent_c", apparent_c).astype(np.float64)
    signal = _remove_reflection(
        signal_from_celsius(apparent, planck), emissivity, signal_from_celsius(reflected_c, planck)
    )
    out = celsius_from_signal(signal, planck)
    return float(out) if out.ndim == 0 else out.astype(np.float32)


def apply_gain_offset(celsius: np.ndarray, gain: float, offset_c: float) -> np.ndarray:
    """The profile's static correction: ``gain * sensor_c + offset_c`` (float32).

    It is fitted on the sensor's own (apparent) °C against reference sources, so it is applied to the
    apparent frame before anything else is read from it, including the blackbody.
    """
    gain = _finite("gain", gain)
    if gain <= 0:
        raise ValueError(f"gain: expected a number above 0, got {gain}")
    offset_c = _finite("offset_c", offset_c)
    celsius = _real_array("celsius", celsius)
    return (gain * celsius.astype(np.float64) + offset_c).astype(np.float32)


def estimate_reflected_c(celsius_frame: np.ndarray, coolest_fraction: float = 0.6) -> float:
    """A robust room temperature from one frame: the median of its coolest 60 % of pixels.

    What skin reflects is the hemisphere in front of the face, mostly behind the camera, which the
    camera never sees; the walls it does see are the best proxy in a room near equilibrium, which is
    what the profile lacks a key for. People, lamps and the blackbody are warm and cover a minority of
    the frame, so the warmest 40 % are dropped; the median of the rest is not pulled down by a cold
    door or window either. An error of 1 °C here moves a skin reading by only ~0.02 °C at emissivity
    0.98, so this need not be better than a degree.

    Parameters
    ----------
    celsius_frame
        A (H, W) frame in °C (apparent, after gain/offset and blackbody correction); NaNs are ignored.
    coolest_fraction
        Share of the finite pixels, coolest first, whose median is taken, in (0, 1].

    Returns
    -------
    float
        °C; the median of the coolest ``f`` of the pixels is their ``f / 2`` quantile.
    """
    frame = _real_array("celsius_frame", celsius_frame)
    if frame.ndim != 2:
        raise ValueError(f"celsius_frame: expected a (H, W) frame, got shape {frame.shape}")
    if not 0.0 < coolest_fraction <= 1.0:
        raise ValueError(f"coolest_fraction: expected a fraction in (0, 1], got {coolest_fraction}")
    finite = frame[np.isfinite(frame)]
    if finite.size == 0:
        raise ValueError("celsius_frame: expected some finite pixels, got none")
    return float(np.quantile(finite, coolest_fraction / 2.0))


# ----------------------------------------------------------------------------------------- FLIR model
@dataclass(frozen=True)
class FlirParams:
    """FLIR's full radiometric model, as stored in a radiometric JPEG or SEQ frame.

    Planck constants in FLIR's convention (see :func:`planck_from_flir`), the object parameters the
    operator set in the camera, and the atmosphere model's constants. ``relative_humidity`` is a
    fraction (0.5 for 50 %), temperatures are °C, ``object_distance_m`` is metres.
    """

    r1: float
    r2: float
    b: float
    f: float
    o: float
    emissivity: float = 1.0
    object_distance_m: float = 1.0
    reflected_c: float = 20.0
    atmosphere_c: float = 20.0
    window_c: float = 20.0
    window_transmission: float = 1.0
    relative_humidity: float = 0.5
    alpha1: float = 0.006569
    alpha2: float = 0.01262
    beta1: float = -0.002276
    beta2: float = -0.00667
    x: float = 1.9

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            _finite(name, getattr(self, name))
        _emissivity(self.emissivity)
        _emissivity(self.window_transmission, "window_transmission")
        if self.r2 == 0 or self.r1 <= 0 or self.b <= 0:
            raise ValueError(f"FlirParams: expected R1 > 0, R2 != 0, B > 0, got R1={self.r1}, R2={self.r2}, B={self.b}")
        if self.object_distance_m < 0:
            raise ValueError(f"object_distance_m: expected >= 0 metres, got {self.object_distance_m}")
        if not 0.0 <= self.relative_humidity <= 1.0:
            raise ValueError(f"relative_humidity: expected a fraction from 0 to 1, got {self.relative_humidity}")

    @property
    def planck(self) -> dict[str, float]:
        """The Planck curve in the station's convention."""
        return planck_from_flir(self.r1, self.r2, self.b, self.f, self.o)

    @classmethod
    def from_exif(cls, meta: Mapping[str, Any]) -> FlirParams:
        """From ExifTool's FLIR tag names (``PlanckR1``, ``Emissivity``, ``RelativeHumidity_pct`` ...).

        Temperatures in °C, distance in metres and relative humidity in per cent, under the names of
        the test vectors' JSON (``ObjectDistance_m``, ``RelativeHumidity_pct`` ...) or ExifTool's own
        (``ObjectDistance``, ``RelativeHumidity``, values such as ``"50.0 %"`` or ``"1.00 m"``).
        """
        def num(*keys: str) -> float:
            key = next((k for k in keys if k in meta), None)
            if key is None:
                raise ValueError(f"FLIR metadata: expected key {' or '.join(keys)}, got keys {sorted(meta)}")
            value = meta[key]
            if isinstance(value, str):
                value = value.strip().split(" ")[0].rstrip("%")
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError(f"FLIR metadata {key}: expected a number, got {meta[key]!r}") from None

        return cls(
            r1=num("PlanckR1"), r2=num("PlanckR2"), b=num("PlanckB"), f=num("PlanckF"), o=num("PlanckO"),
            emissivity=num("Emissivity"),
            object_distance_m=num("ObjectDistance_m", "ObjectDistance"),
            reflected_c=num("ReflectedApparentTemperature_C", "ReflectedApparentTemperature"),
            atmosphere_c=num("AtmosphericTemperature_C", "AtmosphericTemperature"),
            window_c=num("IRWindowTemperature_C", "IRWindowTemperature"),
            window_transmission=num("IRWindowTransmission"),
            relative_humidity=num("RelativeHumidity_pct", "RelativeHumidity") / 100.0,
            alpha1=num("AtmosphericTransAlpha1"), alpha2=num("AtmosphericTransAlpha2"),
            beta1=num("AtmosphericTransBeta1"), beta2=num("AtmosphericTransBeta2"), x=num("AtmosphericTransX"),
        )

    @classmethod
    def from_flirpy(cls, meta: Mapping[str, Any]) -> FlirParams:
        """From the metadata flirpy's ``Fff`` decodes from a frame's camera-information record.

        flirpy (0.6) turns the record's kelvin into °C with 273.14 rather than 273.15, which puts the
        reflected, atmosphere and window temperatures 0.01 °C high; that is undone here (it moved the
        SEQ test vector by 6e-4 °C). Its relative humidity is already a fraction.
        """
        def num(key: str) -> float:
            if key not in meta:
                raise ValueError(f"flirpy metadata: expected key {key!r}, got keys {sorted(meta)}")
            return float(meta[key])

        def kelvin_fixed(key: str) -> float:
            return num(key) + 273.14 - KELVIN

        rh = num("Relative Humidity")
        return cls(
            r1=num("Planck R1"), r2=num("Planck R2"), b=num("Planck B"), f=num("Planck F"), o=num("Planck O"),
            emissivity=num("Emissivity"), object_distance_m=num("Object Distance"),
            reflected_c=kelvin_fixed("Reflected Apparent Temperature"),
            atmosphere_c=kelvin_fixed("Atmospheric Temperature"), window_c=kelvin_fixed("IR Window Temperature"),
            window_transmission=num("IR Window Transmission"),
            relative_humidity=rh / 100.0 if rh > 1.0 else rh,
            alpha1=num("Atmospheric Trans Alpha 1"), alpha2=num("Atmospheric Trans Alpha 2"),
            beta1=num("Atmospheric Trans Beta 1"), beta2=num("Atmospheric Trans Beta 2"),
            x=num("Atmospheric Trans X"),
        )

    def atmospheric_transmission(self) -> float:
        """Transmission of the air between object and camera (FLIR's two-band model, Minkina & Dudzik).

        Water vapour content (mmHg) from humidity and air temperature; the window is taken to sit half
        way, so each half of the path has ``tau(d / 2)``, as Thermimage's ``raw2temp`` does.
        """
        t = self.atmosphere_c
        h2o = self.relative_humidity * math.exp(1.5587 + 0.06939 * t - 0.00027816 * t**2 + 0.00000068455 * t**3)
        path = math.sqrt(self.object_distance_m / 2.0)
        wet = math.sqrt(h2o)
        return self.x * math.exp(-path * (self.alpha1 + self.beta1 * wet)) + (1 - self.x) * math.exp(
            -path * (self.alpha2 + self.beta2 * wet)
        )


def flir_raw_to_celsius(raw: np.ndarray, params: FlirParams | Mapping[str, Any]) -> np.ndarray:
    """FLIR raw counts to object °C with emissivity, reflection, atmosphere and IR window (float32).

    The received signal is the object's, attenuated by the air and the window, plus what the object
    reflects, what the air emits on both sides of the window, and what the window emits. Working in
    raw counts (which are linear in radiance), the object's share is solved for and the Planck curve
    inverted, as Thermimage's ``raw2temp`` does (window reflection taken as 0, an anti-reflective
    coating; the window half way along the path).

    Parameters
    ----------
    raw
        Raw counts as the camera stores them.
    params
        :class:`FlirParams`, or a mapping with ExifTool's tag names (:meth:`FlirParams.from_exif`).

    Returns
    -------
    numpy.ndarray
        float32 °C, same shape as ``raw``; NaN where the object's share comes out non-positive.
    """
    p = params if isinstance(params, FlirParams) else FlirParams.from_exif(params)
    raw = _real_array("raw", raw).astype(np.float64)

    def raw_of(celsius: float) -> float:
        return p.r1 / (p.r2 * (math.exp(p.b / (celsius + KELVIN)) - p.f)) - p.o

    e, tau, irt = p.emissivity, p.atmospheric_transmission(), p.window_transmission
    refl = (1 - e) / e * raw_of(p.reflected_c)
    atm1 = (1 - tau) / e / tau * raw_of(p.atmosphere_c)
    window = (1 - irt) / e / tau / irt * raw_of(p.window_c)
    atm2 = (1 - tau) / e / tau / irt / tau * raw_of(p.atmosphere_c)
    obj = raw / (e * tau * irt * tau) - atm1 - atm2 - window - refl
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = p.r2 * (obj + p.o)
        out = p.b / np.log(p.r1 / scaled + p.f) - KELVIN
    return np.where(scaled > 0, out, np.nan).astype(np.float32)


# ----------------------------------------------------------------------------------------- blackbody
class BlackbodyReading(NamedTuple):
    """What the blackbody ROI reads in one frame."""

    robust_c: float  # interquartile mean, °C (NaN when no pixel is valid)
    spread_c: float  # interquartile range, °C
    valid_px: int  # finite pixels in the ROI


def _check_roi(roi: Any, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    try:
        x1, y1, x2, y2 = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise ValueError(f"roi: expected (x1, y1, x2, y2) whole pixels, got {roi!r}") from None
    h, w = shape
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise ValueError(f"roi: expected 0 <= x1 < x2 <= {w} and 0 <= y1 < y2 <= {h} for a {w}x{h} frame, got {roi}")
    return x1, y1, x2, y2


def blackbody_reading(celsius: np.ndarray, roi: tuple[int, int, int, int], *, inset_px: int = 0) -> BlackbodyReading:
    """Robust temperature and spread of the blackbody's ROI ``[y1:y2, x1:x2]`` of a °C frame.

    The profile's ROI is already the inner part of the emitter (the simulator's sits a quarter of the
    emitter inside each edge); ``inset_px`` trims more for ROIs drawn to the emitter's rim. The reading
    is the interquartile mean: as robust as the median to a quarter of bad pixels (a dead pixel, the
    edge of a passing hand) but closer to the mean's efficiency on noise (and not stepped by TLinear's
    0.01 K quantisation). The spread is the interquartile range: a uniform emitter's is about 1.35 NETD.
    """
    frame = _real_array("celsius", celsius)
    if frame.ndim != 2:
        raise ValueError(f"celsius: expected a (H, W) frame, got shape {frame.shape}")
    x1, y1, x2, y2 = _check_roi(roi, frame.shape)
    if inset_px < 0 or 2 * inset_px >= min(x2 - x1, y2 - y1):
        raise ValueError(f"inset_px: expected 0 <= inset < half the ROI's side ({x2 - x1}x{y2 - y1}), got {inset_px}")
    patch = frame[y1 + inset_px : y2 - inset_px, x1 + inset_px : x2 - inset_px].astype(np.float64)
    values = patch[np.isfinite(patch)]
    if values.size == 0:
        return BlackbodyReading(math.nan, math.nan, 0)
    q1, q3 = np.quantile(values, [0.25, 0.75])
    middle = values[(values >= q1) & (values <= q3)]
    return BlackbodyReading(float(middle.mean()), float(q3 - q1), int(values.size))


@dataclass(frozen=True)
class BlackbodyHealth:
    """How the blackbody looks after one frame, and what the station may do about it.

    ``error_c`` is the smoothed reading minus the set point (what the frame is corrected by, with the
    sign reversed); ``residual_c`` is the latest reading as delivered (corrected when the correction is
    applied) minus the set point; ``settling`` means too few readings yet to judge stability.
    """

    seen: bool
    stable: bool
    within_tolerance: bool
    settling: bool
    reading: BlackbodyReading
    error_c: float | None
    residual_c: float | None
    variation_c: float | None

    @property
    def kind(self) -> str | None:
        """The system event this state is reported as (None while settling)."""
        if not self.seen:
            return EventKind.BLACKBODY_NOT_SEEN
        if self.settling:
            return None
        if not self.stable:
            return EventKind.BLACKBODY_UNSTABLE
        if not self.within_tolerance:
            return EventKind.BLACKBODY_OUT_OF_TOLERANCE
        return EventKind.BLACKBODY_OK

    @property
    def ok(self) -> bool:
        return self.kind == EventKind.BLACKBODY_OK


class BlackbodyUpdate(NamedTuple):
    correction_c: float  # °C to add to the frame (0 until a first good reading)
    health: BlackbodyHealth
    events: list[SystemEvent]  # a change of health, or nothing


class BlackbodyMonitor:
    """Turns per-frame blackbody readings into a drift correction and a verdict on screening.

    Feed it one :class:`BlackbodyReading` per frame with the frame's time (:meth:`update`). It keeps
    the readings of the last ``window`` frames in which the blackbody was *seen* (and no older than
    ``max_age_s``), and answers:

    * **correction** = set point - mean of those readings. The mean of a few frames cuts the reading's
      noise by ~sqrt(window) while lagging a drift of a few hundredths of a degree per second by only
      ``window / 2`` frames.
    * **seen**: the ROI looks like a uniform warm emitter: a valid reading within ``seen_within_c`` of
      the set point, a spread below ``max_spread_c`` and at least ``min_px`` pixels. A person in front
      of it, a moved camera or a switched-off source all fail this. A frame not seen adds no reading,
      and the correction keeps its last value (drift is slow), but screening stops.
    * **stable**: the window is full and its readings vary (max - min) less than ``stable_within_c``;
      a source still warming up, or a camera right after a flat-field correction, fails this.
    * **within_tolerance**: the latest reading *as delivered* is within ``tolerance_c`` of the set
      point. With the correction applied (``applied=True``) that is the reading after correction: the
      profile's tolerance is on what the station measures, not on the raw drift, which the correction
      exists to remove (a simulated camera drifts up to ±0.8 °C against a 0.3 °C tolerance). Without it,
      the uncorrected reading must be within tolerance. Gross drift is caught by *seen* either way.

    Health changes are reported as :class:`~station.types.SystemEvent` with the kinds in
    :data:`BLACKBODY_EVENTS` (first the most serious that applies); the first full window reports
    ``blackbody_ok`` so a log shows when screening became possible. Pure: no clock, no I/O.
    """

    def __init__(
        self,
        setpoint_c: float,
        tolerance_c: float,
        window: int = 5,
        *,
        applied: bool = True,
        seen_within_c: float = 3.0,
        max_spread_c: float = 0.5,
        min_px: int = 4,
        stable_within_c: float = 0.15,
        max_age_s: float = 2.0,
    ) -> None:
        self.setpoint_c = _finite("setpoint_c", setpoint_c)
        for name, value in (("tolerance_c", tolerance_c), ("seen_within_c", seen_within_c),
                            ("max_spread_c", max_spread_c), ("stable_within_c", stable_within_c),
                            ("max_age_s", max_age_s)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a number above 0, got {value}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window: expected a whole number of frames >= 1, got {window!r}")
        if min_px < 1:
            raise ValueError(f"min_px: expected >= 1, got {min_px}")
        self.tolerance_c = float(tolerance_c)
        self.window = window
        self.applied = applied
        self.seen_within_c = float(seen_within_c)
        self.max_spread_c = float(max_spread_c)
        self.min_px = int(min_px)
        self.stable_within_c = float(stable_within_c)
        self.max_age_s = float(max_age_s)
        self._readings: deque[tuple[float, float]] = deque(maxlen=window)
        self._correction_c = 0.0
        self._error_c: float | None = None
        self._reported: str | None = None
        self._health: BlackbodyHealth | None = None

    @property
    def correction_c(self) -> float:
        """°C to add to every pixel of a frame: set point minus the smoothed reading."""
        return self._correction_c

    @property
    def error_c(self) -> float | None:
        """Smoothed reading minus set point (None before the blackbody was first seen)."""
        return self._error_c

    @property
    def health(self) -> BlackbodyHealth | None:
        return self._health

    @property
    def screening_allowed(self) -> bool:
        """True only while the last frame's health is ``blackbody_ok``."""
        return self._health is not None and self._health.ok

    def is_seen(self, reading: BlackbodyReading) -> bool:
        robust, spread, n = reading
        return (
            n >= self.min_px
            and math.isfinite(robust)
            and math.isfinite(spread)
            and abs(robust - self.setpoint_c) <= self.seen_within_c
            and spread <= self.max_spread_c
        )

    def update(self, reading: BlackbodyReading | tuple[float, float, int], t: float) -> BlackbodyUpdate:
        """Take one frame's reading at time ``t`` (seconds, the frames' clock)."""
        reading = BlackbodyReading(*reading)
        t = _finite("t", t)
        while self._readings and t - self._readings[0][0] > self.max_age_s:
            self._readings.popleft()
        seen = self.is_seen(reading)
        if seen:
            self._readings.append((t, reading.robust_c))
        values = np.array([v for _, v in self._readings])
        if values.size:
            smoothed = float(values.mean())
            self._error_c = smoothed - self.setpoint_c
            self._correction_c = -self._error_c
        settling = len(values) < self.window
        variation = float(np.ptp(values)) if values.size else None
        residual = None
        if seen:
            residual = reading.robust_c + (self._correction_c if self.applied else 0.0) - self.setpoint_c
        health = BlackbodyHealth(
            seen=seen,
            stable=not settling and variation is not None and variation < self.stable_within_c,
            within_tolerance=residual is not None and abs(residual) <= self.tolerance_c,
            settling=settling,
            reading=reading,
            error_c=self._error_c,
            residual_c=residual,
            variation_c=variation,
        )
        self._health = health
        events = []
        kind = health.kind
        if kind is not None and kind != self._reported:
            self._reported = kind
            events.append(SystemEvent(kind=kind, t=t, detail=self._detail(health)))
        return BlackbodyUpdate(self._correction_c, health, events)

    def _detail(self, h: BlackbodyHealth) -> str:
        robust, spread, n = h.reading
        sp = f"set point {self.setpoint_c:.2f} °C"
        if not h.seen:
            if n < self.min_px or not math.isfinite(robust):
                return f"ROI has {n} valid pixels (need {self.min_px}); {sp}"
            return (
                f"ROI reads {robust:.2f} °C with spread {spread:.2f} °C over {n} px; expected a uniform emitter "
                f"(spread <= {self.max_spread_c:.2f} °C) within {self.seen_within_c:.1f} °C of the {sp}"
            )
        if not h.stable:
            return (
                f"readings varied {h.variation_c:.3f} °C over the last {self.window} frames "
                f"(limit {self.stable_within_c:.2f} °C); {sp}"
            )
        what = "corrected reading" if self.applied else "reading"
        text = (
            f"{what} {self.setpoint_c + h.residual_c:.2f} °C is {h.residual_c:+.2f} °C from the {sp} "
            f"(tolerance {self.tolerance_c:.2f} °C); correction {self._correction_c:+.2f} °C, spread {spread:.2f} °C"
        )
        return text


# ----------------------------------------------------------------------------------------- one stream
class Radiometer:
    """Turns one thermal stream's frames into °C frames, corrected by the profile and the blackbody.

    Per frame: sensor to apparent °C at emissivity 1, then the profile's gain/offset, then (when the
    profile has a blackbody) its reading, the monitor's verdict and, if ``blackbody_correction``, the
    additive drift correction. The frame stays *apparent* (not emissivity-corrected): the blackbody and
    the background are not skin, and the correction needs a reflected temperature that is only an
    estimate; the measurement applies :meth:`skin_c` to the few pixels it reads.

    Parameters
    ----------
    encoding
        ``"tlinear-centikelvin"`` or ``"raw-counts"`` (recording format v1).
    profile
        The calibration in effect: gain/offset, skin emissivity, blackbody ROI/set point/tolerance.
    planck
        The camera's curve, station convention. Required for ``raw-counts``; for TLinear it is the
        curve used for the emissivity correction (default :data:`LEPTON_PLANCK`).
    blackbody_correction
        Add the blackbody's drift correction to every frame. Off, the blackbody is still watched and
        judged against its tolerance uncorrected.
    window
        Frames the blackbody reading is smoothed over.
    """

    def __init__(
        self,
        encoding: str,
        profile: CalibrationProfile,
        *,
        planck: Mapping[str, float] | None = None,
        blackbody_correction: bool = True,
        window: int = 5,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding: expected one of {', '.join(ENCODINGS)}, got {encoding!r}")
        if not isinstance(profile, CalibrationProfile):
            raise TypeError(f"profile: expected a CalibrationProfile, got {type(profile).__name__}")
        if planck is None:
            if encoding == "raw-counts":
                raise ValueError("planck: encoding 'raw-counts' needs the Planck constants R, B, F, O, got none")
            planck = LEPTON_PLANCK
        _planck(planck)
        self.encoding = encoding
        self.profile = profile
        self.planck: Mapping[str, float] = MappingProxyType(dict(planck))
        self.blackbody_correction = blackbody_correction
        bb = profile.blackbody
        self.monitor = (
            None if bb is None else BlackbodyMonitor(bb.setpoint_c, bb.tolerance_c, window,
                                                     applied=blackbody_correction,
                                                     # a reading off by more than the tolerance is still
                                                     # the blackbody, out of tolerance, not "not seen"
                                                     seen_within_c=max(3.0, bb.tolerance_c + 1.0))
        )

    @classmethod
    def for_stream(cls, thermal: Any, profile: CalibrationProfile, **kwargs: Any) -> Radiometer:
        """From a recording's thermal stream info (anything with ``encoding`` and ``planck``)."""
        return cls(thermal.encoding, profile, planck=thermal.planck, **kwargs)

    @property
    def screening_allowed(self) -> bool:
        """False while the profile's blackbody is not seen, unstable or out of tolerance.

        A profile without a blackbody table (none fitted) always allows screening: the station then
        trusts its static calibration, which is the operator's decision, recorded in the profile.
        """
        return True if self.monitor is None else self.monitor.screening_allowed

    def sensor_celsius(self, raw: np.ndarray) -> np.ndarray:
        """Apparent °C at emissivity 1 as the sensor reports it, before any correction (float32)."""
        if self.encoding == "tlinear-centikelvin":
            return tlinear_to_celsius(raw)
        return raw_to_celsius(raw, self.planck)

    def convert(self, frame: Frame) -> tuple[ThermalImage, list[SystemEvent]]:
        """One thermal frame to a corrected °C image, and the blackbody's health changes, if any."""
        if not isinstance(frame, Frame) or frame.stream != "thermal":
            got = type(frame).__name__ if not isinstance(frame, Frame) else f"a {frame.stream} frame"
            raise ValueError(f"frame: expected a thermal Frame, got {got}")
        rad = self.profile.radiometry
        celsius = apply_gain_offset(self.sensor_celsius(frame.image), rad.gain, rad.offset_c)
        events: list[SystemEvent] = []
        error = None
        if self.monitor is not None:
            reading = blackbody_reading(celsius, self.profile.blackbody.roi)  # type: ignore[union-attr]
            update = self.monitor.update(reading, frame.t)
            events = update.events
            error = self.monitor.error_c
            if self.blackbody_correction and update.correction_c != 0.0:
                celsius += np.float32(update.correction_c)
        image = ThermalImage(celsius=celsius, raw=frame.image, t=frame.t, index=frame.index, blackbody_error_c=error)
        return image, events

    def skin_c(self, apparent_c: np.ndarray | float, reflected_c: float) -> np.ndarray | float:
        """Skin temperature from apparent °C read off a converted frame, at the profile's emissivity.

        ``reflected_c`` is the room as the skin reflects it; :func:`estimate_reflected_c` of the same
        converted frame is the station's estimate.
        """
        return apparent_to_object_c(apparent_c, self.profile.radiometry.emissivity, reflected_c, self.planck)
