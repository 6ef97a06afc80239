"""Recording format, version 1: a directory of plain files that any tool can read.

The format is a contract (``DESIGN.md``, "Recording format, version 1"): simulated runs, camera captures
and imports from other stations are all written in it, and replay, tests and benchmarks read it back.
``recordings/README.md`` documents it for users; this module is the one implementation of both sides.

Why the pieces look as they do:

* Everything streams. A recording can be an hour of two cameras, so the writer appends each frame to
  its file as it arrives and the reader memory-maps ``thermal.npy`` and decodes the video frame by
  frame. Neither side ever holds the whole recording.
* ``thermal.npy`` is a real ``.npy`` file whose header is written before the frame count is known. The
  header is padded to a reserved length so that :meth:`RecordingWriter.close` can rewrite it in place
  with the final count, and ``numpy.load`` works on the result.
* The reader validates everything before it hands out a single frame, and every fault is a
  :class:`~station.errors.RecordingError` whose one-line message names the file at fault, so the
  operator learns *which* file to look at instead of getting a traceback from deep inside numpy.

Version bump rules: adding an optional meta key or an optional file keeps ``version`` (readers ignore
keys and files they do not know); renaming or removing anything, or changing a unit or an encoding,
bumps it, and this reader keeps reading every version listed in :data:`KNOWN_VERSIONS`.
"""

from __future__ import annotations

import csv
import heapq
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import cv2
import numpy as np
from numpy.lib import format as npy_format

from station.acquire.sources.devices import quiet_opencv
from station.atomic import atomic_write
from station.errors import RecordingError
from station.types import STREAMS, Frame, Stream

FORMAT_NAME = "station-recording"
FORMAT_VERSION = 1
#: Every version this reader can open; a recording of another version is refused by name.
KNOWN_VERSIONS: tuple[int, ...] = (1,)

META_FILE = "meta.json"
FRAMES_FILE = "frames.csv"
CALIBRATION_FILE = "calibration.toml"
TRUTH_FILE = "truth.jsonl"
FRAMES_HEADER = ("stream", "index", "t")

RecordingSource = Literal["simulated", "cameras", "import"]
ThermalEncoding = Literal["tlinear-centikelvin", "raw-counts"]
SOURCES: tuple[str, ...] = ("simulated", "cameras", "import")
ENCODINGS: tuple[str, ...] = ("tlinear-centikelvin", "raw-counts")
PLANCK_KEYS: tuple[str, ...] = ("R", "B", "F", "O")
#: The codec each video suffix gets when a stream info names none. FFV1 is lossless and compact but
#: decodes at only ~60 fps on noisy 640x480 frames; HuffYUV (.avi) is lossless, about twice the size,
#: and decodes ~8x faster; mp4v (MPEG-4 part 2) is lossy but small and byte-deterministic, which
#: suits the bundled demo recording.
SUFFIX_CODECS: Mapping[str, str] = {".mkv": "FFV1", ".avi": "HFYU", ".mp4": "mp4v"}
#: Containers whose index holds an exact frame count, checked at open (mkv only estimates it).
EXACT_COUNT_SUFFIXES = (".mp4", ".avi")
#: The top-level meta keys the contract defines; everything else is :attr:`Recording.extra`.
CONTRACT_KEYS = frozenset({"format", "version", "source", "visible", "thermal", "recorded_at"})
#: Extra key the writer adds to each stream's meta entry at close: how many frames it holds.
FRAMES_KEY = "frames"

_THERMAL_DTYPE = np.dtype("<u2")
#: Digits reserved in the ``.npy`` header for the frame count, so the header never grows when rewritten.
_COUNT_DIGITS = 20


# --------------------------------------------------------------------------------------- stream info
def _check_positive_int(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}.{name}: expected a positive integer, got {value!r}")


def _check_fps(owner: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"{owner}.fps: expected a positive number of frames per second, got {value!r}")


