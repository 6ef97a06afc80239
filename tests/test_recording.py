"""Recording format v1: the writer and reader round-trip, and every fault the reader must name."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib import format as npy_format

import station.acquire.recording as recording_module
from station.acquire.recording import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Recording,
    RecordingWriter,
    ThermalStreamInfo,
    VisibleStreamInfo,
)
from station.errors import RecordingError
from station.types import Frame

THERMAL_FPS = 8.7
VISIBLE_FPS = 15.0
N_THERMAL = 9
N_VISIBLE = 15
CALIBRATION = 'schema_version = 1\nstation_id = "test"\n'
TRUTH = [
    {
        "person": 0,
        "canthus_c": 36.4,
        "body_c": 37.0,
        "first_visible_t": 0.1,
        "last_visible_t": 0.8,
        "boxes": [[0.1, 1, 2, 30, 40]],
    },
    {
        "person": 1,
        "canthus_c": 38.2,
        "body_c": 38.9,
        "first_visible_t": 0.5,
        "last_visible_t": 0.9,
        "boxes": [],
    },
]


def thermal_info(**changes) -> ThermalStreamInfo:
    values = dict(width=160, height=120, fps=THERMAL_FPS, camera="lepton3.5", encoding="tlinear-centikelvin")
    values.update(changes)
    return ThermalStreamInfo(**values)


def visible_info(suffix: str = ".mkv", **changes) -> VisibleStreamInfo:
    values = dict(width=64, height=48, fps=VISIBLE_FPS, camera="webcam", file="visible" + suffix)
    values.update(changes)
    return VisibleStreamInfo(**values)


def thermal_image(k: int, rng: np.random.Generator) -> np.ndarray:
    """Full-range noise: any lossy step or byte-order slip would change it."""
    return rng.integers(0, 65536, size=(120, 160), dtype=np.uint16)


def visible_image(k: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Smooth gradients with a moving square: natural enough for mp4v to reproduce closely."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 4 % 256, y * 5 % 256, (x + y + 8 * k) % 256], axis=-1).astype(np.uint8)
    image[10:26, 4 + 2 * k : 20 + 2 * k] = (30, 200, 90)
    return image


@dataclass
class Written:
    path: Path
    thermal: list[Frame]
    visible: list[Frame]


def write_recording(
    path: Path,
    suffix: str | None = ".mkv",
    *,
    thermal: ThermalStreamInfo | None = None,
    n_thermal: int = N_THERMAL,
    n_visible: int = N_VISIBLE,
) -> Written:
    """A small two-camera recording; frames are written interleaved in time order, as a capture would."""
    rng = np.random.default_rng(7)
    thermal = thermal or thermal_info()
    visible = None if suffix is None else visible_info(suffix)
    thermal_frames = [Frame(thermal_image(k, rng), k / THERMAL_FPS, k) for k in range(n_thermal)]
    visible_frames = (
        [] if visible is None else [Frame(visible_image(k), k / VISIBLE_FPS, k) for k in range(n_visible)]
    )
    order = sorted(thermal_frames + visible_frames, key=lambda f: (f.t, f.stream != "thermal"))
    with RecordingWriter(
        path,
        source="simulated",
        thermal=thermal,
        visible=visible,
        calibration_toml=CALIBRATION,
        extra_meta={"simulation": {"seed": 7, "people": 2}},
    ) as writer:
        for frame in order:
            writer.write(frame)
        writer.write_truth(TRUTH[:1])
        writer.write_truth(TRUTH[1:])
    return Written(path, thermal_frames, visible_frames)


def write_video(path: Path, n: int, width: int = 64, height: int = 48) -> None:
    codec = {".mkv": "FFV1", ".avi": "HFYU", ".mp4": "mp4v"}[path.suffix]
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*codec), 15.0, (width, height))
    assert writer.isOpened()
    for k in range(n):
        writer.write(visible_image(k, width, height))
    writer.release()


@pytest.fixture
def good(tmp_path: Path) -> Written:
    return write_recording(tmp_path / "rec")


# --------------------------------------------------------------------------------------- round trip
def test_round_trip_mkv_is_lossless(good: Written) -> None:
    rec = Recording.open(good.path)

    assert rec.source == "simulated"
    assert rec.thermal == thermal_info()
    assert rec.visible == visible_info(".mkv")
    assert rec.visible.codec == "FFV1"
    assert rec.extra == {"simulation": {"seed": 7, "people": 2}}
    assert rec.meta["format"] == FORMAT_NAME and rec.meta["version"] == FORMAT_VERSION
    assert rec.count("thermal") == N_THERMAL and rec.count("visible") == N_VISIBLE

    thermal = list(rec.frames("thermal"))
    assert [f.index for f in thermal] == list(range(N_THERMAL))
    for got, want in zip(thermal, good.thermal, strict=True):
        assert got.image.dtype == np.uint16 and got.image.tobytes() == want.image.tobytes()
        assert got.t == want.t
    visible = list(rec.frames("visible"))
    for got, want in zip(visible, good.visible, strict=True):
        assert np.array_equal(got.image, want.image)
        assert got.t == want.t and got.index == want.index


def test_round_trip_avi_is_lossless_huffyuv(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "rec", ".avi")
    rec = Recording.open(written.path)

    assert rec.visible.codec == "HFYU"
    visible = list(rec.frames("visible"))
    assert len(visible) == N_VISIBLE
    for got, want in zip(visible, written.visible, strict=True):
        assert np.array_equal(got.image, want.image)


def test_avi_frame_count_is_checked_at_open(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "rec", ".avi")
    write_video(written.path / "visible.avi", N_VISIBLE - 2)
    with pytest.raises(RecordingError, match="visible.avi"):
        Recording.open(written.path)


def test_round_trip_mp4_is_close(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "rec", ".mp4")
    rec = Recording.open(written.path)

    assert rec.visible.codec == "mp4v"
    visible = list(rec.frames("visible"))
    assert len(visible) == N_VISIBLE
    for got, want in zip(visible, written.visible, strict=True):
        assert got.image.shape == want.image.shape
        error = np.abs(got.image.astype(np.int16) - want.image.astype(np.int16)).mean()
        assert error < 8, f"frame {got.index}: mean abs error {error:.1f}"
    assert [f.image.tobytes() for f in rec.frames("thermal")] == [f.image.tobytes() for f in written.thermal]


def test_mp4_is_byte_deterministic(tmp_path: Path) -> None:
    a = write_recording(tmp_path / "a", ".mp4").path
    b = write_recording(tmp_path / "b", ".mp4").path
    for name in ("visible.mp4", "thermal.npy", "frames.csv", "meta.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_times_round_trip_exactly(good: Written) -> None:
    rec = Recording.open(good.path)
    thermal_times = rec.times("thermal")
    assert thermal_times.dtype == np.float64
    assert thermal_times.tolist() == [f.t for f in good.thermal]
    assert rec.times("visible").tolist() == [f.t for f in good.visible]
    assert rec.duration == pytest.approx(
        max((N_THERMAL - 1 + 1) / THERMAL_FPS, (N_VISIBLE - 1 + 1) / VISIBLE_FPS)
    )


def test_merged_is_time_ordered_with_thermal_first_on_ties(good: Written) -> None:
    merged = list(Recording.open(good.path).merged())

    assert len(merged) == N_THERMAL + N_VISIBLE
    keys = [(f.t, f.stream != "thermal") for f in merged]
    assert keys == sorted(keys)
    assert [merged[0].stream, merged[1].stream] == ["thermal", "visible"]  # both at t = 0
    assert merged[0].t == merged[1].t == 0.0


def test_side_files(good: Written) -> None:
    rec = Recording.open(good.path)
    assert rec.calibration_text() == CALIBRATION
    assert rec.calibration_path == good.path / "calibration.toml"
    assert rec.truth() == TRUTH


def test_without_side_files(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "rec", source="cameras", thermal=thermal_info(), visible=None):
        pass
    rec = Recording.open(tmp_path / "rec")
    assert rec.calibration_text() is None and rec.calibration_path is None
    assert rec.truth() is None
    assert rec.count("thermal") == 0 and rec.duration == 0.0
    assert list(rec.merged()) == []


def test_thermal_only_recording(tmp_path: Path) -> None:
    written = write_recording(tmp_path / "rec", None)
    rec = Recording.open(written.path)
    assert rec.visible is None and rec.meta["visible"] is None
    assert rec.count("visible") == 0 and rec.times("visible").size == 0
    assert list(rec.frames("visible")) == []
    assert [f.index for f in rec.merged()] == list(range(N_THERMAL))
    assert rec.duration == pytest.approx(N_THERMAL / THERMAL_FPS)


def test_raw_counts_keep_planck_constants(tmp_path: Path) -> None:
    planck = {"R": 366545.0, "B": 1428.0, "F": 1.0, "O": -342}
    written = write_recording(
        tmp_path / "rec", None, thermal=thermal_info(encoding="raw-counts", planck=planck)
    )
    rec = Recording.open(written.path)
    assert rec.thermal.encoding == "raw-counts"
    assert rec.thermal.planck == {"R": 366545.0, "B": 1428.0, "F": 1.0, "O": -342.0}


def test_thermal_npy_is_a_plain_npy_with_a_reserved_header(good: Written) -> None:
    path = good.path / "thermal.npy"
    data = np.load(path)
    assert data.dtype == np.uint16 and data.shape == (N_THERMAL, 120, 160)
    assert np.array_equal(data[3], good.thermal[3].image)
    with open(path, "rb") as fh:
        assert npy_format.read_magic(fh) == (1, 0)
        npy_format.read_array_header_1_0(fh)
        offset = fh.tell()
    assert offset % 64 == 0
    assert offset == recording_module._reserved_header_len(120, 160)
    assert path.stat().st_size == offset + N_THERMAL * 120 * 160 * 2


def test_frames_csv_layout(good: Written) -> None:
    lines = (good.path / "frames.csv").read_text().splitlines()
    assert lines[0] == "stream,index,t"
    assert lines[1:3] == ["thermal,0,0.0", "visible,0,0.0"]
    assert len(lines) == 1 + N_THERMAL + N_VISIBLE


def test_meta_is_written_at_once_and_completed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "rec"
    writer = RecordingWriter(path, source="simulated", thermal=thermal_info(), visible=visible_info())
    early = json.loads((path / "meta.json").read_text())
    assert early["format"] == FORMAT_NAME and early["thermal"]["width"] == 160
    assert "frames" not in early["thermal"]
    writer.write(Frame(np.zeros((120, 160), np.uint16), 0.0, 0))
    writer.close()
    writer.close()  # idempotent
    final = json.loads((path / "meta.json").read_text())
    assert final["thermal"]["frames"] == 1 and final["visible"]["frames"] == 0
    assert not (path / "meta.json.tmp").exists()
    assert Recording.open(path).count("thermal") == 1


def test_reader_memory_maps_thermal(good: Written, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_load = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("mmap_mode"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(recording_module.np, "load", spy)
    next(Recording.open(good.path).frames("thermal"))
    assert calls == ["r"]


# --------------------------------------------------------------------------------------- writer refusals
def test_writer_refuses_a_non_empty_directory(good: Written) -> None:
    with pytest.raises(RecordingError, match="not empty"):
        RecordingWriter(good.path, source="simulated", thermal=thermal_info(), visible=None)


def test_writer_overwrite_replaces_only_format_files(good: Written) -> None:
    (good.path / "notes.txt").write_text("keep me")
    with RecordingWriter(
        good.path, source="cameras", thermal=thermal_info(), visible=None, overwrite=True
    ) as w:
        w.write(Frame(np.ones((120, 160), np.uint16), 0.0, 0))
    assert not (good.path / "visible.mkv").exists()
    assert not (good.path / "truth.jsonl").exists() and not (good.path / "calibration.toml").exists()
    assert (good.path / "notes.txt").read_text() == "keep me"
    rec = Recording.open(good.path)
    assert rec.source == "cameras" and rec.count("thermal") == 1 and rec.visible is None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame(np.zeros((120, 161), np.uint16), 1.0, 1), "expected shape"),
        (Frame(np.zeros((120, 160), np.uint16), 1.0, 2), "expected index 1"),
        (Frame(np.zeros((120, 160), np.uint16), 0.0, 1), "expected t >"),
        (Frame(np.zeros((48, 64, 3), np.uint8), 0.0, 0), "thermal-only"),
    ],
    ids=["shape", "index", "time", "visible-in-thermal-only"],
)
def test_writer_refuses_frames_that_do_not_fit(tmp_path: Path, frame: Frame, message: str) -> None:
    with RecordingWriter(
        tmp_path / "rec", source="simulated", thermal=thermal_info(), visible=None
    ) as writer:
        writer.write(Frame(np.zeros((120, 160), np.uint16), 0.0, 0))
        with pytest.raises(ValueError, match=message):
            writer.write(frame)
    assert Recording.open(tmp_path / "rec").count("thermal") == 1


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        RecordingWriter(tmp_path / "a", source="webcam", thermal=thermal_info(), visible=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="version"):
        RecordingWriter(
            tmp_path / "b",
            source="simulated",
            thermal=thermal_info(),
            visible=None,
            extra_meta={"version": 2},
        )
    with pytest.raises(ValueError, match="raw-counts"):
        thermal_info(encoding="raw-counts")
    with pytest.raises(ValueError, match="planck"):
        thermal_info(encoding="raw-counts", planck={"R": 1.0, "B": 2.0})
    with pytest.raises(ValueError, match=r"\.mkv, \.avi, \.mp4"):
        visible_info(".mov")
    with pytest.raises(ValueError, match="plain file name"):
        thermal_info(file="../thermal.npy")
    with pytest.raises(ValueError, match="width"):
        thermal_info(width=0)


def test_writer_refuses_writes_after_close(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "rec", source="simulated", thermal=thermal_info(), visible=None)
    writer.close()
    with pytest.raises(ValueError, match="after close"):
        writer.write(Frame(np.zeros((120, 160), np.uint16), 0.0, 0))


# --------------------------------------------------------------------------------------- reader faults
def edit_meta(path: Path, change: Callable[[dict], None]) -> None:
    meta = json.loads((path / "meta.json").read_text())
    change(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def edit_csv_lines(path: Path, change: Callable[[list[str]], None]) -> None:
    lines = (path / "frames.csv").read_text().splitlines()
    change(lines)
    (path / "frames.csv").write_text("\n".join(lines) + "\n")


def csv_line_of(path: Path, stream: str, index: int) -> int:
    """1-based line number of a stream's row, as the reader reports it."""
    lines = (path / "frames.csv").read_text().splitlines()
    return lines.index(next(line for line in lines if line.startswith(f"{stream},{index},"))) + 1


