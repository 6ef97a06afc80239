"""ReplaySource: a recording's stream read back like a camera, paced by an injected clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from station.acquire.recording import Recording, RecordingWriter, ThermalStreamInfo, VisibleStreamInfo
from station.acquire.sources.base import Source
from station.acquire.sources.replay import ReplaySource
from station.errors import SourceError
from station.types import Frame

THERMAL_TIMES = [0.0, 0.1, 0.25, 0.3, 0.5]  # irregular on purpose: pacing must follow t, not fps
VISIBLE_TIMES = [0.02, 0.09, 0.16, 0.23]


class FakeClock:
    """A monotonic clock that only moves when slept on (or pushed by a test), recording every sleep."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def recording(tmp_path: Path) -> Recording:
    path = tmp_path / "rec"
    thermal = ThermalStreamInfo(width=8, height=6, fps=10.0, camera="lepton", encoding="tlinear-centikelvin")
    visible = VisibleStreamInfo(width=16, height=12, fps=15.0, camera="webcam")
    with RecordingWriter(path, source="simulated", thermal=thermal, visible=visible) as writer:
        for k, t in enumerate(THERMAL_TIMES):
            writer.write(Frame(np.full((6, 8), 1000 + k, np.uint16), t, k))
        for k, t in enumerate(VISIBLE_TIMES):
            writer.write(Frame(np.full((12, 16, 3), 10 * k, np.uint8), t, k))
    return Recording.open(path)


def read_all(source: ReplaySource, limit: int = 100) -> list[Frame]:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
        assert len(frames) <= limit, "replay did not finish"
    return frames


def test_fast_mode_yields_every_frame_in_order_without_sleeping(recording: Recording) -> None:
    clock = FakeClock()
    with ReplaySource(recording, "thermal", realtime=False, clock=clock, sleep=clock.sleep) as source:
        assert isinstance(source, Source)
        assert not source.finished
        frames = read_all(source)
        assert source.finished
        assert source.read() is None  # stays finished
    assert [f.t for f in frames] == THERMAL_TIMES
    assert [f.index for f in frames] == list(range(len(THERMAL_TIMES)))
    assert [int(f.image[0, 0]) for f in frames] == [1000 + k for k in range(len(THERMAL_TIMES))]
    assert clock.sleeps == []


def test_realtime_sleeps_until_each_frames_time(recording: Recording) -> None:
    clock = FakeClock()
    with ReplaySource(recording, "thermal", clock=clock, sleep=clock.sleep) as source:
        frames = read_all(source)
    assert len(frames) == len(THERMAL_TIMES)
    assert clock.sleeps == pytest.approx(np.diff(THERMAL_TIMES).tolist())
    assert clock.now == pytest.approx(100.0 + THERMAL_TIMES[-1])


def test_realtime_pacing_scales_with_speed(recording: Recording) -> None:
    clock = FakeClock()
    with ReplaySource(recording, "thermal", speed=2.0, clock=clock, sleep=clock.sleep) as source:
        frames = read_all(source)
    assert [f.t for f in frames] == THERMAL_TIMES  # times are the recording's, only the waits shrink
    assert clock.sleeps == pytest.approx((np.diff(THERMAL_TIMES) / 2).tolist())


def test_realtime_pacing_counts_from_the_first_read_and_never_waits_when_late(recording: Recording) -> None:
    """A slow consumer gets the next frame at once; the schedule does not drift later."""
    clock = FakeClock()
    source = ReplaySource(recording, "visible", clock=clock, sleep=clock.sleep)
    source.open()
    clock.now += 5.0  # time between open and the first read does not count
    assert source.read().t == 0.02
    assert clock.sleeps == pytest.approx([0.02])  # due at start + t_0, start being the first read
    clock.now += 0.2  # the consumer took longer than the next two frame gaps
    assert source.read().t == 0.09
    assert source.read().t == 0.16
    assert len(clock.sleeps) == 1  # both were late: returned at once
    assert source.read().t == 0.23  # due at start + 0.23, the clock is at start + 0.22
    assert clock.sleeps[1:] == pytest.approx([0.01])
    source.close()


