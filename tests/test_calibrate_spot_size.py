"""``station calibrate spot-size``: the optics' PSF fitted to a heated aperture at several distances.

Frames are synthesised as the physics says a camera sees them: a flat disc at the blackbody's in-band
radiance over the plate's, blurred by a Gaussian PSF of known sigma on a 16x oversampled grid, integrated
over each pixel, turned back into °C through the Lepton's Planck curve, given 0.05 °C of noise and written
as TLinear centikelvin, in a recording, as images, or from a fake live camera. The fit must give the
sigma back within 0.05 px, store it in a new active profile, and refuse bad sessions in one line.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_checks import one_line_error
from click.testing import CliRunner

import calibration.cli.spot_size as cli_spot_size
from calibration.cli.main import calibrate  # the command as the station mounts it
from calibration.spot_size import (
    PoseReading,
    StillPoses,
    find_aperture,
    fit_spot_size,
    peak_retention,
    pixel_fractions,
)
from station.acquire.radiometry import KELVIN, LEPTON_PLANCK, celsius_from_signal, signal_from_celsius
from station.acquire.recording import RecordingWriter, ThermalStreamInfo
from station.profile.history import ProfileStore
from station.profile.schema import CalibrationProfile, focal_from_hfov, thermal_only_profile
from station.screen.spot_size import psf_sigma_px
from station.types import Frame

PLATE_C, SETPOINT_C, NOISE_C = 22.0, 35.0, 0.05
APERTURE_MM, FOCAL_PX = 20.0, 150.0  # a Lepton's nominal focal is 147.3 px (57° over 160 px)
DISTANCES = (0.4, 0.7, 1.1, 1.5)  # the aperture spans 3.75, 2.14, 1.36 and 1.00 px in radius
CENTRES = ((60.3, 50.1), (95.45, 62.8), (110.7, 70.35), (75.15, 80.6))  # sub-pixel phases of all kinds
SHAPE = (120, 160)
FPS = 8.7


def _run(*args: object, **kwargs):
    return CliRunner().invoke(calibrate, [str(a) for a in args], **kwargs)


def radius_px(distance_m: float, aperture_mm: float = APERTURE_MM, focal_px: float = FOCAL_PX) -> float:
    return aperture_mm / 2.0 * focal_px / (1000.0 * distance_m)


def render(radius: float, sigma: float, centre: tuple[float, float], *, setpoint_c: float = SETPOINT_C,
           over: int = 16, half: int = 20) -> np.ndarray:
    """A clean 160x120 frame in °C: the aperture (radius px, centre x, y) blurred by ``sigma`` px."""
    s_plate = float(signal_from_celsius(PLATE_C, LEPTON_PLANCK))
    s_bb = float(signal_from_celsius(setpoint_c, LEPTON_PLANCK))
    signal = np.full(SHAPE, s_plate)
    cx, cy = centre
    ix, iy = int(round(cx)), int(round(cy))
    n = 2 * half + 1
    fine = (np.mgrid[0 : n * over, 0 : n * over] + 0.5) / over - 0.5
    yy, xx = fine[0] + iy - half, fine[1] + ix - half
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 <= radius * radius).astype(np.float64)
    blurred = cv2.GaussianBlur(disc, (0, 0), sigma * over)
    pixels = blurred.reshape(n, over, n, over).mean(axis=(1, 3))
    signal[iy - half : iy + half + 1, ix - half : ix + half + 1] += (s_bb - s_plate) * pixels
    return celsius_from_signal(signal, LEPTON_PLANCK)


def tlinear(celsius: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """°C plus the sensor's noise, as a Lepton's TLinear frame (centikelvin)."""
    noisy = celsius + rng.normal(0.0, NOISE_C, celsius.shape)
    return np.round((noisy + KELVIN) * 100.0).astype(np.uint16)


def write_recording(path: Path, sigma: float, *, seed: int = 0, setpoint_c: float = SETPOINT_C,
                    distances: tuple[float, ...] = DISTANCES, aperture: bool = True, still: int = 12,
                    moving: int = 3) -> Path:
    """A thermal-only recording: the aperture still for ``still`` frames at each distance, moving between."""
    rng = np.random.default_rng(seed)
    info = ThermalStreamInfo(width=SHAPE[1], height=SHAPE[0], fps=FPS, camera="lepton3.5",
                             encoding="tlinear-centikelvin")
    index = 0
    with RecordingWriter(path, source="cameras", thermal=info, visible=None) as writer:
        def write(celsius: np.ndarray) -> None:
            nonlocal index
            writer.write(Frame(image=tlinear(celsius, rng), t=index / FPS, index=index))
            index += 1

        for k, (distance, centre) in enumerate(zip(distances, CENTRES, strict=False)):
            clean = render(radius_px(distance), sigma, centre, setpoint_c=setpoint_c) if aperture \
                else np.full(SHAPE, PLATE_C)
            for _ in range(still):
                write(clean)
            if k + 1 < len(distances):  # carried to the next pose: smeared frames in between
                nxt = CENTRES[k + 1]
                for j in range(1, moving + 1):
                    a = j / (moving + 1)
                    at = (centre[0] + a * (nxt[0] - centre[0]), centre[1] + a * (nxt[1] - centre[1]))
                    write(render(radius_px(distance), sigma + 1.0, at, setpoint_c=setpoint_c) if aperture
                          else np.full(SHAPE, PLATE_C))
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A thermal-only Lepton profile without [optics]: the engine would use the model's default."""
    path = tmp_path_factory.mktemp("spot") / "base.toml"
    thermal_only_profile("lepton3.5", SHAPE[1]).save(path)
    return path


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spot-recordings")
    return {f"{sigma}": write_recording(root / f"sigma{sigma}", sigma, seed=int(sigma * 10)) for sigma in (0.4, 0.8)}


