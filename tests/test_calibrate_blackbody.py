"""Radiometric calibration against a blackbody: the science on synthetic frames, the commands on real
simulated recordings (a sensor reading +0.8 °C hot), and one clear line for every bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from calibration.blackbody import (
    find_blackbody_roi,
    fit_radiometry,
    read_blackbody,
    verify_reading,
)
from calibration.cli.blackbody import EXIT_VERIFY_FAILED
from calibration.cli.main import calibrate  # the two commands as the station mounts them
from station.acquire.recording import Recording
from station.log.store import EventStore
from station.profile.history import ProfileStore
from station.profile.schema import Blackbody, CalibrationProfile, Radiometry, utc_now_iso
from station.sim.simulator import Simulation, SimulationConfig, write_recording

SENSOR_OFFSET_C = 0.8


def _run(*args: object):
    return CliRunner().invoke(calibrate, [str(a) for a in args])


# ------------------------------------------------------------------------------------- synthetic frames
def _scene(n_frames: int = 40, *, disc_c: float = 35.6, disc_radius: float = 8.0, seed: int = 0,
           strip: bool = False, square_px: int = 0) -> tuple[np.ndarray, tuple[float, float]]:
    """A 120x160 room at 22 °C with a round blackbody (blurred rim) and a warm 'person' walking across.

    The person is as uniform as the blackbody and near its temperature, so only its motion tells them
    apart. ``square_px`` replaces the disc by a square emitter of that side (sharp edges).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float64)
    centre = (130.0, 30.0)
    r = np.hypot(xx - centre[0], yy - centre[1])
    rim = np.clip(disc_radius + 0.5 - r, 0.0, 1.0)  # a one-pixel blurred edge
    if square_px:
        rim = np.zeros_like(rim)
        rim[27 : 27 + square_px, 127 : 127 + square_px] = 1.0
    frames = []
    for k in range(n_frames):
        frame = 22.0 + 0.02 * xx / 160 + rim * (disc_c - 22.0)
        px = 10 + 2 * k  # walks right, two pixels a frame
        frame[50:100, px : px + 24] = 35.3
        if strip:
            frame[100:102, 20:120] = 35.0  # a thin warm radiator pipe, uniform along its length only
        frames.append(frame + rng.normal(0.0, 0.05, frame.shape))
    return np.stack(frames), centre


