"""The station assembled from an intake, and its headless output: one JSON object per line.

``open_station`` is the one place that puts the parts together (detector, calibration, radiometry,
alarm policy, event store), so ``station run``, ``station demo``, the window and the benchmarks all
screen with the same engine. ``run_headless`` writes what DESIGN.md's contract promises: a line per
screening decision and per system event, flushed at once, so another program can act on a decision
the moment it is made. A line is printed only after its row is durable: logged in the store, or, while
the store cannot be written, held in the spill file beside it (:mod:`station.log.guarded`), so a
``kill -9`` loses nothing already printed.

Stopping
--------
``SIGINT`` (Ctrl-C) and ``SIGTERM`` (what systemd and ``docker stop`` send) end a run the same way: the
intake stops, the people still in view get their closing decisions, the ``stopped`` event is printed
and logged, and the exit code is the log's (below), as when the input ends. A second signal while
that happens interrupts it at once.

Exit codes of a headless run
----------------------------
A supervisor sees from the exit code alone whether the run's record is complete (:func:`log_outcome`):

* ``0``: every decision and event was logged (or the run had no log);
* ``4``: some rows could not be logged but are held, fsynced, in ``<db>.spill``; the next start on
  this database logs them, in order and with their own times, so nothing is lost yet;
* ``5``: some rows are lost: neither the log nor the spill could be written (a read-only directory,
  a full disk), and they exist only in the JSON lines that were printed.

``1`` stays what it is for every command: bad input, said in one line before screening starts.
"""

from __future__ import annotations

import _thread
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from station.acquire.intake import Intake
from station.acquire.radiometry import Radiometer
from station.errors import StationError
from station.log.guarded import GuardedLog, spill_path_for
from station.log.retention import RetentionPolicy
from station.log.store import EventStore
from station.paths import APP_DIR_NAME, data_dir, default_db_path  # noqa: F401  (their old home: still importable)
from station.pipeline import Station, Tick
from station.screen.alarm import AlarmPolicy, AlarmSettings
from station.screen.detect import FaceDetector
from station.stop_signals import stop_on_signals
from station.types import ScreeningDecision, SystemEvent

#: Exit codes of a headless run whose log is incomplete (see the module notes).
EXIT_HELD = 4
EXIT_LOST = 5


def snapshots_dir_for(db: Path) -> Path:
    """Alarm snapshots live beside their database: ``station.db`` -> ``station-snapshots/``."""
    return db.with_name(f"{db.stem}-snapshots")


def radiometer_for(intake: Intake, profile, **kwargs: Any) -> Radiometer:
    """The radiometer for the intake's thermal stream: a recording says its encoding and Planck
    constants in its metadata, a camera in its description."""
    recording = getattr(intake.thermal, "recording", None)
    if recording is not None:
        return Radiometer.for_stream(recording.thermal, profile, **kwargs)
    info = intake.thermal.describe()
    encoding = info.get("encoding")
    if not isinstance(encoding, str):
        raise StationError(f"thermal source {info.get('name', '?')}: it does not say how its pixels encode "
                           "temperature (no 'encoding'): cannot screen with it")
    return Radiometer(encoding, profile, planck=info.get("planck"), **kwargs)  # type: ignore[arg-type]


def default_policy() -> AlarmPolicy:
    """Default thresholds with the shipped skin-to-body models (canthus, and forehead and mouth for glasses)."""
    from station.screen.body_model import load_glasses_model, load_model

    return AlarmPolicy(AlarmSettings(), load_model(), load_glasses_model())


def open_log(db: Path) -> GuardedLog:
    """The guarded log on ``db``, with its snapshots directory and its spill file beside it.

    Opening it logs first whatever an earlier run left held in the spill (a station killed during a
    storage fault), so every start on a database completes its record before adding to it.
    """
    return GuardedLog(lambda: EventStore(db, snapshots_dir=snapshots_dir_for(db)), spill=spill_path_for(db))