def _args(recording: Path, base: Path, profiles: Path, *, distances: str = "0.4,0.7,1.1,1.5",
          setpoint: float = SETPOINT_C, aperture_mm: float = APERTURE_MM) -> list[object]:
    return ["spot-size", "--setpoint", setpoint, "--aperture-mm", aperture_mm, "--distances", distances,
            "--recording", recording, "--profile", base, "--technician", "ada", "--profiles", profiles]


# ------------------------------------------------------------------------------------- the model
@pytest.mark.parametrize(("radius", "sigma", "phase"), [(1.0, 0.2, (0.4, 0.3)), (1.0, 0.4, (0.3, 0.1)),
                                                        (0.8, 0.8, (0.5, 0.5)), (1.3, 0.25, (0.45, 0.0))])
def test_the_model_is_the_pixel_integrated_blurred_disc(radius, sigma, phase):
    """The quadrature of the non-central chi-squared form against a 64x oversampled render."""
    over, n = 64, 9
    fine = (np.mgrid[0 : n * over, 0 : n * over] + 0.5) / over
    disc = ((fine[1] - 4.5 - phase[0]) ** 2 + (fine[0] - 4.5 - phase[1]) ** 2 <= radius**2).astype(np.float64)
    pixels = cv2.GaussianBlur(disc, (0, 0), sigma * over).reshape(n, over, n, over).mean(axis=(1, 3))
    assert peak_retention(radius, sigma, phase) == pytest.approx(pixels[4, 4], abs=1e-3)
    assert pixel_fractions(radius, sigma, np.array([1.0 - phase[0]]), np.array([-phase[1]]))[0] == pytest.approx(
        pixels[4, 5], abs=1e-3)


def test_the_shortcut_is_the_centred_case_and_the_phase_matters():
    """1 - exp(-R^2 / 2(sigma^2 + 1/12)) is about a disc centred on its pixel; at a corner it reads far less."""
    shortcut = 1.0 - np.exp(-1.0 / (2.0 * (0.4**2 + 1.0 / 12.0)))
    assert peak_retention(1.0, 0.4) == pytest.approx(shortcut, abs=0.005)
    assert peak_retention(1.0, 0.4, (0.5, 0.5)) < shortcut - 0.2


