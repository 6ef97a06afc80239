"""Radiometry: sensor values to °C, checked against FLIR's own test vectors and the simulator's physics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from station.acquire.radiometry import (
    BLACKBODY_EVENTS,
    LEPTON_PLANCK,
    BlackbodyMonitor,
    BlackbodyReading,
    FlirParams,
    Radiometer,
    apparent_to_object_c,
    apply_gain_offset,
    blackbody_reading,
    estimate_reflected_c,
    flir_raw_to_celsius,
    planck_from_flir,
    raw_to_celsius,
    signal_from_celsius,
    tlinear_to_celsius,
)
from station.profile.schema import CalibrationProfile, Radiometry
from station.sim import appearance
from station.sim.sensors import BOSON, LEPTON
from station.sim.simulator import Simulation, SimulationConfig
from station.types import Frame

RADIOMETRY_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "radiometry"
needs_vectors = pytest.mark.skipif(
    not RADIOMETRY_DATA.is_dir(),
    reason=f"needs the FLIR test vectors in ../shared/data/radiometry beside the repository ({RADIOMETRY_DATA})",
)


# ------------------------------------------------------------------------------------------ sensor to °C
def test_tlinear_is_centikelvin():
    raw = np.array([[0, 27315], [30915, 31265]], dtype=np.uint16)
    c = tlinear_to_celsius(raw)
    assert c.dtype == np.float32
    assert np.allclose(c, [[-273.15, 0.0], [36.0, 39.5]], atol=1e-4)
    with pytest.raises(TypeError, match="expected a uint16 TLinear array.*got dtype float64"):
        tlinear_to_celsius(raw.astype(np.float64))


def test_raw_counts_invert_the_simulated_boson():
    temps = np.array([[5.0, 22.5], [35.0, 42.0]])
    c = raw_to_celsius(BOSON.encode(temps), BOSON.planck.as_dict())
    assert c.dtype == np.float32
    assert np.abs(c - temps).max() < 0.01  # one count is ~0.01 °C at 35 °C


@pytest.mark.parametrize("emissivity,reflected", [(0.98, 22.0), (0.95, 10.0), (0.9, 40.0)])
def test_raw_counts_remove_what_the_surface_reflects(emissivity, reflected):
    p = BOSON.planck.as_dict()
    true = np.linspace(30.0, 40.0, 11)
    received = emissivity * signal_from_celsius(true, p) + (1 - emissivity) * signal_from_celsius(reflected, p)
    raw = received + p["O"]  # float counts: no rounding, so the inversion should be exact
    back = raw_to_celsius(raw, p, emissivity=emissivity, reflected_c=reflected)
    assert np.abs(back - true).max() < 1e-4
    apparent = raw_to_celsius(raw, p)
    assert np.all((apparent < true) == (reflected < true)), "a cooler room makes skin read low, a hotter one high"


def test_apparent_to_object_inverts_the_mixing_of_radiances():
    p = LEPTON_PLANCK
    true, room, eps = 36.5, 21.0, 0.98
    s = eps * signal_from_celsius(true, p) + (1 - eps) * signal_from_celsius(room, p)
    apparent = p["B"] / math.log(p["R"] / float(s) + p["F"]) - 273.15
    assert 0.2 < true - apparent < 0.35, "skin at 0.98 in a 21 °C room reads a quarter degree low"
    back = apparent_to_object_c(apparent, eps, room, p)
    assert isinstance(back, float) and back == pytest.approx(true, abs=1e-6)
    arr = apparent_to_object_c(np.full((2, 3), apparent, np.float32), eps, room, p)
    assert arr.dtype == np.float32 and arr.shape == (2, 3) and np.allclose(arr, true, atol=1e-4)
    assert apparent_to_object_c(33.3, 1.0, room) == pytest.approx(33.3, abs=1e-9)
    with pytest.raises(ValueError, match=r"emissivity: expected a number in \(0, 1\], got 1.2"):
        apparent_to_object_c(33.0, 1.2, room)
    with pytest.raises(ValueError, match="planck: expected keys R, B, F, O.*missing O"):
        apparent_to_object_c(33.0, 0.98, room, {"R": 1.0, "B": 1.0, "F": 1.0})


def test_lepton_planck_is_the_curve_the_simulator_renders_with():
    assert dict(LEPTON_PLANCK) == LEPTON.planck.as_dict()


def test_gain_and_offset():
    out = apply_gain_offset(np.array([30.0, 35.0]), 1.02, -0.5)
    assert out.dtype == np.float32 and np.allclose(out, [30.1, 35.2])
    with pytest.raises(ValueError, match="gain: expected a number above 0, got 0.0"):
        apply_gain_offset(np.zeros(2), 0.0, 0.0)


def test_reflected_temperature_ignores_people_and_a_cold_door():
    rng = np.random.default_rng(0)
    frame = rng.normal(22.0, 0.3, size=(120, 160)).astype(np.float32)
    frame[30:110, 50:110] = 34.0  # a person: 25 % of the frame
    frame[:, :10] = 12.0  # an open door: 6 %
    frame[5, 5] = np.nan
    assert estimate_reflected_c(frame) == pytest.approx(22.0, abs=0.3)
    with pytest.raises(ValueError, match=r"expected a \(H, W\) frame, got shape \(4,\)"):
        estimate_reflected_c(np.zeros(4))


# ------------------------------------------------------------------------------------------ FLIR's model
def test_flir_model_without_atmosphere_is_the_planck_curve_with_emissivity():
    params = FlirParams(r1=21106.77, r2=0.012545258, b=1501.0, f=1.0, o=-7340.0, emissivity=0.95,
                        object_distance_m=0.0, reflected_c=18.0)
    raw = np.arange(15000, 22000, 500, dtype=np.uint16)
    assert params.atmospheric_transmission() == 1.0
    full = flir_raw_to_celsius(raw, params)
    short = raw_to_celsius(raw, params.planck, emissivity=0.95, reflected_c=18.0)
    assert np.abs(full - short).max() < 1e-4


@needs_vectors
def test_flir_jpeg_vector_matches_thermimage():
    raw = np.load(RADIOMETRY_DATA / "IR_2412_raw.npy")
    reference = np.load(RADIOMETRY_DATA / "IR_2412_celsius_reference.npy")
    meta = json.loads((RADIOMETRY_DATA / "IR_2412_meta.json").read_text())
    celsius = flir_raw_to_celsius(raw, meta)
    assert celsius.dtype == np.float32 and celsius.shape == reference.shape
    assert np.abs(celsius - reference).max() < 0.01  # measured: ~2e-6 °C
    # The atmosphere and emissivity matter: the short form alone is far off for this bird.
    short = raw_to_celsius(raw, FlirParams.from_exif(meta).planck)
    assert np.abs(short - reference).max() > 0.3


@needs_vectors
def test_flir_seq_vector_through_flirpy_matches_thermimage():
    from flirpy.io.seq import Seq

    reference = np.load(RADIOMETRY_DATA / "SampleSEQ_celsius_reference.npy")
    seq = Seq(str(RADIOMETRY_DATA / "SampleSEQ.seq"))
    assert len(seq) == len(reference)
    for i, frame in enumerate(seq):
        celsius = flir_raw_to_celsius(frame.get_image(), FlirParams.from_flirpy(frame.meta))
        assert np.abs(celsius - reference[i]).max() < 0.01  # measured: ~3e-6 °C


def test_flir_params_say_what_is_missing():
    with pytest.raises(ValueError, match="FLIR metadata: expected key PlanckR2, got keys"):
        flir_raw_to_celsius(np.zeros(2), {"PlanckR1": 1.0})
    with pytest.raises(ValueError, match="relative_humidity: expected a fraction from 0 to 1, got 50"):
        FlirParams(r1=1.0, r2=1.0, b=1.0, f=1.0, o=0.0, relative_humidity=50)
    assert planck_from_flir(21106.77, 0.5, 1501, 1, -7340)["O"] == 7340.0


# ------------------------------------------------------------------------------------------ blackbody
def test_blackbody_reading_is_robust_to_a_few_bad_pixels():
    rng = np.random.default_rng(1)
    frame = rng.normal(22.0, 0.05, size=(40, 50)).astype(np.float32)
    frame[10:20, 30:40] = rng.normal(35.0, 0.05, size=(10, 10))
    frame[12, 32], frame[15, 35], frame[17, 37] = 0.0, 80.0, np.nan
    robust, spread, n = blackbody_reading(frame, (30, 10, 40, 20))
    assert robust == pytest.approx(35.0, abs=0.02)
    assert 0.03 < spread < 0.12 and n == 99
    assert blackbody_reading(frame, (30, 10, 40, 20), inset_px=2).valid_px <= 36
    with pytest.raises(ValueError, match="roi: expected 0 <= x1 < x2 <= 50 and 0 <= y1 < y2 <= 40 for a 50x40"):
        blackbody_reading(frame, (45, 10, 55, 20))


def _feed(monitor: BlackbodyMonitor, readings, t0: float = 0.0, dt: float = 0.1):
    out = []
    for k, r in enumerate(readings):
        update = monitor.update(BlackbodyReading(r, 0.06, 36) if isinstance(r, float) else r, t0 + k * dt)
        out.append(update)
    return out


def test_monitor_settles_then_reports_ok_and_corrects_the_drift():
    monitor = BlackbodyMonitor(35.0, 0.3, window=5)
    updates = _feed(monitor, [35.4, 35.42, 35.38, 35.41, 35.39, 35.40])
    assert [u.events for u in updates[:4]] == [[], [], [], []]
    assert updates[3].health.settling and updates[3].health.kind is None, "too few readings to judge stability"
    assert [e.kind for e in updates[4].events] == ["blackbody_ok"]
    assert updates[4].correction_c == pytest.approx(-0.40, abs=1e-9)
    assert "set point 35.00" in updates[4].events[0].detail
    assert monitor.screening_allowed and updates[5].events == []
    assert monitor.error_c == pytest.approx(0.40, abs=0.01)


def test_monitor_reports_every_fault_and_the_recovery():
    monitor = BlackbodyMonitor(35.0, 0.3, window=5)
    _feed(monitor, [35.2] * 5)
    assert monitor.screening_allowed
    hand = _feed(monitor, [BlackbodyReading(29.0, 4.0, 36)], t0=0.5)[0]  # a hand in front of it
    assert [e.kind for e in hand.events] == ["blackbody_not_seen"]
    assert "ROI reads 29.00" in hand.events[0].detail and not monitor.screening_allowed
    assert hand.correction_c == pytest.approx(-0.2), "an unseen frame keeps the last correction"
    back = _feed(monitor, [35.2], t0=0.6)[0]
    assert [e.kind for e in back.events] == ["blackbody_ok"]
    jump = _feed(monitor, [35.6], t0=0.7)[0]  # the source or the camera jumped
    assert [e.kind for e in jump.events] == ["blackbody_unstable"]
    assert "varied 0.400" in jump.events[0].detail
    # readings older than max_age_s leave the window, so a long gap means settling again, then ok
    later = _feed(monitor, [35.6] * 5, t0=10.0)
    assert [e.kind for u in later for e in u.events] == ["blackbody_ok"]
    assert set(BLACKBODY_EVENTS) >= {u.health.kind for u in later if u.health.kind}


def test_uncorrected_monitor_judges_the_raw_error_against_the_tolerance():
    monitor = BlackbodyMonitor(35.0, 0.3, window=3, applied=False)
    updates = _feed(monitor, [35.5, 35.5, 35.5])
    assert [e.kind for e in updates[-1].events] == ["blackbody_out_of_tolerance"]
    assert "+0.50 °C from the set point" in updates[-1].events[0].detail
    corrected = BlackbodyMonitor(35.0, 0.3, window=3)
    assert [e.kind for u in _feed(corrected, [35.5] * 3) for e in u.events] == ["blackbody_ok"]


def test_monitor_validates_its_settings():
    with pytest.raises(ValueError, match="window: expected a whole number of frames >= 1, got 0"):
        BlackbodyMonitor(35.0, 0.3, window=0)
    with pytest.raises(ValueError, match="tolerance_c: expected a number above 0, got -0.1"):
        BlackbodyMonitor(35.0, -0.1)


# ------------------------------------------------------------------------------------------ the simulator
@pytest.fixture(scope="module")
def lepton_sim() -> Simulation:
    return Simulation(SimulationConfig(people=5, seed=5, drift_c=0.8, sensor_gain=1.03, sensor_offset_c=0.5)).prepare()


@pytest.fixture(scope="module")
def boson_sim() -> Simulation:
    return Simulation(SimulationConfig(people=4, seed=5, thermal_camera="boson", drift_c=0.8, sensor_gain=0.98,
                                       sensor_offset_c=-0.6)).prepare()


def _radiometer(sim: Simulation, **kwargs) -> Radiometer:
    planck = sim.sensor.planck.as_dict() if sim.sensor.encoding == "raw-counts" else None
    return Radiometer(sim.sensor.encoding, sim.profile(), planck=planck, **kwargs)


def _roi_mean(image, profile) -> float:
    x1, y1, x2, y2 = profile.blackbody.roi
    return float(image.celsius[y1:y2, x1:x2].mean())


@pytest.mark.parametrize("which", ["lepton", "boson"])
def test_blackbody_correction_holds_the_set_point_despite_the_drift(which, lepton_sim, boson_sim):
    sim = lepton_sim if which == "lepton" else boson_sim
    profile = sim.profile()
    n = len(sim.thermal_times)
    drift = np.array([sim.flaws.drift(t) for t in sim.thermal_times])
    drifts, residuals = [], []
    # Stretches of consecutive frames where the drift is lowest, highest and at the start.
    for start in sorted({0, *(int(np.clip(i - 4, 0, n - 8)) for i in (drift.argmin(), drift.argmax()))}):
        radiometer = _radiometer(sim)
        for index in range(start, start + 8):
            image, _ = radiometer.convert(sim.render_thermal(index))
            if index - start >= 5:  # after the window has filled
                assert radiometer.screening_allowed
                drifts.append(sim.flaws.drift(image.t))
                residuals.append(_roi_mean(image, profile) - profile.blackbody.setpoint_c)
                assert image.blackbody_error_c == pytest.approx(sim.flaws.drift(image.t) / sim.flaws.gain, abs=0.05)
    assert np.ptp(drifts) > 0.5, "the stretches should see different drifts"
    assert np.abs(residuals).max() < 0.05


def test_true_profile_removes_a_sensor_offset():
    sim = Simulation(SimulationConfig(people=2, seed=3, drift_c=0.0, sensor_offset_c=0.8))
    setpoint = sim.config.blackbody_setpoint_c
    frame = sim.render_thermal(5)
    fitted = Radiometer(sim.sensor.encoding, sim.profile(), blackbody_correction=False)
    assert _roi_mean(fitted.convert(frame)[0], sim.profile()) == pytest.approx(setpoint, abs=0.05)
    identity = CalibrationProfile(
        station_id="x", created=sim.profile().created, registration=sim.profile().registration,
        radiometry=Radiometry(), blackbody=sim.profile().blackbody,
    )
    raw_image = Radiometer(sim.sensor.encoding, identity, blackbody_correction=False).convert(frame)[0]
    assert _roi_mean(raw_image, identity) == pytest.approx(setpoint + 0.8, abs=0.05)


def _stop_indices(sim: Simulation, person, k: int = 5) -> np.ndarray:
    t0, t1 = person.path[1].t + 0.2, person.path[2].t - 0.2
    idx = np.nonzero((sim.thermal_times > t0) & (sim.thermal_times < t1))[0]
    return idx[np.linspace(0, len(idx) - 1, k).round().astype(int)]


def skin_errors(sim: Simulation) -> dict[int, float]:
    """Per standing visitor without glasses: the station's canthus reading minus the true canthus_c.

    The reading is what a measurement would do: the hottest pixel of the 3x3 patch at the hotter
    canthus, its hot spot's peak corrected for the optics' spread (``station.screen.spot_size``), then for skin
    emissivity with the frame's estimated room temperature, averaged over the frames at the stop (one
    frame's hottest pixel is lifted by noise, lowered by optical blur).
    """
    from station.screen.spot_size import IPD_MM, psf_sigma_px, read_spot

    sigma = psf_sigma_px(sim.sensor.name)
    radiometer = _radiometer(sim)
    errors = {}
    for person in sim.people:
        if person.glasses:
            continue
        indices = _stop_indices(sim, person)
        for index in range(indices[0] - 5, indices[0]):  # let the blackbody window fill first
            radiometer.convert(sim.render_thermal(index))
        hotter = int(np.argmax(appearance.canthus_temperatures(person)))
        readings = []
        for index in indices:
            image, _ = radiometer.convert(sim.render_thermal(int(index)))
            pose = person.pose(image.t, sim.room.camera_height_m)
            if not sim.in_zone(person, pose):
                break
            canthi = sim.rig.thermal.project(sim.canthi_m(person, pose))
            cx, cy = np.rint(canthi[hotter]).astype(int)
            patch = image.celsius[cy - 1 : cy + 2, cx - 1 : cx + 2]
            iy, ix = np.unravel_index(int(np.argmax(patch)), patch.shape)
            # the station's ruler: the eyes (about twice the canthi's spacing) over the adult mean spacing
            eyes_px = float(np.linalg.norm(canthi[0] - canthi[1])) / (2 * appearance.CANTHUS_FROM_MIDLINE)
            spot = read_spot(image.celsius, (cx - 1 + ix, cy - 1 + iy), sigma, eyes_px / IPD_MM)
            apparent = float(patch.max()) if spot is None else spot.corrected_c
            readings.append(radiometer.skin_c(apparent, estimate_reflected_c(image.celsius)))
        else:
            errors[person.person_id] = float(np.mean(readings)) - person.canthus_c
    return errors


@pytest.mark.parametrize("which", ["lepton", "boson"])
def test_skin_reading_comes_back_to_the_true_canthus(which, lepton_sim, boson_sim):
    sim = lepton_sim if which == "lepton" else boson_sim
    errors = skin_errors(sim)
    assert len(errors) >= 3
    assert max(abs(e) for e in errors.values()) < 0.3, errors


def test_reflected_estimate_is_near_the_simulated_room(lepton_sim, boson_sim):
    for sim in (lepton_sim, boson_sim):
        image, _ = _radiometer(sim, blackbody_correction=False).convert(sim.render_thermal(3))
        assert estimate_reflected_c(image.celsius) == pytest.approx(sim.ambient_c + sim.flaws.drift(image.t), abs=1.0)


def test_radiometer_stops_screening_when_the_blackbody_is_hidden(lepton_sim):
    sim = lepton_sim
    radiometer = _radiometer(sim)
    kinds = []
    for index in range(10):
        frame = sim.render_thermal(index)
        if index in (6, 7):  # someone's hand over the blackbody, at room temperature
            image = frame.image.copy()
            x1, y1, x2, y2 = sim.profile().blackbody.roi
            image[y1 - 2 : y2 + 2, x1 - 2 : x2 + 2] = LEPTON.encode(np.full((1, 1), 27.0))[0, 0]
            frame = Frame(image=image, t=frame.t, index=frame.index)
        _, events = radiometer.convert(frame)
        kinds += [(index, e.kind) for e in events]
        assert radiometer.screening_allowed == (index >= 4 and index not in (6, 7))
    assert kinds == [(4, "blackbody_ok"), (6, "blackbody_not_seen"), (8, "blackbody_ok")]


def test_radiometer_validates_its_inputs(lepton_sim):
    profile = lepton_sim.profile()
    with pytest.raises(ValueError, match="planck: encoding 'raw-counts' needs the Planck constants"):
        Radiometer("raw-counts", profile)
    with pytest.raises(ValueError, match="encoding: expected one of tlinear-centikelvin, raw-counts, got 'y16'"):
        Radiometer("y16", profile)
    visible = Frame(image=np.zeros((4, 4, 3), np.uint8), t=0.0, index=0)
    with pytest.raises(ValueError, match="frame: expected a thermal Frame, got a visible frame"):
        Radiometer("tlinear-centikelvin", profile).convert(visible)


def test_radiometer_for_a_recorded_stream(boson_sim):
    from station.acquire.recording import ThermalStreamInfo

    s = boson_sim
    info = ThermalStreamInfo(width=s.sensor.width, height=s.sensor.height, fps=s.sensor.fps, camera="boson",
                             encoding="raw-counts", planck=s.sensor.planck.as_dict())
    radiometer = Radiometer.for_stream(info, s.profile(), blackbody_correction=False)
    image, _ = radiometer.convert(s.render_thermal(0))
    assert np.allclose(image.celsius, raw_to_celsius(image.raw, info.planck) * s.profile().radiometry.gain
                       + s.profile().radiometry.offset_c, atol=1e-4)


def test_profile_without_a_blackbody_always_allows_screening(lepton_sim):
    p = lepton_sim.profile()
    bare = CalibrationProfile(p.station_id, p.created, p.registration, p.radiometry, blackbody=None)
    radiometer = Radiometer("tlinear-centikelvin", bare)
    image, events = radiometer.convert(lepton_sim.render_thermal(0))
    assert events == [] and image.blackbody_error_c is None and radiometer.screening_allowed