def test_the_blackbody_is_found_and_not_the_person_walking_past():
    frames, (cx, cy) = _scene()
    x1, y1, x2, y2 = find_blackbody_roi(frames, 35.0)
    assert x2 - x1 >= 3 and y2 - y1 >= 3
    corners = np.array([[x1, y1], [x2 - 1, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=float)
    assert np.all(np.hypot(corners[:, 0] - cx, corners[:, 1] - cy) <= 8.0 - 1.0), "ROI must stay off the rim"
    read = read_blackbody(frames, (x1, y1, x2, y2))
    assert read.median_c == pytest.approx(35.6, abs=0.02)
    assert read.spread_c < 0.2 and read.frames == len(frames)


def test_a_thin_warm_strip_does_not_hide_the_blackbody():
    frames, (cx, cy) = _scene(strip=True)
    x1, y1, x2, y2 = find_blackbody_roi(frames, 35.0)
    assert x1 <= cx < x2 and y1 <= cy < y2


@pytest.mark.parametrize(
    ("scene", "message"),
    [
        ({"square_px": 6}, r"leaves only 2x2 px once its edges are excluded \(need 3x3\): move the blackbody closer"),
        ({"disc_radius": 2.5}, r"no uniform patch reads within ±3 °C of the 35 °C set point.*move it closer"),
    ],
)
def test_a_blackbody_too_small_to_read_says_what_to_try(scene, message):
    frames, _ = _scene(**scene)
    with pytest.raises(ValueError, match=message) as info:
        find_blackbody_roi(frames, 35.0)
    assert "\n" not in str(info.value) and "--roi X1,Y1,X2,Y2" in str(info.value)


def test_a_square_emitter_just_big_enough_gives_a_3x3_roi_inside_it():
    frames, _ = _scene(square_px=7)
    assert find_blackbody_roi(frames, 35.0) == (129, 29, 132, 32)


def test_no_warm_patch_near_the_set_point_says_what_to_try():
    frames, _ = _scene()
    with pytest.raises(ValueError, match=r"within ±3 °C of the 45 °C set point.*--roi"):
        find_blackbody_roi(frames, 45.0)


def test_a_hand_in_front_of_the_blackbody_for_a_few_frames_does_not_move_the_reading():
    frames, _ = _scene()
    roi = find_blackbody_roi(frames, 35.0)
    x1, y1, x2, y2 = roi
    frames[:6, y1:y2, x1:x2] = 33.0  # six of forty frames occluded
    assert read_blackbody(frames, roi).median_c == pytest.approx(35.6, abs=0.02)


def test_read_blackbody_refuses_a_roi_outside_the_frame():
    frames, _ = _scene(n_frames=3)
    with pytest.raises(ValueError, match="roi"):
        read_blackbody(frames, (150, 10, 170, 20))


# ------------------------------------------------------------------------------------- fitting
BASE = Radiometry(gain=1.1, offset_c=-3.0, emissivity=0.97)


def test_two_set_points_recover_a_known_gain_and_offset():
    sensor_gain, sensor_offset = 1.04, 0.7  # the sensor reads sensor_gain * true + sensor_offset
    points = [(sp, sensor_gain * sp + sensor_offset) for sp in (30.0, 40.0)]
    fit = fit_radiometry(points, BASE)
    assert fit.radiometry.gain == pytest.approx(1 / sensor_gain, abs=1e-9)
    assert fit.radiometry.offset_c == pytest.approx(-sensor_offset / sensor_gain, abs=1e-9)
    assert fit.radiometry.emissivity == BASE.emissivity and not fit.offset_only
    assert max(abs(r) for r in fit.residuals_c) < 1e-9


def test_three_noisy_points_are_fitted_by_least_squares_with_their_residuals():
    points = [(30.0, 30.82), (35.0, 35.78), (40.0, 40.81)]
    fit = fit_radiometry(points, BASE)
    measured = np.array([m for _, m in points])
    gain, offset = np.polyfit(measured, [s for s, _ in points], 1)
    assert fit.radiometry.gain == pytest.approx(gain) and fit.radiometry.offset_c == pytest.approx(offset)
    expected = gain * measured + offset - np.array([30.0, 35.0, 40.0])
    assert fit.residuals_c == pytest.approx(tuple(expected))
    assert sum(fit.residuals_c) == pytest.approx(0.0, abs=1e-9)


def test_one_set_point_fits_an_offset_only_with_gain_one():
    fit = fit_radiometry([(35.0, 35.8)], BASE)
    assert fit.offset_only
    assert fit.radiometry == Radiometry(gain=1.0, offset_c=pytest.approx(-0.8), emissivity=0.97)
    assert fit.residuals_c == (0.0,)


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([], "no blackbody readings"),
        ([(35.0, math.nan)], "not a number"),
        ([(math.inf, 35.0)], "finite"),
        ([(55.0, 55.2)], "expected 20 to 50 °C"),
        ([(15.0, 15.2)], "expected 20 to 50 °C"),
        ([(35.0, 35.8), (35.0, 35.7)], "all 2 readings are at set point 35 °C"),
        ([(35.0, 35.8), (35.4, 36.2)], "within 1 °C of each other"),
        ([(30.0, 39.9), (40.0, 30.1)], "implausible"),
        ([(35.0, 3.58)], "more than 10 °C off"),
    ],
)
def test_bad_points_are_refused_in_one_line(points, message):
    with pytest.raises(ValueError, match=message) as info:
        fit_radiometry(points, BASE)
    assert "\n" not in str(info.value)


def _profile(**radiometry: float) -> CalibrationProfile:
    return CalibrationProfile.from_toml(
        """
schema_version = 1
station_id = "t"
created = "2026-11-23T10:00:00Z"
[registration]
homography = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
reference_distance_m = 1.0
visible_focal_px = 500.0
parallax_px_m = [1.0, 0.0]
rms_error_px = 0.1
[radiometry]
gain = 1.0
offset_c = -0.8
emissivity = 0.98
[blackbody]
roi = [10, 10, 16, 16]
setpoint_c = 35.0
tolerance_c = 0.3
"""
    )


