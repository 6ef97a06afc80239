"""CPTV (Cacophony Project Thermal Video) into recording format v1.

What a CPTV file from a Te Kahu Ora fever kiosk holds, and what the import makes of it:

* **Frames**: 160x120 ``uint16`` from a FLIR Lepton 3.5 mounted on its side, so each frame is turned
  90° clockwise (``np.rot90(frame, -1)``) and people stand upright in a 120x160 frame. The values are
  otherwise copied bit for bit from what ``cptv``'s own ``CPTVReader`` decodes.
* **Encoding**: the Lepton 3.5's radiometric (TLinear) output, absolute temperature in 0.01 K. The
  14 kiosk files read a 24-31 °C room and their heated reference disc at 33.0-36.9 °C against the
  kiosks' set points of 35.8-37.0 °C: absolute centikelvin within the Lepton's own accuracy (±5 °C), not
  counts relative to the disc. So the stream is ``tlinear-centikelvin``, unconverted. The kiosk's
  ``temperature = calibration + (raw - raw_of_disc) * 0.01`` is a drift correction on top of that, which
  the station does with its own blackbody monitor (the disc as blackbody, its set point in a profile);
  the disc's set point is not in the CPTV file, so no such correction is applied here.
* **Times**: each frame's ``time_on`` (milliseconds since the camera was powered on), minus the first
  frame's, so the recording's clock starts at 0 and keeps the file's real gaps (a flat-field
  correction pauses the Lepton for ~2 s). ``fps`` is 1 / the median frame interval (8.77 Hz; the
  header's rounded ``9`` is kept in the meta).
* **Meta**: every header field the reader exposes, the flat-field corrections on the recording's clock,
  the value range, the file's sha256, and how the frames were turned, under ``import`` in meta.json.

The file is read twice: once to check all of it (a truncated gzip stream, a corrupt frame, times that
go backwards are each one-line :class:`~station.errors.RecordingError`), then to write. Nothing is
written for a file that fails the first read.
"""

from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from cptv import CPTVReader

from station.acquire.importers import (
    ImportSummary,
    check_format,
    check_out,
    discard_partial,
    fault,
    io_fault,
    quarter_turns,
)
from station.acquire.radiometry import KELVIN
from station.acquire.recording import FRAMES_FILE, META_FILE, RecordingWriter, ThermalStreamInfo, format_recorded_at
from station.digest import sha256_file
from station.types import Frame

ENCODING = "tlinear-centikelvin"
#: The kiosks mount the Lepton on its side: a clockwise quarter turn stands people upright.
DEFAULT_ROTATE_CW = 90
#: What a broken CPTV file can raise from inside ``cptv`` (it uses bare IOError, struct and numpy).
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, struct.error, zlib.error)
_MS = timedelta(milliseconds=1)

