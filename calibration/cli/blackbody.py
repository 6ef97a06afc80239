"""``station calibrate blackbody`` and ``station calibrate verify``: the radiometric half of calibration.

``blackbody`` fits the profile's gain and offset against a blackbody at known set points and stores the
result as a new profile of the station's history (:class:`station.profile.history.ProfileStore`), which it
also makes active. ``verify`` checks a profile against its blackbody and logs the outcome in the
station's event store, so an auditor can see the station was in tolerance on a given day.

Both commands are plain click commands; ``calibration.cli.main`` adds them to the ``calibrate`` group, a
:class:`station.cli.group.StationGroup`, which turns every fault into one ``Error:`` line. Exit codes:

* ``0``: done (``verify``: the blackbody reads within tolerance);
* ``1``: a fault (a bad path, a corrupt profile, no blackbody found), one line;
* ``2``: a usage error from click (an unknown option, a value of the wrong type);
* ``3``: ``verify`` only: the verification ran and *failed*; a result, not a fault, so a script can
  tell "recalibrate" from "fix the command".

The science is in :mod:`calibration.blackbody`; this module only reads frames and prints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from calibration.blackbody import (
    BlackbodyRead,
    check_setpoint,
    find_blackbody_roi,
    fit_radiometry,
    read_blackbody,
    verify_reading,
)
from calibration.capture import frames_for
from station.acquire.radiometry import Radiometer
from station.acquire.recording import Recording
from station.cli.group import CONTEXT
from station.errors import ProfileError, StationError
from station.profile import verification
from station.profile.history import ProfileStore
from station.profile.schema import (
    MAX_CALIBRATION_AGE_DAYS,
    SCHEMA_VERSION,
    Blackbody,
    CalibrationProfile,
    utc_now_iso,
)

#: Exit code of a verification that ran and failed (0 pass, 1 fault, 2 usage error).
EXIT_VERIFY_FAILED = 3
#: Tolerance written when neither --tolerance nor the base profile gives one, °C.
DEFAULT_TOLERANCE_C = 0.3
#: Frames read per recording or live session, spread evenly over it. The reading's noise is already
#: far below the tolerance at a few dozen frames; the cap keeps an hour-long recording from being
#: held in memory (an hour of Boson frames would be ~30 GB of float32).
MAX_FRAMES = 300
#: A blackbody ROI whose temporal + spatial spread exceeds this is not a steady uniform emitter (a person
#: in it, a --roi over the emitter's edge, a source still warming up); the station's own monitor
#: refuses a frame above the same spread.
MAX_SPREAD_C = 0.5

class CelsiusType(click.ParamType):
    """A temperature in °C: a finite number.

    click's ``float`` takes ``nan`` and ``inf`` (Python's ``float()`` does), and a NaN reading then
    fails deep in the verification with a message that blames the profile file. A reading that is not a
    number is a mistake on the command line, refused there like ``abc`` is, naming the option.
    """

    name = "C"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a valid float (expected a temperature in °C such as 35.2)", param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number (expected a temperature in °C such as 35.2)", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number (expected a temperature in °C such as 35.2)", param, ctx)
        return number


CELSIUS = CelsiusType()


class RoiType(click.ParamType):
    """``X1,Y1,X2,Y2`` in thermal pixels, the profile's convention (``frame[y1:y2, x1:x2]``)."""

    name = "X1,Y1,X2,Y2"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        parts = str(value).replace(" ", "").split(",")
        try:
            x1, y1, x2, y2 = (int(p) for p in parts)
        except ValueError:
            self.fail(f"expected four whole pixel numbers X1,Y1,X2,Y2 such as 133,18,139,23, got {value!r}",
                      param, ctx)
        if not (0 <= x1 < x2 and 0 <= y1 < y2):
            self.fail(f"expected 0 <= X1 < X2 and 0 <= Y1 < Y2, got {value!r}", param, ctx)
        return (x1, y1, x2, y2)


