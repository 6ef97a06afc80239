"""``station calibrate register | check-registration | show`` on the real ArUco pairs and on bad input."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from calibration.points import read_points
from calibration.registration_fit import fit_registration
from calibration.targets import TargetSpec, detect, load_image, match_pose, pair_files
from station.cli.main import main
from station.errors import ProfileError
from station.profile.history import ProfileStore
from station.profile.schema import CalibrationProfile, utc_now_iso

ARUCO_PAIRS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aruco-pairs"
ARUCO = ["--target", "aruco", "--size-mm", "50"]


@pytest.fixture(scope="module")
def pairs_dir() -> Path:
    if not (ARUCO_PAIRS / "1_visible.png").is_file():  # a fresh clone without ../shared; CI always has it
        pytest.skip(f"needs the real ArUco pairs in {ARUCO_PAIRS} (../shared/data beside the repository)")
    return ARUCO_PAIRS


def _run(*args: str, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


# ----------------------------------------------------------------------------------------- the real pairs
def test_every_real_pair_shows_the_board_to_both_cameras(pairs_dir):
    spec = TargetSpec("aruco", 0.05)
    for name, visible, thermal in pair_files([pairs_dir]):
        pose = match_pose(name, load_image(visible), load_image(thermal), spec, 665.0)
        # 12 markers of 4 corners; the motion-blurred pair 2 still gives 7 markers to both cameras
        assert len(pose.visible_px) >= 28, name
        assert 0.4 < pose.distance_m < 0.8


def test_register_on_the_real_pairs_beats_a_single_homography_on_unseen_poses(pairs_dir):
    result = _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada")
    assert result.exit_code == 0, result.output
    assert "leaving each pose out" in result.output
    store = ProfileStore()
    profile = store.active()
    assert profile is not None and profile.technician == "ada"
    # the figures the command printed are the fit's own; check them against a single pooled homography
    spec = TargetSpec("aruco", 0.05)
    poses = [match_pose(n, load_image(v), load_image(t), spec, 665.1) for n, v, t in pair_files([pairs_dir])]
    fit = fit_registration(poses, 665.1)
    assert fit.rms_px < fit.homography_rms_px * 0.8
    assert fit.lopo_rms_px < fit.homography_lopo_px * 0.9
    assert fit.lopo_rms_px < 5.5  # the reference: a pooled homography leaves ~8.6 px on unseen poses
    assert abs(profile.registration.rms_error_px - fit.rms_px) < 0.05


def test_check_registration_measures_a_profile_on_new_pairs(pairs_dir, tmp_path):
    assert _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada",
                "--out", tmp_path / "p.toml").exit_code == 0
    result = _run("calibrate", "check-registration", tmp_path / "p.toml", pairs_dir / "3_visible.png",
                  pairs_dir / "5_visible.png", *ARUCO)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("3 ") and lines[2].startswith("5 ")
    overall = float(lines[-1].split("overall: ")[1].split(" px")[0])
    assert 1.0 < overall < 4.0


def test_profiles_are_kept_and_the_active_one_is_a_pointer(pairs_dir):
    for technician in ("ada", "grace"):
        assert _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", technician).exit_code == 0
    store = ProfileStore()
    history = store.history()
    assert [s.profile.technician for s in history] == ["ada", "grace"]
    assert history[1].active and not history[0].active
    assert all(not (s.path.stat().st_mode & 0o222) for s in history)  # written once, read-only
    result = _run("calibrate", "show", "--activate", history[0].name)
    assert result.exit_code == 0, result.output
    assert f"active profile: {history[0].name}" in result.output
    assert store.active().technician == "ada"
    assert "history (2 profiles" in result.output


def test_a_store_never_overwrites_a_profile(tmp_path):
    profile = CalibrationProfile.load(Path(__file__).resolve().parents[1] / "recordings/demo/calibration.toml")
    from dataclasses import replace

    store = ProfileStore(tmp_path)
    a = store.save(replace(profile, technician="ada"))
    b = store.save(replace(profile, technician="ada"))
    assert a != b and a.read_text() == b.read_text()
    with pytest.raises(ProfileError, match="must name its technician"):
        store.save(profile)


def test_show_warns_past_the_maximum_age():
    """``show`` speaks of the cameras' profile now, by the wall clock: fixed here, so any day gives this."""
    from dataclasses import replace

    import time_machine

    demo = CalibrationProfile.load(Path(__file__).resolve().parents[1] / "recordings/demo/calibration.toml")
    with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC)):
        ProfileStore().save(replace(demo, technician="ada", created="2026-01-05T09:00:00Z"))
        result = _run("calibrate", "show")
        assert result.exit_code == 0, result.output
        assert "warning: the calibration is 55 days old, past the 30-day maximum" in result.output
        ProfileStore().save(replace(demo, technician="ada", created=utc_now_iso()))
        result = _run("calibrate", "show")
    assert "warning" not in result.output and "ada, 0.0 days old" in result.output


