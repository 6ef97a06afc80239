"""Replay one stream of a recording as if it were a camera.

This is what lets the whole station run without hardware (``station demo``, ``station run
--recording``, the tests): the capture thread, the pairer and the pipeline cannot tell a replayed
stream from a live one, except that its ``t`` values are the recording's own seconds from the start.

Pacing is done against an injectable clock and sleep, so tests check the exact waits without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from station.acquire.recording import Recording
from station.acquire.sources.base import Source
from station.acquire.sources.pacing import Pacer
from station.errors import RecordingError, SourceError
from station.types import STREAMS, Frame, Stream


class ReplaySource(Source):
    """One stream of a recording, delivered in real time or as fast as it can be read.

    Parameters
    ----------
    recording
        An open :class:`~station.acquire.recording.Recording`, or the path of one (opened by :meth:`open`).
    stream
        ``"thermal"`` or ``"visible"``. Replay the two streams with two sources, as two cameras would be.
    realtime
        Deliver frame ``k`` no earlier than ``start + t_k / speed`` (``start`` is the clock at the first
        :meth:`read`), so downstream code sees the timing it would see live. Without it frames come as
        fast as they decode: for batch evaluation and ``--fast``.
    speed
        Playback rate in real time; 2.0 plays twice as fast. Frame times are never scaled, only waits.
    loop
        Start again at the end instead of finishing. Each pass adds the recording's duration to ``t``
        and its frame count to ``index``, so both stay increasing, as a live camera's would.
    clock, sleep
        The monotonic clock and the sleep used for pacing; injected by tests.
    """

    name = "replay"

    def __init__(
        self,
        recording: Recording | str | Path,
        stream: Stream,
        *,
        realtime: bool = True,
        speed: float = 1.0,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if stream not in STREAMS:
            raise ValueError(f"stream: expected one of {', '.join(STREAMS)}, got {stream!r}")
        self.stream = stream
        self.realtime = realtime
        self._pacer = Pacer(speed, clock=clock, sleep=sleep)
        self.speed = self._pacer.speed
        self.loop = loop
        self._given = recording
        self.recording: Recording | None = recording if isinstance(recording, Recording) else None
        self._frames: Iterator[Frame] | None = None
        self._pass = 0
        self.finished = False

    # ----------------------------------------------------------------- lifecycle
    def open(self) -> None:
        """Open the recording (if given by path) and check it has the stream to replay."""
        if self.recording is None:
            try:
                self.recording = Recording.open(self._given)  # type: ignore[arg-type]
            except RecordingError as exc:
                raise SourceError(str(exc)) from exc
        if self.stream == "visible" and self.recording.visible is None:
            raise SourceError(
                f"{self.recording.path}: thermal-only recording, it has no visible stream to replay"
            )
        self._restart()
        self._pacer.reset()
        self._pass = 0
        self.finished = False

    def close(self) -> None:
        """Stop reading (releasing the video decoder). Safe to call twice or before :meth:`open`."""
        frames, self._frames = self._frames, None
        if frames is not None and hasattr(frames, "close"):
            frames.close()

    def _restart(self) -> None:
        self.close()
        assert self.recording is not None
        self._frames = self.recording.frames(self.stream)

    # ----------------------------------------------------------------- reading
    def read(self) -> Frame | None:
        """The next frame, after waiting for its time when replaying in real time; ``None`` at the end."""
        if self.finished:
            return None
        if self._frames is None:
            raise SourceError(f"replay of {self._given}: read() before open()")
        frame = self._next_frame()
        if frame is None:
            self.finished = True
            self.close()
            return None
        if self.realtime:
            self._pacer.wait_until(frame.t)
        return frame

    def _next_frame(self) -> Frame | None:
        """The next recorded frame shifted onto this pass's time and index, wrapping when looping."""
        assert self._frames is not None and self.recording is not None
        frame = next(self._frames, None)
        if frame is None and self.loop and self.recording.count(self.stream) > 0:
            self._pass += 1
            self._restart()
            frame = next(self._frames, None)
        if frame is None:
            return None
        if self._pass == 0:
            return frame
        shift_t = self._pass * self.recording.duration
        shift_index = self._pass * self.recording.count(self.stream)
        return Frame(frame.image, frame.t + shift_t, frame.index + shift_index, frame.meta)

    def describe(self) -> dict[str, object]:
        """Name, stream, recording path, frame count and frame rate, plus the replay settings."""
        info: dict[str, object] = {**super().describe(), "recording": str(self._given)}
        if self.recording is not None:
            info.update(
                recording=str(self.recording.path),
                frames=self.recording.count(self.stream),
                fps=self.recording.fps(self.stream),
            )
        info.update(realtime=self.realtime, speed=self.speed, loop=self.loop)
        return info
