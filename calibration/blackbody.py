"""Radiometric calibration against a blackbody: find it, read it, fit gain and offset, verify.

A thermal camera's own temperature is off by a static error (the simulator's ``sensor_offset_c``, a
real Lepton's factory spread of a degree or two) that a reference source of known temperature
removes. The profile's radiometry is ``celsius = gain * sensor_celsius + offset_c``, so everything
here works on the *sensor's* °C (apparent, emissivity 1, before any correction): a fit against frames
that were already corrected by an old profile would fit the residual of that profile, not the camera.

Pure functions on numpy arrays: no click, no files, no clock. The command line
(:mod:`calibration.cli.blackbody`) reads recordings and cameras and hands the arrays in.

Why each step is as it is:

* **Finding the blackbody.** It is the most *uniform* warm patch near its set point, in space (an
  emitter plate, unlike a face) and in time (it does not move, people do). Scoring both over the whole
  sequence picks it even when someone stands in front of it for a moment, and the window of
  ``search_c`` around the set point allows for the very sensor error the calibration is to remove.
* **Reading it.** The per-frame reading is the interquartile mean the station's own monitor uses
  (:func:`station.acquire.radiometry.blackbody_reading`), so calibration and screening read the source the same
  way; the median over frames then ignores the frames in which a hand or a head crossed the ROI.
* **Fitting.** One set point identifies an offset and nothing else; two or more distinct set points
  identify a gain as well, by least squares.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from station.acquire.radiometry import blackbody_reading
from station.profile.schema import CalibrationProfile, Radiometry

#: Set points this station can be calibrated at: below 20 °C a source is at or under room
#: temperature (its reading is dominated by reflections), above 50 °C it is far outside the skin range
#: the fit must be accurate over, so a gain extrapolated from there would be trusted where it is not.
SETPOINT_RANGE_C = (20.0, 50.0)
#: A sensor reading further than this from its set point is a typo or a broken camera, not an error a
#: calibration should absorb (a Lepton 3.5 is specified to ±5 °C; twice that is beyond doubt).
MAX_SENSOR_ERROR_C = 10.0
#: A fitted gain outside this range means the readings do not belong to the set points they were
#: paired with (swapped order, a wrong ROI), not a camera: real gains are within a few per cent of 1.
GAIN_RANGE = (0.5, 2.0)
#: Distinct set points closer than this give a gain dominated by the readings' noise.
MIN_SETPOINT_SPAN_C = 1.0
#: The smallest ROI the station will read a blackbody from, pixels per side (IEC 80601-2-59 asks for at
#: least 3x3 detector pixels).
MIN_ROI_PX = 3
#: Side of the square patches the search scores. An emitter that leaves a 3x3 ROI after the 25 % inset
#: is at least 6 px across, so 5x5 patches lose no usable blackbody, while they reject what 3x3 ones
#: take for it: a thin warm strip (a radiator, a lamp's edge) that is uniform along its length only.
PATCH_PX = 5
#: Regions grown before the search gives up: enough to step past a few small warm things in the view.
MAX_REGIONS = 20


# ----------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class BlackbodyRead:
    """What the blackbody's ROI reads over a sequence of frames.

    Attributes
    ----------
    median_c
        Median over frames of each frame's interquartile mean of the ROI, °C.
    spread_c
        Temporal spread (interquartile range of the per-frame readings) plus spatial spread (median of
        the per-frame interquartile ranges), °C: a uniform, steady emitter has a spread of about twice
        the sensor's NETD; a person in the ROI, a ROI over the emitter's edge or a source still warming
        up shows as much more.
    frames
        Frames with at least one valid pixel in the ROI (the ones the median is over).
    """

    median_c: float
    spread_c: float
    frames: int


@dataclass(frozen=True)
class FitResult:
    """A fitted radiometry and how well it explains the points it was fitted to.

    Attributes
    ----------
    radiometry
        Gain and offset fitted; emissivity kept from the base profile (skin's, not the blackbody's).
    residuals_c
        Per point, in the order given: ``gain * measured + offset - setpoint``, °C. Zero for a single
        point (an offset fits one point exactly), and for two distinct points (a line fits two).
    offset_only
        True when only the offset could be fitted (one set point) and the gain was set to 1.
    """

    radiometry: Radiometry
    residuals_c: tuple[float, ...]
    offset_only: bool = False


@dataclass(frozen=True)
class Verification:
    """A check of a profile against its blackbody: does the calibrated reading match the set point?

    Attributes
    ----------
    setpoint_c
        The profile's blackbody set point, °C.
    reading_c
        The sensor's reading after the profile's gain and offset, °C.
    error_c
        ``reading_c - setpoint_c``: positive means the station reads hot.
    tolerance_c
        The largest ``|error_c|`` that passes, °C.
    passed
        ``|error_c| <= tolerance_c``.
    """

    setpoint_c: float
    reading_c: float
    error_c: float
    tolerance_c: float
    passed: bool


# ----------------------------------------------------------------------------------------- checks
def check_setpoint(setpoint_c: float) -> float:
    """The set point as a float, or a one-line ValueError when it is not a number in the usable range."""
    value = float(setpoint_c)
    low, high = SETPOINT_RANGE_C
    if not math.isfinite(value):
        raise ValueError(f"set point {setpoint_c}: expected a finite temperature in °C")
    if not low <= value <= high:
        raise ValueError(
            f"set point {value:g} °C: expected {low:g} to {high:g} °C (a blackbody near skin temperature, "
            "such as 35 °C)"
        )
    return value


def _stack(frames_c: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames_c)
    if frames.dtype.kind not in "uif":
        raise TypeError(f"frames_c: expected a real numeric array, got dtype {frames.dtype}")
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    if frames.ndim != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames_c: expected a (T, H, W) stack of at least one frame, got shape {frames.shape}")
    return frames.astype(np.float64, copy=False)


# ----------------------------------------------------------------------------------------- finding it
def find_blackbody_roi(
    frames_c: np.ndarray,
    setpoint_c: float,
    *,
    search_c: float = 3.0,
    uniform_c: float = 0.3,
    inset: float = 0.25,
) -> tuple[int, int, int, int]:
    """Find the in-scene blackbody and return an ROI well inside its emitter.

    Over the time-median frame (a time-mean that a person crossing the source for a few frames does
    not pull), every 5x5 patch whose mean is within ``search_c`` of the set point is a candidate, scored
    by its spatial standard deviation plus its pixels' robust temporal spread; the lowest score is the
    seed. The seed is grown to the connected region that stays within ``uniform_c`` (or four times the
    seed's own spatial noise, for noisy sensors) of the seed's level and is as steady in time; the
    region's bounding box is then inset by ``inset`` of its size on each side, as
    :meth:`station.sim.simulator.Simulation.profile` does for the emitter, so pixels blurred with the
    housing never enter the reading; a box corner outside the region (a round emitter, a notch) is
    trimmed until the ROI lies wholly inside it.

    Parameters
    ----------
    frames_c
        ``(T, H, W)`` sensor °C (a single ``(H, W)`` frame is taken as ``T = 1``); NaN pixels are ignored.
    setpoint_c
        The blackbody's set point, °C.
    search_c
        How far from the set point the sensor may read the source before calibration, °C.
    uniform_c
        How far a pixel may be from the seed's level and still belong to the emitter, °C.
    inset
        Share of the region's width and height trimmed from each side.

    Returns
    -------
    tuple of int
        ``(x1, y1, x2, y2)``, the profile's convention: the ROI is ``frame[y1:y2, x1:x2]``.

    Raises
    ------
    ValueError
        One line saying what to try when no candidate exists or the ROI would be under 3x3 px.
    """
    frames = _stack(frames_c)
    setpoint_c = check_setpoint(setpoint_c)
    if not (math.isfinite(search_c) and search_c > 0 and math.isfinite(uniform_c) and uniform_c > 0):
        raise ValueError(f"search_c, uniform_c: expected numbers above 0, got {search_c}, {uniform_c}")
    if not 0.0 <= inset < 0.5:
        raise ValueError(f"inset: expected a share of the side from 0 to below 0.5, got {inset}")
    _, height, width = frames.shape
    if height < PATCH_PX or width < PATCH_PX:
        raise ValueError(f"frames_c: a {width}x{height} frame is smaller than one {PATCH_PX}x{PATCH_PX} patch")

    if np.isfinite(frames).all():  # the NaN-aware versions are ~10x slower; most frames have no NaN
        level = np.median(frames, axis=0)
        q1, q3 = np.percentile(frames, [25.0, 75.0], axis=0)
    else:
        with warnings.catch_warnings():  # all-NaN pixels (dead, or out of a raw-counts curve) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            level = np.nanmedian(frames, axis=0)
            q1, q3 = np.nanpercentile(frames, [25.0, 75.0], axis=0)
    temporal = (q3 - q1) / 1.349  # the IQR of a normal distribution is 1.349 sigma
    valid = np.isfinite(level) & np.isfinite(temporal)
    level0 = np.where(valid, level, 0.0)
    temporal0 = np.where(valid, temporal, 0.0)

    def patch_mean(values: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(values, size=PATCH_PX, mode="constant", cval=0.0)

    full = patch_mean(valid.astype(np.float64)) > 1.0 - 1e-9  # every pixel of the patch is valid
    half = PATCH_PX // 2
    inside = np.zeros_like(full)
    inside[half : height - half, half : width - half] = True  # the patch lies wholly in the frame
    mean = patch_mean(level0)
    spatial = np.sqrt(np.maximum(patch_mean(level0**2) - mean**2, 0.0))
    steadiness = patch_mean(temporal0)
    score = spatial + steadiness
    # A seed must itself be uniform (spatial noise within half the growth tolerance, steady in time):
    # a patch straddling an edge would otherwise seed a region whose noise-scaled tolerance swallows
    # the background around it.
    uniform = (spatial <= uniform_c / 2) & (steadiness <= uniform_c)
    candidates = full & inside & uniform & (np.abs(mean - setpoint_c) <= search_c)
    if not candidates.any():
        raise ValueError(
            f"no uniform patch reads within ±{search_c:g} °C of the {setpoint_c:g} °C set point: check the "
            "blackbody is in view and at its set point, move it closer, or give --roi X1,Y1,X2,Y2"
        )
    # Seeds in order of score; each is grown, and a region too small for a 3x3 ROI (a warm strip, a small
    # lamp) passes the turn to the best seed outside it, so it cannot hide a usable blackbody behind it.
    order = np.argsort(np.where(candidates, score, np.inf), axis=None, kind="stable")[: int(candidates.sum())]
    tried = np.zeros_like(candidates)
    first_failure: tuple[tuple[int, int, int, int], list[int], float] | None = None
    regions = 0
    for flat in order:
        seed = np.unravel_index(flat, score.shape)
        if tried[seed]:
            continue
        around = (slice(seed[0] - half, seed[0] + half + 1), slice(seed[1] - half, seed[1] + half + 1))
        region = _grow(level, temporal, valid, seed, float(mean[seed]), float(spatial[seed]),
                       float(np.median(temporal[around])), uniform_c)
        tried |= region
        roi, bbox = _inset_roi(region, inset)
        if roi[2] - roi[0] >= MIN_ROI_PX and roi[3] - roi[1] >= MIN_ROI_PX:
            return roi[0], roi[1], roi[2], roi[3]
        first_failure = first_failure or (bbox, roi, float(mean[seed]))
        regions += 1
        if regions >= MAX_REGIONS:
            break
    assert first_failure is not None
    (x1, y1, x2, y2), roi, level_c = first_failure
    w, h = max(roi[2] - roi[0], 0), max(roi[3] - roi[1], 0)
    raise ValueError(
        f"the blackbody found at x {x1}-{x2}, y {y1}-{y2} (reading {level_c:.2f} °C) leaves only {w}x{h} px once "
        f"its edges are excluded (need {MIN_ROI_PX}x{MIN_ROI_PX}): move the blackbody closer to the camera, or "
        "give --roi X1,Y1,X2,Y2"
    )


def _grow(
    level: np.ndarray,
    temporal: np.ndarray,
    valid: np.ndarray,
    seed: tuple[int, ...],
    seed_level: float,
    seed_noise: float,
    seed_temporal: float,
    uniform_c: float,
) -> np.ndarray:
    """The seed's uniform connected region: pixels near its level and as steady in time, holes filled.

    The level tolerance widens to four times the seed's spatial noise (at most twice ``uniform_c``, as
    seeds are that uniform) so a noisy sensor's emitter is not fragmented; the temporal limit (three
    times the seed's) keeps out a person who stood next to the source at the same temperature but moved.
    """
    tolerance = max(uniform_c, 4.0 * seed_noise)
    member = valid & (np.abs(level - seed_level) <= tolerance) & (temporal <= max(uniform_c, 3.0 * seed_temporal))
    member[seed] = True
    labels, _ = ndimage.label(member)  # 4-connected: a diagonal touch does not join two objects
    return ndimage.binary_fill_holes(labels == labels[seed])  # a hot or dead pixel inside is still emitter


def _inset_roi(region: np.ndarray, inset: float) -> tuple[list[int], tuple[int, int, int, int]]:
    """The ROI inset into the region's bounding box (and trimmed into the region), and that box."""
    ys, xs = np.nonzero(region)
    x1, x2, y1, y2 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    dx, dy = inset * (x2 - x1), inset * (y2 - y1)
    roi = [math.ceil(x1 + dx), math.ceil(y1 + dy), math.floor(x2 - dx), math.floor(y2 - dy)]
    return _trim_into(region, roi), (x1, y1, x2, y2)


