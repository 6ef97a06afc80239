"""The reference source of a kiosk found in its own frames: a small, bright, round, steady spot.

Kiosks without a calibrated blackbody ROI (an imported recording, a station set up without a profile)
often still carry a heated reference in view: the Te Kahu Ora kiosks have a disc a few pixels across
held at about 36 °C. It is the warmest thing in the scene that does not move, and it is round; faces
are warm but move and are large, lamps are hot but rarely round and small. So: over a stack of frames,
take the median (people passing through vanish from it) and the spread over time (anything that moved
is spread); among the warm, steady connected blobs keep the compact round one with the highest
temperature; its ROI is the square inside the disc, clear of the blurred rim.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ReferenceDisc:
    """A found disc: centre and radius (pixels), its ROI ``(x1, y1, x2, y2)`` and its median reading."""

    centre: tuple[float, float]
    radius_px: float
    roi: tuple[int, int, int, int]
    reading_c: float


def find_reference_disc(
    frames_c: np.ndarray, *, min_area_px: int = 6, max_area_px: int = 400, max_spread_c: float = 0.4,
    warm_above_room_c: float = 4.0,
) -> ReferenceDisc | None:
    """The kiosk's reference disc in a (T, H, W) stack of °C frames, or None when there is none.

    A blob qualifies when it is ``warm_above_room_c`` above the room (the median frame's median),
    steady over time (spread below ``max_spread_c``), between ``min_area_px`` and ``max_area_px`` in
    area, and round (its area at least 60 % of its enclosing circle's). The warmest qualifying blob wins.
    """
    stack = np.asarray(frames_c, dtype=np.float32)
    if stack.ndim == 2:
        stack = stack[None]
    median = np.nanmedian(stack, axis=0)
    spread = np.nanpercentile(stack, 90, axis=0) - np.nanpercentile(stack, 10, axis=0)
    room = float(np.nanmedian(median))
    mask = ((median >= room + warm_above_room_c) & (spread <= max_spread_c)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best: ReferenceDisc | None = None
    for k in range(1, count):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if not min_area_px <= area <= max_area_px:
            continue
        ys, xs = np.nonzero(labels == k)
        (cx, cy), radius = cv2.minEnclosingCircle(np.c_[xs, ys].astype(np.float32))
        if area < 0.6 * np.pi * max(radius, 0.5) ** 2:
            continue  # a streak or an L-shape: not a disc
        reading = float(np.median(median[labels == k]))
        if best is None or reading > best.reading_c:
            half = max(int(np.floor(radius / 2.0)), 1)  # well inside the disc, clear of its blurred rim
            x, y = int(round(cx)), int(round(cy))
            roi = (x - half + 1, y - half + 1, x + half, y + half)
            best = ReferenceDisc((float(cx), float(cy)), float(radius), roi, reading)
    return best
