"""FLIR SEQ into recording format v1, through flirpy's own SEQ and FFF readers.

A SEQ file is FFF records one after another, one per frame; each holds the frame's raw counts and a
camera-information record with the Planck constants and the object parameters the operator set
(emissivity, reflected and atmospheric temperature, distance, humidity, IR window). The import:

* finds the frames with flirpy's ``Seq`` walker and decodes each with flirpy's ``Fff``, over a memory
  map rather than flirpy's read of the whole file, so an hour of 640x480 stays on disk;
* writes the raw counts unchanged as ``raw-counts`` with ``planck`` from
  :func:`~station.acquire.radiometry.planck_from_flir` of the frames' R1, R2, B, F, O (a file whose constants
  change between frames cannot be one stream, and is refused);
* keeps the full FLIR model (:class:`~station.acquire.radiometry.FlirParams`, field for field, so
  ``FlirParams(**meta["import"]["flir_params"])`` rebuilds it for
  :func:`~station.acquire.radiometry.flir_raw_to_celsius`) and the camera's identity in meta.json under ``import``;
* times each frame by its camera-information time stamp (seconds and milliseconds, UTC) minus the
  first frame's.

flirpy 0.6 decodes the serial number and software version from the wrong offsets (decimal 104 and 114
for 0x104 and 0x114), so those two strings are read here from ExifTool's documented offsets. Every
fault is a one-line :class:`~station.errors.RecordingError` naming the file, and nothing is written for
a file that fails the first read.
"""

from __future__ import annotations

import dataclasses
import math
import mmap
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from flirpy.io.fff import Fff, FffHeader
from flirpy.io.seq import Seq

from station.acquire.importers import (
    ImportSummary,
    check_format,
    check_out,
    discard_partial,
    fault,
    io_fault,
    quarter_turns,
)
from station.acquire.radiometry import KELVIN, FlirParams, planck_from_flir
from station.acquire.recording import FRAMES_FILE, META_FILE, RecordingWriter, ThermalStreamInfo, format_recorded_at
from station.digest import sha256_file
from station.types import Frame

ENCODING = "raw-counts"
_RAW_DATA, _CAMERA_INFO = 0x01, 0x20
#: FFF raw-data record subtypes (ExifTool): 1 big-endian, 2 little-endian, 3 PNG. flirpy reads only 2.
_RAW_LITTLE_ENDIAN = 2
_RAW_HEADER = 0x20
_PLANCK_KEYS = ("Planck R1", "Planck R2", "Planck B", "Planck F", "Planck O")
_STRINGS = {  # camera-information record: (offset, length), ExifTool's FLIR.pm CameraInfo
    "camera_model": (0xD4, 32),
    "camera_part_number": (0xF4, 16),
    "camera_serial": (0x104, 16),
    "camera_software": (0x114, 16),
    "lens_model": (0x170, 32),
    "lens_part_number": (0x190, 16),
    "lens_serial": (0x1A0, 16),
    "filter_model": (0x1EC, 16),
}
_NUMBERS = ("FieldOfView", "FrameRate", "RawValueRangeMin", "RawValueRangeMax", "FocusDistance",
            "CameraTemperatureRangeMin", "CameraTemperatureRangeMax")
_FLIRPY_KELVIN = ("CameraTemperatureRangeMin", "CameraTemperatureRangeMax")
_READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, struct.error)


@dataclass(frozen=True)
class _FrameInfo:
    """What one FFF frame says about itself, checked."""

    width: int
    height: int
    planck: tuple[float, ...]
    params: FlirParams
    time_ms: int
    tz_minutes: int
    camera: dict[str, Any]


def _camera_record(fff: Fff) -> tuple[bytes, bool]:
    for record in fff.records:
        if record.record_type == _CAMERA_INFO:
            data = fff.data[record.record_offset : record.record_offset + record.record_length]
            return data, int.from_bytes(data[:2], "little") != 2
    return b"", False


def _string(data: bytes, offset: int, length: int) -> str:
    return data[offset : offset + length].split(b"\x00")[0].decode("latin-1").strip()


