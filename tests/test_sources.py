"""The camera adapters, each driven through its real code path against the fake V4L2 bus.

flirpy's own ``setup_video``/``grab``/``decode_telemetry`` run in these tests: only ``cv2.VideoCapture``
(the device) and, for the Boson, the serial port list are faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from fakes import SCENE_CENTIKELVIN, FakeV4L2Bus, boson, lepton, webcam
from flirpy.camera import lepton as flirpy_lepton
from serial.tools import list_ports

from station.acquire.sources.boson import BosonSource
from station.acquire.sources.devices import list_video_devices
from station.acquire.sources.lepton import LeptonSource
from station.acquire.sources.opencv_visible import OpenCVVisibleSource
from station.acquire.sources.registry import SOURCE_KINDS, SourceKind, discover_cameras, open_source
from station.acquire.sources.uvc_y16 import UVCY16Source
from station.errors import SourceError

# flirpy logs a failed grab with the deprecated Logger.warn; that is flirpy's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")

Y16 = cv2.VideoWriter_fourcc(*"Y16 ")
HINT = "`station cameras` lists what is connected"
NO_V4L2 = sys.platform.startswith("linux") and not Path("/sys/class/video4linux").exists()


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> FakeV4L2Bus:
    return FakeV4L2Bus().install(monkeypatch)


@pytest.fixture
def no_serial_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(list_ports, "comports", lambda: [])


def ticking_clock(start: float = 100.0, step: float = 0.25) -> Callable[[], float]:
    """A clock that advances one step per reading, so frame times are exact."""
    times = iter(np.arange(start, start + 1000 * step, step))
    return lambda: float(next(times))


@contextmanager
def no_warnings() -> Iterator[None]:
    """Fail the test if anything inside warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    assert [str(w.message) for w in caught] == []


