"""The simulator's thermal optics and scene variants: the physics the robustness bench rests on.

A small hot spot reads low through a real camera (the spot-size effect): the lens spreads it and each
pixel averages it with the cooler skin around it. These tests pin the pieces (the lens-and-pixel kernel,
defocus, pixel sampling), that the effect exists in rendered frames and moves the right way with the
spot's size, distance and contrast, that the truth still says the true canthus temperature, and that the
scene variants the bench uses make the paths they say.
"""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from station.sim import appearance, optics
from station.sim.appearance import SKIN_EMISSIVITY
from station.sim.people import CanthusSpot
from station.sim.sensors import A35, BOSON, LEPTON, SENSORS
from station.sim.simulator import Simulation, SimulationConfig


# ------------------------------------------------------------------------------------------ the kernel
@pytest.mark.parametrize("name", sorted(SENSORS))
def test_the_lens_and_pixel_kernel_integrates_to_one(name):
    lens = SENSORS[name].optics
    kernel = optics.pixel_kernel(lens)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)
    assert kernel.min() >= 0.0
    assert np.allclose(kernel, kernel[::-1, ::-1], atol=1e-7) and np.allclose(kernel, kernel.T, atol=1e-7)
    r = kernel.shape[0] // 2
    assert np.unravel_index(np.argmax(kernel), kernel.shape) == (r, r)


def test_the_diffraction_transfer_function_is_one_at_zero_and_zero_past_the_cutoff():
    rho = np.array([0.0, 1.0 / (14.0 * 1.1), 1.0 / (8.0 * 1.1) + 1e-6])
    otf = optics.diffraction_otf(rho, 1.1)
    assert otf[0] == pytest.approx(1.0)
    assert 0.0 < otf[1] < 0.3, "past the 14 µm cutoff only the shorter wavelengths pass"
    assert otf[2] == 0.0, "nothing passes beyond the 8 µm cutoff"
    lam, weight = optics.band_weights()
    assert weight.sum() == pytest.approx(1.0)
    assert 10.5 < float((lam * weight).sum()) < 11.2  # skin at 35 °C weighs the band's middle


def _point_source_on_detector(lens: optics.Optics, size_px: int = 21) -> np.ndarray:
    s = lens.oversample
    fine = np.zeros((size_px * s, size_px * s), np.float32)
    centre = (size_px // 2) * s + s // 2
    fine[centre, centre] = 1.0
    return optics.sample_pixels(fine, optics.pixel_kernel(lens), s)


def test_a_point_source_keeps_its_energy_and_spreads_wider_at_a_higher_f_number():
    fast = optics.Optics(pitch_um=12.0, focal_mm=4.0, f_number=1.0)
    slow = dataclasses.replace(fast, f_number=2.0)
    widths = []
    for lens in (fast, slow):
        image = _point_source_on_detector(lens)
        # One fine sample is 1/s² of a pixel's area: what reaches the detector sums back to it.
        assert image.sum() * lens.oversample**2 == pytest.approx(1.0, rel=0.02)
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]] - image.shape[0] // 2
        widths.append(float(np.sqrt((image * (xx**2 + yy**2)).sum() / image.sum())))
    assert widths[1] > 1.3 * widths[0]
    assert optics.encircled_energy(slow, 1.0) < optics.encircled_energy(fast, 1.0) - 0.1
    # A diffraction-limited lens with the whole pitch sensitive gathers more into the centre pixel.
    ideal = dataclasses.replace(fast, aberration_um=0.0, fill_factor=1.0)
    assert optics.encircled_energy(ideal, 0.5) > optics.encircled_energy(fast, 0.5)


