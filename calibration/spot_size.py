"""The thermal camera's measured spot-size response: its optics' PSF, fitted to a heated aperture.

Why measure it
--------------
The engine corrects a canthus's peak for the blur it suffers (:mod:`station.screen.spot_size`), and the size
of that correction is set by the optics' point-spread function ``sigma_o``. The documented default per
camera model (:data:`station.screen.spot_size.PSF_SIGMA_PX`) is diffraction plus a guessed 0.25 px allowance for
aberrations and defocus; a real lens, focused by hand on a kiosk, can be sharper or a good deal softer.
This module measures it, so ``station calibrate spot-size`` can store it in the profile
(``[optics] psf_sigma_px``, :attr:`station.profile.schema.CalibrationProfile.optics_psf_sigma_px`).

The physics
-----------
A thin plate (matt, high emissivity, at room temperature) with a round hole of diameter ``D`` mm stands
in front of a blackbody at set point ``T_bb``. Seen from ``d`` metres by a camera of focal length
``f`` (thermal pixels) the hole is a flat disc of radius::

    R = (D / 2) * f / (1000 * d)   px

at the blackbody's radiance, over the plate's, ``T_bg`` (measured on the frame: the median of a ring
around the hole). The optics blur it with a Gaussian of standard deviation ``sigma_o``, and each pixel
integrates the blurred image over its own square footprint. The pixel holding the disc's centre then
keeps a share of the contrast (the *retention*)::

    r = [(S_pixel - S_bg) / (S_bb - S_bg)]
      = integral over the pixel of  P(|p + sigma_o Z - c| <= R)  dp,   Z ~ N(0, I)

where ``c`` is the disc's centre and the probability is the disc convolved with the Gaussian, which is
a non-central chi-squared distribution function: ``ncx2.cdf(R^2/sigma_o^2, 2, |p - c|^2/sigma_o^2)``.
:func:`pixel_fractions` evaluates it exactly, integrating over the pixel by Gauss-Legendre quadrature.
The textbook shortcut ``1 - exp(-R^2 / (2 (sigma_o^2 + 1/12)))`` (pixel footprint as an extra variance,
:func:`station.screen.spot_size.blur_variance`) is the value for a disc centred on its pixel; off centre the
pixel reads much less (R = 1 px, sigma_o = 0.4 px: 0.87 centred, 0.61 at a pixel corner), so the model
uses the **measured sub-pixel phase** of each pose (the disc's centre, fitted on the pose's own pixels by
:func:`refine_centre`) rather than the shortcut or an average over phases, which would turn the phase
of each pose into unexplained scatter.

Blur mixes radiance, not temperature: the frames are turned into the camera's in-band signal through its
Planck curve (:func:`station.acquire.radiometry.signal_from_celsius`) before anything is subtracted or summed,
so "signal" below means that linear quantity. ``sigma_o`` is then fitted by least squares to the
measured retentions over several distances (at least three, the farthest at least twice the nearest, so
``R`` spans from about 1 px, where the blur shows, to about 4 px, where it does not).

The focal length
----------------
``R`` needs ``f``, and each choice has a weakness: a datasheet's field of view is nominal (a few per cent
off, which biases ``sigma_o`` by about as many hundredths of a pixel at ``R`` ~ 1 px); a dual-camera
profile's homography carries the ratio of the two focal lengths only to first order, and a thermal-only
profile's focal is itself the nominal field of view. So ``f`` is **measured on the frames**: blur
conserves flux (the PSF integrates to one, and square pixels tile the plane), so the excess summed around
the hole is ``pi R^2 (S_bb - S_bg)`` whatever ``sigma_o`` is. Each pose's *flux radius* is therefore a
blur-free measurement of ``R``; one focal ``f`` fitted to all poses (dominated by the nearest, largest
ones, where the sum is most precise) gives every pose's ``R`` from its distance, and each pose's own
flux radius checks its distance (a wrong or mis-ordered ``--distances`` shows there). When the camera's
nominal field of view is known the measured focal must agree with it within
:data:`MAX_FOCAL_MISMATCH` (a wrong ``--aperture-mm`` or distances in cm fail here); the technician
may also impose the nominal focal (``--hfov-deg``).

Everything here is a pure function of arrays (signal frames, distances); reading cameras, recordings and
profiles is :mod:`calibration.cli.spot_size`'s. Every refusal is a one-line :class:`ValueError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.stats import ncx2

from station.profile.schema import PSF_SIGMA_RANGE_PX

#: At least this many poses: one parameter is fitted, and the residuals must be able to show a bad pose.
MIN_POSES = 3
#: The farthest distance over the nearest (the range of ``R``): below it the poses see the blur at only
#: one scale and cannot tell a soft lens from a wrong distance.
MIN_DISTANCE_RATIO = 2.0
#: Blackbody over plate, °C: below it the sensor's noise and offset are a large share of the contrast.
MIN_CONTRAST_C = 5.0
#: A hot spot reading less than this share of the contrast is not taken for the aperture (a blur this
#: strong leaves nothing to fit, and a warm reflection reads like it).
MIN_PEAK_FRACTION = 0.1
#: ... nor one reading more than this share: nothing in front of the blackbody reads hotter than it.
MAX_PEAK_FRACTION = 1.15
#: The largest half-maximum radius (px) of a hot spot taken for the aperture: a face or the blackbody's
#: own rim is larger; the aperture at R <= 4 px blurred by sigma_o <= 3 px is smaller.
MAX_HALF_RADIUS_PX = 7.0
#: The plate around the aperture must read uniform: the ring's 10-90 % spread within this share of the
#: contrast (a warm edge of the blackbody or a hand in the ring would bias the background).
MAX_RING_SPREAD = 0.1
#: RMS of the retention residuals (share of the contrast) above which the poses do not agree on one
#: blur: the fit is refused. Honest poses stay within about 0.01 (noise, a slightly non-Gaussian PSF).
MAX_RMS_RETENTION = 0.03
#: How far (px) ``sigma_o`` may move for an error of 1 % of the contrast on every pose: beyond it the
#: poses do not constrain the blur (the aperture spans too many pixels at every distance).
MAX_SIGMA_PER_PERCENT_PX = 0.05
#: The measured focal length may differ from the camera's nominal one by this share at most.
MAX_FOCAL_MISMATCH = 0.2
#: A pose's flux radius may differ from the one its distance predicts by this share at most.
MAX_POSE_RADIUS_MISMATCH = 0.15
#: Still poses in a stream of frames: the aperture's centroid within this many px of the stretch's mean,
#: its peak within :data:`STILL_PEAK` of the contrast, for at least :data:`MIN_STILL_S` seconds.
STILL_PX = 0.3
STILL_PEAK = 0.06
MIN_STILL_S = 1.0
MIN_STILL_FRAMES = 3
#: Two still stretches with the aperture this alike (centroid, peak, and flux within 5 %) are one pose,
#: interrupted (a frame the aperture was not found in, a hand passing).
SAME_FLUX = 0.05
#: Bounds of the fit itself (px); the range accepted is :data:`station.profile.schema.PSF_SIGMA_RANGE_PX`.
FIT_BOUNDS_PX = (0.02, 6.0)

# Gauss-Legendre nodes over a pixel's width: 10 reproduce a 64x oversampled render to 3e-4 of the
# contrast down to sigma_o = 0.2 px (the integrand is smooth on the scale of sigma_o).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(10)
_NODES, _WEIGHTS = _NODES / 2.0, _WEIGHTS / 2.0
_WEIGHTS_2D = _WEIGHTS[:, None] * _WEIGHTS[None, :]


# --------------------------------------------------------------------------------------------- model
def pixel_fractions(radius_px: float, sigma_px: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The share of a disc's contrast that pixels read, each pixel's centre ``(dx, dy)`` px from the disc's.

    Exact for a flat disc of radius ``radius_px`` blurred by a Gaussian of ``sigma_px`` and integrated
    over each pixel's unit square: the integrand, ``P(|p + sigma Z - c| <= R)``, is the non-central
    chi-squared distribution function with 2 degrees of freedom (see the module notes), and the square is
    integrated with 10 x 10 Gauss-Legendre nodes.

    Parameters
    ----------
    radius_px, sigma_px
        The disc's radius and the optics' Gaussian sigma, thermal pixels.
    dx, dy
        Each pixel's centre minus the disc's centre, px (arrays of one shape, or scalars).

    Returns
    -------
    numpy.ndarray
        One share (0 to 1) per pixel: its excess over the plate divided by the blackbody's contrast.
    """
    sigma = max(float(sigma_px), 1e-3)
    dx = np.atleast_1d(np.asarray(dx, dtype=np.float64))
    dy = np.atleast_1d(np.asarray(dy, dtype=np.float64))
    px = dx[:, None, None] + _NODES[None, :, None]
    py = dy[:, None, None] + _NODES[None, None, :]
    inside = ncx2.cdf((radius_px / sigma) ** 2, 2, (px * px + py * py) / sigma**2)
    return (inside * _WEIGHTS_2D[None]).sum(axis=(1, 2))


