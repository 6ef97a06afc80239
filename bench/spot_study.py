"""Can the frames tell a small canthus from a faint one? Spot-size estimators on what the engine read.

The station corrects the canthus's hottest pixel by the camera's response to a spot of the *typical*
anatomical size (``station/screen/spot_size.py``). This study asks whether reading each person's own spot off
the frames would do better. It runs the engine on ``bench/screening.py``'s variants (the same cached
renders, default settings), keeps the 9x9 thermal pixels around every canthus reading the engine used
(observing ``read_spot``; nothing in the engine changes), and re-decides each person on the same
best-resolved readings with each estimator:

- ``prior``: the engine's correction (half-maximum radius 4 mm, its range into the uncertainty);
- ``fit ml``: least squares of a blurred Gaussian spot (radius 2.5-6 mm, sub-pixel centre) plus a
  constant over the 3x3 or 5x5 pixels, the best radius kept;
- ``fit bayes``: the same, averaged over the radii and centres by their likelihood (sensor noise 0.07 °C),
  optionally with the contrast bounded to 0.2-1.5 °C;
- ``oracle``: the engine's correction told each person's *true* radius (the simulator's truth), the
  floor a spot-size estimate could reach with this response model.

Usage::

    python bench/spot_study.py                 # every variant (about 3 minutes with renders cached)
    python bench/spot_study.py --variant mark-lepton --variant short
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

import station.pipeline as pipeline
from station.screen.detect import FaceDetector
from station.screen.measure import MeasureSettings
from station.screen.spot_size import CANTHUS_RADIUS_MM, HALF_MAX_PER_SIGMA, retention

_spec = importlib.util.spec_from_file_location("screening", Path(__file__).with_name("screening.py"))
screening = importlib.util.module_from_spec(_spec)
sys.modules["screening"] = screening
_spec.loader.exec_module(screening)

#: Thermal pixels kept around each reading's hottest pixel (each side of it).
HALF = 4
#: The skin-to-apparent step near 35 °C (emissivity 0.98): an apparent change of 1 °C moves the skin 1/0.98.
SKIN_PER_APPARENT = 1 / 0.98


def observe_readings() -> list[dict]:
    """Wrap the engine's spot reading to keep each patch with the track that used it; returns the list
    the wrappers append to."""
    seen: list[dict] = []
    pending: list[dict] = []
    read_spot, add_reading = pipeline.read_spot, pipeline.add_reading

    def observed_read_spot(celsius, hottest_px, psf_sigma, px_per_mm):
        spot = read_spot(celsius, hottest_px, psf_sigma, px_per_mm)
        x, y = int(round(hottest_px[0])), int(round(hottest_px[1]))
        h, w = celsius.shape
        inside = HALF <= x < w - HALF and HALF <= y < h - HALF and spot is not None
        pending[:] = [dict(patch=np.array(celsius[y - HALF:y + HALF + 1, x - HALF:x + HALF + 1], dtype=np.float64)
                           if inside else None, psf=psf_sigma, ppm=px_per_mm,
                           engine=spot.corrected_c if spot is not None else None)]
        return spot

    def observed_add_reading(track, t, skin, quality, near, site, **kw):
        if pending and skin is not None and pending[0]["patch"] is not None:
            seen.append(dict(pending[0], track_id=track.track_id, t=t, skin=skin, side=kw.get("side_px")))
        pending.clear()
        return add_reading(track, t, skin, quality, near, site, **kw)

    pipeline.read_spot, pipeline.add_reading = observed_read_spot, observed_add_reading
    return seen


def prior(patch: np.ndarray, psf: float, ppm: float, radius_mm: float = CANTHUS_RADIUS_MM) -> float:
    """The engine's correction (station.screen.spot_size.read_spot) with the radius given."""
    p5 = patch[HALF - 2:HALF + 3, HALF - 2:HALF + 3]
    skin = float(np.median(np.concatenate([p5[0], p5[-1], p5[1:-1, 0], p5[1:-1, -1]])))
    excess = p5[2, 2] - skin
    return float(p5[2, 2]) if excess <= 0 else skin + excess / retention(radius_mm * ppm, psf)