def swap_times(lines: list[str], a: int, b: int) -> None:
    sa, sb = lines[a].rsplit(",", 1), lines[b].rsplit(",", 1)
    lines[a], lines[b] = f"{sa[0]},{sb[1]}", f"{sb[0]},{sa[1]}"


def drop_row(lines: list[str], stream: str, index: int) -> None:
    lines.remove(next(line for line in lines if line.startswith(f"{stream},{index},")))


def save_thermal(path: Path, array: np.ndarray) -> None:
    with open(path / "thermal.npy", "wb") as fh:
        np.save(fh, array)


def truncate(path: Path, n_bytes: int) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - n_bytes)


def rows_of_stream(lines: list[str], stream: str) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(stream + ",")]


def swap_thermal_times(lines: list[str]) -> None:
    rows = rows_of_stream(lines, "thermal")
    swap_times(lines, rows[3], rows[4])


def set_planck_null(meta: dict) -> None:
    meta["thermal"]["encoding"] = "raw-counts"
    meta["thermal"]["planck"] = None


def delete_key(key: str, sub: str) -> Callable[[dict], None]:
    return lambda meta: meta[key].pop(sub)


# (id, corrupt(path), file the message must name, words it must contain)
FAULTS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("meta-missing", lambda p: (p / "meta.json").unlink(), "meta.json", "missing"),
    ("meta-not-json", lambda p: (p / "meta.json").write_text("{'format': 1"), "meta.json", "not valid JSON"),
    (
        "meta-not-object",
        lambda p: (p / "meta.json").write_text("[1, 2]"),
        "meta.json",
        "expected a JSON object",
    ),
    (
        "wrong-format",
        lambda p: edit_meta(p, lambda m: m.update(format="flir-seq")),
        "meta.json",
        "format is 'flir-seq', expected 'station-recording'",
    ),
    (
        "unknown-version",
        lambda p: edit_meta(p, lambda m: m.update(version=2)),
        "meta.json",
        "version 2 is unknown; this reader knows version(s) 1",
    ),
    ("missing-version", lambda p: edit_meta(p, lambda m: m.pop("version")), "meta.json", "version None"),
    (
        "bad-source",
        lambda p: edit_meta(p, lambda m: m.update(source="webcam")),
        "meta.json",
        "source is 'webcam'",
    ),
    (
        "thermal-key-missing",
        lambda p: edit_meta(p, delete_key("thermal", "width")),
        "meta.json",
        "thermal: missing width",
    ),
    ("thermal-null", lambda p: edit_meta(p, lambda m: m.update(thermal=None)), "meta.json", "thermal stream"),
    (
        "bad-encoding",
        lambda p: edit_meta(p, lambda m: m["thermal"].update(encoding="celsius")),
        "meta.json",
        "thermal.encoding",
    ),
    ("raw-counts-without-planck", lambda p: edit_meta(p, set_planck_null), "meta.json", "Planck constants"),
    (
        "file-outside-recording",
        lambda p: edit_meta(p, lambda m: m["thermal"].update(file="../x.npy")),
        "meta.json",
        "plain file name",
    ),
    ("thermal-missing", lambda p: (p / "thermal.npy").unlink(), "thermal.npy", "missing"),
    ("video-missing", lambda p: (p / "visible.mkv").unlink(), "visible.mkv", "missing"),
    ("frames-csv-missing", lambda p: (p / "frames.csv").unlink(), "frames.csv", "missing"),
    (
        "csv-bad-header",
        lambda p: edit_csv_lines(p, lambda ls: ls.__setitem__(0, "stream,idx,time")),
        "frames.csv",
        "line 1: header must be",
    ),
    ("csv-empty", lambda p: (p / "frames.csv").write_text(""), "frames.csv", "line 1: header must be"),
    (
        "csv-not-text",
        lambda p: (p / "frames.csv").open("ab").write(b"thermal,\xff,1\n"),
        "frames.csv",
        "is damaged: byte b'\\xff' is not text",
    ),
    (
        "recorded-at-not-utc",
        lambda p: edit_meta(p, lambda m: m.update(recorded_at="2026-11-23T10:00:00+02:00")),
        "meta.json",
        "must be in UTC",
    ),
    (
        "recorded-at-not-a-time",
        lambda p: edit_meta(p, lambda m: m.update(recorded_at="last tuesday")),
        "meta.json",
        "recorded_at: 'last tuesday' is not an ISO 8601 time",
    ),
    (
        "csv-bad-number",
        lambda p: edit_csv_lines(p, lambda ls: ls.__setitem__(4, "thermal,2,soon")),
        "frames.csv",
        "line 5: index must be an integer and t a number",
    ),
    (
        "csv-bad-stream",
        lambda p: edit_csv_lines(p, lambda ls: ls.__setitem__(6, "infrared,0,0.1")),
        "frames.csv",
        "line 7: expected",
    ),
    (
        "csv-short-row",
        lambda p: edit_csv_lines(p, lambda ls: ls.__setitem__(3, "thermal,1")),
        "frames.csv",
        "line 4: expected",
    ),
    (
        "csv-deleted-row",
        lambda p: edit_csv_lines(p, lambda ls: drop_row(ls, "thermal", 2)),
        "frames.csv",
        "thermal index 3, expected 2",
    ),
    ("csv-swapped-times", lambda p: edit_csv_lines(p, swap_thermal_times), "frames.csv", "is not after"),
    (
        "csv-non-finite-time",
        lambda p: edit_csv_lines(p, lambda ls: ls.__setitem__(1, "thermal,0,nan")),
        "frames.csv",
        "line 2: expected index >= 0 and a finite t",
    ),
    (
        "thermal-wrong-dtype",
        lambda p: save_thermal(p, np.zeros((N_THERMAL, 120, 160), np.float32)),
        "thermal.npy",
        "dtype float32, meta.json says uint16",
    ),
    (
        "thermal-wrong-shape",
        lambda p: save_thermal(p, np.zeros((N_THERMAL, 120, 100), np.uint16)),
        "thermal.npy",
        "shape (9, 120, 100), meta.json says (N, 120, 160)",
    ),
    (
        "thermal-truncated",
        lambda p: truncate(p / "thermal.npy", 5),
        "thermal.npy",
        f"truncated: its header says {N_THERMAL} frames",
    ),
    (
        "thermal-not-npy",
        lambda p: (p / "thermal.npy").write_bytes(b"\x00" * 100),
        "thermal.npy",
        "not a readable .npy file",
    ),
    (
        "thermal-count",
        lambda p: save_thermal(p, np.zeros((N_THERMAL - 1, 120, 160), np.uint16)),
        "thermal.npy",
        f"holds {N_THERMAL - 1} frames, frames.csv lists {N_THERMAL} thermal frames",
    ),
    (
        "meta-count",
        lambda p: edit_meta(p, lambda m: m["visible"].update(frames=99)),
        "meta.json",
        f"visible.frames is 99, frames.csv lists {N_VISIBLE} visible frames",
    ),
    (
        "video-wrong-size",
        lambda p: write_video(p / "visible.mkv", N_VISIBLE, 80, 48),
        "visible.mkv",
        "video is 80x48, meta.json says 64x48",
    ),
    (
        "video-unreadable",
        lambda p: (p / "visible.mkv").write_bytes(b"not a video"),
        "visible.mkv",
        "OpenCV cannot open",
    ),
]


