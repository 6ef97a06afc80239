"""A calibration profile is checked where it is read, and again where it meets its cameras' frames.

Every value here is one the issue saw get through: a rank-2 homography, one that sends the visible frame
far off the thermal one, a reference distance of 1e-300 m, a parallax of 1e300 px*m, a negative or
out-of-frame blackbody ROI, an unquoted TOML datetime, a corrupt file in the history. Each must end in
one line naming the profile and the key, never a NaN deep in the measurement or a Python repr.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

from station.cli.main import main
from station.errors import ProfileError
from station.profile.history import ProfileStore
from station.profile.registration import check_registration_covers
from station.profile.schema import (
    MAX_PARALLAX_PX_M,
    Blackbody,
    CalibrationProfile,
    Registration,
    check_profile_fits,
    thermal_only_profile,
)

DEMO = Path(__file__).resolve().parents[1] / "recordings" / "demo" / "calibration.toml"
LEPTON = (120, 160)  # thermal frame shape (height, width)
VGA = (480, 640, 3)  # visible frame shape


@pytest.fixture(scope="module")
def demo_text() -> str:
    return DEMO.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def demo(demo_text) -> CalibrationProfile:
    return CalibrationProfile.from_toml(demo_text, origin="demo.toml")


def _with_homography(text: str, rows: list[list[float]]) -> str:
    """The profile text with its homography replaced (tomli_w writes it one number a line)."""
    start = text.index("homography = [")
    end = text.index("\n]\n", start) + len("\n]\n")
    inner = ", ".join("[" + ", ".join(repr(float(v)) for v in row) + "]" for row in rows)
    return text[:start] + f"homography = [{inner}]\n" + text[end:]


def _with_key(text: str, key: str, value: str) -> str:
    """The profile text with ``key = ...`` (a scalar or a multi-line array) set to ``value``."""
    match = re.search(rf"^{key} = (\[[^\]]*\]|[^\n]*)$", text, flags=re.MULTILINE)
    assert match, key
    return text[: match.start()] + f"{key} = {value}" + text[match.end():]


def _load_error(text: str) -> str:
    with pytest.raises(ProfileError) as caught:
        CalibrationProfile.from_toml(text, origin="p.toml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("p.toml: "), message
    return message


# ----------------------------------------------------------------------------------------- homography
def test_a_rank_2_homography_is_refused_whatever_its_scale(demo_text):
    rank_2 = [[1e4, 2e4, 3e4], [4e4, 5e4, 6e4], [7e4, 8e4, 9e4]]
    assert abs(np.linalg.det(np.array(rank_2))) > 1e-12  # what the old check let through
    for scale in (1e-4, 1.0, 1.0e4):
        message = _load_error(_with_homography(demo_text, [[v * scale for v in row] for row in rank_2]))
        assert "[registration] homography is singular" in message


def test_a_good_homography_loads_at_any_scale(demo_text, demo):
    for scale in (1e-6, 1e6, -3.0):  # a homography is defined up to scale: all of these are the same mapping
        rows = [[v * scale for v in row] for row in demo.registration.homography]
        profile = CalibrationProfile.from_toml(_with_homography(demo_text, rows))
        check_profile_fits(profile, LEPTON, VGA)


# ----------------------------------------------------------------------------------------- geometry bounds
@pytest.mark.parametrize(("key", "value", "expected"), [
    ("reference_distance_m", "1e-300", "reference_distance_m: expected a number from 0.2 to 10 m, got 1e-300"),
    ("reference_distance_m", "0.15", "from 0.2 to 10 m"),
    ("reference_distance_m", "12.0", "from 0.2 to 10 m"),
    ("visible_focal_px", "0.5", "visible_focal_px: expected a number from 50 to 20000 px"),
    ("visible_focal_px", "1e9", "from 50 to 20000 px"),
    ("parallax_px_m", "[1e300, 1e300]", f"expected a shift of at most {MAX_PARALLAX_PX_M:g} px*m"),
    ("parallax_px_m", "[4000.0, -4000.0]", "got [4000, -4000] (5.66e+03 px*m)"),
])
def test_absurd_but_finite_geometry_is_refused_on_load(demo_text, key, value, expected):
    message = _load_error(_with_key(demo_text, key, value))
    assert f"[registration] {key}" in message and expected in message


def test_the_bounds_keep_what_working_stations_have(demo_text):
    for key, value in (("reference_distance_m", "0.2"), ("reference_distance_m", "10"),
                       ("visible_focal_px", "50"), ("parallax_px_m", "[-300.0, 250.0]")):
        CalibrationProfile.from_toml(_with_key(demo_text, key, value))
    thermal_only = thermal_only_profile("lepton", 160)  # identity registration, the thermal camera's focal
    assert CalibrationProfile.from_toml(thermal_only.to_toml()) == thermal_only


def test_a_negative_blackbody_roi_is_refused_on_load(demo_text):
    message = _load_error(_with_key(demo_text, "roi", "[-4, 18, 139, 23]"))
    assert "[blackbody] roi: expected whole pixels 0 <= x1 < x2, 0 <= y1 < y2, got [-4, 18, 139, 23]" in message


# ----------------------------------------------------------------------------------------- created
def test_an_unquoted_toml_datetime_is_accepted_and_normalised(demo_text, demo):
    for written, kept in (("2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z"),
                          ("2026-11-23T11:00:00+01:00", "2026-11-23T11:00:00+01:00"),
                          ("2026-11-23 10:00:00.250Z", "2026-11-23T10:00:00.250000Z")):
        profile = CalibrationProfile.from_toml(_with_key(demo_text, "created", written))
        assert profile.created == kept
        instant = datetime.fromisoformat(profile.created.replace("Z", "+00:00"))
        assert abs((instant - datetime(2026, 11, 23, 10, tzinfo=UTC)).total_seconds()) <= 0.25
        assert CalibrationProfile.from_toml(profile.to_toml()) == profile  # written back as the string


def test_a_datetime_without_its_zone_is_refused_in_toml_terms(demo_text):
    for written, expected in (("2026-11-23T10:00:00", "a time with its zone (end it with Z for UTC), got "
                                                      "2026-11-23T10:00:00"),
                              ("2026-11-23", "a date and time with its zone, such as 2026-11-23T10:00:00Z, got "
                                             "2026-11-23"),
                              ("10:00:00", "a date and time with its zone, such as 2026-11-23T10:00:00Z, got "
                                           "10:00:00")):
        message = _load_error(_with_key(demo_text, "created", written))
        assert f"created: expected {expected}" in message
        assert "datetime." not in message and "(" not in message.split("got ")[1]


def test_an_unquoted_datetime_through_the_command_line(tmp_path, demo_text):
    path = tmp_path / "p.toml"
    path.write_text(_with_key(demo_text, "created", "2026-11-23T10:00:00"))
    line = one_line_error(CliRunner().invoke(main, ["calibrate", "verify", "--profile", str(path), "--reading",
                                                    "35.0", "--db", str(tmp_path / "s.db")]))
    assert line == (f"Error: {path}: created: expected a time with its zone (end it with Z for UTC), "
                    "got 2026-11-23T10:00:00")


# ----------------------------------------------------------------------------------------- meeting the frames
def _registration(rows, parallax=(0.0, 0.0), reference_m=1.0) -> Registration:
    return Registration(homography=tuple(tuple(float(v) for v in row) for row in rows),
                        reference_distance_m=reference_m, visible_focal_px=554.0, parallax_px_m=parallax,
                        rms_error_px=0.1)


def test_the_demo_and_the_simulated_cameras_fit_their_profiles(demo):
    from station.sim.simulator import Simulation, SimulationConfig

    check_profile_fits(demo, LEPTON, VGA, origin="demo.toml")
    boson = Simulation(SimulationConfig(people=1, seed=1, thermal_camera="boson"))
    check_profile_fits(boson.profile(), (boson.rig.thermal.height, boson.rig.thermal.width), VGA)
    check_profile_fits(thermal_only_profile("lepton", 160), LEPTON, LEPTON)


def test_a_visible_frame_sent_far_off_the_thermal_one_is_refused(demo_text, demo):
    # Invertible and well conditioned, so it loads; only the frame sizes show it maps every face away.
    far = [[0.25, 0.0, 5000.0], [0.0, 0.25, 0.0], [0.0, 0.0, 1.0]]
    profile = CalibrationProfile.from_toml(_with_homography(demo_text, far), origin="far.toml")
    with pytest.raises(ProfileError) as caught:
        check_profile_fits(profile, LEPTON, VGA, origin="far.toml")
    message = str(caught.value)
    assert message.startswith("far.toml: [registration] at the reference distance 0.0 % of the 640x480 visible "
                              "frame lands on the 160x120 thermal frame and covers 0.0 % of it")
    assert "\n" not in message and "station calibrate register" in message
    # a homography ~1e9 px away is refused already on load: no double has the precision to invert it
    assert "homography is singular" in _load_error(_with_homography(demo_text, [[1, 0, 1e9], [0, 1, 0], [0, 0, 1]]))


@pytest.mark.parametrize(("rows", "expected"), [
    ([[1e-3, 0, 80], [0, 1e-3, 60], [0, 0, 1]], "lands on the 160x120 thermal frame and covers under 0.1 % of it"),
    ([[50, 0, -8000], [0, 50, -6000], [0, 0, 1]], "0.0 % of the 640x480 visible frame lands on"),
    ([[0.25, 0, 0], [0, 0.25, 0], [-0.004, 0, 1]], "sends part of the 640x480 visible frame to infinity"),
])
def test_registrations_that_miss_the_thermal_frame(rows, expected):
    with pytest.raises(ProfileError, match=re.escape(expected)):
        check_registration_covers(_registration(rows), VGA, LEPTON)


def test_a_parallax_that_moves_faces_off_the_frame_is_refused():
    quarter = [[0.25, 0, 0], [0, 0.25, 0], [0, 0, 1]]
    check_registration_covers(_registration(quarter, parallax=(190.0, 0.0)), VGA, LEPTON)  # 190 px < 200
    with pytest.raises(ProfileError) as caught:
        check_registration_covers(_registration(quarter, parallax=(300.0, 0.0)), VGA, LEPTON)
    assert ("parallax_px_m [300, 0] moves a face up to 300 thermal px between 0.5 and 3 m, more than the 160x120 "
            "thermal frame's diagonal (200 px)") in str(caught.value)


def test_a_blackbody_roi_outside_the_thermal_frame_is_refused_before_screening(demo):
    outside = replace(demo, blackbody=Blackbody((1000, 1000, 1010, 1010), 35.0))
    check_profile_fits(outside, (1080, 1440))  # a big thermal sensor would have it
    with pytest.raises(ProfileError) as caught:
        check_profile_fits(outside, LEPTON, origin="p.toml")
    assert str(caught.value).startswith("p.toml: [blackbody] roi [1000, 1000, 1010, 1010] is not inside the "
                                        "160x120 thermal frame")
    edge = replace(demo, blackbody=Blackbody((150, 100, 161, 110), 35.0))
    with pytest.raises(ProfileError, match="not inside the 160x120"):
        check_profile_fits(edge, LEPTON)
    check_profile_fits(replace(demo, blackbody=Blackbody((150, 100, 160, 120), 35.0)), LEPTON)


def test_a_shape_that_is_not_an_image_shape_is_a_caller_bug(demo):
    for shape in ((120,), (0, 160), "160x120", (1, 120, 160, 3)):
        with pytest.raises(ValueError, match="thermal_shape: expected an image shape"):
            check_profile_fits(demo, shape)


# ----------------------------------------------------------------------------------------- the history
def _stored(tmp_path: Path, demo: CalibrationProfile) -> tuple[ProfileStore, Path, Path]:
    store = ProfileStore(tmp_path / "profiles")
    old = store.save(replace(demo, technician="ada", created="2026-10-01T09:00:00Z"))
    new = store.save(replace(demo, technician="grace", created="2026-10-20T09:00:00Z"))
    return store, old, new


def _corrupt(path: Path) -> None:
    os.chmod(path, 0o644)
    path.write_text("schema_version = 1\nstation_id = [\n")


def test_show_lists_a_corrupt_old_profile_as_unreadable_and_still_shows_the_active_one(tmp_path, demo):
    store, old, new = _stored(tmp_path, demo)
    _corrupt(old)
    history = store.history()
    assert [s.name for s in history] == [old.name, new.name]
    assert history[0].profile is None and history[0].error.startswith("not valid TOML")
    result = CliRunner().invoke(main, ["calibrate", "show", "--profiles", str(store.root),
                                       "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 0, result.output
    assert f"active profile: {new.name}" in result.output
    assert "history (2 profiles, 1 unreadable, oldest first" in result.output
    assert f"   {old.name}  unreadable: not valid TOML" in result.output
    assert f" * {new.name}  2026-10-20T09:00:00Z  grace" in result.output


def test_show_fails_when_the_active_profile_itself_is_unreadable(tmp_path, demo):
    store, old, new = _stored(tmp_path, demo)
    _corrupt(new)
    result = CliRunner().invoke(main, ["calibrate", "show", "--profiles", str(store.root),
                                       "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert f"{old.name}  2026-10-01T09:00:00Z  ada" in result.output  # the rest of the history is still listed
    assert lines[-1].startswith(f"Error: {new}: the active profile is unreadable (not valid TOML")
    assert "--activate NAME" in lines[-1]


def test_a_profile_the_engine_could_not_read_is_never_stored(tmp_path, demo):
    store = ProfileStore(tmp_path / "profiles")
    bad = replace(demo, technician="ada", registration=replace(demo.registration, reference_distance_m=0.05))
    with pytest.raises(ProfileError, match="the new profile: .*reference_distance_m: expected a number from 0.2"):
        store.save(bad)
    assert not store.root.exists() or not any(store.root.iterdir())
