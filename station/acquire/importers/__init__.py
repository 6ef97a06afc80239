"""Recordings from other stations, converted into recording format v1 (thermal only).

Two sources are understood, each by its own project's reader so that what the station replays is what
that project itself decodes:

* **CPTV** (:mod:`station.acquire.importers.cptv`): The Cacophony Project's thermal video, as the Te Kahu Ora
  fever kiosks (FLIR Lepton 3.5) record it; read with the ``cptv`` package.
* **FLIR SEQ** (:mod:`station.acquire.importers.seq`): a concatenation of FFF records, one per frame, with raw
  counts and the camera's calibration; read with flirpy's ``Seq``/``Fff``.

The format is decided by the file's first bytes, never by its name: a JPEG renamed ``.seq`` is
reported as the JPEG it is. Every fault in a source file is a one-line
:class:`~station.errors.RecordingError` that names the file and says what was expected, and the source
is read completely before anything is written, so a bad file never leaves half a recording behind (or
replaces a good one with ``overwrite``).
"""

from __future__ import annotations

import gzip
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from station.acquire.recording import Recording, ThermalStreamInfo
from station.errors import RecordingError

ImportFormat = Literal["cptv", "seq"]
FORMATS: tuple[str, ...] = ("cptv", "seq")

#: What each format is, for messages: what was expected when a file is not it.
EXPECTED: dict[str, str] = {
    "cptv": "a CPTV recording (gzip-compressed, starting 'CPTV' inside)",
    "seq": "a FLIR SEQ sequence (FFF records, starting 'FFF\\0')",
}
EXPECTED_ANY = f"{EXPECTED['cptv']} or {EXPECTED['seq']}"
#: File-name suffixes that claim a format; only used to word a message, never to decide.
SUFFIXES: dict[str, str] = {".cptv": "cptv", ".seq": "seq", ".fff": "seq"}

_GZIP_MAGIC = b"\x1f\x8b"
_CPTV_MAGIC = b"CPTV"
_FFF_MAGIC = b"FFF\x00"
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote: enough for the one-line report and for a test to check."""

    source: Path
    out: Path
    format: str
    frames: int
    duration_s: float
    fps: float
    width: int
    height: int
    encoding: str
    rotation: str
    camera: str

    @classmethod
    def of(cls, src: Path, out: Path, format: str, fps: float, thermal: ThermalStreamInfo, rotate_cw: int,
           camera: str) -> ImportSummary:
        """The summary of a finished import, its frame count and duration read back from what was written."""
        rec = Recording.open(out)
        return cls(source=src, out=out, format=format, frames=rec.count("thermal"), duration_s=rec.duration,
                   fps=fps, width=thermal.width, height=thermal.height, encoding=thermal.encoding,
                   rotation=rotation_name(rotate_cw), camera=camera)

    def line(self) -> str:
        """The one line ``station import`` prints."""
        return (
            f"{self.out}: imported {self.format} {self.source.name}: {self.frames} thermal frames, "
            f"{self.duration_s:.1f} s at {self.fps:.2f} fps, {self.width}x{self.height}, {self.encoding}, "
            f"rotation {self.rotation}, camera {self.camera}"
        )


def fault(path: Path, message: str) -> RecordingError:
    """A RecordingError naming ``path``, kept to one line whatever the message quotes."""
    return RecordingError(f"{path}: " + " ".join(str(message).split()))


def _sniff(path: Path) -> tuple[str, str]:
    """(kind, description) of a file from its first bytes: ``cptv``, ``seq`` or what else it looks like."""
    if not path.exists():
        raise fault(path, "no such file")
    if path.is_dir():
        raise fault(path, f"is a directory; expected {EXPECTED_ANY}")
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head:
        return "empty", "an empty file (0 bytes)"
    if head.startswith(_FFF_MAGIC):
        return "seq", "a FLIR SEQ sequence"
    if head.startswith(_GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as gz:
                inner = gz.read(len(_CPTV_MAGIC))
        except (OSError, EOFError, zlib.error) as exc:
            return "gzip", f"a gzip file whose start cannot be decompressed ({exc})"
        if inner == _CPTV_MAGIC:
            return "cptv", "a CPTV recording"
        return "gzip", f"a gzip file that does not hold CPTV (it starts {inner!r})"
    if head.startswith(_JPEG_MAGIC):
        if b"FLIR\x00" in head:
            return "jpeg", "a FLIR radiometric JPEG (one still image, not a sequence)"
        return "jpeg", "a JPEG image"
    return "unknown", f"of unknown format (it starts {head[:8].hex(' ')})"


def _claim(path: Path, kind: str) -> tuple[str, str]:
    """(note, expected) for a message: what the file's name claims when its content says otherwise."""
    claimed = SUFFIXES.get(path.suffix.lower())
    if claimed is None or claimed == kind:
        return "", EXPECTED_ANY
    return f", though its name says {path.suffix}", EXPECTED[claimed]


