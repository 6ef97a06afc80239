"""A technician's calibration session in software: a target held at several poses before both cameras.

Registering the visible camera onto the thermal one needs points both cameras see: a printed board
with a heated pattern, shown at several distances and angles. This module renders such a session
through the very rig the screening simulator uses (:func:`~station.sim.simulator.build_rig`), so the
truth it writes (every feature's world point and its pixel in each camera) is the geometry the
screening recordings are made with, and a registration fitted on it can be checked exactly.

Two boards, each sized so plain OpenCV finds it in both cameras over the pose range (``cv2.aruco``
on the visible grey image and on the inverted thermal image; ``cv2.findChessboardCornersSB``):

* ``aruco``: a 2 x 2 :class:`cv2.aruco.GridBoard` of ``DICT_ARUCO_ORIGINAL`` markers, 203 mm each (29 mm
  cells), one cell apart, with one cell of quiet zone: a 493 mm square, about A2. A marker is 7 x 7
  cells and a detector needs about 3 pixels a cell, so on the 160-pixel Lepton the markers must be
  big, while the whole board must still fit the Boson's narrower view at 0.8 m; four markers this big
  do both. Its cells span 3 pixels to about 1.3 m on the Lepton (farther, ``cv2.aruco`` still finds the
  markers, but their corners stray past half a pixel) and 3 m on the Boson; poses are kept within that
  reach (:attr:`TargetSimulation.distance_range_m`).
* ``checkerboard``: 6 x 5 squares of 75 mm (5 x 4 inner corners) with a 50 mm quiet zone, 550 x 475 mm.
  Its squares still span 4.5 Lepton pixels at 2.2 m and 25° of tilt. One side even and the other odd
  makes the pattern lopsided under a half turn, so the corner order is fixed to the board; its top-left
  square is white, which makes ``findChessboardCornersSB``'s order the board's own rows from the top
  left (the classic ``findChessboardCorners`` reports the same corners in reverse).

Visible: black print on white paper, lit like the room. Thermal: the print is a heater at
:data:`HEATED_C` on a board near the room's temperature, rendered in Planck signal space exactly as
:meth:`~station.sim.simulator.Simulation.apparent_temperature` renders a scene, through the same lens
(defocus for the board's distance, then the lens-and-pixel kernel).

Each pose is held still for one thermal frame and, 4 ms later, one visible frame; poses are 1 s apart.
Every frame is a pure function of (seed, stream, index), like the screening simulator's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from station.profile.schema import CalibrationProfile, Radiometry
from station.sim import appearance, optics
from station.sim.camera import CameraRig, PinholeCamera, rotation_matrix
from station.sim.sensors import SENSORS
from station.sim.simulator import (
    VISIBLE_SIZE,
    SceneRendering,
    true_registration,
    write_scene_recording,
)
from station.types import Frame, Stream

KINDS = ("aruco", "checkerboard")
TEXEL_M = 0.001  # the boards are drawn at 1 mm; every edge of their pattern falls on a texel edge

ARUCO_DICTIONARY = "DICT_ARUCO_ORIGINAL"
ARUCO_MARKERS = (2, 2)  # columns, rows
ARUCO_CELL_M = 0.029  # one bit; a marker is 7 cells across (5 x 5 bits inside a one-cell black border)
ARUCO_MARKER_CELLS = 7
ARUCO_SEPARATION_CELLS = 1
ARUCO_MARGIN_CELLS = 1

CHECKER_SQUARES = (6, 5)  # columns, rows: one even and one odd, so a half turn does not map it onto itself
CHECKER_SQUARE_M = 0.075
CHECKER_MARGIN_M = 0.05

# Thermal pixels the smallest feature (an ArUco cell, a checker square) must span at the farthest pose.
MIN_FEATURE_PX = {"aruco": 3.0, "checkerboard": 4.5}
FIT_MARGIN = 0.04  # the board keeps this share of each image's width clear of every image edge
MAX_ROLL_DEG = 12.0
PLACEMENT_SHRINK = 0.9  # a pose that does not fit is drawn in towards the centre and flattened by this
PLACEMENT_TRIES = 60

VISIBLE_SUPERSAMPLE = 3  # the print's edges are what is measured: render them as a camera integrates them
PAPER_BGR = (0.86, 0.88, 0.89)
INK_BGR = (0.06, 0.06, 0.07)
HEATED_C = 38.0  # the heater behind the printed pattern
BOARD_ABOVE_AMBIENT_C = 0.5  # the board warms a little around its heater
TARGET_EMISSIVITY = 0.95

POSE_PERIOD_S = 1.0
VISIBLE_AFTER_THERMAL_S = 0.004
VISIBLE_FPS = 15.0  # the visible camera's nominal rate, as in the screening simulator
REFERENCE_DISTANCE_M = 1.0
PYRAMID_LEVELS = 4


@dataclass(frozen=True)
class TargetConfig:
    """Everything that decides a simulated calibration session; the same config always gives the same bytes."""

    kind: str = "aruco"
    poses: int = 8
    seed: int = 0
    thermal_camera: str = "lepton"
    min_distance_m: float = 0.8
    max_distance_m: float = 2.2
    max_tilt_deg: float = 25.0
    station_id: str = "simulated-entrance"
    recorded_at: str = "2026-11-23T10:00:00Z"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.thermal_camera not in SENSORS:
            raise ValueError(f"thermal_camera: expected one of {', '.join(SENSORS)}, got {self.thermal_camera!r}")
        if self.poses < 1:
            raise ValueError(f"poses: expected at least 1, got {self.poses}")
        if not 0.3 <= self.min_distance_m <= self.max_distance_m <= 5.0:
            raise ValueError(
                f"min_distance_m, max_distance_m: expected 0.3 <= min <= max <= 5 m, "
                f"got {self.min_distance_m} and {self.max_distance_m}"
            )
        if not 0.0 <= self.max_tilt_deg <= 45.0:
            raise ValueError(f"max_tilt_deg: expected 0 to 45°, got {self.max_tilt_deg}")


# ---------------------------------------------------------------------------------------------- boards
@dataclass(frozen=True)
class Board:
    """A calibration board: its printed pattern and the features a detector reports on it.

    Board coordinates are metres from the board's top-left corner, x to the right, y down, as the
    board is printed. ``ink`` (rows, cols) is 1 where the pattern is printed (and heated), at
    :data:`TEXEL_M`: texel ``(i, j)`` covers ``[j, j+1) x [i, i+1)`` texels of the board.
    """

    kind: str
    ink: np.ndarray
    points_m: np.ndarray  # (N, 2) features in board metres, in the detector's order
    point_ids: tuple[int, ...]
    feature_m: float  # the smallest feature a detector must resolve
    geometry: dict

    @property
    def size_m(self) -> tuple[float, float]:
        """Width and height, quiet zone included."""
        return self.ink.shape[1] * TEXEL_M, self.ink.shape[0] * TEXEL_M

    @property
    def outline_m(self) -> np.ndarray:
        """The board's four corners (4, 2), clockwise from the top left."""
        w, h = self.size_m
        return np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])