def test_verify_reading_applies_gain_and_offset_and_judges_the_tolerance():
    profile = _profile()
    ok = verify_reading(35.85, profile)
    assert ok.passed and ok.reading_c == pytest.approx(35.05) and ok.error_c == pytest.approx(0.05)
    bad = verify_reading(36.2, profile)
    assert not bad.passed and bad.error_c == pytest.approx(0.4) and bad.tolerance_c == 0.3
    assert verify_reading(36.2, profile, tolerance_c=0.5).passed
    with pytest.raises(ValueError, match=r"no \[blackbody\] table"):
        verify_reading(35.8, replace(profile, blackbody=None))


# ------------------------------------------------------------------------------------- real recordings
def _simulate(out: Path, **config) -> Simulation:
    sim = Simulation(SimulationConfig(people=1, drift_c=0.0, sensor_offset_c=SENSOR_OFFSET_C, **config))
    write_recording(sim, out)
    return sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict[str, object]:
    """A simulated recording whose sensor reads +0.8 °C hot, another of the same camera (another seed),
    and two base profiles: uncalibrated without a blackbody, and uncalibrated with the true blackbody."""
    root = tmp_path_factory.mktemp("blackbody")
    simulation = _simulate(root / "rec", seed=5)
    _simulate(root / "rec2", seed=6)
    true = simulation.profile()
    uncalibrated = replace(true, created=utc_now_iso(), radiometry=Radiometry(1.0, 0.0, true.radiometry.emissivity))
    replace(uncalibrated, blackbody=None).save(root / "base.toml")
    uncalibrated.save(root / "uncal.toml")
    return {"root": root, "rec": root / "rec", "rec2": root / "rec2", "base": root / "base.toml",
            "uncal": root / "uncal.toml", "true": true}


def _verify_detail(db: Path) -> tuple[str, dict]:
    store = EventStore(db)
    try:
        row = store.system_events()[-1]
    finally:
        store.close()
    return row["kind"], json.loads(row["detail"])


def test_blackbody_then_verify_brings_the_error_under_a_tenth_of_a_degree(sim, tmp_path):
    profiles, db = tmp_path / "profiles", tmp_path / "station.db"
    result = _run("blackbody", "--setpoint", 35, "--recording", sim["rec"], "--profile", sim["base"],
                  "--technician", "ada", "--profiles", profiles)
    assert result.exit_code == 0, result.output
    assert "offset only (one set point)" in result.output and "(active)" in result.output

    stored = ProfileStore(profiles)
    profile = stored.active()
    assert profile is not None and profile.technician == "ada"
    assert profile.radiometry.gain == 1.0
    assert profile.radiometry.offset_c == pytest.approx(-SENSOR_OFFSET_C, abs=0.05)
    assert profile.registration == sim["true"].registration  # kept from the base
    bb = profile.blackbody
    assert bb is not None and bb.setpoint_c == 35.0 and bb.tolerance_c == 0.3
    x1, y1, x2, y2 = bb.roi
    tx1, ty1, tx2, ty2 = sim["true"].blackbody.roi
    assert x2 - x1 >= 3 and y2 - y1 >= 3 and x1 < tx2 and tx1 < x2 and y1 < ty2 and ty1 < y2

    for recording in (sim["rec"], sim["rec2"]):  # the same recording, and another of the same camera
        result = _run("verify", "--recording", recording, "--profiles", profiles, "--db", db)
        assert result.exit_code == 0, result.output
        assert result.output.startswith("PASS")
        kind, detail = _verify_detail(db)
        assert kind == "calibration_verified"
        assert abs(detail["error_c"]) < 0.1, detail
        assert set(detail) == {"profile", "setpoint_c", "reading_c", "error_c", "tolerance_c", "age_days"}
        assert detail["profile"] == stored.active_path().name and detail["age_days"] < 0.01


def test_verify_on_the_uncalibrated_profile_fails_with_exit_3(sim, tmp_path):
    db = tmp_path / "station.db"
    result = _run("verify", "--recording", sim["rec"], "--profile", sim["uncal"], "--db", db)
    assert result.exit_code == EXIT_VERIFY_FAILED == 3, result.output
    assert result.output.startswith("FAIL") and "Error" not in result.output
    kind, detail = _verify_detail(db)
    assert kind == "calibration_verify_failed"
    assert detail["error_c"] == pytest.approx(SENSOR_OFFSET_C, abs=0.05)
    assert detail["profile"] == "uncal.toml" and detail["tolerance_c"] == 0.3