def _check_camera(owner: str, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{owner}.camera: expected a string, got {value!r}")


def _check_file_name(owner: str, value: object) -> None:
    """A stream file must be a plain name inside the recording, never a path out of it.

    A meta.json naming ``../../somewhere`` would otherwise make replay read, or ``overwrite`` delete,
    files outside the recording.
    """
    reserved = {META_FILE, FRAMES_FILE, CALIBRATION_FILE, TRUTH_FILE}
    ok = isinstance(value, str) and value not in ("", ".", "..") and Path(value).name == value
    if not ok or value in reserved or "\\" in value:
        raise ValueError(f"{owner}.file: expected a plain file name inside the recording, got {value!r}")


@dataclass(frozen=True)
class VisibleStreamInfo:
    """What the visible stream of a recording is: its size, rate, camera and video file.

    ``codec`` is resolved from the file's suffix when not given (``.mkv`` -> FFV1, ``.mp4`` -> mp4v), so
    the info a writer was given compares equal to the one a reader gets back from ``meta.json``.
    """

    width: int
    height: int
    fps: float
    camera: str
    file: str = "visible.mkv"
    codec: str | None = None

    def __post_init__(self) -> None:
        owner = "visible"
        _check_positive_int(owner, "width", self.width)
        _check_positive_int(owner, "height", self.height)
        _check_fps(owner, self.fps)
        _check_camera(owner, self.camera)
        _check_file_name(owner, self.file)
        if self.codec is None:
            suffix = Path(self.file).suffix.lower()
            if suffix not in SUFFIX_CODECS:
                raise ValueError(
                    f"visible.file: expected a {', '.join(SUFFIX_CODECS)} name (or an explicit codec), "
                    f"got {self.file!r}"
                )
            object.__setattr__(self, "codec", SUFFIX_CODECS[suffix])
        elif not isinstance(self.codec, str) or not self.codec:
            raise ValueError(f"visible.codec: expected a FourCC string such as 'FFV1', got {self.codec!r}")

    def to_meta(self) -> dict[str, Any]:
        """The ``visible`` entry of ``meta.json`` (contract keys, then ``codec``)."""
        return {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "camera": self.camera,
            "codec": self.codec,
        }


@dataclass(frozen=True)
class ThermalStreamInfo:
    """What the thermal stream of a recording is, including how its ``uint16`` values are to be read.

    ``tlinear-centikelvin`` values are scene temperatures in 0.01 K; ``raw-counts`` are sensor counts
    that only the camera's Planck constants (``R``, ``B``, ``F``, ``O``) turn into temperatures, so a
    raw-counts stream without them could never be measured and is refused.
    """

    width: int
    height: int
    fps: float
    camera: str
    encoding: ThermalEncoding
    planck: dict[str, float] | None = None
    file: str = "thermal.npy"

    def __post_init__(self) -> None:
        owner = "thermal"
        _check_positive_int(owner, "width", self.width)
        _check_positive_int(owner, "height", self.height)
        _check_fps(owner, self.fps)
        _check_camera(owner, self.camera)
        _check_file_name(owner, self.file)
        if self.encoding not in ENCODINGS:
            expected = ", ".join(ENCODINGS)
            raise ValueError(f"thermal.encoding: expected one of {expected}, got {self.encoding!r}")
        if self.planck is not None:
            object.__setattr__(self, "planck", _checked_planck(self.planck))
        elif self.encoding == "raw-counts":
            raise ValueError(
                "thermal.planck: encoding 'raw-counts' needs the Planck constants R, B, F, O, got none"
            )

    def to_meta(self) -> dict[str, Any]:
        """The ``thermal`` entry of ``meta.json``."""
        return {
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "camera": self.camera,
            "encoding": self.encoding,
            "planck": None if self.planck is None else dict(self.planck),
        }


def _checked_planck(planck: object) -> dict[str, float]:
    """The four Planck constants as floats, or a ValueError naming what is missing or not a number."""
    if not isinstance(planck, Mapping):
        raise ValueError(f"thermal.planck: expected an object with keys R, B, F, O, got {planck!r}")
    missing = [key for key in PLANCK_KEYS if key not in planck]
    if missing:
        raise ValueError(f"thermal.planck: missing {', '.join(missing)} (expected R, B, F, O)")
    out: dict[str, float] = {}
    for key in PLANCK_KEYS:
        value = planck[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"thermal.planck.{key}: expected a finite number, got {value!r}")
        out[key] = float(value)
    return out


# ------------------------------------------------------------------------------------ .npy header
def _npy_header_text(shape: str) -> str:
    """The header dict in numpy's own spelling, for a C-ordered little-endian uint16 array."""
    return "{'descr': '<u2', 'fortran_order': False, 'shape': " + shape + ", }"


def _npy_header(shape: tuple[int, int, int], length: int) -> bytes:
    """A version 1.0 ``.npy`` header for a C-ordered ``<u2`` array, padded with spaces to ``length`` bytes.

    Written by hand rather than with ``numpy.lib.format.write_array_header_1_0`` because that function
    chooses its own padding, and the writer needs the header to keep one length whatever the count.
    """
    text = _npy_header_text(repr(tuple(shape)))
    prefix = npy_format.magic(1, 0)
    body_len = length - len(prefix) - 2
    if len(text) + 1 > body_len:
        raise ValueError(f"thermal.npy header needs {len(text) + 1} bytes, only {body_len} reserved")
    body = text.ljust(body_len - 1) + "\n"
    return prefix + body_len.to_bytes(2, "little") + body.encode("latin1")


def _reserved_header_len(height: int, width: int) -> int:
    """Header length that fits any frame count of up to :data:`_COUNT_DIGITS` digits, 64-byte aligned."""
    text = _npy_header_text(repr((10**_COUNT_DIGITS - 1, height, width)))
    needed = len(npy_format.magic(1, 0)) + 2 + len(text) + 1
    return -(-needed // npy_format.ARRAY_ALIGN) * npy_format.ARRAY_ALIGN


# ------------------------------------------------------------------------------------------ writer
def _format_files(directory: Path) -> set[str]:
    """Names of the format's files in ``directory``, including the streams its old meta.json names."""
    names = {META_FILE, META_FILE + ".tmp", FRAMES_FILE, CALIBRATION_FILE, TRUTH_FILE}
    try:
        old = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return names
    for stream in STREAMS:
        entry = old.get(stream) if isinstance(old, dict) else None
        name = entry.get("file") if isinstance(entry, dict) else None
        try:
            _check_file_name(stream, name)
        except ValueError:
            continue
        names.add(name)
    return names


def _prepare_directory(directory: Path, overwrite: bool, stream_files: Iterable[str]) -> None:
    """Create the recording directory, refusing to mix a new recording into an old one.

    With ``overwrite`` only the format's own files are removed (those of the old recording and those
    the new one will write), never anything else, so a wrong path cannot wipe out unrelated data.
    """
    if directory.exists() and not directory.is_dir():
        raise RecordingError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise RecordingError(
                f"{directory}: directory exists and is not empty (pass overwrite to replace it)"
            )
        for name in _format_files(directory) | set(stream_files):
            target = directory / name
            if target.is_file() or target.is_symlink():
                target.unlink()
    directory.mkdir(parents=True, exist_ok=True)


def _write_json_atomically(path: Path, value: Mapping[str, Any]) -> None:
    """Write JSON atomically and durably (:func:`station.atomic.atomic_write`): never half a meta.json."""
    atomic_write(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def _open_video_writer(path: Path, info: VisibleStreamInfo) -> cv2.VideoWriter:
    """Open OpenCV's FFmpeg writer, failing now rather than silently writing nothing later."""
    codec = info.codec or ""
    if len(codec) != 4:
        raise ValueError(f"visible.codec: expected a four-character FourCC, got {codec!r}")
    fourcc = cv2.VideoWriter_fourcc(*codec)
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, fourcc, float(info.fps), (info.width, info.height))
    if not writer.isOpened():
        raise RecordingError(f"{path}: OpenCV cannot write {codec} video here")
    return writer


class RecordingWriter:
    """Write a recording frame by frame, in format version 1.

    Use it as a context manager so the recording is finalised (``.npy`` header, video trailer, frame
    counts in meta.json) even when the loop feeding it fails; a closed recording always opens.

    Parameters
    ----------
    directory
        Created if missing. An existing, non-empty directory is refused unless ``overwrite`` is true.
    source
        Where the frames came from: ``"simulated"``, ``"cameras"`` or ``"import"``.
    thermal, visible
        The streams; ``visible`` is ``None`` for a thermal-only recording.
    calibration_toml
        The text of the calibration profile in effect, written verbatim to ``calibration.toml``.
    extra_meta
        Extra top-level meta.json keys (for example ``"simulation"``); they may not shadow contract keys.
    recorded_at
        When the frame at ``t = 0`` was taken (UTC, ISO 8601 with ``Z``). A replay judges the calibration's
        age at this time, not at the day it is replayed, so an old recording screens as it did then.
    overwrite
        Replace the format's files in a non-empty directory instead of refusing.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        source: RecordingSource,
        thermal: ThermalStreamInfo,
        visible: VisibleStreamInfo | None,
        calibration_toml: str | None = None,
        extra_meta: dict | None = None,
        recorded_at: str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(directory)
        self.source = _checked_source(source)
        self.recorded_at = None if recorded_at is None else _checked_recorded_at(recorded_at)
        self.thermal = thermal
        self.visible = visible
        self._extra = _checked_extra(extra_meta)
        self._counts: dict[Stream, int] = {"thermal": 0, "visible": 0}
        self._last_t: dict[Stream, float | None] = {"thermal": None, "visible": None}
        self._closed = False
        self._truth_started = False
        self._thermal_fh: IO[bytes] | None = None
        self._frames_fh: IO[str] | None = None
        self._video: cv2.VideoWriter | None = None
        self._header_len = _reserved_header_len(thermal.height, thermal.width)

        stream_files = [thermal.file] + ([visible.file] if visible else [])
        _prepare_directory(self.path, overwrite, stream_files)
        try:
            self._open_files(calibration_toml)
        except BaseException:
            self._release()
            raise

    # ----------------------------------------------------------------- setup
    def _open_files(self, calibration_toml: str | None) -> None:
        if calibration_toml is not None:
            (self.path / CALIBRATION_FILE).write_text(calibration_toml, encoding="utf-8")
        _write_json_atomically(self.path / META_FILE, self._meta())
        self._thermal_fh = open(self.path / self.thermal.file, "wb")
        self._thermal_fh.write(self._thermal_header())
        self._frames_fh = open(self.path / FRAMES_FILE, "w", encoding="utf-8", newline="")
        self._frames_fh.write(",".join(FRAMES_HEADER) + "\n")
        if self.visible is not None:
            self._video = _open_video_writer(self.path / self.visible.file, self.visible)

    def _thermal_header(self) -> bytes:
        shape = (self._counts["thermal"], self.thermal.height, self.thermal.width)
        return _npy_header(shape, self._header_len)

    def _meta(self) -> dict[str, Any]:
        """meta.json's content; after close each stream also says how many frames it holds."""
        thermal = self.thermal.to_meta()
        visible = None if self.visible is None else self.visible.to_meta()
        if self._closed:
            thermal[FRAMES_KEY] = self._counts["thermal"]
            if visible is not None:
                visible[FRAMES_KEY] = self._counts["visible"]
        meta: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "source": self.source,
            "visible": visible,
            "thermal": thermal,
        }
        if self.recorded_at is not None:
            meta["recorded_at"] = self.recorded_at
        meta.update(self._extra)
        return meta

    # ----------------------------------------------------------------- writing
    def write(self, frame: Frame) -> None:
        """Append one frame to its stream's file and a row to frames.csv.

        Raises ``ValueError`` for a frame that does not fit the stream (size, next index, a time not
        after the previous one): such a frame is a bug in the caller, and writing it would produce a
        recording that the reader refuses.
        """
        if self._closed:
            raise ValueError(f"{self.path}: write() after close()")
        stream = frame.stream
        self._check_frame(stream, frame)
        if stream == "thermal":
            assert self._thermal_fh is not None
            self._thermal_fh.write(frame.image.astype(_THERMAL_DTYPE, order="C", copy=False).tobytes())
        else:
            assert self._video is not None
            self._video.write(np.ascontiguousarray(frame.image))
        assert self._frames_fh is not None
        t = float(frame.t)
        self._frames_fh.write(f"{stream},{frame.index},{t!r}\n")
        self._counts[stream] += 1
        self._last_t[stream] = t

    def _check_frame(self, stream: Stream, frame: Frame) -> None:
        info = self.thermal if stream == "thermal" else self.visible
        if info is None:
            raise ValueError(f"{self.path}: a visible frame arrived but the recording is thermal-only")
        expected = (info.height, info.width) if stream == "thermal" else (info.height, info.width, 3)
        if frame.image.shape != expected:
            raise ValueError(f"{stream} frame: expected shape {expected}, got {frame.image.shape}")
        if frame.index != self._counts[stream]:
            raise ValueError(f"{stream} frame: expected index {self._counts[stream]}, got {frame.index}")
        last = self._last_t[stream]
        if last is not None and not frame.t > last:
            raise ValueError(f"{stream} frame {frame.index}: expected t > {last!r}, got {frame.t!r}")

    def write_truth(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ground-truth records to truth.jsonl, one JSON object per line.

        May be called several times (for example once per simulated person); the first call starts the
        file afresh. NaN is refused because it is not JSON and other tools could not read the file.
        """
        if self._closed:
            raise ValueError(f"{self.path}: write_truth() after close()")
        mode = "a" if self._truth_started else "w"
        with open(self.path / TRUTH_FILE, mode, encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(dict(record), allow_nan=False) + "\n")
        self._truth_started = True

    @property
    def counts(self) -> dict[str, int]:
        """Frames written so far, per stream."""
        return dict(self._counts)

    # ----------------------------------------------------------------- finishing
    def close(self) -> None:
        """Finalise the recording: the ``.npy`` frame count, the video trailer, meta.json. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._thermal_fh is not None:
                self._thermal_fh.seek(0)
                self._thermal_fh.write(self._thermal_header())
        finally:
            self._release()
        _write_json_atomically(self.path / META_FILE, self._meta())

    def _release(self) -> None:
        """Close every open handle, even if one of them fails."""
        handles, self._thermal_fh, self._frames_fh = (self._thermal_fh, self._frames_fh), None, None
        video, self._video = self._video, None
        try:
            for fh in handles:
                if fh is not None:
                    fh.close()
        finally:
            if video is not None:
                video.release()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _checked_source(source: object) -> RecordingSource:
    if source not in SOURCES:
        raise ValueError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}")
    return source  # type: ignore[return-value]


def _checked_extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Extra meta keys, refusing any that would overwrite a contract key."""
    extra = dict(extra or {})
    clash = sorted(CONTRACT_KEYS & extra.keys())
    if clash:
        raise ValueError(f"extra_meta: keys {clash} belong to the format and cannot be overridden")
    json.dumps(extra, allow_nan=False)  # fail now, not at close, if the values are not JSON
    return extra


def parse_recorded_at(value: object) -> datetime:
    """``recorded_at`` as an aware UTC datetime; ``ValueError`` names what was wrong.

    Only an explicit UTC time is accepted (``Z`` or ``+00:00``): a recording is judged at the time it was
    made, and a time without its zone would be judged hours off wherever it is replayed.
    """
    if not isinstance(value, str):
        raise ValueError(f"recorded_at: expected an ISO 8601 UTC time such as '2026-11-23T10:00:00Z', got {value!r}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"recorded_at: {value!r} is not an ISO 8601 time such as '2026-11-23T10:00:00Z'") from None
    if when.utcoffset() != timedelta(0):
        raise ValueError(f"recorded_at: {value!r} must be in UTC (end it with 'Z')")
    return when.astimezone(UTC)


def format_recorded_at(when: datetime) -> str:
    """``when`` as ``recorded_at`` writes it: UTC, milliseconds, ``Z`` (a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _checked_recorded_at(value: object) -> str:
    parse_recorded_at(value)
    return value  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ reader
def _fault(path: Path, message: str) -> RecordingError:
    """A RecordingError naming the file, kept to one line whatever the message quotes."""
    return RecordingError(f"{path}: " + " ".join(message.split()))


def _check_directory(path: Path) -> None:
    if not path.exists():
        raise _fault(path, "recording directory does not exist")
    if not path.is_dir():
        raise _fault(path, "is not a directory (a recording is a directory)")


def _read_meta(path: Path) -> dict[str, Any]:
    """meta.json as a dict, after checking it is this format and a version this reader knows."""
    if not path.is_file():
        raise _fault(path, "missing (every recording has a meta.json)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fault(path, f"not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _fault(path, f"expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT_NAME:
        raise _fault(path, f"format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    version = meta.get("version")
    if isinstance(version, bool) or version not in KNOWN_VERSIONS:
        known = ", ".join(str(v) for v in KNOWN_VERSIONS)
        raise _fault(path, f"version {version!r} is unknown; this reader knows version(s) {known}")
    return meta


_STREAM_KEYS = {
    "visible": ("file", "width", "height", "fps", "camera"),
    "thermal": ("file", "width", "height", "fps", "camera", "encoding", "planck"),
}


def _stream_entry(meta: Mapping[str, Any], stream: Stream, meta_path: Path) -> dict[str, Any] | None:
    """One stream's meta entry with its contract keys checked to be present."""
    if stream not in meta:
        if stream == "thermal":
            raise _fault(meta_path, "no thermal stream (key 'thermal' missing): the station screens on thermal "
                         "frames, so a recording without them cannot be screened or replayed")
        raise _fault(meta_path, f"key {stream!r} missing")
    entry = meta[stream]
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise _fault(meta_path, f"{stream}: expected an object or null, got {entry!r}")
    missing = [key for key in _STREAM_KEYS[stream] if key not in entry]
    if missing:
        raise _fault(meta_path, f"{stream}: missing {', '.join(missing)}")
    return entry


def _parse_streams(
    meta: Mapping[str, Any], meta_path: Path
) -> tuple[ThermalStreamInfo, VisibleStreamInfo | None]:
    """Stream infos from meta.json; their constructors' checks become RecordingErrors naming meta.json."""
    thermal_entry = _stream_entry(meta, "thermal", meta_path)
    if thermal_entry is None:
        raise _fault(meta_path, "thermal: every recording has a thermal stream, got null")
    visible_entry = _stream_entry(meta, "visible", meta_path)
    try:
        thermal = ThermalStreamInfo(**{key: thermal_entry[key] for key in _STREAM_KEYS["thermal"]})
        visible = None
        if visible_entry is not None:
            suffix = Path(str(visible_entry["file"])).suffix.lower()
            codec = visible_entry.get("codec") or SUFFIX_CODECS.get(suffix, "unknown")
            visible = VisibleStreamInfo(
                **{key: visible_entry[key] for key in _STREAM_KEYS["visible"]}, codec=codec
            )
    except (TypeError, ValueError) as exc:
        raise _fault(meta_path, str(exc)) from None
    return thermal, visible


def _parse_source(meta: Mapping[str, Any], meta_path: Path) -> str:
    source = meta.get("source")
    if source not in SOURCES:
        raise _fault(meta_path, f"source is {source!r}, expected one of {', '.join(SOURCES)}")
    return source


def _require_files(path: Path, thermal: ThermalStreamInfo, visible: VisibleStreamInfo | None) -> None:
    names = [FRAMES_FILE, thermal.file] + ([visible.file] if visible else [])
    for name in names:
        if not (path / name).is_file():
            raise _fault(path / name, "missing (named by meta.json)" if name != FRAMES_FILE else "missing")


def _parse_frames_row(row: list[str], line: int, path: Path) -> tuple[Stream, int, float]:
    """One frames.csv row as (stream, index, t); a fault names the line."""
    shown = ",".join(row)
    if len(row) != 3 or row[0] not in STREAMS:
        raise _fault(path, f"line {line}: expected 'visible|thermal,index,t', got {shown!r}")
    try:
        index, t = int(row[1]), float(row[2])
    except ValueError:
        raise _fault(path, f"line {line}: index must be an integer and t a number, got {shown!r}") from None
    if index < 0 or not math.isfinite(t):
        raise _fault(path, f"line {line}: expected index >= 0 and a finite t, got {shown!r}")
    return row[0], index, t  # type: ignore[return-value]


def _read_frames_csv(path: Path, has_visible: bool) -> dict[Stream, np.ndarray]:
    """Per-stream times from frames.csv, checking indices run 0..N-1 and times strictly increase.

    Streams the whole file once; only the times are kept (8 bytes a frame).
    """
    try:
        return _read_frames_rows(path, has_visible)
    except UnicodeDecodeError as exc:
        # The file is plain ASCII by contract: a byte that is not even UTF-8 is damage, not a format question.
        raise _fault(path, f"is damaged: byte {exc.object[exc.start:exc.start + 1]!r} is not text") from None


def _read_frames_rows(path: Path, has_visible: bool) -> dict[Stream, np.ndarray]:
    times: dict[Stream, list[float]] = {"thermal": [], "visible": []}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != FRAMES_HEADER:
            shown = "" if header is None else ",".join(header)
            raise _fault(path, f"line 1: header must be {','.join(FRAMES_HEADER)!r}, got {shown!r}")
        for line, row in enumerate(reader, start=2):
            stream, index, t = _parse_frames_row(row, line, path)
            if stream == "visible" and not has_visible:
                raise _fault(path, f"line {line}: a visible frame, but meta.json has no visible stream")
            seen = times[stream]
            if index != len(seen):
                raise _fault(
                    path,
                    f"line {line}: {stream} index {index}, expected {len(seen)} "
                    "(indices run 0..N-1 in order)",
                )
            if seen and not t > seen[-1]:
                raise _fault(
                    path, f"line {line}: {stream} t={t!r} is not after the previous {stream} t={seen[-1]!r}"
                )
            seen.append(t)
    return {stream: np.asarray(values, dtype=np.float64) for stream, values in times.items()}


def _read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, read without loading it."""
    with open(path, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = npy_format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _fortran, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy version {version[0]}.{version[1]}")
        except (ValueError, SyntaxError, EOFError) as exc:
            raise _fault(path, f"not a readable .npy file ({exc})") from None
        return tuple(shape), dtype, fh.tell()


def _check_thermal_file(path: Path, info: ThermalStreamInfo, listed: int) -> None:
    """thermal.npy must be uint16 (N, H, W) as meta says, complete, and hold frames.csv's N frames."""
    shape, dtype, offset = _read_npy_header(path)
    if dtype.kind != "u" or dtype.itemsize != 2:
        raise _fault(path, f"dtype {dtype}, meta.json says uint16")
    if len(shape) != 3 or shape[1:] != (info.height, info.width):
        raise _fault(path, f"shape {shape}, meta.json says (N, {info.height}, {info.width})")
    frame_bytes = info.height * info.width * dtype.itemsize
    expected = offset + shape[0] * frame_bytes
    actual = path.stat().st_size
    if actual < expected:
        complete = (actual - offset) // frame_bytes
        raise _fault(
            path,
            f"truncated: its header says {shape[0]} frames ({expected} bytes) "
            f"but the file has {actual} bytes, {complete} complete frames",
        )
    if actual > expected:
        raise _fault(
            path,
            f"{actual - expected} bytes beyond the {shape[0]} frames its header says "
            "(was the recording never closed?)",
        )
    if shape[0] != listed:
        raise _fault(path, f"holds {shape[0]} frames, frames.csv lists {listed} thermal frames")


def _open_capture(path: Path) -> cv2.VideoCapture:
    with quiet_opencv():  # a video OpenCV cannot open is said once, below, naming the file
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise _fault(path, "OpenCV cannot open this video")
    return capture


def _check_video(path: Path, info: VisibleStreamInfo, listed: int) -> None:
    """The video opens at meta's size and, for .mp4 (whose frame count is exact), holds ``listed`` frames.

    Matroska only estimates its frame count from the duration, so for .mkv the count is checked while
    decoding, in :meth:`Recording.frames`. A video with no frames is not opened: FFmpeg cannot open an
    empty container, and there is nothing in it to check.
    """
    if listed == 0:
        return
    capture = _open_capture(path)
    try:
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if size != (info.width, info.height):
            raise _fault(path, f"video is {size[0]}x{size[1]}, meta.json says {info.width}x{info.height}")
        if path.suffix.lower() in EXACT_COUNT_SUFFIXES:
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            if count != listed:
                raise _fault(path, f"video holds {count} frames, frames.csv lists {listed} visible frames")
    finally:
        capture.release()


def _check_meta_counts(meta: Mapping[str, Any], counts: Mapping[str, int], meta_path: Path) -> None:
    """The optional per-stream ``frames`` counts the writer adds at close must agree with frames.csv."""
    for stream in STREAMS:
        entry = meta.get(stream)
        if isinstance(entry, dict) and FRAMES_KEY in entry and entry[FRAMES_KEY] != counts[stream]:
            raise _fault(
                meta_path,
                f"{stream}.{FRAMES_KEY} is {entry[FRAMES_KEY]!r}, "
                f"frames.csv lists {counts[stream]} {stream} frames",
            )


def _check_stream(stream: str) -> None:
    if stream not in STREAMS:
        raise ValueError(f"stream: expected one of {', '.join(STREAMS)}, got {stream!r}")


class Recording:
    """A recording on disk, validated when opened and then read frame by frame.

    Build it with :meth:`open`; the constructor takes already-validated parts.

    Attributes
    ----------
    path
        The recording directory.
    meta
        meta.json as read.
    source
        ``"simulated"``, ``"cameras"`` or ``"import"``.
    thermal, visible
        The stream infos (``visible`` is ``None`` for a thermal-only recording).
    extra
        Top-level meta.json keys beyond the contract, such as ``"simulation"``.
    calibration_path
        ``calibration.toml`` when the recording has one, else ``None``.
    """

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        thermal: ThermalStreamInfo,
        visible: VisibleStreamInfo | None,
        times: Mapping[Stream, np.ndarray],
    ) -> None:
        self.path = path
        self.meta = meta
        self.source: str = meta["source"]
        self.thermal = thermal
        self.visible = visible
        self.extra: dict[str, Any] = {key: value for key, value in meta.items() if key not in CONTRACT_KEYS}
        self._times = dict(times)
        calibration = path / CALIBRATION_FILE
        self.calibration_path: Path | None = calibration if calibration.is_file() else None

    @classmethod
    def open(cls, directory: str | Path) -> Recording:
        """Open and validate a recording; any fault is a one-line RecordingError naming the file."""
        path = Path(directory)
        _check_directory(path)
        meta_path = path / META_FILE
        meta = _read_meta(meta_path)
        _parse_source(meta, meta_path)
        if "recorded_at" in meta:
            try:
                parse_recorded_at(meta["recorded_at"])
            except ValueError as exc:
                raise _fault(meta_path, str(exc)) from None
        thermal, visible = _parse_streams(meta, meta_path)
        _require_files(path, thermal, visible)
        times = _read_frames_csv(path / FRAMES_FILE, visible is not None)
        _check_thermal_file(path / thermal.file, thermal, len(times["thermal"]))
        if visible is not None:
            _check_video(path / visible.file, visible, len(times["visible"]))
        _check_meta_counts(meta, {stream: len(values) for stream, values in times.items()}, meta_path)
        return cls(path, meta, thermal, visible, times)

    @property
    def recorded_at(self) -> datetime | None:
        """When its frame at ``t = 0`` was taken (UTC), or ``None`` for a recording that does not say."""
        value = self.meta.get("recorded_at")
        return None if value is None else parse_recorded_at(value)

    def wall_time(self, t: float) -> datetime | None:
        """The UTC time of the frame at ``t`` seconds, or ``None`` when the recording does not say."""
        start = self.recorded_at
        return None if start is None else start + timedelta(seconds=float(t))

    def __repr__(self) -> str:
        return (
            f"Recording({str(self.path)!r}, source={self.source!r}, thermal={self.count('thermal')}, "
            f"visible={self.count('visible')}, duration={self.duration:.3f})"
        )

    # ----------------------------------------------------------------- timing
    def count(self, stream: Stream) -> int:
        """Frames in ``stream`` (0 for the visible stream of a thermal-only recording)."""
        _check_stream(stream)
        return len(self._times[stream])

    def times(self, stream: Stream) -> np.ndarray:
        """Frame times of ``stream`` in seconds from the start, float64 (a copy)."""
        _check_stream(stream)
        return self._times[stream].copy()

    def fps(self, stream: Stream) -> float | None:
        """Nominal frame rate of ``stream`` from meta.json, or ``None`` if the recording lacks it."""
        _check_stream(stream)
        info = self.thermal if stream == "thermal" else self.visible
        return None if info is None else float(info.fps)

    @property
    def duration(self) -> float:
        """Seconds from the start to the end of the last frame's period (last ``t`` + 1/fps).

        Counting the last frame's own period makes a looped replay continue at the natural frame
        spacing: shifting the recording by its duration never puts two frames at the same time.
        """
        ends = [
            float(self._times[stream][-1]) + 1.0 / float(self.fps(stream) or math.inf)
            for stream in STREAMS
            if self.count(stream)
        ]
        return max(ends, default=0.0)

    # ----------------------------------------------------------------- frames
    def frames(self, stream: Stream) -> Iterator[Frame]:
        """Frames of ``stream`` in order, read one at a time (thermal memory-mapped, video decoded)."""
        _check_stream(stream)
        if stream == "thermal":
            return self._thermal_frames()
        if self.visible is None:
            return iter(())
        return self._visible_frames(self.visible)

    def _thermal_frames(self) -> Iterator[Frame]:
        data = np.load(self.path / self.thermal.file, mmap_mode="r")
        for index, t in enumerate(self._times["thermal"]):
            yield Frame(np.array(data[index], dtype=np.uint16), float(t), index)

    def _visible_frames(self, info: VisibleStreamInfo) -> Iterator[Frame]:
        """Decode the video, checking it holds exactly frames.csv's frames at meta's size."""
        times = self._times["visible"]
        if len(times) == 0:
            return
        path = self.path / info.file
        capture = _open_capture(path)
        try:
            expected = (info.height, info.width, 3)
            for index, t in enumerate(times):
                ok, image = capture.read()
                if not ok:
                    raise _fault(path, f"video ends after {index} frames, frames.csv lists {len(times)}")
                if image.shape != expected:
                    raise _fault(
                        path, f"frame {index} decodes to shape {image.shape}, meta.json says {expected}"
                    )
                yield Frame(image, float(t), index)
            if capture.grab():
                raise _fault(path, f"video holds more frames than the {len(times)} frames.csv lists")
        finally:
            capture.release()

    def merged(self) -> Iterator[Frame]:
        """Both streams in time order; on equal times the thermal frame comes first.

        ``heapq.merge`` keeps at most one pending frame per stream and is stable across its inputs,
        which gives the thermal-first tie rule by listing thermal first.
        """
        return heapq.merge(self.frames("thermal"), self.frames("visible"), key=attrgetter("t"))

    # ----------------------------------------------------------------- side files
    def calibration_text(self) -> str | None:
        """The calibration profile recorded with the frames, verbatim, or ``None`` if there is none."""
        if self.calibration_path is None:
            return None
        return self.calibration_path.read_text(encoding="utf-8")

    def truth(self) -> list[dict[str, Any]] | None:
        """Ground truth from truth.jsonl (simulated recordings), or ``None`` when there is none."""
        path = self.path / TRUTH_FILE
        if not path.is_file():
            return None
        records: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as fh:
            for line, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:
                    raise _fault(path, f"line {line}: not valid JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise _fault(path, f"line {line}: expected a JSON object, got {type(record).__name__}")
                records.append(record)
        return records