def _texels(metres: float, tolerance_m: float = 1e-9) -> int:
    """Whole texels in a length; OpenCV's float32 board geometry is snapped back onto the texel grid."""
    n = round(metres / TEXEL_M)
    if abs(n * TEXEL_M - metres) > tolerance_m:
        raise ValueError(f"{metres} m is not a whole number of {TEXEL_M} m texels")
    return n


def aruco_dictionary() -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, ARUCO_DICTIONARY))


def aruco_grid() -> cv2.aruco.GridBoard:
    """The board as OpenCV knows it: hand it to ``cv2.aruco`` pose and calibration routines as is."""
    cell = ARUCO_CELL_M
    return cv2.aruco.GridBoard(ARUCO_MARKERS, ARUCO_MARKER_CELLS * cell, ARUCO_SEPARATION_CELLS * cell,
                               aruco_dictionary())


def aruco_board() -> Board:
    """The ArUco grid, drawn from the dictionary's own bits and placed where ``GridBoard`` puts them.

    Features are every marker's four outer corners in ``cv2.aruco``'s order (top-left, top-right,
    bottom-right, bottom-left of the marker as printed); a feature's id is ``marker_id * 4 + corner``.
    """
    grid, dictionary = aruco_grid(), aruco_dictionary()
    cell_px, margin_m = _texels(ARUCO_CELL_M), ARUCO_MARGIN_CELLS * ARUCO_CELL_M
    cols, rows = ARUCO_MARKERS
    side_cells = [n * ARUCO_MARKER_CELLS + (n - 1) * ARUCO_SEPARATION_CELLS + 2 * ARUCO_MARGIN_CELLS
                  for n in (cols, rows)]
    ink = np.zeros((side_cells[1] * cell_px, side_cells[0] * cell_px), np.float32)
    points, ids = [], []
    for marker_id, corners in zip(grid.getIds().ravel(), grid.getObjPoints(), strict=True):
        corner_texels = [[_texels(float(v) + margin_m, 1e-6) for v in corner[:2]] for corner in corners]
        corners_m = np.asarray(corner_texels, np.float64) * TEXEL_M
        x0, y0 = corner_texels[0]
        bits = cv2.aruco.generateImageMarker(dictionary, int(marker_id), ARUCO_MARKER_CELLS) == 0
        side = ARUCO_MARKER_CELLS * cell_px
        ink[y0 : y0 + side, x0 : x0 + side] = np.kron(bits, np.ones((cell_px, cell_px))).astype(np.float32)
        points.append(corners_m)
        ids.extend(int(marker_id) * 4 + corner for corner in range(4))
    geometry = {
        "dictionary": ARUCO_DICTIONARY, "markers": list(ARUCO_MARKERS),
        "marker_ids": [int(v) for v in grid.getIds().ravel()],
        "marker_m": round(ARUCO_MARKER_CELLS * ARUCO_CELL_M, 6), "cell_m": ARUCO_CELL_M,
        "separation_m": round(ARUCO_SEPARATION_CELLS * ARUCO_CELL_M, 6), "margin_m": round(margin_m, 6),
        "first_marker_corner_m": [round(margin_m, 6), round(margin_m, 6)],
    }
    return _finish("aruco", ink, np.vstack(points), ids, ARUCO_CELL_M, geometry)


