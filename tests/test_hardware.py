"""Real cameras, when a technician runs ``pytest --hardware`` at a station. Skipped (and said so) otherwise.

These read through exactly the adapters the station uses, so a pass here means ``station run`` will
get frames of the right shape from the attached cameras.
"""

from __future__ import annotations

import numpy as np
import pytest

from station.acquire.sources.registry import discover_cameras, open_source

pytestmark = pytest.mark.hardware


@pytest.fixture(scope="module")
def cameras() -> list[dict]:
    found = discover_cameras()
    if not found:
        pytest.fail("--hardware was given but `station cameras` finds no camera")
    return found


def test_every_discovered_camera_delivers_frames(cameras):
    for cam in cameras:
        stream = "thermal" if cam.get("stream") == "thermal" else "visible"  # unknown V4L2 nodes: try visible
        with open_source(str(cam["spec"]), stream) as source:
            frames = [source.read() for _ in range(5)]
        frames = [f for f in frames if f is not None]
        assert frames, f"{cam}: no frame in five reads"
        assert all(f.stream == stream for f in frames)
        assert [f.index for f in frames] == sorted(f.index for f in frames)
        if stream == "thermal":
            assert frames[-1].image.dtype == np.uint16 and frames[-1].image.std() > 0
