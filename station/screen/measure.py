"""Skin temperature at the inner canthi, and the reasons a reading must be withheld.

IEC 80601-2-59 and the FDA's guidance both point at the inner canthus: it sits over branches of the
ophthalmic artery and tracks core temperature better than any other spot on the face. Each canthus
region of interest (ROI) is centred a quarter of the eye-to-eye distance inward from its eye landmark
and spans a quarter of that distance; nothing is read unless that ROI spans the 3x3 thermal pixels the
standard asks for. The reading is the hotter canthus's maximum, made robust in time rather than in
space: the tracker decides on the median of at least three frames, which rejects a noisy pixel as well
as a 3x3 mean would, without diluting the hot spot. The canthus's hottest region is only ~10 mm across,
2-3 pixels at the edge of the measuring range, so a 3x3 mean mixes cooler skin in and reads low: on
``bench/screening.py`` a 3x3 mean gave a mean error of -0.31 °C (95th percentile |error| 0.40 °C) where
the single hottest pixel gives -0.07 °C (0.14 °C). ``MeasureSettings.kernel_px`` keeps the choice open
for sensors noisier than the Lepton and Boson.

Everything here is a pure function of arrays, so it is tested on synthetic frames and simulator
renders alike, without cameras or Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from station.types import Flag, Site

CANTHUS_INWARD = 0.25  # ROI centre: this fraction of the eye distance inward from each eye landmark
ROI_SIDE = 0.25  # ROI side: this fraction of the eye distance


@dataclass(frozen=True)
class MeasureSettings:
    """Thresholds of the quality checks, with the reasoning behind each default.

    min_roi_px
        The standard's minimum: a canthus must span 3x3 detector pixels, else the reading mixes in
        cooler skin and the person is asked to step closer.
    near_roi_px
        A face whose canthus ROI spans at least this many pixels (1.5x the measurable distance) stands at
        the station even if it is too far to measure: if it leaves unmeasured, the guard is told.
    max_nose_offset
        Off-axis: the nose tip's sideways offset from the eye midpoint, as a share of the eye distance.
        About 0.2 is a head turned ~20°, beyond which the canthi are foreshortened and partly hidden.
    glasses_margin_c
        Spectacle lenses are opaque in the long-wave infrared and read near room temperature; canthi
        are the warmest skin. If the canthus ROIs read colder than the cheeks by this much, the eyes
        are covered.
    max_shift_px
        Motion: the visible and thermal frames are up to half a frame period apart, so a moving face
        lands displaced on the thermal image by its speed times that skew; above a pixel the ROI may
        miss the canthus.
    nearby_face_ratio
        Several faces: only another face at least this large relative to the measured one (by eye
        distance) is close enough to share the measurement zone; people far behind do not count.
    kernel_px
        The reading is the highest mean of a kernel_px x kernel_px block in the ROI. Larger blocks
        average noise away but dilute a canthus smaller than the block with cooler skin around it.
    search_side
        Side of the window searched for the hottest block, as a share of the eye distance. Wider
        than the ROI itself because eye landmarks land a few visible pixels off and registration adds a
        pixel on the thermal image; the canthus is the warmest skin near the eye, so a wider search
        finds it rather than the cooler skin beside it.
    """

    min_roi_px: float = 3.0
    near_roi_px: float = 2.0
    search_side: float = 0.25
    kernel_px: int = 1
    max_nose_offset: float = 0.2
    glasses_margin_c: float = 0.5
    max_shift_px: float = 1.0
    nearby_face_ratio: float = 0.6


def canthus_centres(eyes: np.ndarray) -> np.ndarray:
    """(..., 2, 2) eye landmarks -> (..., 2, 2) canthus ROI centres, each moved toward the other eye."""
    eyes = np.asarray(eyes, dtype=np.float64)
    left, right = eyes[..., 0, :], eyes[..., 1, :]
    step = CANTHUS_INWARD * (right - left)
    return np.stack([left + step, right - step], axis=-2)


def canthus_rois(eyes: np.ndarray, side_fraction: float = ROI_SIDE) -> tuple[np.ndarray, float]:
    """The two ROIs as (2, 4) x1, y1, x2, y2 float boxes, and their side in pixels."""
    centres = canthus_centres(eyes)
    side = side_fraction * float(np.linalg.norm(eyes[1] - eyes[0]))
    half = side / 2.0
    return np.concatenate([centres - half, centres + half], axis=-1), side


def block_mean(celsius: np.ndarray, size: int = 3) -> np.ndarray:
    """Each pixel's size x size neighbourhood mean, computed once per frame and shared by every face."""
    celsius = np.asarray(celsius, dtype=np.float32)
    if size <= 1:
        return celsius
    return cv2.blur(celsius, (size, size), borderType=cv2.BORDER_REPLICATE)


def mean3x3(celsius: np.ndarray) -> np.ndarray:
    return block_mean(celsius, 3)