def test_sampling_at_pixel_centres_is_the_fine_convolution_read_there():
    lens = BOSON.optics
    s = lens.oversample
    fine = np.random.default_rng(3).random((20 * s, 24 * s)).astype(np.float32)
    kernel = optics.pixel_kernel(lens)
    full = cv2.filter2D(fine, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    assert np.allclose(optics.sample_pixels(fine, kernel, s), full[s // 2 :: s, s // 2 :: s], atol=1e-5)


def test_a_uniform_scene_stays_uniform():
    lens = LEPTON.optics
    fine = np.full((12 * lens.oversample, 16 * lens.oversample), 7.5, np.float32)
    assert np.allclose(optics.sample_pixels(fine, optics.pixel_kernel(lens), lens.oversample), 7.5, atol=1e-4)


# ------------------------------------------------------------------------------------------ defocus
def test_defocus_is_zero_at_the_focus_and_grows_with_the_focal_length_squared():
    for sensor in (LEPTON, BOSON, A35):
        lens = sensor.optics
        assert optics.defocus_diameter_um(lens, lens.focus_m) == pytest.approx(0.0, abs=1e-9)
        near, nearer = optics.defocus_diameter_um(lens, 0.8), optics.defocus_diameter_um(lens, 0.6)
        assert 0 < near < nearer
    at = 0.6
    lepton = optics.defocus_diameter_um(LEPTON.optics, at) / LEPTON.pitch_um
    a35 = optics.defocus_diameter_um(A35.optics, at) / A35.pitch_um
    assert lepton < 0.3, "a 1.8 mm lens is sharp from 0.6 m on"
    assert a35 > 1.5, "a 9 mm lens focused at 1 m blurs a face at 0.6 m over more than a pixel"
    boson, a35_um = (optics.defocus_diameter_um(s.optics, at) for s in (BOSON, A35))
    expected = (A35.optics.focal_mm**2 / A35.f_number) / (BOSON.optics.focal_mm**2 / BOSON.f_number)
    assert a35_um / boson == pytest.approx(expected, rel=0.02)


def test_a_pillbox_sums_to_one_and_small_discs_change_nothing():
    assert optics.pillbox(0.6) is None
    for diameter in (1.0, 2.5, 7.0):
        kernel = optics.pillbox(diameter)
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        assert kernel.shape[0] >= diameter


# ------------------------------------------------------------------------------------------ the spot-size effect
def _one_person(camera: str, spot: CanthusSpot, seed: int = 4) -> tuple[Simulation, object]:
    sim = Simulation(SimulationConfig(people=1, seed=seed, thermal_camera=camera, glasses_fraction=0.0,
                                      pair_fraction=0.0, drift_c=0.0))
    sim.people = [dataclasses.replace(sim.people[0], canthus_spot=spot)]
    return sim, sim.people[0]


def _canthus_error(sim: Simulation, person, t: float) -> float:
    """The hottest pixel within one pixel of the hotter canthus, made skin temperature again, minus the truth."""
    pose = person.pose(t, sim.room.camera_height_m)
    assert sim.in_zone(person, pose)
    apparent = sim.apparent_temperature(t)
    hotter = int(np.argmax(appearance.canthus_temperatures(person)))
    cx, cy = np.rint(sim.rig.thermal.project(sim.canthi_m(person, pose))[hotter]).astype(int)
    reading = float(apparent[cy - 1 : cy + 2, cx - 1 : cx + 2].max())
    loss = (1 - SKIN_EMISSIVITY) * (person.canthus_c - sim.ambient_c)  # emissivity, which a station corrects
    return reading + loss - person.canthus_c


def _at_mark(person) -> float:
    return (person.path[1].t + person.path[2].t) / 2


@pytest.mark.parametrize("camera", ["lepton", "boson"])
def test_a_small_hot_spot_reads_lower_than_a_big_one(camera):
    errors = {}
    for radius_mm in (2.0, 4.0, 7.0):
        sim, person = _one_person(camera, CanthusSpot(radius_m=radius_mm / 1000, shape=2.0, contrast_c=1.0))
        errors[radius_mm] = _canthus_error(sim, person, _at_mark(person))
    assert errors[2.0] < errors[4.0] < errors[7.0] <= 0.03, errors
    assert errors[2.0] < -0.3, "a 4 mm peak a pixel or less across loses a good part of its contrast"


def test_the_loss_grows_with_the_contrast_and_shrinks_nearer_the_camera():
    low, _ = _one_person("boson", CanthusSpot(radius_m=0.003, shape=2.0, contrast_c=0.4))
    high, person = _one_person("boson", CanthusSpot(radius_m=0.003, shape=2.0, contrast_c=1.2))
    mark = _at_mark(person)
    assert _canthus_error(high, person, mark) < _canthus_error(low, low.people[0], mark) - 0.15
    # On the walk up, facing the camera at 1.6-1.8 m, before the mark at about 1.2 m.
    h = high.room.camera_height_m
    far = next(t for t in np.arange(person.t_enter, person.path[1].t, 0.02)
               if person.pose(t, h).z < 1.8 and high.in_zone(person, person.pose(t, h)))
    assert person.pose(far, h).z > 1.5
    assert _canthus_error(high, person, far) < _canthus_error(high, person, mark) - 0.05


# ------------------------------------------------------------------------------------------ truth
def test_the_painted_hot_spot_peaks_at_the_true_canthus_temperature():
    sim = Simulation(SimulationConfig(people=6, seed=8, glasses_fraction=0.0))
    for person in sim.people:
        texture = appearance.thermal_head(person, sim.ambient_c)
        temp = texture.channels[..., 0]
        jx, iy = texture.origin_px
        for (x, y), peak in zip(appearance.canthus_positions_m(person.ipd_m),
                                appearance.canthus_temperatures(person), strict=True):
            j, i = int(round(jx + x / texture.texel_m)), int(round(iy + y / texture.texel_m))
            around = temp[i - 8 : i + 9, j - 8 : j + 9]
            assert float(around.max()) == pytest.approx(peak, abs=1e-4)
            # and the skin a spot's width or two away stands about its contrast lower
            ring = temp[i - 15 : i + 16, j - 15 : j + 16]
            assert float(np.median(ring)) < peak - 0.3 * person.canthus_spot.contrast_c
        upper_face = temp[: int(iy) + 20]  # above the nose
        assert float(upper_face.max()) == pytest.approx(person.canthus_c, abs=1e-4)
    records = sim.truth_records()
    assert [r["canthus_c"] for r in records] == [p.canthus_c for p in sim.people]
    spots = [r["canthus_spot"] for r in records]
    assert all(2.0 <= s["radius_mm"] <= 6.0 and 2.0 <= s["shape"] <= 8.0 and 0.3 <= s["contrast_c"] <= 1.2
               for s in spots)
    assert len({s["radius_mm"] for s in spots}) == len(spots), "each person has their own hot spot"


def test_hot_spots_leave_every_other_draw_of_a_seed_as_it_was():
    """The spots come from a generator of their own: people, paths and the room do not move."""
    sim = Simulation(SimulationConfig(people=5, seed=21))
    plain = [dataclasses.replace(p, canthus_spot=CanthusSpot()) for p in sim.people]
    again = Simulation(SimulationConfig(people=5, seed=21, eye_height_m=(1.48, 1.74), dwell_s=(1.6, 2.4)))
    assert [dataclasses.replace(p, canthus_spot=CanthusSpot()) for p in again.people] == plain
    assert again.ambient_c == sim.ambient_c


# ------------------------------------------------------------------------------------------ variants
def _speeds(person, h: float, dt: float = 0.05) -> np.ndarray:
    ts = np.arange(person.t_enter, person.t_leave - dt, dt)
    xz = np.array([[p.x, p.z] for p in (person.pose(t, h) for t in ts)])
    return np.linalg.norm(np.diff(xz, axis=0), axis=1) / dt


def test_in_a_walk_through_nobody_stands_still():
    sim = Simulation(SimulationConfig(people=6, seed=3, thermal_camera="boson", walk_through=True,
                                      walk_speed_m_s=(0.9, 1.3), pair_fraction=0.0))
    h = sim.room.camera_height_m
    for person in sim.people:
        assert person.walks_through
        assert _speeds(person, h).min() > 0.6, person.person_id
        nearest = min(person.pose(t, h).z for t in np.arange(person.t_enter, person.t_leave, 0.05))
        assert nearest < sim.stop_distance_m + 0.1
    assert sum(r["first_visible_t"] is not None for r in sim.truth_records()) >= 4, "still measurable on the way"


def test_standing_at_the_mark_means_standing_still_for_the_dwell():
    sim = Simulation(SimulationConfig(people=4, seed=3, dwell_s=(3.0, 4.5), pair_fraction=0.0))
    h = sim.room.camera_height_m
    for person in sim.people:
        assert not person.walks_through
        a, b = person.path[1], person.path[2]
        assert 3.0 <= b.t - a.t <= 4.5
        still = np.array([[p.x, p.z] for p in (person.pose(t, h) for t in np.arange(a.t, b.t, 0.1))])
        assert np.ptp(still[:, 1]) < 1e-9 and np.ptp(still[:, 0]) < 0.02  # a centimetre of sway


def test_a_fast_approach_is_fast_and_brief():
    sim = Simulation(SimulationConfig(people=4, seed=3, walk_speed_m_s=(1.5, 1.9), dwell_s=(0.6, 1.0)))
    for person in sim.people:
        start, arrive, leave = person.path[0], person.path[1], person.path[2]
        assert 1.5 <= (start.z - arrive.z) / (arrive.t - start.t) <= 1.9 + 1e-9
        assert 0.6 <= leave.t - arrive.t <= 1.0


@pytest.mark.parametrize("heights", [(1.30, 1.48), (1.74, 1.92)])
def test_short_and_tall_people_have_their_eyes_where_they_say(heights):
    sim = Simulation(SimulationConfig(people=6, seed=3, eye_height_m=heights, thermal_camera="boson"))
    assert all(heights[0] <= p.eye_height_m <= heights[1] for p in sim.people)
    h = sim.room.camera_height_m
    person = sim.people[0]
    assert h - person.pose(_at_mark(person), h).y == pytest.approx(person.eye_height_m, abs=0.01)


def test_another_lens_narrows_the_thermal_view_and_defocuses_more():
    wide = Simulation(SimulationConfig(people=1, seed=3, thermal_camera="boson"))
    narrow = Simulation(SimulationConfig(people=1, seed=3, thermal_camera="boson", thermal_hfov_deg=34.0))
    assert narrow.rig.thermal.focal_px > 1.5 * wide.rig.thermal.focal_px
    assert narrow.rig.visible.hfov_deg == wide.rig.visible.hfov_deg == 60.0
    assert narrow.sensor.optics.focal_mm == pytest.approx(6.3, abs=0.1)
    assert optics.defocus_diameter_um(narrow.sensor.optics, 0.6) > 2 * optics.defocus_diameter_um(
        wide.sensor.optics, 0.6)
    assert narrow.describe()["thermal_optics"]["hfov_deg"] == 34.0


def test_the_config_survives_meta_json():
    """The bench remakes a recording's scene from meta.json's config (for the distance at each decision)."""
    config = SimulationConfig(people=3, seed=2, walk_through=True, eye_height_m=(1.3, 1.5), thermal_hfov_deg=34.0)
    again = SimulationConfig(**json.loads(json.dumps(dataclasses.asdict(config))))
    assert again == config


@pytest.mark.parametrize("bad", [dict(dwell_s=(2.0, 1.0)), dict(eye_height_m=(0.5, 1.5)),
                                 dict(walk_speed_m_s=(0.0, 1.0)), dict(thermal_hfov_deg=5.0)])
def test_nonsense_scenes_are_refused(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


def test_the_a35_class_camera_writes_raw_counts_it_can_read_back():
    temps = np.array([[10.0, 22.5], [35.0, 39.5]])
    raw = A35.encode(temps).astype(np.float64)
    p = A35.planck
    assert raw.max() < 2**14, "a 14-bit camera"
    assert np.allclose(p.B / np.log(p.R / (raw - p.O) + p.F) - 273.15, temps, atol=0.01)
