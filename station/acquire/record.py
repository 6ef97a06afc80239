"""``station record``: live cameras (or the live simulator) into a recording of format version 1.

A site records its own entrance so that every later version of the station can be replayed against the
same frames. That makes a recording evidence, and shapes everything here:

* **Every frame is kept.** The station's capture threads (:class:`~station.acquire.capture.CaptureThread`) read
  the cameras, exactly as when screening, but each frame goes into a queue (:class:`FrameBuffer`) rather
  than the station's latest-frame slot, which overwrites frames by design. The queue is bounded in bytes,
  so a writer that falls behind (a slow disk) cannot exhaust memory; a frame that does not fit is
  counted as dropped, per stream, in ``meta.json`` and in the closing line, never silently lost.
* **Times are the cameras' own.** Each frame keeps the ``t`` its source stamped (the station's monotonic
  clock for cameras, the scene's clock for the simulator), shifted so that the earliest first frame of
  either stream is ``t = 0``. A frame whose time does not increase on its stream's last is dropped and
  counted, because the format (and pairing) need strictly increasing times. ``recorded_at`` is the wall
  time of ``t = 0``, estimated from when frames reached the capture threads.
* **Lossless by default.** The visible video is HuffYUV in ``.avi`` unless asked otherwise: lossless like
  FFV1 (``.mkv``), but about eight times cheaper to encode and decode. Measured on the simulator's noisy
  640x480 frames on the 2-core development machine, FFV1 costs ~22 ms a frame to encode (a third of a
  core at 15 fps, two thirds at 30 fps, beside the capture and everything else) and HuffYUV ~3 ms, for
  files ~1.2-2x the size. A recording that drops frames because its encoder cannot keep up is worth less
  than a larger one, and long replays decode HuffYUV ~8x faster (``recordings/README.md``). Thermal
  frames are written as the camera gave them (``uint16``), with its encoding and Planck constants.
* **It always closes.** ``--seconds``, ``--max-size``, Ctrl-C and SIGTERM all end the loop between two
  frames, after which the writer finalises ``thermal.npy``'s header, the video and ``meta.json``, so the
  recording opens with :meth:`Recording.open <station.acquire.recording.Recording.open>`. The size limit is
  checked before each frame against the files on disk plus what the writers may still buffer, the next
  frame and what closing adds, so the limit is never crossed; free disk space is checked the same way
  once a second, so a filling disk ends the recording cleanly instead of corrupting it.

Nothing here imports click or Qt: :mod:`station.cli.record` is the command around :func:`record`.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import math
import os
import platform
import queue
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

import station
from station.acquire.capture import CaptureThread, LatestFrameSlot
from station.acquire.recording import (
    CALIBRATION_FILE,
    ENCODINGS,
    FRAMES_FILE,
    META_FILE,
    SUFFIX_CODECS,
    Recording,
    RecordingWriter,
    ThermalStreamInfo,
    VisibleStreamInfo,
    format_recorded_at,
)
from station.acquire.sources.base import Source
from station.acquire.sources.opencv_visible import target_kind
from station.acquire.sources.registry import SOURCE_KINDS, open_source
from station.atomic import atomic_write
from station.errors import RecordingError, StationError
from station.profile.history import ProfileStore
from station.profile.schema import CalibrationProfile
from station.stop_signals import stop_on_signals
from station.types import STREAMS, Frame, Stream

#: ``--video`` choices: container -> whether its codec (:data:`station.acquire.recording.SUFFIX_CODECS`) is lossless.
VIDEO_FORMATS: dict[str, bool] = {"avi": True, "mkv": True, "mp4": False}
#: HuffYUV: lossless and cheap to encode, so the writer keeps up on a small station computer (see above).
DEFAULT_VIDEO = "avi"
#: Frames waiting for the writer may hold this much memory (~9 s of 640x480 video at 30 fps); beyond it
#: frames are dropped and counted rather than the process running out of memory.
BUFFER_BYTES = 256 * 2**20
#: What Python's file buffers (thermal.npy, frames.csv: 8 KiB each) may hold beyond the files' sizes on disk.
UNFLUSHED_BYTES = 64 * 2**10
#: What FFmpeg may hold of the video beyond the file's size on disk, per container: its 256 KiB output
#: buffer, and for Matroska the cluster being assembled (up to 5 MiB: the file grows 4.5 MiB at a time
#: with FFV1 at 640x480). Measured by writing and watching the file, in the module's tests' spirit.
VIDEO_BUFFER_BYTES = {"avi": 512 * 2**10, "mp4": 512 * 2**10, "mkv": 6 * 2**20}
#: What closing adds to the files: meta.json rewritten with counts and the recording block, the video
#: container's trailer; plus :data:`INDEX_BYTES_PER_FRAME` per video frame for its index (AVI: 16 bytes).
CLOSE_BYTES = 64 * 2**10
INDEX_BYTES_PER_FRAME = 32
#: Free space left on the disk when the recording stops for want of it: other programs (the event store)
#: need the disk too, and a full disk is what corrupts files.
DISK_RESERVE_BYTES = 64 * 2**20
#: Warm-up: the writer starts once each stream has this many frames, or this long after the later
#: stream's first frame (at least two frames each): enough to measure a rate a source does not declare.
WARMUP_FRAMES = 6
WARMUP_S = 1.0
#: How long a camera may take to deliver its first frame before the recording is given up.
FIRST_FRAME_TIMEOUT_S = 20.0
#: First frames of the two streams further apart than this are on two clocks (a video file's own time
#: line beside a camera's monotonic one), and their frames could never be paired.
SAME_CLOCK_S = 10.0
#: Meta keys of a source's ``describe()`` copied into ``meta.json``: what the camera is, never where it is
#: reached (a URL's host and credentials, a file's path under someone's home, a serial port's state).
DESCRIBE_KEYS = ("stream", "encoding", "planck", "sensor", "seed", "device", "kind", "width", "height", "fps",
                 "telemetry_rows")
#: Keys that describe the thermal sensor; the simulator's visible source repeats them, meaninglessly.
THERMAL_ONLY_KEYS = ("encoding", "planck", "sensor", "telemetry_rows")

#: How the recording ended, and whether that is the exit code 0 (a limit or an operator's stop) or 1.
EXIT_CODES = {"seconds": 0, "max-size": 0, "signal": 0, "source-ended": 0,
              "camera-lost": 1, "disk-full": 1, "write-error": 1, "frame-size": 1}


# ------------------------------------------------------------------------------------------- parsing
_SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_size(text: str) -> int:
    """``--max-size``: bytes from ``500M``, ``2G``, ``1.5G``, ``800K`` or a plain number of bytes.

    Units are binary (``1G`` = 1024^3 bytes), as ``du -h`` and ``df -h`` count, so the figure a technician
    reads off the disk is the figure they type; ``B``, ``iB`` and lower case are accepted.

    Raises
    ------
    StationError
        One line naming the value and the forms accepted.
    """
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1:] if value[-1:] in _SIZE_UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    try:
        amount = float(number)
    except ValueError:
        amount = math.nan
    if not (math.isfinite(amount) and amount > 0):
        raise StationError(f"--max-size {text!r}: expected a size such as 500M, 2G or 1.5G (K, M, G, T: 1024-based)")
    return int(amount * _SIZE_UNITS[unit])


def format_size(n: float) -> str:
    """Bytes for people, 1024-based like :func:`parse_size` (``41.2 MB``)."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def public_spec(spec: str) -> str:
    """What a source was, without where it is reached: for ``meta.json``, which travels with the recording.

    Named kinds (``lepton:0``, ``sim:7``) and device indices stay as typed; a URL keeps only its scheme
    (its host, credentials and path may name a network, a user or a token); a video file keeps only its
    name (its directory may be someone's home).
    """
    text = spec.strip()
    word, _, arg = text.partition(":")
    if text.isdigit() or (word.lower() in SOURCE_KINDS and not arg.startswith("//")):
        return text
    if target_kind(text) == "url":
        return f"{text.split('://', 1)[0].lower()} stream"
    return Path(text).name


