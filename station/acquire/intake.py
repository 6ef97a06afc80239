"""Frames into the station: paired thermal + visible frames and system events, from any source.

The screening pipeline consumes one iterator and never needs to know whether the frames come from
cameras (one capture thread each, latest-frame slots, pairing by nearest time), a recording replayed
in real time (the same threads, so the demo behaves like a station), or a recording read as fast as
it decodes (``--fast``: no threads at all, a plain merge by timestamp, deterministic).
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from station.acquire.pairing import FramePairer, live_pairs
from station.acquire.radiometry import tlinear_to_celsius
from station.acquire.recording import Recording
from station.acquire.reference_disc import find_reference_disc
from station.acquire.sources.base import Source
from station.acquire.sources.registry import open_source
from station.acquire.sources.replay import ReplaySource
from station.errors import StationError
from station.profile.history import ProfileStore
from station.profile.schema import Blackbody, CalibrationProfile, thermal_only_profile
from station.types import Frame, FramePair, SystemEvent

PAIR_TOLERANCE_S = 0.06


def live_wall_time(t: float) -> datetime:
    """A live camera's frame at ``t`` was taken now (UTC): cameras are judged by the wall clock."""
    return datetime.now(UTC)


@dataclass
class Intake:
    """One run's frame sources, and the running tally the station reports when it stops."""

    thermal: Source
    visible: Source | None
    fast: bool
    label: str
    profile: CalibrationProfile | None
    status: object = sys.stderr  # where the once-a-second status line goes (None: nowhere)
    #: The UTC time of a frame at ``t`` on the sources' timeline: the wall clock for cameras, the time it was
    #: recorded for a replay (None when a recording does not say). Whatever depends on the date (the
    #: calibration's age) asks this, so a recording screens the same whatever day it is replayed.
    wall_time: Callable[[float], datetime | None] = live_wall_time
    pairer: FramePairer = field(init=False)
    last_t: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)

    def __post_init__(self) -> None:
        self.pairer = FramePairer(PAIR_TOLERANCE_S, thermal_only=self.visible is None)

    def run(self) -> Iterator[FramePair | SystemEvent]:
        """Pairs in thermal-time order, with system events (camera lost, recovered, finished) between them."""
        yield SystemEvent("started", 0.0, self.label)
        pairs = self._fast_pairs() if self.fast else self._live_pairs()
        next_status = 1.0
        for pair in pairs:
            yield from self._drain_events()
            self.last_t = pair.t
            if pair.t >= next_status:
                self._print_status()
                next_status = pair.t + 1.0
            yield pair
        yield from self._drain_events()

    def stop(self) -> None:
        self._stop.set()

    def finish(self) -> list[SystemEvent]:
        """The closing event, with what was paired: the operator's proof that frames flowed."""
        self.stop()
        stats = self.pairer.stats()
        detail = (
            f"{stats['pairs']} frame pairs, {stats['dropped_thermal']} thermal frames unpaired, "
            f"max skew {1000 * float(stats['max_abs_skew_s']):.0f} ms"
        )
        return [*self._drain_events(), SystemEvent("stopped", self.last_t, detail)]

    # ------------------------------------------------------------------ the two ways frames arrive
    def _live_pairs(self) -> Iterator[FramePair]:
        # live_pairs drives its own pairer; ours is handed in so the closing tally covers both modes.
        yield from live_pairs(
            self.thermal, self.visible, tolerance_s=PAIR_TOLERANCE_S, stop=self._stop,
            on_event=self._events.put, pairer=self.pairer,
        )

    def _fast_pairs(self) -> Iterator[FramePair]:
        sources = [s for s in (self.thermal, self.visible) if s is not None]
        for source in sources:
            source.open()
        try:
            for frame in _merge_by_time(sources, self._stop):
                yield from self.pairer.push(frame)
            yield from self.pairer.flush()
        finally:
            for source in sources:
                source.close()

    def _drain_events(self) -> Iterator[SystemEvent]:
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    def _print_status(self) -> None:
        if self.status is None:
            return
        stats = self.pairer.stats()
        print(f"t={self.last_t:7.1f} s  pairs {stats['pairs']:6d}  unpaired {stats['dropped_thermal']:4d}  "
              f"max skew {1000 * float(stats['max_abs_skew_s']):3.0f} ms", file=self.status, flush=True)


def _merge_by_time(sources: list[Source], stop: threading.Event) -> Iterator[Frame]:
    """Frames of finite sources interleaved by time (thermal first on a tie, as sources are listed)."""
    heads: list[Frame | None] = [s.read() for s in sources]
    while not stop.is_set():
        live = [(f.t, k) for k, f in enumerate(heads) if f is not None]
        if not live:
            return
        _, k = min(live)
        frame = heads[k]
        assert frame is not None
        yield frame
        heads[k] = sources[k].read()