def test_verify_logs_into_the_stations_own_store_by_default(sim):
    from station.headless import default_db_path

    result = _run("verify", "--recording", sim["rec"], "--profile", sim["uncal"], "--tolerance", 1.0)
    assert result.exit_code == 0, result.output
    kind, detail = _verify_detail(default_db_path())
    assert kind == "calibration_verified" and detail["tolerance_c"] == 1.0


def test_two_set_points_fit_the_sensors_gain(tmp_path):
    """Recordings of the blackbody at 32 and 38 °C with a sensor that reads 3 % high plus 0.8 °C."""
    sims = [_simulate(tmp_path / f"rec{sp}", seed=9, blackbody_setpoint_c=sp, sensor_gain=1.03) for sp in (32, 38)]
    base = replace(sims[1].profile(), radiometry=Radiometry(), blackbody=None)
    base.save(tmp_path / "base.toml")
    result = _run("blackbody", "--setpoint", 32, "--recording", tmp_path / "rec32", "--setpoint", 38,
                  "--recording", tmp_path / "rec38", "--profile", tmp_path / "base.toml", "--technician", "ada",
                  "--tolerance", 0.25, "--profiles", tmp_path / "profiles")
    assert result.exit_code == 0, result.output
    assert "gain and offset" in result.output
    profile = ProfileStore(tmp_path / "profiles").active()
    truth = sims[1].profile().radiometry
    assert profile.radiometry.gain == pytest.approx(truth.gain, abs=0.005)
    assert profile.radiometry.offset_c == pytest.approx(truth.offset_c, abs=0.2)
    # the in-scene blackbody is the one at the last set point given
    assert profile.blackbody.setpoint_c == 38.0 and profile.blackbody.tolerance_c == 0.25
    result = _run("verify", "--recording", tmp_path / "rec38", "--profiles", tmp_path / "profiles",
                  "--db", tmp_path / "s.db")
    assert result.exit_code == 0, result.output
    assert abs(_verify_detail(tmp_path / "s.db")[1]["error_c"]) < 0.1
    # the blackbody left at 32 °C is not the one the profile expects: a result (FAIL), not a fault
    result = _run("verify", "--recording", tmp_path / "rec32", "--profiles", tmp_path / "profiles",
                  "--db", tmp_path / "s.db")
    assert result.exit_code == 3 and _verify_detail(tmp_path / "s.db")[1]["error_c"] == pytest.approx(-6, abs=0.1)


def test_entered_readings_fit_and_verify(sim, tmp_path):
    profiles, db = tmp_path / "profiles", tmp_path / "s.db"
    result = _run("blackbody", "--setpoint", 35, "--reading", 35.8, "--roi", "133,18,139,23", "--profile", sim["base"],
                  "--technician", "Ada Lovelace", "--profiles", profiles)
    assert result.exit_code == 0, result.output
    path = ProfileStore(profiles).active_path()
    assert path.name.endswith("-ada-lovelace.toml")
    profile = CalibrationProfile.load(path)
    assert profile.radiometry.offset_c == pytest.approx(-0.8) and profile.blackbody.roi == (133, 18, 139, 23)
    result = _run("verify", "--reading", 35.85, "--profiles", profiles, "--db", db)
    assert result.exit_code == 0 and "error +0.050" in result.output, result.output
    result = _run("verify", "--reading", 36.4, "--profiles", profiles, "--db", db)
    assert result.exit_code == 3 and result.output.startswith("FAIL"), result.output


def test_a_second_calibration_keeps_the_first_in_the_history(sim, tmp_path):
    profiles = tmp_path / "profiles"
    for reading in (35.8, 35.7):
        result = _run("blackbody", "--setpoint", 35, "--reading", reading, "--profile", sim["uncal"],
                      "--technician", "ada", "--profiles", profiles)
        assert result.exit_code == 0, result.output
    history = ProfileStore(profiles).history()  # both may be made in one second: compare as a mapping
    offsets = {round(h.profile.radiometry.offset_c, 2): h for h in history}
    assert sorted(offsets) == [-0.8, -0.7]
    assert offsets[-0.7].active and not offsets[-0.8].active
    assert offsets[-0.7].profile.blackbody.roi == sim["true"].blackbody.roi  # the base profile's ROI


