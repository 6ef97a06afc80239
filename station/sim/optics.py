"""What a thermal camera's lens and detector do to the radiance in front of it.

A small hot spot (the inner canthus: a few millimetres across, one to three pixels at the measuring
distance) reads low through any real camera: the lens spreads each point of the scene over a blur spot,
and each detector pixel adds up the radiance falling on its own square, so the spot's peak is averaged
with the cooler skin around it. How much it loses depends on how many pixels span the spot and how far
it stands above its surroundings (the spot-size, or size-of-source, effect). The simulator renders this
from the camera's physical parameters rather than from a blur width chosen to look right:

1. **Radiance, finely sampled.** The scene is drawn in in-band signal (proportional to radiance: optics
   and pixels add radiance, not temperature) on a grid ``oversample`` times finer than the detector,
   an odd factor so every detector pixel's centre falls on a fine sample.
2. **Defocus per surface.** The camera is focused at one distance (``focus_m``); a surface at another
   distance is spread over a geometric blur disc (a pillbox) whose diameter follows from the thin-lens
   equation: :func:`defocus_diameter_um`. The renderer applies it per surface, before compositing, so
   a face at 0.6 m and the room behind it are each blurred by their own disc.
3. **The lens-and-pixel kernel** (:func:`pixel_kernel`), the same for the whole frame:

   - *diffraction* through a circular aperture at the lens's f-number, an Airy pattern for every
     wavelength of the 8-14 µm band, weighted by the in-band radiance of skin at 35 °C (a flat detector
     response across the band is assumed): its optical transfer function is the analytic one of a
     circular pupil, :func:`diffraction_otf`;
   - *residual aberrations* of a fast, cheap lens, a Gaussian of ``aberration_um`` RMS radius: an
     **assumption** (FLIR publishes no MTF for these lenses); 0 makes the lens diffraction-limited;
   - the *pixel's footprint*: a square of side ``sqrt(fill_factor) * pitch`` over which the detector
     integrates, centred on the pixel (``fill_factor`` is an **assumption**, 0.8, typical of
     microbolometers; 1.0 makes it the whole pitch);
   - the fine grid's own cells (each fine sample stands for the average over its cell).

   Multiplied as transfer functions and brought back to the fine grid, they give one kernel that sums
   to 1. It is cut to ``psf_radius_px`` detector pixels around its centre and renormalised: the Airy
   rings beyond (about 5 % of the energy at f/1.1 beyond 3 pixels) are left out, which is where this
   model is kinder than a real lens (a real station's blackbody calibration absorbs the far rings'
   steady share; a small spot surrounded by skin about as warm as the rest of the face loses little
   to them).
4. **Pixels** (:func:`sample_pixels`): the convolved fine image read at each detector pixel's centre,
   then turned into temperature and given the sensor's noise, drift and quantisation (:mod:`sensors`).

Defocus and diffraction are combined by convolution, the usual approximation when neither dominates
by far. Motion blur from the detector's thermal time constant (about 10 ms) is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: The long-wave band microbolometers like the Lepton's and Boson's respond to (Lepton datasheet:
#: "nominal response wavelength band (from 8 to 14 microns)").
BAND_UM = (8.0, 14.0)
#: The surface whose spectrum weights the wavelengths: skin near the canthus (35 °C).
WEIGHTING_C = 35.0
_WAVELENGTHS = 25

_H, _C, _K = 6.62607015e-34, 2.99792458e8, 1.380649e-23


@dataclass(frozen=True)
class Optics:
    """A thermal camera's lens and detector, as :func:`pixel_kernel` and :func:`defocus_diameter_um` use them.

    Attributes
    ----------
    pitch_um
        Detector pixel pitch.
    focal_mm
        Effective focal length (the pinhole focal length in pixels times the pitch).
    f_number
        Focal length over the entrance pupil's diameter.
    fill_factor
        Share of each pixel's square that is sensitive (a centred square of that area).
    aberration_um
        RMS radius of a Gaussian standing for the lens's residual aberrations.
    focus_m
        Object distance the lens is focused at.
    oversample
        Fine samples per detector pixel, per axis (odd).
    psf_radius_px
        How far the kernel reaches, in detector pixels, before it is cut.
    """

    pitch_um: float
    focal_mm: float
    f_number: float
    fill_factor: float = 0.8
    aberration_um: float = 3.0
    focus_m: float = 1.0
    oversample: int = 5
    psf_radius_px: float = 3.0

    def __post_init__(self) -> None:
        if self.oversample < 1 or self.oversample % 2 == 0:
            raise ValueError(f"oversample: expected an odd whole number, got {self.oversample}")
        if not 0.0 < self.fill_factor <= 1.0:
            raise ValueError(f"fill_factor: expected a share above 0 and at most 1, got {self.fill_factor}")
        if self.f_number <= 0 or self.focal_mm <= 0 or self.pitch_um <= 0 or self.focus_m <= 0:
            raise ValueError("pitch_um, focal_mm, f_number and focus_m must be positive")

    @property
    def fine_um(self) -> float:
        """Side of one fine sample on the detector."""
        return self.pitch_um / self.oversample


def band_weights(band_um: tuple[float, float] = BAND_UM, celsius: float = WEIGHTING_C,
                 n: int = _WAVELENGTHS) -> tuple[np.ndarray, np.ndarray]:
    """Wavelengths (µm) across the band and their shares of a blackbody's in-band radiance at ``celsius``.

    Planck's spectral radiance, ``1 / (λ^5 (exp(hc / λkT) - 1))`` up to constants, sampled evenly across
    the band; a flat detector response is assumed. At 35 °C the weighted mean wavelength is 10.8 µm.
    """
    lam = np.linspace(band_um[0], band_um[1], n)
    metres = lam * 1e-6
    radiance = 1.0 / (metres**5 * np.expm1(_H * _C / (metres * _K * (celsius + 273.15))))
    return lam, radiance / radiance.sum()


def diffraction_otf(rho_per_um: np.ndarray, f_number: float, band_um: tuple[float, float] = BAND_UM) -> np.ndarray:
    """Polychromatic diffraction-limited OTF of a circular, unobstructed pupil at spatial frequency ``rho``.

    For one wavelength, ``(2/π)(acos ν - ν sqrt(1 - ν²))`` with ``ν = ρ λ N`` (zero from the cutoff
    ``1/(λN)`` on): the transfer function whose point spread is the Airy pattern. The band's
    wavelengths are weighted by :func:`band_weights`.
    """
    lam, weight = band_weights(band_um)
    out = np.zeros_like(rho_per_um, dtype=np.float64)
    for wavelength, w in zip(lam, weight, strict=True):
        nu = np.clip(rho_per_um * wavelength * f_number, 0.0, 1.0)
        out += w * (2.0 / np.pi) * (np.arccos(nu) - nu * np.sqrt(1.0 - nu * nu))
    return out


@lru_cache(maxsize=16)
def pixel_kernel(optics: Optics) -> np.ndarray:
    """The lens-and-pixel kernel on the fine grid: (2r+1, 2r+1) float32, centred, summing to 1.

    Built as a product of transfer functions (diffraction, aberrations, the pixel's footprint, the fine
    cell) on a frequency grid wide enough that the kernel does not wrap, brought back by an inverse FFT,
    cut to ``psf_radius_px`` detector pixels plus the footprint's half-width, and renormalised. Every
    factor is symmetric, so convolution and correlation are the same.
    """
    s, d = optics.oversample, optics.fine_um
    aperture_um = math.sqrt(optics.fill_factor) * optics.pitch_um
    r = int(math.ceil((optics.psf_radius_px + aperture_um / optics.pitch_um / 2.0) * s))
    m = 1 << int(math.ceil(math.log2(8 * (2 * r + 1))))  # the grid spans 8x the kernel: its tails do not wrap back
    f = np.fft.fftfreq(m, d=d)  # cycles per µm
    fx, fy = np.meshgrid(f, f)
    rho = np.hypot(fx, fy)
    otf = diffraction_otf(rho, optics.f_number)
    otf *= np.exp(-2.0 * np.pi**2 * optics.aberration_um**2 * rho**2)
    otf *= np.sinc(aperture_um * fx) * np.sinc(aperture_um * fy)
    otf *= np.sinc(d * fx) * np.sinc(d * fy)
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(otf)))
    c = m // 2
    kernel = kernel[c - r : c + r + 1, c - r : c + r + 1]
    kernel = np.clip(kernel, 0.0, None)  # ringing of the truncated transfer function, ~1e-6
    return (kernel / kernel.sum()).astype(np.float32)


def encircled_energy(optics: Optics, radius_px: float) -> float:
    """Share of :func:`pixel_kernel`'s energy within ``radius_px`` detector pixels of its centre."""
    kernel = pixel_kernel(optics)
    r = kernel.shape[0] // 2
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1] / optics.oversample
    return float(kernel[np.hypot(xx, yy) <= radius_px].sum())


