"""The calibration-target simulator: plain OpenCV finds its boards where its truth says they are.

Everything here renders real frames through the screening simulator's rig; nothing is mocked. The
detectors are the ones a technician's tool would run: ``cv2.aruco.ArucoDetector`` on the visible grey
image and on the inverted 8-bit thermal image (the heated print is warm, so inverting it makes it dark
on a light board like the paper), and ``cv2.findChessboardCornersSB``.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from station.acquire.recording import Recording
from station.cli.main import main
from station.profile.schema import CalibrationProfile
from station.sim import targets
from station.sim.sensors import KELVIN
from station.sim.simulator import Simulation, SimulationConfig
from station.sim.targets import TargetConfig, TargetSimulation, write_target_recording

MIN_MARKER_SHARE = 0.8
MAX_MEDIAN_ERROR_PX = 0.5
CASES = [(kind, camera) for kind in targets.KINDS for camera in ("lepton", "boson")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{kind}-{camera}" for kind, camera in CASES])
def session(request) -> TargetSimulation:
    """Three poses: the nearest, the middle and the farthest of the planned range."""
    kind, camera = request.param
    return TargetSimulation(TargetConfig(kind=kind, thermal_camera=camera, poses=3, seed=5))


def thermal_grey(image: np.ndarray) -> np.ndarray:
    """The thermal frame as a detector sees it: stretched to 8 bits and inverted (warm print dark)."""
    stretched = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX)
    return 255 - stretched.astype(np.uint8)


def detect_aruco(grey: np.ndarray) -> dict[int, np.ndarray]:
    """Feature id -> detected pixel, for every corner of every marker found."""
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.relativeCornerRefinmentWinSize = 0.5  # about one cell: small Lepton cells need a small window
    corners, ids, _ = cv2.aruco.ArucoDetector(targets.aruco_dictionary(), params).detectMarkers(grey)
    found = {}
    for quad, marker_id in zip(corners, [] if ids is None else ids.ravel(), strict=True):
        for corner in range(4):
            found[int(marker_id) * 4 + corner] = quad[0, corner]
    return found


def detect_checkerboard(grey: np.ndarray) -> np.ndarray | None:
    inner = (targets.CHECKER_SQUARES[0] - 1, targets.CHECKER_SQUARES[1] - 1)
    # ACCURACY upsamples first: the Lepton's squares are only 4.5 pixels at the far end.
    ok, corners = cv2.findChessboardCornersSB(grey, inner, flags=cv2.CALIB_CB_ACCURACY)
    return corners.reshape(-1, 2) if ok else None


def _images(sim: TargetSimulation, index: int) -> dict[str, np.ndarray]:
    return {
        "points_visible": cv2.cvtColor(sim.render_visible(index).image, cv2.COLOR_BGR2GRAY),
        "points_thermal": thermal_grey(sim.render_thermal(index).image),
    }


# ------------------------------------------------------------------------------------------ detection
def test_opencv_finds_the_board_in_both_cameras_where_the_truth_puts_it(session):
    for index in range(len(session.poses)):
        record = session.truth_record(index)
        for key, grey in _images(session, index).items():
            truth = np.asarray(record[key])
            where = f"pose {index} at {record['distance_m']:.2f} m, {key}"
            if session.config.kind == "aruco":
                found = detect_aruco(grey)
                markers = len(record["point_ids"]) // 4
                assert len(found) / 4 >= MIN_MARKER_SHARE * markers, where
                rows = [k for k, pid in enumerate(record["point_ids"]) if pid in found]
                detected = np.array([found[record["point_ids"][k]] for k in rows])
                errors = np.linalg.norm(detected - truth[rows], axis=1)
            else:
                detected = detect_checkerboard(grey)
                assert detected is not None, where
                errors = np.linalg.norm(detected - truth, axis=1)
            assert np.median(errors) <= MAX_MEDIAN_ERROR_PX, f"{where}: median error {np.median(errors):.2f} px"


# ------------------------------------------------------------------------------------------ truth
def test_thermal_truth_is_the_rig_mapping_of_the_visible_truth(session):
    for record in session.truth_records():
        world = np.asarray(record["points_world"])
        visible = np.asarray(record["points_visible"])
        assert np.allclose(session.rig.visible.project(world), visible, atol=1e-3)
        mapped = session.rig.visible_to_thermal(visible, world[:, 2])
        assert np.allclose(mapped, np.asarray(record["points_thermal"]), atol=1e-3)
        assert len(record["point_ids"]) == len(world) == len(visible)


def test_poses_span_the_range_tilted_and_wholly_in_both_views(session):
    near, far = session.distance_range_m
    distances = [r["distance_m"] for r in session.truth_records()]
    assert distances[0] == pytest.approx(near) and distances[-1] == pytest.approx(far)
    cfg = session.config
    for pose in session.poses:
        assert abs(pose.yaw_deg) <= cfg.max_tilt_deg and abs(pose.pitch_deg) <= cfg.max_tilt_deg
        assert targets.fits(session.rig, pose.to_world(session.board.outline_m, session.board.size_m))


def test_the_lepton_keeps_aruco_poses_near_enough_to_resolve_its_cells():
    lepton = TargetSimulation(TargetConfig(kind="aruco", thermal_camera="lepton", poses=2))
    boson = TargetSimulation(TargetConfig(kind="aruco", thermal_camera="boson", poses=2))
    assert 1.2 <= lepton.distance_range_m[1] <= 1.35
    assert boson.distance_range_m == (0.8, 2.2)
    far = lepton.poses[-1]
    cell_px = lepton.rig.thermal.focal_px * targets.ARUCO_CELL_M / far.centre_m[2]
    assert cell_px >= targets.MIN_FEATURE_PX["aruco"]


def test_the_aruco_truth_uses_opencvs_own_board_geometry():
    board = targets.aruco_board()
    grid = np.asarray(targets.aruco_grid().getObjPoints(), np.float64)[:, :, :2].reshape(-1, 2)
    assert np.allclose(board.points_m, grid + targets.ARUCO_MARGIN_CELLS * targets.ARUCO_CELL_M, atol=1e-6)
    assert board.point_ids == tuple(range(16))


def test_the_shared_rig_is_the_screening_simulators(session):
    screening = Simulation(SimulationConfig(people=1, thermal_camera=session.config.thermal_camera))
    for name in ("visible", "thermal"):
        mine, theirs = getattr(session.rig, name), getattr(screening.rig, name)
        assert np.array_equal(mine.K, theirs.K) and np.array_equal(mine.rotation, theirs.rotation)
        assert np.array_equal(mine.translation, theirs.translation)


def test_the_heated_print_reads_near_its_temperature_in_the_sensors_encoding(session):
    image = session.render_thermal(0).image
    sensor = session.sensor
    if sensor.encoding == "tlinear-centikelvin":
        celsius = image / 100.0 - KELVIN
    else:
        celsius = sensor.planck.celsius(image.astype(np.float64) - sensor.planck.O)
    assert image.dtype == np.uint16
    assert 36.5 <= np.percentile(celsius, 99.5) <= targets.HEATED_C
    assert abs(np.median(celsius) - session.ambient_c) < 2.0


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_renders_identical_frames_in_any_order():
    config = TargetConfig(kind="checkerboard", thermal_camera="boson", poses=3, seed=9)
    first, again = TargetSimulation(config), TargetSimulation(config)
    later_first = {stream: first.render(stream, 2).image.copy() for stream in ("visible", "thermal")}
    for stream, index in [("thermal", 0), ("visible", 1), ("thermal", 2), ("visible", 2)]:
        assert np.array_equal(again.render(stream, index).image, first.render(stream, index).image), (stream, index)
    assert all(np.array_equal(first.render(s, 2).image, image) for s, image in later_first.items())
    assert again.truth_records() == first.truth_records()
    assert again.profile().to_toml() == first.profile().to_toml()
    assert TargetSimulation(TargetConfig(kind="checkerboard", poses=3, seed=10)).poses != first.poses


# ------------------------------------------------------------------------------------------ recording
def test_a_target_recording_opens_and_round_trips_its_truth(tmp_path):
    sim = TargetSimulation(TargetConfig(kind="aruco", thermal_camera="boson", poses=2, seed=3))
    out = write_target_recording(sim, tmp_path / "board", visible_file="visible.mkv")
    rec = Recording.open(out)
    assert rec.source == "simulated" and rec.count("thermal") == rec.count("visible") == 2
    assert rec.thermal.encoding == "raw-counts" and rec.thermal.planck == sim.sensor.planck.as_dict()
    assert rec.truth() == json.loads(json.dumps(sim.truth_records()))
    assert list(rec.times("thermal")) == [0.0, 1.0] and list(rec.times("visible")) == [0.004, 1.004]
    for frame in rec.frames("thermal"):
        assert np.array_equal(frame.image, sim.render_thermal(frame.index).image)
    for frame in rec.frames("visible"):  # FFV1 is lossless
        assert np.array_equal(frame.image, sim.render_visible(frame.index).image)
    profile = CalibrationProfile.from_toml(rec.calibration_text())
    assert profile.registration.reference_distance_m == targets.REFERENCE_DISTANCE_M
    assert (profile.radiometry.gain, profile.radiometry.offset_c) == (1.0, 0.0)
    described = rec.extra["simulation"]
    assert described["target"] == "aruco" and described["board"]["dictionary"] == "DICT_ARUCO_ORIGINAL"
    assert described["config"]["seed"] == 3


def test_simulate_target_writes_a_target_recording(tmp_path):
    out = tmp_path / "board"
    result = CliRunner().invoke(main, ["simulate", str(out), "--target", "checkerboard", "--poses", "2"])
    assert result.exit_code == 0, result.output
    rec = Recording.open(out)
    assert rec.extra["simulation"]["target"] == "checkerboard" and len(rec.truth()) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--target", "aruco", "--people", "3"], "--people"), (["--poses", "3"], "--poses")],
)
def test_simulate_refuses_options_that_do_not_apply(tmp_path, args, message):
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "x"), *args])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output


@pytest.mark.parametrize(
    "bad",
    [{"kind": "charuco"}, {"thermal_camera": "tau"}, {"poses": 0}, {"min_distance_m": 2.0, "max_distance_m": 1.0},
     {"max_tilt_deg": 60.0}],
)
def test_config_refuses_bad_values_in_one_line(bad):
    with pytest.raises(ValueError) as excinfo:
        TargetConfig(**bad)
    assert "\n" not in str(excinfo.value) and next(iter(bad)) in str(excinfo.value)