def roi_max(smoothed: np.ndarray, box: np.ndarray) -> tuple[float, tuple[float, float]] | None:
    """Highest value of the smoothed frame whose pixel centre lies in the box, and where it is."""
    h, w = smoothed.shape
    x1, y1 = int(np.ceil(box[0] - 0.5)), int(np.ceil(box[1] - 0.5))
    x2, y2 = int(np.floor(box[2] - 0.5)) + 1, int(np.floor(box[3] - 0.5)) + 1
    x1, y1, x2, y2 = max(x1, 1), max(y1, 1), min(x2, w - 1), min(y2, h - 1)
    if x2 <= x1 or y2 <= y1:
        return None
    patch = smoothed[y1:y2, x1:x2]
    iy, ix = np.unravel_index(int(np.argmax(patch)), patch.shape)
    return float(patch[iy, ix]), (float(x1 + ix), float(y1 + iy))


def region_median(celsius: np.ndarray, centre: np.ndarray, half: float) -> float | None:
    h, w = celsius.shape
    x1, y1 = max(int(round(centre[0] - half)), 0), max(int(round(centre[1] - half)), 0)
    x2, y2 = min(int(round(centre[0] + half)) + 1, w), min(int(round(centre[1] + half)) + 1, h)
    if x2 <= x1 or y2 <= y1:
        return None
    return float(np.median(celsius[y1:y2, x1:x2]))


def nose_offset(visible_landmarks: np.ndarray) -> float:
    """Sideways offset of the nose tip from the eye midpoint, as a share of the eye distance."""
    lm = np.asarray(visible_landmarks, dtype=np.float64)
    eyes = lm[1] - lm[0]
    distance = float(np.linalg.norm(eyes))
    if distance <= 0:
        return float("inf")
    across = eyes / distance
    return abs(float(np.dot(lm[2] - (lm[0] + lm[1]) / 2.0, across))) / distance


@dataclass(frozen=True)
class CanthusReading:
    """What one face gave on one thermal frame: the apparent skin °C (emissivity 1) and the flags.

    ``site`` says where it was read: the canthi, or the forehead and mouth when glasses hid them
    (:func:`read_skin`); ``hottest_px`` is the hottest pixel of that site (x, y, thermal image coordinates).
    """

    apparent_c: float | None
    hottest_px: tuple[float, float] | None
    roi_side_px: float
    quality: frozenset[str]
    site: str = Site.CANTHUS


def read_canthus(
    celsius: np.ndarray,
    smoothed: np.ndarray,
    thermal_landmarks: np.ndarray,
    visible_landmarks: np.ndarray,
    settings: MeasureSettings = MeasureSettings(),
) -> CanthusReading:
    """Read one face's canthi on a thermal frame, flagging what the geometry and the heat rule out.

    ``too_far`` and ``off_axis`` are judged before anything is read: a face that is not measurable
    gets no temperature at all, so nothing half-trusted can reach a guard. ``glasses`` compares the
    canthus ROIs with the cheeks below them.
    """
    eyes = np.asarray(thermal_landmarks, dtype=np.float64)[:2]
    rois, side = canthus_rois(eyes)
    flags: set[str] = set()
    if side < settings.min_roi_px:
        flags.add("too_far")
    if nose_offset(visible_landmarks) > settings.max_nose_offset:
        flags.add("off_axis")
    if flags:
        return CanthusReading(None, None, side, frozenset(flags))

    search, _ = canthus_rois(eyes, settings.search_side)
    readings = [roi_max(smoothed, box) for box in search]
    if any(r is None for r in readings):
        return CanthusReading(None, None, side, frozenset({Flag.OFF_AXIS}))  # a canthus outside the image
    best_c, best_px = max(readings, key=lambda r: r[0])  # type: ignore[index, arg-type]

    distance = float(np.linalg.norm(eyes[1] - eyes[0]))
    down = np.array([-(eyes[1] - eyes[0])[1], (eyes[1] - eyes[0])[0]]) / max(distance, 1e-9)
    if down[1] < 0:
        down = -down
    cheeks = [
        region_median(celsius, eye + 0.55 * distance * down, 0.12 * distance + 0.5) for eye in eyes
    ]
    canthi = [region_median(celsius, (box[:2] + box[2:]) / 2, side / 2) for box in rois]
    if None not in cheeks and None not in canthi:
        if max(canthi) < max(cheeks) - settings.glasses_margin_c:  # type: ignore[type-var]
            flags.add("glasses")
    if flags:
        return CanthusReading(None, None, side, frozenset(flags))
    return CanthusReading(best_c, best_px, side, frozenset())


def several_faces(eye_distances_px: np.ndarray, measurable: np.ndarray, ratio: float) -> np.ndarray:
    """(N,) True for each face that shares the measurement zone with another nearby face.

    A face counts as nearby when it is itself measurable or at least ``ratio`` of this face's size:
    two people side by side at the station, not a queue stretching back down the hall.
    """
    d = np.asarray(eye_distances_px, dtype=np.float64)
    m = np.asarray(measurable, dtype=bool)
    n = len(d)
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        others = np.arange(n) != i
        out[i] = bool(np.any(others & (m | (d >= ratio * d[i]))))
    return out & m



