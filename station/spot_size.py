"""The spot-size effect at the canthus, and its correction from what the frame itself shows.

The inner canthus is a hot spot a few millimetres across over cooler periorbital skin. A thermal
camera's optics (diffraction at f/1 and 8-14 µm is about a pixel wide, plus aberrations and defocus)
and its detector's pixel footprint spread it, so its hottest pixel reads below the spot's true peak by a
share of the spot's contrast that grows as fewer pixels span it: on a Lepton at 0.6 m a canthus spans
two or three pixels, and its peak reads a quarter of a degree low. Choosing the closest frames helps;
it does not remove the bias.

The correction reads the spot's shape on the frame. Around the hottest pixel the log of the excess over
the surrounding skin is fitted with a parabola per axis (three pixels each, Caruana's estimator): its
vertex is the blurred spot's continuous peak (which the hottest pixel misses when the spot falls between
pixels) and its curvature the blurred spot's width, ``w^2 = s^2 + p^2``: the spot's own size ``s``
spread by the camera's point-spread function ``p`` (:data:`PSF_SIGMA_PX`, or the profile's
measured value). How much of the peak survived depends on the spot's profile, which three pixels cannot
tell:

* a **peaked** spot (Gaussian) keeps ``s^2 / w^2`` of its contrast;
* a **flat-topped** one (a disc of radius ``R = 2 s``) keeps ``1 - exp(-R^2 / 2p^2)``, nearly all once it
  is wider than the blur.

The correction takes the middle of the two and reports half their difference as a uniform
(rectangular) uncertainty, so a hot spot too small to read well carries its doubt into the decision's
``u95_c`` instead of into a wrong number. Pure functions of arrays, tested on synthetic spots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Standard deviation (pixels) of each camera model's point-spread function, optics only, as a Gaussian:
#: diffraction over 8-14 µm (sigma ~ 0.42 lambda N at lambda = 10 µm) combined with an allowance of 0.25 px
#: for aberrations and defocus over the measuring range (an assumption; a technician's
#: ``station calibrate spot-size`` measures it). Lepton 3.5: 12 µm pitch, f/1.1; Boson: 12 µm, f/1.0.
#: The detector's own footprint (a box one pixel wide, variance 1/12) is added by :func:`blur_variance`.
PSF_SIGMA_PX: dict[str, float] = {
    "lepton": math.hypot(0.42 * 10.0 * 1.1 / 12.0, 0.25),
    "boson": math.hypot(0.42 * 10.0 * 1.0 / 12.0, 0.25),
}
#: For a camera this table does not know: a blur of 0.6 px, as wide as the widest listed, so an unknown
#: camera is not under-corrected (its doubt shows in u95_c).
DEFAULT_PSF_SIGMA_PX = 0.6
#: Below this excess over the surrounding skin (°C) the spot's shape is lost in the sensor's noise:
#: nothing is corrected, and the reading stands as the hottest pixel.
MIN_CONTRAST_C = 0.15
#: The largest factor applied to the excess: beyond it the spot is too small for any reading to trust.
MAX_FACTOR = 2.5


def psf_sigma_px(camera: str) -> float:
    """The optics' PSF sigma (px) for a camera named like ``lepton3.5`` or ``simulated-boson320``."""
    name = camera.lower()
    for model, sigma in PSF_SIGMA_PX.items():
        if model in name:
            return sigma
    return DEFAULT_PSF_SIGMA_PX


def blur_variance(psf_sigma: float) -> float:
    """The blur a pixel-sampled spot shows (px^2): the optics' PSF plus the pixel footprint's 1/12."""
    return psf_sigma**2 + 1.0 / 12.0


@dataclass(frozen=True)
class SpotReading:
    """A canthus hot spot read with its spot-size correction.

    ``corrected_c``: the estimate of the spot's true peak (°C, apparent); ``u_c``: the standard
    uncertainty the correction adds (profile unknown); ``peak_c``: the blurred spot's continuous peak;
    ``skin_c``: the surrounding skin; ``width2_px``: the blurred spot's variance (px^2) as measured.
    """

    corrected_c: float
    u_c: float
    peak_c: float
    skin_c: float
    width2_px: float


def read_spot(celsius: np.ndarray, hottest_px: tuple[float, float], psf_sigma: float,
              noise_c: float = 0.05) -> SpotReading | None:
    """The spot-size-corrected peak of the hot spot whose hottest pixel is ``hottest_px`` (x, y).

    ``None`` when the 5x5 pixels around it are not all on the frame (the hottest pixel's value stands).
    A spot whose curvature the sensor's noise (``noise_c`` per pixel) could have made is read as flat
    (wider than the blur, or the top of a plateau): its hottest pixel stands, uncorrected.
    """
    x, y = int(round(hottest_px[0])), int(round(hottest_px[1]))
    h, w = celsius.shape
    if not (2 <= x < w - 2 and 2 <= y < h - 2):
        return None
    patch = np.asarray(celsius[y - 2 : y + 3, x - 2 : x + 3], dtype=np.float64)
    ring = np.concatenate([patch[0], patch[-1], patch[1:-1, 0], patch[1:-1, -1]])
    skin = float(np.median(ring))
    centre = float(patch[2, 2])
    excess = centre - skin
    if excess < MIN_CONTRAST_C:
        return SpotReading(centre, 0.0, centre, skin, float("nan"))
    # log-parabola per axis through the hottest pixel and its two neighbours (Caruana)
    floor = 0.05 * excess  # a neighbour at or under the skin would make the log meaningless
    peaks, widths, curvatures, variances = [], [], [], []
    for lo, hi in ((patch[2, 1], patch[2, 3]), (patch[1, 2], patch[3, 2])):
        excesses = [max(v - skin, floor) for v in (lo, centre, hi)]
        a, b, c = (math.log(e) for e in excesses)
        curvature = a - 2.0 * b + c
        # the noise on a log is the noise over the excess: the curvature's variance, per axis
        variances.append(sum((k * noise_c / e) ** 2 for k, e in zip((1.0, 2.0, 1.0), excesses, strict=True)))
        curvatures.append(curvature)
        if curvature < -1e-6:
            shift = 0.5 * (a - c) / curvature
            peaks.append(b - 0.25 * (a - c) * shift)
            widths.append(-1.0 / curvature)
    if len(widths) < 2 or float(np.mean(curvatures)) > -2.0 * math.sqrt(sum(variances)) / 2.0:
        return SpotReading(centre, 0.0, centre, skin, float("inf"))  # flat within the noise
    peak_excess = math.exp(float(np.mean(peaks)))
    width2 = float(np.mean(widths))
    factor, u_factor = correction_factor(width2, blur_variance(psf_sigma))
    corrected = skin + peak_excess * factor
    return SpotReading(corrected, peak_excess * u_factor, skin + peak_excess, skin, width2)


def correction_factor(width2: float, blur2: float) -> tuple[float, float]:
    """The factor on the blurred spot's excess, and its standard uncertainty, for a spot of measured
    variance ``width2`` behind a blur of variance ``blur2`` (both px^2); see the module notes."""
    own2 = width2 - blur2
    if own2 <= blur2 / (MAX_FACTOR - 1.0):  # s^2 / w^2 below 1 / MAX_FACTOR: unreadably small
        own2 = blur2 / (MAX_FACTOR - 1.0)
    peaked = (own2 + blur2) / own2
    flat = 1.0 / (1.0 - math.exp(-2.0 * own2 / blur2))
    factor = min(0.5 * (peaked + flat), MAX_FACTOR)
    return factor, abs(peaked - flat) / (2.0 * math.sqrt(3.0))