def defocus_diameter_um(optics: Optics, distance_m: float) -> float:
    """Geometric blur disc on the detector for a point at ``distance_m`` (thin lens focused at ``focus_m``).

    The detector sits at the image distance of the focus plane, ``v_f = f s_f / (s_f - f)``; a point at
    ``d`` focuses at ``v_d = f d / (d - f)``, and the cone of light through the pupil (diameter ``f/N``)
    crosses the detector in a disc of diameter ``(f/N) |v_d - v_f| / v_d``. For ``d`` and ``s_f`` far
    beyond ``f`` this is ``f² |1/s_f - 1/d| / N``: it grows with the square of the focal length, so a
    Lepton (1.8 mm) is sharp from 0.3 m to infinity, while a 9 mm lens focused at 1 m spreads a face
    at 0.6 m over nearly two of its 25 µm pixels.
    """
    f = optics.focal_mm * 1e-3
    d = max(float(distance_m), 2 * f)
    v_f = f * optics.focus_m / (optics.focus_m - f)
    v_d = f * d / (d - f)
    return float((f / optics.f_number) * abs(v_d - v_f) / v_d * 1e6)


def defocus_in_object_plane_m(optics: Optics, distance_m: float) -> float:
    """:func:`defocus_diameter_um` carried back to the surface at ``distance_m``: the disc on the surface
    whose image is that blur (magnification ``v_f / d``). A planar surface facing the camera can be
    blurred in its own plane by this disc, which is what defocus does to it."""
    f = optics.focal_mm * 1e-3
    v_f = f * optics.focus_m / (optics.focus_m - f)
    return defocus_diameter_um(optics, distance_m) * 1e-6 * distance_m / v_f


