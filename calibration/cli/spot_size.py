"""``station calibrate spot-size``: measure the thermal optics' PSF on a heated aperture and store it.

The engine corrects a canthus's peak for the blur of the camera's optics (:mod:`station.screen.spot_size`); by
default it assumes the camera model's documented PSF (:data:`station.screen.spot_size.PSF_SIGMA_PX`). This
command measures the camera's own: a small round hole in a room-temperature plate in front of a blackbody,
imaged at several distances, gives the share of the contrast its peak pixel keeps at each, and the PSF
sigma that explains them is fitted (:mod:`calibration.spot_size` holds the physics). The result is a new
profile of the station's history (:class:`station.profile.history.ProfileStore`): the base profile with
``[optics] psf_sigma_px`` set, made active, exactly as ``station calibrate blackbody`` stores its fit.

Poses come from one of three inputs, matched in order to ``--distances``:

* ``--recording DIR``: a thermal recording in which the aperture stands still at each distance for a
  second or more (the still stretches are found as ``calibrate register --recording`` finds still
  target poses; frames of a stretch are averaged);
* ``IMAGES...``: one thermal image per distance, 16-bit TLinear (centikelvin) PNG/TIFF or ``.npy``, or a
  ``.npy`` of °C;
* ``--live --thermal SRC``: the camera now, prompting for each distance in turn.

Frames go through the same radiometry the station screens with: the sensor's °C (TLinear, or raw counts
through the recording's Planck constants), the base profile's gain and offset (so the contrast is on the
set point's scale), then the camera's Planck curve to in-band signal, because blur mixes radiance.

Every fault is one ``Error:`` line, exit 1 (the ``calibrate`` group turns :class:`StationError` into it);
nothing is stored then.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from calibration.blackbody import check_setpoint
from calibration.capture import frames_for
from calibration.cli.blackbody import CELSIUS, _base_profile, _live_radiometer
from calibration.spot_size import (
    MIN_CONTRAST_C,
    MIN_STILL_S,
    PoseReading,
    StillPose,
    StillPoses,
    check_distances,
    find_aperture,
    fit_spot_size,
)
from station.acquire.radiometry import (
    LEPTON_PLANCK,
    Radiometer,
    apply_gain_offset,
    celsius_from_signal,
    signal_from_celsius,
    tlinear_to_celsius,
)
from station.acquire.recording import Recording
from station.cli.group import CONTEXT
from station.errors import StationError
from station.profile.history import ProfileStore
from station.profile.schema import (
    SCHEMA_VERSION,
    THERMAL_HFOV_DEG,
    CalibrationProfile,
    focal_from_hfov,
    utc_now_iso,
)
from station.screen.spot_size import psf_sigma_px

#: Distances a pose may be given at, metres: nearer than 10 cm no thermal camera focuses; beyond 20 m an
#: aperture spanning a pixel would be a metre across.
DISTANCE_RANGE_M = (0.1, 20.0)
#: How many times --live asks again for a distance whose aperture was not found or did not stand still.
LIVE_ATTEMPTS = 3


class DistancesType(click.ParamType):
    """``D1,D2,...``: distances in metres from the camera to the plate, one per pose, in order."""

    name = "D1,D2,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        parts = [p for p in str(value).replace(" ", "").split(",") if p]
        try:
            distances = tuple(float(p) for p in parts)
        except ValueError:
            self.fail(f"expected distances in metres separated by commas, such as 0.4,0.7,1.1,1.5, got {value!r}",
                      param, ctx)
        low, high = DISTANCE_RANGE_M
        bad = [d for d in distances if not (math.isfinite(d) and low <= d <= high)]
        if bad or not distances:
            self.fail(f"expected distances from {low:g} to {high:g} m (camera to plate), got {value!r}", param, ctx)
        return distances


@dataclass(frozen=True)
class _Input:
    """One pose's (mean) frame of in-band signal, where it came from, and how many frames it averages."""

    label: str
    signal: np.ndarray
    frames: int