def peak_retention(radius_px: float, sigma_px: float, phase: tuple[float, float] = (0.0, 0.0)) -> float:
    """The retention of the pixel holding the disc's centre, the centre ``phase`` px off the pixel's.

    ``phase`` is within half a pixel on each axis; (0, 0) is a disc centred on its pixel, the best case,
    which the shortcut ``1 - exp(-R^2 / (2 (sigma^2 + 1/12)))`` approximates.
    """
    return float(pixel_fractions(radius_px, sigma_px, np.array([phase[0]]), np.array([phase[1]]))[0])


# --------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True, eq=False)
class ApertureRead:
    """The aperture as one (signal) frame shows it.

    ``x, y``: its centroid (px; pixel centres at whole numbers, ``frame[y, x]``), a first estimate that
    :func:`refine_centre` improves; ``background``: the plate, the median of a ring around it; ``flux``:
    the excess over the plate summed within ``window_px`` of the centre (signal x px^2); ``patch``: the
    excess over the plate of the pixels around the centroid, whose top-left pixel is ``origin`` (x, y).
    """

    x: float
    y: float
    background: float
    flux: float
    window_px: float
    patch: np.ndarray
    origin: tuple[int, int]

    def peak_at(self, x: float, y: float) -> float:
        """The excess of the pixel holding the point (x, y): the aperture's peak once (x, y) is its centre.

        Not the hottest pixel, whose choice among near-equal neighbours would favour the noise.
        """
        return float(self.patch[int(round(y)) - self.origin[1], int(round(x)) - self.origin[0]])