def _trim_into(region: np.ndarray, roi: list[int]) -> list[int]:
    """Shrink ``roi`` one side at a time (the side with most pixels outside ``region``) until it lies inside."""
    x1, y1, x2, y2 = roi
    while x2 - x1 >= MIN_ROI_PX and y2 - y1 >= MIN_ROI_PX:
        outside = ~region[y1:y2, x1:x2]
        if not outside.any():
            break
        sides = {
            "left": outside[:, 0].sum(), "right": outside[:, -1].sum(),
            "top": outside[0, :].sum(), "bottom": outside[-1, :].sum(),
        }
        worst = max(sides, key=lambda side: sides[side])
        if worst == "left":
            x1 += 1
        elif worst == "right":
            x2 -= 1
        elif worst == "top":
            y1 += 1
        else:
            y2 -= 1
    return [x1, y1, x2, y2]


# ----------------------------------------------------------------------------------------- reading it
def read_blackbody(frames_c: np.ndarray, roi: Sequence[int]) -> BlackbodyRead:
    """Read the blackbody's ROI over a sequence of sensor °C frames.

    Parameters
    ----------
    frames_c
        ``(T, H, W)`` °C (or one ``(H, W)`` frame).
    roi
        ``(x1, y1, x2, y2)``; the ROI is ``frame[y1:y2, x1:x2]``.

    Returns
    -------
    BlackbodyRead
        The median of the per-frame interquartile means, and the temporal + spatial spread.

    Raises
    ------
    ValueError
        The ROI does not fit the frames, or holds no valid pixel in any frame.
    """
    frames = _stack(frames_c)
    readings = [blackbody_reading(frame, tuple(roi)) for frame in frames]  # type: ignore[arg-type]
    values = np.array([r.robust_c for r in readings if r.valid_px > 0])
    spreads = np.array([r.spread_c for r in readings if r.valid_px > 0])
    if values.size == 0:
        raise ValueError(f"the blackbody ROI {list(roi)} holds no valid pixel in any of {len(frames)} frames")
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return BlackbodyRead(float(np.median(values)), float(q3 - q1 + np.median(spreads)), int(values.size))


