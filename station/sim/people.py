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
WALK_SPEED_M_S = (1.0, 1.3)


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
) -> list[Person]:
    """Plan the people of one recording: mostly one at a time, some pairs, a set share febrile.

    The febrile, bespectacled and paired counts are rounded from the fractions (at least one of each
    when the fraction is non-zero), so a short demo still shows every case a guard must see.
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
        speed = rng.uniform(*WALK_SPEED_M_S)
        stop_z = stop_distance_m + rng.uniform(-0.06, 0.08)
        dwell = rng.uniform(1.6, 2.4)
        exit_side = rng.choice([-1.0, 1.0])
        t_arrive = t + (WALK_IN_FROM_M - stop_z) / speed
        t_turn = t_arrive + dwell
        t_gone = t_turn + rng.uniform(1.3, 1.7)
        for m in range(members):
            lateral = 0.0 if members == 1 else (-0.21 if m == 0 else 0.21)
            x_stop = lateral + rng.uniform(-0.05, 0.05)
            x_start = x_stop + rng.uniform(-0.5, 0.5)
            lag = 0.0 if m == 0 else rng.uniform(0.05, 0.3)
            path = (
                Keyframe(t + lag, x_start, WALK_IN_FROM_M, rng.uniform(-10, 10)),
                Keyframe(t_arrive + lag, x_stop, stop_z, rng.uniform(-3, 3)),
                Keyframe(t_turn + lag, x_stop, stop_z, rng.uniform(-3, 3)),
                Keyframe(t_gone + lag, x_stop + exit_side * 1.7, stop_z + 0.5, 55.0 * exit_side),
            )
            people.append(_person(rng, pid, int(photos[pid % n_photos]), pid in febrile, pid in bespectacled,
                                  slot, path, offset_mean_c, offset_sd_c))
            pid += 1
        # The next visitor sets off while this one is still at the station, as in a real queue.
        # They arrive about when the previous visitor has stepped aside, sometimes after a pause.
        t = t_turn - rng.uniform(1.0, 1.5) + rng.uniform(0.0, 1.0)
    return people


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
        eye_height_m=float(rng.uniform(1.48, 1.74)),
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
    )
