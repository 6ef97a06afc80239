"""Placing billboards in the world and compositing them into a camera's image.

A planar texture maps to a camera through one homography, so each layer costs a single
``warpPerspective`` restricted to the box it covers. Layers carry premultiplied values and alpha, so
bilinear sampling at their edges blends correctly, and for the thermal camera the values are in-band
signal, which is what pixels and optics actually average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from station.sim.appearance import Texture
from station.sim.camera import PinholeCamera
from station.sim.optics import defocus


@dataclass(frozen=True)
class Billboard:
    """A texture ready to draw: premultiplied mip levels (finest first), and its texel size at level 0."""

    levels: tuple[np.ndarray, ...]
    texel_m: float
    origin_px: tuple[float, float]

    @classmethod
    def from_values(cls, values: np.ndarray, alpha: np.ndarray, texture: Texture, n_levels: int = 4,
                    defocus_texels: float = 0.0) -> Billboard:
        """Build from per-texel values (h, w) or (h, w, C) and alpha, with a pyramid against aliasing.

        Faces 3 m away shrink a 1 mm texel to a fifth of a pixel; sampling the full-resolution texture
        there would shimmer from frame to frame, so far layers sample a pre-filtered coarser level.

        ``defocus_texels``: the diameter of the lens's blur disc carried back onto this plane
        (:func:`~station.sim.optics.defocus_in_object_plane_m`), in texels. For a plane facing the camera,
        blurring the premultiplied texture (values and alpha alike) by that disc is what defocus does to
        its image, edges included: they fade into what lies behind when composited.
        """
        if values.ndim == 2:
            values = values[..., None]
        base = np.dstack([values * alpha[..., None], alpha]).astype(np.float32)
        base = defocus(base, defocus_texels)
        levels = [base]
        for _ in range(n_levels - 1):
            if min(levels[-1].shape[:2]) < 16:
                break
            levels.append(cv2.pyrDown(levels[-1]))
        return cls(tuple(levels), texture.texel_m, texture.origin_px)


def billboard_axes(yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The plane's right and down directions for a head turned by yaw about the vertical."""
    yaw = math.radians(yaw_deg)
    return np.array([math.cos(yaw), 0.0, math.sin(yaw)]), np.array([0.0, 1.0, 0.0])


def draw(
    canvas: np.ndarray,
    board: Billboard,
    camera: PinholeCamera,
    anchor_m: np.ndarray,
    yaw_deg: float,
    supersample: int = 1,
) -> None:
    """Composite a billboard whose texel ``origin_px`` sits at the world point ``anchor_m``."""
    u, v = billboard_axes(yaw_deg)
    depth = float(camera.to_camera(anchor_m[None])[0, 2])
    if depth <= 0.05:
        return
    texels_per_px = depth / (camera.focal_px * supersample * board.texel_m)
    level = int(np.clip(math.floor(math.log2(max(texels_per_px, 1.0))), 0, len(board.levels) - 1))
    layer = board.levels[level]
    texel = board.texel_m * (2**level)
    # pyrDown halves sizes: texel k at level L covers level-0 texels around 2^L k (+ half a texel offset).
    oj, oi = board.origin_px
    oj_l, oi_l = (oj + 0.5) / (2**level) - 0.5, (oi + 0.5) / (2**level) - 0.5
    origin = anchor_m - oj_l * texel * u - oi_l * texel * v
    h = camera.plane_homography(origin, u, v, texel, supersample)
    _composite(canvas, layer, h)


def _composite(canvas: np.ndarray, layer: np.ndarray, h: np.ndarray) -> None:
    lh, lw = layer.shape[:2]
    corners = np.array([[0, 0, 1], [lw - 1, 0, 1], [lw - 1, lh - 1, 1], [0, lh - 1, 1]], dtype=np.float64).T
    proj = h @ corners
    if np.any(proj[2] <= 0):
        return
    pts = proj[:2] / proj[2]
    height, width = canvas.shape[:2]
    x0 = max(int(math.floor(pts[0].min())) - 1, 0)
    y0 = max(int(math.floor(pts[1].min())) - 1, 0)
    x1 = min(int(math.ceil(pts[0].max())) + 2, width)
    y1 = min(int(math.ceil(pts[1].max())) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return
    shift = np.array([[1.0, 0, -x0], [0, 1.0, -y0], [0, 0, 1.0]])
    warped = cv2.warpPerspective(
        layer, shift @ h, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if warped.ndim == 2:
        warped = warped[..., None]
    alpha = warped[..., -1:]
    roi = canvas[y0:y1, x0:x1]
    if roi.ndim == 2:
        roi *= 1.0 - alpha[..., 0]
        roi += warped[..., 0]
    else:
        roi *= 1.0 - alpha
        roi += warped[..., :-1]
