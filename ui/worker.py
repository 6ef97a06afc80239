"""The engine on its own thread, wrapped for the window.

The window must never wait for the pipeline, and the pipeline must never wait for the window. So the
worker keeps only the *latest* tick in a slot the window's ~30 Hz timer reads (older ticks are simply
overwritten: a frame not drawn is no loss), while every decision and system event goes out at once as
a queued signal, never coalesced: an alarm is never dropped or delayed by drawing.

The station is built *inside* the worker thread by a factory, because SQLite connections belong to
the thread that opened them; the window opens its own connection for acknowledgements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, Qt, QThread, pyqtSignal

from station.errors import StationError
from station.pipeline import Station, Tick
from station.screen.alarm import AlarmPolicy, AlarmSettings
from station.types import ALARM_LEVELS, ScreeningDecision, SystemEvent

StationFactory = Callable[[], AbstractContextManager[Station]]


@dataclass(frozen=True)
class DecisionNote:
    """One decision as the window receives it: with its row in the log, and for alarms a snapshot."""

    decision: ScreeningDecision
    screening_id: int | None
    snapshot_bgr: np.ndarray | None
    emitted_at: float  # time.perf_counter() when the worker sent it: the banner's delay is measured from here


def face_crop(tick: Tick | None, track_id: int) -> np.ndarray | None:
    """The visible crop of one track's face on a tick, or None when the tick does not show it."""
    if tick is None or tick.pair.visible is None:
        return None
    where = np.flatnonzero(np.asarray(tick.track_ids) == track_id)
    if len(where) == 0:
        return None
    image = tick.pair.visible.image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in tick.faces.xyxy[int(where[0])])
    crop = image[max(y1, 0) : min(y2, h), max(x1, 0) : min(x2, w)]
    return crop.copy() if crop.size else None


class StationWorker(QObject):
    """Runs ``station.run()`` on a QThread; the window pulls :meth:`latest` and listens to the signals."""

    decision = pyqtSignal(object)  # DecisionNote
    system_event = pyqtSignal(object)  # SystemEvent
    failed = pyqtSignal(str)  # one line: the engine stopped on a fault
    finished = pyqtSignal()  # the input ended (or the worker was stopped)
    started_station = pyqtSignal(object)  # the Station, once built (read-only use: profile, detector)
    remote_ack = pyqtSignal(object)  # (screening_id, who, action): an alarm acknowledged elsewhere (the desk)

    def __init__(self, factory: StationFactory) -> None:
        super().__init__()
        self._factory = factory
        self._lock = threading.Lock()
        self._latest: Tick | None = None
        self._stop = threading.Event()
        self._station: Station | None = None
        self._new_settings: AlarmSettings | None = None
        self._remeasures: list[str] = []
        self.ticks = 0

    def latest(self) -> Tick | None:
        with self._lock:
            return self._latest

    def apply_alarm_settings(self, settings: AlarmSettings) -> None:
        """New thresholds from the settings dialog; the engine takes them before its next item."""
        self._new_settings = settings

    def request_remeasure(self, level: str) -> None:
        """A guard asked for a re-measure: the policy judges the next decision as that re-measure."""
        self._remeasures.append(level)

    def stop(self) -> None:
        """Ask the loop to end; safe from any thread. The intake stops waiting for frames at once."""
        self._stop.set()
        station = self._station
        if station is not None:
            station.intake.stop()

    def run(self) -> None:
        try:
            with self._factory() as station:
                self._station = station
                station.remote_ack_listeners.append(lambda *ack: self.remote_ack.emit(ack))  # any thread: queued
                self.started_station.emit(station)
                self._loop(station)
        except StationError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # noqa: BLE001 - the window must say what broke, not vanish
            self.failed.emit(f"the screening engine stopped: {type(exc).__name__}: {exc}")
        finally:
            self._station = None
            self.finished.emit()

    def _loop(self, station: Station) -> None:
        try:
            for item in station.run():
                if self._new_settings is not None:
                    # new thresholds, the same skin-to-body model
                    station.policy = AlarmPolicy(self._new_settings, station.policy.body_model,
                                                 station.policy.glasses_model)
                    self._new_settings = None
                while self._remeasures:
                    station.policy.expect_remeasure(self._remeasures.pop(0), station.intake.last_t)
                if isinstance(item, Tick):
                    with self._lock:
                        self._latest = item
                    self.ticks += 1
                    for event in item.events:
                        self.system_event.emit(event)
                    for decision in item.decisions:
                        self._send(station, decision, item)
                elif isinstance(item, SystemEvent):
                    self.system_event.emit(item)
                elif isinstance(item, ScreeningDecision):
                    self._send(station, item, None)
                if self._stop.is_set():
                    break
        finally:
            for event in station.intake.finish():
                station.log_event(event)
                self.system_event.emit(event)

    def _send(self, station: Station, decision: ScreeningDecision, tick: Tick | None) -> None:
        alarm = decision.level in ALARM_LEVELS
        snapshot = face_crop(tick, decision.track_id) if alarm else None
        note = DecisionNote(decision, station.screening_ids.get(decision.track_id), snapshot, time.perf_counter())
        self.decision.emit(note)


def start_worker(worker: StationWorker, parent: QObject | None = None) -> QThread:
    """Move the worker to a new thread and start it; the thread quits when the worker finishes."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which may itself be
    # waiting for this thread to end (closing the window).
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.start()
    return thread