def checkerboard() -> Board:
    """The checkerboard, its top-left square white; features are the inner corners in the order
    ``cv2.findChessboardCornersSB`` reports them: row by row from the board's top left."""
    cols, rows = CHECKER_SQUARES
    square, margin = _texels(CHECKER_SQUARE_M), _texels(CHECKER_MARGIN_M)
    squares = (np.add.outer(np.arange(rows), np.arange(cols)) % 2 == 1).astype(np.float32)
    ink = np.zeros((rows * square + 2 * margin, cols * square + 2 * margin), np.float32)
    ink[margin : margin + rows * square, margin : margin + cols * square] = np.kron(squares, np.ones((square, square)))
    yy, xx = np.mgrid[1:rows, 1:cols]
    points = CHECKER_MARGIN_M + CHECKER_SQUARE_M * np.c_[xx.ravel(), yy.ravel()].astype(np.float64)
    geometry = {
        "squares": list(CHECKER_SQUARES), "inner_corners": [cols - 1, rows - 1], "square_m": CHECKER_SQUARE_M,
        "margin_m": CHECKER_MARGIN_M, "top_left_square": "white",
        "first_corner_m": [round(float(v), 6) for v in points[0]],
    }
    return _finish("checkerboard", ink, points, list(range(len(points))), CHECKER_SQUARE_M, geometry)


def _finish(kind: str, ink: np.ndarray, points: np.ndarray, ids: list[int], feature_m: float, geometry: dict) -> Board:
    size = (ink.shape[1] * TEXEL_M, ink.shape[0] * TEXEL_M)
    geometry = {"size_m": [round(v, 6) for v in size], **geometry}
    return Board(kind, ink, points, tuple(ids), feature_m, geometry)