@dataclass(frozen=True)
class _Camera:
    """What the poses were seen with: its name (None: unknown), frame shape and Planck curve."""

    name: str | None
    shape: tuple[int, int]
    planck: Any


def _to_signal(sensor_c: np.ndarray, base: CalibrationProfile, planck: Any) -> np.ndarray:
    """Sensor °C through the profile's gain and offset to the camera's in-band signal (float64)."""
    rad = base.radiometry
    return signal_from_celsius(apply_gain_offset(sensor_c, rad.gain, rad.offset_c), planck)


# --------------------------------------------------------------------------------------------- inputs
def _recording_poses(rec: Recording, base: CalibrationProfile, setpoint: float) -> tuple[list[_Input], _Camera]:
    """The still poses of the aperture in a recording, streamed (an hour of frames is never held)."""
    try:
        radiometer = Radiometer.for_stream(rec.thermal, base)
    except ValueError as exc:
        raise StationError(f"{rec.path}: {exc}") from None
    planck = radiometer.planck
    tracker = StillPoses(float(signal_from_celsius(setpoint, planck)))
    count = 0
    reason = "the recording holds no thermal frames"
    for frame in rec.frames("thermal"):
        count += 1
        if tracker.add(frame.t, _to_signal(radiometer.sensor_celsius(frame.image), base, planck)) is None:
            reason = tracker.last_error or reason
    poses = tracker.finish()
    if tracker.seen == 0:
        raise StationError(f"{rec.path}: {reason} (in any of its {count} thermal frames)")
    camera = _Camera(rec.thermal.camera, (rec.thermal.height, rec.thermal.width), planck)
    return [_Input(p.label, p.mean, p.frames) for p in poses], camera


def _image_poses(paths: Sequence[Path], base: CalibrationProfile) -> tuple[list[_Input], _Camera]:
    """One pose per thermal image: 16-bit TLinear centikelvin, or a float ``.npy`` of °C."""
    from calibration.targets import load_image  # OpenCV's image reader, only for this input

    inputs, shape = [], None
    for path in paths:
        image = load_image(path)
        if image.ndim == 2 and image.dtype == np.uint16:
            sensor_c = tlinear_to_celsius(image)
        elif image.ndim == 2 and image.dtype.kind == "f":
            sensor_c = image.astype(np.float32)
        else:
            raise StationError(f"{path}: a {image.dtype} image with {image.shape[2] if image.ndim == 3 else 1} "
                               "channel(s) holds no temperatures: give the camera's 16-bit TLinear frames (PNG, TIFF "
                               "or .npy of centikelvin) or a .npy of °C")
        if shape is not None and image.shape != shape:
            raise StationError(f"{path}: {image.shape[1]}x{image.shape[0]} px, the other images "
                               f"{shape[1]}x{shape[0]}: give images of one camera")
        shape = image.shape
        inputs.append(_Input(Path(path).name, _to_signal(sensor_c, base, LEPTON_PLANCK), 1))
    return inputs, _Camera(None, shape, LEPTON_PLANCK)  # type: ignore[arg-type]


def _prompt(k: int, n: int, distance_m: float) -> None:
    click.prompt(f"pose {k}/{n}: put the aperture {distance_m:g} m from the camera, hold it still, then press Enter",
                 default="", show_default=False, prompt_suffix=" ")


