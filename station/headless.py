"""The station assembled from an intake, and its headless output: one JSON object per line.

``open_station`` is the one place that puts the parts together (detector, calibration, radiometry,
alarm policy, event store), so ``station run``, ``station demo``, the window and the benchmarks all
screen with the same engine. ``run_headless`` writes what DESIGN.md's contract promises: a line per
screening decision and per system event, flushed at once, so another program can act on a decision
the moment it is made.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from station.alarm import AlarmPolicy, AlarmSettings
from station.detect import FaceDetector
from station.errors import StationError
from station.guarded_log import GuardedLog
from station.intake import Intake
from station.pipeline import Station, Tick
from station.radiometry import Radiometer
from station.retention import RetentionPolicy
from station.store import EventStore
from station.types import ScreeningDecision, SystemEvent

APP_DIR_NAME = "fever-station"


def data_dir() -> Path:
    """Where the station keeps its log: ``$XDG_DATA_HOME/fever-station`` (``~/.local/share`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP_DIR_NAME


def default_db_path(name: str = "station.db") -> Path:
    """The station's configured database, its directory created on first use (mode 0700: it holds
    health data). ``station demo`` passes ``demo.db`` so demo screenings never mix with a real log."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / name


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
    from station.body_model import load_glasses_model, load_model

    return AlarmPolicy(AlarmSettings(), load_model(), load_glasses_model())


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
    log = None if db is None else GuardedLog(lambda: EventStore(db, snapshots_dir=snapshots_dir_for(db)))
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
    """Screen until the input ends or Ctrl-C; write decisions and system events as JSON lines.

    Returns the counts by level, for the closing summary. The intake's closing events (with its
    tally of frame pairs) are written even when the run is interrupted.
    """
    counts: dict[str, int] = {}
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
    return counts
