"""station import: real CPTV kiosk files and a real FLIR SEQ, read back equal to their own readers' output.

The data lives in ../shared/data beside the repository (CI has it); tests that need it skip, saying so,
only when it is absent. Every bad input is one line naming the file, and leaves nothing behind.
"""

from __future__ import annotations

import csv
import errno
import gzip
import os
import shutil
import struct
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.acquire.importers import detect_format, import_file
from station.acquire.importers.cptv import import_cptv
from station.acquire.importers.seq import import_seq
from station.acquire.radiometry import FlirParams, flir_raw_to_celsius, planck_from_flir, tlinear_to_celsius
from station.acquire.recording import Recording
from station.cli.imports import import_command
from station.errors import RecordingError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KIOSK = DATA / "kiosk-cptv"
RADIOMETRY = DATA / "radiometry"
SEQ_FILE = RADIOMETRY / "SampleSEQ.seq"
JPEG_FILE = RADIOMETRY / "IR_2412.jpg"
SMALL_CPTV = KIOSK / "20210323-215851.cptv"  # 87 frames, the smallest-but-one
NO_DATA = f"needs the real recordings in ../shared/data beside the repository ({DATA})"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=NO_DATA)
MS = timedelta(milliseconds=1)


def _kiosk_rows() -> list:
    labels = KIOSK / "labels.csv"
    if not labels.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_DATA), id="no-data")]
    with open(labels, newline="", encoding="utf-8") as fh:
        return [pytest.param(row, id=row["file"][:22]) for row in csv.DictReader(fh)]