# ------------------------------------------------------------------------------------------- the queue
class FrameBuffer:
    """Frames of both streams in the order they arrived, waiting for the writer; bounded in bytes.

    A queue rather than the station's latest-frame slot because a recording keeps every frame, and one
    queue for both streams so ``frames.csv`` lists them as they came. It always accepts a frame when
    empty, so even a frame larger than the budget gets through.

    Parameters
    ----------
    max_bytes
        Image bytes it may hold; a frame that would exceed them is dropped and counted.
    wall
        Stamps each frame's arrival (seconds since the epoch), from which ``recorded_at`` is estimated.
    """

    def __init__(self, max_bytes: int = BUFFER_BYTES, *, wall: Callable[[], float] = time.time) -> None:
        self.max_bytes = int(max_bytes)
        self._wall = wall
        self._items: collections.deque[tuple[Frame, float]] = collections.deque()
        self._bytes = 0
        self._ready = threading.Condition()
        #: Frames refused because the writer was behind, per stream.
        self.dropped: dict[str, int] = {stream: 0 for stream in STREAMS}

    def put(self, frame: Frame) -> bool:
        """Queue a frame (never blocking the camera); False when it was dropped for want of room."""
        size = frame.image.nbytes
        arrived = self._wall()
        with self._ready:
            if self._items and self._bytes + size > self.max_bytes:
                self.dropped[frame.stream] += 1
                return False
            self._items.append((frame, arrived))
            self._bytes += size
            self._ready.notify()
            return True

    def get(self, timeout: float) -> tuple[Frame, float] | None:
        """The oldest frame and its arrival time, waiting up to ``timeout`` seconds; None if none came."""
        with self._ready:
            if not self._items and not self._ready.wait_for(lambda: bool(self._items), timeout=max(0.0, timeout)):
                return None
            frame, arrived = self._items.popleft()
            self._bytes -= frame.image.nbytes
            return frame, arrived

    @property
    def queued_bytes(self) -> int:
        with self._ready:
            return self._bytes


