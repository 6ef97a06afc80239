"""``station calibrate``: the technicians' commands.

``register`` fits where visible pixels land on the thermal image, ``check-registration`` measures a
profile on new target poses, ``blackbody`` fits gain/offset against a reference source, ``verify``
checks the blackbody now, ``show`` prints the profile in effect, its age and its history.

Profiles are kept in a history and never overwritten (:class:`station.profile.history.ProfileStore`); the
station uses the active one unless ``--calibration`` says otherwise. Every fault is one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import click
from tabulate import tabulate

from calibration.cli.blackbody import blackbody_command, verify_command
from calibration.cli.spot_size import spot_size_command
from station.cli.group import CONTEXT, StationGroup
from station.errors import StationError
from station.profile import verification
from station.profile.history import ProfileStore
from station.profile.schema import (
    MAX_CALIBRATION_AGE_DAYS,
    CalibrationProfile,
    Radiometry,
    focal_from_hfov,
    utc_now_iso,
)

DEFAULT_VISIBLE_HFOV_DEG = 60.0


@click.group(cls=StationGroup, context_settings=CONTEXT)
def calibrate() -> None:
    """The technicians' calibration commands.

    \b
    Examples:
      station calibrate register pairs/ --target aruco --size-mm 50 --technician ada
      station calibrate register --recording target-rec/ --target checkerboard --pattern 9x6 --size-mm 40 \\
          --technician ada
      station calibrate check-registration PROFILE.toml new-pairs/ --target aruco --size-mm 50
      station calibrate blackbody --setpoint 35 --recording rec/ --technician ada
      station calibrate verify --recording rec/
      station calibrate show
    """


calibrate.add_command(blackbody_command, "blackbody")
calibrate.add_command(verify_command, "verify")
calibrate.add_command(spot_size_command, "spot-size")


# --------------------------------------------------------------------------------------------- options
def _parse_pattern(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int]:
    if value is None:
        return (0, 0)
    try:
        cols, rows = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected COLUMNSxROWS such as 9x6, got {value!r}") from None
    if cols < 2 or rows < 2:
        raise click.BadParameter(f"expected at least 2x2, got {value!r}")
    return cols, rows


def target_options(command: Callable) -> Callable:
    """The options that describe the calibration target, shared by register and check-registration."""
    for option in reversed(
        [
            click.option("--target", "target_kind", type=click.Choice(["aruco", "checkerboard", "circles"]),
                         default="aruco", show_default=True, help="What the cameras look at."),
            click.option("--size-mm", type=click.FloatRange(2, 1000),
                         help="Printed side of one ArUco marker or checkerboard square, or the circle spacing."),
            click.option("--pattern", callback=_parse_pattern, metavar="CxR",
                         help="Checkerboard inner corners or circles, columns x rows (e.g. 9x6)."),
            click.option("--dictionary", default="DICT_ARUCO_ORIGINAL", show_default=True,
                         help="OpenCV ArUco dictionary the markers come from."),
        ]
    ):
        command = option(command)
    return command


def _spec(target_kind: str, size_mm: float | None, pattern: tuple[int, int], dictionary: str):
    from calibration.targets import TargetSpec

    if size_mm is None:
        raise click.UsageError("give the target's printed size: --size-mm (marker side, square side or circle spacing)")
    if target_kind != "aruco" and pattern == (0, 0):
        raise click.UsageError(f"--target {target_kind} needs --pattern COLUMNSxROWS (e.g. 9x6)")
    try:
        return TargetSpec(target_kind, size_mm / 1000.0, pattern, dictionary)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _store(profiles: Path | None) -> ProfileStore:
    return ProfileStore(profiles)


profiles_option = click.option(
    "--profiles", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
    help="The profile history (default: $XDG_DATA_HOME/fever-station/profiles).",
)


# --------------------------------------------------------------------------------------------- register
@calibrate.command(context_settings=CONTEXT)
@click.argument("pairs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--recording", type=click.Path(path_type=Path), help="Target poses from a recording.")
@click.option("--live", is_flag=True, help="Capture poses from the cameras (with --visible and --thermal).")
@click.option("--visible", "visible_spec", metavar="SRC", help="Visible camera for --live.")
@click.option("--thermal", "thermal_spec", metavar="SRC", help="Thermal camera for --live.")
@click.option("--poses", default=6, show_default=True, type=click.IntRange(3, 50), help="Poses to capture live.")
@click.option("--points", "points_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Hand-picked point pairs (CSV) instead of a target.")
@target_options
@click.option("--visible-focal-px", type=click.FloatRange(50, 20000), help="The visible camera's focal length.")
@click.option("--visible-hfov", default=DEFAULT_VISIBLE_HFOV_DEG, show_default=True, type=click.FloatRange(10, 170),
              help="Its horizontal field of view, degrees, when the focal length is not given.")
@click.option("--reference-distance", "reference_m", type=click.FloatRange(0.2, 10),
              help="Metres at which the homography is exact (default: the poses' median).")
@click.option("--technician", required=True, help="Who made this calibration (kept in the profile).")
@click.option("--station-id", help="Station name (default: the base profile's).")
@click.option("--profile", "base_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Base profile whose radiometry and blackbody are kept (default: the active profile).")
@profiles_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the profile to FILE.")
@click.option("--force", is_flag=True,
              help="Store and activate the fit even when its error is far worse than the target is detected to.")
def register(pairs: tuple[Path, ...], recording: Path | None, live: bool, visible_spec: str | None,
             thermal_spec: str | None, poses: int, points_file: Path | None, target_kind: str, size_mm: float,
             pattern: tuple[int, int], dictionary: str, visible_focal_px: float | None, visible_hfov: float,
             reference_m: float | None, technician: str, station_id: str | None, base_path: Path | None,
             profiles: Path | None, out: Path | None, force: bool) -> None:
    """Fit the visible -> thermal registration and store it as the active profile.

    Poses come from image pairs (folders of NAME_visible.png + NAME_thermal.png, or the files),
    from a recording (--recording), from the cameras (--live) or, without a target, from hand-picked
    points (--points FILE: CSV with columns visible_x, visible_y, thermal_x, thermal_y and optionally
    distance_m and pose). Prints the error in thermal pixels on the poses fitted and on each pose
    left out.

    A fit whose RMS error exceeds 1.5 % of the thermal image's diagonal (at least 2 px; 3 px on a
    160x120 Lepton) is refused, exit 1, nothing stored: honest fits stay well under it, while pairs that
    do not belong together (a visible image beside another pose's thermal one) are far above. --force
    stores and activates it anyway, and says so.
    """
    from calibration.registration_fit import fit_registration

    sources = sum([bool(pairs), recording is not None, live, points_file is not None])
    if sources != 1:
        raise click.UsageError("give exactly one of: image PAIRS, --recording DIR, --live, --points FILE")
    store = _store(profiles)
    base = _base_profile(store, base_path)
    if points_file is not None:
        from calibration.points import read_points

        found, has_depth = read_points(points_file)
        if visible_focal_px is None and base is not None:
            visible_focal_px = base.registration.visible_focal_px
        parallax = has_depth
    else:
        spec = _spec(target_kind, size_mm, pattern, dictionary)
        measured = list(_poses(pairs, recording, live, visible_spec, thermal_spec, poses, spec, visible_hfov,
                               visible_focal_px))
        visible_focal_px = visible_focal_px or measured[0][1]  # the focal the depths were measured with
        found = [pose for pose, _ in measured]
        parallax = True
    fit = fit_registration(found, visible_focal_px or 1.0, reference_distance_m=reference_m, parallax=parallax)
    if visible_focal_px is None:
        raise StationError("the engine needs the visible camera's focal length to tell a face's distance: "
                           "give --visible-focal-px (or a base --profile that has it)")
    _print_fit(fit, parallax)
    forced = _judge_fit(fit, points_file is not None, force)
    profile = CalibrationProfile(
        station_id=station_id or (base.station_id if base else "station"),
        created=utc_now_iso(),
        registration=fit.registration,
        radiometry=base.radiometry if base else Radiometry(),
        blackbody=base.blackbody if base else None,
        technician=technician,
    )
    path = store.save(profile)
    click.echo(f"stored {path} (now the active profile)")
    if forced:
        click.echo(f"warning: stored and made active with --force although its {fit.rms_px:.2f} px RMS exceeds "
                   f"the {fit.acceptable_px:.1f} px a good fit stays under", err=True)
    if out is not None:
        profile.save(out)
        click.echo(f"also written to {out}")


def _poses(pairs, recording, live, visible_spec, thermal_spec, n_poses, spec, hfov, focal) -> Iterator[tuple]:
    """(PosePoints, focal) for every usable pose of the chosen input."""
    from calibration.targets import load_image, match_pose, pair_files

    if pairs:
        for name, visible_path, thermal_path in pair_files(list(pairs)):
            visible, thermal = load_image(visible_path), load_image(thermal_path)
            f = focal or focal_from_hfov(visible.shape[1], hfov)
            yield match_pose(name, visible, thermal, spec, f), f
        return
    if recording is not None:
        from calibration.capture import poses_from_recording

        yield from poses_from_recording(recording, spec, hfov, focal, echo=click.echo)
        return
    if not (visible_spec and thermal_spec):
        raise click.UsageError("--live needs both --visible SRC and --thermal SRC")
    from calibration.capture import poses_live

    for pose, f in poses_live(visible_spec, thermal_spec, n_poses, spec, hfov, focal, prompt=_prompt,
                              echo=lambda line: click.echo(line, err=True)):
        yield pose, f


def _prompt(k: int, n: int) -> None:
    click.prompt(f"pose {k}/{n}: hold the target still at a new distance or angle, then press Enter",
                 default="", show_default=False, prompt_suffix=" ")


def _table(headers: list[str], rows: list[list[object]]) -> str:
    """A per-pose table: the name left-aligned as text (a pose may be named "3"), figures to 0.01, "-" for none."""
    return tabulate(rows, headers=headers, tablefmt="plain", floatfmt=".2f", missingval="-",
                    disable_numparse=[0], colalign=("left",) + ("right",) * (len(headers) - 1))


def _print_fit(fit, parallax: bool) -> None:
    click.echo(_table(["pose", "distance m", "points", "fit rms px", "left out px"],
                      [[name, fit.distances_m[name], fit.points[name], error, fit.per_pose_lopo_px.get(name)]
                       for name, error in fit.per_pose_rms_px.items()]))
    lopo = f"{fit.lopo_rms_px:.2f}" if fit.lopo_rms_px is not None else "n/a (fewer than 3 poses)"
    click.echo(f"registration: {fit.rms_px:.2f} px RMS on the poses fitted, {lopo} px leaving each pose out "
               "(thermal pixels)")
    if parallax and fit.homography_lopo_px is not None and fit.lopo_rms_px is not None:
        gain = 100.0 * (1.0 - fit.lopo_rms_px / fit.homography_lopo_px)
        click.echo(f"a single homography: {fit.homography_rms_px:.2f} px fitted, {fit.homography_lopo_px:.2f} px "
                   f"left out; with parallax {gain:.0f} % lower on unseen poses")
    if fit.rejected_points:
        click.echo(f"{fit.rejected_points} points left out as detection outliers (far from what the rest agree on)")
    reg = fit.registration
    click.echo(f"reference distance {reg.reference_distance_m:.2f} m, parallax ({reg.parallax_px_m[0]:.2f}, "
               f"{reg.parallax_px_m[1]:.2f}) px*m, visible focal {reg.visible_focal_px:.1f} px")
    distances = list(fit.distances_m.values())
    if parallax and distances and max(distances) / min(distances) < 1.25:
        click.echo("warning: the poses span less than 25 % in distance; add poses nearer and farther to pin "
                   "the parallax down", err=True)


def _judge_fit(fit, hand_picked: bool, force: bool) -> bool:
    """Refuse a fit far worse than the target's detection accuracy unless forced; True when forced through.

    Such a fit is not a slightly worse calibration but a wrong one: its points do not come from one
    geometry, most often because a visible image was paired with another moment's thermal image. Made
    active, it would map every face somewhere else, so it takes a deliberate ``--force``.
    """
    if fit.acceptable:
        return False
    if force:
        return True
    height, width = fit.thermal_shape
    if hand_picked:
        image = f"the {width}x{height} area the thermal points span"
        check = "check each row gives the same physical point in both images"
    else:
        image = f"this {width}x{height} thermal image"
        check = "check each visible image is paired with the thermal image of the same moment"
    raise StationError(
        f"registration: {fit.rms_px:.2f} px RMS is far worse than target points are found to (a good fit stays "
        f"under {fit.acceptable_px:.1f} px on {image}): the points do not agree on one geometry; {check} (the "
        "per-pose errors above show where), or store it anyway with --force; nothing was stored"
    )


def _base_profile(store: ProfileStore, base_path: Path | None) -> CalibrationProfile | None:
    if base_path is not None:
        return CalibrationProfile.load(base_path)
    return store.active()


# --------------------------------------------------------------------------------------------- check
@calibrate.command("check-registration", context_settings=CONTEXT)
@click.argument("profile_path", metavar="PROFILE", type=click.Path(path_type=Path))
@click.argument("pairs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--recording", type=click.Path(path_type=Path), help="Target poses from a recording.")
@target_options
def check_registration(profile_path: Path, pairs: tuple[Path, ...], recording: Path | None, target_kind: str,
                       size_mm: float, pattern: tuple[int, int], dictionary: str) -> None:
    """Measure a profile's registration on new target pairs: RMS per pair and overall.

    Each pair's distance comes from the target's apparent size, as the engine takes a face's from
    its eye spacing, using the profile's own visible focal length.
    """
    from calibration.registration_fit import check_registration as measure

    if bool(pairs) == (recording is not None):
        raise click.UsageError("give image PAIRS or --recording DIR (one of them)")
    profile = CalibrationProfile.load(profile_path)
    spec = _spec(target_kind, size_mm, pattern, dictionary)
    focal = profile.registration.visible_focal_px
    found = [pose for pose, _ in _poses(pairs, recording, False, None, None, 0, spec, 60.0, focal)]
    per_pose, overall = measure(profile.registration, found)
    click.echo(_table(["pair", "distance m", "points", "rms px"],
                      [[pose.name, pose.distance_m, len(pose.visible_px), per_pose[pose.name]] for pose in found]))
    click.echo(f"overall: {overall:.2f} px RMS over {sum(len(p.visible_px) for p in found)} points "
               f"(the profile was fitted to {profile.registration.rms_error_px:.2f} px)")


# --------------------------------------------------------------------------------------------- show
@calibrate.command(context_settings=CONTEXT)
@profiles_option
@click.option("--max-age-days", type=click.FloatRange(0.1, 3650), default=MAX_CALIBRATION_AGE_DAYS,
              show_default=True, help="Warn when the active profile is older than this.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store with the verification results (default: the station's).")
@click.option("--activate", metavar="NAME", help="Make an older profile of the history the active one.")
def show(profiles: Path | None, max_age_days: float, db: Path | None, activate: str | None) -> None:
    """The active profile, its age, the last verification and the history of profiles."""
    store = _store(profiles)
    if activate:
        click.echo(f"active profile is now {store.activate(activate).name}")
    history = store.history()
    if not history:
        raise StationError(f"{store.root}: no calibration profiles yet (run station calibrate register)")
    active = next((s for s in history if s.active), None)
    if active is None:
        click.echo("no active profile: choose one with --activate NAME")
    elif active.profile is not None:
        _describe(active.path, active.profile, max_age_days)
    last = _last_verification(db)
    if last:
        click.echo(last)
    unreadable = sum(1 for s in history if s.profile is None)
    note = f", {unreadable} unreadable" if unreadable else ""
    click.echo(f"history ({len(history)} profiles{note}, oldest first, in {store.root}):")
    for stored in history:
        p = stored.profile
        mark = "*" if stored.active else " "
        if p is None:
            click.echo(f" {mark} {stored.name}  unreadable: {stored.error}")
            continue
        bb = f"blackbody {p.blackbody.setpoint_c:.1f} °C" if p.blackbody else "no blackbody"
        click.echo(f" {mark} {stored.name}  {p.created}  {p.technician or '-'}  registration "
                   f"{p.registration.rms_error_px:.2f} px  gain {p.radiometry.gain:.4f} offset "
                   f"{p.radiometry.offset_c:+.3f} °C  {bb}")
    if active is not None and active.profile is None:
        # Listed above with the others; a station cannot screen with it, so the command fails.
        raise StationError(f"{active.path}: the active profile is unreadable ({active.error}); make a readable one "
                           "active with --activate NAME, or recalibrate")


def _describe(path: Path, profile: CalibrationProfile, max_age_days: float) -> None:
    age = profile.age_days()
    reg, rad = profile.registration, profile.radiometry
    click.echo(f"active profile: {path.name}")
    click.echo(f"  station {profile.station_id}, made {profile.created} by {profile.technician or 'unknown'}, "
               f"{age:.1f} days old")
    click.echo(f"  registration {reg.rms_error_px:.2f} px RMS, reference {reg.reference_distance_m:.2f} m, "
               f"parallax ({reg.parallax_px_m[0]:.2f}, {reg.parallax_px_m[1]:.2f}) px*m")
    click.echo(f"  radiometry gain {rad.gain:.4f}, offset {rad.offset_c:+.3f} °C, emissivity {rad.emissivity:.2f}")
    if profile.blackbody:
        bb = profile.blackbody
        click.echo(f"  blackbody ROI {list(bb.roi)}, set point {bb.setpoint_c:.2f} °C ± {bb.tolerance_c:.2f}")
    else:
        click.echo("  no blackbody: nothing ties the camera's numbers to degrees, so the station screens nobody")
    if profile.optics_psf_sigma_px is not None:
        click.echo(f"  optics PSF sigma {profile.optics_psf_sigma_px:.3f} px (measured: station calibrate spot-size)")
    else:
        click.echo("  optics PSF: the camera model's default (station calibrate spot-size measures it)")
    if age > max_age_days:
        click.echo(f"warning: the calibration is {age:.0f} days old, past the {max_age_days:g}-day maximum: "
                   "the station pauses screening until it is recalibrated", err=True)


def _last_verification(db: Path | None) -> str | None:
    """The newest verification logged in the event store, as one line (None when there is no log)."""
    from station.log.store import EventStore
    from station.paths import data_dir

    path = db or data_dir() / "station.db"
    if not path.is_file():
        return None
    store = EventStore(path)
    try:
        return "last blackbody check: " + verification.summary(store.last_system_event(verification.KINDS))
    finally:
        store.close()
