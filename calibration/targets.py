"""Finding a calibration target in a visible image and a thermal image taken at the same moment.

A registration is fitted from points both cameras see: the corners of ArUco markers, the inner corners
of a heated checkerboard, or the centres of a circle grid. For each point we also need how far away it
was, because the two cameras sit a few centimetres apart (parallax). The target tells us that too:
its features have a known printed size, so with the visible camera's focal length a perspective-n-point
solve (``cv2.solvePnP``: the whole board for a checkerboard or circle grid, each marker on its own for
an ArUco board, whose layout we do not need) places every feature in depth. The inverse depth of points
on a plane is an affine function of their image position, so the per-marker estimates are smoothed by
that affine fit over the whole target.

Thermal images come in many forms: radiometric 16-bit frames, 8-bit grey, or palette-rendered colour
screenshots where a heated target reads bright. Detection runs on an 8-bit grey image and tries both
polarities, keeping the one that finds more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from station.errors import StationError

TARGET_KINDS = ("aruco", "checkerboard", "circles")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")


class TargetNotFound(StationError):
    """The target was not found in an image; the message names the image and what to try."""


@dataclass(frozen=True)
class TargetSpec:
    """What the technician holds up.

    Parameters
    ----------
    kind
        ``"aruco"`` (any board of markers from ``dictionary``; the layout need not be known),
        ``"checkerboard"`` (``pattern`` inner corners, columns x rows) or ``"circles"`` (a symmetric
        grid of ``pattern`` circles).
    size_m
        Printed side of one marker (ArUco), one square (checkerboard), or the circle spacing.
    pattern
        ``(columns, rows)`` for checkerboards and circle grids.
    dictionary
        OpenCV's ArUco dictionary name.
    """

    kind: str
    size_m: float
    pattern: tuple[int, int] = (0, 0)
    dictionary: str = "DICT_ARUCO_ORIGINAL"

    def __post_init__(self) -> None:
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"target: expected one of {', '.join(TARGET_KINDS)}, got {self.kind!r}")
        if not (np.isfinite(self.size_m) and 0.002 <= self.size_m <= 1.0):
            raise ValueError(f"target size: expected 2-1000 mm, got {self.size_m * 1000:g} mm")
        if self.kind != "aruco" and min(self.pattern) < 2:
            raise ValueError(f"{self.kind}: give its pattern as COLUMNSxROWS (at least 2x2), got {self.pattern}")
        if self.kind == "aruco" and not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"dictionary: OpenCV has no ArUco dictionary {self.dictionary!r}")


@dataclass(frozen=True)
class TargetView:
    """The target's features found in one image: ``ids`` name the same physical point in both images.

    ``object_m`` holds each point's position on the target (metres): on the board for grids, on its own
    marker (centred, for ``SOLVEPNP_IPPE_SQUARE``) for ArUco corners, four consecutive rows per marker.
    """

    ids: np.ndarray  # (N,) int
    points_px: np.ndarray  # (N, 2) float64
    object_m: np.ndarray  # (N, 3) float64


# ----------------------------------------------------------------------------------------- images
def load_image(path: str | Path) -> np.ndarray:
    """An image file as an array: 8/16-bit grey or BGR from an image file, or any 2-D array from ``.npy``."""
    path = Path(path)
    if not path.is_file():
        raise StationError(f"{path}: image not found")
    if path.suffix.lower() == ".npy":
        try:
            image = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise StationError(f"{path}: not a readable .npy array ({exc})") from None
    else:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim not in (2, 3) or min(image.shape[:2]) < 16:
        raise StationError(f"{path}: not an image OpenCV can read (expected PNG, JPEG, TIFF, BMP or .npy)")
    return image


def to_grey8(image: np.ndarray) -> np.ndarray:
    """Any frame as 8-bit grey for detection: colour through luminance (palettes brighten with heat),
    16-bit or float frames stretched between their 0.5th and 99.5th percentiles."""
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY) if image.dtype == np.uint8 else image.mean(axis=2)
    if image.dtype == np.uint8:
        return image
    values = image.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, np.uint8)
    lo, hi = np.percentile(finite, [0.5, 99.5])
    scaled = (np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-9)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------- detection
def detect(image: np.ndarray, spec: TargetSpec) -> TargetView | None:
    """The target's features in one image, trying both polarities; None when nothing is found."""
    grey = to_grey8(image)
    best: TargetView | None = None
    for candidate in (grey, 255 - grey):
        view = _detect_once(candidate, spec)
        if view is not None and (best is None or len(view.ids) > len(best.ids)):
            best = view
    return best


