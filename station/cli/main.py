"""The ``station`` command: the one entry point for guards, technicians and auditors.

This module is the composition root: it is the only place in ``station`` allowed to reach into
``calibration`` and ``ui`` (lazily, inside the commands that need them), so the headless commands
never load Qt. Every fault from outside the program (a bad path, a corrupt recording, a missing
camera) reaches the user as one line and a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from calibration.cli.main import calibrate
from station.cli.audit import audit, export_command
from station.cli.body_model import body_model
from station.cli.fleet import fleet
from station.cli.group import CONTEXT, StationGroup
from station.cli.imports import import_command
from station.cli.model import model
from station.cli.purge import purge
from station.cli.record import record_command
from station.errors import StationError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_RECORDING = REPO_ROOT / "recordings" / "demo"
# How the bundled demo recording was made; tests regenerate it with exactly these settings.
DEMO_SETTINGS: dict[str, Any] = {"people": 9, "fever_fraction": 0.25, "seed": 2028, "thermal_camera": "lepton"}


@click.group(cls=StationGroup, context_settings=CONTEXT)
@click.version_option(package_name="fever-station", prog_name="station")
def main() -> None:
    """Thermal-imaging fever screening station.

    \b
    Examples:
      station demo                          the station on its bundled demo recording
      station simulate /tmp/rec --people 20 a recording with ground truth
      station run --recording /tmp/rec --headless --fast
      station cameras                       what is connected
      station doctor                        what is fine and what is not
    """


# --------------------------------------------------------------------------------------------- simulate
@main.command(context_settings=CONTEXT)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--people", default=8, show_default=True, type=click.IntRange(1, 500), help="Visitors to simulate.")
@click.option("--fever-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Share of visitors who are febrile (37.6-39.5 °C).")
@click.option("--glasses-fraction", default=0.15, show_default=True, type=click.FloatRange(0, 1))
@click.option("--pair-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1),
              help="Share of visitors who walk up two together.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same recording, byte for byte.")
@click.option("--thermal-camera", default="lepton", show_default=True, type=click.Choice(["lepton", "boson"]),
              help="lepton: 160x120 8.7 Hz TLinear; boson: 320x256 30 Hz raw counts.")
@click.option("--visible-fps", default=15.0, show_default=True, type=click.FloatRange(1, 60))
@click.option("--video", "video_format", default="mp4", show_default=True, type=click.Choice(["mp4", "avi", "mkv"]),
              help="mp4: compact MPEG-4 (lossy); avi: lossless HuffYUV, fast to decode; mkv: lossless FFV1.")
@click.option("--drift", "drift_c", default=0.8, show_default=True, type=click.FloatRange(0, 2),
              help="Amplitude of the sensor's slow drift, °C.")
@click.option("--sensor-offset", "sensor_offset_c", default=0.0, show_default=True, type=float,
              help="Static sensor error, °C (the written profile corrects it).")
@click.option("--overwrite", is_flag=True, help="Replace an existing recording in OUT.")
@click.option("--target", type=click.Choice(["aruco", "checkerboard"]),
              help="Record a calibration target held at several poses instead of visitors.")
@click.option("--poses", default=8, show_default=True, type=click.IntRange(1, 200),
              help="With --target: how many poses to hold the target in.")
def simulate(out: Path, video_format: str, overwrite: bool, target: str | None, poses: int, **settings: Any) -> None:
    """Write a simulated recording with its ground truth (truth.jsonl) and true calibration.

    People walk up from about 3 m, mostly one at a time, some in pairs; a share are febrile, some wear
    glasses. Both cameras see the same 3-D scene, so registration and parallax are real.

    With --target, a technician's registration session instead: an ArUco grid (493 mm) or a checkerboard
    (550 x 475 mm) with a heated pattern, held at --poses distances from 0.8 to 2.2 m (ArUco on the
    Lepton: to 1.3 m, as far as it resolves the markers) and angles, one thermal and one visible frame
    each; the truth is every corner's world point and pixel in both cameras. Only --seed,
    --thermal-camera, --video and --overwrite apply to it; visitor options are refused.

    \b
    Examples:
      station simulate /tmp/rec
      station simulate /tmp/rec --people 30 --seed 7 --thermal-camera boson
      station simulate /tmp/board --target aruco --poses 12 --video mkv
    """
    from click.core import ParameterSource

    from station.sim.simulator import Simulation, SimulationConfig, write_recording

    ctx = click.get_current_context()
    given = {p.name: p.opts[0] for p in ctx.command.params
             if ctx.get_parameter_source(p.name) is ParameterSource.COMMANDLINE}
    visitor_only = [flag for name, flag in given.items() if name in settings and name not in ("seed", "thermal_camera")]
    if target is not None and visitor_only:
        raise click.ClickException(f"{', '.join(visitor_only)}: only for visitors, not with --target")
    if target is None and "poses" in given:
        raise click.ClickException("--poses: only with --target (a calibration target recording)")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise StationError(f"{out}: the directory already holds files; choose another or add --overwrite")
    if out.exists() and not out.is_dir():
        raise StationError(f"{out}: exists and is not a directory")
    if target is not None:
        _simulate_target(out, target, poses, settings["seed"], settings["thermal_camera"], video_format, overwrite)
        return
    sim = Simulation(SimulationConfig(**settings))
    total = len(sim.visible_times) + len(sim.thermal_times)
    with click.progressbar(length=total, label=f"Simulating {sim.config.people} people", file=sys.stderr) as bar:
        write_recording(sim, out, visible_file=f"visible.{video_format}", overwrite=overwrite, progress=bar.update)
    febrile = sum(p.febrile for p in sim.people)
    click.echo(
        f"{out}: {sim.duration_s:.1f} s, {len(sim.people)} people ({febrile} febrile), "
        f"{len(sim.thermal_times)} thermal + {len(sim.visible_times)} visible frames"
    )


def _simulate_target(out: Path, kind: str, poses: int, seed: int, thermal_camera: str, video_format: str,
                     overwrite: bool) -> None:
    """``station simulate --target``: a calibration-target recording with the boards' true corners."""
    from station.sim.targets import TargetConfig, TargetSimulation, write_target_recording

    try:
        sim = TargetSimulation(TargetConfig(kind=kind, poses=poses, seed=seed, thermal_camera=thermal_camera))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with click.progressbar(length=2 * poses, label=f"Simulating {poses} {kind} poses", file=sys.stderr) as bar:
        write_target_recording(sim, out, visible_file=f"visible.{video_format}", overwrite=overwrite,
                               progress=bar.update)
    near, far = sim.distance_range_m
    click.echo(f"{out}: {kind} board at {poses} poses, {near:.2f}-{far:.2f} m, "
               f"{poses} thermal + {poses} visible frames")