def _live_poses(spec: str, distances: Sequence[float], seconds: float, base: CalibrationProfile, setpoint: float,
                prompt: Callable[[int, int, float], None],
                echo: Callable[[str], None]) -> tuple[list[_Input], _Camera]:
    """One pose per distance from a live camera: prompt, collect ``seconds`` of frames, keep the longest
    still stretch (at least half of them); a distance whose aperture is not found or moved is asked again."""
    from station.acquire.sources.registry import open_source  # flirpy and OpenCV load only for --live

    source = open_source(spec, "thermal")
    source.open()
    radiometer: Radiometer | None = None
    inputs: list[_Input] = []
    shape: tuple[int, int] | None = None
    try:
        for k, distance in enumerate(distances, start=1):
            for attempt in range(1, LIVE_ATTEMPTS + 1):
                prompt(k, len(distances), distance)
                tracker: StillPoses | None = None
                for frame in frames_for(source, seconds):
                    if radiometer is None:
                        radiometer = _live_radiometer(spec, source, frame.meta, base)
                    if tracker is None:
                        tracker = StillPoses(float(signal_from_celsius(setpoint, radiometer.planck)),
                                             min_seconds=seconds / 2.0)
                    shape = frame.image.shape[:2]
                    tracker.add(frame.t, _to_signal(radiometer.sensor_celsius(frame.image), base, radiometer.planck))
                if tracker is None:
                    raise StationError(f"thermal source {spec}: no frame in {seconds:g} s; check `station cameras`")
                still = tracker.finish()
                if still:
                    best: StillPose = max(still, key=lambda p: p.frames)
                    inputs.append(_Input(f"live-{k}", best.mean, best.frames))
                    break
                why = tracker.last_error if tracker.seen == 0 else "the aperture moved"
                if attempt == LIVE_ATTEMPTS:
                    raise StationError(f"thermal source {spec}, pose {k} at {distance:g} m: {why} in {LIVE_ATTEMPTS} "
                                       "attempts")
                echo(f"pose {k}: {why}; try again")
    finally:
        source.close()
    name = str(source.describe().get("name") or spec)
    assert radiometer is not None and shape is not None
    return inputs, _Camera(name, shape, radiometer.planck)


def _choose_input(images: Sequence[Path], recording: Path | None, live: bool, thermal: str | None) -> str:
    """Exactly one of IMAGES, --recording and --live (with --thermal); which one, by name."""
    given = [name for name, present in (("images", bool(images)), ("recording", recording is not None),
                                        ("live", live)) if present]
    if len(given) != 1:
        what = "none" if not given else " and ".join(g if g == "images" else f"--{g}" for g in given)
        raise StationError(f"give one of IMAGES..., --recording DIR or --live --thermal SRC (got {what})")
    if live and not thermal:
        raise StationError("--live needs --thermal SRC (lepton, boson, uvc:N)")
    if thermal and not live:
        raise StationError("--thermal SRC is for --live; give --live as well, or measure from a --recording")
    return given[0]


def _camera_hfov(camera: str | None) -> float | None:
    """The nominal horizontal field of view of a camera named like ``lepton3.5`` or ``simulated-boson``."""
    name = (camera or "").lower()
    for key, hfov in THERMAL_HFOV_DEG.items():
        if key.rstrip("0123456789.") in name:
            return hfov
    return None


# --------------------------------------------------------------------------------------------- command
@click.command("spot-size", context_settings=CONTEXT)
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--setpoint", required=True, type=CELSIUS, help="The blackbody's set point behind the aperture, °C.")
@click.option("--aperture-mm", required=True, type=click.FloatRange(1.0, 200.0), metavar="D",
              help="The aperture's (hole's) diameter, mm.")
@click.option("--distances", required=True, type=DistancesType(),
              help="Camera-to-plate distance of each pose, metres, in the order of the poses (at least 3; the "
                   "farthest at least twice the nearest).")
@click.option("--recording", type=click.Path(path_type=Path), metavar="DIR",
              help="A thermal recording holding the aperture still at each distance in turn.")
@click.option("--live", is_flag=True, help="Image the aperture with a camera now, prompting for each distance.")
@click.option("--thermal", "thermal_spec", metavar="SRC", help="The camera for --live: lepton, boson, uvc:N.")
@click.option("--seconds", default=2.0, show_default=True, type=click.FloatRange(0.5, 60), metavar="S",
              help="How long --live collects frames at each distance.")
@click.option("--hfov-deg", type=click.FloatRange(5.0, 170.0), metavar="DEG",
              help="Use the camera's focal length from this horizontal field of view instead of measuring it "
                   "from the aperture's size (default: measured, checked against the camera model's nominal one).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Base profile to add the optics to (default: the active one, else the recording's).")