# --------------------------------------------------------------------------------------------- frames
def _sensor_frames_from_recording(rec: Recording, base: CalibrationProfile) -> np.ndarray:
    """Up to :data:`MAX_FRAMES` thermal frames of a recording, evenly spread, in the sensor's own °C.

    The identity of the sensor's reading: the base profile's gain and offset are *not* applied, since
    the fit is of the sensor, not of whatever correction was in effect when it was recorded.
    """
    count = rec.count("thermal")
    if count == 0:
        raise StationError(f"{rec.path}: the recording holds no thermal frames")
    keep = set(np.unique(np.linspace(0, count - 1, min(count, MAX_FRAMES)).round().astype(int)).tolist())
    try:
        radiometer = Radiometer.for_stream(rec.thermal, base)
    except ValueError as exc:
        raise StationError(f"{rec.path}: {exc}") from None
    frames = [radiometer.sensor_celsius(f.image) for f in rec.frames("thermal") if f.index in keep]
    return np.stack(frames)


def _sensor_frames_live(spec: str, seconds: float, base: CalibrationProfile) -> np.ndarray:
    """Frames from a live thermal source for ``seconds``, in the sensor's own °C.

    The source is opened at once, so a missing camera is the source's own one-line
    :class:`~station.errors.SourceError`. Beyond :data:`MAX_FRAMES` every other frame is dropped and
    the stride doubled, so the frames kept stay spread over the whole session.
    """
    from station.acquire.sources.registry import open_source  # flirpy and OpenCV load only for --live

    source = open_source(spec, "thermal")
    source.open()
    frames: list[np.ndarray] = []
    radiometer: Radiometer | None = None
    stride, seen = 1, 0
    try:
        for frame in frames_for(source, seconds):
            if radiometer is None:
                radiometer = _live_radiometer(spec, source, frame.meta, base)
            if seen % stride == 0:
                frames.append(radiometer.sensor_celsius(frame.image))
                if len(frames) >= 2 * MAX_FRAMES:
                    frames, stride = frames[::2], stride * 2
            seen += 1
    finally:
        source.close()
    if not frames:
        raise StationError(f"thermal source {spec}: no frame in {seconds:g} s; check `station cameras`")
    return np.stack(frames)


def _live_radiometer(spec: str, source: Any, meta: Any, base: CalibrationProfile) -> Radiometer:
    """How a live source's pixels encode temperature: the frame's metadata, else the source's description."""
    info = source.describe()
    encoding = (meta or {}).get("encoding") or info.get("encoding")
    planck = (meta or {}).get("planck") or info.get("planck")
    if not isinstance(encoding, str):
        raise StationError(f"thermal source {spec}: it does not say how its pixels encode temperature (no "
                           "'encoding'); record it and calibrate from the recording")
    try:
        return Radiometer(encoding, base, planck=planck)
    except (TypeError, ValueError) as exc:
        raise StationError(f"thermal source {spec}: {exc}") from None


# --------------------------------------------------------------------------------------------- inputs
def _choose_input(recordings: Sequence[Path], readings: Sequence[float], live: bool, thermal: str | None) -> str:
    """Exactly one of --recording, --reading and --live (with --thermal); which one, by name."""
    given = [name for name, present in (("recording", bool(recordings)), ("reading", bool(readings)),
                                        ("live", live)) if present]
    if len(given) != 1:
        what = "none" if not given else " and ".join(f"--{g}" for g in given)
        raise StationError(f"give one of --recording DIR, --reading C or --live --thermal SRC (got {what})")
    if live and not thermal:
        raise StationError("--live needs --thermal SRC (lepton, boson, uvc:N, sim:SEED)")
    if thermal and not live:
        raise StationError("--thermal SRC is for --live; give --live as well, or calibrate from a --recording")
    return given[0]


def _base_profile(
    profile_path: Path | None, store: ProfileStore, recordings: Sequence[Recording]
) -> tuple[CalibrationProfile, str]:
    """The profile whose registration the new one keeps: --profile, else the active one, else the
    (first) recording's own calibration.toml."""
    if profile_path is not None:
        return CalibrationProfile.load(profile_path), str(profile_path)
    active = store.active_path()
    if active is not None:
        return CalibrationProfile.load(active), f"{active} (active)"
    for rec in recordings:
        text = rec.calibration_text()
        if text is not None:
            origin = str(rec.calibration_path)
            return CalibrationProfile.from_toml(text, origin=origin), origin
    raise ProfileError(
        f"no base profile for the registration: give --profile FILE (no profile is active in {store.root}"
        + (" and the recording carries no calibration.toml)" if recordings else ")")
    )