# ----------------------------------------------------------------------------------------- fitting
def fit_radiometry(points: Iterable[tuple[float, float]], base: Radiometry) -> FitResult:
    """Fit ``setpoint = gain * measured_sensor + offset`` to blackbody readings.

    With one set point only an offset is identifiable, so the gain is 1 and the offset is
    ``setpoint - measured``. The base profile's gain is deliberately *not* kept: a gain belongs with the
    offset it was fitted with, and a profile pairing a new offset with an old gain would describe a
    camera no session ever measured. With two or more distinct set points, gain and offset are the
    least-squares line through the points (repeated set points just weigh more). Emissivity is a
    property of skin, not of this fit, and is kept from ``base``.

    Parameters
    ----------
    points
        ``(setpoint_c, measured_sensor_c)`` pairs: the blackbody's set point and what the sensor read.
    base
        The radiometry being replaced (only its emissivity is kept).

    Raises
    ------
    ValueError
        One line: no points, a non-finite value, a set point outside 20-50 °C, a reading more than
        10 °C from its set point, several points all at one set point, distinct set points closer than
        1 °C, or a fitted gain outside 0.5-2 (readings paired with the wrong set points).
    """
    pairs = [(float(s), float(m)) for s, m in points]
    if not pairs:
        raise ValueError("no blackbody readings to fit: give at least one set point with its reading")
    for setpoint, measured in pairs:
        check_setpoint(setpoint)
        if not math.isfinite(measured):
            raise ValueError(f"the reading at set point {setpoint:g} °C is not a number ({measured})")
        if abs(measured - setpoint) > MAX_SENSOR_ERROR_C:
            raise ValueError(
                f"the sensor read {measured:.2f} °C at set point {setpoint:g} °C, more than "
                f"{MAX_SENSOR_ERROR_C:g} °C off: check the reading and that set points pair with readings in order"
            )
    setpoints = np.array([s for s, _ in pairs])
    measured = np.array([m for _, m in pairs])
    distinct = np.unique(setpoints)
    if distinct.size == 1:
        if len(pairs) > 1:
            raise ValueError(
                f"all {len(pairs)} readings are at set point {distinct[0]:g} °C: a gain needs two different set "
                "points; give one reading for an offset-only fit"
            )
        radiometry = replace(base, gain=1.0, offset_c=float(setpoints[0] - measured[0]))
        return FitResult(radiometry, (0.0,), offset_only=True)
    if float(np.ptp(distinct)) < MIN_SETPOINT_SPAN_C:
        raise ValueError(
            f"set points {', '.join(f'{s:g}' for s in distinct)} °C are within {MIN_SETPOINT_SPAN_C:g} °C of each "
            "other: the gain would be mostly noise; spread them (e.g. 33 and 38 °C) or give one for an offset fit"
        )
    design = np.column_stack([measured, np.ones_like(measured)])
    (gain, offset), *_ = np.linalg.lstsq(design, setpoints, rcond=None)
    if not GAIN_RANGE[0] <= gain <= GAIN_RANGE[1]:
        raise ValueError(
            f"the fitted gain {gain:.3f} is implausible (expected {GAIN_RANGE[0]:g} to {GAIN_RANGE[1]:g}): check "
            "that set points pair with readings in the order given"
        )
    residuals = gain * measured + offset - setpoints
    radiometry = replace(base, gain=float(gain), offset_c=float(offset))
    return FitResult(radiometry, tuple(float(r) for r in residuals))