# ------------------------------------------------------------------ the second site, for spectacle wearers
#: Forehead region: centred this many eye distances above the eye midpoint, spanning FOREHEAD_HALF_WIDTH
#: either side and FOREHEAD_HALF_HEIGHT up and down (0.55-1.05 eye distances above the eyes: above a
#: spectacle frame's top rim, below a typical hairline, ~65 mm above the eyes).
FOREHEAD_UP = 0.8
FOREHEAD_HALF_WIDTH = 0.45
FOREHEAD_HALF_HEIGHT = 0.25
#: Mouth region: centred on the mouth corners' midpoint, the lips' width and a little above and below them
#: (the nostrils, warm on each breath out, sit ~0.35 eye distances higher and stay outside).
MOUTH_HALF_WIDTH = 0.45
MOUTH_HALF_HEIGHT = 0.2
#: mouth - forehead maxima in the FDA study, 1st and 99th percentiles over 4013 rounds: outside this band
#: one region is covered (a mask or a scarf over the mouth, a cap or hair over the forehead).
MOUTH_MINUS_FOREHEAD_C = (-1.2, 2.2)


@dataclass(frozen=True)
class SiteReading:
    """The hottest of the forehead and mouth regions (apparent °C), or why it could not be read."""

    apparent_c: float | None
    hottest_px: tuple[float, float] | None
    reason: str | None = None  # "outside" (a region off the frame), "small" (< 3x3 px), "covered"


def forehead_mouth_rois(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4,) x1, y1, x2, y2 boxes of the forehead and mouth regions from the five face landmarks.

    Directions come from the face itself (across = the eye line, up = away from the mouth), so a head
    tilted sideways keeps its regions on its forehead and lips.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    left, right = lm[0], lm[1]
    distance = float(np.linalg.norm(right - left))
    across = (right - left) / max(distance, 1e-9)
    up = np.array([across[1], -across[0]])
    mouth = (lm[3] + lm[4]) / 2.0
    eyes = (left + right) / 2.0
    if np.dot(mouth - eyes, up) > 0:
        up = -up
    forehead_centre = eyes + FOREHEAD_UP * distance * up
    half_f = np.array([FOREHEAD_HALF_WIDTH, FOREHEAD_HALF_HEIGHT]) * distance
    half_m = np.array([MOUTH_HALF_WIDTH, MOUTH_HALF_HEIGHT]) * distance
    return (np.concatenate([forehead_centre - half_f, forehead_centre + half_f]),
            np.concatenate([mouth - half_m, mouth + half_m]))


def read_forehead_mouth(smoothed: np.ndarray, thermal_landmarks: np.ndarray,
                        settings: MeasureSettings = MeasureSettings()) -> SiteReading:
    """The face's temperature outside the eye band, for a person whose glasses hide the canthi.

    Spectacle lenses are opaque in the long-wave infrared, so the canthi cannot be read through them. The
    FDA facial/oral study measured every face's forehead and mouth regions too; the hottest of the two
    tracks oral temperature about as closely as the canthi do, though it ranks fevers less well
    (``models/body-model-glasses.json``, 10-fold cross-validation by subject: MAE 0.221 °C against the
    canthus model's 0.242, ROC AUC 0.957 against 0.974). Both regions must lie on the frame and each span the standard's
    3x3 pixels, and they must agree as bare skin does: a mask over the mouth or a cap over the forehead
    reads far colder than the other region, and then nothing is read.
    """
    h, w = smoothed.shape
    found = []
    for box in forehead_mouth_rois(thermal_landmarks):
        if box[0] < -0.5 or box[1] < -0.5 or box[2] > w - 0.5 or box[3] > h - 0.5:
            return SiteReading(None, None, "outside")
        if min(box[2] - box[0], box[3] - box[1]) < settings.min_roi_px:
            return SiteReading(None, None, "small")
        reading = roi_max(smoothed, box)
        if reading is None:
            return SiteReading(None, None, "outside")
        found.append(reading)
    (forehead_c, forehead_px), (mouth_c, mouth_px) = found
    low, high = MOUTH_MINUS_FOREHEAD_C
    if not low <= mouth_c - forehead_c <= high:
        return SiteReading(None, None, "covered")
    return SiteReading(*(found[0] if forehead_c >= mouth_c else found[1]))


def read_skin(
    celsius: np.ndarray,
    smoothed: np.ndarray,
    thermal_landmarks: np.ndarray,
    visible_landmarks: np.ndarray,
    settings: MeasureSettings = MeasureSettings(),
    *,
    glasses_site: bool = False,
) -> CanthusReading:
    """One face's skin reading: the canthi, or, with ``glasses_site``, the forehead and mouth when glasses
    are the only thing that kept the canthi from being read (any other flag stands: a face too far or
    turned away is no better measured elsewhere). Without a readable second site the ``glasses`` flag stays.
    """
    reading = read_canthus(celsius, smoothed, thermal_landmarks, visible_landmarks, settings)
    if not glasses_site or reading.quality != {"glasses"}:
        return reading
    second = read_forehead_mouth(smoothed, thermal_landmarks, settings)
    if second.apparent_c is None:
        return reading
    return CanthusReading(second.apparent_c, second.hottest_px, reading.roi_side_px, frozenset(),
                          Site.FOREHEAD_MOUTH)
