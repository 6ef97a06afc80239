"""Hand-picked point pairs, for sites without a calibration target.

A technician clicks the same physical points (a door frame's corners, a warm mug, a lamp) in both
images and saves them as CSV::

    visible_x,visible_y,thermal_x,thermal_y,distance_m,pose
    312.5,140.0,80.1,35.2,1.2,door
    ...

``distance_m`` (how far the point was, metres) lets the parallax be fitted; without it the fit is a
single homography, exact only at the distance the points were picked at. ``pose`` groups points for
the leave-one-pose-out check (default: points at the same distance form one pose).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from calibration.targets import PosePoints
from station.errors import StationError

REQUIRED = ("visible_x", "visible_y", "thermal_x", "thermal_y")


def read_points(path: Path) -> tuple[list[PosePoints], bool]:
    """Point pairs grouped into poses, and whether they carry distances; one-line errors name the row."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else []
    except FileNotFoundError:
        raise StationError(f"{path}: points file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StationError(f"{path}: cannot read the points file ({exc})") from None
    missing = [c for c in REQUIRED if c not in header]
    if not rows or missing:
        raise StationError(f"{path}: expected CSV columns {', '.join(REQUIRED)} [distance_m, pose]; "
                           f"missing {', '.join(missing) or 'every row'}")
    has_depth = "distance_m" in header
    groups: dict[str, list[tuple[float, ...]]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) for c in REQUIRED]
            distance = float(row["distance_m"]) if has_depth else 1.0
        except (TypeError, ValueError):
            raise StationError(f"{path}:{line}: expected numbers in {', '.join(REQUIRED)}"
                               f"{' and distance_m' if has_depth else ''}") from None
        if not all(math.isfinite(v) for v in values) or not (math.isfinite(distance) and distance > 0):
            raise StationError(f"{path}:{line}: expected finite coordinates and a distance above 0 m")
        key = (row.get("pose") or "").strip() or (f"{distance:g} m" if has_depth else "points")
        groups.setdefault(key, []).append((*values, distance))
    poses = []
    for name, members in groups.items():
        arr = np.array(members, dtype=np.float64)
        poses.append(PosePoints(name, arr[:, 0:2], arr[:, 2:4], 1.0 / arr[:, 4]))
    return poses, has_depth