@dataclass(frozen=True)
class _Point:
    """One set point and what the sensor read there, with where the reading came from."""

    setpoint_c: float
    measured_c: float
    label: str
    roi: tuple[int, int, int, int] | None = None
    read: BlackbodyRead | None = None
    found: bool = False


def _read_frames(frames: np.ndarray, setpoint: float, roi: tuple[int, int, int, int] | None, label: str) -> _Point:
    """Find (unless given) and read the blackbody in one input's frames, refusing a non-uniform ROI."""
    try:
        found = roi is None
        used = find_blackbody_roi(frames, setpoint) if roi is None else roi
        read = read_blackbody(frames, used)
    except ValueError as exc:
        raise StationError(f"{label}: {exc}") from None
    if not math.isfinite(read.spread_c) or read.spread_c > MAX_SPREAD_C:
        raise StationError(
            f"{label}: the blackbody ROI {list(used)} is not a steady uniform emitter (spread "
            f"{read.spread_c:.2f} °C > {MAX_SPREAD_C:g} °C): keep people out of the view, let the source settle, "
            "or give a --roi inside the emitter"
        )
    return _Point(setpoint, read.median_c, label, tuple(used), read, found)


def _overlaps(a: Sequence[int], b: Sequence[int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --------------------------------------------------------------------------------------------- blackbody
@click.command("blackbody", context_settings=CONTEXT)
@click.option("--setpoint", "setpoints", multiple=True, required=True, type=CELSIUS,
              help="Blackbody set point, °C (20-50); once per recording or reading, in the same order.")
@click.option("--recording", "recordings", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="A recording of the blackbody at the matching set point (repeatable).")
@click.option("--reading", "readings", multiple=True, type=CELSIUS,
              help="The sensor's own reading of the blackbody, °C, uncorrected (repeatable).")
@click.option("--live", is_flag=True, help="Read the blackbody from a camera now (one set point).")
@click.option("--thermal", "thermal_spec", metavar="SRC", help="The camera for --live: lepton, boson, uvc:N, sim:SEED.")
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0.5, 120), metavar="S",
              help="How long --live collects frames.")
@click.option("--roi", type=RoiType(), help="The blackbody's ROI in thermal pixels (default: found automatically).")
@click.option("--tolerance", "tolerance_c", type=click.FloatRange(0.0, 5.0, min_open=True), metavar="C",
              help=f"Verification tolerance written to the profile, °C (default: the base profile's, else "
                   f"{DEFAULT_TOLERANCE_C:g}).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Base profile whose registration is kept (default: the active one, else the recording's).")
