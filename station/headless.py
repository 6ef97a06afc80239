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

The fleet
---------
With a :class:`FleetSettings` (``[fleet]`` in the settings file, or ``station run --fleet URL``), the store
is opened with its outbox (every published row queued in the row's own transaction) and a
:class:`~station.fleet.publisher.Publisher` sends it, with heartbeats and the station's status, for as
long as the station runs. A broker that is down changes nothing in the screening: rows wait in the
outbox. An acknowledgement made at the security desk is logged as this station's own
(``operator = desk:NAME``) and said in one line on standard error. Without it nothing connects anywhere.
"""

from __future__ import annotations

import _thread
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from station.acquire.intake import Intake
from station.acquire.radiometry import Radiometer
from station.errors import StationError
from station.fleet.credentials import read_credentials
from station.fleet.protocol import BrokerUrl, DeskAck, Heartbeat, check_id
from station.fleet.publisher import Publisher
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


def open_log(db: Path, *, outbox: bool = False) -> GuardedLog:
    """The guarded log on ``db``, with its snapshots directory and its spill file beside it.

    Opening it logs first whatever an earlier run left held in the spill (a station killed during a
    storage fault), so every start on a database completes its record before adding to it. ``outbox``:
    the station publishes to the fleet, so every published row is queued in the store's outbox too.
    """
    return GuardedLog(lambda: EventStore(db, snapshots_dir=snapshots_dir_for(db), outbox=outbox),
                      spill=spill_path_for(db))


# ---------------------------------------------------------------------- the fleet
@dataclass(frozen=True)
class FleetSettings:
    """Everything a station needs to publish to the fleet, checked (the password read from its file)."""

    broker: BrokerUrl
    site: str
    station_id: str
    password: str
    ca_file: Path | None = None
    share_alarm_images: bool = False


def fleet_settings(
    config: Any = None,
    *,
    url: str | None = None,
    site: str | None = None,
    station_id: str | None = None,
    credentials: Path | str | None = None,
    ca_file: Path | str | None = None,
) -> FleetSettings | None:
    """The fleet this run publishes to: the options given (``station run --fleet ...``) over the settings
    file's ``[fleet]`` (``config``: a :class:`station.config.FleetConfig` or None); None when neither names
    a broker. One line (StationError) for anything missing or wrong, before screening starts.
    """
    url = url or (config.broker if config is not None else None)
    if url is None:
        if site or station_id or credentials or ca_file:
            raise StationError("--site, --station-id, --fleet-credentials: only with --fleet URL (or [fleet] in "
                               "the settings file)")
        return None
    site = site or (config.site if config is not None else None)
    station_id = station_id or (config.station_id if config is not None else None)
    credentials = credentials or (config.credentials if config is not None else None)
    ca_file = ca_file or (config.ca_file if config is not None else None)
    for value, flag in ((site, "--site"), (station_id, "--station-id"), (credentials, "--fleet-credentials")):
        if not value:
            raise StationError(f"fleet: {flag} is needed with --fleet (or its key in [fleet] of the settings file)")
    broker = BrokerUrl.parse(url)
    check_id(str(site), "site")
    check_id(str(station_id), "station id")
    if ca_file is not None and not Path(ca_file).is_file():
        raise StationError(f"fleet CA file {ca_file}: no such file")
    return FleetSettings(broker, str(site), str(station_id), read_credentials(Path(str(credentials))).password,
                         None if ca_file is None else Path(ca_file),
                         bool(config.share_alarm_images) if config is not None else False)


class _Rates:
    """Frame pairs per second over the last heartbeat, from the pairer's counter."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def __call__(self, pairs: int) -> float | None:
        now = time.monotonic()
        last, self._last = self._last, (now, pairs)
        if last is None or now - last[0] <= 0:
            return None
        return round((pairs - last[1]) / (now - last[0]), 2)


def station_heartbeat(station: Station) -> Callable[[], Heartbeat]:
    """What the desk's tile shows about ``station``, read (from the publisher's thread) as it runs."""
    rates = _Rates()

    def beat() -> Heartbeat:
        try:
            pairs = int(station.intake.pairer.stats()["pairs"])
        except Exception:  # noqa: BLE001 - a heartbeat must never stop the publisher
            pairs = 0
        rate = rates(pairs)
        error = getattr(station, "_blackbody_error", None)
        age = station.calibration_age_days
        fault = None if station.log is None else station.log.fault
        return Heartbeat(
            wall_time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            visible_fps=None if getattr(station.intake, "visible", None) is None else rate,
            thermal_fps=rate,
            blackbody_error_c=None if error is None else round(float(error), 3),
            calibration_age_days=None if age is None else round(float(age), 2),
            storage_fault=fault, outbox_rows=0, version="")

    return beat


def _say_desk_ack(ack: DeskAck, row_id: int) -> None:
    print(f"fleet: alarm screening {ack.screening_id} acknowledged at the desk by {ack.operator} ({ack.action}); "
          f"logged as acknowledgement {row_id}", file=sys.stderr, flush=True)


def start_publisher(station: Station, db: Path, fleet: FleetSettings,
                    on_desk_ack: Callable[[DeskAck, int], None] = _say_desk_ack) -> Publisher:
    """The publisher for a running station on ``db`` (its own connection to the file), started. An
    acknowledgement made at the desk is said (``on_desk_ack``) and passed to the station's
    ``remote_ack_listeners`` (the window releases the alarm and says who acknowledged it)."""

    def desk_ack(ack: DeskAck, row_id: int) -> None:
        on_desk_ack(ack, row_id)
        for listener in list(station.remote_ack_listeners):
            listener(ack.screening_id, f"the desk by {ack.operator}", ack.action)

    return Publisher(db, broker=fleet.broker, site=fleet.site, station_id=fleet.station_id, password=fleet.password,
                     ca_file=fleet.ca_file, heartbeat=station_heartbeat(station), on_desk_ack=desk_ack,
                     share_images=fleet.share_alarm_images, snapshots_dir=snapshots_dir_for(db)).start()


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
    fleet: FleetSettings | None = None,
) -> Iterator[Station]:
    """The whole engine on ``intake``, logging to ``db`` (``None``: no log); the store is closed on exit,
    whatever happened, so every row written before a failure stays written. With ``fleet``, the log is
    published (see the module notes) until the station stops."""
    if intake.profile is None:
        raise StationError("no calibration profile: give --calibration FILE (a recording carries its own)")
    if fleet is not None and db is None:
        raise StationError("fleet: publishing needs the station's log (--db)")
    detector = detector or FaceDetector()
    radiometer = radiometer_for(intake, intake.profile)
    log = None if db is None else open_log(db, outbox=fleet is not None)
    publisher = None
    try:
        station = Station(intake, detector, intake.profile, radiometer, policy or default_policy(), log,
                          retention=None if log is None else (retention or RetentionPolicy()))
        if fleet is not None and db is not None:
            publisher = start_publisher(station, db, fleet)
        yield station
    finally:
        if log is not None:
            log.close()  # the last rows (the "stopped" event) are in the outbox now: give them a moment
        if publisher is not None:
            publisher.close(drain_s=3.0)


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
