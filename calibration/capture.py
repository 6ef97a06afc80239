"""Target poses from a recording or from the cameras, for ``station calibrate register``.

A hand-held target moves, and the two cameras do not expose at the same instant: a pose caught
while the target moves has its thermal points shifted against its visible points by the motion, an
error no registration can fit. So from a recording we keep only pairs in which the target stood
still (its visible points moved less than a pixel since the previous visible frame, or it is the
only frame of its pose), and one pair per stillness, not dozens of copies of the same pose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from calibration.targets import PosePoints, TargetNotFound, TargetSpec, detect, match_pose
from station.acquire.intake import open_intake
from station.errors import StationError
from station.profile.schema import focal_from_hfov

STILL_PX = 1.0  # visible points moving less than this between frames: the target is still
NEIGHBOUR_S = 0.25  # frames further apart than this are not compared for motion
SAME_POSE_PX = 5.0  # a still pose within this of the last one kept is the same pose


def _focal(width: int, hfov_deg: float, focal: float | None) -> float:
    return focal or focal_from_hfov(width, hfov_deg)


def poses_from_recording(
    recording: Path, spec: TargetSpec, hfov_deg: float, focal: float | None,
    echo: Callable[[str], None] = print,
) -> Iterator[tuple[PosePoints, float]]:
    """(pose, visible focal) for each still, distinct pose of the target in a recording."""
    kept: list[np.ndarray] = []
    previous: np.ndarray | None = None
    previous_t = -np.inf
    seen = moving = 0
    with open_intake(None, None, recording, None, fast=True, status=None) as intake:
        for item in intake.run():
            if not hasattr(item, "thermal") or item.visible is None:
                continue
            visible, t = item.visible.image, item.visible.t
            if t == previous_t:
                continue  # the same visible frame paired with the next thermal frame
            view = detect(visible, spec)
            if view is None:
                previous = None
                continue
            seen += 1
            points = view.points_px
            comparable = previous is not None and previous.shape == points.shape and t - previous_t < NEIGHBOUR_S
            still = not comparable or np.max(np.linalg.norm(previous - points, axis=1)) < STILL_PX
            previous, previous_t = points, t
            if not still:
                moving += 1
                continue
            if any(k.shape == points.shape and np.median(np.linalg.norm(k - points, axis=1)) < SAME_POSE_PX
                   for k in kept):
                continue
            f = _focal(visible.shape[1], hfov_deg, focal)
            try:
                pose = match_pose(f"t={item.thermal.t:.1f}s", visible, item.thermal.image, spec, f)
            except TargetNotFound as exc:
                echo(f"skipped: {exc}")
                continue
            kept.append(points)
            yield pose, f
    if not kept:
        raise TargetNotFound(
            f"{recording}: no still pose of the {spec.kind} target seen by both cameras "
            f"({seen} frames showed it, {moving} while moving); hold it still for a moment at each pose"
        )


def poses_live(
    visible_spec: str, thermal_spec: str, n_poses: int, spec: TargetSpec, hfov_deg: float, focal: float | None,
    prompt: Callable[[int, int], None], echo: Callable[[str], None] = print,
) -> Iterator[tuple[PosePoints, float]]:
    """Capture ``n_poses`` poses from the cameras, prompting the technician before each one.

    A pose the cameras do not both see is said and asked for again (up to three times per pose), so
    one bad angle does not end a calibration session.
    """
    with open_intake(visible_spec, thermal_spec, None, None, status=None) as intake:
        run = intake.run()
        pairs = (item for item in run if hasattr(item, "thermal") and item.visible is not None)
        try:
            for k in range(1, n_poses + 1):
                for attempt in range(3):
                    prompt(k, n_poses)
                    pair = _fresh_pair(pairs)
                    f = _focal(pair.visible.image.shape[1], hfov_deg, focal)
                    try:
                        yield match_pose(f"live-{k}", pair.visible.image, pair.thermal.image, spec, f), f
                        break
                    except TargetNotFound as exc:
                        if attempt == 2:
                            raise
                        echo(f"{exc}; try again")
        finally:
            # Close the capture here, on this thread: left to the garbage collector, the generator may be
            # finalised on a capture thread, which cannot join itself.
            pairs.close()
            run.close()


def _fresh_pair(pairs: Iterator) -> object:
    """The newest pair after the prompt: skip what queued up while the technician positioned the target."""
    try:
        for _ in range(3):
            pair = next(pairs)
    except StopIteration:
        raise StationError("the cameras stopped sending frames") from None
    return pair


def frames_for(source, seconds: float):
    """A live source's frames for ``seconds`` (or until it says it has finished), one by one.

    A grab that failed (``read()`` gives None) gets the camera a moment before the next one, so a technician's
    live measurement rides out a dropped frame instead of ending on it.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = source.read()
        if frame is None:
            if source.finished:
                return
            time.sleep(0.01)
            continue
        yield frame
