"""FramePairer's choices on plain frames, and live_pairs end to end on two fake-backed cameras."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest
from fakes import FakeV4L2Bus, lepton, webcam

from station.acquire.pairing import FramePairer, live_pairs
from station.acquire.sources.base import Source
from station.acquire.sources.lepton import LeptonSource
from station.acquire.sources.opencv_visible import OpenCVVisibleSource
from station.types import Frame, FramePair, SystemEvent

pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")


def thermal(t: float, index: int = 0) -> Frame:
    return Frame(np.zeros((4, 4), np.uint16), t, index)


def visible(t: float, index: int = 0) -> Frame:
    return Frame(np.zeros((4, 4, 3), np.uint8), t, index)


def push_all(pairer: FramePairer, frames: list[Frame]) -> list[FramePair]:
    return [pair for frame in frames for pair in pairer.push(frame)]


# -- FramePairer --------------------------------------------------------------------------------------


def test_thermal_waits_for_a_later_visible_frame_then_takes_the_nearest() -> None:
    pairer = FramePairer(0.06)
    assert push_all(pairer, [visible(0.000, 0), visible(0.033, 1), thermal(0.050)]) == []
    assert pairer.waiting == 1
    (pair,) = pairer.push(visible(0.066, 2))  # 0.016 away beats 0.017 away
    assert pair.visible.index == 2 and pair.skew == pytest.approx(0.016)
    assert pairer.waiting == 0


def test_nearest_can_be_the_earlier_visible_frame() -> None:
    pairer = FramePairer(0.06)
    pairs = push_all(pairer, [visible(0.100, 0), thermal(0.110), visible(0.133, 1)])
    assert [(p.thermal.t, p.visible.index) for p in pairs] == [(0.110, 0)]
    assert pairs[0].skew == pytest.approx(-0.010)


def test_thermal_already_behind_the_visible_stream_is_decided_at_once() -> None:
    pairer = FramePairer(0.06)
    pairer.push(visible(0.2, 0))
    (pair,) = pairer.push(thermal(0.19))
    assert pair.visible.index == 0


def test_visible_arriving_out_of_order_is_still_considered() -> None:
    pairer = FramePairer(0.06)
    pairs = push_all(pairer, [visible(0.10, 1), thermal(0.19), visible(0.18, 2), visible(0.30, 3)])
    assert pairs[0].visible.index == 2
    pairer = FramePairer(0.06)
    pairs = push_all(pairer, [visible(0.20, 2), visible(0.10, 1), thermal(0.19), visible(0.30, 3)])
    assert pairs[0].visible.index == 2


def test_too_far_is_dropped_and_counted() -> None:
    pairer = FramePairer(0.06)
    assert push_all(pairer, [visible(0.0, 0), thermal(0.1), visible(0.2, 1)]) == []
    assert pairer.dropped_thermal == 1 and pairer.pairs == 0
    (pair,) = push_all(pairer, [thermal(0.27), visible(0.30, 2)])
    assert pair.visible.index == 2
    assert pairer.stats() == {
        "pairs": 1,
        "dropped_thermal": 1,
        "max_abs_skew_s": pytest.approx(0.03),
        "mean_abs_skew_s": pytest.approx(0.03),
    }


def test_skew_statistics_track_the_worst_pair() -> None:
    pairer = FramePairer(0.1)
    push_all(pairer, [visible(0.00, 0), thermal(0.01), visible(0.10, 1), thermal(0.17), visible(0.2, 2)])
    assert pairer.pairs == 2
    assert pairer.max_abs_skew_s == pytest.approx(0.03)
    assert pairer.mean_abs_skew_s == pytest.approx(0.02)


def test_thermal_only_passes_every_frame_at_once() -> None:
    pairer = FramePairer(thermal_only=True)
    pairs = push_all(pairer, [thermal(0.0, 0), visible(0.0), thermal(0.1, 1)])
    assert [(p.thermal.index, p.visible) for p in pairs] == [(0, None), (1, None)]
    assert pairer.ignored_visible == 1 and pairer.flush() == []


def test_flush_decides_what_is_left_at_the_end() -> None:
    pairer = FramePairer(0.06)
    push_all(pairer, [visible(1.00, 0), thermal(1.02, 0), thermal(1.50, 1)])
    pairs = pairer.flush()
    assert [(p.thermal.index, p.visible.index) for p in pairs] == [(0, 0)]
    assert pairer.dropped_thermal == 1 and pairer.waiting == 0


def test_a_stalled_visible_stream_does_not_hold_thermal_frames_forever() -> None:
    pairer = FramePairer(0.06, history=4)
    pairer.push(visible(0.0, 0))
    out = push_all(pairer, [thermal(0.01 * (i + 1), i) for i in range(6)])
    assert pairer.waiting == 4
    assert [p.thermal.index for p in out] == [0, 1]  # the oldest, decided with what there was


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="tolerance_s: expected >= 0 seconds, got -1"):
        FramePairer(-1)
    with pytest.raises(ValueError, match="history: expected >= 1, got 0"):
        FramePairer(history=0)


# -- live_pairs ---------------------------------------------------------------------------------------


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> FakeV4L2Bus:
    return FakeV4L2Bus().install(monkeypatch)


def take(pairs: Iterator[FramePair], count: int, stop: threading.Event) -> list[FramePair]:
    """Collect pairs until ``count``, then ask the iteration to stop (it may yield a few more)."""
    got = []
    for pair in pairs:
        got.append(pair)
        if len(got) == count:
            stop.set()
    return got


def capture_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("capture-")]


def test_live_pairs_from_two_cameras(bus: FakeV4L2Bus) -> None:
    bus.plug(0, lepton(fps=60))
    bus.plug(1, webcam(fps=150))
    stop, events = threading.Event(), []
    pairs = take(
        live_pairs(
            LeptonSource(0), OpenCVVisibleSource(1), tolerance_s=0.03, stop=stop, on_event=events.append
        ),
        8,
        stop,
    )
    assert len(pairs) >= 8
    assert all(p.thermal.image.shape == (120, 160) and p.visible.image.shape == (48, 64, 3) for p in pairs)
    assert all(abs(p.skew) <= 0.03 for p in pairs)
    indices = [p.thermal.index for p in pairs]
    assert indices == sorted(set(indices))
    assert all(p.thermal.meta["frame_count"] == 1000 + p.thermal.index for p in pairs)
    assert events == []
    assert capture_threads() == [], "the capture threads end with the iteration"
    assert not any(c.opened for c in bus.captures), "and the cameras are released"


def test_live_pairs_thermal_only_and_closing_the_generator(bus: FakeV4L2Bus) -> None:
    bus.plug(0, lepton(fps=100))
    stop = threading.Event()
    pairs = live_pairs(LeptonSource(0), None, stop=stop, on_event=lambda e: None)
    got = [next(pairs) for _ in range(3)]
    pairs.close()  # a consumer that walks away must not leave a camera running
    assert [p.visible for p in got] == [None] * 3
    assert capture_threads() == []


class FiniteThermal(Source):
    """A finite thermal source, as the recording replay (built elsewhere) is: n frames, then finished."""

    stream = "thermal"
    name = "finite"

    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def open(self) -> None:
        pass

    def read(self) -> Frame | None:
        if self.i == self.n:
            self.finished = True
            return None
        self.i += 1
        return thermal(self.i * 0.1, self.i - 1)

    def close(self) -> None:
        pass


def test_live_pairs_end_with_the_thermal_source() -> None:
    stop, events = threading.Event(), []
    pairs = list(live_pairs(FiniteThermal(3), None, stop=stop, on_event=events.append, poll_s=0.01))
    assert pairs and pairs[-1].thermal.index == 2  # the slot keeps the newest, so the last one is there
    assert [e.kind for e in events] == ["source_finished"]
    assert capture_threads() == []


def test_live_pairs_reports_a_lost_camera(bus: FakeV4L2Bus) -> None:
    bus.plug(0, lepton(fps=100))
    stop, events = threading.Event(), []
    pairs = live_pairs(
        LeptonSource(0), OpenCVVisibleSource(1), stop=stop, on_event=events.append, lost_after_s=0.05
    )
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    assert list(pairs) == []  # no visible camera, so every thermal frame is dropped
    timer.join()
    assert [e.kind for e in events] == ["camera_lost"]
    assert events[0].detail.startswith("visible camera 1 could not be opened: ")
    assert isinstance(events[0], SystemEvent)