def _ring_mask(size: int, r_in: float, r_out: float) -> np.ndarray:
    """Pixels of a ``size`` x ``size`` window whose centres lie r_in..r_out px from the window's centre."""
    yy, xx = np.indices((size, size), dtype=np.float64) - (size - 1) / 2.0
    r = np.hypot(xx, yy)
    return (r >= r_in) & (r <= r_out)


def find_aperture(signal: np.ndarray, blackbody_signal: float) -> ApertureRead:
    """Find and read the heated aperture on one frame of in-band signal; ``ValueError`` when it is not there.

    The aperture is the brightest compact hot spot on a uniform surround: a local maximum whose excess over
    the median of a ring around it is :data:`MIN_PEAK_FRACTION` to :data:`MAX_PEAK_FRACTION` of the
    blackbody's contrast over that ring, whose half-maximum region is at most
    :data:`MAX_HALF_RADIUS_PX` in radius (a face, a lamp, the blackbody's own rim are larger), and
    whose ring is uniform (:data:`MAX_RING_SPREAD`). The flux is summed within twice the half-maximum
    radius plus 4 px (the disc and more than three blur sigmas of its rim), the ring lies just beyond.

    Parameters
    ----------
    signal
        One frame (or the mean of a still pose's frames) of in-band signal, linear in radiance.
    blackbody_signal
        The blackbody's signal at its set point, on the same scale.

    Returns
    -------
    ApertureRead
        Its centroid, plate, flux, and the pixels around it.

    Raises
    ------
    ValueError
        No hot spot qualifies; the message says why the hottest one did not.
    """
    frame = np.asarray(signal, dtype=np.float64)
    if frame.ndim != 2 or min(frame.shape) < 16:
        raise ValueError(f"expected a 2-D thermal frame at least 16 px on each side, got shape {frame.shape}")
    smooth = cv2.GaussianBlur(frame, (0, 0), 0.7)
    peaks = (smooth >= cv2.dilate(smooth, np.ones((5, 5), np.uint8))) & np.isfinite(smooth)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(smooth[ys, xs])[::-1][:20]
    why = "no hot spot"
    for iy, ix in zip(ys[order], xs[order], strict=True):
        read, reason = _read_candidate(frame, int(ix), int(iy), blackbody_signal)
        if read is not None:
            return read
        if why == "no hot spot":
            why = reason
    raise ValueError(
        f"the aperture was not found ({why}): keep it in view with at least {int(2 * MAX_HALF_RADIUS_PX + 8)} px "
        "of uniform plate around it and the blackbody at the set point"
    )