class _QueueSlot(LatestFrameSlot):
    """The capture thread's slot, turned into an entrance to the :class:`FrameBuffer`: nothing is overwritten."""

    def __init__(self, buffer: FrameBuffer) -> None:
        super().__init__()
        self._buffer = buffer

    def put(self, frame: Frame) -> None:
        self.puts += 1
        self._buffer.put(frame)


# ------------------------------------------------------------------------------------------- request
@dataclass(frozen=True)
class RecordRequest:
    """What ``station record`` was asked for.

    Attributes
    ----------
    out
        The recording directory (created; refused when it holds files, unless ``overwrite``).
    thermal, visible
        Source specs as ``station run`` takes them (``visible`` None: a thermal-only recording).
    calibration
        Profile to copy as ``calibration.toml``; None: the technicians' active profile, if any.
    seconds, max_bytes
        Limits (None: none): recording time on the frames' clock, and the recording's size on disk.
    video
        ``avi`` (HuffYUV), ``mkv`` (FFV1) or ``mp4`` (mp4v, lossy).
    overwrite
        Replace the recording in a non-empty ``out``.
    """

    out: Path
    thermal: str
    visible: str | None = None
    calibration: Path | None = None
    seconds: float | None = None
    max_bytes: int | None = None
    video: str = DEFAULT_VIDEO
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.video not in VIDEO_FORMATS:
            raise StationError(f"--video {self.video}: expected one of {', '.join(VIDEO_FORMATS)}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise StationError(f"--seconds {self.seconds:g}: expected a positive number of seconds")
        if self.max_bytes is not None and self.max_bytes < 2**20:
            raise StationError(f"--max-size {self.max_bytes} bytes: too small for a recording (at least 1M)")

    @property
    def video_file(self) -> str:
        return f"visible.{self.video}"


@dataclass
class RecordResult:
    """How a recording went: what it holds, and why and how it ended.

    ``exit_code`` is 0 when it ended at a limit, at the operator's signal or at a file source's end, and
    1 when it ended on a fault (a camera lost, a full disk); ``detail`` then says so in one line, naming
    what was kept.
    """

    path: Path
    counts: dict[str, int]
    duration_s: float
    size_bytes: int
    dropped: dict[str, dict[str, int]]
    reason: str
    detail: str
    recorded_at: str | None
    closed: bool = True

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.reason] if self.closed else 1

    @property
    def dropped_total(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.dropped.values())

    def frames_text(self) -> str:
        visible = f" + {self.counts['visible']} visible" if "visible" in self.counts else ""
        return f"{self.counts['thermal']} thermal{visible} frames"

    def line(self) -> str:
        """The closing line: where, how long, how many frames, how big, why it stopped, what was dropped."""
        drops = self.dropped_total
        plural = "" if drops == 1 else "s"
        dropped = "no frame dropped" if not drops else f"{drops} frame{plural} DROPPED ({_drops_text(self.dropped)})"
        return (f"{self.path}: {self.duration_s:.1f} s, {self.frames_text()}, {format_size(self.size_bytes)}; "
                f"{self.detail}; {dropped}")


def _drops_text(dropped: dict[str, dict[str, int]]) -> str:
    parts = [f"{stream} {n} {kind.replace('_', ' ')}" for stream, kinds in dropped.items()
             for kind, n in kinds.items() if n]
    return ", ".join(parts)


# ------------------------------------------------------------------------------------------- checks
def _check_out(out: Path, overwrite: bool) -> None:
    """OUT must be new or empty (or ``--overwrite``): checked before any camera starts."""
    if out.exists() and not out.is_dir():
        raise StationError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise StationError(f"{out}: the directory already holds files; choose another or add --overwrite")
    parent = out.resolve().parent
    if not out.exists() and not parent.is_dir():
        raise StationError(f"{out}: its parent directory {parent} does not exist")