# ----------------------------------------------------------------------------------------- verifying
def verify_reading(
    measured_sensor_c: float, profile: CalibrationProfile, *, tolerance_c: float | None = None
) -> Verification:
    """Judge a blackbody reading against the profile: does the calibrated reading match the set point?

    The sensor's reading goes through the profile's gain and offset only, not through the station's
    running blackbody correction: that correction would remove any static error by construction, and
    a static error is what a verification exists to catch.

    Parameters
    ----------
    measured_sensor_c
        The blackbody as the sensor reads it (apparent °C at emissivity 1, uncorrected).
    profile
        The calibration to check; it must have a blackbody table (set point, tolerance).
    tolerance_c
        Overrides the profile's tolerance when given.

    Raises
    ------
    ValueError
        The profile has no blackbody table, or the reading or tolerance is not a usable number.
    """
    if profile.blackbody is None:
        raise ValueError("the profile has no [blackbody] table (ROI, set point, tolerance) to verify against")
    measured = float(measured_sensor_c)
    if not math.isfinite(measured):
        raise ValueError(f"blackbody reading: expected a finite temperature, got {measured_sensor_c}")
    tolerance = profile.blackbody.tolerance_c if tolerance_c is None else float(tolerance_c)
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance: expected a number of °C above 0, got {tolerance_c}")
    rad = profile.radiometry
    reading = rad.gain * measured + rad.offset_c
    error = reading - profile.blackbody.setpoint_c
    return Verification(profile.blackbody.setpoint_c, reading, error, tolerance, abs(error) <= tolerance)