def _read_candidate(frame: np.ndarray, ix: int, iy: int, blackbody_signal: float) -> tuple[ApertureRead | None, str]:
    """Read the hot spot whose (smoothed) local maximum is pixel (ix, iy), or say why it is not the aperture."""
    height, width = frame.shape
    pad = 13
    if not (pad <= ix < width - pad and pad <= iy < height - pad):
        return None, "the hottest spot is too near the frame's edge"
    window = frame[iy - pad : iy + pad + 1, ix - pad : ix + pad + 1]
    ring0 = window[_ring_mask(2 * pad + 1, 10.0, 13.0)]
    background0 = float(np.median(ring0))
    contrast = blackbody_signal - background0
    if not contrast > 0:
        return None, "nothing in view is colder than the blackbody"
    # the brightest pixel near the maximum, and the half-maximum region connected to it
    local = window[pad - 2 : pad + 3, pad - 2 : pad + 3]
    ly, lx = np.unravel_index(int(np.argmax(local)), local.shape)
    by, bx = pad - 2 + int(ly), pad - 2 + int(lx)
    excess0 = float(window[by, bx]) - background0
    if excess0 < MIN_PEAK_FRACTION * contrast:
        return None, f"the hottest compact spot holds {excess0 / contrast:.0%} of the blackbody's contrast"
    if excess0 > MAX_PEAK_FRACTION * contrast:
        return None, "the hottest spot reads hotter than the blackbody"
    above = ((window - background0) >= 0.5 * excess0).astype(np.uint8)
    _, labels = cv2.connectedComponents(above, connectivity=8)
    region = labels == labels[by, bx]
    half_radius = math.sqrt(float(region.sum()) / math.pi)
    if half_radius > MAX_HALF_RADIUS_PX or region[0].any() or region[-1].any() or region[:, 0].any() \
            or region[:, -1].any():
        return None, f"the hottest spot is {2 * half_radius:.0f} px across, too large for the aperture"
    # flux window and ring, centred on the centroid (found twice: the second window is centred on the first)
    r_int = 2.0 * half_radius + 4.0
    cx, cy = float(ix - pad + bx), float(iy - pad + by)
    half = int(math.ceil(r_int + 4.0)) + 1
    for _ in range(2):
        x0, y0 = int(round(cx)) - half, int(round(cy)) - half
        if x0 < 0 or y0 < 0 or x0 + 2 * half + 1 > width or y0 + 2 * half + 1 > height:
            return None, "the aperture is too near the frame's edge"
        sub = frame[y0 : y0 + 2 * half + 1, x0 : x0 + 2 * half + 1]
        yy, xx = np.indices(sub.shape, dtype=np.float64)
        xx += x0
        yy += y0
        r = np.hypot(xx - cx, yy - cy)
        values = sub[(r >= r_int + 1.0) & (r <= r_int + 4.0)]
        background = float(np.median(values))
        excess = np.where(r <= r_int, sub - background, 0.0)
        flux = float(excess.sum())
        if not flux > 0:
            return None, "the hot spot holds no excess over its surround"
        cx, cy = float((xx * excess).sum() / flux), float((yy * excess).sum() / flux)
    contrast = blackbody_signal - background
    lo, hi = np.percentile(values, [10.0, 90.0])
    if hi - lo > MAX_RING_SPREAD * contrast:
        return None, (f"the plate around the hot spot is not uniform (its ring spans {(hi - lo) / contrast:.0%} of "
                      "the contrast)")
    # the pixels the centre is refined on: the disc and its blurred rim, at most 13 x 13
    size = min(int(math.ceil(half_radius)) + 2, 6)
    px, py = int(round(cx)), int(round(cy))
    patch = frame[py - size : py + size + 1, px - size : px + size + 1] - background
    return ApertureRead(cx, cy, background, flux, r_int, patch, (px - size, py - size)), ""