def test_cameras_screen_with_the_active_profile(pairs_dir):
    from station.acquire.intake import open_intake

    assert _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada").exit_code == 0
    with open_intake("sim:1", "sim:1", None, None, status=None) as intake:
        assert intake.profile == ProfileStore().active()


# ----------------------------------------------------------------------------------------- points mode
def _points_csv(path: Path, rows: int, *, distances=(0.7, 1.0, 1.5)) -> Path:
    """Points of a known mapping: a homography plus parallax, as the engine models it."""
    rng = np.random.default_rng(5)
    h = np.array([[0.25, 0.01, 2.0], [-0.005, 0.26, 1.0], [1e-5, 2e-5, 1.0]])
    p = np.array([4.0, 1.5])
    lines = ["visible_x,visible_y,thermal_x,thermal_y,distance_m"]
    for k in range(rows):
        d = distances[k % len(distances)]
        v = rng.uniform([40, 40], [600, 440])
        q = h @ np.r_[v, 1.0]
        t = q[:2] / q[2] + p * (1 / d - 1 / 1.0)
        lines.append(f"{v[0]:.3f},{v[1]:.3f},{t[0]:.4f},{t[1]:.4f},{d}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_points_mode_recovers_a_known_mapping(tmp_path):
    csv = _points_csv(tmp_path / "points.csv", 30)
    result = _run("calibrate", "register", "--points", csv, "--technician", "ada", "--visible-focal-px", "554",
                  "--reference-distance", "1.0")
    assert result.exit_code == 0, result.output
    reg = ProfileStore().active().registration
    assert np.allclose(reg.parallax_px_m, (4.0, 1.5), atol=0.01)
    assert reg.rms_error_px < 0.01


def test_points_without_distances_fit_a_single_homography(tmp_path):
    csv = tmp_path / "flat.csv"
    csv.write_text("visible_x,visible_y,thermal_x,thermal_y\n" + "\n".join(
        f"{x},{y},{x / 4 + 1},{y / 4 + 2}" for x, y in [(10, 10), (600, 20), (590, 400), (30, 420), (300, 240),
                                                      (150, 300)]) + "\n")
    poses, has_depth = read_points(csv)
    assert not has_depth and len(poses) == 1
    line = one_line_error(_run("calibrate", "register", "--points", csv, "--technician", "ada"))
    assert "give --visible-focal-px" in line
    assert _run("calibrate", "register", "--points", csv, "--technician", "ada",
                "--visible-focal-px", "554").exit_code == 0
    assert ProfileStore().active().registration.parallax_px_m == (0.0, 0.0)


# ----------------------------------------------------------------------------------------- bad input
def test_a_target_not_found_names_the_image_and_what_to_try(tmp_path, pairs_dir):
    shutil.copy(pairs_dir / "1_visible.png", tmp_path / "a_visible.png")
    cv2.imwrite(str(tmp_path / "a_thermal.png"), np.full((348, 464), 90, np.uint8))
    line = one_line_error(_run("calibrate", "check-registration", pairs_dir / "../aruco-pairs/1_visible.png",
                                tmp_path, *ARUCO))
    assert "calibration profile" in line or "not valid TOML" in line
    line = one_line_error(_run("calibrate", "register", tmp_path, *ARUCO, "--technician", "ada"))
    assert "a: no aruco target found in the thermal image" in line and "heat the target" in line
    cv2.imwrite(str(tmp_path / "a_visible.png"), np.full((512, 768), 200, np.uint8))
    line = one_line_error(_run("calibrate", "register", tmp_path, *ARUCO, "--technician", "ada"))
    assert "no aruco target found in the visible image" in line and "lighting" in line


def test_too_few_poses_says_how_many_are_needed(tmp_path, pairs_dir):
    for n in (1, 3):
        for role in ("visible", "thermal"):
            shutil.copy(pairs_dir / f"{n}_{role}.png", tmp_path / f"{n}_{role}.png")
    line = one_line_error(_run("calibrate", "register", tmp_path, *ARUCO, "--technician", "ada"))
    assert "only 2 target pose(s): need at least 3" in line


def test_too_few_points_says_how_many_are_needed(tmp_path):
    csv = _points_csv(tmp_path / "few.csv", 4)
    line = one_line_error(_run("calibrate", "register", "--points", csv, "--technician", "ada"))
    assert "only 4 matched points: need at least 6" in line


def test_a_bad_points_file_names_the_row(tmp_path):
    csv = _points_csv(tmp_path / "bad.csv", 8)
    csv.write_text(csv.read_text().replace("\n", "\nx,1,2,3,1.0\n", 1))
    line = one_line_error(_run("calibrate", "register", "--points", csv, "--technician", "ada"))
    assert "bad.csv:2: expected numbers" in line
    (tmp_path / "cols.csv").write_text("vx,vy\n1,2\n")
    line = one_line_error(_run("calibrate", "register", "--points", tmp_path / "cols.csv", "--technician", "ada"))
    assert "expected CSV columns visible_x" in line and "missing visible_x" in line
    line = one_line_error(_run("calibrate", "register", "--points", tmp_path / "nope.csv", "--technician", "ada"))
    assert "points file not found" in line


def test_a_profile_failing_validation_names_the_key(tmp_path, pairs_dir):
    good = tmp_path / "p.toml"
    assert _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada", "--out", good).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("reference_distance_m", "reference_distance"))
    line = one_line_error(_run("calibrate", "check-registration", bad, pairs_dir, *ARUCO))
    assert "missing key [registration] reference_distance_m" in line
    line = one_line_error(_run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada", "--profile", bad))
    assert "missing key [registration] reference_distance_m" in line


def test_a_pair_missing_its_twin_is_named(tmp_path, pairs_dir):
    shutil.copy(pairs_dir / "1_visible.png", tmp_path / "7_visible.png")
    line = one_line_error(_run("calibrate", "register", tmp_path, *ARUCO, "--technician", "ada"))
    assert "7: has no thermal image" in line


def test_usage_mistakes_are_one_line(tmp_path, pairs_dir):
    result = _run("calibrate", "register", *ARUCO, "--technician", "ada")
    assert result.exit_code == 2 and "give exactly one of" in result.output
    result = _run("calibrate", "register", pairs_dir, "--target", "checkerboard", "--size-mm", "40",
                  "--technician", "ada")
    assert result.exit_code == 2 and "needs --pattern" in result.output
    result = _run("calibrate", "register", pairs_dir, *ARUCO, "--techncian", "ada")
    assert result.exit_code == 2 and "No such option" in result.output
    result = _run("calibrate", "register", pairs_dir, *ARUCO, "--technician", "ada", "--pattern", "nine")
    assert result.exit_code == 2 and "COLUMNSxROWS" in result.output
    assert "Traceback" not in result.output


def test_show_and_activate_without_profiles_are_one_line():
    line = one_line_error(_run("calibrate", "show"))
    assert "no calibration profiles yet" in line
    line = one_line_error(_run("calibrate", "show", "--activate", "old.toml"))
    assert "no such profile" in line


def test_live_capture_says_when_the_cameras_do_not_see_the_target():
    # the simulated entrance shows visitors, not a target: three attempts, then one line
    result = _run("calibrate", "register", "--live", "--visible", "sim:1", "--thermal", "sim:1", "--poses", "3",
                  *ARUCO, "--technician", "ada", input="\n" * 3)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: live-1: no aruco target found")


def test_detection_tries_both_polarities(pairs_dir):
    thermal = load_image(pairs_dir / "1_thermal.png")
    spec = TargetSpec("aruco", 0.05)
    grey = cv2.cvtColor(thermal, cv2.COLOR_BGR2GRAY)
    assert len(detect(grey, spec).ids) == len(detect(255 - grey, spec).ids) >= 40


# ----------------------------------------------------------------------------------------- simulated truth
@pytest.mark.parametrize(("kind", "sensor", "size", "pattern"), [
    ("aruco", "boson", "203", None),
    ("checkerboard", "lepton", "75", "5x4"),
])
def test_register_on_simulated_poses_matches_the_true_geometry(tmp_path, kind, sensor, size, pattern):
    from station.profile.registration import visible_to_thermal
    from station.sim.targets import TargetConfig, TargetSimulation, write_target_recording

    sim = TargetSimulation(TargetConfig(kind=kind, thermal_camera=sensor, poses=8, seed=4))
    write_target_recording(sim, tmp_path / "rec")
    args = ["calibrate", "register", "--recording", tmp_path / "rec", "--target", kind, "--size-mm", size,
            "--technician", "sim"] + (["--pattern", pattern] if pattern else [])
    result = _run(*args)
    assert result.exit_code == 0, result.output
    registration = ProfileStore().active().registration
    uu, vv = np.meshgrid(np.linspace(80, 560, 9), np.linspace(60, 420, 7))
    uv = np.c_[uu.ravel(), vv.ravel()]
    errors = np.vstack([visible_to_thermal(uv, d, registration) - sim.rig.visible_to_thermal(uv, d)
                        for d in (1.0, 1.25, 1.5, 1.75, 2.0)])
    assert np.sqrt(np.mean(np.sum(errors**2, axis=1))) < 0.5
    # and it is the parallax that gets it there: a single homography misses by pixels on unseen poses
    lines = result.output.splitlines()
    homography = next(line for line in lines if line.startswith("a single homography"))
    assert float(homography.split(", ")[1].split(" px")[0]) > 1.0


def test_show_reports_the_last_verification():
    from dataclasses import replace

    demo = CalibrationProfile.load(Path(__file__).resolve().parents[1] / "recordings/demo/calibration.toml")
    ProfileStore().save(replace(demo, technician="ada", created=utc_now_iso()))
    assert "last blackbody check" not in _run("calibrate", "show").output
    reading = (35.0 - demo.radiometry.offset_c) / demo.radiometry.gain + 0.05
    result = _run("calibrate", "verify", "--reading", f"{reading:.4f}")
    assert result.exit_code == 0, result.output
    shown = _run("calibrate", "show").output
    assert "last blackbody check: verified +0.05 °C" in shown


# ----------------------------------------------------------------------------------------- a fit that is wrong
def _shuffled_pairs(pairs_dir: Path, into: Path) -> Path:
    """The real pairs with every visible image beside the next pose's thermal image (7 beside 1)."""
    into.mkdir()
    for k in range(1, 8):
        shutil.copy(pairs_dir / f"{k}_visible.png", into / f"{k}_visible.png")
        shutil.copy(pairs_dir / f"{k % 7 + 1}_thermal.png", into / f"{k}_thermal.png")
    return into


def test_mismatched_real_pairs_are_refused_and_nothing_becomes_active(pairs_dir, tmp_path):
    shuffled = _shuffled_pairs(pairs_dir, tmp_path / "shuffled")
    result = _run("calibrate", "register", shuffled, *ARUCO, "--technician", "ada", "--out", tmp_path / "p.toml")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    # the table above it shows which poses disagree; the one error line says what is wrong and the way out
    assert re.match(r"Error: registration: 3\d\.\d\d px RMS is far worse than target points are found to \(a good "
                    r"fit stays under 8\.7 px on this 464x348 thermal image\)", last), last
    assert "--force" in last and "nothing was stored" in last
    assert ProfileStore().history() == [] and not (tmp_path / "p.toml").exists()


def test_a_mismatched_fit_is_stored_with_force_and_says_so(pairs_dir, tmp_path):
    shuffled = _shuffled_pairs(pairs_dir, tmp_path / "shuffled")
    result = _run("calibrate", "register", shuffled, *ARUCO, "--technician", "ada", "--force")
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: stored and made active with --force although its 3\d\.\d\d px RMS exceeds the "
                     r"8\.7 px a good fit stays under", result.output), result.output
    assert ProfileStore().active().registration.rms_error_px > 30


def test_mismatched_hand_picked_points_are_refused(tmp_path):
    csv = _points_csv(tmp_path / "points.csv", 30)
    rows = csv.read_text().splitlines()
    # each visible point beside the thermal point of the row after it: a click in the wrong image
    shifted = [rows[0]] + [",".join(rows[1 + k].split(",")[:2] + rows[1 + (k + 1) % 30].split(",")[2:])
                           for k in range(30)]
    (tmp_path / "wrong.csv").write_text("\n".join(shifted) + "\n")
    args = ["--technician", "ada", "--visible-focal-px", "554", "--reference-distance", "1.0"]
    result = _run("calibrate", "register", "--points", tmp_path / "wrong.csv", *args)
    assert result.exit_code == 1, result.output
    assert re.search(r"Error: registration: \d+\.\d\d px RMS is far worse .*a good fit stays under 2\.\d px on the "
                     r"1\d\dx1\d\d area the thermal points span\).*same physical point", result.output), result.output
    assert ProfileStore().active_path() is None
    assert _run("calibrate", "register", "--points", csv, *args).exit_code == 0  # the same points, paired right