@contextmanager
def open_intake(
    visible_spec: str | None,
    thermal_spec: str | None,
    recording: Path | None,
    calibration: Path | None,
    *,
    fast: bool = False,
    speed: float = 1.0,
    status: object = sys.stderr,
    reference_c: float | None = None,
) -> Iterator[Intake]:
    """Build the intake the command line asked for, checking every input before any thread starts."""
    if recording is not None:
        if visible_spec or thermal_spec:
            raise StationError("--recording replays both streams: give it without --visible/--thermal")
        rec = Recording.open(recording)
        wall_time: Callable[[float], datetime | None] = rec.wall_time
        thermal: Source = ReplaySource(rec, "thermal", realtime=not fast, speed=speed)
        visible: Source | None = ReplaySource(rec, "visible", realtime=not fast, speed=speed) if rec.visible else None
        profile_path = calibration or (rec.calibration_path if rec.calibration_path else None)
        label = f"recording {recording}: {_describe_recording(rec)}"
    else:
        if thermal_spec is None:
            raise StationError("no thermal source: give --thermal SRC (lepton, boson, uvc:N) or --recording DIR")
        if fast:
            raise StationError("--fast replays a recording as fast as it decodes; cameras run in real time")
        thermal = open_source(thermal_spec, "thermal")
        visible = open_source(visible_spec, "visible") if visible_spec else None
        wall_time = live_wall_time
        for source in (thermal, visible):
            _probe(source)
        # Cameras screen with the technicians' active profile unless told otherwise.
        profile_path = calibration or ProfileStore().active_path()
        seen = f", visible {visible_spec}" if visible_spec else " (thermal only)"
        label = f"cameras: thermal {thermal_spec}{seen}"
    profile = CalibrationProfile.load(profile_path) if profile_path else None
    if profile is None and visible is None:
        # A thermal-only recording from another station (an imported kiosk): nothing to register, no
        # gain/offset known; the reference disc, if any, is found in the frames.
        rec_found = getattr(thermal, "recording", None)
        stream = getattr(rec_found, "thermal", None)
        camera, width = (stream.camera, stream.width) if stream is not None else (thermal.name, 160)
        profile = thermal_only_profile(str(camera), int(width))
        recorded_at = wall_time(0.0)
        if recorded_at is not None:  # a default profile "made" when the frames were: it has no age to judge
            profile = dataclasses.replace(profile, created=recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        label += "; thermal only, default profile"
        disc = _reference_disc(rec_found) if rec_found is not None else None
        if disc is not None and reference_c is not None:
            # The kiosk's own calibration: its disc is held at reference_c, and every frame is corrected
            # by what the disc reads. An uncorrected Lepton may be off by its whole ±5 °C specification,
            # and a disc a few pixels across reads a little low from its blurred rim: hence 6 °C.
            profile = dataclasses.replace(profile, blackbody=Blackbody(disc.roi, float(reference_c),
                                                                       KIOSK_REFERENCE_TOLERANCE_C, disc=True))
            label += f"; reference disc at {disc.roi} held at {reference_c:g} °C"
        elif disc is not None:
            label += (f"; reference disc at {disc.roi} reads {disc.reading_c:.1f} °C uncorrected "
                      "(give --reference-c to correct by it)")
    elif reference_c is not None:
        raise StationError("--reference-c is for a thermal-only recording without a calibration profile; "
                           "this one has a profile (its blackbody table sets the reference)")
    if profile is not None:
        label += f"; calibration {profile.station_id} of {profile.created}"
    intake = Intake(thermal=thermal, visible=visible, fast=fast, label=label, profile=profile, status=status,
                    wall_time=wall_time)
    try:
        yield intake
    finally:
        intake.stop()


KIOSK_REFERENCE_TOLERANCE_C = 6.0


def _reference_disc(rec: Recording):
    """The reference disc in the first frames of a thermal-only recording (None when there is none)."""
    frames = []
    for k, frame in enumerate(rec.frames("thermal")):
        if k >= 60:
            break
        if k % 3 == 0 and rec.thermal.encoding == "tlinear-centikelvin":
            frames.append(tlinear_to_celsius(frame.image))
    return find_reference_disc(np.array(frames)) if frames else None


def _probe(source: Source | None) -> None:
    """Open and close a camera once before the capture threads start.

    A capture thread treats a camera that will not open as *lost* and keeps retrying, which is right
    for a cable pulled mid-shift but wrong for a typo at start-up: that must fail at once, in one line.
    """
    if source is None:
        return
    source.open()
    source.close()


def _describe_recording(rec: Recording) -> str:
    th = rec.thermal
    text = f"{rec.duration:.1f} s, thermal {th.camera} {th.width}x{th.height} @ {th.fps:g} Hz"
    if rec.visible is not None:
        text += f", visible {rec.visible.width}x{rec.visible.height} @ {rec.visible.fps:g} fps"
    return text