def refine_centre(read: ApertureRead, radius_px: float, sigma_px: float) -> tuple[float, float]:
    """The disc's centre (x, y) that best explains the pixels around it, for a disc of ``radius_px``
    blurred by ``sigma_px``.

    The centroid is noisy (every pixel of the flux window adds its noise, weighted by its distance) and the
    peak pixel of a disc about a pixel in radius is steep in the sub-pixel phase (R = 1 px, sigma = 0.4 px:
    its retention falls by 0.05 per 0.1 px near the pixel's edge), so the centre is fitted: the model of the
    disc (:func:`pixel_fractions`, amplitude free) to the patch of pixels, by least squares. A symmetric
    model places a symmetric spot's centre right even with a width somewhat off, so a first guess of sigma
    is enough, and the fit's own sigma refines it on a second pass.

    Parameters
    ----------
    read
        The aperture as :func:`find_aperture` read it; its centroid is the starting point, and the centre
        stays within a pixel of it.
    radius_px, sigma_px
        The disc's radius (from the focal and the pose's distance) and the current guess of sigma.

    Returns
    -------
    tuple of float
        The centre (x, y), px.
    """
    h, w = read.patch.shape
    yy, xx = np.indices((h, w), dtype=np.float64)
    xx = (xx + read.origin[0]).ravel()
    yy = (yy + read.origin[1]).ravel()
    values = read.patch.ravel()
    scale = max(float(np.max(values)), 1e-12)

    def residuals(params: np.ndarray) -> np.ndarray:
        cx, cy, amplitude = params
        return amplitude * pixel_fractions(radius_px, sigma_px, xx - cx, yy - cy) - values / scale

    start = np.array([read.x, read.y, 1.0])
    lower = [read.x - 1.0, read.y - 1.0, 0.05]
    upper = [read.x + 1.0, read.y + 1.0, 20.0]
    solution = least_squares(residuals, start, bounds=(lower, upper), x_scale=[0.1, 0.1, 0.1])
    return float(solution.x[0]), float(solution.x[1])


# --------------------------------------------------------------------------------------------- still poses
@dataclass(frozen=True)
class StillPose:
    """A stretch of frames in which the aperture stood still: its times and the mean (signal) frame."""

    start_t: float
    end_t: float
    frames: int
    mean: np.ndarray

    @property
    def label(self) -> str:
        return f"t={self.start_t:.1f}-{self.end_t:.1f}s"


class _Stretch:
    def __init__(self, t: float, frame: np.ndarray, read: ApertureRead, contrast: float) -> None:
        self.start_t = self.end_t = t
        self.total = np.array(frame, dtype=np.float64)
        self.n = 1
        self.sums = np.array(_summary(read, contrast), dtype=np.float64)

    @property
    def means(self) -> np.ndarray:
        return self.sums / self.n

    def add(self, t: float, frame: np.ndarray, read: ApertureRead, contrast: float) -> None:
        self.end_t = t
        self.total += frame
        self.n += 1
        self.sums += _summary(read, contrast)


def _summary(read: ApertureRead, contrast: float) -> tuple[float, float, float, float, float]:
    return (read.x, read.y, read.peak_at(read.x, read.y), read.flux, contrast)


def _alike(a: np.ndarray, b: np.ndarray, flux: bool) -> bool:
    """Whether two (x, y, peak, flux, contrast) summaries describe the aperture in one place."""
    contrast = max(float(a[4]), float(b[4]))
    same = abs(a[0] - b[0]) <= STILL_PX and abs(a[1] - b[1]) <= STILL_PX and abs(a[2] - b[2]) <= STILL_PEAK * contrast
    return bool(same and (not flux or abs(a[3] - b[3]) <= SAME_FLUX * max(abs(a[3]), abs(b[3]))))


