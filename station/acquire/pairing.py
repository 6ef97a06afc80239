"""Matching each thermal frame with the visible frame captured nearest to it in time.

The two cameras run free at different rates (a Lepton at ~9 Hz, a webcam at 30), so there is no frame
"belonging" to another; the pair is the visible frame nearest in time. A face found in the visible
frame is measured in the thermal one, so a person who moved between the two captures is measured in
the wrong place: pairs farther apart than a tolerance are dropped rather than measured wrongly.

:class:`FramePairer` is pure (no threads, no clock) so that replay and tests drive it with plain
frames; :func:`live_pairs` puts it behind two capture threads for live cameras.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from station.acquire.capture import CaptureThread, LatestFrameSlot
from station.acquire.sources.base import Source
from station.types import Frame, FramePair, SystemEvent


class FramePairer:
    """Pairs thermal frames with the nearest visible frame, frame by frame as they arrive.

    A thermal frame is decided once a visible frame at or after its time has arrived: from then on no
    visible frame still to come can be nearer, provided frames arrive in roughly time order. Until then
    it waits; if the visible stream stalls, at most ``history`` thermal frames wait before the oldest is
    decided with what has arrived.

    Parameters
    ----------
    tolerance_s
        Largest ``|visible.t - thermal.t|`` accepted; a farther nearest frame drops the thermal frame.
        At walking speed (1.4 m/s) 60 ms is ~8 cm, about the size of the canthus ROI's margin.
    thermal_only
        No visible camera: every thermal frame is passed on at once with ``visible=None``.
    history
        How many recent visible frames (and waiting thermal frames) are kept.
    """

    def __init__(self, tolerance_s: float = 0.06, *, thermal_only: bool = False, history: int = 16) -> None:
        if not tolerance_s >= 0:
            raise ValueError(f"tolerance_s: expected >= 0 seconds, got {tolerance_s}")
        if history < 1:
            raise ValueError(f"history: expected >= 1, got {history}")
        self.tolerance_s = float(tolerance_s)
        self.thermal_only = thermal_only
        self.history = history
        self._visible: deque[Frame] = deque(maxlen=history)
        self._waiting: list[Frame] = []
        #: Time of the newest visible frame so far (-inf before the first).
        self.newest_visible_t = -math.inf
        #: Pairs produced.
        self.pairs = 0
        #: Thermal frames dropped because no visible frame was within the tolerance.
        self.dropped_thermal = 0
        #: Visible frames pushed in thermal-only mode, which have nothing to pair with.
        self.ignored_visible = 0
        #: Largest ``|skew|`` among the pairs produced, seconds.
        self.max_abs_skew_s = 0.0
        self._sum_abs_skew_s = 0.0

    @property
    def mean_abs_skew_s(self) -> float:
        """Mean ``|skew|`` of the pairs produced, seconds (0 before the first pair)."""
        return self._sum_abs_skew_s / self.pairs if self.pairs else 0.0

    @property
    def waiting(self) -> int:
        """Thermal frames still waiting for a later visible frame."""
        return len(self._waiting)

    def stats(self) -> dict[str, float | int]:
        """The counters, for ``station doctor`` and the bench scripts."""
        return {
            "pairs": self.pairs,
            "dropped_thermal": self.dropped_thermal,
            "max_abs_skew_s": self.max_abs_skew_s,
            "mean_abs_skew_s": self.mean_abs_skew_s,
        }

    def push(self, frame: Frame) -> list[FramePair]:
        """Take one frame of either stream; return the pairs it lets be decided, in thermal time order."""
        if frame.stream == "visible":
            if self.thermal_only:
                self.ignored_visible += 1
                return []
            self._visible.append(frame)
            self.newest_visible_t = max(self.newest_visible_t, frame.t)
            return self._decide_ready()
        if self.thermal_only:
            return [self._accept(frame, None)]
        self._waiting.append(frame)
        self._waiting.sort(key=lambda f: f.t)
        out = self._decide_ready()
        while len(self._waiting) > self.history:
            out.extend(self._decide(self._waiting.pop(0)))
        return out

    def flush(self) -> list[FramePair]:
        """Decide every waiting thermal frame with the visible frames there are: the stream has ended."""
        out: list[FramePair] = []
        while self._waiting:
            out.extend(self._decide(self._waiting.pop(0)))
        return out

    def _decide_ready(self) -> list[FramePair]:
        out: list[FramePair] = []
        while self._waiting and self._waiting[0].t <= self.newest_visible_t:
            out.extend(self._decide(self._waiting.pop(0)))
        return out

    def _decide(self, thermal: Frame) -> list[FramePair]:
        if not self._visible:
            self.dropped_thermal += 1
            return []
        # Ties go to the earlier visible frame: it was already on the sensor when the thermal was taken.
        nearest = min(self._visible, key=lambda v: (abs(v.t - thermal.t), v.t))
        if abs(nearest.t - thermal.t) > self.tolerance_s:
            self.dropped_thermal += 1
            return []
        return [self._accept(thermal, nearest)]

    def _accept(self, thermal: Frame, visible: Frame | None) -> FramePair:
        pair = FramePair(thermal, visible)
        skew = abs(pair.skew)
        self.pairs += 1
        self.max_abs_skew_s = max(self.max_abs_skew_s, skew)
        self._sum_abs_skew_s += skew
        return pair


def live_pairs(
    thermal: Source,
    visible: Source | None,
    *,
    tolerance_s: float = 0.06,
    stop: threading.Event,
    on_event: Callable[[SystemEvent], None],
    lost_after_s: float = 2.0,
    poll_s: float = 0.1,
    pairer: FramePairer | None = None,
) -> Iterator[FramePair]:
    """Pairs from two live sources, each read on its own :class:`CaptureThread`.

    Driven by the thermal camera: each new thermal frame is pushed with the newest visible frame, and,
    if the visible camera has not yet caught up with its time, the visible slot is watched for a little
    longer than the tolerance, since that is how long a near-enough visible frame can take to come.
    Visible frames overwritten in between are never seen, by design: only the newest matters live.

    Parameters
    ----------
    thermal, visible
        The sources, unopened; ``visible=None`` runs thermal-only.
    tolerance_s
        Passed to :class:`FramePairer`.
    stop
        Set it to end the iteration (within ``poll_s``); the capture threads are stopped on the way out.
    on_event
        Receives the capture threads' events, on their threads.
    lost_after_s
        Passed to each :class:`CaptureThread`.
    poll_s
        How often the stop event and the thermal source's end are checked while no frame comes.
    pairer
        A pairer of the caller's, to keep its counts after the iteration ends (default: a new one).

    Yields
    ------
    FramePair
        In thermal time order; ends when ``stop`` is set or the thermal source has finished.
    """
    if pairer is None:
        pairer = FramePairer(tolerance_s, thermal_only=visible is None)
    thermal_slot = LatestFrameSlot()
    thermal_thread = CaptureThread(thermal, thermal_slot, on_event, lost_after_s=lost_after_s)
    threads = [thermal_thread]
    visible_slot: LatestFrameSlot | None = None
    if visible is not None:
        visible_slot = LatestFrameSlot()
        threads.append(CaptureThread(visible, visible_slot, on_event, lost_after_s=lost_after_s))
    last_visible = -1

    def take_visible(timeout: float) -> list[FramePair]:
        nonlocal last_visible
        if visible_slot is None:
            return []
        frame = visible_slot.wait_newer(last_visible, timeout)
        if frame is None:
            return []
        last_visible = frame.index
        return pairer.push(frame)

    for thread in threads:
        thread.start()
    try:
        last_thermal = -1
        while not stop.is_set():
            frame = thermal_slot.wait_newer(last_thermal, poll_s)
            if frame is None:
                if thermal_thread.is_alive() or thermal_slot.wait_newer(last_thermal, 0) is not None:
                    continue
                if not thermal_thread.source_finished:
                    raise RuntimeError(
                        f"the capture thread for {thermal.name} ended unexpectedly; see the log"
                    )
                yield from pairer.flush()
                return
            last_thermal = frame.index
            out = take_visible(0)
            out += pairer.push(frame)
            # A visible frame within the tolerance after this one reaches its slot about that long later.
            # Wall time only bounds the wait; frames are compared by their own times, never with it.
            deadline = time.monotonic() + tolerance_s + 0.05
            while visible_slot is not None and pairer.newest_visible_t < frame.t and not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                out += take_visible(remaining)
            yield from out
    finally:
        for thread in threads:
            thread.stop(timeout=0)
        for thread in threads:
            thread.join(timeout=2.0)
