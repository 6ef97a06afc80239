"""station record: the live simulator recorded through the station's capture threads, as a technician would.

Every recording made here is opened with ``Recording.open`` (the format's own checks) and one is screened
with ``station run --recording``. The limits, the signals (on a real subprocess: a signal is a process's
business), the faults that end a recording early and every bad input are covered; cameras are the live
simulator (``sim:SEED``), or the simulator wrapped to fail the way cameras do.
"""

from __future__ import annotations

import dataclasses
import errno
import getpass
import io
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.acquire.record import FrameBuffer, RecordRequest, format_size, parse_size, public_spec, record
from station.acquire.recording import Recording, RecordingWriter, parse_recorded_at
from station.acquire.sources.base import Source
from station.acquire.sources.registry import open_source
from station.cli.main import main
from station.profile.history import ProfileStore
from station.sim.live import shared_simulation
from station.types import Frame

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^recording\s+[\d.]+( of [\d.]+)? s\s+thermal (\d+)")


def _store_sim_profile(seed: int) -> Path:
    """The simulator's true calibration, stored and made active as a technician's profile would be."""
    profile = dataclasses.replace(shared_simulation(seed).profile(), technician="test technician")
    return ProfileStore().save(profile)


def _recording_files(out: Path) -> int:
    """Bytes of the recording's own files (OUT may hold other files beside them)."""
    names = ("meta.json", "frames.csv", "thermal.npy", "calibration.toml", "visible.avi", "visible.mkv", "visible.mp4")
    return sum((out / name).stat().st_size for name in names if (out / name).is_file())