def test_loop_restarts_with_monotonic_time_and_index(recording: Recording) -> None:
    n = len(THERMAL_TIMES)
    with ReplaySource(recording, "thermal", realtime=False, loop=True) as source:
        frames = [source.read() for _ in range(2 * n + 1)]
        assert not source.finished
    times = [f.t for f in frames]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[n] == pytest.approx(THERMAL_TIMES[0] + recording.duration)
    assert times[2 * n] == pytest.approx(THERMAL_TIMES[0] + 2 * recording.duration)
    assert [f.index for f in frames] == list(range(2 * n + 1))
    assert all(np.array_equal(frames[k].image, frames[k + n].image) for k in range(n))


def test_loop_paces_across_the_wrap(recording: Recording) -> None:
    clock = FakeClock()
    with ReplaySource(recording, "thermal", loop=True, clock=clock, sleep=clock.sleep) as source:
        for _ in range(len(THERMAL_TIMES) + 1):
            source.read()
    # The wrap waits from the last frame to the end of its period (duration = last t + 1/fps).
    assert clock.sleeps[-1] == pytest.approx(recording.duration - THERMAL_TIMES[-1])


def test_visible_replay_from_a_path(recording: Recording) -> None:
    with ReplaySource(str(recording.path), "visible", realtime=False) as source:
        frames = read_all(source)
        info = source.describe()
    assert [f.t for f in frames] == VISIBLE_TIMES
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 10, 20, 30]
    assert info["name"] == "replay" and info["stream"] == "visible"
    assert info["recording"] == str(recording.path)
    assert info["frames"] == len(VISIBLE_TIMES) and info["fps"] == 15.0


def test_describe_thermal(recording: Recording) -> None:
    info = ReplaySource(recording, "thermal").describe()
    assert info["frames"] == len(THERMAL_TIMES) and info["fps"] == 10.0 and info["stream"] == "thermal"


def test_reopen_starts_again(recording: Recording) -> None:
    source = ReplaySource(recording, "thermal", realtime=False)
    source.open()
    read_all(source)
    source.close()
    source.open()
    assert not source.finished and source.read().index == 0
    source.close()
    source.close()  # twice is fine


def test_faults(tmp_path: Path, recording: Recording) -> None:
    with pytest.raises(SourceError, match="meta.json: missing"):
        ReplaySource(tmp_path, "thermal").open()
    with pytest.raises(SourceError, match="read\\(\\) before open"):
        ReplaySource(recording, "thermal").read()
    with pytest.raises(ValueError, match="speed"):
        ReplaySource(recording, "thermal", speed=0)
    with pytest.raises(ValueError, match="stream"):
        ReplaySource(recording, "infrared")  # type: ignore[arg-type]
    ReplaySource(recording, "thermal").close()  # never opened: still safe


def test_visible_stream_of_a_thermal_only_recording(tmp_path: Path) -> None:
    thermal = ThermalStreamInfo(width=8, height=6, fps=10.0, camera="lepton", encoding="tlinear-centikelvin")
    with RecordingWriter(tmp_path / "rec", source="simulated", thermal=thermal, visible=None) as writer:
        writer.write(Frame(np.zeros((6, 8), np.uint16), 0.0, 0))
    with pytest.raises(SourceError, match="thermal-only recording"):
        ReplaySource(tmp_path / "rec", "visible").open()


def test_empty_recording_with_loop_finishes(tmp_path: Path) -> None:
    thermal = ThermalStreamInfo(width=8, height=6, fps=10.0, camera="lepton", encoding="tlinear-centikelvin")
    with RecordingWriter(tmp_path / "rec", source="simulated", thermal=thermal, visible=None):
        pass
    with ReplaySource(tmp_path / "rec", "thermal", loop=True) as source:
        assert source.read() is None and source.finished