def _calibration(path: Path | None) -> tuple[str | None, str | None]:
    """The profile's text (verbatim) and where it came from, or ``(None, None)`` when there is none.

    The profile is loaded once, as replay will load it, so a recording never carries a profile it could
    not be screened with.
    """
    origin = "--calibration"
    if path is None:
        path = ProfileStore().active_path()
        origin = "active profile"
        if path is None:
            return None, None
    if not path.is_file():
        raise StationError(f"--calibration {path}: no such file")
    CalibrationProfile.load(path)
    return path.read_text(encoding="utf-8"), origin


def _probe(source: Source) -> None:
    """Open and close a camera once, so a missing one fails now in one line (the capture thread would
    treat it as lost and keep retrying, which is right mid-shift and wrong for a typo)."""
    source.open()
    source.close()


def _thermal_encoding(spec: str, source: Source) -> tuple[str, dict[str, float] | None]:
    """The thermal source's encoding and Planck constants, as it describes them; refused when unusable."""
    info = source.describe()
    encoding = info.get("encoding")
    if encoding not in ENCODINGS:
        raise StationError(f"thermal source {spec}: it does not say how its pixels encode temperature "
                           f"(encoding {encoding!r}, expected {' or '.join(ENCODINGS)}); cannot record it")
    planck = info.get("planck")
    if encoding == "raw-counts" and not planck:
        raise StationError(f"thermal source {spec}: raw counts without the camera's Planck constants (R, B, F, "
                           "O) could never be turned into temperatures; a recording of them is refused")
    return str(encoding), dict(planck) if isinstance(planck, dict) else None  # type: ignore[arg-type]


def _camera_name(spec: str, stream: Stream, info: dict[str, object]) -> str:
    if spec.strip().lower().partition(":")[0] == "sim":
        return "simulated-" + (str(info.get("sensor", "thermal")) if stream == "thermal" else "visible")
    return public_spec(spec)


def _is_simulated(spec: str | None) -> bool:
    return spec is None or spec.strip().lower().partition(":")[0] == "sim"


