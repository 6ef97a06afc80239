"""The spot-size effect at the canthus, and its correction by the camera's response to a spot that size.

The inner canthus is a hot spot a few millimetres across over cooler periorbital skin. A thermal
camera's optics (diffraction at f/1 over 8-14 µm is about a pixel wide, plus aberrations and defocus)
and its detector's pixel footprint spread it, so its hottest pixel reads below the spot's true peak by a
share of the spot's contrast that grows as fewer pixels span it: on a Lepton at 0.6 m a canthus spans
two or three pixels, and its peak reads a quarter to half a degree low. Choosing the closest frames
helps; it does not remove the bias.

A spot two pixels wide cannot show its own shape through a blur one pixel wide (the noise alone makes
its curvature meaningless), so the correction does not read the shape off the frame. It applies the
camera's *spot-size response* to a spot of the canthus's size, as a thermographer corrects a small
target by the size-of-source effect:

* the canthus hot spot is taken as a peak of half-maximum radius :data:`CANTHUS_RADIUS_MM` (anatomy:
  a few millimetres to about a centimetre across; the range :data:`CANTHUS_RADIUS_RANGE_MM` goes into
  the uncertainty), scaled to pixels by the face's own eye spacing on the thermal image (the adult
  interpupillary distance, :data:`IPD_MM`, is the ruler the station already uses for distance);
* the camera keeps ``s^2 / (s^2 + p^2 + 1/12 + 1/12)`` of a Gaussian spot's contrast on its hottest
  pixel, with ``s`` the spot's sigma in pixels, ``p`` the optics' PSF sigma (:data:`PSF_SIGMA_PX`, or
  the profile's measured ``[optics] psf_sigma_px``), one 1/12 for the pixel's footprint and one for
  where the spot falls inside it (the hottest pixel is up to half a pixel from the peak);
* the contrast is read against the skin around the canthus (the median of the ring two pixels out), and
  divided by what the camera keeps.

The reported uncertainty is the spread of that correction over the anatomical range, as a rectangular
distribution: a spot too small to read well carries its doubt into the decision's ``u95_c``.
Pure functions of arrays, tested on synthetic spots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Standard deviation (pixels) of each camera model's point-spread function, optics only, as a Gaussian:
#: diffraction over 8-14 µm (sigma ~ 0.42 lambda N at lambda = 10 µm) combined with an allowance of 0.25 px
#: for aberrations and defocus over the measuring range (an assumption; ``station calibrate spot-size``
#: measures it). Lepton 3.5: 12 µm pitch, f/1.1; Boson: 12 µm, f/1.0; A35: 25 µm, f/1.25 (datasheets).
PSF_SIGMA_PX: dict[str, float] = {
    "lepton": math.hypot(0.42 * 10.0 * 1.1 / 12.0, 0.25),
    "boson": math.hypot(0.42 * 10.0 * 1.0 / 12.0, 0.25),
    "a35": math.hypot(0.42 * 10.0 * 1.25 / 25.0, 0.25),
}
#: For a camera this table does not know: a blur of 0.6 px, as wide as the widest listed, so an unknown
#: camera is not left under-corrected by default (its doubt shows in u95_c).
DEFAULT_PSF_SIGMA_PX = 0.6
#: Half-maximum radius of the canthus hot spot (mm), and the anatomical range it may take.
CANTHUS_RADIUS_MM = 4.0
CANTHUS_RADIUS_RANGE_MM = (2.5, 6.0)
#: The adult interpupillary distance (mm): the ruler from thermal pixels to millimetres on the face.
IPD_MM = 63.0
#: Half-maximum radius to Gaussian sigma: sqrt(2 ln 2).
HALF_MAX_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))
#: The smallest share of the contrast a correction may assume kept: below it nothing can be read.
MIN_RETENTION = 0.3


def psf_sigma_px(camera: str) -> float:
    """The optics' PSF sigma (px) for a camera named like ``lepton3.5`` or ``simulated-boson320``."""
    name = camera.lower()
    for model, sigma in PSF_SIGMA_PX.items():
        if model in name:
            return sigma
    return DEFAULT_PSF_SIGMA_PX


def retention(spot_radius_px: float, psf_sigma: float) -> float:
    """The share of a spot's contrast its hottest pixel keeps (see the module notes), at least MIN_RETENTION."""
    s2 = (spot_radius_px / HALF_MAX_PER_SIGMA) ** 2
    return max(s2 / (s2 + psf_sigma**2 + 2.0 / 12.0), MIN_RETENTION)


@dataclass(frozen=True)
class SpotReading:
    """A canthus hot spot read with its spot-size correction.

    ``corrected_c``: the estimate of the spot's true peak (°C, apparent); ``u_c``: the standard
    uncertainty the correction adds (the spot's size is not known); ``skin_c``: the skin around it;
    ``retention``: the share of its contrast the camera is taken to keep.
    """

    corrected_c: float
    u_c: float
    skin_c: float
    retention: float


def read_spot(celsius: np.ndarray, hottest_px: tuple[float, float], psf_sigma: float,
              px_per_mm: float) -> SpotReading | None:
    """The spot-size-corrected peak of the hot spot whose hottest pixel is ``hottest_px`` (x, y).

    ``px_per_mm`` is the scale on the face (thermal eye distance / :data:`IPD_MM`). ``None`` when the 5x5
    pixels around the hottest one are not all on the frame (the hottest pixel's value then stands).
    A spot no warmer than the skin around it is left as read.
    """
    x, y = int(round(hottest_px[0])), int(round(hottest_px[1]))
    h, w = celsius.shape
    if not (2 <= x < w - 2 and 2 <= y < h - 2) or not px_per_mm > 0:
        return None
    patch = np.asarray(celsius[y - 2 : y + 3, x - 2 : x + 3], dtype=np.float64)
    ring = np.concatenate([patch[0], patch[-1], patch[1:-1, 0], patch[1:-1, -1]])
    skin = float(np.median(ring))
    peak = float(patch[2, 2])
    excess = peak - skin
    if excess <= 0:
        return SpotReading(peak, 0.0, skin, 1.0)
    kept = retention(CANTHUS_RADIUS_MM * px_per_mm, psf_sigma)
    small, large = (skin + excess / retention(r * px_per_mm, psf_sigma) for r in CANTHUS_RADIUS_RANGE_MM)
    return SpotReading(skin + excess / kept, abs(small - large) / (2.0 * math.sqrt(3.0)), skin, kept)