def test_live_calibration_and_verification_on_the_simulated_camera(sim, tmp_path):
    profiles, db = tmp_path / "profiles", tmp_path / "s.db"
    result = _run("blackbody", "--setpoint", 35, "--live", "--thermal", "sim:4", "--seconds", 1, "--profile",
                  sim["base"], "--technician", "ada", "--profiles", profiles)
    assert result.exit_code == 0, result.output
    assert "[thermal sim:4]" in result.output
    result = _run("verify", "--live", "--thermal", "sim:4", "--seconds", 1, "--profiles", profiles, "--db", db)
    assert result.exit_code == 0, result.output
    assert abs(_verify_detail(db)[1]["error_c"]) < 0.1


# ------------------------------------------------------------------------------------- bad inputs
def test_a_missing_recording_is_one_line(sim, tmp_path):
    line = one_line_error(_run("blackbody", "--setpoint", 35, "--recording", tmp_path / "nope", "--profile",
                                sim["base"], "--technician", "ada", "--profiles", tmp_path))
    assert "nope: recording directory does not exist" in line
    line = one_line_error(_run("verify", "--recording", tmp_path / "nope", "--profile", sim["uncal"],
                                "--db", tmp_path / "s.db"))
    assert "recording directory does not exist" in line


def test_a_corrupt_profile_is_one_line_naming_the_key(sim, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(sim["uncal"].read_text().replace("offset_c =", "offset =", 1))
    line = one_line_error(_run("blackbody", "--setpoint", 35, "--recording", sim["rec"], "--profile", broken,
                                "--technician", "ada", "--profiles", tmp_path / "p"))
    assert "broken.toml: missing key [radiometry] offset_c" in line
    line = one_line_error(_run("verify", "--reading", 35.8, "--profile", broken, "--db", tmp_path / "s.db"))
    assert "missing key [radiometry] offset_c" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--setpoint", 35, "--setpoint", 36, "--recording", "REC"], "2 --setpoint for 1 --recording"),
        (["--setpoint", 35, "--reading", 35.8, "--reading", 36.0], "1 --setpoint for 2 --reading"),
        (["--setpoint", 35, "--setpoint", 36, "--live", "--thermal", "sim"], "2 --setpoint for 1 --live session"),
    ],
)
def test_set_points_must_pair_with_the_inputs(sim, tmp_path, args, message):
    args = [sim["rec"] if a == "REC" else a for a in args]
    line = one_line_error(_run("blackbody", *args, "--profile", sim["base"], "--technician", "ada",
                                "--profiles", tmp_path))
    assert message in line and "one set point per" in line


def test_no_blackbody_found_is_one_line_saying_what_to_try(sim, tmp_path):
    line = one_line_error(_run("blackbody", "--setpoint", 45, "--recording", sim["rec"], "--profile", sim["base"],
                                "--technician", "ada", "--profiles", tmp_path))
    assert "within ±3 °C of the 45 °C set point" in line and "--roi" in line
    assert not (tmp_path / "active").exists()


def test_a_roi_off_the_emitter_is_refused(sim, tmp_path):
    line = one_line_error(_run("blackbody", "--setpoint", 35, "--recording", sim["rec"], "--roi", "120,5,150,35",
                                "--profile", sim["base"], "--technician", "ada", "--profiles", tmp_path))
    assert "not a steady uniform emitter" in line


def test_a_profile_without_a_blackbody_cannot_be_verified(sim, tmp_path):
    line = one_line_error(_run("verify", "--recording", sim["rec"], "--profile", sim["base"],
                                "--db", tmp_path / "s.db"))
    assert "base.toml: the profile has no [blackbody] table" in line


def test_no_active_profile_is_one_line(sim, tmp_path):
    line = one_line_error(_run("verify", "--reading", 35.8, "--profiles", tmp_path / "empty",
                                "--db", tmp_path / "s.db"))
    assert "no active calibration profile" in line and "--profile FILE" in line
    line = one_line_error(_run("blackbody", "--setpoint", 35, "--reading", 35.8, "--technician", "ada",
                                "--profiles", tmp_path / "empty"))
    assert "no base profile" in line and "--profile FILE" in line


