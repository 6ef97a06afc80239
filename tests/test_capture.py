"""The latest-frame slot and the capture thread's lost -> back-off -> recovered cycle.

The capture thread runs against real adapters on the fake V4L2 bus, with short timings: a camera that
stops answering is noticed after 0.1 s and reopened after 0.02, 0.04, 0.08, 0.08 ... s.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from fakes import FakeV4L2Bus, lepton, wait_until

from station.acquire.capture import CaptureThread, LatestFrameSlot
from station.acquire.sources.lepton import LeptonSource
from station.acquire.sources.opencv_visible import OpenCVVisibleSource
from station.acquire.sources.uvc_y16 import UVCY16Source
from station.types import Frame, SystemEvent

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

BACKOFF = (0.02, 0.08)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> FakeV4L2Bus:
    return FakeV4L2Bus().install(monkeypatch)


class Recorder:
    """Collects the thread's events and back-off waits (waiting for real, briefly)."""

    def __init__(self) -> None:
        self.events: list[SystemEvent] = []
        self.delays: list[float] = []

    def on_event(self, event: SystemEvent) -> None:
        self.events.append(event)

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(seconds)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


def thermal(index: int, t: float | None = None) -> Frame:
    return Frame(np.zeros((2, 2), np.uint16), index * 0.1 if t is None else t, index)


# -- LatestFrameSlot ----------------------------------------------------------------------------------


def test_slot_keeps_only_the_newest_frame() -> None:
    slot = LatestFrameSlot()
    assert slot.latest() is None
    for i in range(3):
        slot.put(thermal(i))
    assert slot.latest().index == 2
    assert slot.wait_newer(0, timeout=0).index == 2  # frame 1 was overwritten, never queued
    assert slot.wait_newer(2, timeout=0.01) is None
    assert slot.puts == 3


def test_slot_wakes_a_waiter_when_a_newer_frame_arrives() -> None:
    slot = LatestFrameSlot()
    slot.put(thermal(0))
    got: list[Frame | None] = []
    waiter = threading.Thread(target=lambda: got.append(slot.wait_newer(0, timeout=2.0)))
    waiter.start()
    time.sleep(0.02)
    assert got == []  # still waiting: frame 0 is not newer than 0
    start = time.monotonic()
    slot.put(thermal(1))
    waiter.join(1.0)
    assert got and got[0].index == 1
    assert time.monotonic() - start < 0.5


# -- CaptureThread ------------------------------------------------------------------------------------


