"""Pinhole cameras and the two-camera rig the simulator renders through.

World frame: metres, origin at the visible camera's centre, x to the right, y down, z forward (OpenCV's
camera convention), so the visible camera is the identity pose. The thermal camera sits a few
centimetres beside it with a slight misalignment, as on a real bracket; that offset is what makes
parallax, and the true registration in the written profile is derived from it rather than typed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def rotation_matrix(yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0) -> np.ndarray:
    """World-to-camera rotation for small mounting errors (yaw about y, pitch about x, roll about z)."""
    y, p, r = (math.radians(v) for v in (yaw_deg, pitch_deg, roll_deg))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass(frozen=True)
class PinholeCamera:
    """An ideal camera: ``pixel ~ K (R X + t)`` for a world point X, with square pixels.

    ``t`` is the translation in the camera frame; a camera centred at world point C has ``t = -R C``.
    """

    width: int
    height: int
    hfov_deg: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def focal_px(self) -> float:
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)

    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the usual name for the intrinsic matrix
        f = self.focal_px
        return np.array([[f, 0.0, self.width / 2.0], [0.0, f, self.height / 2.0], [0.0, 0.0, 1.0]])

    @classmethod
    def beside(cls, width: int, height: int, hfov_deg: float, centre_m, rotation: np.ndarray) -> PinholeCamera:
        centre = np.asarray(centre_m, dtype=np.float64)
        return cls(width, height, hfov_deg, rotation=rotation, translation=-rotation @ centre)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (N,3) in this camera's frame."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (N,3) to pixel coordinates (N,2); pixel centres sit at integer coordinates + 0.5."""
        cam = self.to_camera(points)
        uvw = cam @ self.K.T
        return uvw[:, :2] / uvw[:, 2:3]

    def plane_homography(self, origin, u_axis, v_axis, scale_m: float, supersample: int = 1) -> np.ndarray:
        """Homography from a texture on a plane to this camera's pixels.

        Texture pixel ``(j, i)`` is the world point ``origin + j*scale*u + i*scale*v``; for a plane, the
        whole projection is one 3x3 matrix, so rendering a billboard is a single ``warpPerspective``.
        """
        cols = np.stack(
            [np.asarray(u_axis) * scale_m, np.asarray(v_axis) * scale_m, np.asarray(origin, dtype=np.float64)],
            axis=1,
        )
        m = self.rotation @ cols
        m[:, 2] += self.translation
        return self.supersampled_K(supersample) @ m

    def ray_directions(self, supersample: int = 1) -> np.ndarray:
        """World-frame unit-free ray directions (H*s, W*s, 3) through each (sub)pixel centre."""
        s = supersample
        uu, vv = np.meshgrid(np.arange(self.width * s), np.arange(self.height * s))
        pix = np.stack([uu, vv, np.ones_like(uu)], axis=-1).astype(np.float64)
        cam = pix @ np.linalg.inv(self.supersampled_K(s)).T
        return cam @ self.rotation  # camera frame -> world frame (R^T x, written row-wise)

    def supersampled_K(self, s: int) -> np.ndarray:  # noqa: N802
        """Intrinsics of an s-times finer grid whose s x s blocks average to this camera's pixels.

        Pixel centres sit at integer coordinates (OpenCV's convention), so pixel k covers fine pixels
        k*s .. k*s+s-1, whose centres average to k*s + (s-1)/2.
        """
        scale = np.array([[s, 0, (s - 1) / 2.0], [0, s, (s - 1) / 2.0], [0, 0, 1.0]])
        return scale @ self.K

    @property
    def centre(self) -> np.ndarray:
        return -self.rotation.T @ self.translation


@dataclass(frozen=True)
class CameraRig:
    visible: PinholeCamera
    thermal: PinholeCamera

    def visible_to_thermal(self, uv: np.ndarray, depth_m: np.ndarray | float) -> np.ndarray:
        """Where visible pixels at the given depth (along the visible camera's z) land in thermal pixels."""
        uv = np.atleast_2d(np.asarray(uv, dtype=np.float64))
        depth = np.broadcast_to(np.asarray(depth_m, dtype=np.float64), (len(uv),))
        rays = np.c_[uv, np.ones(len(uv))] @ np.linalg.inv(self.visible.K).T
        world = rays * depth[:, None]
        return self.thermal.project(world)

    def homography_at(self, depth_m: float) -> np.ndarray:
        """The exact visible->thermal homography for points on the plane z = depth_m, normalised."""
        h = self.thermal.plane_homography(
            origin=np.array([0.0, 0.0, depth_m]), u_axis=np.array([1.0, 0, 0]), v_axis=np.array([0, 1.0, 0]),
            scale_m=1.0,
        )
        # plane coords (X, Y) in metres at depth d relate to visible pixels by X = (u - cx) d / f.
        f, cx, cy = self.visible.focal_px, self.visible.width / 2.0, self.visible.height / 2.0
        vis_to_plane = np.array([[depth_m / f, 0, -cx * depth_m / f], [0, depth_m / f, -cy * depth_m / f], [0, 0, 1]])
        out = h @ vis_to_plane
        return out / out[2, 2]

    def parallax_px_m(self, reference_distance_m: float, near_m: float = 0.6) -> np.ndarray:
        """Thermal-pixel shift per (1/d - 1/d_ref), read off at the image centre."""
        centre = np.array([[self.visible.width / 2.0, self.visible.height / 2.0]])
        at_ref = self.visible_to_thermal(centre, reference_distance_m)[0]
        at_near = self.visible_to_thermal(centre, near_m)[0]
        return (at_near - at_ref) / (1.0 / near_m - 1.0 / reference_distance_m)