# ------------------------------------------------------------------------------------- the command
@pytest.mark.parametrize("sigma", [0.4, 0.8])
def test_a_recording_gives_the_psf_back_and_it_is_stored_active(sigma, recordings, base, tmp_path):
    profiles = tmp_path / "profiles"
    result = _run(*_args(recordings[f"{sigma}"], base, profiles))
    assert result.exit_code == 0, result.output
    stored = ProfileStore(profiles)
    profile = stored.active()
    assert profile is not None and profile.technician == "ada"
    assert profile.optics_psf_sigma_px == pytest.approx(sigma, abs=0.05)
    assert f"stored: {stored.active_path()} (active)" in result.output
    assert "focal 150" in result.output or "focal 149" in result.output  # measured, not the nominal 147.3
    assert result.output.count(" m ") >= 4 and "RMS residual" in result.output  # one row per pose
    # the file carries [optics] psf_sigma_px, loads, and keeps the base profile's registration
    text = stored.active_path().read_text(encoding="utf-8")
    assert tomllib.loads(text)["optics"]["psf_sigma_px"] == profile.optics_psf_sigma_px
    reloaded = CalibrationProfile.load(stored.active_path())
    assert reloaded.optics_psf_sigma_px == profile.optics_psf_sigma_px
    assert reloaded.registration == CalibrationProfile.load(base).registration
    # what the engine does with it (station.pipeline.Station): the profile's value over the model's default
    assert (reloaded.optics_psf_sigma_px or psf_sigma_px("lepton3.5")) == profile.optics_psf_sigma_px


def test_images_with_their_distances_give_the_psf_back(base, tmp_path):
    rng = np.random.default_rng(3)
    images = []
    for distance, centre in zip(DISTANCES, CENTRES, strict=True):
        path = tmp_path / f"d{int(distance * 100):03d}.npy"
        np.save(path, tlinear(render(radius_px(distance), 0.6, centre), rng))
        images.append(path)
    result = _run("spot-size", *images, "--setpoint", SETPOINT_C, "--aperture-mm", APERTURE_MM, "--distances",
                  "0.4,0.7,1.1,1.5", "--profile", base, "--technician", "ada", "--profiles", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert "camera unknown, 160x120" in result.output and "d040.npy" in result.output
    assert ProfileStore(tmp_path / "p").active().optics_psf_sigma_px == pytest.approx(0.6, abs=0.05)


class _FakeLepton:
    """A live thermal camera showing the aperture at the pose the technician was last asked for."""

    name, stream, finished = "lepton", "thermal", False

    def __init__(self, sigma: float) -> None:
        self.frames = [render(radius_px(d), sigma, c) for d, c in zip(DISTANCES, CENTRES, strict=True)]
        self.pose = 0
        self.rng = np.random.default_rng(7)
        self.index = 0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "stream": self.stream}

    def read(self) -> Frame:
        time.sleep(0.02)
        self.index += 1
        return Frame(image=tlinear(self.frames[self.pose], self.rng), t=time.monotonic(), index=self.index,
                     meta={"encoding": "tlinear-centikelvin"})


def test_live_prompts_for_each_distance(base, tmp_path, monkeypatch):
    camera = _FakeLepton(0.5)
    asked: list[float] = []

    def prompt(k: int, n: int, distance: float) -> None:
        asked.append(distance)
        camera.pose = k - 1

    monkeypatch.setattr("station.acquire.sources.registry.open_source", lambda spec, stream: camera)
    monkeypatch.setattr(cli_spot_size, "_prompt", prompt)
    result = _run("spot-size", "--setpoint", SETPOINT_C, "--aperture-mm", APERTURE_MM, "--distances",
                  "0.4,0.7,1.1,1.5", "--live", "--thermal", "lepton", "--seconds", 0.6, "--profile", base,
                  "--technician", "ada", "--profiles", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert asked == list(DISTANCES) and "live-4" in result.output and "nominal 147.3 px" in result.output
    assert ProfileStore(tmp_path / "p").active().optics_psf_sigma_px == pytest.approx(0.5, abs=0.05)


# ------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("distances", "message"),
    [
        ("1.0", "--distances: 1 distance: the blur needs at least 3 poses"),
        ("0.4,0.7", "2 distances: the blur needs at least 3 poses"),
        ("0.9,1.0,1.1,1.2", "too alike (the farthest is 1.33x the nearest, at least 2x needed)"),
    ],
)
def test_too_few_or_too_alike_distances_are_one_line(distances, message, recordings, base, tmp_path):
    assert message in one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p", distances=distances)))
    assert not (tmp_path / "p").exists()


def test_distances_that_are_not_numbers_are_a_usage_error(recordings, base, tmp_path):
    result = _run(*_args(recordings["0.4"], base, tmp_path / "p", distances="0.4,0.7,abc"))
    assert result.exit_code == 2 and "expected distances in metres" in result.output  # click's, like any bad value


def test_no_aperture_in_view_is_one_line(base, tmp_path):
    empty = write_recording(tmp_path / "empty", 0.4, aperture=False)
    line = one_line_error(_run(*_args(empty, base, tmp_path / "p")))
    assert "the aperture was not found" in line and "in any of its" in line
    assert not (tmp_path / "p").exists()


