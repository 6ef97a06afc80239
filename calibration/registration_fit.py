"""Fitting the visible -> thermal mapping the engine uses, and measuring it honestly.

The engine maps a visible point at depth ``d`` to ``H(x) + p * (1/d - 1/d_ref)`` thermal pixels
(:func:`station.profile.registration.visible_to_thermal`). We fit exactly that model, all ten numbers at once,
by least squares on the thermal-pixel error of every matched target point, each point at its own
depth: a tilted target spans several depths, and one depth per pose would leave its slope in the
residuals. A homography alone cannot explain poses at different distances; the parallax vector ``p``
can, because two cameras a few centimetres apart see near points shifted more than far ones.

The printed error on the poses the model was fitted to flatters it; what matters at the door is the
error on faces it has never seen, so every fit also reports a leave-one-pose-out error: each pose in
turn is left out, the model refitted on the rest and measured on it.

Lens distortion was tried as a third term (one radial coefficient per camera, fitted jointly): on the
real ArUco pairs it lowers the fitted error by 0.01 px and the leave-one-pose-out error by 0.01 px
(4.60 vs 4.61), so it does not earn a place in the profile. ``bench/registration.py`` prints that
comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares

from calibration.targets import PosePoints
from station.errors import StationError
from station.profile.registration import visible_to_thermal
from station.profile.schema import Registration

MIN_POSES = 3
MIN_POINTS = 6

#: The largest fitted RMS error a registration may have to be stored and made active without ``--force``,
#: as a share of the thermal image's diagonal. The error of an honest fit is the target's detection noise
#: plus what the model leaves out (lens distortion): 3.27 px on the real 464x348 ArUco pairs (0.56 % of
#: the diagonal; a palette-rendered, partly motion-blurred thermal image) and 0.2-0.4 px on simulated
#: Lepton and Boson targets (0.1-0.2 %). Pairs that do not belong together (each visible image with
#: another pose's thermal one, a thermal stream lagging a moving target) err by how far the target moved:
#: 38.8 px on the real pairs shuffled (6.7 %). 1.5 % sits 2.7x above the worst honest fit and 4.5x below
#: that; on a Lepton (160x120) it is 3 px, the width of the canthus region the station measures, so a
#: worse registration would put the measurement beside the canthus anyway. Judged against the image and
#: not in fixed pixels because every error here scales with the resolution: the same rig on a 640-wide
#: sensor has four times the pixel errors of a 160-wide one.
MAX_RMS_SHARE_OF_DIAGONAL = 0.015
#: Never ask for less than this, thermal pixels: a target corner on a small, blurred thermal image is
#: found to about a pixel, and a limit below two pixels would refuse honest fits on an 80x60 sensor.
MIN_ACCEPTABLE_RMS_PX = 2.0


@dataclass(frozen=True)
class RegistrationFit:
    """A fitted registration and how well it maps, in thermal pixels.

    ``rms_px`` is over every point it was fitted to; ``lopo_rms_px`` (None with fewer than three
    poses) over every point of each pose while that pose was left out; the ``homography_*`` figures are
    the same two for a single homography pooled over all poses, the model without parallax.
    ``rejected_points`` were left out of every figure as detection outliers (:func:`_without_outliers`).
    ``acceptable_px`` is the largest ``rms_px`` that may become active without ``--force``
    (:func:`acceptable_rms_px`), judged on the thermal image of ``thermal_shape`` (``(height, width)``;
    for hand-picked points, the box the thermal points span).
    """

    registration: Registration
    rms_px: float
    per_pose_rms_px: dict[str, float]
    lopo_rms_px: float | None
    per_pose_lopo_px: dict[str, float]
    homography_rms_px: float
    homography_lopo_px: float | None
    distances_m: dict[str, float]
    points: dict[str, int]
    rejected_points: int
    acceptable_px: float
    thermal_shape: tuple[int, int]

    @property
    def acceptable(self) -> bool:
        """Whether the fit is close enough to the target's detection accuracy to be used as it is."""
        return self.rms_px <= self.acceptable_px


def thermal_extent(poses: list[PosePoints]) -> tuple[int, int]:
    """``(height, width)`` of the thermal image the poses were found in.

    Hand-picked points carry no image, so their extent is the box from the origin to the farthest point,
    which the image is at least as large as: judging against it is the stricter choice.
    """
    shapes = [pose.thermal_shape for pose in poses if pose.thermal_shape is not None]
    if shapes:
        return max(h for h, _ in shapes), max(w for _, w in shapes)
    points = np.vstack([pose.thermal_px for pose in poses])
    return max(1, int(np.ceil(points[:, 1].max()))), max(1, int(np.ceil(points[:, 0].max())))


