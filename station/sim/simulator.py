"""A station entrance in software: visitors, both cameras, the blackbody, and the ground truth.

Every frame is a pure function of (seed, stream, frame index): the people and their paths are planned
once from the seed, and each frame's sensor noise comes from its own generator keyed by its index. So a
recording regenerates byte for byte, and the live simulated camera can render any frame on demand.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from station.profile.schema import Blackbody, CalibrationProfile, Radiometry, Registration
from station.sim import appearance, optics
from station.sim.background import Room, surface_depth_m, thermal_background, visible_background
from station.sim.camera import CameraRig, PinholeCamera, rotation_matrix
from station.sim.people import DWELL_S, EYE_HEIGHT_M, WALK_SPEED_M_S, Person, Pose, draw_canthus_spot, plan_visitors
from station.sim.photos import face_photos
from station.sim.render import Billboard, billboard_axes, draw
from station.sim.sensors import SENSORS, SensorFlaws, ThermalSensorModel
from station.types import Frame, Stream

VISIBLE_SIZE = (640, 480)
VISIBLE_HFOV_DEG = 60.0
CANTHUS_ROI_SIDE = 0.25  # side of a canthus ROI as a share of the person's own eye-to-eye distance
CANTHUS_ROI_M = 0.016  # that side for the mean eye distance (63-64 mm): where the floor marker goes
MIN_ROI_PX = 3  # IEC 80601-2-59: the measured spot must cover at least 3x3 detector pixels
MAX_MEASURABLE_YAW_DEG = 20.0
DECISION_MIN_FRAMES = 3  # a station decides on at least 3 readings over at least 0.2 s
DECISION_MIN_SPAN_S = 0.2
BLACKBODY_DEPTH_M = 0.5
BLACKBODY_AT = (0.85, 0.17)  # where it sits in the thermal view, as fractions of width and height


def build_rig(sensor: ThermalSensorModel) -> CameraRig:
    """The station's two cameras: the visible one at the world origin, the thermal one on its bracket.

    Every simulator builds its rig here, so a calibration target and a visitor are seen through exactly
    the same geometry and a registration fitted on one holds for the other.
    """
    thermal = PinholeCamera.beside(
        sensor.width, sensor.height, sensor.hfov_deg,
        centre_m=sensor.baseline_m, rotation=rotation_matrix(*sensor.misalignment_deg),
    )
    return CameraRig(visible=PinholeCamera(*VISIBLE_SIZE, VISIBLE_HFOV_DEG), thermal=thermal)


class SceneRendering:
    """What every simulator of the entrance shares (visitors, calibration targets): the room, both cameras
    and the thermal sensor, drawn first from the scene's seeded generator, so a visitor simulation and a
    calibration session with the same seed stand in the same room; the room's backgrounds; and the last
    steps of a frame, the visible camera's blur and noise and the thermal optics.

    The thermal camera is rendered as :mod:`station.sim.optics` describes: in-band radiance on a grid
    ``sensor.oversample`` times finer than the detector, each surface defocused by its own distance, then
    the lens-and-pixel kernel and a reading at every pixel's centre (:meth:`_through_thermal_optics`).

    A subclass calls :meth:`_draw_scene` first in its set-up, sets ``_scene_rng_seed`` when its own draws
    are done, has a ``config`` with a ``seed``, and renders (``render_visible``, ``render_thermal``), orders
    (``timeline``) and describes (``truth_records``, ``profile``, ``describe``) its own frames, which
    :func:`write_scene_recording` writes.
    """

    sensor: ThermalSensorModel
    rig: CameraRig
    room: Room
    ambient_c: float
    outdoor_c: float
    _scene_rng_seed: int

    def _draw_scene(self, rng: np.random.Generator, thermal_camera: str, thermal_hfov_deg: float | None = None) -> None:
        """``thermal_hfov_deg``: another lens on the same detector (a narrower field of view is a longer
        focal length at the same f-number: more pixels on a face, and more defocus off the focus distance)."""
        sensor = SENSORS[thermal_camera]
        self.sensor = sensor if thermal_hfov_deg is None else dataclasses.replace(sensor, hfov_deg=thermal_hfov_deg)
        self.rig = build_rig(self.sensor)
        self.room = Room()
        self.ambient_c = float(rng.uniform(20.5, 24.0))
        self.outdoor_c = float(self.ambient_c - rng.uniform(6.0, 12.0))

    @cached_property
    def _visible_background(self) -> np.ndarray:
        return visible_background(self.room, self.rig.visible, np.random.default_rng([self._scene_rng_seed, 1]))

    @property
    def thermal_oversample(self) -> int:
        """Fine samples per thermal pixel and axis: the grid the thermal scene is drawn and blurred on."""
        return self.sensor.oversample

    @cached_property
    def _thermal_background(self) -> np.ndarray:
        """The room's in-band signal on the fine grid, each surface defocused by its own distance.

        The room lies 2-7 m away, beyond the focus; its blur discs are grouped in quarter-sample steps and
        each group blurred once (the room does not move, so this is done once per scene).
        """
        s = self.thermal_oversample
        temp = thermal_background(self.room, self.rig.thermal, self.ambient_c, self.outdoor_c, s,
                                  np.random.default_rng([self._scene_rng_seed, 2]))
        signal = self.sensor.planck.signal(temp).astype(np.float32)
        lens = self.sensor.optics
        depth = surface_depth_m(self.room, self.rig.thermal, s)
        distances = np.linspace(float(depth.min()), float(depth.max()), 64)
        diameters = np.array([optics.defocus_diameter_um(lens, d) for d in distances]) / lens.fine_um
        steps = np.round(np.interp(depth, distances, diameters) * 4.0) / 4.0
        out = signal.copy()
        for diameter in np.unique(steps):
            mask = steps == diameter
            out[mask] = optics.defocus(signal, float(diameter))[mask]
        return out

    def _defocus_texels(self, point_m: np.ndarray, texel_m: float) -> float:
        """The thermal lens's blur disc for a surface through ``point_m``, in texels of that surface, in
        steps of a twentieth of a texel (so a layer blurred once can serve every frame that needs it)."""
        depth = float(self.rig.thermal.to_camera(np.asarray(point_m)[None])[0, 2])
        diameter = optics.defocus_in_object_plane_m(self.sensor.optics, depth) / texel_m
        return round(diameter * 20.0) / 20.0

    def _visible_frame(self, canvas: np.ndarray, t: float, index: int) -> Frame:
        """A composed visible canvas (BGR, 0-1) through the camera's slight blur and noise, as 8 bits."""
        rng = np.random.default_rng([self.config.seed, 11, index])  # type: ignore[attr-defined]
        canvas = cv2.GaussianBlur(canvas.astype(np.float32), (0, 0), 0.6)
        canvas += rng.normal(0.0, 0.006, size=canvas.shape).astype(np.float32)
        image = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
        return Frame(image=image, t=t, index=index, meta={"camera": "simulated-visible"})

    def _through_thermal_optics(self, signal: np.ndarray) -> np.ndarray:
        """The fine in-band signal through the lens and onto the detector's pixels, as apparent °C.

        Convolved with the lens-and-pixel kernel (diffraction over 8-14 µm, aberrations, the pixel's
        footprint: :func:`~station.sim.optics.pixel_kernel`) and read at each pixel's centre, in radiance;
        only then turned into temperature through the sensor's Planck curve.
        """
        lens = self.sensor.optics
        pixels = optics.sample_pixels(signal, optics.pixel_kernel(lens), lens.oversample)
        return self.sensor.planck.celsius(np.maximum(pixels, 1e-6))

    def render(self, stream: Stream, index: int) -> Frame:
        return self.render_visible(index) if stream == "visible" else self.render_thermal(index)  # type: ignore[attr-defined]


