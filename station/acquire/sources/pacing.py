"""Real-time pacing for sources that could go faster than a camera (replay, the live simulator)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pacer:
    """Holds each frame back until its time: frame ``t`` is released at ``start + t / speed``.

    ``start`` is the clock at the first frame, so a stream whose first frame is at 0.02 s waits 0.02 s.
    Late frames go at once and are never dropped. Clock and sleep are injectable so tests check the
    exact waits without waiting.
    """

    def __init__(
        self,
        speed: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: expected a positive playback rate, got {speed!r}")
        self.speed = float(speed)
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None

    def reset(self) -> None:
        self._start = None

    def wait_until(self, t: float) -> None:
        now = self._clock()
        if self._start is None:
            self._start = now
        delay = self._start + t / self.speed - now
        if delay > 0:
            self._sleep(delay)
