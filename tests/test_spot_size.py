"""The spot-size correction on synthetic canthi: hot spots of anatomical sizes through a blur and pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from station.screen.spot_size import (
    CANTHUS_RADIUS_MM,
    HALF_MAX_PER_SIGMA,
    MIN_RETENTION,
    PSF_SIGMA_PX,
    psf_sigma_px,
    read_spot,
    retention,
)

SKIN_C, PEAK_C = 34.0, 35.0


def render(radius_px: float, offset: tuple[float, float], psf: float, noise: float, rng: np.random.Generator,
           shape: float = 2.0, over: int = 16) -> np.ndarray:
    """A 15x15 px frame: a hot spot 2^-(r/R)^shape of half-maximum radius R on skin, blurred, pixel-integrated."""
    n = 15
    yy, xx = (np.mgrid[0 : n * over, 0 : n * over] + 0.5) / over
    r = np.hypot(xx - 7.5 - offset[0], yy - 7.5 - offset[1])
    fine = SKIN_C + (PEAK_C - SKIN_C) * 2.0 ** (-((r / radius_px) ** shape))
    fine = cv2.GaussianBlur(fine, (0, 0), psf * over)
    frame = fine.reshape(n, over, n, over).mean(axis=(1, 3)) + rng.normal(0.0, noise, (n, n))
    return frame.astype(np.float32)


def errors(radius_mm: float, px_per_mm: float, psf: float = 0.45, shape: float = 2.0, n: int = 40):
    """Hottest-pixel and corrected errors (°C) over random sub-pixel positions, and the mean u."""
    rng = np.random.default_rng(11)
    raw, corrected, u = [], [], []
    for _ in range(n):
        frame = render(radius_mm * px_per_mm, tuple(rng.uniform(-0.5, 0.5, 2)), psf, 0.05, rng, shape)
        iy, ix = np.unravel_index(int(np.argmax(frame[5:10, 5:10])), (5, 5))
        reading = read_spot(frame, (ix + 5, iy + 5), psf, px_per_mm)
        raw.append(frame[iy + 5, ix + 5] - PEAK_C)
        corrected.append(reading.corrected_c - PEAK_C)
        u.append(reading.u_c)
    return float(np.mean(raw)), float(np.mean(corrected)), float(np.mean(u))


@pytest.mark.parametrize("px_per_mm", [0.2, 0.27, 0.4])  # a Lepton at 0.7 m, a Boson at 1.2 m, closer
def test_a_canthus_of_typical_size_reads_low_and_the_correction_brings_it_back(px_per_mm):
    raw, corrected, _ = errors(CANTHUS_RADIUS_MM, px_per_mm)
    assert raw < -0.15  # the spot-size effect: a sixth to a half of a 1 °C contrast lost
    assert abs(corrected) < 0.12


def test_over_the_anatomical_range_the_correction_reads_closer_than_the_hottest_pixel():
    """Canthi 2.5-6 mm in half-maximum radius, peaked or flat-topped, on a Boson at 1.2 m: the correction
    for the typical size halves the error of some and overshoots large flat ones, and is closer on the whole;
    each stays within a few of its own stated uncertainties."""
    raws, corrected = [], []
    for radius_mm in (2.5, 4.0, 6.0):
        for shape in (2.0, 6.0):
            raw, fixed, u = errors(radius_mm, 0.27, shape=shape)
            raws.append(abs(raw))
            corrected.append(abs(fixed))
            assert abs(fixed) < 0.05 + 3.5 * u, (radius_mm, shape, fixed, u)
    assert np.mean(corrected) < 0.75 * np.mean(raws)


def test_the_doubt_shrinks_as_the_face_comes_closer():
    assert errors(CANTHUS_RADIUS_MM, 0.2)[2] > 2 * errors(CANTHUS_RADIUS_MM, 0.8)[2]


def test_retention_grows_with_the_spot_and_shrinks_with_the_blur():
    assert retention(0.8, 0.45) < retention(1.6, 0.45) < retention(6.0, 0.45) < 1.0
    assert retention(1.0, 0.8) < retention(1.0, 0.4)
    assert retention(0.01, 3.0) == MIN_RETENTION
    s = 1.0 / HALF_MAX_PER_SIGMA
    assert retention(1.0, 0.0) == pytest.approx(s**2 / (s**2 + 2 / 12))


def test_a_spot_no_warmer_than_the_skin_around_it_is_left_as_read():
    frame = np.full((9, 9), SKIN_C, np.float32)
    reading = read_spot(frame, (4, 4), 0.5, 0.25)
    assert reading.corrected_c == pytest.approx(SKIN_C) and reading.u_c == 0.0


def test_a_spot_at_the_frame_edge_is_not_read():
    assert read_spot(np.full((9, 9), SKIN_C, np.float32), (1, 4), 0.5, 0.25) is None


def test_cameras_get_their_own_blur_and_unknown_ones_a_generous_default():
    assert psf_sigma_px("simulated-lepton3.5") == PSF_SIGMA_PX["lepton"]
    assert psf_sigma_px("Boson320") == PSF_SIGMA_PX["boson"]
    assert psf_sigma_px("a35-class") == PSF_SIGMA_PX["a35"]
    assert psf_sigma_px("someone-elses-camera") >= max(PSF_SIGMA_PX.values())