@click.option("--technician", required=True, metavar="NAME", help="Who calibrates; recorded in the profile.")
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The profile history (default: $XDG_DATA_HOME/fever-station/profiles).")
def blackbody_command(
    setpoints: tuple[float, ...],
    recordings: tuple[Path, ...],
    readings: tuple[float, ...],
    live: bool,
    thermal_spec: str | None,
    seconds: float,
    roi: tuple[int, int, int, int] | None,
    tolerance_c: float | None,
    profile_path: Path | None,
    technician: str,
    profiles_dir: Path | None,
) -> None:
    """Fit the profile's gain and offset against a blackbody, and store the result as the active profile.

    One set point fits an offset only (gain 1); two or more distinct set points fit gain and offset.
    Readings are of the sensor itself: recordings and cameras are read without any profile's correction.
    The new profile keeps the base profile's registration and records the blackbody for screening and
    `verify`: its ROI and the LAST set point given, so finish the session with the blackbody at the
    temperature it keeps while the station screens.

    \b
    Examples:
      station calibrate blackbody --setpoint 35 --recording /tmp/bb35 --technician ada
      station calibrate blackbody --setpoint 30 --recording /tmp/bb30 --setpoint 35 --recording /tmp/bb35 \\
          --technician ada
      station calibrate blackbody --setpoint 35 --reading 35.8 --roi 133,18,139,23 --technician ada
      station calibrate blackbody --setpoint 35 --live --thermal lepton --seconds 5 --technician ada
    """
    kind = _choose_input(recordings, readings, live, thermal_spec)
    try:
        checked = [check_setpoint(s) for s in setpoints]
    except ValueError as exc:
        raise StationError(f"--setpoint: {exc}") from None
    inputs = {"recording": len(recordings), "reading": len(readings), "live": 1}[kind]
    if len(checked) != inputs:
        given = {"recording": "--recording", "reading": "--reading", "live": "--live session"}[kind]
        raise StationError(f"{len(checked)} --setpoint for {inputs} {given}: give one set point per "
                           f"{given.lstrip('-')}, in the same order")
    if not technician.strip():
        raise StationError("--technician: expected the name of who calibrates, got nothing")

    store = ProfileStore(profiles_dir)
    recs = [Recording.open(path) for path in recordings]
    base, base_label = _base_profile(profile_path, store, recs)

    points: list[_Point] = []
    if kind == "recording":
        for rec, setpoint in zip(recs, checked, strict=True):
            points.append(_read_frames(_sensor_frames_from_recording(rec, base), setpoint, roi, str(rec.path)))
    elif kind == "live":
        frames = _sensor_frames_live(thermal_spec or "", seconds, base)
        points.append(_read_frames(frames, checked[0], roi, f"thermal {thermal_spec}"))
    else:
        points = [_Point(s, float(r), "entered reading") for s, r in zip(checked, readings, strict=True)]

    try:
        fit = fit_radiometry([(p.setpoint_c, p.measured_c) for p in points], base.radiometry)
    except ValueError as exc:
        raise StationError(str(exc)) from None

    in_scene = points[-1]
    profile_roi = roi or in_scene.roi or (base.blackbody.roi if base.blackbody else None)
    if profile_roi is None:
        raise StationError("entered readings need the blackbody's ROI for the profile: give --roi X1,Y1,X2,Y2 "
                           "(the base profile has no [blackbody] table)")
    tolerance = tolerance_c or (base.blackbody.tolerance_c if base.blackbody else DEFAULT_TOLERANCE_C)
    profile = replace(
        base,
        created=utc_now_iso(),
        technician=technician.strip(),
        radiometry=fit.radiometry,
        blackbody=Blackbody(roi=tuple(int(v) for v in profile_roi), setpoint_c=in_scene.setpoint_c,  # type: ignore[arg-type]
                            tolerance_c=float(tolerance)),
        schema_version=SCHEMA_VERSION,
    )

    path = store.save(profile)  # before any output: a fault up to here is one line and nothing else

    click.echo(f"base profile: {base_label}")
    for point, residual in zip(points, fit.residuals_c, strict=True):
        detail = ""
        if point.read is not None:
            detail = f" (ROI {list(point.roi or ())}, spread {point.read.spread_c:.2f} °C, {point.read.frames} frames)"
        click.echo(
            f"set point {point.setpoint_c:.2f} °C: measured {point.measured_c:.3f} °C{detail}, fitted "
            f"{point.setpoint_c + residual:.3f} °C, residual {residual:+.3f} °C  [{point.label}]"
        )
    rad = fit.radiometry
    how = "offset only (one set point), " if fit.offset_only else "gain and offset, "
    click.echo(f"fit: {how}gain {rad.gain:.5f}, offset {rad.offset_c:+.3f} °C, emissivity {rad.emissivity:g}")
    where = "given" if roi else ("found" if in_scene.found else "from the base profile")
    click.echo(f"blackbody: ROI {list(profile_roi)} ({where}), set point {in_scene.setpoint_c:.2f} °C "
               f"(the last given), tolerance {tolerance:.2f} °C")
    if in_scene.found and base.blackbody is not None and not _overlaps(in_scene.roi or (), base.blackbody.roi):
        click.echo(f"note: the blackbody was found at {list(in_scene.roi or ())}, away from the base profile's "
                   f"{list(base.blackbody.roi)}: check it is the blackbody, or give --roi", err=True)
    click.echo(f"stored: {path} (active)")


# --------------------------------------------------------------------------------------------- verify
@click.command("verify", context_settings=CONTEXT)
@click.option("--recording", type=click.Path(path_type=Path), metavar="DIR",
              help="Read the blackbody from a recording.")
@click.option("--reading", type=CELSIUS, help="The sensor's own reading of the blackbody, °C.")
@click.option("--live", is_flag=True, help="Read the blackbody from a camera now.")
@click.option("--thermal", "thermal_spec", metavar="SRC", help="The camera for --live: lepton, boson, uvc:N, sim:SEED.")
@click.option("--seconds", default=5.0, show_default=True, type=click.FloatRange(0.5, 120), metavar="S",
              help="How long --live collects frames.")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The profile to verify (default: the active one).")