class StillPoses:
    """Split a stream of frames into the poses in which the aperture stood still.

    A pose caught while the aperture (or the camera) moves is smeared along the motion, and its peak reads
    low: a blur the fit would blame on the optics. So, as ``station calibrate register --recording`` keeps
    only still target poses, a pose here is a stretch of at least :data:`MIN_STILL_S` seconds (and
    :data:`MIN_STILL_FRAMES` frames) in which the aperture's centroid stays within :data:`STILL_PX` and
    its peak within :data:`STILL_PEAK` of the contrast of the stretch's mean; its frames are averaged,
    which also beats the sensor's noise down. A stretch broken only by a frame the aperture was missed in
    is joined to the one before it when they show the aperture alike (:data:`SAME_FLUX`).

    Feed frames in time order with :meth:`add`, then call :meth:`finish`.
    """

    def __init__(self, blackbody_signal: float, *, min_seconds: float = MIN_STILL_S,
                 min_frames: int = MIN_STILL_FRAMES) -> None:
        self.blackbody_signal = float(blackbody_signal)
        self.min_seconds = float(min_seconds)
        self.min_frames = int(min_frames)
        self.seen = 0  #: frames the aperture was found in
        self.last_error: str | None = None  #: why it was not found on the last frame it was not
        self._current: _Stretch | None = None
        self._kept: list[_Stretch] = []
        self._last: _Stretch | None = None  # the stretch closed last, kept or not

    def add(self, t: float, frame: np.ndarray) -> ApertureRead | None:
        """One frame of signal at time ``t`` (s); returns the aperture as read on it, or None."""
        try:
            read = find_aperture(frame, self.blackbody_signal)
        except ValueError as exc:
            self.last_error = str(exc)
            self._close()
            return None
        self.seen += 1
        contrast = self.blackbody_signal - read.background
        summary = np.array(_summary(read, contrast))
        if self._current is not None and _alike(self._current.means, summary, flux=False):
            self._current.add(t, frame, read, contrast)
        else:
            self._close()
            self._current = _Stretch(t, frame, read, contrast)
        return read

    def _close(self) -> None:
        """End the current stretch: join it to the stretch closed just before when they show the aperture
        alike, and keep it once it has lasted long enough. Only the last short stretch is held (it may
        still be joined); the frames of every other one are dropped at once, so memory stays bounded."""
        stretch, self._current = self._current, None
        if stretch is None:
            return
        previous = self._last
        if previous is not None and _alike(previous.means, stretch.means, flux=True):
            previous.end_t = stretch.end_t
            previous.total += stretch.total
            previous.n += stretch.n
            previous.sums += stretch.sums
            stretch = previous
        long_enough = stretch.n >= self.min_frames and stretch.end_t - stretch.start_t >= self.min_seconds
        if long_enough and not any(k is stretch for k in self._kept):
            self._kept.append(stretch)
        self._last = stretch

    def finish(self) -> list[StillPose]:
        """The still poses found, in time order."""
        self._close()
        return [StillPose(s.start_t, s.end_t, s.n, s.total / s.n) for s in self._kept]


# --------------------------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class PoseReading:
    """One pose: where it came from, its distance (m), the aperture read on its (mean) frame, and the
    blackbody's signal ``blackbody_signal`` it is compared with."""

    label: str
    distance_m: float
    read: ApertureRead
    blackbody_signal: float
    frames: int = 1

    @property
    def contrast(self) -> float:
        return self.blackbody_signal - self.read.background

    def retention_at(self, x: float, y: float) -> float:
        """The measured share of the contrast kept by the pixel holding the centre (x, y)."""
        return self.read.peak_at(x, y) / self.contrast

    @property
    def flux_radius_px(self) -> float:
        """The disc's radius from its flux, ``sqrt(flux / (pi contrast))``: free of the blur."""
        return math.sqrt(max(self.read.flux, 0.0) / (math.pi * self.contrast))


@dataclass(frozen=True)
class PoseFit:
    """One pose of the fit: its radius from the focal and its distance, its flux radius, phase, and the
    retention measured and fitted."""

    label: str
    distance_m: float
    frames: int
    radius_px: float
    flux_radius_px: float
    centre: tuple[float, float]
    measured: float
    fitted: float

    @property
    def phase(self) -> tuple[float, float]:
        """The centre's offset from the centre of its pixel, each within [-0.5, 0.5] px."""
        return (self.centre[0] - round(self.centre[0]), self.centre[1] - round(self.centre[1]))

    @property
    def residual(self) -> float:
        return self.measured - self.fitted