def _detect_once(grey: np.ndarray, spec: TargetSpec) -> TargetView | None:
    if spec.kind == "aruco":
        return _detect_aruco(grey, spec)
    if spec.kind == "checkerboard":
        found, corners = cv2.findChessboardCornersSB(grey, spec.pattern, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found:
            big = cv2.resize(grey, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            found, corners = cv2.findChessboardCornersSB(big, spec.pattern, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
            if found:
                corners = (corners + 0.5) / 2.0 - 0.5  # pixel centres at integers, in the original image
    else:
        found, corners = cv2.findCirclesGrid(grey, spec.pattern, flags=cv2.CALIB_CB_SYMMETRIC_GRID)
    if not found:
        return None
    return _grid_view(corners.reshape(-1, 2).astype(np.float64), spec)


def _grid_view(points: np.ndarray, spec: TargetSpec) -> TargetView:
    """Checkerboard corners or circle centres, numbered from the corner nearest the image's top left.

    A detector numbers a grid from one of its corners, and which one depends on the image: inverting a
    checkerboard (a heated one reads hot where the print is black) swaps its squares and reverses the
    order. Both cameras look the same way up, so starting from the image's top left makes the numbers
    name the same physical corner in both (for rolls under 45 degrees).
    """
    cols, rows = spec.pattern
    grid = points.reshape(rows, cols, 2)
    corners = [grid[0, 0], grid[0, -1], grid[-1, 0], grid[-1, -1]]
    first = int(np.argmin([c.sum() for c in corners]))
    if first in (1, 3):
        grid = grid[:, ::-1]
    if first in (2, 3):
        grid = grid[::-1]
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    board = np.c_[jj.ravel(), ii.ravel(), np.zeros(rows * cols)] * spec.size_m
    return TargetView(np.arange(rows * cols), grid.reshape(-1, 2), board)


def _detect_aruco(grey: np.ndarray, spec: TargetSpec) -> TargetView | None:
    """Markers found by several detector settings, merged (median of each corner over the passes).

    One adaptive-threshold window misses markers in a motion-blurred or low-contrast image; a wider one,
    or the image with its histogram equalised, finds them. Taking the union and the median of repeated
    finds keeps every marker any pass saw without letting one pass's corner jitter dominate.
    """
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, spec.dictionary))
    found: dict[int, list[np.ndarray]] = {}
    for image in (grey, cv2.equalizeHist(grey)):
        for window in (23, 53, 83):
            params = cv2.aruco.DetectorParameters()
            params.adaptiveThreshWinSizeMax = window
            params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
            corners, ids, _ = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(image)
            if ids is None:
                continue
            for quad, marker in zip(corners, ids.ravel(), strict=True):
                found.setdefault(int(marker), []).append(quad.reshape(4, 2).astype(np.float64))
    if not found:
        return None
    markers = sorted(found)
    quads = np.array([np.median(np.array(found[m]), axis=0) for m in markers])  # (M, 4, 2)
    half = spec.size_m / 2.0
    square = np.array([[-half, half, 0.0], [half, half, 0.0], [half, -half, 0.0], [-half, -half, 0.0]])
    ids = (np.array(markers)[:, None] * 4 + np.arange(4)).ravel()
    return TargetView(ids, quads.reshape(-1, 2), np.tile(square, (len(markers), 1)))


def inverse_depths(view: TargetView, spec: TargetSpec, focal_px: float, image_size: tuple[int, int]) -> np.ndarray:
    """``1 / depth`` (1/m, depth along the camera's axis) of every point of a view, from the target's size.

    Solves the target's pose with a pinhole camera of the given focal length centred on the image
    (the whole grid at once, or each ArUco marker alone with ``SOLVEPNP_IPPE_SQUARE``), then, since
    ``1 / depth`` over a plane is affine in image coordinates, replaces the per-point values by their
    affine fit (which averages out the noise of small markers).
    """
    width, height = image_size
    camera = np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])
    depth = np.empty(len(view.points_px))
    if spec.kind == "aruco":
        groups = [slice(k, k + 4) for k in range(0, len(view.points_px), 4)]
        method = cv2.SOLVEPNP_IPPE_SQUARE
    else:
        groups = [slice(0, len(view.points_px))]
        method = cv2.SOLVEPNP_IPPE
    for group in groups:
        ok, rvec, tvec = cv2.solvePnP(view.object_m[group], view.points_px[group], camera, None, flags=method)
        if not ok:
            raise TargetNotFound("the target's pose could not be solved: is --size-mm right?")
        rotation, _ = cv2.Rodrigues(rvec)
        depth[group] = (view.object_m[group] @ rotation.T + tvec.ravel())[:, 2]
    if not np.all(depth > 0):
        raise TargetNotFound("the target's pose puts it behind the camera: is --size-mm right?")
    return _planar_smooth(view.points_px, 1.0 / depth)