BOARDS: dict[str, Callable[[], Board]] = {"aruco": aruco_board, "checkerboard": checkerboard}


# ---------------------------------------------------------------------------------------------- poses
@dataclass(frozen=True)
class TargetPose:
    """Where the board is held: its centre in world metres and how it is turned.

    The board's right, down and normal directions are the columns of ``Ry(yaw) Rx(pitch) Rz(roll)``
    (the matrices of :func:`~station.sim.camera.rotation_matrix`): roll turns it in its own plane
    (positive: clockwise as the camera sees it), pitch tips it about its horizontal axis (positive:
    the bottom edge away from the cameras), yaw turns it about the vertical (positive: the right edge
    towards the cameras).
    """

    centre_m: tuple[float, float, float]
    yaw_deg: float
    pitch_deg: float
    roll_deg: float

    @property
    def axes(self) -> np.ndarray:
        """(3, 3): the board's right, down and normal directions in the world, as columns."""
        return (rotation_matrix(yaw_deg=self.yaw_deg) @ rotation_matrix(pitch_deg=self.pitch_deg)
                @ rotation_matrix(roll_deg=self.roll_deg))

    def to_world(self, board_xy_m: np.ndarray, board_size_m: tuple[float, float]) -> np.ndarray:
        """Board points (N, 2), metres from its top-left corner, as world points (N, 3)."""
        local = np.asarray(board_xy_m, np.float64) - np.asarray(board_size_m) / 2.0
        axes = self.axes
        return np.asarray(self.centre_m) + local[:, :1] * axes[:, 0] + local[:, 1:2] * axes[:, 1]


def fits(rig: CameraRig, corners_world: np.ndarray) -> bool:
    """Are these world points in front of both cameras and inside both images, clear of the edges?"""
    for cam in (rig.visible, rig.thermal):
        if np.any(cam.to_camera(corners_world)[:, 2] <= 0.05):
            return False
        px = cam.project(corners_world)
        margin = FIT_MARGIN * cam.width
        inside = (px[:, 0] >= margin) & (px[:, 0] <= cam.width - 1 - margin)
        inside &= (px[:, 1] >= margin) & (px[:, 1] <= cam.height - 1 - margin)
        if not inside.all():
            return False
    return True


def view_centre_m(rig: CameraRig, distance_m: float) -> np.ndarray:
    """The point at this depth halfway between the two cameras' optical axes: the middle of their overlap."""
    thermal = rig.thermal
    axis = thermal.rotation.T @ np.array([0.0, 0.0, 1.0])
    on_thermal_axis = thermal.centre + axis * (distance_m - thermal.centre[2]) / axis[2]
    return (np.array([0.0, 0.0, distance_m]) + on_thermal_axis) / 2.0


def nearest_fit_m(board: Board, rig: CameraRig) -> float:
    """The nearest distance (cm steps) at which the board, square to the cameras and centred, fits both views."""
    for cm in range(30, 501):
        d = cm / 100.0
        pose = TargetPose(tuple(view_centre_m(rig, d)), 0.0, 0.0, 0.0)
        if fits(rig, pose.to_world(board.outline_m, board.size_m)):
            return d
    raise ValueError(f"{board.kind}: the board fits neither view at any distance up to 5 m")


def farthest_resolved_m(board: Board, rig: CameraRig, kind: str, max_tilt_deg: float) -> float:
    """The farthest distance at which the board's smallest feature, tilted fully, still spans
    :data:`MIN_FEATURE_PX` pixels in the coarser camera (always the thermal one)."""
    focal = min(rig.visible.focal_px, rig.thermal.focal_px)
    return focal * board.feature_m * math.cos(math.radians(max_tilt_deg)) / MIN_FEATURE_PX[kind]


def spread_distances(rng: np.random.Generator, n: int, near_m: float, far_m: float) -> np.ndarray:
    """n distances covering [near, far]: both ends, and the rest evenly between with a little jitter."""
    if n == 1:
        return np.array([(near_m + far_m) / 2.0])
    base = np.linspace(near_m, far_m, n)
    jitter = rng.uniform(-0.25, 0.25, n) * (far_m - near_m) / (n - 1)
    jitter[[0, -1]] = 0.0
    return np.clip(base + jitter, near_m, far_m)