def _cptv_frames(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """The frames and times (ms) exactly as the cptv package decodes them."""
    from cptv import CPTVReader

    with open(path, "rb") as fh:
        frames = list(CPTVReader(fh))
    return [f.pix for f in frames], [f.time_on // MS for f in frames]


def _import(args: list[str]):
    return CliRunner().invoke(import_command, [str(a) for a in args])


# --------------------------------------------------------------------------------------------- CPTV
@pytest.mark.parametrize("row", _kiosk_rows())
def test_every_kiosk_file_imports_upright_and_equal_to_the_reader(row, tmp_path):
    src, out = KIOSK / row["file"], tmp_path / "rec"
    summary = import_cptv(src, out)
    rec = Recording.open(out)
    frames = int(row["frames"])
    assert summary.frames == rec.count("thermal") == frames
    assert rec.source == "import" and rec.visible is None and rec.count("visible") == 0
    th = rec.thermal
    assert (th.width, th.height, th.encoding, th.planck) == (120, 160, "tlinear-centikelvin", None)

    raw, times_ms = _cptv_frames(src)
    assert raw[0].shape == (120, 160), "the file stores people lying on their side"
    images = np.stack([f.image for f in rec.frames("thermal")])
    assert images.shape == (frames, 160, 120)
    assert np.array_equal(images, np.stack([np.rot90(pix, -1) for pix in raw]))
    expected_t = (np.array(times_ms) - times_ms[0]) / 1000.0
    assert np.array_equal(rec.times("thermal"), expected_t) and rec.times("thermal")[0] == 0.0
    assert th.fps == pytest.approx(1000 / 114, abs=0.01)

    # Absolute centikelvin: a room in the twenties and nothing colder than 15 °C or hotter than 45 °C.
    celsius = tlinear_to_celsius(images)
    assert 20.0 < float(np.median(celsius)) < 32.0
    assert 15.0 < float(celsius.min()) and float(celsius.max()) < 45.0

    meta = rec.extra["import"]
    assert meta["format"] == "cptv" and meta["file"] == row["file"]
    assert meta["header"]["device_name"] == row["device"]
    assert meta["header"]["model"] == "lepton3.5" and meta["header"]["camera_serial"] > 0
    assert meta["header"]["timestamp_utc"].startswith("2021-0")
    assert meta["rotation"]["numpy"] == "np.rot90(frame, -1)"
    assert meta["encoding"]["values"] == [int(images.min()), int(images.max())]
    assert meta["timing"]["first_time_on_ms"] == times_ms[0]


@needs_data
def test_a_flat_field_correction_gap_is_kept_on_the_recording_clock(tmp_path):
    src = KIOSK / "fs-1220-815794-2021-03-30T20:03:15.592Z.cptv"
    import_cptv(src, tmp_path / "rec")
    rec = Recording.open(tmp_path / "rec")
    gaps = np.diff(rec.times("thermal"))
    assert gaps.max() == pytest.approx(2.053) and np.median(gaps) == pytest.approx(0.114)
    ffc = rec.extra["import"]["ffc_t"]
    assert ffc[0] < 0 and 0 < ffc[1] < rec.duration  # one before the recording, one in its gap


@needs_data
def test_the_command_prints_one_line_and_decides_by_content_not_name(tmp_path):
    renamed = tmp_path / "kiosk.dat"
    shutil.copyfile(SMALL_CPTV, renamed)
    assert detect_format(renamed) == "cptv" and detect_format(SEQ_FILE) == "seq"
    result = _import([renamed, tmp_path / "rec"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1
    for part in ("87 thermal frames", "9.9 s at 8.77 fps", "120x160", "tlinear-centikelvin",
                 "rotation 90 deg clockwise", "camera lepton3.5"):
        assert part in lines[0]


@needs_data
def test_out_is_refused_unless_overwrite_and_a_bad_source_never_touches_it(tmp_path):
    out = tmp_path / "rec"
    assert _import([SMALL_CPTV, out]).exit_code == 0
    line = one_line_error(_import([SMALL_CPTV, out]))
    assert line == f"Error: {out}: already holds files; choose another directory or pass --overwrite"

    bad = tmp_path / "cut.cptv"
    bad.write_bytes(SMALL_CPTV.read_bytes()[:300_000])
    assert "truncated" in one_line_error(_import([bad, out, "--overwrite"]))
    assert Recording.open(out).count("thermal") == 87, "the old recording is intact"

    other = KIOSK / "fs-1220-816619-2021-03-31T21:19:04.180Z.cptv"
    assert _import([other, out, "--overwrite"]).exit_code == 0
    assert Recording.open(out).count("thermal") == 50

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert one_line_error(_import([SMALL_CPTV, a_file])) == (
        f"Error: {a_file}: exists and is not a directory (a recording is a directory)")


# --------------------------------------------------------------------------------------------- SEQ
@needs_data
def test_seq_round_trip_equals_flirpys_reader(tmp_path):
    from flirpy.io.seq import Seq

    summary = import_seq(SEQ_FILE, tmp_path / "rec")
    rec = Recording.open(tmp_path / "rec")
    seq = Seq(str(SEQ_FILE))
    assert summary.frames == rec.count("thermal") == len(seq) == 2
    th = rec.thermal
    assert (th.width, th.height, th.encoding, th.camera) == (640, 480, "raw-counts", "FLIR SC660")
    meta = seq[0].meta
    assert th.planck == planck_from_flir(*(meta[f"Planck {k}"] for k in ("R1", "R2", "B", "F", "O")))
    for ours, theirs in zip(rec.frames("thermal"), seq, strict=True):
        assert np.array_equal(ours.image, theirs.get_image())
    assert rec.times("thermal").tolist() == [0.0, 3.967]  # the camera stamps: 19:52:08.699, 19:52:12.666 UTC

    kept = rec.extra["import"]
    params = FlirParams(**kept["flir_params"])
    assert params == FlirParams.from_flirpy(meta)
    assert (params.emissivity, params.object_distance_m, params.relative_humidity) == pytest.approx((0.95, 1.0, 0.5))
    assert kept["camera"]["camera_serial"] == "404003980" and kept["camera"]["FrameRate"] == 30
    assert kept["timing"]["start_utc"] == "2012-06-13T19:52:08.699+00:00"
    # What was kept is enough for the full FLIR model: Thermimage's temperatures, from our recording.
    reference = np.load(RADIOMETRY / "SampleSEQ_celsius_reference.npy")
    for frame, ref in zip(rec.frames("thermal"), reference, strict=True):
        assert np.abs(flir_raw_to_celsius(frame.image, params) - ref).max() < 0.01


@needs_data
def test_seq_can_be_turned(tmp_path):
    from flirpy.io.seq import Seq

    result = _import([SEQ_FILE, tmp_path / "rec", "--rotate", "90"])
    assert result.exit_code == 0, result.output
    assert "480x640" in result.output and "rotation 90 deg clockwise" in result.output
    rec = Recording.open(tmp_path / "rec")
    first = next(rec.frames("thermal")).image
    assert np.array_equal(first, np.rot90(Seq(str(SEQ_FILE))[0].get_image(), -1))


# --------------------------------------------------------------------------------------------- bad inputs
def _seq_bytes() -> bytearray:
    return bytearray(SEQ_FILE.read_bytes())


def _frame1_offset(blob: bytes) -> int:
    from flirpy.io.seq import Seq

    return Seq._get_frame_positions(bytes(blob))[1][0]


def _with_raw_subtype(subtype: int) -> bytes:
    blob = _seq_bytes()
    struct.pack_into("<H", blob, 0x40 + 32 + 2, subtype)  # frame 0: record 1 (raw data), its subtype
    return bytes(blob)


def _with_frame1_r1(value: float) -> bytes:
    blob = _seq_bytes()
    struct.pack_into("<f", blob, _frame1_offset(blob) + 192 + 0x58, value)  # camera record at 192, R1 at 0x58
    return bytes(blob)


def _swapped_frames() -> bytes:
    blob = _seq_bytes()
    cut = _frame1_offset(blob)
    return bytes(blob[cut:] + blob[:cut])


def _inner_cut() -> bytes:
    inner = gzip.decompress(SMALL_CPTV.read_bytes())
    return gzip.compress(inner[:-10], compresslevel=1)


def _flipped(offset: int) -> bytes:
    blob = bytearray(SMALL_CPTV.read_bytes())
    blob[offset] ^= 0xFF
    return bytes(blob)


# (name, make the file's bytes, needs ../shared/data, extra arguments, the error after "Error: {path}: ")
BAD_INPUTS = [
    ("empty.cptv", lambda: b"", False, [],
     "is an empty file (0 bytes), though its name says .cptv; expected a CPTV recording (gzip-compressed, "
     "starting 'CPTV' inside)"),
    ("empty.seq", lambda: b"", False, [], "is an empty file (0 bytes), though its name says .seq; "
     "expected a FLIR SEQ sequence (FFF records, starting 'FFF\\0')"),
    ("notes.txt", lambda: b"hello\n", False, [],
     "is of unknown format (it starts 68 65 6c 6c 6f 0a); expected a CPTV recording (gzip-compressed, "
     "starting 'CPTV' inside) or a FLIR SEQ sequence (FFF records, starting 'FFF\\0')"),
    ("clip.avi", lambda: b"RIFF\x00\x00\x00\x00AVI LIST", False, [], "is of unknown format (it starts "
     "52 49 46 46 00 00 00 00); expected a CPTV recording"),
    ("text.cptv", lambda: gzip.compress(b"hello"), False, [],
     "is a gzip file that does not hold CPTV (it starts b'hell'), though its name says .cptv; "
     "expected a CPTV recording"),
    ("cut.cptv", lambda: SMALL_CPTV.read_bytes()[:400_000], True, [],
     "truncated: the gzip stream ends before its end marker (expected a complete CPTV file; was it cut off "
     "while copying?)"),
    ("flipped.cptv", lambda: _flipped(5000), True, [], "corrupt gzip stream (CRC check failed"),
    ("inner-cut.cptv", _inner_cut, True, [],
     "frame 86 cannot be decoded (IndexError: "),
    ("header-only.cptv", lambda: gzip.compress(gzip.decompress(SMALL_CPTV.read_bytes())[:20]), True, [],
     "not a readable CPTV header"),
    ("IR_2412.seq", lambda: JPEG_FILE.read_bytes(), True, [],
     "is a FLIR radiometric JPEG (one still image, not a sequence), though its name says .seq; "
     "expected a FLIR SEQ sequence (FFF records, starting 'FFF\\0')"),
    ("cut.seq", lambda: bytes(_seq_bytes()[:700_000]), True, [],
     "truncated: frame 1 needs 1234232 bytes but the file has 700000; expected complete FFF records"),
    ("tail.seq", lambda: bytes(_seq_bytes() + b"garbage\n"), True, [],
     "8 bytes after frame 1 (from offset 1234232) are not an FFF record; expected FFF records to the end "
     "of the file"),
    ("tiny.seq", lambda: bytes(_seq_bytes()[:30]), True, [],
     "too short (30 bytes) to hold one FFF header; expected a FLIR SEQ"),
    ("png.seq", lambda: _with_raw_subtype(3), True, [],
     "frame 0's raw data is PNG-compressed; flirpy reads only little-endian raw counts"),
    ("recalibrated.seq", lambda: _with_frame1_r1(20000.0), True, [],
     "frame 1's Planck constants (20000.0, "),
    ("backwards.seq", _swapped_frames, True, [],
     "frame 1: time 1339617128699 ms is not after the previous frame's 1339617132666 ms; expected strictly "
     "increasing frame times"),
    ("kiosk.cptv", lambda: SMALL_CPTV.read_bytes(), True, ["--format", "seq"],
     "is a CPTV recording; expected a FLIR SEQ sequence (FFF records, starting 'FFF\\0')"),
    ("sample.seq", lambda: SEQ_FILE.read_bytes(), True, ["--format", "cptv"],
     "is a FLIR SEQ sequence; expected a CPTV recording (gzip-compressed, starting 'CPTV' inside)"),
]


@pytest.mark.parametrize("name,make,needs,args,message", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_source_is_one_line_naming_it_and_writes_nothing(tmp_path, name, make, needs, args, message):
    if needs and not DATA.is_dir():
        pytest.skip(NO_DATA)
    src, out = tmp_path / name, tmp_path / "out"
    src.write_bytes(make())
    line = one_line_error(_import([src, out, *args]))
    assert line.startswith(f"Error: {src}: {message}"), line
    assert not out.exists()
    with pytest.raises(RecordingError):
        import_file(src, out, format=args[1] if args else "auto")  # type: ignore[arg-type]


def test_a_missing_source_or_a_directory_is_one_line(tmp_path):
    missing = tmp_path / "nothing.cptv"
    assert one_line_error(_import([missing, tmp_path / "out"])) == f"Error: {missing}: no such file"
    assert one_line_error(_import([tmp_path, tmp_path / "out"])).startswith(
        f"Error: {tmp_path}: is a directory; expected a CPTV recording")
    assert not (tmp_path / "out").exists()


class _FullDisk:
    """A file on a disk that fills up after ``room`` bytes: ``write`` then fails as ``write(2)`` does.

    The OSError a full disk raises carries ``ENOSPC`` and no file name (the file was opened long before),
    which is why the message used to say only "No space left on device".
    """

    def __init__(self, handle, room: int) -> None:
        self._handle = handle
        self._room = room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)


@needs_data
@pytest.mark.parametrize("src", [SMALL_CPTV, SEQ_FILE], ids=["cptv", "seq"])
def test_a_full_disk_names_the_recording_and_leaves_nothing_behind(tmp_path, monkeypatch, src):
    import builtins

    import station.acquire.recording as recording

    def opener(file, mode="r", *args, **kwargs):
        handle = builtins.open(file, mode, *args, **kwargs)
        return _FullDisk(handle, 100_000) if "w" in mode else handle

    # the writer's own files go through this open; meta.json, written atomically, still fits
    monkeypatch.setattr(recording, "open", opener, raising=False)
    out = tmp_path / "out"
    line = one_line_error(_import([src, out]))
    assert line == f"Error: {out}: cannot write the imported recording (No space left on device); nothing was kept"
    assert not out.exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    line = one_line_error(_import([src, tmp_path / "kept", "--overwrite"]))
    assert line.startswith(f"Error: {tmp_path / 'kept'}: cannot write the imported recording")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]