def test_an_absurdly_sharp_psf_is_refused(base, tmp_path):
    """sigma 0.05 px: sharper than diffraction allows an f/1 lens; the session must be wrong, not the camera."""
    sharp = write_recording(tmp_path / "sharp", 0.05, seed=5)
    line = one_line_error(_run(*_args(sharp, base, tmp_path / "p")))
    assert "is outside 0.2-3 px" in line and "sharper than diffraction allows" in line
    assert not (tmp_path / "p").exists()


def test_a_wrong_set_point_is_a_poor_fit(recordings, base, tmp_path):
    """The blackbody at 35 °C called 40 °C: even the nearest pose 'keeps' 70 %, which no blur explains."""
    line = one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p", setpoint=40)))
    assert "the poses do not agree on one blur" in line and "set point" in line


def test_a_wrong_aperture_diameter_is_caught_by_the_focal_length(recordings, base, tmp_path):
    line = one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p", aperture_mm=30)))
    assert "focal length of 100 px, the camera's field of view 147 px" in line and "--aperture-mm" in line


def test_distances_out_of_order_are_caught(recordings, base, tmp_path):
    line = one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p", distances="0.4,1.1,0.7,1.5")))
    assert "check that --distances are in the order of the poses" in line


def test_more_still_poses_than_distances_is_one_line(recordings, base, tmp_path):
    line = one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p", distances="0.4,0.7,1.5")))
    assert "4 still poses of the aperture (t=0.0-1.3s, " in line and "for 3 --distances" in line


def test_inputs_are_one_of_a_kind(recordings, base, tmp_path):
    line = one_line_error(_run(*_args(recordings["0.4"], base, tmp_path / "p"), "--live", "--thermal", "lepton"))
    assert "give one of IMAGES..., --recording DIR or --live --thermal SRC (got --recording and --live)" in line


# ------------------------------------------------------------------------------------- still poses
def test_a_moving_aperture_is_no_pose_and_a_missed_frame_does_not_split_one():
    rng = np.random.default_rng(2)
    s_bb = float(signal_from_celsius(SETPOINT_C, LEPTON_PLANCK))
    tracker = StillPoses(s_bb)
    still = render(1.5, 0.5, (80.2, 60.3))
    t = 0.0
    for k in range(20):
        frame = np.full(SHAPE, PLATE_C) if k == 8 else still  # frame 8: the aperture lost (a hand in front)
        tracker.add(t, signal_from_celsius(frame + rng.normal(0, NOISE_C, SHAPE), LEPTON_PLANCK))
        t += 1 / FPS
    for k in range(12):  # carried across the view: never still
        frame = render(1.5, 0.5, (40.0 + 4 * k, 60.3))
        tracker.add(t, signal_from_celsius(frame + rng.normal(0, NOISE_C, SHAPE), LEPTON_PLANCK))
        t += 1 / FPS
    poses = tracker.finish()
    assert len(poses) == 1 and poses[0].frames == 19 and poses[0].label == "t=0.0-2.2s"


def test_the_fit_reports_every_pose():
    """The pure fit on frames: radii from the measured focal, phases refined, residuals tiny."""
    rng = np.random.default_rng(4)
    s_bb = float(signal_from_celsius(SETPOINT_C, LEPTON_PLANCK))
    poses = []
    for distance, centre in zip(DISTANCES, CENTRES, strict=True):
        clean = render(radius_px(distance), 0.4, centre)
        mean = np.mean([signal_from_celsius(clean + rng.normal(0, NOISE_C, SHAPE), LEPTON_PLANCK)
                        for _ in range(8)], axis=0)
        poses.append(PoseReading(f"{distance}", distance, find_aperture(mean, s_bb), s_bb, 8))
    fit = fit_spot_size(poses, APERTURE_MM, nominal_focal_px=focal_from_hfov(160, 57.0))
    assert fit.sigma_px == pytest.approx(0.4, abs=0.03) and fit.rms < 0.01
    assert fit.measured_focal_px == pytest.approx(FOCAL_PX, rel=0.01)
    for pose, distance, centre in zip(fit.poses, DISTANCES, CENTRES, strict=True):
        assert pose.radius_px == pytest.approx(radius_px(distance), rel=0.01)
        assert pose.centre == pytest.approx(centre, abs=0.03)
        assert abs(pose.residual) < 0.02
