"""The spot-size correction on synthetic hot spots: peaked and flat, rendered through a blur and pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from station.spot_size import PSF_SIGMA_PX, correction_factor, psf_sigma_px, read_spot

SKIN_C, PEAK_C = 34.0, 35.0


def render(spot_sigma_px: float, profile: str, offset: tuple[float, float], psf: float, noise: float,
           rng: np.random.Generator, over: int = 16) -> np.ndarray:
    """A 15x15 px frame: a hot spot on skin, blurred by a Gaussian PSF and integrated over pixels."""
    n = 15
    yy, xx = (np.mgrid[0 : n * over, 0 : n * over] + 0.5) / over
    r2 = (xx - 7.5 - offset[0]) ** 2 + (yy - 7.5 - offset[1]) ** 2
    spot = np.exp(-r2 / (2 * spot_sigma_px**2)) if profile == "peaked" else (r2 <= (2 * spot_sigma_px) ** 2) * 1.0
    fine = cv2.GaussianBlur(SKIN_C + (PEAK_C - SKIN_C) * spot, (0, 0), psf * over)
    frame = fine.reshape(n, over, n, over).mean(axis=(1, 3)) + rng.normal(0.0, noise, (n, n))
    return frame.astype(np.float32)


def errors(spot_sigma_px: float, profile: str, psf: float = 0.5, noise: float = 0.05, n: int = 40):
    """Hottest-pixel and corrected errors (°C) over random sub-pixel positions, and the mean u."""
    rng = np.random.default_rng(11)
    raw, corrected, u = [], [], []
    for _ in range(n):
        frame = render(spot_sigma_px, profile, tuple(rng.uniform(-0.5, 0.5, 2)), psf, noise, rng)
        iy, ix = np.unravel_index(int(np.argmax(frame[5:10, 5:10])), (5, 5))
        reading = read_spot(frame, (ix + 5, iy + 5), psf)
        raw.append(frame[iy + 5, ix + 5] - PEAK_C)
        corrected.append(reading.corrected_c - PEAK_C)
        u.append(reading.u_c)
    return float(np.mean(raw)), float(np.mean(corrected)), float(np.mean(u))


@pytest.mark.parametrize("spot_sigma_px", [0.6, 0.75, 1.0])
def test_a_small_peaked_spot_reads_low_and_the_correction_recovers_most_of_it(spot_sigma_px):
    raw, corrected, _ = errors(spot_sigma_px, "peaked")
    assert raw < -0.25  # the spot-size effect: a third to a half of a 1 °C contrast lost
    assert abs(corrected) < 0.55 * abs(raw) and abs(corrected) <= 0.3


@pytest.mark.parametrize("spot_sigma_px", [0.5, 0.75, 1.0, 2.0])
def test_a_flat_spot_is_not_corrected_into_a_fever(spot_sigma_px):
    """A flat-topped spot keeps its peak once wider than the blur: the correction may overshoot by little."""
    _, corrected, u = errors(spot_sigma_px, "flat")
    assert corrected < 0.3
    assert corrected < 0.1 + 2 * u  # what it may overshoot by is in its own uncertainty


def test_the_doubt_shrinks_as_the_spot_is_better_resolved():
    small, large = errors(0.5, "peaked")[2], errors(2.0, "peaked")[2]
    assert small > 2 * large


def test_a_spot_lost_in_the_noise_is_left_as_read():
    frame = np.full((9, 9), SKIN_C, np.float32)
    frame[4, 4] += 0.05
    reading = read_spot(frame, (4, 4), 0.5)
    assert reading.corrected_c == pytest.approx(frame[4, 4]) and reading.u_c == 0.0


def test_a_spot_at_the_frame_edge_is_not_read():
    assert read_spot(np.full((9, 9), SKIN_C, np.float32), (1, 4), 0.5) is None


def test_the_factor_is_bounded_and_tends_to_one_for_wide_spots():
    assert correction_factor(100.0, 0.3)[0] == pytest.approx(1.0, abs=0.01)
    assert correction_factor(0.3, 0.3)[0] <= 2.5


def test_cameras_get_their_own_blur_and_unknown_ones_a_generous_default():
    assert psf_sigma_px("simulated-lepton3.5") == PSF_SIGMA_PX["lepton"]
    assert psf_sigma_px("Boson320") == PSF_SIGMA_PX["boson"]
    assert psf_sigma_px("a35-class") >= max(PSF_SIGMA_PX.values())