def assert_one_line(exc: pytest.ExceptionInfo[SourceError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# -- Lepton -------------------------------------------------------------------------------------------


def test_lepton_frames_carry_the_telemetry_flirpy_decoded(bus: FakeV4L2Bus) -> None:
    camera = bus.plug(1, lepton(fpa_temp_k=306.42))
    with LeptonSource(1, clock=ticking_clock()) as source:
        frames = [source.read() for _ in range(3)]

    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.t for f in frames] == [100.0, 100.25, 100.5]
    first = frames[0]
    assert first.image.dtype == np.uint16 and first.image.shape == (120, 160)
    # The telemetry rows are gone: the last row is image (scene value + row + column), not the footer.
    np.testing.assert_array_equal(first.image[-1, :3], SCENE_CENTIKELVIN + 119 + np.arange(3))
    assert first.meta["fpa_temp_k"] == pytest.approx(306.42)
    assert first.meta["ffc_temp_k"] == pytest.approx(305.92)
    assert [f.meta["frame_count"] for f in frames] == [1000, 1001, 1002]
    assert frames[1].meta["uptime_ms"] == 60_111
    assert frames[1].meta["ffc_elapsed_ms"] == 5_111
    assert first.meta["encoding"] == "tlinear-centikelvin"
    # flirpy opened the device with V4L2 and asked for Y16 before turning conversion off.
    (capture,) = bus.captures_of(1)
    keys = [prop for prop, _ in capture.set_calls]
    assert keys.index(cv2.CAP_PROP_FOURCC) < keys.index(cv2.CAP_PROP_CONVERT_RGB)
    assert dict(capture.set_calls)[cv2.CAP_PROP_FOURCC] == Y16
    assert not capture.opened, "close() must release the device"
    assert camera.frames_sent == 3


def test_lepton_failed_grab_is_none_not_a_stale_frame(bus: FakeV4L2Bus) -> None:
    camera = bus.plug(0, lepton())
    camera.stop_answering_after(1)
    with LeptonSource(0) as source:
        assert source.read() is not None
        assert source.read() is None
        camera.answer_again()
        frame = source.read()
    assert frame is not None and frame.index == 1 and frame.meta["frame_count"] == 1001


def test_lepton_found_by_flirpy_when_no_device_given(
    bus: FakeV4L2Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus.plug(2, lepton())
    # The USB-id search is the hardware boundary here: it "finds" the board at /dev/video2.
    monkeypatch.setattr(flirpy_lepton.Lepton, "find_video_device", classmethod(lambda cls: 2))
    with LeptonSource() as source:
        assert source.read().image.shape == (120, 160)
    assert source.describe()["device"] == "auto"


def test_lepton_not_found_is_one_line(bus: FakeV4L2Bus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flirpy_lepton.Lepton, "find_video_device", classmethod(lambda cls: None))
    with pytest.raises(SourceError) as exc:
        LeptonSource().open()
    message = assert_one_line(exc)
    assert message.startswith("thermal camera lepton could not be opened: no PureThermal Lepton found")
    assert message.endswith(HINT)


@pytest.mark.skipif(not NO_V4L2, reason="needs a Linux machine without Video4Linux")
def test_lepton_search_on_a_machine_without_v4l2_fails_quietly(bus: FakeV4L2Bus) -> None:
    with no_warnings(), pytest.raises(SourceError) as exc:
        LeptonSource().open()
    assert "no Video4Linux" in assert_one_line(exc)


def test_lepton_absent_device_is_one_line(bus: FakeV4L2Bus) -> None:
    with pytest.raises(SourceError) as exc:
        LeptonSource(7).open()
    assert assert_one_line(exc).startswith("thermal camera lepton:7 could not be opened: ")


def test_lepton_raw_byte_frames_are_reported_not_misread(bus: FakeV4L2Bus) -> None:
    bus.plug(0, lepton(layout="flat-uint8"))
    with LeptonSource(0) as source, pytest.raises(SourceError) as exc:
        source.read()
    assert "expected (122, 160) uint16" in assert_one_line(exc)


# -- Boson --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["uint16", "flat-uint8"])
def test_boson_video_without_a_serial_port(bus: FakeV4L2Bus, no_serial_ports: None, layout: str) -> None:
    camera = bus.plug(3, boson(layout=layout))
    with BosonSource(3, clock=ticking_clock()) as source:
        assert source.control is None
        frames = [source.read() for _ in range(2)]
    assert frames[0].image.dtype == np.uint16 and frames[0].image.shape == (256, 320)
    np.testing.assert_array_equal(frames[1].image, camera.y16(1))
    assert frames[1].meta["encoding"] == "raw-counts"
    assert source.describe()["control"] == "no serial port found"
    (capture,) = bus.captures_of(3)
    assert (cv2.CAP_PROP_FRAME_WIDTH, 320) in capture.set_calls


def test_boson_carries_on_without_a_found_port_that_will_not_open(
    bus: FakeV4L2Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus.plug(0, boson())
    port = SimpleNamespace(vid=0x09CB, pid=0x4007, device="/dev/station-test-no-such-tty")
    monkeypatch.setattr(list_ports, "comports", lambda: [port])
    with BosonSource(0) as source:
        assert source.read().image.shape == (256, 320)
        assert source.control is None
        assert source.describe()["control"].startswith("unavailable: ")


def test_boson_named_port_that_fails_is_an_error(bus: FakeV4L2Bus) -> None:
    bus.plug(0, boson())
    with pytest.raises(SourceError) as exc:
        BosonSource(0, port="/dev/station-test-no-such-tty").open()
    message = assert_one_line(exc)
    assert "control port /dev/station-test-no-such-tty could not be opened" in message
    assert message.endswith("leave the port out to run on video alone")


def test_boson_absent_is_one_line(bus: FakeV4L2Bus, no_serial_ports: None) -> None:
    with pytest.raises(SourceError) as exc:
        BosonSource(5).open()
    assert assert_one_line(exc).startswith("thermal camera boson:5 could not be opened: ")


# -- UVC Y16 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["uint16", "flat-uint8"])
def test_uvc_y16_decodes_either_layout_and_strips_telemetry(bus: FakeV4L2Bus, layout: str) -> None:
    camera = bus.plug(4, lepton(layout=layout))
    source = UVCY16Source(4, telemetry_rows=2, encoding="tlinear-centikelvin", clock=ticking_clock())
    with source:
        frames = [source.read() for _ in range(2)]
    assert frames[0].image.dtype == np.uint16 and frames[0].image.shape == (120, 160)
    np.testing.assert_array_equal(frames[1].image, camera.y16(1)[:-2])
    assert frames[1].t == 100.25 and frames[1].index == 1
    assert frames[0].meta["encoding"] == "tlinear-centikelvin"
    (capture,) = bus.captures_of(4)
    assert capture.api == cv2.CAP_V4L2 or not sys.platform.startswith("linux")
    y16_settings = [c for c in capture.set_calls if c[0] in (cv2.CAP_PROP_FOURCC, cv2.CAP_PROP_CONVERT_RGB)]
    assert y16_settings == [(cv2.CAP_PROP_FOURCC, Y16), (cv2.CAP_PROP_CONVERT_RGB, 0)]


def test_uvc_y16_requests_the_size_it_is_given(bus: FakeV4L2Bus) -> None:
    bus.plug(0, boson())
    with UVCY16Source(0, width=320, height=256) as source:
        assert source.read().image.shape == (256, 320)
    (capture,) = bus.captures_of(0)
    keys = [prop for prop, _ in capture.set_calls]
    assert keys[:2] == [cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT]


def test_uvc_camera_that_ignores_y16_is_reported(bus: FakeV4L2Bus) -> None:
    bus.plug(0, webcam())
    with UVCY16Source(0) as source, pytest.raises(SourceError) as exc:
        source.read()
    assert "expected 16-bit Y16 frames, got uint8 (48, 64, 3)" in assert_one_line(exc)


def test_uvc_absent_device_names_the_reason(bus: FakeV4L2Bus) -> None:
    with pytest.raises(SourceError) as exc:
        UVCY16Source(9).open()
    message = assert_one_line(exc)
    assert message.startswith("thermal camera uvc:9 could not be opened: ") and message.endswith(HINT)


def test_uvc_rejects_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="expected one of raw-counts, tlinear-centikelvin, got 'kelvin'"):
        UVCY16Source(0, encoding="kelvin")


# -- OpenCV visible -----------------------------------------------------------------------------------


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "walk.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert writer.isOpened()
    for level in (20, 80, 140, 200):
        writer.write(np.full((48, 64, 3), level, np.uint8))
    writer.release()
    return path


def test_visible_file_plays_on_its_own_time_line_and_finishes(video_file: Path) -> None:
    with OpenCVVisibleSource(str(video_file)) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
        assert source.finished
        assert source.read() is None
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [round(float(f.image.mean()) / 10) * 10 for f in frames] == [20, 80, 140, 200]


def test_visible_camera_frames_use_the_clock_and_the_asked_format(bus: FakeV4L2Bus) -> None:
    bus.plug(0, webcam())
    source = OpenCVVisibleSource(0, width=64, height=48, fps=30, clock=ticking_clock(5.0, 0.5))
    with source:
        frames = [source.read() for _ in range(2)]
        info = source.describe()
    assert [(f.t, f.index) for f in frames] == [(5.0, 0), (5.5, 1)]
    assert frames[1].image.shape == (48, 64, 3) and frames[1].image[0, 0, 0] == 1
    assert info["kind"] == "device" and info["width"] == 64 and info["fps"] == 30
    (capture,) = bus.captures_of(0)
    assert {p for p, _ in capture.set_calls} == {
        cv2.CAP_PROP_FRAME_WIDTH,
        cv2.CAP_PROP_FRAME_HEIGHT,
        cv2.CAP_PROP_FPS,
    }


def test_visible_camera_that_stops_answering_is_not_finished(bus: FakeV4L2Bus) -> None:
    bus.plug(0, webcam()).stop_answering_after(0)
    source = OpenCVVisibleSource(0)
    with pytest.raises(SourceError):
        source.open()  # it dropped off the bus
    bus.cameras[0].answer_again()
    with source:
        bus.cameras[0].stop_answering_after(0)
        assert source.read() is None
        assert not source.finished


def test_visible_device_that_fails_to_open(bus: FakeV4L2Bus) -> None:
    with pytest.raises(SourceError) as exc:
        OpenCVVisibleSource(3).open()
    message = assert_one_line(exc)
    assert message.startswith("visible camera 3 could not be opened: ")
    assert message.endswith(HINT)
    if NO_V4L2:
        assert message == f"visible camera 3 could not be opened: no such device; {HINT}"


def test_visible_url_that_fails_to_open(bus: FakeV4L2Bus) -> None:
    with pytest.raises(SourceError) as exc:
        OpenCVVisibleSource("rtsp://192.0.2.1/stream").open()
    assert assert_one_line(exc) == (
        "visible stream rtsp://192.0.2.1/stream could not be opened: "
        "no answer, or not a stream OpenCV can decode"
    )


def test_visible_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceError) as exc:
        OpenCVVisibleSource(str(missing)).open()
    assert assert_one_line(exc) == f"visible video file {missing} could not be opened: no such file"


def test_visible_file_that_is_not_a_video(tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp4"
    junk.write_text("not a video")
    with pytest.raises(SourceError, match="not a video OpenCV can decode"):
        OpenCVVisibleSource(str(junk)).open()


@pytest.mark.parametrize("content", [
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 8,  # an MP4 cut before its index
    b"",  # an empty file
])
def test_an_unreadable_video_is_one_line_on_stderr_without_ffmpegs_own(tmp_path: Path, content: bytes) -> None:
    """FFmpeg printed "[mov,mp4,... @ 0x...] moov atom not found" above the station's own line.

    A fresh process, because FFmpeg's log level is read once, when the process opens its first capture;
    and without OPENCV_FFMPEG_LOGLEVEL in its environment, so it is the station that quietens FFmpeg.
    """
    corrupt = tmp_path / "door.mp4"
    corrupt.write_bytes(content)
    demo = Path(__file__).resolve().parents[1] / "recordings" / "demo" / "calibration.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    done = subprocess.run(
        [sys.executable, "-m", "station.cli.main", "run", "--visible", str(corrupt), "--thermal", "sim:1",
         "--calibration", str(demo), "--headless", "--db", str(tmp_path / "s.db")],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"Error: visible video file {corrupt} could not be opened: not a video OpenCV can decode"
    ], done.stderr
    assert done.stdout == ""


# -- registry -----------------------------------------------------------------------------------------


def test_registry_builds_each_kind_without_opening(bus: FakeV4L2Bus, video_file: Path) -> None:
    cases = {
        ("0", "visible"): (OpenCVVisibleSource, "0"),
        ("rtsp://cam/live", "visible"): (OpenCVVisibleSource, "rtsp://cam/live"),
        (str(video_file), "visible"): (OpenCVVisibleSource, str(video_file)),
        ("lepton", "thermal"): (LeptonSource, "lepton"),
        ("lepton:1", "thermal"): (LeptonSource, "lepton:1"),
        ("boson", "thermal"): (BosonSource, "boson"),
        ("boson:2", "thermal"): (BosonSource, "boson:2"),
        ("uvc:3", "thermal"): (UVCY16Source, "uvc:3"),
        ("4", "thermal"): (UVCY16Source, "uvc:4"),
    }
    for (spec, stream), (kind, name) in cases.items():
        source = open_source(spec, stream)
        assert type(source) is kind and source.name == name and source.stream == stream, spec
    assert bus.captures == [], "open_source must not open anything"


@pytest.mark.parametrize(
    ("spec", "stream", "message"),
    [
        (
            "lepon",
            "thermal",
            "unknown thermal source 'lepon': expected lepton, lepton:N, boson, boson:N, uvc:N, "
            "sim, sim:SEED, sim:SEED:boson or a device index",
        ),
        (
            "/no/such/file.mp4",
            "visible",
            "unknown visible source '/no/such/file.mp4': expected a device index, "
            "a URL such as rtsp://host/stream, an existing video file, sim, sim:SEED or sim:SEED:boson",
        ),
        ("uvc", "thermal", "source 'uvc:N': expected a device index N after 'uvc:', got nothing"),
        ("lepton:x", "thermal", "source 'lepton:N': expected a device index N after 'lepton:', got 'x'"),
        ("lepton", "visible", "'lepton' is a thermal source, not a visible one"),
        ("rtsp://cam/live", "thermal", "unknown thermal source 'rtsp://cam/live': expected lepton,"),
    ],
)
def test_registry_errors_name_what_exists(spec: str, stream: str, message: str) -> None:
    with pytest.raises(SourceError) as exc:
        open_source(spec, stream)  # type: ignore[arg-type]
    assert assert_one_line(exc).startswith(message)


def test_registry_kinds_table_drives_parsing_and_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    kind = SourceKind(("thermal",), ("demo",), lambda arg, stream: made.append(arg) or "x")
    monkeypatch.setitem(SOURCE_KINDS, "demo", kind)
    assert open_source("demo:abc", "thermal") == "x" and made == ["abc"]
    with pytest.raises(SourceError, match=r"sim:SEED:boson, demo or a device index$"):
        open_source("nope", "thermal")


@pytest.mark.skipif(not NO_V4L2, reason="needs a Linux machine without Video4Linux")
def test_discover_cameras_is_quick_and_quiet_without_cameras(
    no_serial_ports: None, capfd: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    with no_warnings():
        assert discover_cameras() == []
    assert time.monotonic() - start < 1.0
    assert capfd.readouterr() == ("", "")


def test_list_video_devices_reads_names_and_skips_metadata_nodes(tmp_path: Path) -> None:
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    for node, name, index in [("video0", "PureThermal (fw:v1.3.0)", "0"), ("video1", "PureThermal", "1")]:
        (sysfs / node).mkdir(parents=True)
        (sysfs / node / "name").write_text(name + "\n")
        (sysfs / node / "index").write_text(index + "\n")
    dev.mkdir()
    for node in ("video0", "video1", "video10"):
        (dev / node).touch()
    assert list_video_devices(sysfs=sysfs, dev=dev) == [
        {"device": 0, "path": str(dev / "video0"), "name": "PureThermal (fw:v1.3.0)"},
        {"device": 10, "path": str(dev / "video10"), "name": "video10"},
    ]