def pillbox(diameter: float, subsamples: int = 8) -> np.ndarray | None:
    """A uniform disc of ``diameter`` samples as a kernel summing to 1, each cell weighted by how much of
    it the disc covers (so the blur grows smoothly with the diameter); ``None`` below one sample, where the
    disc stays inside the sample it is centred on and changes nothing."""
    if diameter < 1.0:
        return None
    radius = diameter / 2.0
    n = int(math.ceil(radius + 0.5))
    offsets = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    centres = np.arange(-n, n + 1, dtype=np.float64)
    fine = (centres[:, None] + offsets[None, :]).ravel()
    inside = (np.hypot(*np.meshgrid(fine, fine)) <= radius).astype(np.float64)
    size = 2 * n + 1
    cover = inside.reshape(size, subsamples, size, subsamples).mean(axis=(1, 3))
    return (cover / cover.sum()).astype(np.float32)


def defocus(image: np.ndarray, diameter: float) -> np.ndarray:
    """``image`` (H, W) or (H, W, C) blurred by a pillbox of ``diameter`` of its own samples (edges replicated)."""
    kernel = pillbox(diameter)
    if kernel is None:
        return image
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def sample_pixels(fine: np.ndarray, kernel: np.ndarray, oversample: int) -> np.ndarray:
    """The fine image convolved with ``kernel`` and read at each detector pixel's centre: (H, W) float32.

    ``fine`` is (H*s, W*s); pixel (i, j) covers fine samples ``i*s .. i*s+s-1`` and its centre is fine
    sample ``i*s + s//2``. Only the values at the centres are needed, so the convolution is split into
    its s² phases: the fine samples ``p, p+s, p+2s, ...`` of each row and column phase form a
    detector-sized image, correlated with the kernel's taps that fall on that phase. That is s² small
    filters instead of one large one on the fine grid, with the same result.
    """
    s = oversample
    h, w = fine.shape[0] // s, fine.shape[1] // s
    r = kernel.shape[0] // 2
    c = s // 2
    padded = cv2.copyMakeBorder(np.ascontiguousarray(fine, dtype=np.float32), r, r, r, r, cv2.BORDER_REPLICATE)
    out = np.zeros((h, w), np.float32)
    q_max = (c + 2 * r) // s
    for p in range(s):
        rows = [(q, q * s + p - c) for q in range(q_max + 1) if 0 <= q * s + p - c <= 2 * r]
        if not rows:
            continue
        for p2 in range(s):
            cols = [(q, q * s + p2 - c) for q in range(q_max + 1) if 0 <= q * s + p2 - c <= 2 * r]
            if not cols:
                continue
            taps = np.zeros((q_max + 1, q_max + 1), np.float32)
            for qi, a in rows:
                for qj, b in cols:
                    taps[qi, qj] = kernel[a, b]
            phase = np.ascontiguousarray(padded[p::s, p2::s])
            filtered = cv2.filter2D(phase, -1, taps, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
            out += filtered[:h, :w]
    return out