def test_entered_readings_without_a_roi_are_one_line(sim, tmp_path):
    line = one_line_error(_run("blackbody", "--setpoint", 35, "--reading", 35.8, "--profile", sim["base"],
                                "--technician", "ada", "--profiles", tmp_path))
    assert "give --roi" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--setpoint", 35], "give one of --recording DIR, --reading C or --live --thermal SRC (got none)"),
        (["--setpoint", 35, "--reading", 35.8, "--live", "--thermal", "sim"], "--reading and --live"),
        (["--setpoint", 35, "--live"], "--live needs --thermal SRC"),
        (["--setpoint", 35, "--reading", 35.8, "--thermal", "sim"], "--thermal SRC is for --live"),
        (["--setpoint", 60, "--reading", 60.5], "expected 20 to 50 °C"),
        (["--setpoint", 35, "--reading", 35.8, "--setpoint", 35, "--reading", 35.7], "a gain needs two different"),
        (["--setpoint", 35, "--live", "--thermal", "uvc:99"], "uvc:99 could not be opened"),
        (["--setpoint", 35, "--live", "--thermal", "nosuch"], "unknown thermal source 'nosuch'"),
        (["--setpoint", 35, "--reading", 35.8, "--technician", " "], "--technician"),
    ],
)
def test_bad_blackbody_inputs_are_one_line(sim, tmp_path, args, message):
    if "--technician" not in args:
        args = [*args, "--technician", "ada"]
    line = one_line_error(_run("blackbody", *args, "--profile", sim["uncal"], "--profiles", tmp_path))
    assert message in line


def test_verify_with_an_unusable_db_is_one_line(sim, tmp_path):
    line = one_line_error(_run("verify", "--reading", 35.8, "--profile", sim["uncal"],
                                "--db", tmp_path / "missing" / "s.db"))
    assert "does not exist" in line


def test_typos_are_click_usage_errors():
    result = _run("blackbody", "--setpiont", 35, "--reading", 35.8, "--technician", "ada")
    assert result.exit_code == 2 and "No such option '--setpiont'" in result.output
    assert "'--setpoint'" in result.output and "Traceback" not in result.output
    result = _run("verify", "--reading", 35.8, "--roi", "1,2,3")
    assert result.exit_code == 2 and "No such option '--roi'" in result.output
    result = _run("blackbody", "--setpoint", 35, "--reading", 35.8, "--roi", "1,2,3", "--technician", "ada")
    assert result.exit_code == 2 and "expected four whole pixel numbers" in result.output
    result = _run("blackbody", "--setpoint", "warm", "--reading", 35.8, "--technician", "ada")
    assert result.exit_code == 2 and "'warm' is not a valid float" in result.output
    result = _run("blackbody", "--setpoint", 35, "--reading", 35.8)
    assert result.exit_code == 2 and "Missing option '--technician'" in result.output


def test_blackbody_table_round_trips_through_the_store(sim, tmp_path):
    """What blackbody writes is what verify and the engine read back (schema 1, read-only file)."""
    profile = replace(sim["true"], technician="ada", blackbody=Blackbody((1, 2, 5, 6), 35.0, 0.2))
    path = ProfileStore(tmp_path).save(profile)
    assert CalibrationProfile.load(path) == profile
    assert Recording.open(sim["rec"]).calibration_text() is not None


def test_a_reading_that_is_not_a_number_is_refused_as_such_not_blamed_on_the_profile(tmp_path):
    """``--reading nan`` used to reach the verification and come back as a fault of the profile file."""
    demo = Path(__file__).resolve().parents[1] / "recordings" / "demo" / "calibration.toml"
    for value, what in (("nan", "is not a number"), ("-inf", "is not a finite number"), ("NaN", "is not a number")):
        result = _run("verify", "--reading", value, "--profile", demo, "--db", tmp_path / "s.db")
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '--reading': '{value}' {what} (expected a temperature in °C" in result.output
        assert str(demo) not in result.output and "Traceback" not in result.output
        result = _run("blackbody", "--setpoint", 35, "--reading", value, "--roi", "1,2,5,6", "--technician", "ada",
                      "--profile", demo, "--profiles", tmp_path / "profiles")
        assert result.exit_code == 2 and f"'{value}' {what}" in result.output
        result = _run("blackbody", "--setpoint", value, "--reading", 35.5, "--roi", "1,2,5,6", "--technician",
                      "ada", "--profile", demo, "--profiles", tmp_path / "profiles")
        assert result.exit_code == 2 and f"Invalid value for '--setpoint': '{value}' {what}" in result.output
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "profiles").exists()