def detect_format(path: str | Path) -> ImportFormat:
    """``"cptv"`` or ``"seq"`` from the file's first bytes; anything else is a one-line RecordingError."""
    path = Path(path)
    kind, what = _sniff(path)
    if kind not in FORMATS:
        note, expected = _claim(path, kind)
        raise fault(path, f"is {what}{note}; expected {expected}")
    return kind  # type: ignore[return-value]


def check_format(path: str | Path, expected: ImportFormat) -> None:
    """Refuse a file that is not ``expected``, saying what it is instead."""
    path = Path(path)
    kind, what = _sniff(path)
    if kind != expected:
        raise fault(path, f"is {what}{_claim(path, kind)[0]}; expected {EXPECTED[expected]}")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that exists (a file, or a directory that holds anything) unless ``overwrite``.

    Checked before the source is read, so a typo in OUT costs nothing; an empty directory is fine
    (there is nothing in it to lose). With ``overwrite`` the writer removes only the format's files.
    """
    if out.exists() and not out.is_dir():
        raise fault(out, "exists and is not a directory (a recording is a directory)")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise fault(out, "already holds files; choose another directory or pass --overwrite")


def io_fault(exc: OSError, src: Path, out: Path) -> RecordingError:
    """A one-line RecordingError for an operating-system error while importing, naming the path at fault.

    A write that fails on a full disk (``ENOSPC``) or a quota raises an ``OSError`` with no file name (the
    file was opened long before; ``write(2)`` only knows its descriptor), so printed as it is, it says
    "No space left on device" and nothing about where. Anything without a file name happened while
    writing the recording, so the recording's directory is named; an error naming the source is a read.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None and Path(exc.filename) == src:
        return fault(src, f"cannot be read ({reason})")
    where = Path(exc.filename) if exc.filename is not None else out
    return fault(where, f"cannot write the imported recording ({reason}); nothing was kept")


def discard_partial(out: Path, existed: bool, files: tuple[str, ...]) -> None:
    """After a failed write: remove what this import wrote, and ``out`` itself if it made it."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in files:
        target = out / name
        if target.is_file():
            target.unlink(missing_ok=True)


ROTATIONS: tuple[int, ...] = (0, 90, 180, 270)


def quarter_turns(rotate_cw: int) -> int:
    """``np.rot90``'s ``k`` for a clockwise turn of ``rotate_cw`` degrees (0, 90, 180 or 270)."""
    if isinstance(rotate_cw, bool) or rotate_cw not in ROTATIONS:
        raise ValueError(f"rotate_cw: expected one of 0, 90, 180, 270 degrees, got {rotate_cw!r}")
    return -(rotate_cw // 90)


def rotation_name(rotate_cw: int) -> str:
    return "none" if rotate_cw == 0 else f"{rotate_cw} deg clockwise"


def import_file(
    src: str | Path,
    out: str | Path,
    *,
    format: Literal["auto", "cptv", "seq"] = "auto",
    overwrite: bool = False,
    rotate_cw: int | None = None,
) -> ImportSummary:
    """Import ``src`` into the recording directory ``out``; ``format="auto"`` decides by content.

    ``rotate_cw`` turns every frame clockwise by that many degrees (0, 90, 180 or 270); ``None`` means
    each format's default (CPTV 90: the kiosks' Leptons are mounted on their side; SEQ 0).
    """
    src = Path(src)
    if format == "auto":
        kind = detect_format(src)
    elif format in FORMATS:
        kind = format
    else:
        raise ValueError(f"format: expected auto, cptv or seq, got {format!r}")
    kwargs = {} if rotate_cw is None else {"rotate_cw": rotate_cw}
    if kind == "cptv":
        from station.acquire.importers.cptv import import_cptv

        return import_cptv(src, out, overwrite=overwrite, **kwargs)
    from station.acquire.importers.seq import import_seq

    return import_seq(src, out, overwrite=overwrite, **kwargs)


__all__ = [
    "EXPECTED",
    "FORMATS",
    "ImportFormat",
    "ImportSummary",
    "check_format",
    "detect_format",
    "import_file",
]