def place_board(rng: np.random.Generator, board: Board, rig: CameraRig, distance_m: float,
                max_tilt_deg: float) -> TargetPose:
    """One pose at this distance: off centre, tilted and rolled at random, yet wholly inside both views.

    The random draw is made once; while the board does not fit, it is moved towards the middle of the
    views and flattened a little, so a near pose is still as tilted as it can be, and every pose uses
    the same number of draws (pose k does not depend on how hard pose k-1 was to fit).
    """
    yaw, pitch = rng.uniform(-1.0, 1.0, 2) * max_tilt_deg
    roll = rng.uniform(-1.0, 1.0) * MAX_ROLL_DEG
    offset = rng.uniform(-1.0, 1.0, 2) * distance_m * np.array(VISIBLE_SIZE) / 2.0 / rig.visible.focal_px
    middle = view_centre_m(rig, distance_m)
    for k in range(PLACEMENT_TRIES + 1):
        shrink = PLACEMENT_SHRINK**k if k < PLACEMENT_TRIES else 0.0
        centre = middle + np.r_[offset * shrink, 0.0]
        pose = TargetPose(
            tuple(round(float(v), 6) for v in centre),
            round(float(yaw * shrink), 3), round(float(pitch * shrink), 3), round(float(roll * shrink), 3),
        )
        if fits(rig, pose.to_world(board.outline_m, board.size_m)):
            return pose
    raise ValueError(f"{board.kind}: the board does not fit both views at {distance_m:.2f} m")