def true_registration(rig: CameraRig, reference_distance_m: float) -> Registration:
    """The registration a perfect technician would write for this rig: derived from it, never typed in."""
    h = rig.homography_at(reference_distance_m)
    parallax = rig.parallax_px_m(reference_distance_m)
    return Registration(
        homography=tuple(tuple(float(v) for v in row) for row in h),
        reference_distance_m=reference_distance_m,
        visible_focal_px=round(rig.visible.focal_px, 4),
        parallax_px_m=(float(parallax[0]), float(parallax[1])),
        rms_error_px=round(registration_model_error_px(rig, h, parallax, reference_distance_m), 4),
    )


def registration_model_error_px(rig: CameraRig, h: np.ndarray, parallax: np.ndarray, d_ref: float) -> float:
    """RMS gap between the profile's model (homography + parallax) and the exact projection, over
    points across the visible image at 0.6-2 m: the true profile is only as exact as its model."""
    vis = rig.visible
    uu, vv = np.meshgrid(np.linspace(80, vis.width - 80, 7), np.linspace(60, vis.height - 60, 5))
    uv = np.c_[uu.ravel(), vv.ravel()]
    errors = []
    for d in (0.6, 0.8, 1.0, 1.5, 2.0):
        exact = rig.visible_to_thermal(uv, d)
        hom = np.c_[uv, np.ones(len(uv))] @ h.T
        model = hom[:, :2] / hom[:, 2:3] + parallax * (1.0 / d - 1.0 / d_ref)
        errors.append(np.sum((exact - model) ** 2, axis=1))
    return float(np.sqrt(np.mean(np.concatenate(errors))))


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides a simulated recording; the same config always gives the same bytes."""

    people: int = 8
    fever_fraction: float = 0.2
    glasses_fraction: float = 0.15
    pair_fraction: float = 0.2
    seed: int = 0
    thermal_camera: str = "lepton"
    visible_fps: float = 15.0
    drift_c: float = 0.8
    sensor_gain: float = 1.0
    sensor_offset_c: float = 0.0
    canthus_offset_mean_c: float = 1.24
    canthus_offset_sd_c: float = 0.34
    blackbody_setpoint_c: float = 35.0
    blackbody_tolerance_c: float = 0.3
    station_id: str = "simulated-entrance"
    recorded_at: str = "2026-11-23T10:00:00Z"
    lead_in_s: float = 0.4
    tail_s: float = 0.6
    # How people move and how tall they are: the ranges each person's pace (mean over the walk up), time
    # standing at the mark and eye height are drawn from. walk_through: nobody stops; everyone walks at
    # a steady pace past the mark and on past the station's side.
    walk_speed_m_s: tuple[float, float] = WALK_SPEED_M_S
    dwell_s: tuple[float, float] = DWELL_S
    walk_through: bool = False
    eye_height_m: tuple[float, float] = EYE_HEIGHT_M
    # Another lens on the thermal camera (horizontal field of view, degrees); None: the sensor's own.
    thermal_hfov_deg: float | None = None

    def __post_init__(self) -> None:
        for name in ("walk_speed_m_s", "dwell_s", "eye_height_m"):  # JSON gives lists back; keep tuples
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if self.thermal_camera not in SENSORS:
            raise ValueError(f"thermal_camera: expected one of {', '.join(SENSORS)}, got {self.thermal_camera!r}")
        for name, low, high, unit in (("walk_speed_m_s", 0.2, 3.0, "m/s"), ("dwell_s", 0.0, 30.0, "s"),
                                      ("eye_height_m", 1.0, 2.1, "m")):
            a, b = getattr(self, name)
            if not low <= a <= b <= high:
                raise ValueError(f"{name}: expected a range from {low} to {high} {unit}, low end first, got {(a, b)}")
        if self.thermal_hfov_deg is not None and not 10.0 <= self.thermal_hfov_deg <= 100.0:
            raise ValueError(f"thermal_hfov_deg: expected 10 to 100°, got {self.thermal_hfov_deg}")
        if not 0.0 <= self.fever_fraction <= 1.0:
            raise ValueError(f"fever_fraction: expected a fraction from 0 to 1, got {self.fever_fraction}")
        if self.people < 1:
            raise ValueError(f"people: expected at least 1, got {self.people}")
        if not 0.0 <= self.drift_c <= 2.0:
            raise ValueError(f"drift_c: expected 0 to 2 °C, got {self.drift_c}")


@dataclass
class _Layers:
    """A person's billboards: the visible ones ready to draw; the thermal ones as in-band signal and alpha,
    drawn defocused for each distance (:meth:`Simulation._thermal_board`)."""

    visible_head: Billboard
    visible_torso: Billboard
    thermal_head: tuple[np.ndarray, np.ndarray, appearance.Texture]
    thermal_torso: tuple[np.ndarray, np.ndarray, appearance.Texture]


@dataclass
class Simulation(SceneRendering):
    config: SimulationConfig
    people: list[Person] = field(init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        self._draw_scene(rng, cfg.thermal_camera, cfg.thermal_hfov_deg)
        self.flaws = SensorFlaws(
            gain=cfg.sensor_gain, offset_c=cfg.sensor_offset_c, drift_c=cfg.drift_c,
            drift_phases=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
        )
        self.people = plan_visitors(
            rng, n_people=cfg.people, fever_fraction=cfg.fever_fraction, glasses_fraction=cfg.glasses_fraction,
            pair_fraction=cfg.pair_fraction, stop_distance_m=self.stop_distance_m, n_photos=len(face_photos()),
            offset_mean_c=cfg.canthus_offset_mean_c, offset_sd_c=cfg.canthus_offset_sd_c, t0=cfg.lead_in_s,
            walk_speed_m_s=cfg.walk_speed_m_s, dwell_s=cfg.dwell_s, eye_height_m=cfg.eye_height_m,
            walk_through=cfg.walk_through,
        )
        self._scene_rng_seed = int(rng.integers(2**31))
        # Each person's canthus hot spot, from a generator of its own: the draws above (and so the people,
        # their paths and the room) are the same as before the hot spots had a size and a shape.
        spots = np.random.default_rng([cfg.seed, 31])
        self.people = [dataclasses.replace(p, canthus_spot=draw_canthus_spot(spots)) for p in self.people]
        self._boards: dict[tuple, Billboard] = {}
        self._boards_lock = threading.Lock()

    def prepare(self) -> Simulation:
        """Build every texture and background now, so frames can then be rendered from several threads."""
        _ = (self._layers, self._blackbody, self._visible_background, self._thermal_background,
             self.visible_times, self.thermal_times)
        return self

    # ------------------------------------------------------------------ geometry
    @property
    def max_measurable_distance_m(self) -> float:
        """Farthest distance at which a canthus ROI still spans 3 thermal pixels."""
        return self.rig.thermal.focal_px * CANTHUS_ROI_M / MIN_ROI_PX

    def canthus_roi_px(self, person: Person, pose: Pose) -> float:
        """Side of this face's canthus ROI on the thermal image, in pixels, as a station would size it.

        The ROI is a share of the person's own eye spacing *as the camera sees it*: narrow-set eyes, a
        face off to one side (foreshortened) or turned a little all shrink it, so such a person must come
        closer than the mean face before a correct station may measure them.
        """
        eyes = self._head_points(pose, np.array([[-person.ipd_m / 2, 0.0], [person.ipd_m / 2, 0.0]]))
        px = self.rig.thermal.project(eyes)
        return CANTHUS_ROI_SIDE * float(np.linalg.norm(px[1] - px[0]))

    @property
    def stop_distance_m(self) -> float:
        """Where visitors are asked to stand: well inside the measurable range, never closer than 0.62 m."""
        return float(np.clip(0.85 * self.max_measurable_distance_m, 0.62, 1.2))

    @property
    def reference_distance_m(self) -> float:
        return round(self.stop_distance_m, 2)

    @cached_property
    def blackbody_centre_m(self) -> np.ndarray:
        cam = self.rig.thermal
        px = np.array([BLACKBODY_AT[0] * cam.width, BLACKBODY_AT[1] * cam.height, 1.0])
        in_camera = BLACKBODY_DEPTH_M * (np.linalg.inv(cam.K) @ px)
        return cam.rotation.T @ (in_camera - cam.translation)

    # ------------------------------------------------------------------ timeline
    @property
    def duration_s(self) -> float:
        return max(p.t_leave for p in self.people) + self.config.tail_s

    def _times(self, fps: float, phase_s: float, salt: int) -> np.ndarray:
        n = int(math.floor((self.duration_s - phase_s) * fps)) + 1
        jitter = np.random.default_rng([self.config.seed, salt]).uniform(-0.0015, 0.0015, size=n)
        return np.round(phase_s + np.arange(n) / fps + jitter, 6)

    @cached_property
    def visible_times(self) -> np.ndarray:
        return self._times(self.config.visible_fps, 0.021, 1)

    @cached_property
    def thermal_times(self) -> np.ndarray:
        return self._times(self.sensor.fps, 0.004, 2)

    def timeline(self) -> Iterator[tuple[Stream, int]]:
        """Every frame of both streams in time order (thermal first on a tie)."""
        tv, tt = self.visible_times, self.thermal_times
        i = j = 0
        while i < len(tv) or j < len(tt):
            if j < len(tt) and (i >= len(tv) or tt[j] <= tv[i]):
                yield "thermal", j
                j += 1
            else:
                yield "visible", i
                i += 1

    def poses(self, t: float) -> list[tuple[Person, Pose]]:
        """People in the scene at t, farthest first (the order to paint them in)."""
        out = [(p, pose) for p in self.people if (pose := p.pose(t, self.room.camera_height_m)) is not None]
        return sorted(out, key=lambda item: -item[1].z)

    # ------------------------------------------------------------------ appearance (built once)
    @cached_property
    def _layers(self) -> dict[int, _Layers]:
        photos = face_photos()
        planck = self.sensor.planck
        reflected = planck.signal(self.ambient_c)
        out = {}
        for person in self.people:
            vh = appearance.visible_head(person, photos[person.photo_index])
            vt = appearance.visible_torso(person)
            th = appearance.thermal_head(person, self.ambient_c)
            tt = appearance.thermal_torso(person, self.ambient_c)
            out[person.person_id] = _Layers(
                visible_head=Billboard.from_values(vh.channels, vh.alpha, vh),
                visible_torso=Billboard.from_values(vt.channels, vt.alpha, vt),
                thermal_head=(self._signal(th, reflected), th.alpha, th),
                thermal_torso=(self._signal(tt, reflected), tt.alpha, tt),
            )
        return out

    def _thermal_board(self, person: Person, which: str, anchor_m: np.ndarray) -> Billboard:
        """A thermal billboard (``"head"`` or ``"torso"``) defocused for where it stands now.

        Kept by (person, layer, blur), so someone standing at the mark is blurred once; the blur is
        quantised (:meth:`_defocus_texels`), so a frame never depends on which frames were drawn before.
        """
        values, alpha, texture = getattr(self._layers[person.person_id], f"thermal_{which}")
        blur = self._defocus_texels(anchor_m, texture.texel_m)
        key = (person.person_id, which, blur)
        with self._boards_lock:
            board = self._boards.get(key)
        if board is None:
            board = Billboard.from_values(values, alpha, texture, defocus_texels=blur)
            with self._boards_lock:
                if len(self._boards) >= 48:  # about 40 MB; a walk changes the blur every frame anyway
                    self._boards.clear()
                self._boards[key] = board
        return board

    def _signal(self, texture: appearance.Texture, reflected_signal: float) -> np.ndarray:
        """Radiance the camera receives: emitted by the surface plus the surroundings it reflects."""
        temp, emissivity = texture.channels[..., 0], texture.channels[..., 1]
        return (emissivity * self.sensor.planck.signal(temp) + (1 - emissivity) * reflected_signal).astype(np.float32)

    @cached_property
    def _blackbody(self) -> tuple[Billboard, Billboard]:
        vis, th = appearance.blackbody_textures(self.config.blackbody_setpoint_c, self.ambient_c)
        reflected = self.sensor.planck.signal(self.ambient_c)
        blur = self._defocus_texels(self.blackbody_centre_m, th.texel_m)
        return Billboard.from_values(vis.channels, vis.alpha, vis), Billboard.from_values(
            self._signal(th, reflected), th.alpha, th, defocus_texels=blur
        )

    # ------------------------------------------------------------------ rendering
    def render_visible(self, index: int) -> Frame:
        t = float(self.visible_times[index])
        canvas = self._visible_background.copy()
        for person, pose in self.poses(t):
            layers = self._layers[person.person_id]
            self._draw_person(canvas, layers.visible_torso, layers.visible_head, self.rig.visible, pose, 1)
        draw(canvas, self._blackbody[0], self.rig.visible, self.blackbody_centre_m, 0.0)
        return self._visible_frame(canvas, t, index)

    def apparent_temperature(self, t: float) -> np.ndarray:
        """What a perfect copy of the thermal camera would read at t (°C, emissivity 1), before its flaws:
        the scene in radiance on the fine grid, each person defocused for their distance, then the lens
        and the pixels."""
        s = self.thermal_oversample
        canvas = self._thermal_background.copy()
        for person, pose in self.poses(t):
            head = self._thermal_board(person, "head", pose.centre)
            torso = self._thermal_board(person, "torso", pose.centre + self._torso_offset(pose))
            self._draw_person(canvas, torso, head, self.rig.thermal, pose, s)
        draw(canvas, self._blackbody[1], self.rig.thermal, self.blackbody_centre_m, 0.0, s)
        return self._through_thermal_optics(canvas)

    def render_thermal(self, index: int) -> Frame:
        t = float(self.thermal_times[index])
        rng = np.random.default_rng([self.config.seed, 12, index])
        measured = self.flaws.apply(self.apparent_temperature(t), t, self.sensor.netd_c, rng)
        image = self.sensor.encode(measured)
        return Frame(image=image, t=t, index=index, meta={"camera": f"simulated-{self.sensor.name}"})

    @staticmethod
    def _torso_offset(pose: Pose) -> np.ndarray:
        """From the face's anchor to the torso's: the neck and shoulders stand a little behind the face."""
        yaw = math.radians(pose.yaw_deg)
        return np.array([-math.sin(yaw), 0.0, math.cos(yaw)]) * appearance.TORSO_BEHIND_M

    def _draw_person(self, canvas, torso: Billboard, head: Billboard, camera, pose: Pose, supersample: int) -> None:
        draw(canvas, torso, camera, pose.centre + self._torso_offset(pose), pose.yaw_deg * 0.6, supersample)
        draw(canvas, head, camera, pose.centre, pose.yaw_deg, supersample)

    # ------------------------------------------------------------------ truth
    def face_outline_m(self, person: Person, pose: Pose, n: int = 24) -> np.ndarray:
        """World points around the photographed face (forehead to chin), for its box in an image."""
        a = np.linspace(0, 2 * math.pi, n, endpoint=False)
        xs = appearance.FACE_CENTRE_M[0] + appearance.FACE_AXES_M[0] * np.cos(a)
        ys = appearance.FACE_CENTRE_M[1] + appearance.FACE_AXES_M[1] * np.sin(a)
        return self._head_points(pose, np.c_[xs, ys])

    def canthi_m(self, person: Person, pose: Pose) -> np.ndarray:
        return self._head_points(pose, appearance.canthus_positions_m(person.ipd_m))

    def _head_points(self, pose: Pose, plane_xy: np.ndarray) -> np.ndarray:
        u, v = billboard_axes(pose.yaw_deg)
        return pose.centre + plane_xy[:, :1] * u + plane_xy[:, 1:2] * v

    def _torso_points(self, pose: Pose, plane_xy: np.ndarray) -> np.ndarray:
        yaw = math.radians(pose.yaw_deg)
        anchor = pose.centre + np.array([-math.sin(yaw), 0.0, math.cos(yaw)]) * appearance.TORSO_BEHIND_M
        u, v = billboard_axes(pose.yaw_deg * 0.6)
        return anchor + plane_xy[:, :1] * u + plane_xy[:, 1:2] * v

    def face_visible_fractions(self, t: float) -> dict[int, float]:
        """How much of each face the visible camera sees at t: inside the frame and not hidden behind a
        nearer person or the blackbody. A detector cannot be blamed for a face nobody could see."""
        cam = self.rig.visible
        present = self.poses(t)  # farthest first
        out = {}
        for k, (person, pose) in enumerate(present):
            face = cam.project(self.face_outline_m(person, pose)).astype(np.float32)
            area = float(cv2.contourArea(face))
            if area <= 0:
                out[person.person_id] = 0.0
                continue
            mask = np.zeros((cam.height, cam.width), np.uint8)
            cv2.fillPoly(mask, [np.rint(face).astype(np.int32)], 1)
            for _, nearer in present[k + 1 :]:
                for outline in (self._head_points(nearer, appearance.head_outline_m()),
                                self._torso_points(nearer, appearance.torso_outline_m())):
                    cv2.fillPoly(mask, [np.rint(cam.project(outline)).astype(np.int32)], 0)
            x1, y1, x2, y2 = np.rint(self.blackbody_box(cam, appearance.BLACKBODY_HOUSING_M)).astype(int)
            mask[max(y1, 0) : y2 + 1, max(x1, 0) : x2 + 1] = 0
            out[person.person_id] = round(min(float(mask.sum()) / area, 1.0), 3)
        return out

    def in_zone(self, person: Person, pose: Pose) -> bool:
        """Is this face where the station measures? In both views, near enough for its canthus ROI to span
        3 thermal pixels (:meth:`canthus_roi_px`), facing the cameras, and with its canthi not hidden
        behind the blackbody."""
        if self.canthus_roi_px(person, pose) < MIN_ROI_PX or abs(pose.yaw_deg) > MAX_MEASURABLE_YAW_DEG:
            return False
        outline = self.face_outline_m(person, pose)
        for cam in (self.rig.visible, self.rig.thermal):
            px = cam.project(outline)
            inside = (px[:, 0] >= 1) & (px[:, 1] >= 1) & (px[:, 0] <= cam.width - 2) & (px[:, 1] <= cam.height - 2)
            if not inside.all():
                return False
        bb = self.blackbody_box(self.rig.thermal, appearance.BLACKBODY_HOUSING_M)
        canthi = self.rig.thermal.project(self.canthi_m(person, pose))
        inside = (canthi[:, 0] >= bb[0] - 1) & (canthi[:, 0] <= bb[2] + 1) & (canthi[:, 1] >= bb[1] - 1) & (
            canthi[:, 1] <= bb[3] + 1
        )
        return not inside.any()

    def withheld_reasons(self, person: Person, t: float) -> frozenset[str]:
        """Why a correct station must withhold a reading of this face at t although it is in the zone.

        Spectacle lenses are opaque in the long-wave infrared, so the canthi behind them cannot be
        measured at all (``glasses``); and the standard measures one person at a time, so nobody is
        measurable while someone else is in the zone too (``several_faces``).
        """
        reasons = set()
        if person.glasses:
            reasons.add("glasses")
        for other, pose in self.poses(t):
            if other is not person and self.in_zone(other, pose):
                reasons.add("several_faces")
        return frozenset(reasons)

    def is_measurable(self, person: Person, pose: Pose, t: float) -> bool:
        """Could a correct station measure this face at t? In the zone, and nothing withholding it."""
        return self.in_zone(person, pose) and not self.withheld_reasons(person, t)

    def blackbody_box(self, camera: PinholeCamera, size_m: float) -> np.ndarray:
        h = size_m / 2
        corners = self.blackbody_centre_m + np.array([[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]])
        px = camera.project(corners)
        return np.array([px[:, 0].min(), px[:, 1].min(), px[:, 0].max(), px[:, 1].max()])

    def _decidable(self, times: list[float]) -> list[float]:
        """The measurable thermal frames that belong to stretches long enough to decide on.

        A station needs a few readings over a short span before it may decide (3 over 0.2 s), so a face
        that is measurable for a frame or two (a partner stepping aside for an instant) has not yet
        "become measurable" for any correct station.
        """
        index = {float(t): k for k, t in enumerate(self.thermal_times)}
        runs: list[list[float]] = []
        for t in times:
            if runs and index[t] == index[runs[-1][-1]] + 1:
                runs[-1].append(t)
            else:
                runs.append([t])
        long_enough = [r for r in runs if len(r) >= DECISION_MIN_FRAMES and r[-1] - r[0] >= DECISION_MIN_SPAN_S]
        return [t for run in long_enough for t in run]

    def truth_records(self) -> list[dict]:
        """One record per person: temperatures, when they were measurable, and their face boxes.

        ``first_visible_t``/``last_visible_t`` bound the thermal frames in which a correct station could
        measure the person, counting only stretches long enough to decide on (:meth:`_decidable`).
        People who stood in the zone but could never be measured (glasses, a pair) have ``None`` there;
        ``first_in_zone_t`` and ``withheld`` (the reasons, sorted) say when they stood there and why a
        correct station must answer them with ``retry``. ``box_visible`` runs beside ``boxes``: the
        share of each box's face the camera could see (0-1).
        """
        records = []
        cam = self.rig.visible
        visible = {float(t): self.face_visible_fractions(float(t)) for t in self.visible_times}
        for person in self.people:
            in_zone = [
                float(t) for t in self.thermal_times
                if (pose := person.pose(float(t), self.room.camera_height_m)) is not None
                and self.in_zone(person, pose)
            ]
            withheld_at = {t: self.withheld_reasons(person, t) for t in in_zone}
            measurable = self._decidable([t for t in in_zone if not withheld_at[t]])
            withheld = sorted(set().union(*withheld_at.values())) if in_zone and not measurable else []
            if in_zone and not measurable and not withheld:
                withheld = ["too_brief"]
            boxes, fractions = [], []
            for t in self.visible_times:
                pose = person.pose(float(t), self.room.camera_height_m)
                if pose is None:
                    continue
                px = cam.project(self.face_outline_m(person, pose))
                x1, y1 = np.clip(px.min(axis=0), 0, [cam.width, cam.height])
                x2, y2 = np.clip(px.max(axis=0), 0, [cam.width, cam.height])
                if x2 - x1 >= 2 and y2 - y1 >= 2:
                    boxes.append([round(float(t), 6), *(round(float(v), 2) for v in (x1, y1, x2, y2))])
                    fractions.append(visible[float(t)][person.person_id])
            records.append(
                {
                    "person": person.person_id,
                    "canthus_c": person.canthus_c,
                    "body_c": person.body_c,
                    "first_visible_t": measurable[0] if measurable else None,
                    "last_visible_t": measurable[-1] if measurable else None,
                    "first_in_zone_t": in_zone[0] if in_zone else None,
                    "withheld": withheld,
                    "boxes": boxes,
                    "box_visible": fractions,
                    "canthus_spot": person.canthus_spot.as_dict(),
                    "febrile": person.febrile,
                    "glasses": person.glasses,
                    "group": person.group,
                    "ipd_m": round(person.ipd_m, 4),
                    "photo": face_photos()[person.photo_index].name,
                }
            )
        return records

    # ------------------------------------------------------------------ calibration
    def profile(self) -> CalibrationProfile:
        """The calibration a perfect technician would have written for this rig and sensor."""
        flaws = self.flaws
        emitter = self.blackbody_box(self.rig.thermal, appearance.BLACKBODY_EMITTER_M)
        inset = 0.25 * (emitter[2:] - emitter[:2])
        roi = (
            int(math.ceil(emitter[0] + inset[0])), int(math.ceil(emitter[1] + inset[1])),
            int(math.floor(emitter[2] - inset[0])), int(math.floor(emitter[3] - inset[1])),
        )
        return CalibrationProfile(
            station_id=self.config.station_id,
            created=self.config.recorded_at,
            registration=true_registration(self.rig, self.reference_distance_m),
            radiometry=Radiometry(
                gain=1.0 / flaws.gain, offset_c=-flaws.offset_c / flaws.gain, emissivity=appearance.SKIN_EMISSIVITY
            ),
            blackbody=Blackbody(roi=roi, setpoint_c=self.config.blackbody_setpoint_c,
                                tolerance_c=self.config.blackbody_tolerance_c),
        )

    def registration_model_error_px(self, h: np.ndarray, parallax: np.ndarray, d_ref: float) -> float:
        """See :func:`registration_model_error_px`; kept as a method for existing callers."""
        return registration_model_error_px(self.rig, h, parallax, d_ref)

    def describe(self) -> dict:
        """The simulation block of meta.json: enough to know how a recording was made and to remake it."""
        return {
            "config": asdict(self.config),
            "ambient_c": round(self.ambient_c, 3),
            "outdoor_c": round(self.outdoor_c, 3),
            "reflected_c": round(self.ambient_c, 3),
            "sensor": self.sensor.name,
            "netd_c": self.sensor.netd_c,
            "thermal_optics": describe_optics(self.sensor),
            "max_measurable_distance_m": round(self.max_measurable_distance_m, 3),
            "stop_distance_m": round(self.stop_distance_m, 3),
            "thermal_camera_centre_m": [round(float(v), 4) for v in self.rig.thermal.centre],
            "thermal_misalignment_deg": list(self.sensor.misalignment_deg),
            "blackbody_centre_m": [round(float(v), 4) for v in self.blackbody_centre_m],
        }


def describe_optics(sensor: ThermalSensorModel) -> dict:
    """The thermal lens and detector a recording was made with, and what they do (for meta.json)."""
    lens = sensor.optics
    return {
        "hfov_deg": sensor.hfov_deg,
        "pitch_um": lens.pitch_um,
        "focal_mm": round(lens.focal_mm, 3),
        "f_number": lens.f_number,
        "fill_factor": lens.fill_factor,
        "aberration_um": lens.aberration_um,
        "focus_m": lens.focus_m,
        "oversample": lens.oversample,
        "band_um": list(optics.BAND_UM),
        "encircled_energy_1px": round(optics.encircled_energy(lens, 1.0), 3),
        "defocus_px": {f"{d:.1f}m": round(optics.defocus_diameter_um(lens, d) / lens.pitch_um, 3)
                       for d in (0.6, 1.0, 1.5, 3.0)},
    }


def write_recording(
    sim: Simulation,
    out: str | Path,
    *,
    visible_file: str = "visible.mp4",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render every frame in time order straight into a recording (never the whole video in memory)."""
    return write_scene_recording(sim, out, visible_fps=sim.config.visible_fps, visible_file=visible_file,
                                 overwrite=overwrite, progress=progress)