def log_outcome(log: GuardedLog | None, db: Path | None) -> tuple[str, int]:
    """Where a finished run's rows are, in words for its closing line, and its exit code.

    Call it after the log is closed (its last attempt to write made). Rows held in the spill are not
    lost, but the record is not complete either, and a supervisor must see that without reading
    standard error: hence a code of its own (``EXIT_HELD``), apart from rows lost for good
    (``EXIT_LOST``, which wins when both happened).
    """
    if log is None:
        return "nowhere", 0
    lost, held = log.only_in_memory, log.held_in_spill
    if not lost and not held:
        return f"logged in {db}", 0
    parts = []
    if lost:
        parts.append(f"{lost} rows NOT logged ({log.fault}): they are only in the JSON lines")
    if held:
        spill = log.spill.path if log.spill is not None else "the spill file"
        parts.append(f"{held} rows held in {spill} until the log can be written"
                     + ("" if lost else f" ({log.fault}); the next start on {db} logs them"))
    return "; ".join(parts), EXIT_LOST if lost else EXIT_HELD


@contextmanager
def open_station(
    intake: Intake,
    *,
    db: Path | None,
    detector: FaceDetector | None = None,
    policy: AlarmPolicy | None = None,
    retention: RetentionPolicy | None = None,
) -> Iterator[Station]:
    """The whole engine on ``intake``, logging to ``db`` (``None``: no log); the store is closed on exit,
    whatever happened, so every row written before a failure stays written."""
    if intake.profile is None:
        raise StationError("no calibration profile: give --calibration FILE (a recording carries its own)")
    detector = detector or FaceDetector()
    radiometer = radiometer_for(intake, intake.profile)
    log = None if db is None else open_log(db)
    try:
        yield Station(intake, detector, intake.profile, radiometer, policy or default_policy(), log,
                      retention=None if log is None else (retention or RetentionPolicy()))
    finally:
        if log is not None:
            log.close()


def json_line_writer(out: TextIO) -> Callable[[dict], None]:
    def emit(obj: dict) -> None:
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
        out.flush()  # a decision printed is a decision the next program can act on at once

    return emit


@contextmanager
def events_output(path: str) -> Iterator[TextIO]:
    """``-`` is standard output; a file is appended to, so several runs make one log."""
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise StationError(f"--events {path}: cannot open for writing ({exc.strerror or exc})") from None
    with handle:
        yield handle


def run_headless(station: Station, emit: Callable[[dict], None]) -> dict[str, int]:
    """Screen until the input ends, SIGINT or SIGTERM; write decisions and system events as JSON lines.

    Returns the counts by level, for the closing summary. The intake's closing events (with its
    tally of frame pairs) are written even when the run is interrupted. Every item is printed after
    the engine logged (or durably held) it, never before.
    """
    counts: dict[str, int] = {}
    # The intake is stopped from a new thread: the handler runs on the main thread, which may hold the
    # intake's stop event's own lock at that moment.
    with stop_on_signals(lambda: _thread.start_new_thread(station.intake.stop, ())):
        _screen(station, emit, counts)
    return counts


def _screen(station: Station, emit: Callable[[dict], None], counts: dict[str, int]) -> None:
    try:
        for item in station.run():
            decisions: list[ScreeningDecision] = []
            if isinstance(item, Tick):
                for event in item.events:  # the blackbody's health, judged frame by frame
                    emit(event.to_json())
                decisions = item.decisions
            elif isinstance(item, ScreeningDecision):
                decisions = [item]
            elif isinstance(item, SystemEvent):
                emit(item.to_json())
            for decision in decisions:
                counts[decision.level] = counts.get(decision.level, 0) + 1
                emit(decision.to_json())
    except KeyboardInterrupt:
        pass
    finally:
        for event in station.intake.finish():
            station.log_event(event)
            emit(event.to_json())