@click.option("--profiles", "profiles_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The profile history (default: $XDG_DATA_HOME/fever-station/profiles).")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Event store the result is logged in (default: the station's).")
@click.option("--tolerance", "tolerance_c", type=click.FloatRange(0.0, 5.0, min_open=True), metavar="C",
              help="Override the profile's tolerance, °C.")
def verify_command(
    recording: Path | None,
    reading: float | None,
    live: bool,
    thermal_spec: str | None,
    seconds: float,
    profile_path: Path | None,
    profiles_dir: Path | None,
    db: Path | None,
    tolerance_c: float | None,
) -> None:
    """Check a profile against its blackbody: PASS or FAIL, logged in the station's event store.

    The blackbody is read at the profile's ROI and corrected by the profile's gain and offset only (not
    by the station's running blackbody correction, which would hide the very error checked for). The
    result is logged as a `calibration_verified` or `calibration_verify_failed` system event.
    Exit 0 on PASS, 3 on FAIL, 1 on a fault, 2 on a usage error.

    \b
    Examples:
      station calibrate verify --recording /tmp/bb35
      station calibrate verify --live --thermal lepton --seconds 5
      station calibrate verify --reading 35.02 --profile station.toml
    """
    from station.log.store import EventStore
    from station.paths import default_db_path
    from station.types import SystemEvent

    kind = _choose_input([recording] if recording else [], [reading] if reading is not None else [],
                         live, thermal_spec)
    store = ProfileStore(profiles_dir)
    if profile_path is not None:
        path = profile_path
    else:
        active = store.active_path()
        if active is None:
            raise ProfileError(f"no active calibration profile in {store.root}: run `station calibrate blackbody` "
                               "first, or give --profile FILE")
        path = active
    profile = CalibrationProfile.load(path)
    if profile.blackbody is None:
        raise ProfileError(f"{path}: the profile has no [blackbody] table (ROI, set point), so there is nothing "
                           "to verify against; run `station calibrate blackbody` first")
    bb = profile.blackbody

    events = EventStore(db or default_db_path())  # opened first: a bad --db fails before the camera runs
    try:
        spread = ""
        if kind == "reading":
            measured = float(reading)  # type: ignore[arg-type]
        else:
            if kind == "recording":
                rec = Recording.open(recording)  # type: ignore[arg-type]
                frames, label = _sensor_frames_from_recording(rec, profile), str(rec.path)
            else:
                frames, label = _sensor_frames_live(thermal_spec or "", seconds, profile), f"thermal {thermal_spec}"
            try:
                read = read_blackbody(frames, bb.roi)
            except ValueError as exc:
                raise StationError(f"{label}: {exc}") from None
            measured = read.median_c
            spread = f", spread {read.spread_c:.2f} °C over {read.frames} frames"
        try:
            result = verify_reading(measured, profile, tolerance_c=tolerance_c)
        except ValueError as exc:
            raise StationError(f"{path}: {exc}") from None
        age = profile.age_days()
        kind_logged = verification.VERIFIED if result.passed else verification.VERIFY_FAILED
        detail = {
            "profile": Path(path).name,
            "setpoint_c": round(result.setpoint_c, 3),
            "reading_c": round(result.reading_c, 3),
            "error_c": round(result.error_c, 3),
            "tolerance_c": round(result.tolerance_c, 3),
            "age_days": round(age, 2),
        }
        events.record_system_event(SystemEvent(kind_logged, time.time(), json.dumps(detail, separators=(",", ":"))))
    finally:
        events.close()

    old = f"; older than {MAX_CALIBRATION_AGE_DAYS:g} days: recalibrate" if age > MAX_CALIBRATION_AGE_DAYS else ""
    verdict = "PASS" if result.passed else "FAIL"
    click.echo(
        f"{verdict}  set point {result.setpoint_c:.2f} °C, reading {result.reading_c:.3f} °C, "
        f"error {result.error_c:+.3f} °C, tolerance ±{result.tolerance_c:.2f} °C; profile {Path(path).name}, "
        f"{age:.1f} days old{old}"
    )
    click.echo(f"sensor {measured:.3f} °C at ROI {list(bb.roi)}{spread}; logged {kind_logged} in {events.path}")
    if not result.passed:
        click.get_current_context().exit(EXIT_VERIFY_FAILED)
