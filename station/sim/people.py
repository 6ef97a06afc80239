"""Who walks up to the simulated station, how hot they are, and where they are at each instant.

Everything here is drawn from one seeded generator when the visitors are planned, and the poses are
pure functions of time afterwards, so any frame can be rendered on its own, in any order, and a seed
always reproduces the same people on the same paths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Oral minus inner-canthus maximum in the FDA facial/oral study (FLIR camera): mean 1.24 °C, SD 0.34.
CANTHUS_OFFSET_MEAN_C = 1.24
CANTHUS_OFFSET_SD_C = 0.34
NORMAL_BODY_C = (36.2, 37.2)
FEBRILE_BODY_C = (37.6, 39.5)

WALK_IN_FROM_M = 3.3  # where people come into view
WALK_SPEED_M_S = (1.0, 1.3)  # mean speed of the walk up to the mark
DWELL_S = (1.6, 2.4)  # how long people stand at the mark
EYE_HEIGHT_M = (1.48, 1.74)  # above the floor: adults of about 1.59 to 1.87 m

# The inner canthus's hot spot (see :class:`CanthusSpot`): its half-maximum radius, the exponent of its
# profile (2: Gaussian-peaked; 8: flat-topped with a steep rim) and how far it stands above the skin
# around it. Assumptions, drawn per person: facial thermograms show the inner canthus as a hot spot of a
# few millimetres to about a centimetre across, some tenths of a degree to about a degree above the
# eyelids and the bridge of the nose around it; no published distribution is known to us.
CANTHUS_SPOT_RADIUS_M = (0.002, 0.006)
CANTHUS_SPOT_SHAPE = (2.0, 8.0)
CANTHUS_SPOT_CONTRAST_C = (0.3, 1.2)


@dataclass(frozen=True)
class CanthusSpot:
    """One person's inner-canthus hot spot, as painted on the thermal face before any optics.

    The temperature rises from the surrounding skin (``contrast_c`` below the canthus) to exactly the
    canthus temperature at its centre, with the profile ``2 ** -((r / radius_m) ** shape)``: half-way up
    at ``radius_m``; ``shape`` 2 is a Gaussian peak, larger values flatten the top and steepen the rim.
    """

    radius_m: float = 0.004
    shape: float = 2.0
    contrast_c: float = 0.8

    def profile(self, r_m: np.ndarray) -> np.ndarray:
        """Share of the way from the surrounding skin up to the canthus temperature at distance ``r_m``."""
        return np.exp2(-((np.asarray(r_m) / self.radius_m) ** self.shape))

    def as_dict(self) -> dict[str, float]:
        return {"radius_mm": round(self.radius_m * 1000, 2), "shape": round(self.shape, 2),
                "contrast_c": round(self.contrast_c, 3)}


def draw_canthus_spot(rng: np.random.Generator) -> CanthusSpot:
    """A person's hot spot: radius uniform, shape log-uniform (as many near-Gaussian as flat-topped), contrast
    uniform over the ranges above."""
    lo, hi = CANTHUS_SPOT_SHAPE
    return CanthusSpot(
        radius_m=float(rng.uniform(*CANTHUS_SPOT_RADIUS_M)),
        shape=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        contrast_c=float(rng.uniform(*CANTHUS_SPOT_CONTRAST_C)),
    )


@dataclass(frozen=True)
class Keyframe:
    t: float
    x: float  # metres, right of the visible camera
    z: float  # metres, in front of it
    yaw_deg: float  # head turned to the person's left (+) or right (-)


@dataclass(frozen=True)
class Pose:
    """Where a face is: the midpoint between the eyes, in world metres, and which way it is turned."""

    x: float
    y: float
    z: float
    yaw_deg: float

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])


@dataclass(frozen=True)
class Person:
    person_id: int
    photo_index: int
    ipd_m: float  # interpupillary distance
    eye_height_m: float  # above the floor
    body_c: float  # the oral-equivalent core temperature the alarm is about
    canthus_c: float  # true skin temperature at the inner canthus: body - offset
    glasses: bool
    group: int  # people with the same group walk up together
    skin_bgr: tuple[float, float, float]  # tint for grey photos
    hair_bgr: tuple[float, float, float]
    clothing_bgr: tuple[float, float, float]
    # forehead (its warmest part), cheeks, nose: °C below the canthus. The forehead's range is the FDA
    # facial/oral study's middle 80 % of canthiMax - T_FH_Max (0.1-0.7 °C, median 0.35).
    face_pattern_c: tuple[float, float, float]
    sway_phase: float
    path: tuple[Keyframe, ...]
    canthus_spot: CanthusSpot = CanthusSpot()
    # True: the person keeps walking through every keyframe at a steady pace (a walk-through lane);
    # False: eases into and out of each leg, so they come to a halt at the mark.
    walks_through: bool = False

    @property
    def febrile(self) -> bool:
        return self.body_c >= FEBRILE_BODY_C[0]

    @property
    def t_enter(self) -> float:
        return self.path[0].t

    @property
    def t_leave(self) -> float:
        return self.path[-1].t

    def pose(self, t: float, camera_height_m: float) -> Pose | None:
        """The face's pose at time t, or None while the person is not in the scene."""
        path = self.path
        if t < path[0].t or t > path[-1].t:
            return None
        k = max(i for i in range(len(path) - 1) if path[i].t <= t) if t < path[-1].t else len(path) - 2
        a, b = path[k], path[k + 1]
        s = (t - a.t) / max(b.t - a.t, 1e-9)
        if not self.walks_through:
            s = s * s * (3 - 2 * s)  # people ease into and out of each leg rather than jerk
        x = a.x + (b.x - a.x) * s
        z = a.z + (b.z - a.z) * s
        yaw = a.yaw_deg + (b.yaw_deg - a.yaw_deg) * s
        # Nobody stands perfectly still: a slow sway of about a centimetre, and a gait bob while walking.
        x += 0.008 * math.sin(2 * math.pi * 0.35 * t + self.sway_phase)
        walking = abs(b.z - a.z) + abs(b.x - a.x) > 0.05
        bob = 0.012 * math.sin(2 * math.pi * 1.8 * t + self.sway_phase) if walking else 0.0
        y = camera_height_m - self.eye_height_m + bob + 0.004 * math.sin(2 * math.pi * 0.23 * t + 2 * self.sway_phase)
        return Pose(x=x, y=y, z=z, yaw_deg=yaw)