# --------------------------------------------------------------------------------------------- run / demo
@main.command(context_settings=CONTEXT)
@click.option("--visible", "visible_spec", metavar="SRC", help="Device index, URL, video file (not with --recording).")
@click.option("--thermal", "thermal_spec", metavar="SRC", help="lepton, boson, uvc:N or a device index.")
@click.option("--recording", type=click.Path(path_type=Path), help="Replay a recording instead of cameras.")
@click.option("--calibration", type=click.Path(path_type=Path), help="Profile to use (default: the recording's).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store (default: the station's, under $XDG_DATA_HOME/fever-station).")
@click.option("--headless", is_flag=True, help="No window: JSON lines on --events.")
@click.option("--fast", is_flag=True, help="Replay as fast as possible instead of in real time.")
@click.option("--events", "events_path", default="-", show_default=True, metavar="-|FILE",
              help="Where headless mode writes its JSON lines.")
@click.option("--kiosk", is_flag=True, help="The window full screen, for the station's own monitor.")
@click.option("--reference-c", type=click.FloatRange(20, 50), metavar="C",
              help="Thermal-only recording without a profile: its reference disc (found in the frames) is held "
                   "at C °C; every frame is corrected by it.")
@click.option("--fleet", "fleet_url", metavar="URL",
              help="Publish the log to the fleet's broker, mqtt://HOST[:PORT] or mqtts://... (default: [fleet] "
                   "in the settings file; neither: connect nowhere).")