@dataclass(frozen=True)
class SpotSizeFit:
    """The fitted optics' PSF sigma and how well the poses agree on it.

    ``sigma_u_px``: its standard uncertainty from the residuals; ``rms``: the RMS residual (share of
    the contrast); ``focal_px``: the focal used for every pose's radius, ``measured_focal_px`` the one
    from the aperture's flux (the same unless the technician imposed one).
    """

    sigma_px: float
    sigma_u_px: float
    rms: float
    focal_px: float
    measured_focal_px: float
    poses: tuple[PoseFit, ...]


def check_distances(distances_m: Sequence[float]) -> tuple[float, ...]:
    """The distances as floats, or a one-line ``ValueError``: too few, not positive, or too alike."""
    values = tuple(float(d) for d in distances_m)
    if len(values) < MIN_POSES:
        raise ValueError(
            f"{len(values)} distance{'s' if len(values) != 1 else ''}: the blur needs at least {MIN_POSES} poses, "
            f"the farthest at least {MIN_DISTANCE_RATIO:g}x the nearest (e.g. 0.4,0.7,1.1,1.5 m)"
        )
    if not all(math.isfinite(d) and d > 0 for d in values):
        raise ValueError(f"distances {list(values)}: expected positive numbers of metres")
    ratio = max(values) / min(values)
    if ratio < MIN_DISTANCE_RATIO:
        raise ValueError(
            f"distances {min(values):g}-{max(values):g} m are too alike (the farthest is {ratio:.2f}x the nearest, "
            f"at least {MIN_DISTANCE_RATIO:g}x needed): the aperture must span from about 4 px to about 1 px in radius"
        )
    return values


def measured_focal_px(poses: Sequence[PoseReading], aperture_mm: float) -> float:
    """The focal (px) that best explains every pose's flux radius, ``R_i = (D/2) f / (1000 d_i)``.

    Least squares on the radii themselves, so the nearest poses (the largest radii, whose flux is summed
    most precisely relative to its size) weigh most.
    """
    x = np.array([aperture_mm / (2000.0 * p.distance_m) for p in poses])
    radii = np.array([p.flux_radius_px for p in poses])
    return float((radii * x).sum() / (x * x).sum())


def _model(sigma: float, radii: np.ndarray, phases: Sequence[tuple[float, float]]) -> np.ndarray:
    return np.array([peak_retention(r, sigma, ph) for r, ph in zip(radii, phases, strict=True)])


def _fit_sigma(radii: np.ndarray, phases: Sequence[tuple[float, float]], retention: np.ndarray) -> float:
    """The least-squares sigma for fixed radii and phases.

    A coarse scan first: the cost is flat where every pose keeps all its contrast (a small sigma), where a
    local solver started on the wrong side would stall.
    """
    def residuals(params: np.ndarray) -> np.ndarray:
        return _model(float(params[0]), radii, phases) - retention

    grid = np.geomspace(FIT_BOUNDS_PX[0] * 1.01, FIT_BOUNDS_PX[1] * 0.99, 40)
    start = grid[int(np.argmin([float(np.sum(residuals(np.array([g])) ** 2)) for g in grid]))]
    return float(least_squares(residuals, x0=[start], bounds=FIT_BOUNDS_PX, x_scale=[0.1]).x[0])


