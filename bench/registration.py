"""How well each registration model maps the real ArUco pairs, on poses fitted and on poses left out.

    .venv/bin/python bench/registration.py [--pairs ../shared/data/aruco-pairs] [--size-mm 50]

Models, all fitted by least squares on thermal pixels over every matched marker corner:

- ``homography``: one homography pooled over all poses (what a plain ``findHomography`` gives);
- ``parallax``: the engine's model, homography at a reference distance + a parallax vector times each
  point's inverse depth (``station calibrate register`` fits this);
- ``parallax+distortion``: the same with one radial distortion coefficient per camera, fitted jointly
  (about the image centres, radius normalised by the half-diagonal).

Every model is scored on the same points: those ``register`` keeps after dropping detection outliers.
``fit`` is the RMS over all poses the model was fitted to; ``left out`` the RMS over each pose while
it was left out of the fit; ``per-pose homography`` is the floor: a homography fitted to that pose alone.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.registration_fit import _without_outliers, fit_registration, rms  # noqa: E402
from calibration.targets import PosePoints, TargetSpec, load_image, match_pose, pair_files  # noqa: E402


def _apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    mapped = np.c_[points, np.ones(len(points))] @ h.T
    return mapped[:, :2] / mapped[:, 2:3]


def _radial(points: np.ndarray, centre: np.ndarray, radius: float, k1: float) -> np.ndarray:
    d = (points - centre) / radius
    return centre + (points - centre) * (1.0 + k1 * np.sum(d * d, axis=1, keepdims=True))


def _fit_distorted(poses: list[PosePoints], vis_size, th_size, d_ref: float):
    """Homography + parallax + one radial coefficient per camera, from the parallax fit as start."""
    base = fit_registration(poses, 1.0, reference_distance_m=d_ref).registration
    v = np.vstack([p.visible_px for p in poses])
    t = np.vstack([p.thermal_px for p in poses])
    dw = np.concatenate([p.inverse_depth_m for p in poses]) - 1.0 / d_ref
    cv, rv = np.array(vis_size) / 2.0, float(np.hypot(*vis_size)) / 2.0
    ct, rt = np.array(th_size) / 2.0, float(np.hypot(*th_size)) / 2.0

    def model(x, v, dw):
        h = np.append(x[:8], 1.0).reshape(3, 3)
        mapped = _apply(h, _radial(v, cv, rv, x[10])) + dw[:, None] * x[8:10]
        return _radial(mapped, ct, rt, x[11])

    x0 = np.r_[base.matrix.ravel()[:8], base.parallax_px_m, 0.0, 0.0]
    result = least_squares(lambda x: (model(x, v, dw) - t).ravel(), x0, x_scale="jac")
    return lambda p: model(result.x, p.visible_px, p.inverse_depth_m - 1.0 / d_ref)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=ROOT.parent / "shared" / "data" / "aruco-pairs")
    parser.add_argument("--size-mm", type=float, default=50.0)
    args = parser.parse_args()
    spec = TargetSpec("aruco", args.size_mm / 1000.0)
    started = time.perf_counter()
    poses, sizes = [], None
    for name, visible_path, thermal_path in pair_files([args.pairs]):
        visible, thermal = load_image(visible_path), load_image(thermal_path)
        focal = (visible.shape[1] / 2.0) / math.tan(math.radians(30.0))
        poses.append(match_pose(name, visible, thermal, spec, focal))
        sizes = (visible.shape[1], visible.shape[0]), (thermal.shape[1], thermal.shape[0])
    detected = time.perf_counter() - started
    fit = fit_registration(poses, focal)
    d_ref = fit.registration.reference_distance_m
    poses, _ = _without_outliers(poses, d_ref, True)  # every model on the points the fit kept
    distorted_all = _fit_distorted(poses, *sizes, d_ref)
    distorted_fit = rms(np.vstack([distorted_all(p) - p.thermal_px for p in poses]))
    distorted_lopo = []
    for k, pose in enumerate(poses):
        predict = _fit_distorted(poses[:k] + poses[k + 1 :], *sizes, d_ref)
        distorted_lopo.append(predict(pose) - pose.thermal_px)
    floor = rms(np.vstack([
        _apply(cv2.findHomography(p.visible_px, p.thermal_px, 0)[0], p.visible_px) - p.thermal_px for p in poses
    ]))
    n_points = sum(len(p.visible_px) for p in poses)
    print(f"{len(poses)} pairs, {n_points} matched corners, detected in {detected:.1f} s; "
          f"distances {min(fit.distances_m.values()):.2f}-{max(fit.distances_m.values()):.2f} m "
          f"(for {args.size_mm:g} mm markers); {fit.rejected_points} left out as detection outliers")
    print(f"{'model':<22}{'fit px':>8}{'left out px':>13}")
    print(f"{'homography':<22}{fit.homography_rms_px:8.2f}{fit.homography_lopo_px:13.2f}")
    print(f"{'parallax':<22}{fit.rms_px:8.2f}{fit.lopo_rms_px:13.2f}")
    print(f"{'parallax+distortion':<22}{distorted_fit:8.2f}{rms(np.vstack(distorted_lopo)):13.2f}")
    print(f"{'per-pose homography':<22}{floor:8.2f}{'-':>13}")
    print("left out, per pose (homography / parallax):")
    for pose in poses:
        h = cv2.findHomography(np.vstack([p.visible_px for p in poses if p is not pose]),
                               np.vstack([p.thermal_px for p in poses if p is not pose]), 0)[0]
        print(f"  {pose.name:<6}{rms(_apply(h, pose.visible_px) - pose.thermal_px):7.2f}"
              f"{fit.per_pose_lopo_px[pose.name]:7.2f}")


if __name__ == "__main__":
    main()