def plan_visitors(
    rng: np.random.Generator,
    *,
    n_people: int,
    fever_fraction: float,
    glasses_fraction: float,
    pair_fraction: float,
    stop_distance_m: float,
    n_photos: int,
    offset_mean_c: float = CANTHUS_OFFSET_MEAN_C,
    offset_sd_c: float = CANTHUS_OFFSET_SD_C,
    t0: float = 0.4,
    walk_speed_m_s: tuple[float, float] = WALK_SPEED_M_S,
    dwell_s: tuple[float, float] = DWELL_S,
    eye_height_m: tuple[float, float] = EYE_HEIGHT_M,
    walk_through: bool = False,
) -> list[Person]:
    """Plan the people of one recording: mostly one at a time, some pairs, a set share febrile.

    The febrile, bespectacled and paired counts are rounded from the fractions (at least one of each
    when the fraction is non-zero), so a short demo still shows every case a guard must see.

    ``walk_speed_m_s``, ``dwell_s`` and ``eye_height_m`` are the ranges each person's pace, time at the
    mark and eye height are drawn from. With ``walk_through`` nobody stops: each person walks at a steady
    pace past the mark (where they come nearest the station, ``stop_distance_m``) and on past the
    station's side, out of view. The number and order of random draws is the same whatever these are,
    so a seed gives the same people (temperatures, faces, glasses) on every kind of path.
    """
    if n_people < 1:
        raise ValueError(f"n_people: expected at least 1, got {n_people}")
    n_fever = _share(n_people, fever_fraction)
    n_glasses = _share(n_people, glasses_fraction)
    n_pairs = min(_share(n_people, pair_fraction / 2), n_people // 2) if n_people >= 3 else 0

    # Slots: each holds one person or a pair. Pairs never come first, so the demo opens simply.
    n_slots = n_people - n_pairs
    pair_slots = set(rng.choice(np.arange(1, n_slots), size=n_pairs, replace=False).tolist()) if n_pairs else set()
    febrile = set(rng.choice(n_people, size=n_fever, replace=False).tolist())
    bespectacled = set(rng.choice(n_people, size=n_glasses, replace=False).tolist())
    photos = rng.permutation(n_photos)

    people: list[Person] = []
    t = t0
    pid = 0
    for slot in range(n_slots):
        members = 2 if slot in pair_slots else 1
        speed = rng.uniform(*walk_speed_m_s)
        stop_z = stop_distance_m + rng.uniform(-0.06, 0.08)
        dwell = rng.uniform(*dwell_s)
        exit_side = rng.choice([-1.0, 1.0])
        t_arrive = t + (WALK_IN_FROM_M - stop_z) / speed
        t_turn = t_arrive if walk_through else t_arrive + dwell
        t_gone = t_turn + rng.uniform(1.3, 1.7)
        for m in range(members):
            lateral = 0.0 if members == 1 else (-0.21 if m == 0 else 0.21)
            x_stop = lateral + rng.uniform(-0.05, 0.05)
            x_start = x_stop + rng.uniform(-0.5, 0.5)
            lag = 0.0 if m == 0 else rng.uniform(0.05, 0.3)
            yaws = (rng.uniform(-10, 10), rng.uniform(-3, 3), rng.uniform(-3, 3))
            if walk_through:
                path = _walk_through_path(t + lag, x_start, x_stop, stop_z, exit_side, speed, yaws)
            else:
                path = (
                    Keyframe(t + lag, x_start, WALK_IN_FROM_M, yaws[0]),
                    Keyframe(t_arrive + lag, x_stop, stop_z, yaws[1]),
                    Keyframe(t_turn + lag, x_stop, stop_z, yaws[2]),
                    Keyframe(t_gone + lag, x_stop + exit_side * 1.7, stop_z + 0.5, 55.0 * exit_side),
                )
            people.append(_person(rng, pid, int(photos[pid % n_photos]), pid in febrile, pid in bespectacled,
                                  slot, path, offset_mean_c, offset_sd_c, eye_height_m, walk_through))
            pid += 1
        # The next visitor sets off while this one is still at the station, as in a real queue.
        # They arrive about when the previous visitor has stepped aside, sometimes after a pause; in a
        # walk-through lane, a second later, when the previous one has walked on past the station.
        t = t_turn - rng.uniform(1.0, 1.5) + rng.uniform(0.0, 1.0) + (1.0 if walk_through else 0.0)
    return people


def _walk_through_path(t: float, x_start: float, x_near: float, z_near: float, side: float, speed: float,
                       yaws: tuple[float, float, float]) -> tuple[Keyframe, ...]:
    """A steady walk: from the far end to the point nearest the station, then on past its side, out of view.

    Each leg takes its length over ``speed``, so the pace never changes and nobody pauses. Past the
    nearest point the person bears off to one side (0.9 m across while 0.5 m nearer) and turns their head
    the way they go.
    """
    near = (x_near, z_near)
    beyond = (x_near + side * 0.9, max(z_near - 0.5, 0.25))
    t_near = t + math.hypot(near[0] - x_start, near[1] - WALK_IN_FROM_M) / speed
    t_beyond = t_near + math.hypot(beyond[0] - near[0], beyond[1] - near[1]) / speed
    return (
        Keyframe(t, x_start, WALK_IN_FROM_M, yaws[0]),
        Keyframe(t_near, *near, yaws[1]),
        Keyframe(t_beyond, *beyond, 50.0 * side),
    )


def _share(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, min(n, round(n * fraction)))


def _person(
    rng: np.random.Generator,
    pid: int,
    photo_index: int,
    febrile: bool,
    glasses: bool,
    group: int,
    path: tuple[Keyframe, ...],
    offset_mean_c: float,
    offset_sd_c: float,
    eye_height_m: tuple[float, float] = EYE_HEIGHT_M,
    walks_through: bool = False,
) -> Person:
    body = rng.uniform(*(FEBRILE_BODY_C if febrile else NORMAL_BODY_C))
    # Truncated at two SDs: the study's tails are measurement outliers more than physiology.
    offset = float(np.clip(rng.normal(offset_mean_c, offset_sd_c), offset_mean_c - 2 * offset_sd_c,
                           offset_mean_c + 2 * offset_sd_c))
    tone = rng.uniform(0.55, 1.0)
    skin = (0.70 * tone + 0.05, 0.80 * tone + 0.05, 0.98 * tone + 0.06)
    hair = [(30, 30, 35), (25, 45, 80), (60, 100, 150), (150, 150, 155), (20, 20, 20)][int(rng.integers(5))]
    clothing = tuple(float(v) for v in rng.uniform(30, 200, size=3))
    return Person(
        person_id=pid,
        photo_index=photo_index,
        ipd_m=float(np.clip(rng.normal(0.063, 0.0035), 0.055, 0.071)),
        eye_height_m=float(rng.uniform(*eye_height_m)),
        body_c=round(float(body), 3),
        canthus_c=round(float(body - offset), 3),
        glasses=glasses,
        group=group,
        skin_bgr=skin,
        hair_bgr=tuple(v / 255.0 for v in hair),  # type: ignore[arg-type]
        clothing_bgr=tuple(v / 255.0 for v in clothing),  # type: ignore[arg-type]
        face_pattern_c=(float(rng.uniform(0.1, 0.7)), float(rng.uniform(1.3, 1.9)), float(rng.uniform(2.0, 3.2))),
        sway_phase=float(rng.uniform(0, 2 * math.pi)),
        path=path,
        walks_through=walks_through,
    )