def fit_spot_size(poses: Sequence[PoseReading], aperture_mm: float, *, focal_px: float | None = None,
                  nominal_focal_px: float | None = None, first_sigma_px: float = 0.6) -> SpotSizeFit:
    """Fit the optics' PSF sigma (px) to the poses' measured peak retentions; a one-line ``ValueError`` refuses.

    Each pose's radius is ``(D/2) f / (1000 d)``; its centre is refined on its pixels
    (:func:`refine_centre`) with a first guess of sigma, sigma is fitted to the peaks by least squares,
    and the centres and sigma are fitted once more with that sigma.

    Parameters
    ----------
    poses
        One reading per distance (at least :data:`MIN_POSES`, spanning :data:`MIN_DISTANCE_RATIO`).
    aperture_mm
        The hole's diameter.
    focal_px
        Impose this focal length (thermal px) instead of the one measured from the aperture's flux.
    nominal_focal_px
        The camera's nominal focal length, when known: the measured one must agree within
        :data:`MAX_FOCAL_MISMATCH`.
    first_sigma_px
        The guess the centres are first refined with (the camera model's default).

    Raises
    ------
    ValueError
        Too few or too alike distances; the measured focal far from the nominal; a pose whose flux radius
        contradicts its distance; residuals above :data:`MAX_RMS_RETENTION`; a sigma outside
        :data:`station.profile.schema.PSF_SIGMA_RANGE_PX`; poses that hardly constrain it
        (:data:`MAX_SIGMA_PER_PERCENT_PX`).
    """
    if not (math.isfinite(aperture_mm) and aperture_mm > 0):
        raise ValueError(f"aperture diameter {aperture_mm} mm: expected a positive number")
    check_distances([p.distance_m for p in poses])
    measured = measured_focal_px(poses, aperture_mm)
    if nominal_focal_px is not None and abs(measured / nominal_focal_px - 1.0) > MAX_FOCAL_MISMATCH:
        raise ValueError(
            f"the aperture's size says a focal length of {measured:.0f} px, the camera's field of view "
            f"{nominal_focal_px:.0f} px ({measured / nominal_focal_px - 1:+.0%}): check --aperture-mm (the hole's "
            "diameter, mm) and --distances (metres, camera to plate)"
        )
    for pose in poses:
        expected = aperture_mm * measured / (2000.0 * pose.distance_m)
        if abs(pose.flux_radius_px / expected - 1.0) > MAX_POSE_RADIUS_MISMATCH:
            raise ValueError(
                f"pose {pose.label}: the aperture spans {pose.flux_radius_px:.2f} px in radius where the other poses "
                f"say {expected:.2f} px at {pose.distance_m:g} m: check that --distances are in the order of the poses"
            )
    focal = measured if focal_px is None else float(focal_px)
    radii = np.array([aperture_mm * focal / (2000.0 * p.distance_m) for p in poses])
    sigma = float(first_sigma_px)
    for _ in range(2):
        centres = [refine_centre(p.read, r, sigma) for p, r in zip(poses, radii, strict=True)]
        phases = [(x - round(x), y - round(y)) for x, y in centres]
        retention = np.array([p.retention_at(x, y) for p, (x, y) in zip(poses, centres, strict=True)])
        sigma = _fit_sigma(radii, phases, retention)
    fitted = _model(sigma, radii, phases)
    res = retention - fitted
    rms = float(np.sqrt(np.mean(res**2)))
    step = 1e-3
    low_step = max(sigma - step, 1e-3)
    slope = (_model(sigma + step, radii, phases) - _model(low_step, radii, phases)) / (sigma + step - low_step)
    norm = float(np.sqrt(np.sum(slope**2)))
    fits = tuple(
        PoseFit(p.label, p.distance_m, p.frames, float(r), p.flux_radius_px, c, float(m), float(e))
        for p, r, c, m, e in zip(poses, radii, centres, retention, fitted, strict=True)
    )
    if rms > MAX_RMS_RETENTION:
        worst = max(fits, key=lambda f: abs(f.residual))
        raise ValueError(
            f"the poses do not agree on one blur (RMS residual {rms:.3f} of the contrast, at most "
            f"{MAX_RMS_RETENTION:g}; worst pose {worst.label} at {worst.distance_m:g} m: measured "
            f"{worst.measured:.3f}, fitted {worst.fitted:.3f}): check the distances, the aperture's diameter, "
            "the focus, and that the set point is what the blackbody reads"
        )
    low, high = PSF_SIGMA_RANGE_PX
    if not low <= sigma <= high:
        raise ValueError(
            f"the fitted PSF sigma {sigma:.3f} px is outside {low:g}-{high:g} px, which no working thermal camera has "
            f"({'sharper than diffraction allows' if sigma < low else 'out of focus'}): check --aperture-mm, "
            "--distances and --setpoint"
        )
    if norm == 0 or 0.01 / norm > MAX_SIGMA_PER_PERCENT_PX:
        moved = math.inf if norm == 0 else 0.01 / norm
        raise ValueError(
            f"the poses hardly see the blur (1 % of the contrast moves sigma by {moved:.2f} px, at most "
            f"{MAX_SIGMA_PER_PERCENT_PX:g}): add a pose farther away, where the aperture spans about 1 px in radius "
            f"(the farthest spans {min(radii):.2f} px)"
        )
    sigma_u = rms * math.sqrt(len(poses) / max(len(poses) - 1, 1)) / norm
    return SpotSizeFit(sigma, sigma_u, rms, focal, measured, fits)