# ------------------------------------------------------------------------------------------- signals
# ------------------------------------------------------------------------------------------- progress
class Progress:
    """The once-a-second status line on stderr: overwritten in place on a terminal, plain lines otherwise
    (a log file or a pipe gets one readable line per second, not carriage returns)."""

    def __init__(self, stream: TextIO | None, interval_s: float = 1.0) -> None:
        self.stream = stream
        self.interval_s = interval_s
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._next = 0.0
        self._open_line = False

    def due(self, now: float) -> bool:
        return now >= self._next

    def show(self, text: str, now: float) -> None:
        self._next = now + self.interval_s
        if self.stream is None:
            return
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self._open_line = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a notice), after ending the status line if one is open."""
        if self.stream is None:
            return
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.stream is not None and self._open_line:
            self.stream.write("\n")
            self.stream.flush()
        self._open_line = False


# ------------------------------------------------------------------------------------------- recording
def record(
    request: RecordRequest,
    *,
    status: TextIO | None = sys.stderr,
    make_source: Callable[[str, Stream], Source] = open_source,
    lost_after_s: float = 2.0,
    buffer_bytes: int = BUFFER_BYTES,
    wall: Callable[[], float] = time.time,
) -> RecordResult:
    """Record the cameras of ``request`` until a limit, a signal or a fault; always close the recording.

    Every input is checked before a camera starts (OUT, the calibration, the sources, each camera opened
    once), so a bad one is a :class:`~station.errors.StationError` in one line and leaves nothing behind.

    Parameters
    ----------
    request
        What to record and its limits.
    status
        Where the progress line and notices go (None: nowhere).
    make_source
        Builds a source from a spec; the registry's :func:`~station.acquire.sources.registry.open_source`.
    lost_after_s
        How long a camera may deliver nothing before it counts as lost (the capture thread's setting).
    buffer_bytes
        Memory for frames waiting to be written (:class:`FrameBuffer`).
    wall
        The wall clock (seconds since the epoch) that dates the recording.

    Returns
    -------
    RecordResult
        What was recorded; ``exit_code`` 1 when it ended on a fault (the recording is still closed).

    Raises
    ------
    StationError
        Bad input, or cameras that never delivered a frame; nothing is recorded then.
    """
    _check_out(request.out, request.overwrite)
    calibration_text, calibration_origin = _calibration(request.calibration)
    specs: dict[Stream, str] = {"thermal": request.thermal}
    if request.visible is not None:
        specs["visible"] = request.visible
    sources = {stream: make_source(spec, stream) for stream, spec in specs.items()}
    # the signals received, from here to the close: the writing loop looks before each frame
    with stop_on_signals() as asked:
        for source in sources.values():
            _probe(source)
        encoding, planck = _thermal_encoding(request.thermal, sources["thermal"])
        if asked:
            raise StationError(f"{request.out}: stopped before the cameras started; nothing was recorded")
        progress = Progress(status)
        if calibration_text is None:
            progress.say(f"no calibration profile (none active, no --calibration): recording {request.out} "
                         f"without {CALIBRATION_FILE}; replay it with --calibration FILE")
        session = _Session(request, sources, specs, progress, encoding=encoding, planck=planck,
                           calibration=(calibration_text, calibration_origin), lost_after_s=lost_after_s,
                           buffer=FrameBuffer(buffer_bytes, wall=wall), asked=asked)
        try:
            return session.run()
        finally:
            progress.end()


@dataclass
class _Session:
    """One recording in progress: the capture threads, the warm-up, the writing loop and the close."""

    request: RecordRequest
    sources: dict[Stream, Source]
    specs: dict[Stream, str]
    progress: Progress
    encoding: str
    planck: dict[str, float] | None
    calibration: tuple[str | None, str | None]
    lost_after_s: float
    buffer: FrameBuffer
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    asked: list[int] = field(default_factory=list)  # signals received
    threads: list[CaptureThread] = field(default_factory=list)
    writer: RecordingWriter | None = None
    t0: float = 0.0
    last_raw_t: dict[str, float] = field(default_factory=dict)
    last_t: dict[str, float] = field(default_factory=dict)
    past_limit: set[str] = field(default_factory=set)
    not_increasing: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STREAMS})
    reason: str | None = None
    detail: str = ""
    size_limit: int | None = None
    size_limit_is_disk: bool = False
    recorded_at: str | None = None
    meta_block: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ the whole recording
    def run(self) -> RecordResult:
        """Capture threads on, warm up, write until a stop, then write what was taken and close."""
        for source in self.sources.values():
            thread = CaptureThread(source, _QueueSlot(self.buffer), self.events.put, lost_after_s=self.lost_after_s)
            self.threads.append(thread)
            thread.start()
        try:
            pending = self._warm_up()
            self._open_writer(pending)
            try:
                self._loop(pending)
            finally:
                self._stop_threads()
                self._drain()
                closed = self._close()
        finally:
            self._stop_threads()
        return self._result(closed)

    def _stop_threads(self) -> None:
        for thread in self.threads:
            thread.stop(timeout=0)
        for thread in self.threads:
            thread.join(timeout=2.0)

    # ------------------------------------------------------------------ warm-up
    def _warm_up(self) -> list[tuple[Frame, float]]:
        """Frames until every stream has delivered a few: the clock origin, the sizes and the rates.

        Nothing is written yet, so a camera that never delivers leaves no recording behind; the frames
        taken here are written first, so none is lost.
        """
        pending: list[tuple[Frame, float]] = []
        firsts: dict[str, list[float]] = {stream: [] for stream in self.sources}
        started = time.monotonic()
        all_started: float | None = None
        while True:
            self._check_events(warming_up=True)
            if self.asked:
                if all(len(ts) >= 2 for ts in firsts.values()):
                    return pending
                raise StationError(f"{self.request.out}: stopped before the cameras delivered their first frames; "
                                   "nothing was recorded")
            item = self.buffer.get(0.1)
            if item is not None:
                pending.append(item)
                times = firsts[item[0].stream]
                if not times or item[0].t > times[-1]:
                    times.append(item[0].t)
            now = time.monotonic()
            if all_started is None and all(firsts.values()):
                all_started = now
            if all_started is not None and all(len(ts) >= 2 for ts in firsts.values()) and (
                    all(len(ts) >= WARMUP_FRAMES for ts in firsts.values()) or now - all_started >= WARMUP_S):
                return pending
            if now - started > FIRST_FRAME_TIMEOUT_S:
                silent = [f"{stream} {self.specs[stream]}" for stream, ts in firsts.items() if len(ts) < 2]
                raise StationError(f"{', '.join(silent)}: no frames in {FIRST_FRAME_TIMEOUT_S:.0f} s; "
                                   "nothing was recorded")

    def _check_events(self, *, warming_up: bool = False) -> None:
        """A camera lost or a file source ended: the recording stops (before it starts: nothing recorded)."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            if event.kind not in ("camera_lost", "source_finished"):
                continue
            if warming_up:
                raise StationError(f"{event.detail}; nothing was recorded")
            if self.reason is None:
                lost = event.kind == "camera_lost"
                self.reason = "camera-lost" if lost else "source-ended"
                self.detail = (f"camera lost: {event.detail}" if lost else f"stopped: {event.detail}")

    # ------------------------------------------------------------------ the writer
    def _open_writer(self, pending: list[tuple[Frame, float]]) -> None:
        """Start the recording from the warm-up's frames: sizes, rates, the clock origin and the date."""
        by_stream: dict[str, list[tuple[Frame, float]]] = {stream: [] for stream in self.sources}
        for frame, arrived in pending:
            rows = by_stream[frame.stream]
            if not rows or frame.t > rows[-1][0].t:
                rows.append((frame, arrived))
        firsts = {stream: rows[0][0].t for stream, rows in by_stream.items()}
        if len(firsts) == 2 and abs(firsts["thermal"] - firsts["visible"]) > SAME_CLOCK_S:
            raise StationError(
                f"thermal {self.specs['thermal']} and visible {self.specs['visible']} are not on one clock (their "
                f"first frames are {abs(firsts['thermal'] - firsts['visible']):.0f} s apart), so their frames "
                "could never be paired; record cameras, or the simulator for both")
        self.t0 = min(firsts.values())
        # The wall time of t = 0: each frame reached its capture thread some time after it was taken, never
        # before, so the smallest (arrival - t) is the best estimate of the offset between the two clocks.
        offset = min(arrived - frame.t for rows in by_stream.values() for frame, arrived in rows)
        recorded_at = format_recorded_at(datetime.fromtimestamp(self.t0 + offset, UTC))
        infos = {stream: self.sources[stream].describe() for stream in self.sources}
        fps = {stream: _rate(infos[stream], [f.t for f, _ in rows]) for stream, rows in by_stream.items()}
        first_thermal = by_stream["thermal"][0][0]
        thermal = ThermalStreamInfo(
            width=first_thermal.width, height=first_thermal.height, fps=fps["thermal"],
            camera=_camera_name(self.specs["thermal"], "thermal", infos["thermal"]),
            encoding=self.encoding,  # type: ignore[arg-type]
            planck=self.planck)
        visible = None
        if "visible" in by_stream:
            first_visible = by_stream["visible"][0][0]
            visible = VisibleStreamInfo(
                width=first_visible.width, height=first_visible.height, fps=fps["visible"],
                camera=_camera_name(self.specs["visible"], "visible", infos["visible"]),
                file=self.request.video_file)
        self.recorded_at = recorded_at
        self.meta_block = self._meta_block(infos, fps)
        text, _ = self.calibration
        source = "simulated" if all(_is_simulated(spec) for spec in self.specs.values()) else "cameras"
        self.writer = RecordingWriter(self.request.out, source=source, thermal=thermal, visible=visible,  # type: ignore[arg-type]
                                      calibration_toml=text, extra_meta={"recording": self.meta_block},
                                      recorded_at=recorded_at, overwrite=self.request.overwrite)
        self.size_limit = self.request.max_bytes
        self._check_disk()
        streams = ", ".join(f"{stream} {self.specs[stream]} {info.width}x{info.height} @ {info.fps:g}/s"
                            for stream, info in (("thermal", thermal), ("visible", visible)) if info is not None)
        limits = [f"{self.request.seconds:g} s" if self.request.seconds else "",
                  format_size(self.request.max_bytes) if self.request.max_bytes else ""]
        until = " or ".join(x for x in limits if x)
        self.progress.say(f"recording {streams} into {self.request.out} "
                          f"({self.request.video} video{'' if VIDEO_FORMATS[self.request.video] else ', LOSSY'}); "
                          f"until {until + ' or ' if until else ''}Ctrl-C")

    def _meta_block(self, infos: dict[Stream, dict[str, object]], fps: dict[str, float]) -> dict[str, Any]:
        """meta.json's ``recording`` block: how it was made, with nothing that names a person or a host."""
        text, origin = self.calibration
        cameras = {stream: {key: _jsonable(info[key]) for key in DESCRIBE_KEYS
                            if key in info and (stream == "thermal" or key not in THERMAL_ONLY_KEYS)}
                   for stream, info in infos.items()}
        return {
            "command": "station record",
            "station_version": station.__version__,
            "sources": {stream: public_spec(spec) for stream, spec in self.specs.items()},
            "cameras": cameras,
            "software": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                         "platform": f"{platform.system()} {platform.machine()}"},
            "calibration": None if text is None else {
                "from": origin, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()},
            "video": {"file": self.request.video_file, "codec": SUFFIX_CODECS["." + self.request.video],
                      "lossless": VIDEO_FORMATS[self.request.video]} if "visible" in self.specs else None,
            "times": "each camera's own clock, shifted so that the earliest first frame is t = 0",
            "limits": {"seconds": self.request.seconds, "max_size_bytes": self.request.max_bytes},
            "fps_at_start": fps,
        }

    # ------------------------------------------------------------------ the loop
    def _loop(self, pending: list[tuple[Frame, float]]) -> None:
        for item in pending:  # the warm-up's frames; past --seconds they are skipped one by one, as later ones
            self._take(item[0])
            if self.reason not in (None, "seconds"):
                return
        while self.reason is None:
            if self.asked:
                name = signal.Signals(self.asked[0]).name
                self.reason, self.detail = "signal", f"stopped by {name}"
                return
            self._check_events()
            if self.reason is not None:
                return
            item = self.buffer.get(0.1)
            if item is not None:
                self._take(item[0])
            now = time.monotonic()
            if self.progress.due(now):
                self._check_disk()
                self.progress.show(self._status_text(), now)

    def _drain(self) -> None:
        """After a stop: write the frames already taken (every one the cameras gave before the stop), unless
        the stop was the disk's or the size limit's."""
        if self.writer is None or self.reason not in ("signal", "camera-lost", "source-ended", "seconds"):
            return
        reason, detail = self.reason, self.detail
        self.reason = None
        while self.reason is None:
            item = self.buffer.get(0)
            if item is None:
                break
            self._take(item[0])
        if self.reason in ("disk-full", "write-error", "frame-size", "max-size"):
            return  # the later fault (or the size limit) is what the operator must hear about
        self.reason, self.detail = reason, detail

    def _take(self, frame: Frame) -> None:
        """Write one frame, or count why not; sets :attr:`reason` when the recording must end."""
        stream = frame.stream
        writer = self.writer
        assert writer is not None
        last = self.last_raw_t.get(stream)
        if last is not None and not frame.t > last:
            self.not_increasing[stream] += 1
            return
        self.last_raw_t[stream] = frame.t
        t = frame.t - self.t0
        seconds = self.request.seconds
        if stream in self.past_limit:
            return
        if seconds is not None and t >= seconds:
            self.past_limit.add(stream)
            if self.past_limit >= set(self.sources):
                self.reason, self.detail = "seconds", f"stopped at --seconds {seconds:g}"
            return
        info = writer.thermal if stream == "thermal" else writer.visible
        assert info is not None
        if (frame.width, frame.height) != (info.width, info.height):
            self.reason = "frame-size"
            self.detail = (f"{stream} {self.specs[stream]} changed its frame size from {info.width}x{info.height} to "
                           f"{frame.width}x{frame.height}; stopped")
            return
        if self.size_limit is not None and self._projected(frame) > self.size_limit:
            if self.size_limit_is_disk:
                self.reason = "disk-full"
                self.detail = (f"{self.request.out}: the disk is nearly full "
                               f"({format_size(shutil.disk_usage(self.request.out).free)} free); stopped")
            else:
                self.reason = "max-size"
                self.detail = f"stopped before --max-size {format_size(self.request.max_bytes or 0)}"
            return
        try:
            writer.write(Frame(frame.image, t, writer.counts[stream], frame.meta))
        except OSError as exc:
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            self.reason = "disk-full" if full else "write-error"
            why = "no space left on device" if full else (exc.strerror or str(exc))
            self.detail = f"{exc.filename or self.request.out}: {why}; stopped"
            return
        self.last_t[stream] = t

    # ------------------------------------------------------------------ sizes
    def _files(self) -> list[str]:
        names = [META_FILE, FRAMES_FILE, CALIBRATION_FILE, "thermal.npy"]
        return names + ([self.request.video_file] if "visible" in self.sources else [])

    def _file_size(self, name: str) -> int:
        try:
            return os.stat(self.request.out / name).st_size
        except FileNotFoundError:
            return 0

    def size_on_disk(self) -> int:
        """The recording's files as they stand (what it holds, not other files beside it in OUT)."""
        return sum(self._file_size(name) for name in self._files())

    def _projected(self, frame: Frame) -> int:
        """The recording's size if this frame were written and the recording then closed, from above.

        The files' sizes on disk lag what was written by what the writers buffer, so their bounds are
        added, with the frame at its raw size (which no codec here exceeds by more than those bounds)
        and its ``frames.csv`` row, and what closing adds (meta.json, the video's index).
        """
        writer = self.writer
        assert writer is not None
        video = 0
        if writer.visible is not None:
            video = VIDEO_BUFFER_BYTES[self.request.video] + INDEX_BYTES_PER_FRAME * (writer.counts["visible"] + 1)
        return self.size_on_disk() + UNFLUSHED_BYTES + video + frame.image.nbytes + 64 + CLOSE_BYTES

    def _check_disk(self) -> None:
        """Lower the size limit to what the disk can still take, keeping :data:`DISK_RESERVE_BYTES` free."""
        try:
            free = shutil.disk_usage(self.request.out).free
        except OSError:
            return
        room = self.size_on_disk() + free - DISK_RESERVE_BYTES
        limit = self.request.max_bytes
        self.size_limit_is_disk = limit is None or room < limit
        self.size_limit = room if self.size_limit_is_disk else limit

    def _status_text(self) -> str:
        writer = self.writer
        assert writer is not None
        elapsed = max(self.last_t.values(), default=0.0)
        of = f" of {self.request.seconds:g}" if self.request.seconds else ""
        counts = "  ".join(f"{stream} {writer.counts[stream]}" for stream in ("thermal", "visible")
                           if stream in self.sources)
        size = format_size(self.size_on_disk())
        if self.request.max_bytes:
            size += f" of {format_size(self.request.max_bytes)}"
        dropped = sum(self.buffer.dropped.values()) + sum(self.not_increasing.values())
        return (f"recording {elapsed:6.1f}{of} s  {counts}  {size}  dropped {dropped}  "
                f"waiting {format_size(self.buffer.queued_bytes)}")

    # ------------------------------------------------------------------ closing
    def _dropped(self) -> dict[str, dict[str, int]]:
        return {stream: {"writer_behind": self.buffer.dropped[stream],
                         "time_not_increasing": self.not_increasing[stream]} for stream in self.sources}

    def _close(self) -> bool:
        """Finalise the recording, then add how it ended to meta.json; False when it could not be closed."""
        writer = self.writer
        if writer is None:
            return False
        try:
            writer.close()
        except OSError as exc:
            why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            self.detail = (f"{self.detail}; closing {exc.filename or self.request.out} failed ({why}): "
                           "the recording may not open")
            return False
        block = {**self.meta_block,
                 "stopped": {"reason": self.reason, "detail": self.detail},
                 "duration_s": max(self.last_t.values(), default=0.0),
                 "fps_measured": {stream: round(_measured_rate(writer.counts[stream], self.last_t.get(stream)), 3)
                                  for stream in self.sources},
                 "dropped": self._dropped()}
        try:
            _add_to_meta(self.request.out / META_FILE, "recording", block)
        except OSError:  # meta.json as the writer left it is complete; only this account of the end is lost
            self.detail += "; the drop counts could not be added to meta.json"
        if self.reason in ("disk-full", "write-error"):
            # A write that failed half-way may have left part of a frame behind; say so rather than hand over
            # a recording that replay would refuse.
            try:
                Recording.open(self.request.out)
            except RecordingError as exc:
                self.detail += f"; it does not open: {exc}"
                return False
        return True

    def _result(self, closed: bool) -> RecordResult:
        writer = self.writer
        assert writer is not None and self.reason is not None
        counts = {stream: writer.counts[stream] for stream in ("thermal", "visible") if stream in self.sources}
        return RecordResult(path=self.request.out, counts=counts, duration_s=max(self.last_t.values(), default=0.0),
                            size_bytes=self.size_on_disk(), dropped=self._dropped(), reason=self.reason,
                            detail=self.detail, recorded_at=self.recorded_at, closed=closed)


