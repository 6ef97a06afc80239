"""One thread per camera, keeping only its latest frame, and bringing the camera back when it drops out.

Cameras deliver at their own pace and the pipeline consumes at its own; a queue between them would
grow whenever the pipeline is slower and screen people against stale frames. The slot keeps only the
newest frame instead. USB cameras also drop out (a loose cable, a power blip, a firmware reset): the
capture thread notices, says so once as a ``camera_lost`` event, and keeps trying to reopen the camera
with exponential back-off, so the station recovers by itself when the camera comes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from station.acquire.sources.base import Source
from station.errors import SourceError
from station.types import Frame, SystemEvent

log = logging.getLogger(__name__)


class LatestFrameSlot:
    """The newest frame of one stream, shared between its capture thread and the consumer.

    ``put`` overwrites and never blocks, so a slow consumer cannot slow down (or back up) the camera.
    Waiting is by frame index: a consumer remembers the last index it used and asks for a newer one.
    This relies on a source's indices increasing for as long as it lives, across reopenings too.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._frame: Frame | None = None
        self.puts = 0  # frames put so far; how many were overwritten unseen is puts minus those taken

    def put(self, frame: Frame) -> None:
        with self._changed:
            self._frame = frame
            self.puts += 1
            self._changed.notify_all()

    def latest(self) -> Frame | None:
        with self._changed:
            return self._frame

    def wait_newer(self, after_index: int, timeout: float) -> Frame | None:
        """The latest frame if its index is above ``after_index``, waiting up to ``timeout`` seconds.

        Returns ``None`` on timeout, so the caller can check whether it should stop.
        """

        def newer() -> bool:
            return self._frame is not None and self._frame.index > after_index

        with self._changed:
            if self._changed.wait_for(newer, timeout=max(0.0, timeout)):
                return self._frame
            return None