def write_scene_recording(
    sim: SceneRendering,
    out: str | Path,
    *,
    visible_fps: float,
    visible_file: str,
    overwrite: bool,
    progress: Callable[[int], None] | None,
) -> Path:
    """Any simulator's frames, in its time order, with its truth and true profile, as a recording (format v1)."""
    from station.acquire.recording import RecordingWriter, ThermalStreamInfo, VisibleStreamInfo

    sensor = sim.sensor
    thermal = ThermalStreamInfo(
        width=sensor.width, height=sensor.height, fps=sensor.fps, camera=f"simulated-{sensor.name}",
        encoding=sensor.encoding, planck=sensor.planck.as_dict() if sensor.encoding == "raw-counts" else None,
    )
    visible = VisibleStreamInfo(width=VISIBLE_SIZE[0], height=VISIBLE_SIZE[1], fps=visible_fps,
                                camera="simulated-visible", file=visible_file)
    with RecordingWriter(
        out, source="simulated", thermal=thermal, visible=visible, calibration_toml=sim.profile().to_toml(),
        extra_meta={"simulation": sim.describe()}, recorded_at=sim.config.recorded_at, overwrite=overwrite,
    ) as writer:
        for stream, index in sim.timeline():
            writer.write(sim.render(stream, index))
            if progress is not None:
                progress(1)
        writer.write_truth(sim.truth_records())
    return Path(out)