def _rate(info: dict[str, object], times: list[float]) -> float:
    """The stream's nominal rate: what the camera declares, else one over the median frame interval."""
    declared = info.get("fps")
    if isinstance(declared, int | float) and not isinstance(declared, bool) and 0 < declared <= 1000:
        return float(declared)
    if len(times) < 2 or not times[-1] > times[0]:
        return 1.0
    # The mean rate over the warm-up, to 0.1 Hz: a nominal figure (the true times are in frames.csv), and
    # steadier than any single interval of a camera whose frames jitter by milliseconds.
    return max(0.1, round((len(times) - 1) / (times[-1] - times[0]), 1))


def _measured_rate(count: int, last_t: float | None) -> float:
    return (count - 1) / last_t if count > 1 and last_t else 0.0


def _jsonable(value: object) -> object:
    """A describe() value as JSON: numbers, strings, lists and dicts pass, anything else as its text."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


def _add_to_meta(path: Path, key: str, value: object) -> None:
    """Set one extra top-level key of a closed recording's meta.json, atomically (temporary file, replace).

    The writer fixes its extra keys when it starts, but how a recording ended (its drops, its reason) is
    known only once it is closed; a reader never sees half a meta.json.
    """
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta[key] = value
    atomic_write(path, json.dumps(meta, indent=2, allow_nan=False) + "\n")


__all__ = ["DEFAULT_VIDEO", "FrameBuffer", "Progress", "RecordRequest", "RecordResult", "VIDEO_FORMATS",
           "format_size", "parse_size", "public_spec", "record"]