def fitted(patch: np.ndarray, psf: float, ppm: float, *, half: int, bayes: bool, contrast=None,
           noise_c: float = 0.07) -> float:
    """Spot peak from a blurred-Gaussian fit over radii 2.5-6 mm and sub-pixel centres (see the module notes)."""
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(float)
    data = patch[HALF - half:HALF + half + 1, HALF - half:HALF + half + 1].ravel()
    costs, peaks = [], []
    for radius in np.linspace(2.5, 6.0, 8):
        s2 = (radius * ppm / HALF_MAX_PER_SIGMA) ** 2
        v = s2 + psf**2 + 1 / 12
        for ox in np.linspace(-0.5, 0.5, 5):
            for oy in np.linspace(-0.5, 0.5, 5):
                shape = (s2 / v * np.exp(-((xx - ox) ** 2 + (yy - oy) ** 2) / (2 * v))).ravel()
                design = np.stack([np.ones_like(shape), shape], 1)
                (base, c), *_ = np.linalg.lstsq(design, data, rcond=None)
                cost = float(np.sum((design @ (base, c) - data) ** 2)) / (2 * noise_c**2)
                if contrast is not None:
                    cost += 0.5 * (max(contrast[0] - c, 0.0, c - contrast[1]) / 0.05) ** 2
                costs.append(cost)
                peaks.append(base + c)
    costs, peaks = np.array(costs), np.array(peaks)
    if not bayes:
        return float(peaks[np.argmin(costs)])
    weight = np.exp(-(costs - costs.min()))
    return float(np.sum(weight * peaks) / np.sum(weight))


ESTIMATORS = {
    "prior (engine)": lambda r: prior(r["patch"], r["psf"], r["ppm"]),
    "fit ml 3x3": lambda r: fitted(r["patch"], r["psf"], r["ppm"], half=1, bayes=False),
    "fit ml 5x5": lambda r: fitted(r["patch"], r["psf"], r["ppm"], half=2, bayes=False),
    "fit bayes 3x3": lambda r: fitted(r["patch"], r["psf"], r["ppm"], half=1, bayes=True),
    "fit bayes 3x3, contrast 0.2-1.5": lambda r: fitted(r["patch"], r["psf"], r["ppm"], half=1, bayes=True,
                                                        contrast=(0.2, 1.5)),
    "oracle radius": lambda r: prior(r["patch"], r["psf"], r["ppm"], r["true_radius_mm"]),
}


def errors(readings: list[dict], decisions, owner, truth, estimate) -> np.ndarray:
    """Skin error per decided person when its best-resolved readings are corrected by ``estimate``."""
    out = []
    for d in decisions:
        if d.skin_c is None or d.track_id not in owner or d.site != "canthus":
            continue
        mine = [r for r in readings if r["track_id"] == d.track_id and r["t"] <= d.t_decided + 1e-9]
        if len(mine) < 3:
            continue
        chosen = pipeline_best(mine)
        values = [r["skin"] + (estimate(r) - r["engine"]) * SKIN_PER_APPARENT for r in chosen]
        out.append(float(np.median(values)) - truth[owner[d.track_id]]["canthus_c"])
    return np.array(out)


def pipeline_best(readings: list[dict], share: float = 0.85, least: int = 3) -> list[dict]:
    """The engine's choice of readings (station.screen.track.best_resolved with its defaults)."""
    top = max(r["side"] for r in readings)
    chosen = [r for r in readings if r["side"] >= share * top]
    return chosen if len(chosen) >= least else sorted(readings, key=lambda r: r["side"], reverse=True)[:least]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", choices=[v.name for v in screening.VARIANTS])
    parser.add_argument("--dir", type=Path, default=screening.CACHE)
    args = parser.parse_args()
    variants = tuple(v for v in screening.VARIANTS if not args.variant or v.name in args.variant)
    readings = observe_readings()
    detector = FaceDetector()
    table: dict[str, dict[str, np.ndarray]] = {name: {} for name in ESTIMATORS}
    for variant, path in screening.variant_recordings(args.dir, variants, 2):
        readings.clear()
        rec, decisions, boxes, _ = screening.run(path, detector, blackbody=True, measure=MeasureSettings())
        truth = {p["person"]: p for p in rec.truth()}
        owner = screening.match(list(truth.values()), boxes)
        radius = {tid: (truth[pid].get("canthus_spot") or {}).get("radius_mm", CANTHUS_RADIUS_MM)
                  for tid, pid in owner.items()}
        for r in readings:
            r["true_radius_mm"] = radius.get(r["track_id"], CANTHUS_RADIUS_MM)
        for name, estimate in ESTIMATORS.items():
            table[name][variant.name] = errors(readings, decisions, owner, truth, estimate)
        print(f"{variant.name}: {len(readings)} readings", flush=True)
    names = [v.name for v in variants]
    print("\np95 |skin error| °C by estimator and variant (the bar is 0.3)")
    print(f"{'estimator':33}" + "".join(f"{n[:14]:>15}" for n in names) + f"{'pooled':>9}{'meet':>6}")
    for name, per_variant in table.items():
        p95s = [float(np.percentile(np.abs(per_variant[n]), 95)) for n in names]
        pooled = np.concatenate([per_variant[n] for n in names])
        print(f"{name:33}" + "".join(f"{p:15.3f}" for p in p95s)
              + f"{np.percentile(np.abs(pooled), 95):9.3f}{sum(p <= 0.3 for p in p95s):4d}/{len(names)}")


if __name__ == "__main__":
    main()