def acceptable_rms_px(thermal_shape: tuple[int, int]) -> float:
    """The largest fitted RMS error, thermal px, a registration may have to become active without --force.

    :data:`MAX_RMS_SHARE_OF_DIAGONAL` of the thermal image's diagonal, but at least
    :data:`MIN_ACCEPTABLE_RMS_PX`; see their comments for why.

    Parameters
    ----------
    thermal_shape
        The thermal image's ``(height, width)``.
    """
    height, width = thermal_shape
    return max(MIN_ACCEPTABLE_RMS_PX, MAX_RMS_SHARE_OF_DIAGONAL * float(np.hypot(height, width)))


def rms(errors: np.ndarray) -> float:
    """Root mean square of the lengths of ``(N, 2)`` error vectors."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum(errors**2, axis=1)))) if len(errors) else float("nan")


def fit_registration(
    poses: list[PosePoints],
    visible_focal_px: float,
    *,
    reference_distance_m: float | None = None,
    parallax: bool = True,
) -> RegistrationFit:
    """Fit homography + parallax to target poses and measure it, fitted and left-out.

    Parameters
    ----------
    poses
        Matched points of each pose, with each point's inverse depth.
    visible_focal_px
        The visible camera's focal length, stored in the profile for the engine's distance estimate.
        The depths here were computed with the same value, so an error in it cancels between target
        and faces; only the reference distance's label depends on it.
    reference_distance_m
        Where the homography is exact; default the median distance of the poses, to the centimetre.
    parallax
        Fit the parallax vector; off, it is zero (a single homography, for sites that measure at one
        distance only, or point sets without distances).
    """
    n_points = sum(len(p.visible_px) for p in poses)
    if n_points < MIN_POINTS:
        raise StationError(f"only {n_points} matched points: need at least {MIN_POINTS} to fit the registration")
    if parallax:
        distances = np.array([p.distance_m for p in poses])
        if len(poses) < MIN_POSES:
            raise StationError(
                f"only {len(poses)} target pose(s): need at least {MIN_POSES}, at different distances "
                "(for example 0.7, 1.0 and 1.5 m), to fit the parallax"
            )
        if distances.max() / distances.min() < 1.05:
            raise StationError(
                f"the poses are all at about {np.median(distances):.2f} m: hold the target at distances at least "
                "5 % apart (better: 0.7, 1.0 and 1.5 m) so the parallax can be fitted"
            )
    d_ref = reference_distance_m or round(float(np.median([p.distance_m for p in poses])), 2)
    poses, rejected = _without_outliers(poses, d_ref, parallax)
    h, p = _fit(poses, d_ref, parallax)
    registration = _registration(h, p, d_ref, visible_focal_px, 0.0)
    per_pose = {pose.name: rms(_predict(registration, pose) - pose.thermal_px) for pose in poses}
    all_errors = np.vstack([_predict(registration, pose) - pose.thermal_px for pose in poses])
    fitted = rms(all_errors)
    registration = _registration(h, p, d_ref, visible_focal_px, fitted)

    lopo, lopo_all, hom_lopo = {}, [], []
    if len(poses) >= MIN_POSES:
        for k, pose in enumerate(poses):
            rest = poses[:k] + poses[k + 1 :]
            hk, pk = _fit(rest, d_ref, parallax)
            err = _predict(_registration(hk, pk, d_ref, visible_focal_px, 0.0), pose) - pose.thermal_px
            lopo[pose.name] = rms(err)
            lopo_all.append(err)
            h0 = _homography(rest)
            hom_lopo.append(_apply_h(h0, pose.visible_px) - pose.thermal_px)
    h_all = _homography(poses)
    thermal_shape = thermal_extent(poses)
    return RegistrationFit(
        registration=registration,
        rms_px=fitted,
        per_pose_rms_px=per_pose,
        lopo_rms_px=rms(np.vstack(lopo_all)) if lopo_all else None,
        per_pose_lopo_px=lopo,
        homography_rms_px=rms(np.vstack([_apply_h(h_all, p.visible_px) - p.thermal_px for p in poses])),
        homography_lopo_px=rms(np.vstack(hom_lopo)) if hom_lopo else None,
        distances_m={pose.name: pose.distance_m for pose in poses},
        points={pose.name: len(pose.visible_px) for pose in poses},
        rejected_points=rejected,
        acceptable_px=acceptable_rms_px(thermal_shape),
        thermal_shape=thermal_shape,
    )


def check_registration(registration: Registration, poses: list[PosePoints]) -> tuple[dict[str, float], float]:
    """An existing registration measured on new poses: RMS per pose and over all points, thermal px."""
    errors = {pose.name: _predict(registration, pose) - pose.thermal_px for pose in poses}
    return {name: rms(e) for name, e in errors.items()}, rms(np.vstack(list(errors.values())))


# ----------------------------------------------------------------------------------------- internals
OUTLIER_MIN_PX = 3.0
OUTLIER_MEDIANS = 4.0


def _without_outliers(poses: list[PosePoints], d_ref: float, parallax: bool) -> tuple[list[PosePoints], int]:
    """The poses without points a detector got wrong, and how many were dropped.

    A detector occasionally puts a corner on the wrong edge (a blurred thermal marker, a checkerboard
    grid that latched onto a lamp): one such point, 10-20 px off, would pull a least-squares fit more
    than all the good points together. A robust fit (soft L1, 1 px scale) finds the model the good
    points agree on; points further from it than ``OUTLIER_MEDIANS`` times the median error (and at
    least ``OUTLIER_MIN_PX``) are dropped before the plain fit that is reported.
    """
    h, p = _fit(poses, d_ref, parallax, robust=True)
    registration = _registration(h, p, d_ref, 1.0, 0.0)
    errors = [np.linalg.norm(_predict(registration, pose) - pose.thermal_px, axis=1) for pose in poses]
    limit = max(OUTLIER_MIN_PX, OUTLIER_MEDIANS * float(np.median(np.concatenate(errors))))
    kept, rejected = [], 0
    for pose, error in zip(poses, errors, strict=True):
        good = error <= limit
        rejected += int((~good).sum())
        if good.sum() >= 4:
            kept.append(PosePoints(pose.name, pose.visible_px[good], pose.thermal_px[good],
                                   pose.inverse_depth_m[good], pose.thermal_shape))
        else:
            rejected += int(good.sum())
    return kept, rejected


def _predict(registration: Registration, pose: PosePoints) -> np.ndarray:
    return visible_to_thermal(pose.visible_px, 1.0 / pose.inverse_depth_m, registration)


def _registration(h: np.ndarray, p: np.ndarray, d_ref: float, focal: float, error: float) -> Registration:
    h = h / h[2, 2]
    return Registration(
        homography=tuple(tuple(float(v) for v in row) for row in h),
        reference_distance_m=float(d_ref),
        visible_focal_px=float(focal),
        parallax_px_m=(float(p[0]), float(p[1])),
        rms_error_px=round(float(error), 4),
    )


def _homography(poses: list[PosePoints]) -> np.ndarray:
    v = np.vstack([p.visible_px for p in poses])
    t = np.vstack([p.thermal_px for p in poses])
    h, _ = cv2.findHomography(v, t, 0)
    if h is None:
        raise StationError("the matched points do not determine a homography (are they all on one line?)")
    return h


def _apply_h(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.c_[points, np.ones(len(points))] @ h.T
    return mapped[:, :2] / mapped[:, 2:3]


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Similarity moving points to mean 0 and mean distance sqrt(2): keeps the least squares well scaled."""
    centre = points.mean(axis=0)
    spread = np.mean(np.linalg.norm(points - centre, axis=1)) or 1.0
    s = np.sqrt(2.0) / spread
    return np.array([[s, 0.0, -s * centre[0]], [0.0, s, -s * centre[1]], [0.0, 0.0, 1.0]])