@pytest.fixture(scope="module")
def three_seconds(tmp_path_factory):
    """Three seconds of the live simulator, both cameras, with the technicians' active profile in effect."""
    root = tmp_path_factory.mktemp("record")
    out = root / "rec"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_DATA_HOME", str(root / "data"))
        env.setenv("XDG_CONFIG_HOME", str(root / "config"))
        profile = _store_sim_profile(1)
        before = datetime.now(UTC)
        result = CliRunner().invoke(main, ["record", str(out), "--thermal", "sim:1", "--visible", "sim:1",
                                           "--seconds", "3"])
        after = datetime.now(UTC)
    return SimpleNamespace(out=out, result=result, before=before, after=after,
                           profile_text=profile.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------- the recording
def test_three_seconds_of_the_live_simulator_open_with_every_frame_and_time(three_seconds):
    result = three_seconds.result
    assert result.exit_code == 0, result.output
    rec = Recording.open(three_seconds.out)
    assert rec.source == "simulated" and rec.visible is not None
    assert (rec.thermal.width, rec.thermal.height, rec.thermal.encoding) == (160, 120, "tlinear-centikelvin")
    assert (rec.visible.width, rec.visible.height, rec.visible.file, rec.visible.codec) == (
        640, 480, "visible.avi", "HFYU")
    assert rec.fps("thermal") == pytest.approx(8.7, abs=0.2) and rec.fps("visible") == pytest.approx(15, abs=0.3)
    for stream in ("thermal", "visible"):
        # The simulator's frames come on its own clock, so the count is exact whatever the machine's load.
        assert abs(rec.count(stream) - rec.fps(stream) * 3) <= 2, (stream, rec.count(stream))
        times = rec.times(stream)
        assert np.all(np.diff(times) > 0) and times[-1] < 3.0
    assert min(rec.times("thermal")[0], rec.times("visible")[0]) == 0.0, "the first frame is t = 0"
    # Frames are the simulator's own, pixel for pixel (HuffYUV is lossless), shifted in time only.
    sim = shared_simulation(1)
    first = next(rec.frames("visible"))
    assert np.array_equal(first.image, sim.render("visible", 0).image)
    thermal = [f.image for f in rec.frames("thermal")]
    assert np.array_equal(thermal[5], sim.render("thermal", 5).image)
    assert rec.times("thermal")[5] == pytest.approx(sim.thermal_times[5] - sim.thermal_times[0])


def test_the_recording_is_dated_and_carries_the_active_profile_verbatim(three_seconds):
    rec = Recording.open(three_seconds.out)
    assert rec.meta["recorded_at"].endswith("Z")
    assert three_seconds.before - timedelta(milliseconds=1) <= rec.recorded_at <= three_seconds.after
    assert rec.calibration_text() == three_seconds.profile_text


def test_meta_says_how_it_was_made_and_names_no_one(three_seconds):
    rec = Recording.open(three_seconds.out)
    block = rec.extra["recording"]
    assert block["sources"] == {"thermal": "sim:1", "visible": "sim:1"}
    assert block["station_version"] and block["software"]["opencv"]
    assert block["calibration"]["from"] == "active profile"
    assert block["stopped"]["reason"] == "seconds"
    assert block["dropped"] == {s: {"writer_behind": 0, "time_not_increasing": 0} for s in ("thermal", "visible")}
    assert block["video"] == {"file": "visible.avi", "codec": "HFYU", "lossless": True}
    text = (three_seconds.out / "meta.json").read_text(encoding="utf-8")
    assert socket.gethostname() not in text
    user = getpass.getuser()
    if len(user) >= 4:
        assert user not in text
    assert str(three_seconds.out.parent) not in text


def test_a_progress_line_about_once_a_second_and_a_closing_line(three_seconds):
    result = three_seconds.result
    progress = [line for line in result.stderr.splitlines() if PROGRESS.match(line)]
    assert 2 <= len(progress) <= 6, result.stderr
    assert all("dropped 0" in line and "MB" in line for line in progress)
    closing = result.stdout.strip().splitlines()
    assert len(closing) == 1 and "stopped at --seconds 3" in closing[0] and "no frame dropped" in closing[0]


def test_the_recording_replays_through_station_run(three_seconds, face_model, tmp_path):
    result = CliRunner().invoke(main, ["run", "--recording", str(three_seconds.out), "--headless", "--fast",
                                       "--db", str(tmp_path / "station.db")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[-1]["kind"] == "stopped"
    n_thermal = Recording.open(three_seconds.out).count("thermal")
    assert lines[-1]["detail"].startswith(f"{n_thermal} frame pairs, 0 thermal frames unpaired")


# --------------------------------------------------------------------------------------------- limits
def test_max_size_stops_before_the_limit_and_overwrite_keeps_other_files(tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "notes.txt").write_text("door 2, morning shift\n", encoding="utf-8")
    limit = 12 * 2**20
    result = CliRunner().invoke(main, ["record", str(out), "--thermal", "sim:2", "--visible", "sim:2",
                                       "--max-size", "12M", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert "stopped before --max-size 12.0 MB" in result.stdout
    size = _recording_files(out)
    assert 0.7 * limit < size <= limit, size
    rec = Recording.open(out)
    assert rec.count("visible") > 5 and rec.extra["recording"]["stopped"]["reason"] == "max-size"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "door 2, morning shift\n"
    assert not (out / "calibration.toml").exists(), "no profile is active in this test's data directory"
    assert "no calibration profile" in result.stderr


def _wait_for_progress(process: subprocess.Popen, lines: int, timeout: float = 90.0) -> list[str]:
    """Stderr lines until ``lines`` progress lines came (read on a thread, so a hung child fails the test)."""
    seen: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.put(line)
        seen.put(None)

    threading.Thread(target=pump, daemon=True).start()
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(bool(PROGRESS.match(line)) for line in got) < lines:
        line = seen.get(timeout=max(0.1, deadline - time.monotonic()))
        assert line is not None, "".join(got)
        got.append(line)
    return got


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_a_real_recording_cleanly(tmp_path, stop):
    out = tmp_path / "rec"
    _store_sim_profile(3)
    command = [sys.executable, "-m", "station.cli.main", "record", str(out), "--thermal", "sim:3", "--visible", "sim:3"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_progress(process, 2)
        process.send_signal(stop)
        stdout, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout
    assert f"stopped by {stop.name}" in stdout
    rec = Recording.open(out)
    assert rec.count("thermal") >= 8 and rec.count("visible") >= 15
    assert rec.extra["recording"]["stopped"] == {"reason": "signal", "detail": f"stopped by {stop.name}"}
    assert rec.calibration_path is not None


# --------------------------------------------------------------------------------------------- faults
class _FlakyCamera(Source):
    """The simulator's thermal camera, failing as a camera does: a frame stamped with its predecessor's
    time (a driver's duplicate), then nothing at all, for good (a pulled cable)."""

    name = "flaky"
    stream = "thermal"

    def __init__(self, *, repeat_at: int, die_after: int) -> None:
        self.inner = open_source("sim:4", "thermal")
        self.repeat_at, self.die_after = repeat_at, die_after
        self.delivered = 0
        self._previous: Frame | None = None

    def open(self) -> None:
        self.inner.open()

    def read(self) -> Frame | None:
        if self.delivered >= self.die_after:
            time.sleep(0.02)
            return None
        frame = self.inner.read()
        assert frame is not None
        if self.delivered == self.repeat_at and self._previous is not None:
            frame = Frame(frame.image, self._previous.t, frame.index)
        self.delivered += 1
        self._previous = frame
        return frame

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, object]:
        return self.inner.describe()


def test_a_camera_lost_keeps_what_was_written_and_exits_1(tmp_path):
    out = tmp_path / "rec"
    camera = _FlakyCamera(repeat_at=10, die_after=20)
    status = io.StringIO()
    result = record(RecordRequest(out=out, thermal="flaky"), status=status, lost_after_s=0.3,
                    make_source=lambda spec, stream: camera)
    assert result.exit_code == 1 and result.reason == "camera-lost", result.detail
    assert result.detail.startswith("camera lost: ") and "\n" not in result.detail
    rec = Recording.open(out)
    assert rec.visible is None and rec.count("thermal") == 19, "20 delivered, one with a repeated time"
    assert np.all(np.diff(rec.times("thermal")) > 0)
    dropped = rec.extra["recording"]["dropped"]
    assert dropped == {"thermal": {"writer_behind": 0, "time_not_increasing": 1}}
    assert "1 frame DROPPED (thermal 1 time not increasing)" in result.line()


def test_a_full_disk_closes_what_it_can_and_says_where_in_one_line(tmp_path, monkeypatch):
    out = tmp_path / "rec"
    real_write = RecordingWriter.write
    written: list[int] = []

    def write(self, frame):
        if len(written) == 12:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        real_write(self, frame)

    monkeypatch.setattr(RecordingWriter, "write", write)
    result = CliRunner().invoke(main, ["record", str(out), "--thermal", "sim:5", "--seconds", "30"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert errors[0].startswith(f"Error: {out}: no space left on device; stopped; kept 12 thermal frames")
    assert Recording.open(out).count("thermal") == 12


# --------------------------------------------------------------------------------------------- bad input
def test_a_non_empty_out_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "meta.json").write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(main, ["record", str(out), "--thermal", "sim:1"])
    line = one_line_error(result)
    assert str(out) in line and "--overwrite" in line
    assert [p.name for p in out.iterdir()] == ["meta.json"] and (out / "meta.json").read_text() == "{}"


@pytest.mark.parametrize("args, says", [
    (["--thermal", "lepotn"], "unknown thermal source 'lepotn'"),
    (["--thermal", "sim:1", "--visible", "no-such-camera"], "unknown visible source 'no-such-camera'"),
    (["--thermal", "sim:x"], "sim:SEED"),
    (["--thermal", "uvc:97"], "thermal camera uvc:97 could not be opened"),
    (["--visible", "0"], "no thermal source"),
    (["--thermal", "sim:1", "--max-size", "2X"], "--max-size '2X'"),
    (["--thermal", "sim:1", "--max-size", "10K"], "too small"),
    (["--thermal", "sim:1", "--seconds", "ten"], "--seconds 'ten'"),
    (["--thermal", "sim:1", "--calibration", "no-such.toml"], "--calibration no-such.toml: no such file"),
], ids=["typo", "visible-typo", "sim-seed", "missing-camera", "no-thermal", "size", "tiny-size", "seconds",
        "calibration"])
def test_bad_input_is_one_line_and_records_nothing(tmp_path, args, says):
    out = tmp_path / "rec"
    line = one_line_error(CliRunner().invoke(main, ["record", str(out), *args]))
    assert says in line
    assert not out.exists()


# --------------------------------------------------------------------------------------------- the parts
def test_the_frame_buffer_keeps_arrival_order_and_counts_what_it_cannot_hold():
    buffer = FrameBuffer(max_bytes=3 * 160 * 120 * 2)
    frames = [Frame(np.zeros((120, 160), np.uint16), 0.1 * k, k) for k in range(5)]
    assert [buffer.put(f) for f in frames] == [True, True, True, False, False]
    assert buffer.dropped == {"visible": 0, "thermal": 2}
    assert [buffer.get(0)[0].index for _ in range(3)] == [0, 1, 2] and buffer.get(0) is None
    big = Frame(np.zeros((480, 640, 3), np.uint8), 0.0, 0)
    assert buffer.put(big), "an empty buffer takes any frame"


def test_sizes_and_what_meta_may_say_of_a_source():
    assert parse_size("500M") == 500 * 2**20 and parse_size("2G") == 2 * 2**30 and parse_size("1.5gib") == 3 * 2**29
    assert parse_size("4096") == 4096 and format_size(12 * 2**20) == "12.0 MB"
    assert public_spec("lepton:1") == "lepton:1" and public_spec("sim:7") == "sim:7" and public_spec("0") == "0"
    assert public_spec("rtsp://admin:secret@10.0.0.7:554/door") == "rtsp stream"
    assert public_spec("/home/alice/entrance.mp4") == "entrance.mp4"
    assert parse_recorded_at("2026-11-23T10:00:00.000Z").tzinfo is not None


def test_raw_counts_are_recorded_with_the_cameras_planck_constants(tmp_path):
    out = tmp_path / "rec"
    result = record(RecordRequest(out=out, thermal="sim:6:boson", seconds=1.0), status=io.StringIO())
    assert result.exit_code == 0, result.detail
    rec = Recording.open(out)
    camera = open_source("sim:6:boson", "thermal").describe()
    assert (rec.thermal.encoding, rec.thermal.planck) == ("raw-counts", camera["planck"])
    assert (rec.thermal.width, rec.thermal.height) == (320, 256) and rec.visible is None
    assert abs(rec.count("thermal") - rec.fps("thermal")) <= 2