@pytest.mark.parametrize(("corrupt", "file", "words"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_reader_names_the_faulty_file(good: Written, corrupt, file: str, words: str) -> None:
    Recording.open(good.path)  # the fixture is good before corruption
    corrupt(good.path)
    with pytest.raises(RecordingError) as caught:
        Recording.open(good.path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(good.path / file) + ": "), message
    assert words in message, message


def test_fault_lines_are_the_real_lines(good: Written) -> None:
    """The line named for a deleted or out-of-order row is where an editor would show it."""
    deleted_line = csv_line_of(good.path, "thermal", 3)
    edit_csv_lines(good.path, lambda ls: drop_row(ls, "thermal", 2))
    with pytest.raises(RecordingError, match=f"frames.csv: line {deleted_line - 1}: thermal index 3"):
        Recording.open(good.path)


def test_swapped_times_name_the_later_line(good: Written) -> None:
    lines = (good.path / "frames.csv").read_text().splitlines()
    fifth = rows_of_stream(lines, "thermal")[4]
    edit_csv_lines(good.path, swap_thermal_times)
    with pytest.raises(RecordingError, match=f"frames.csv: line {fifth + 1}: thermal t="):
        Recording.open(good.path)


def test_truncated_thermal_says_how_many_frames_are_complete(good: Written) -> None:
    truncate(good.path / "thermal.npy", 5)
    with pytest.raises(RecordingError, match=f"{N_THERMAL - 1} complete frames"):
        Recording.open(good.path)


def test_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match=f"^{tmp_path / 'nope'}: recording directory does not exist$"):
        Recording.open(tmp_path / "nope")


def test_directory_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(RecordingError, match="file: is not a directory"):
        Recording.open(tmp_path / "file")


def test_visible_row_in_a_thermal_only_recording(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "rec", None).path
    edit_csv_lines(path, lambda ls: ls.append("visible,0,0.0"))
    with pytest.raises(RecordingError, match=rf"frames.csv: line {N_THERMAL + 2}: a visible frame, but"):
        Recording.open(path)


def test_unclosed_recording_is_named(tmp_path: Path) -> None:
    """A writer that died before close leaves the .npy header at 0 frames; the reader says so."""
    path = write_recording(tmp_path / "rec", None).path
    with open(path / "thermal.npy", "r+b") as fh:
        fh.write(recording_module._npy_header((0, 120, 160), recording_module._reserved_header_len(120, 160)))
    with pytest.raises(RecordingError, match="thermal.npy: .* bytes beyond the 0 frames .*never closed"):
        Recording.open(path)


def test_mp4_frame_count_is_checked_at_open(tmp_path: Path) -> None:
    path = write_recording(tmp_path / "rec", ".mp4").path
    write_video(path / "visible.mp4", N_VISIBLE - 2)
    with pytest.raises(
        RecordingError, match=f"visible.mp4: video holds {N_VISIBLE - 2} frames, frames.csv lists"
    ):
        Recording.open(path)


@pytest.mark.parametrize(
    ("frames", "size", "words"),
    [
        (N_VISIBLE - 2, (64, 48), f"video ends after {N_VISIBLE - 2} frames, frames.csv lists {N_VISIBLE}"),
        (N_VISIBLE + 2, (64, 48), f"video holds more frames than the {N_VISIBLE} frames.csv lists"),
        (N_VISIBLE, (32, 48), "frame 0 decodes to shape (48, 32, 3), meta.json says (48, 64, 3)"),
    ],
    ids=["short", "long", "wrong-size"],
)
def test_video_faults_found_while_decoding(
    good: Written, frames: int, size: tuple[int, int], words: str
) -> None:
    """Matroska's frame count is only an estimate, so the decoder checks the video as it goes.

    The video is swapped after open, which also stands for a file that changes under a running replay.
    """
    rec = Recording.open(good.path)
    write_video(good.path / "visible.mkv", frames, *size)
    with pytest.raises(RecordingError) as caught:
        list(rec.frames("visible"))
    assert str(caught.value) == f"{good.path / 'visible.mkv'}: {words}"


def test_truth_with_a_bad_line(good: Written) -> None:
    with open(good.path / "truth.jsonl", "a") as fh:
        fh.write("{oops\n")
    with pytest.raises(RecordingError, match=f"truth.jsonl: line {len(TRUTH) + 1}: not valid JSON"):
        Recording.open(good.path).truth()


def test_unknown_meta_keys_are_ignored(good: Written) -> None:
    edit_meta(good.path, lambda m: (m.update(future={"x": 1}), m["thermal"].update(gain_mode="high")))
    rec = Recording.open(good.path)
    assert rec.extra["future"] == {"x": 1}
    assert rec.thermal == thermal_info()


def test_a_copied_recording_opens_anywhere(good: Written, tmp_path: Path) -> None:
    """Nothing in a recording refers to where it was written."""
    copy = shutil.copytree(good.path, tmp_path / "elsewhere" / "copy")
    assert Recording.open(copy).count("visible") == N_VISIBLE


def test_recorded_at_says_when_each_frame_was_taken(tmp_path: Path) -> None:
    """A replay judges date-dependent things (the calibration's age) at the frames' own time."""
    from datetime import UTC, datetime, timedelta

    with RecordingWriter(tmp_path / "rec", source="cameras", thermal=thermal_info(), visible=None,
                         recorded_at="2026-11-23T10:00:00Z") as writer:
        writer.write(Frame(np.zeros((120, 160), np.uint16), 0.0, 0))
        writer.write(Frame(np.zeros((120, 160), np.uint16), 2.5, 1))
    rec = Recording.open(tmp_path / "rec")
    assert rec.recorded_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert rec.wall_time(2.5) == rec.recorded_at + timedelta(seconds=2.5)
    assert "recorded_at" not in rec.extra


def test_a_recording_that_does_not_say_when_has_no_wall_time(good: Written) -> None:
    rec = Recording.open(good.path)
    assert rec.recorded_at is None and rec.wall_time(1.0) is None


def test_writer_refuses_a_recorded_at_without_its_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be in UTC"):
        RecordingWriter(tmp_path / "rec", source="cameras", thermal=thermal_info(), visible=None,
                        recorded_at="2026-11-23T10:00:00")