class CaptureThread:
    """Reads one source into a :class:`LatestFrameSlot` on a daemon thread, recovering from dropouts.

    Parameters
    ----------
    source
        The camera (or file) to read; the thread opens and closes it.
    slot
        Where each frame goes.
    on_event
        Receives ``camera_lost``, ``camera_recovered`` and ``source_finished`` events. It is called on
        the capture thread, so it must be quick and thread-safe (putting on a queue is ideal).
    lost_after_s
        How long a source may go without a frame before it counts as lost. Cameras hiccup, and a lost
        camera stops screening, so this is seconds rather than one missed frame.
    backoff
        ``(first, longest)`` wait in seconds between attempts to reopen a lost source, doubling after each
        failure. Reopening a USB device too eagerly can keep it from re-enumerating.
    sleep
        Waits between reopen attempts; the default waits on the stop event, so :meth:`stop` cuts it
        short. A replacement (tests record the delays with one) should return within its argument.
    clock
        Stamps events raised before the source's first frame. After it, events are stamped on the
        source's own timeline (the last frame's ``t`` plus the wall time since), so a replay's events are
        on the recording's clock, as the headless contract says, and a camera's on the clock its frames
        carry. Outages are timed with ``time.monotonic`` regardless.

    Notes
    -----
    A source that never opens is treated like one that was lost: ``camera_lost`` at once, then retried,
    so a station started before its camera is plugged in begins screening when it arrives.
    """

    #: Longest pause after a read that gave nothing, so a source that fails at once is not spun on.
    POLL_S = 0.05

    def __init__(
        self,
        source: Source,
        slot: LatestFrameSlot,
        on_event: Callable[[SystemEvent], None],
        *,
        lost_after_s: float = 2.0,
        backoff: tuple[float, float] = (0.5, 8.0),
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lost_after_s <= 0:
            raise ValueError(f"lost_after_s: expected > 0 seconds, got {lost_after_s}")
        first, longest = backoff
        if not 0 < first <= longest:
            raise ValueError(f"backoff: expected 0 < first <= longest seconds, got {backoff}")
        self.source = source
        self.slot = slot
        self._on_event = on_event
        self._lost_after_s = lost_after_s
        self._backoff = (float(first), float(longest))
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._stopping.wait
        self._clock = clock
        self._poll_s = min(self.POLL_S, lost_after_s / 4)
        self._thread = threading.Thread(
            target=self._run, name=f"capture-{source.stream}-{source.name}", daemon=True
        )
        #: True once the source reported its end (a file, a recording); the thread then ends.
        self.source_finished = False
        #: True while the source counts as lost (between ``camera_lost`` and ``camera_recovered``).
        self.lost = False
        #: Why reads or opens are failing now (``None`` while frames flow), for events and ``station doctor``.
        self.last_error: str | None = None
        self._last_frame: tuple[float, float] | None = None  # (frame t, time.monotonic() when it came)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 2.0) -> bool:
        """Ask the thread to end and wait up to ``timeout`` seconds; True if it has ended.

        A read already blocked inside a driver cannot be interrupted, so the wait is bounded rather
        than unconditional; the thread is a daemon and will not keep the process alive.
        """
        self._stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff[0]
        opened = False
        failing_since: float | None = None
        try:
            while not self._stopping.is_set():
                if not opened:
                    opened = self._try_open()
                    if not opened:
                        delay = self._back_off(delay)
                        continue
                    failing_since = None
                frame = self._read()
                if self._stopping.is_set():
                    break
                if frame is not None:
                    self._last_frame = (frame.t, time.monotonic())
                    self.slot.put(frame)
                    failing_since = None
                    self.last_error = None
                    if self.lost:
                        self.lost = False
                        delay = self._backoff[0]
                        self._emit("camera_recovered", f"{self._label()}: frames are flowing again")
                    continue
                if self.source.finished:
                    self.source_finished = True
                    self._emit("source_finished", f"{self._label()}: no more frames")
                    break
                now = time.monotonic()  # outages are timed in wall time, whatever clock stamps the events
                failing_since = now if failing_since is None else failing_since
                if now - failing_since < self._lost_after_s:
                    self._stopping.wait(self._poll_s)
                    continue
                if not self.lost:
                    self.lost = True
                    why = f" ({self.last_error})" if self.last_error else ""
                    self._emit(
                        "camera_lost", f"{self._label()}: no frame for {now - failing_since:.1f} s{why}"
                    )
                self._close()
                opened = False
                delay = self._back_off(delay)
        except Exception:  # a bug, not a camera fault: say so once, and leave the thread
            log.exception("capture thread for %s failed", self._label())
        finally:
            self._close()

    def _try_open(self) -> bool:
        try:
            self.source.open()
        except Exception as exc:
            self.last_error = _one_line(exc)
            if not self.lost:
                self.lost = True
                # A SourceError already names the camera; anything else gets the name added.
                detail = (
                    self.last_error if isinstance(exc, SourceError) else f"{self._label()}: {self.last_error}"
                )
                self._emit("camera_lost", detail)
            return False
        return True

    def _read(self) -> Frame | None:
        try:
            return self.source.read()
        except Exception as exc:  # a read that raises is a camera not answering, with a reason to report
            self.last_error = _one_line(exc)
            return None

    def _back_off(self, delay: float) -> float:
        if not self._stopping.is_set():
            self._sleep(delay)
        return min(delay * 2, self._backoff[1])

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception:
            log.exception("closing %s failed", self._label())

    def _emit(self, kind: str, detail: str) -> None:
        try:
            self._on_event(SystemEvent(kind, self._event_time(), detail, stream=self.source.stream))
        except Exception:  # the camera must keep running whatever the listener does
            log.exception("on_event failed for %s", kind)

    def _event_time(self) -> float:
        if self._last_frame is None:
            return self._clock()
        frame_t, came_at = self._last_frame
        return frame_t + (time.monotonic() - came_at)

    def _label(self) -> str:
        return f"{self.source.stream} source {self.source.name}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