def _frame_info(src: Path, position: int, fff: Fff) -> _FrameInfo:
    """Check one decoded frame and gather its calibration, time and camera identity."""
    where = f"frame {position}"
    raw = [r for r in fff.records if r.record_type == _RAW_DATA]
    if not raw:
        raise fault(src, f"{where} has no raw-data record; expected raw counts in every FFF frame")
    if raw[0].record_subtype != _RAW_LITTLE_ENDIAN:
        kind = {1: "big-endian", 3: "PNG-compressed"}.get(raw[0].record_subtype, f"subtype {raw[0].record_subtype}")
        raise fault(src, f"{where}'s raw data is {kind}; flirpy reads only little-endian raw counts")
    width, height = int(getattr(fff, "width", 0)), int(getattr(fff, "height", 0))
    if width <= 0 or height <= 0 or raw[0].record_length < _RAW_HEADER + 2 * width * height:
        raise fault(src, f"{where}'s raw-data record ({raw[0].record_length} bytes) cannot hold a "
                         f"{width}x{height} uint16 image")
    data, big = _camera_record(fff)
    if len(data) < 0x468 or any(key not in fff.meta for key in _PLANCK_KEYS):
        raise fault(src, f"{where} has no complete camera-information record; expected the Planck constants "
                         "(R1, R2, B, F, O) in every frame")
    try:
        params = FlirParams.from_flirpy(fff.meta)
    except ValueError as exc:
        raise fault(src, f"{where}: implausible FLIR calibration ({exc})") from None
    seconds, millis, tz = struct.unpack_from(">IIh" if big else "<IIh", data, 0x384)
    camera = {key: _string(data, offset, length) for key, (offset, length) in _STRINGS.items()}
    camera.update({key: _json_number(fff.meta.get(key)) for key in _NUMBERS})
    for key in _FLIRPY_KELVIN:  # flirpy subtracts 273.14, not 273.15
        if isinstance(camera[key], float):
            camera[key] += 273.14 - KELVIN
    planck = tuple(float(fff.meta[key]) for key in _PLANCK_KEYS)
    return _FrameInfo(width, height, planck, params, seconds * 1000 + (millis & 0xFFFF), tz, camera)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _SeqFile:
    """flirpy's SEQ reader over a memory map: its frame walker (``Seq``) and its frame decoder (``Fff``).

    ``Seq`` itself reads the whole file into memory first; walking a memory map with the same code
    gives the same frames, one at a time.
    """

    def __init__(self, src: Path) -> None:
        self.src = src
        self.size = src.stat().st_size
        self._fh = open(src, "rb")
        try:
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            self._fh.close()
            raise fault(src, f"cannot be mapped for reading ({exc})") from None
        try:
            self.positions: list[tuple[int, int]] = Seq._get_frame_positions(self._map)
        except _READ_ERRORS as exc:
            self.close()
            raise fault(src, f"corrupt FFF header ({type(exc).__name__}: {exc}); expected a FLIR SEQ") from None

    def check_extent(self) -> None:
        """The frames must tile the file exactly: no frame cut short, nothing after the last one."""
        src, positions = self.src, self.positions
        if not positions:
            raise fault(src, f"too short ({self.size} bytes) to hold one FFF header; expected a FLIR SEQ")
        offset, size = positions[-1]
        end = offset + size
        if end > self.size:
            raise fault(src, f"truncated: frame {len(positions) - 1} needs {end} bytes but the file has "
                             f"{self.size}; expected complete FFF records")
        if end < self.size:
            raise fault(src, f"{self.size - end} bytes after frame {len(positions) - 1} (from offset {end}) "
                             "are not an FFF record; expected FFF records to the end of the file")

    def __len__(self) -> int:
        return len(self.positions)

    def frame(self, position: int) -> Fff:
        offset, size = self.positions[position]
        try:
            return Fff(bytes(self._map[offset : offset + size]))
        except _READ_ERRORS as exc:
            raise fault(self.src, f"frame {position} cannot be decoded ({type(exc).__name__}: {exc}); "
                                  "expected an FFF record") from None

    def image(self, position: int, fff: Fff) -> np.ndarray:
        try:
            return fff.get_image()
        except _READ_ERRORS as exc:
            raise fault(self.src, f"frame {position}'s image cannot be read ({type(exc).__name__}: {exc})") from None

    def header(self) -> dict[str, Any]:
        head = FffHeader.from_buffer(self._map, 0)
        return {"creator": head.creator.split(b"\x00")[0].decode("latin-1"), "format_version": head.format_version}

    def close(self) -> None:
        try:
            self._map.close()
        finally:
            self._fh.close()

    def __enter__(self) -> _SeqFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Scan:
    first: _FrameInfo
    header: dict[str, Any]
    times_ms: list[int] = field(default_factory=list)
    params_changed_at: list[int] = field(default_factory=list)
    low: int = 65535
    high: int = 0

    @property
    def frames(self) -> int:
        return len(self.times_ms)


def _scan(src: Path) -> _Scan:
    """Read and check every frame: size, calibration, time."""
    with _SeqFile(src) as seq:
        seq.check_extent()
        scan: _Scan | None = None
        for position in range(len(seq)):
            fff = seq.frame(position)
            info = _frame_info(src, position, fff)
            image = seq.image(position, fff)
            if scan is None:
                scan = _Scan(first=info, header=seq.header())
            else:
                first = scan.first
                if (info.width, info.height) != (first.width, first.height):
                    raise fault(src, f"frame {position} is {info.width}x{info.height}, frame 0 "
                                     f"{first.width}x{first.height}; expected one frame size")
                if info.planck != first.planck:
                    raise fault(src, f"frame {position}'s Planck constants {info.planck} differ from frame 0's "
                                     f"{first.planck}; a recording stream has one calibration")
                if info.params != first.params:
                    scan.params_changed_at.append(position)
                if info.time_ms <= scan.times_ms[-1]:
                    raise fault(src, f"frame {position}: time {info.time_ms} ms is not after the previous frame's "
                                     f"{scan.times_ms[-1]} ms; expected strictly increasing frame times")
            scan.times_ms.append(info.time_ms)
            scan.low, scan.high = min(scan.low, int(image.min())), max(scan.high, int(image.max()))
    assert scan is not None  # check_extent refused a file without frames
    return scan