def _planar_smooth(points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-point values replaced by their affine fit over the image (exact for a plane's 1/depth)."""
    if len(points) < 6:
        return np.full(len(points), float(np.median(values)))
    design = np.c_[points, np.ones(len(points))]
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return design @ coef


# ----------------------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class PosePoints:
    """One pose of the target seen by both cameras: matched points and each point's inverse depth.

    ``inverse_depth_m`` is ``1 / depth`` along the visible camera's axis, from the visible image's
    local scale (``scale / f``): the same way the engine gets a face's depth from its eye spacing.
    """

    name: str
    visible_px: np.ndarray  # (N, 2)
    thermal_px: np.ndarray  # (N, 2)
    inverse_depth_m: np.ndarray  # (N,)
    #: The thermal image's ``(height, width)``, when the points came from an image: what a fit's error is
    #: judged against (:func:`calibration.registration_fit.acceptable_rms_px`). None for hand-picked points.
    thermal_shape: tuple[int, int] | None = None

    @property
    def distance_m(self) -> float:
        return float(1.0 / np.median(self.inverse_depth_m))


def match_pose(
    name: str, visible: np.ndarray, thermal: np.ndarray, spec: TargetSpec, visible_focal_px: float
) -> PosePoints:
    """The target's points in a visible/thermal pair, matched by id; raises :class:`TargetNotFound`."""
    seen_v = detect(visible, spec)
    if seen_v is None:
        raise TargetNotFound(f"{name}: no {spec.kind} target found in the visible image ({_hint(spec, False)})")
    seen_t = detect(thermal, spec)
    if seen_t is None:
        raise TargetNotFound(f"{name}: no {spec.kind} target found in the thermal image ({_hint(spec, True)})")
    common, iv, it = np.intersect1d(seen_v.ids, seen_t.ids, return_indices=True)
    if len(common) < 4:
        raise TargetNotFound(
            f"{name}: only {len(common)} target points seen by both cameras (need 4); "
            "hold the whole target inside both views"
        )
    height, width = visible.shape[:2]
    inverse = inverse_depths(seen_v, spec, visible_focal_px, (width, height))
    return PosePoints(
        name=name,
        visible_px=seen_v.points_px[iv],
        thermal_px=seen_t.points_px[it],
        inverse_depth_m=inverse[iv],
        thermal_shape=(int(thermal.shape[0]), int(thermal.shape[1])),
    )


def _hint(spec: TargetSpec, thermal: bool) -> str:
    if thermal:
        return ("heat the target so its pattern stands out, check the thermal image is not saturated, "
                "and come closer so each feature spans several thermal pixels")
    if spec.kind == "aruco":
        return f"check the lighting and focus, hold it still, and that it is printed from {spec.dictionary}"
    cols, rows = spec.pattern
    return f"check the lighting, and that its pattern really is {cols}x{rows}"


def pair_files(paths: list[Path]) -> list[tuple[str, Path, Path]]:
    """Visible/thermal files paired by name: ``NAME_visible.EXT`` with ``NAME_thermal.EXT``.

    Each path is a folder of such pairs or one of the two files of a pair.
    """
    found: dict[str, dict[str, Path]] = {}
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise StationError(f"{path}: no images here (expected NAME_visible.png and NAME_thermal.png pairs)")
        elif path.is_file():
            files = [path]
        else:
            raise StationError(f"{path}: no such file or folder")
        for file in files:
            stem = file.stem
            for role in ("visible", "thermal"):
                if stem.endswith(f"_{role}"):
                    key = str(file.parent / stem[: -len(role) - 1])
                    found.setdefault(key, {})[role] = file
                    other = "thermal" if role == "visible" else "visible"
                    if path.is_file() and other not in found[key]:
                        twins = [p for p in file.parent.glob(f"{stem[: -len(role) - 1]}_{other}.*")]
                        if twins:
                            found[key][other] = twins[0]
    pairs = []
    for key, roles in sorted(found.items(), key=lambda kv: _natural(kv[0])):
        if set(roles) != {"visible", "thermal"}:
            missing = "thermal" if "visible" in roles else "visible"
            raise StationError(f"{key}: has no {missing} image (expected {Path(key).name}_{missing}.png)")
        pairs.append((Path(key).name, roles["visible"], roles["thermal"]))
    if not pairs:
        raise StationError("no image pairs found (name them NAME_visible.png and NAME_thermal.png)")
    return pairs


def _natural(text: str) -> list:
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