@click.option("--site", "fleet_site", metavar="SITE", help="With --fleet: this station's site id.")
@click.option("--station-id", "fleet_station_id", metavar="ID", help="With --fleet: this station's id (its MQTT user).")
@click.option("--fleet-credentials", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help='With --fleet: a file (mode 0600) holding password = "...".')
@click.option("--fleet-ca", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With an mqtts:// broker: the CA certificate that signed it (default: the system's).")
def run(
    visible_spec: str | None,
    thermal_spec: str | None,
    recording: Path | None,
    calibration: Path | None,
    db: Path | None,
    headless: bool,
    fast: bool,
    events_path: str,
    kiosk: bool,
    reference_c: float | None,
    fleet_url: str | None,
    fleet_site: str | None,
    fleet_station_id: str | None,
    fleet_credentials: Path | None,
    fleet_ca: Path | None,
) -> None:
    """Run the station on cameras or on a recording: the guards' window, or headless.

    Every decision is logged in the event store; headless, each decision and system event is also
    written as one JSON line.

    \b
    Examples:
      station run --recording recordings/demo
      station run --recording /tmp/rec --headless --fast --events /tmp/events.jsonl --db /tmp/s.db
      station run --thermal lepton --visible 0 --calibration station.toml --kiosk
      station run --recording /tmp/rec --headless --fleet mqtt://desk.local --site north --station-id st-a \\
          --fleet-credentials ~/.config/fever-station/fleet.toml
    """
    from station.paths import default_db_path

    db = db or default_db_path()
    fleet = {"url": fleet_url, "site": fleet_site, "station_id": fleet_station_id, "credentials": fleet_credentials,
             "ca_file": fleet_ca}
    if headless or not _window_can_open(None):
        _screen_headless(visible_spec, thermal_spec, recording, calibration, db, fast, events_path, reference_c,
                         fleet=fleet)
    else:
        _screen_in_window(visible_spec, thermal_spec, recording, calibration, db, fast, kiosk, None, 0.0,
                          reference_c=reference_c, fleet=fleet)


@main.command(context_settings=CONTEXT)
@click.option("--fast", is_flag=True, help="Replay as fast as possible instead of in real time.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store (default: demo.db beside the station's own, never the station's).")
@click.option("--headless", is_flag=True, help="No window: JSON lines on standard output.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write a PNG of the window after --after seconds, then exit.")
@click.option("--after", "after_s", default=12.0, show_default=True, type=click.FloatRange(0.1, 600),
              metavar="SECONDS", help="When to take the --screenshot.")
@click.option("--kiosk", is_flag=True, help="The window full screen.")
def demo(fast: bool, db: Path | None, headless: bool, screenshot: Path | None, after_s: float, kiosk: bool) -> None:
    """The station on its bundled demo recording.

    Opens the guards' window where there is a display (or with --screenshot), else runs headless and
    prints the JSON lines. Fetches the face model on first use.

    \b
    Examples:
      station demo
      station demo --screenshot demo.png --after 12
      station demo --headless --fast
    """
    import os

    from station.paths import default_db_path
    from station.screen.model_setup import ModelManifest, prepare_model

    if not DEMO_RECORDING.is_dir():
        raise StationError(f"{DEMO_RECORDING}: the demo recording is missing; regenerate it with "
                           f"`station simulate {DEMO_RECORDING} " + _demo_flags() + "`")
    if not (REPO_ROOT / "models" / ModelManifest.load().file).is_file():
        click.echo("first use: fetching the face model (station model fetch) ...", err=True)
        prepare_model()
    db = db or default_db_path("demo.db")
    display = any(os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if headless or (screenshot is None and not display):
        if not headless:
            click.echo("no display here: running headless (the window needs X11, Wayland or "
                       "QT_QPA_PLATFORM)", err=True)
        _screen_headless(None, None, DEMO_RECORDING, None, db, fast, "-")
        return
    if screenshot is not None and not display:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen
    if not _window_can_open(screenshot):
        _screen_headless(None, None, DEMO_RECORDING, None, db, fast, "-")
        return
    _screen_in_window(None, None, DEMO_RECORDING, None, db, fast, kiosk, screenshot, after_s)


def _window_can_open(screenshot: Path | None) -> bool:
    """Whether the window can open here, asked before any Qt object exists.

    Qt answers a missing library or an unreachable display by aborting the process (exit 134) with
    its own multi-line message, so the question goes to a child process (:mod:`station.qt_probe`).
    When the answer is no, one line on stderr says why and names the fix.

    Parameters
    ----------
    screenshot
        The PNG ``station demo --screenshot`` is to write, or None. A screenshot needs no screen, so
        it is then drawn offscreen rather than given up.

    Returns
    -------
    bool
        True to open the window; False to screen headless instead, as on a machine without a display.

    Raises
    ------
    StationError
        A screenshot was asked for and not even the offscreen platform starts.
    """
    import os

    from station.qt_probe import probe_platform

    probe = probe_platform()
    if probe.ok:
        return True
    if screenshot is not None:
        if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
            raise StationError(f"{probe.message()} (not even offscreen, so no screenshot)")
        click.echo(f"{probe.message()}; drawing the screenshot offscreen", err=True)
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        return True
    click.echo(f"{probe.message()}; screening headless", err=True)
    return False


def _demo_flags() -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in DEMO_SETTINGS.items())


def _fleet_settings(config, fleet: dict | None):
    """The fleet ``station run`` publishes to (its options over ``[fleet]``), checked before screening; None
    for the demo (``fleet`` None) and for a station configured for no fleet."""
    from station.headless import fleet_settings

    if fleet is None:
        return None
    return fleet_settings(config.fleet, **fleet)


def _screen_headless(visible_spec, thermal_spec, recording, calibration, db, fast, events_path,
                     reference_c=None, fleet: dict | None = None) -> None:
    from station.acquire.intake import open_intake
    from station.config import default_config_path, load_config
    from station.headless import events_output, json_line_writer, log_outcome, open_station, run_headless

    config = load_config(default_config_path())
    fleet_to = _fleet_settings(config, fleet)
    policy = config.alarm_policy()
    with open_intake(visible_spec, thermal_spec, recording, calibration, fast=fast, reference_c=reference_c) as intake:
        with open_station(intake, db=db, policy=policy, retention=config.retention_policy(),
                          fleet=fleet_to) as station, events_output(events_path) as out:
            counts = run_headless(station, json_line_writer(out))
            log = station.log
        where, code = log_outcome(log, db)
    summary = ", ".join(f"{n} {level}" for level, n in sorted(counts.items())) or "nobody screened"
    click.echo(f"screened: {summary}; {where}", err=True)
    if code:
        raise SystemExit(code)  # 4: rows held in the spill, 5: rows lost (station.headless)


def _screen_in_window(visible_spec, thermal_spec, recording, calibration, db, fast, kiosk, screenshot,
                      after_s, reference_c=None, fleet: dict | None = None) -> None:
    """The window around the same engine. Everything that can be checked before Qt starts is checked
    here, so a bad input is still one line and exit 1, not a window with an error in it."""
    from contextlib import contextmanager

    from station.acquire.intake import open_intake
    from station.acquire.recording import Recording
    from station.config import default_config_path, load_config
    from station.headless import open_station
    from station.profile.schema import CalibrationProfile
    from station.screen.model_setup import load_model_path

    config_path = default_config_path()
    config = load_config(config_path)
    fleet_to = _fleet_settings(config, fleet)
    load_model_path()
    if recording is not None:
        Recording.open(recording)
    if calibration is not None:
        CalibrationProfile.load(calibration)

    @contextmanager
    def factory():
        with open_intake(visible_spec, thermal_spec, recording, calibration, fast=fast, status=None,
                         reference_c=reference_c) as intake:
            with open_station(intake, db=db, policy=config.alarm_policy(),
                              retention=config.retention_policy(), fleet=fleet_to) as station:
                yield station

    from ui.app import run_window

    code = run_window(factory, db_path=db, kiosk=kiosk, screenshot=screenshot, after_s=after_s, config=config,
                      config_path=config_path)
    if code:
        raise SystemExit(code)


# --------------------------------------------------------------------------------------------- hardware
@main.command(context_settings=CONTEXT)
def cameras() -> None:
    """List the cameras connected to this machine.

    \b
    Example:
      station cameras
    """
    from station.acquire.sources.registry import discover_cameras

    found = discover_cameras()
    if not found:
        click.echo("no cameras found (no video devices on this machine)")
        return
    for cam in found:
        click.echo("  ".join(f"{k}={v}" for k, v in cam.items()))


@main.command(context_settings=CONTEXT)
@click.option("--calibration", type=click.Path(path_type=Path), help="Profile to check (default: the demo's).")
@click.option("--recording", type=click.Path(path_type=Path), help="Recording to check (default: the demo).")
def doctor(calibration: Path | None, recording: Path | None) -> None:
    """Check what the station needs: software, calibration, recording, cameras.

    Prints one line per check; exits non-zero if anything is broken.

    \b
    Example:
      station doctor
    """
    from station.cli.doctor import run_checks

    failed = False
    for check in run_checks(calibration=calibration, recording=recording or DEMO_RECORDING):
        click.echo(f"{check.status:<5} {check.name:<14} {check.detail}")
        failed |= check.status == "FAIL"
    if failed:
        raise SystemExit(1)

main.add_command(model)
main.add_command(calibrate)
main.add_command(export_command)
main.add_command(audit)
main.add_command(purge)
main.add_command(import_command)
main.add_command(record_command)
main.add_command(body_model)
main.add_command(fleet)

if __name__ == "__main__":  # pragma: no cover
    main()