ENCODING_BASIS = (
    "Lepton 3.5 radiometric (TLinear) output, absolute kelvin x 100, copied unconverted. The room reads "
    "about 24-31 C and the kiosk's heated reference disc 33-37 C, its set point within the Lepton's own "
    "accuracy: not counts relative to the disc. The kiosk's own correction, temperature = calibration + "
    "(raw - raw_of_disc) * 0.01, needs the disc's set point, which the CPTV file does not hold; the "
    "station's blackbody monitor does the same given a profile with the disc as blackbody."
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode("utf-8", "replace")
    return str(value)


def _when(value: Any) -> Any:
    """A header time as ISO 8601 UTC; the reader's 0 for 'not set' stays 0."""
    return value.isoformat() if isinstance(value, datetime) else value


def _recorded_at(header: dict[str, Any]) -> str | None:
    """The header's recording time (UTC, CPTV's microseconds since the epoch), or None when unset."""
    when = header.get("timestamp_utc")
    if not isinstance(when, str):
        return None
    try:
        return format_recorded_at(datetime.fromisoformat(when))
    except ValueError:
        return None


def _number(value: Any) -> Any:
    """A float32 header field as a JSON number (NaN and infinities, which JSON lacks, as None)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _header(reader: CPTVReader) -> dict[str, Any]:
    """Every header field ``CPTVReader`` exposes, as JSON."""
    return {
        "cptv_version": reader.version,
        "timestamp_utc": _when(reader.timestamp),
        "device_name": _text(reader.device_name),
        "device_id": reader.device_id,
        "camera_serial": reader.camera_serial,
        "brand": _text(reader.brand),
        "model": _text(reader.model),
        "firmware": _text(reader.firmware),
        "fps": reader.fps,
        "x_resolution": reader.x_resolution,
        "y_resolution": reader.y_resolution,
        "compression": reader.compression,
        "preview_secs": reader.preview_secs,
        "motion_config": _text(reader.motion_config),
        "latitude": _number(reader.latitude),
        "longitude": _number(reader.longitude),
        "altitude": _number(reader.altitude),
        "accuracy": _number(reader.accuracy),
        "location_timestamp_utc": _when(reader.loc_timestamp),
        "min_value": reader.min_value,
        "max_value": reader.max_value,
        "num_frames": reader.num_frames,
        "background_frames": reader.background_frames,
    }


@contextmanager
def _reader_warnings() -> Iterator[list[str]]:
    """Collect what ``cptv`` logs (unknown fields) for the meta instead of letting it reach the terminal."""
    logger = logging.getLogger("cptv")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message not in seen:
                seen.append(message)

    handler = Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _check_gzip(src: Path) -> None:
    """Decompress the whole file once: a truncated or corrupted gzip stream is refused here.

    ``CPTVReader`` would otherwise end quietly at a truncation that falls between two frames (it
    takes the gzip module's "compressed file ended" for the end of the recording).
    """
    try:
        with gzip.open(src, "rb") as gz:
            while gz.read(1 << 20):
                pass
    except EOFError:
        raise fault(src, "truncated: the gzip stream ends before its end marker (expected a complete CPTV "
                         "file; was it cut off while copying?)") from None
    except (OSError, zlib.error) as exc:
        raise fault(src, f"corrupt gzip stream ({exc}); expected a complete CPTV file") from None


def _open_reader(src: Path, fh: Any) -> CPTVReader:
    try:
        return CPTVReader(fh)
    except _READ_ERRORS as exc:
        raise fault(src, f"not a readable CPTV header ({type(exc).__name__}: {exc})") from None


def _frames(src: Path, reader: CPTVReader) -> Iterator[tuple[int, Any]]:
    """(position in the file, cptv Frame) for every frame, a decoding fault naming the frame."""
    frames = iter(reader)
    position = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except _READ_ERRORS as exc:
            raise fault(src, f"frame {position} cannot be decoded ({type(exc).__name__}: {exc}); "
                             "expected a complete CPTV file") from None
        yield position, frame
        position += 1


@dataclass
class _Scan:
    """What the first read learns: enough to describe the stream before a frame is written."""

    header: dict[str, Any]
    raw_shape: tuple[int, int]
    times_ms: list[int] = field(default_factory=list)
    ffc_ms: list[int] = field(default_factory=list)
    background: int = 0
    low: int = 65535
    high: int = 0
    camera_temps_c: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.times_ms)


def _time_ms(src: Path, position: int, frame: Any, header_fps: float, version: int) -> int:
    """A frame's time in ms: its ``time_on``, or for CPTV version 1 (which has none) index / header fps."""
    if frame.time_on is not None:
        return frame.time_on // _MS
    if not header_fps:
        raise fault(src, f"CPTV version {version} frames carry no times and the header no frame rate; "
                         "expected one of the two")
    return round(position * 1000.0 / header_fps)


def _scan(src: Path) -> _Scan:
    """Read and check the whole file: header, every frame's size and time."""
    with _reader_warnings() as warnings, open(src, "rb") as fh:
        reader = _open_reader(src, fh)
        header = _header(reader)
        shape = (int(reader.y_resolution), int(reader.x_resolution))
        if shape[0] <= 0 or shape[1] <= 0:
            raise fault(src, f"header gives a {shape[1]}x{shape[0]} frame; expected a positive size")
        scan = _Scan(header=header, raw_shape=shape)
        for position, frame in _frames(src, reader):
            if frame.background_frame:
                scan.background += 1
                continue
            pix = frame.pix
            if pix.shape != shape:
                raise fault(src, f"frame {position} is {pix.shape[1]}x{pix.shape[0]}, "
                                 f"the header says {shape[1]}x{shape[0]}")
            t = _time_ms(src, position, frame, reader.fps, reader.version)
            if scan.times_ms and t <= scan.times_ms[-1]:
                raise fault(src, f"frame {position}: time_on {t} ms is not after the previous frame's "
                                 f"{scan.times_ms[-1]} ms; expected strictly increasing frame times")
            scan.times_ms.append(t)
            if frame.last_ffc_time is not None:
                ffc = frame.last_ffc_time // _MS
                if ffc and ffc not in scan.ffc_ms:
                    scan.ffc_ms.append(ffc)
            if frame.temp_c and math.isfinite(frame.temp_c):
                scan.camera_temps_c.append(float(frame.temp_c))
            scan.low, scan.high = min(scan.low, int(pix.min())), max(scan.high, int(pix.max()))
    scan.warnings = list(warnings)
    if scan.frames == 0:
        raise fault(src, "holds no frames; expected at least one thermal frame")
    listed = header["num_frames"]
    if listed and listed not in (scan.frames, scan.frames + scan.background):
        raise fault(src, f"its header says {listed} frames but it holds {scan.frames + scan.background}")
    return scan


def _fps(scan: _Scan, src: Path) -> tuple[float, str]:
    """The stream's nominal rate and where it came from."""
    if scan.frames >= 2:
        interval_ms = float(np.median(np.diff(scan.times_ms)))
        return round(1000.0 / interval_ms, 3), "1 / median interval between frame times"
    if scan.header["fps"]:
        return float(scan.header["fps"]), "header fps (a single frame has no interval)"
    raise fault(src, "a single frame and no frame rate in the header; expected one of the two")


def _meta(src: Path, scan: _Scan, fps: tuple[float, str], rotate_cw: int) -> dict[str, Any]:
    t0 = scan.times_ms[0]
    intervals = np.diff(scan.times_ms) if scan.frames > 1 else np.array([0])
    meta: dict[str, Any] = {
        "format": "cptv",
        "file": src.name,
        "size_bytes": src.stat().st_size,
        "sha256": sha256_file(src),
        "reader": f"cptv {version('cptv')} (CPTVReader)",
        "rotation": {
            "degrees_clockwise": rotate_cw,
            "numpy": f"np.rot90(frame, {quarter_turns(rotate_cw)})",
            "file_width": scan.raw_shape[1],
            "file_height": scan.raw_shape[0],
        },
        "encoding": {
            "name": ENCODING,
            "basis": ENCODING_BASIS,
            "values": [scan.low, scan.high],
            "celsius": [round(scan.low / 100.0 - KELVIN, 2), round(scan.high / 100.0 - KELVIN, 2)],
            "converted": False,
        },
        "calibration": "none in the file (CPTV has no field for the kiosk's reference-disc set point)",
        "timing": {
            "t": "frame time_on (ms since the camera was powered on) minus the first frame's, in seconds",
            "fps": fps[1],
            "first_time_on_ms": t0,
            "last_time_on_ms": scan.times_ms[-1],
            "interval_ms": [int(intervals.min()), float(np.median(intervals)), int(intervals.max())],
        },
        "ffc_t": [round((ms - t0) / 1000.0, 3) for ms in scan.ffc_ms],
        "background_frames_skipped": scan.background,
        "header": scan.header,
    }
    if scan.camera_temps_c:
        meta["camera_temp_c"] = [min(scan.camera_temps_c), max(scan.camera_temps_c)]
    if scan.warnings:
        meta["reader_warnings"] = scan.warnings
    return meta


def import_cptv(
    src: str | Path, out: str | Path, overwrite: bool = False, rotate_cw: int = DEFAULT_ROTATE_CW
) -> ImportSummary:
    """Convert a CPTV file into a thermal-only recording in ``out`` (see the module docstring).

    Raises :class:`~station.errors.RecordingError` (one line, naming the file) for a source that is
    not a complete CPTV file or an ``out`` that already holds files without ``overwrite``.
    """
    src, out = Path(src), Path(out)
    k = quarter_turns(rotate_cw)
    check_format(src, "cptv")
    check_out(out, overwrite)
    _check_gzip(src)
    scan = _scan(src)
    fps = _fps(scan, src)
    upright = np.rot90(np.zeros(scan.raw_shape, dtype=np.uint16), k).shape
    header = scan.header
    camera = header["model"] or "cptv-camera"
    thermal = ThermalStreamInfo(width=upright[1], height=upright[0], fps=fps[0], camera=camera, encoding=ENCODING)
    extra = {"import": _meta(src, scan, fps, rotate_cw)}
    t0 = scan.times_ms[0]
    existed = out.exists()
    written = 0
    try:
        with RecordingWriter(out, source="import", thermal=thermal, visible=None, extra_meta=extra,
                             recorded_at=_recorded_at(header), overwrite=overwrite) as writer, open(src, "rb") as fh:
            for _position, frame in _frames(src, _open_reader(src, fh)):
                if frame.background_frame:
                    continue
                if written >= scan.frames:
                    raise fault(src, "changed while it was being imported")
                t = (scan.times_ms[written] - t0) / 1000.0
                writer.write(Frame(np.rot90(frame.pix, k), t, written))
                written += 1
        if written != scan.frames:
            raise fault(src, "changed while it was being imported")
    except BaseException as exc:
        discard_partial(out, existed, (META_FILE, FRAMES_FILE, thermal.file))
        if isinstance(exc, OSError):  # a full disk, a read-only directory: name the path, not just the errno
            raise io_fault(exc, src, out) from None
        raise
    return ImportSummary.of(src, out, "cptv", fps[0], thermal, rotate_cw, camera)