def test_lost_camera_is_reopened_with_backoff_and_recovers(bus: FakeV4L2Bus) -> None:
    camera = bus.plug(0, lepton())
    camera.stop_answering_after(5)
    slot, rec = LatestFrameSlot(), Recorder()
    thread = CaptureThread(
        LeptonSource(0), slot, rec.on_event, lost_after_s=0.1, backoff=BACKOFF, sleep=rec.sleep
    )
    started = time.monotonic()
    thread.start()
    try:
        assert wait_until(lambda: rec.kinds() == ["camera_lost"])
        lost = rec.events[0]
        assert "thermal source lepton:0: no frame for 0.1 s" in lost.detail
        assert thread.lost and slot.latest().index == 4
        # While it is off the bus the thread keeps trying, waiting longer each time, up to the cap.
        attempts = camera.open_attempts
        assert wait_until(lambda: camera.open_attempts >= attempts + 3)
        assert rec.kinds() == ["camera_lost"], "one event per outage, not one per failed attempt"
        camera.answer_again()
        assert wait_until(lambda: rec.kinds() == ["camera_lost", "camera_recovered"])
        assert wait_until(lambda: slot.latest().index >= 7)
        frame = slot.latest()
        assert frame.meta["frame_count"] == 1000 + frame.index  # same stream, indices carry on
        assert rec.delays[:3] == [0.02, 0.04, 0.08] and max(rec.delays) == 0.08
        assert lost.t < rec.events[1].t <= time.monotonic()  # event times are on the frames' clock
        assert [e.stream for e in rec.events] == ["thermal", "thermal"]  # which camera, as a fact, not in text

        # A second outage starts the back-off from the beginning again.
        rec.delays.clear()
        camera.stop_answering_after(1)
        assert wait_until(lambda: rec.kinds().count("camera_lost") == 2)
        camera.answer_again()
        assert wait_until(lambda: rec.kinds().count("camera_recovered") == 2)
        assert rec.delays[0] == 0.02
    finally:
        assert thread.stop(timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert not bus.captures[-1].opened, "the thread closes the camera on the way out"


def test_camera_missing_at_start_is_lost_then_found_when_plugged_in(bus: FakeV4L2Bus) -> None:
    slot, rec = LatestFrameSlot(), Recorder()
    thread = CaptureThread(
        UVCY16Source(2), slot, rec.on_event, lost_after_s=0.1, backoff=BACKOFF, sleep=rec.sleep
    )
    thread.start()
    try:
        assert wait_until(lambda: rec.kinds() == ["camera_lost"])
        assert rec.events[0].detail.startswith("thermal camera uvc:2 could not be opened: ")
        assert wait_until(lambda: len(rec.delays) >= 2)
        bus.plug(2, lepton())
        assert wait_until(lambda: rec.kinds() == ["camera_lost", "camera_recovered"])
        assert slot.latest().image.shape == (122, 160)  # telemetry_rows=0: the rows are kept
    finally:
        assert thread.stop(timeout=0.5)


def test_a_read_that_raises_counts_as_not_answering_with_its_reason(bus: FakeV4L2Bus) -> None:
    bus.plug(0, lepton(layout="flat-uint8"))
    rec = Recorder()
    thread = CaptureThread(
        LeptonSource(0), LatestFrameSlot(), rec.on_event, lost_after_s=0.05, backoff=BACKOFF
    )
    thread.start()
    try:
        assert wait_until(lambda: rec.kinds() == ["camera_lost"])
        assert "flirpy could not decode the frame's telemetry" in rec.events[0].detail
        assert thread.last_error is not None
    finally:
        assert thread.stop(timeout=0.5)


def test_finished_file_emits_source_finished_and_ends(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (32, 24))
    for _ in range(3):
        writer.write(np.zeros((24, 32, 3), np.uint8))
    writer.release()
    slot, rec = LatestFrameSlot(), Recorder()
    thread = CaptureThread(OpenCVVisibleSource(str(path)), slot, rec.on_event, clock=lambda: 42.0)
    thread.start()
    thread.join(2.0)
    assert not thread.is_alive() and thread.source_finished
    # Stamped on the file's own timeline (its last frame is at 2/25 s), not with the injected clock,
    # which only stamps events raised before any frame has come.
    [event] = rec.events
    assert (event.kind, event.detail) == ("source_finished", f"visible source {path}: no more frames")
    assert 2 / 25 <= event.t < 2 / 25 + 0.5
    assert slot.latest().index == 2


def test_stop_cuts_a_long_backoff_short(bus: FakeV4L2Bus) -> None:
    rec = Recorder()
    thread = CaptureThread(UVCY16Source(5), LatestFrameSlot(), rec.on_event, backoff=(30.0, 60.0))
    thread.start()
    assert wait_until(lambda: rec.kinds() == ["camera_lost"])
    start = time.monotonic()
    assert thread.stop(timeout=1.0)
    assert time.monotonic() - start < 0.2


def test_a_failing_listener_does_not_stop_the_camera(bus: FakeV4L2Bus) -> None:
    camera = bus.plug(0, lepton())
    camera.stop_answering_after(2)
    slot = LatestFrameSlot()

    def explode(event: SystemEvent) -> None:
        raise RuntimeError("listener bug")

    thread = CaptureThread(LeptonSource(0), slot, explode, lost_after_s=0.05, backoff=BACKOFF)
    thread.start()
    try:
        assert wait_until(lambda: camera.open_attempts >= 2)  # lost was emitted (and raised); it went on
        camera.answer_again()
        assert wait_until(lambda: slot.latest() is not None and slot.latest().index >= 3)
    finally:
        assert thread.stop(timeout=0.5)


@pytest.mark.parametrize("backoff", [(0.0, 1.0), (2.0, 1.0)])
def test_backoff_must_be_increasing_and_positive(backoff: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="expected 0 < first <= longest"):
        CaptureThread(UVCY16Source(0), LatestFrameSlot(), print, backoff=backoff)