# ---------------------------------------------------------------------------------------------- rendering
def pyramid(values: np.ndarray, levels: int = PYRAMID_LEVELS) -> tuple[tuple[np.ndarray, ...], int]:
    """Premultiplied (value..., alpha) levels of an opaque board, finest first, and the transparent padding.

    The padding lets the coarser levels fade the board's edge into transparency instead of mirroring
    it. ``cv2.pyrDown`` centres texel k of level L on texel ``2**L * k`` of level 0, which
    :func:`paint_board` relies on to place every level exactly.
    """
    pad = 2 ** (levels + 1)
    values = values if values.ndim == 3 else values[..., None]
    layer = np.dstack([values, np.ones(values.shape[:2])]).astype(np.float32)
    layer = cv2.copyMakeBorder(layer, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    out = [layer]
    for _ in range(levels - 1):
        out.append(cv2.pyrDown(out[-1]))
    return tuple(out), pad


def paint_board(levels: tuple[np.ndarray, ...], pad: int, camera: PinholeCamera, pose: TargetPose,
                board: Board, supersample: int) -> np.ndarray:
    """The board alone as this camera sees it: premultiplied (H*s, W*s, C+1), transparent around it.

    Picks the pyramid level whose texels are about one (sub)pixel at the board's centre, as
    :func:`~station.sim.render.draw` does, so far boards do not alias.
    """
    depth = float(camera.to_camera(np.asarray(pose.centre_m)[None])[0, 2])
    texels_per_px = depth / (camera.focal_px * supersample * TEXEL_M)
    level = int(np.clip(math.floor(math.log2(max(texels_per_px, 1.0))), 0, len(levels) - 1))
    axes = pose.axes
    top_left = pose.to_world(np.zeros((1, 2)), board.size_m)[0]
    origin = top_left + (0.5 - pad) * TEXEL_M * (axes[:, 0] + axes[:, 1])
    h = camera.plane_homography(origin, axes[:, 0], axes[:, 1], TEXEL_M * 2**level, supersample)
    size = (camera.width * supersample, camera.height * supersample)
    warped = cv2.warpPerspective(levels[level], h, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    return warped if warped.ndim == 3 else warped[..., None]


@dataclass
class TargetSimulation(SceneRendering):
    """A calibration session: the board, its planned poses, and both cameras' frames of each."""

    config: TargetConfig
    board: Board = field(init=False)
    poses: list[TargetPose] = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        self._draw_scene(rng, cfg.thermal_camera)
        self.board = BOARDS[cfg.kind]()
        self._scene_rng_seed = int(rng.integers(2**31))
        near, far = self.distance_range_m
        self.poses = [place_board(rng, self.board, self.rig, float(d), cfg.max_tilt_deg)
                      for d in spread_distances(rng, cfg.poses, near, far)]

    @cached_property
    def distance_range_m(self) -> tuple[float, float]:
        """The configured distances, narrowed to where the board fits both views and both resolve it.

        With the Lepton the ArUco board resolves only to about 1.3 m, so its poses stay nearer than
        the configured maximum; ``meta.json`` records the range actually used.
        """
        cfg, board = self.config, self.board
        near = max(cfg.min_distance_m, nearest_fit_m(board, self.rig))
        far = min(cfg.max_distance_m, round(farthest_resolved_m(board, self.rig, cfg.kind, cfg.max_tilt_deg), 2))
        if near > far:
            raise ValueError(
                f"{cfg.kind} on {cfg.thermal_camera}: no distance in {cfg.min_distance_m}-{cfg.max_distance_m} m "
                f"has the board both in view (from {near:.2f} m) and resolved (to {far:.2f} m)"
            )
        return near, far

    # ------------------------------------------------------------------ timeline
    @property
    def thermal_times(self) -> np.ndarray:
        return np.round(np.arange(len(self.poses)) * POSE_PERIOD_S, 6)

    @property
    def visible_times(self) -> np.ndarray:
        return np.round(self.thermal_times + VISIBLE_AFTER_THERMAL_S, 6)

    def timeline(self) -> Iterator[tuple[Stream, int]]:
        """Every frame in time order: each pose's thermal frame, then its visible frame."""
        for index in range(len(self.poses)):
            yield "thermal", index
            yield "visible", index

    # ------------------------------------------------------------------ appearance (built once)
    @cached_property
    def _visible_board(self) -> tuple[tuple[np.ndarray, ...], int]:
        ink = self.board.ink[..., None]
        colour = np.asarray(PAPER_BGR, np.float32) * (1 - ink) + np.asarray(INK_BGR, np.float32) * ink
        return pyramid(colour)

    @cached_property
    def _thermal_board(self) -> tuple[tuple[np.ndarray, ...], int]:
        """The board as in-band signal: heated print and board, each mixed with the room it reflects."""
        planck = self.sensor.planck
        reflected = planck.signal(self.ambient_c)

        def seen(celsius: float) -> float:
            return float(TARGET_EMISSIVITY * planck.signal(celsius) + (1 - TARGET_EMISSIVITY) * reflected)

        ink = self.board.ink
        return pyramid(seen(self.ambient_c + BOARD_ABOVE_AMBIENT_C) * (1 - ink) + seen(HEATED_C) * ink)

    # ------------------------------------------------------------------ rendering
    def render_visible(self, index: int) -> Frame:
        """The room with the board in front, printed paper lit as the room's walls are, then the
        screening simulator's blur and noise."""
        pose, cam, s = self.poses[index], self.rig.visible, VISIBLE_SUPERSAMPLE
        layer = paint_board(*self._visible_board, cam, pose, self.board, s)
        layer = cv2.resize(layer, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
        light = 1.0 - 0.04 * float(np.clip(np.linalg.norm(pose.centre_m) - 1.0, 0, 6))
        canvas = self._visible_background * (1.0 - layer[..., 3:]) + layer[..., :3] * light
        return self._visible_frame(canvas, float(self.visible_times[index]), index)

    def apparent_temperature(self, index: int) -> np.ndarray:
        """What a perfect copy of the thermal camera would read for pose ``index`` (°C, emissivity 1): the
        board defocused for the distance of its centre (a tilted board's ends are a little nearer and
        farther; the difference is ignored), composited over the room, then the lens and the pixels."""
        s, pose = self.thermal_oversample, self.poses[index]
        layer = paint_board(*self._thermal_board, self.rig.thermal, pose, self.board, s)
        depth = float(self.rig.thermal.to_camera(np.asarray(pose.centre_m)[None])[0, 2])
        lens = self.sensor.optics
        layer = optics.defocus(layer, optics.defocus_diameter_um(lens, depth) / lens.fine_um)
        canvas = self._thermal_background * (1.0 - layer[..., 1]) + layer[..., 0]
        return self._through_thermal_optics(canvas)

    def render_thermal(self, index: int) -> Frame:
        """The apparent temperature plus the sensor's noise, in its own encoding; no gain, offset or drift,
        so the recording's profile has identity radiometry."""
        rng = np.random.default_rng([self.config.seed, 12, index])
        apparent = self.apparent_temperature(index)
        measured = apparent + rng.normal(0.0, self.sensor.netd_c, size=apparent.shape)
        return Frame(image=self.sensor.encode(measured), t=float(self.thermal_times[index]), index=index,
                     meta={"camera": f"simulated-{self.sensor.name}"})

    # ------------------------------------------------------------------ truth
    def truth_record(self, index: int) -> dict:
        """Pose ``index``: how the board was held and every feature's world point and pixel in each camera.

        ``distance_m`` is the board centre's depth along the visible camera's axis; pixels follow
        OpenCV's convention (pixel centres at integer coordinates), as the detectors report them.
        """
        pose = self.poses[index]
        world = pose.to_world(self.board.points_m, self.board.size_m)
        return {
            "pose": index,
            "t": float(self.thermal_times[index]),
            "distance_m": round(float(pose.centre_m[2]), 6),
            "yaw_deg": pose.yaw_deg,
            "pitch_deg": pose.pitch_deg,
            "roll_deg": pose.roll_deg,
            "points_world": _rounded(world, 6),
            "points_visible": _rounded(self.rig.visible.project(world), 4),
            "points_thermal": _rounded(self.rig.thermal.project(world), 4),
            "point_ids": list(self.board.point_ids),
        }

    def truth_records(self) -> list[dict]:
        return [self.truth_record(index) for index in range(len(self.poses))]

    # ------------------------------------------------------------------ calibration
    def profile(self) -> CalibrationProfile:
        """The calibration a perfect technician would write for this rig: true registration at 1 m,
        identity radiometry (this sensor has no gain or offset error), no blackbody in view."""
        return CalibrationProfile(
            station_id=self.config.station_id,
            created=self.config.recorded_at,
            registration=true_registration(self.rig, REFERENCE_DISTANCE_M),
            radiometry=Radiometry(gain=1.0, offset_c=0.0, emissivity=appearance.SKIN_EMISSIVITY),
        )

    def describe(self) -> dict:
        """The simulation block of meta.json: the target, the sensor and enough to remake the recording."""
        return {
            "target": self.config.kind,
            "board": self.board.geometry,
            "config": asdict(self.config),
            "distance_range_m": list(self.distance_range_m),
            "ambient_c": round(self.ambient_c, 3),
            "outdoor_c": round(self.outdoor_c, 3),
            "heated_c": HEATED_C,
            "board_c": round(self.ambient_c + BOARD_ABOVE_AMBIENT_C, 3),
            "target_emissivity": TARGET_EMISSIVITY,
            "sensor": self.sensor.name,
            "netd_c": self.sensor.netd_c,
            "thermal_camera_centre_m": [round(float(v), 4) for v in self.rig.thermal.centre],
            "thermal_misalignment_deg": list(self.sensor.misalignment_deg),
        }


def _rounded(points: np.ndarray, digits: int) -> list[list[float]]:
    return [[round(float(v), digits) for v in row] for row in points]


def write_target_recording(
    sim: TargetSimulation,
    out: str | Path,
    *,
    visible_file: str = "visible.mp4",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render every pose into a recording (format v1) with its truth and the rig's true profile.

    Pass ``visible_file="visible.mkv"`` (lossless) when the recording is to measure a registration to
    a tenth of a pixel; mp4 is compact but lossy.
    """
    return write_scene_recording(sim, out, visible_fps=VISIBLE_FPS, visible_file=visible_file, overwrite=overwrite,
                                 progress=progress)