@click.option("--technician", required=True, metavar="NAME", help="Who calibrates; recorded in the profile.")
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The profile history (default: $XDG_DATA_HOME/fever-station/profiles).")
def spot_size_command(
    images: tuple[Path, ...],
    setpoint: float,
    aperture_mm: float,
    distances: tuple[float, ...],
    recording: Path | None,
    live: bool,
    thermal_spec: str | None,
    seconds: float,
    hfov_deg: float | None,
    profile_path: Path | None,
    technician: str,
    profiles_dir: Path | None,
) -> None:
    """Measure the thermal optics' blur on a heated aperture at several distances; store it in the profile.

    Put a round hole of --aperture-mm (10-20 mm) in a matt plate at room temperature, a blackbody at
    --setpoint (at least 5 °C warmer) right behind it, and image it square-on from each of --distances,
    nearest where the hole spans about 4 px in radius, farthest where it spans about 1 px, with at
    least 22 px of plate around it. The peak pixel keeps a share of the contrast that falls as the hole
    shrinks; the Gaussian PSF sigma that explains every pose (the hole's sub-pixel position and each pixel's
    footprint included) is fitted and stored as [optics] psf_sigma_px of a new active profile, which the
    engine's spot-size correction then uses instead of the camera model's default.

    Refused, with nothing stored: fewer than 3 distances or the farthest under twice the nearest, the
    aperture not found, a focal length far from the camera's, residuals above 0.03 of the contrast, or a
    sigma outside 0.2-3 px. Run `station calibrate blackbody` first: the contrast is read through the
    profile's gain and offset.

    \b
    Examples:
      station calibrate spot-size --setpoint 35 --aperture-mm 20 --distances 0.4,0.7,1.1,1.5 \\
          --recording /tmp/aperture --technician ada
      station calibrate spot-size --setpoint 35 --aperture-mm 20 --distances 0.4,0.7,1.1,1.5 \\
          d040.png d070.png d110.png d150.png --technician ada
      station calibrate spot-size --setpoint 35 --aperture-mm 20 --distances 0.4,0.7,1.1,1.5 \\
          --live --thermal lepton --technician ada
    """
    kind = _choose_input(images, recording, live, thermal_spec)
    try:
        setpoint = check_setpoint(setpoint)
    except ValueError as exc:
        raise StationError(f"--setpoint: {exc}") from None
    try:
        check_distances(distances)
    except ValueError as exc:
        raise StationError(f"--distances: {exc}") from None
    if kind == "images" and len(images) != len(distances):
        raise StationError(f"{len(distances)} --distances for {len(images)} images: give one distance per image, "
                           "in the same order")
    if not technician.strip():
        raise StationError("--technician: expected the name of who calibrates, got nothing")

    store = ProfileStore(profiles_dir)
    rec = Recording.open(recording) if recording is not None else None
    base, base_label = _base_profile(profile_path, store, [rec] if rec is not None else [])

    if rec is not None:
        inputs, camera = _recording_poses(rec, base, setpoint)
        if len(inputs) != len(distances):
            found = ", ".join(i.label for i in inputs) or "none"
            raise StationError(
                f"{rec.path}: {len(inputs)} still poses of the aperture ({found}) for {len(distances)} --distances: "
                f"hold it still for at least {MIN_STILL_S:g} s at each distance, and give one distance per pose"
            )
    elif kind == "live":
        inputs, camera = _live_poses(thermal_spec or "", distances, seconds, base, setpoint, _prompt,
                                     lambda line: click.echo(line, err=True))
    else:
        inputs, camera = _image_poses(images, base)

    blackbody_signal = float(signal_from_celsius(setpoint, camera.planck))
    poses: list[PoseReading] = []
    plates: list[float] = []
    for item, distance in zip(inputs, distances, strict=True):
        try:
            read = find_aperture(item.signal, blackbody_signal)
        except ValueError as exc:
            raise StationError(f"{item.label}: {exc}") from None
        plate_c = float(celsius_from_signal(read.background, camera.planck))
        if setpoint - plate_c < MIN_CONTRAST_C:
            raise StationError(f"{item.label}: the blackbody ({setpoint:g} °C) is only {setpoint - plate_c:.1f} °C "
                               f"above the plate ({plate_c:.1f} °C), at least {MIN_CONTRAST_C:g} °C needed: raise the "
                               "set point or cool the plate")
        poses.append(PoseReading(item.label, distance, read, blackbody_signal, item.frames))
        plates.append(plate_c)

    hfov = hfov_deg or _camera_hfov(camera.name)
    nominal = focal_from_hfov(max(camera.shape), hfov) if hfov is not None else None
    default_sigma = psf_sigma_px(camera.name or "")
    try:
        fit = fit_spot_size(poses, aperture_mm, focal_px=nominal if hfov_deg else None, nominal_focal_px=nominal,
                            first_sigma_px=default_sigma)
    except ValueError as exc:
        raise StationError(str(exc)) from None

    profile = replace(
        base,
        created=utc_now_iso(),
        technician=technician.strip(),
        optics_psf_sigma_px=round(fit.sigma_px, 4),
        schema_version=SCHEMA_VERSION,
    )
    path = store.save(profile)  # before any output: a fault up to here is one line and nothing else

    click.echo(f"base profile: {base_label}")
    height, width = camera.shape
    seen = f"camera {camera.name}, {width}x{height}" if camera.name else f"camera unknown, {width}x{height}"
    if hfov_deg:
        click.echo(f"{seen}: focal {fit.focal_px:.1f} px from --hfov-deg {hfov_deg:g} (the aperture's flux says "
                   f"{fit.measured_focal_px:.1f} px)")
    elif nominal is not None:
        click.echo(f"{seen}: focal {fit.focal_px:.1f} px from the aperture's flux (nominal {nominal:.1f} px for "
                   f"{hfov:g}°, {fit.measured_focal_px / nominal - 1:+.1%})")
    else:
        click.echo(f"{seen}: focal {fit.focal_px:.1f} px from the aperture's flux")
    click.echo(f"{'pose':<16}{'distance':>9}{'frames':>7}{'plate':>10}{'radius':>9}{'flux r':>9}{'phase x,y':>13}"
               f"{'retention':>11}{'fitted':>8}{'residual':>10}")
    for pose, plate_c in zip(fit.poses, plates, strict=True):
        dx, dy = pose.phase
        click.echo(f"{pose.label:<16}{pose.distance_m:>7.2f} m{pose.frames:>7}{plate_c:>7.2f} °C"
                   f"{pose.radius_px:>6.2f} px{pose.flux_radius_px:>6.2f} px{dx:>+7.2f},{dy:+.2f}"
                   f"{pose.measured:>11.3f}{pose.fitted:>8.3f}{pose.residual:>+10.3f}")
    click.echo(f"fit: PSF sigma {fit.sigma_px:.3f} px ± {fit.sigma_u_px:.3f} (the optics; each pixel's footprint "
               f"adds its own 1/12 px^2), RMS residual {fit.rms:.3f} of the contrast over {len(fit.poses)} poses")
    before = (f"the base profile had {base.optics_psf_sigma_px:g} px" if base.optics_psf_sigma_px is not None
              else f"the camera model's default is {default_sigma:.3f} px")
    click.echo(f"optics: psf_sigma_px = {profile.optics_psf_sigma_px:g} ({before})")
    click.echo(f"stored: {path} (active)")
    rad = base.radiometry
    if base.blackbody is None and rad.gain == 1.0 and rad.offset_c == 0.0:
        click.echo("note: the base profile's gain and offset are not fitted (1 and 0): a sensor offset of d °C "
                   f"changes the {setpoint - float(np.mean(plates)):.0f} °C contrast by d and every retention with it; "
                   "run `station calibrate blackbody` first", err=True)