def _fit(poses: list[PosePoints], d_ref: float, parallax: bool, robust: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of ``H(x) + p (w - w_ref)`` on thermal pixels, from the pooled homography."""
    v = np.vstack([p.visible_px for p in poses])
    t = np.vstack([p.thermal_px for p in poses])
    dw = np.concatenate([p.inverse_depth_m for p in poses]) - 1.0 / d_ref
    nv, nt = _normaliser(v), _normaliser(t)
    vn = _apply_h(nv, v)
    tn = _apply_h(nt, t)
    h0 = nt @ _homography(poses) @ np.linalg.inv(nv)
    h0 = h0 / h0[2, 2]
    scale = nt[0, 0]

    def residuals(x: np.ndarray) -> np.ndarray:
        h = np.append(x[:8], 1.0).reshape(3, 3)
        shift = x[8:10] * scale if parallax else np.zeros(2)
        return (_apply_h(h, vn) + dw[:, None] * shift - tn).ravel()

    x0 = np.r_[h0.ravel()[:8], 0.0, 0.0]
    if robust:
        result = least_squares(residuals, x0, method="trf", loss="soft_l1", f_scale=scale)
    else:
        result = least_squares(residuals, x0, method="lm" if len(v) * 2 > 10 else "trf")
    h = np.linalg.inv(nt) @ np.append(result.x[:8], 1.0).reshape(3, 3) @ nv
    p = result.x[8:10] if parallax else np.zeros(2)
    return h / h[2, 2], p