def _fps(scan: _Scan, src: Path) -> tuple[float, str]:
    if scan.frames >= 2:
        interval_ms = float(np.median(np.diff(scan.times_ms)))
        return round(1000.0 / interval_ms, 3), "1 / median interval between frame times"
    rate = scan.first.camera.get("FrameRate")
    if rate:
        return float(rate), "the camera's frame rate (a single frame has no interval)"
    raise fault(src, "a single frame and no frame rate in its metadata; expected one of the two")


def _utc(ms: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")


def _meta(src: Path, scan: _Scan, fps: tuple[float, str], rotate_cw: int, planck: dict[str, float]) -> dict[str, Any]:
    first = scan.first
    intervals = np.diff(scan.times_ms) if scan.frames > 1 else np.array([0])
    r1, r2, b, f, o = first.planck
    meta: dict[str, Any] = {
        "format": "seq",
        "file": src.name,
        "size_bytes": src.stat().st_size,
        "sha256": sha256_file(src),
        "reader": f"flirpy {version('flirpy')} (flirpy.io.seq.Seq frame walker, flirpy.io.fff.Fff)",
        "fff": scan.header,
        "rotation": {
            "degrees_clockwise": rotate_cw,
            "numpy": f"np.rot90(frame, {quarter_turns(rotate_cw)})",
            "file_width": first.width,
            "file_height": first.height,
        },
        "encoding": {
            "name": ENCODING,
            "basis": "FLIR raw sensor counts, unconverted. thermal.planck is planck_from_flir(R1, R2, B, F, O) "
                     "(station convention: apparent temperature at emissivity 1); flir_params is the full FLIR "
                     "model (FlirParams field for field) for object temperatures with flir_raw_to_celsius.",
            "values": [scan.low, scan.high],
            "station_planck": planck,
        },
        "flir_planck": {"R1": r1, "R2": r2, "B": b, "F": f, "O": o},
        "flir_params": dataclasses.asdict(first.params),
        "camera": first.camera,
        "timing": {
            "t": "frame time stamp (camera-information record, UTC seconds + milliseconds) minus the first "
                 "frame's, in seconds",
            "fps": fps[1],
            "start_utc": _utc(scan.times_ms[0]),
            "end_utc": _utc(scan.times_ms[-1]),
            "camera_utc_offset_minutes": -first.tz_minutes,
            "interval_ms": [int(intervals.min()), float(np.median(intervals)), int(intervals.max())],
        },
    }
    if scan.params_changed_at:
        meta["flir_params_changed_at_frames"] = scan.params_changed_at
    return meta


def import_seq(src: str | Path, out: str | Path, overwrite: bool = False, rotate_cw: int = 0) -> ImportSummary:
    """Convert a FLIR SEQ file into a thermal-only ``raw-counts`` recording in ``out``.

    Raises :class:`~station.errors.RecordingError` (one line, naming the file) for a source that is
    not a complete SEQ whose frames all share one size and one Planck calibration, or an ``out`` that
    already holds files without ``overwrite``.
    """
    src, out = Path(src), Path(out)
    k = quarter_turns(rotate_cw)
    check_format(src, "seq")
    check_out(out, overwrite)
    scan = _scan(src)
    fps = _fps(scan, src)
    first = scan.first
    planck = planck_from_flir(*first.planck)
    upright = np.rot90(np.zeros((first.height, first.width), dtype=np.uint16), k).shape
    camera = first.camera["camera_model"] or "flir"
    thermal = ThermalStreamInfo(width=upright[1], height=upright[0], fps=fps[0], camera=camera, encoding=ENCODING,
                                planck=planck)
    extra = {"import": _meta(src, scan, fps, rotate_cw, planck)}
    t0 = scan.times_ms[0]
    existed = out.exists()
    try:
        recorded_at = format_recorded_at(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=t0))
        with RecordingWriter(out, source="import", thermal=thermal, visible=None, extra_meta=extra,
                             recorded_at=recorded_at, overwrite=overwrite) as writer, _SeqFile(src) as seq:
            if len(seq) != scan.frames:
                raise fault(src, "changed while it was being imported")
            for position in range(len(seq)):
                image = seq.image(position, seq.frame(position))
                t = (scan.times_ms[position] - t0) / 1000.0
                writer.write(Frame(np.rot90(image, k), t, position))
    except BaseException as exc:
        discard_partial(out, existed, (META_FILE, FRAMES_FILE, thermal.file))
        if isinstance(exc, OSError):  # a full disk, a read-only directory: name the path, not just the errno
            raise io_fault(exc, src, out) from None
        raise
    return ImportSummary.of(src, out, "seq", fps[0], thermal, rotate_cw, camera)
