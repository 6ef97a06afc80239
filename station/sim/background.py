"""The entrance hall behind the visitors, ray-cast from one 3-D room so both cameras see the same place.

A box-shaped hall: the floor 1.6 m below the cameras, a ceiling with light panels, side walls with a
notice board, and a back wall with an open door to the outside. Each pixel's ray is intersected with
the room once, and the surface it hits gives both its colour (visible camera) and its temperature
(thermal camera): floor cooler than the air, walls warmer towards the ceiling, lamps warm, the open
door showing the colder outdoors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from station.sim.camera import PinholeCamera


@dataclass(frozen=True)
class Room:
    camera_height_m: float = 1.6
    ceiling_height_m: float = 2.7
    half_width_m: float = 2.2
    depth_m: float = 6.5
    door_half_width_m: float = 0.6
    door_height_m: float = 2.15

    @property
    def floor_y(self) -> float:
        return self.camera_height_m

    @property
    def ceiling_y(self) -> float:
        return self.camera_height_m - self.ceiling_height_m


# Surface codes of the hit map.
FLOOR, CEILING, LEFT, RIGHT, BACK, DOOR, LAMP, BOARD, FRAME = range(9)


def _hits(room: Room, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ray (…,3) from the origin: the world hit point and the surface code."""
    dx, dy, dz = rays[..., 0], rays[..., 1], rays[..., 2]
    big = np.float64(1e9)
    with np.errstate(divide="ignore", invalid="ignore"):
        candidates = np.stack(
            [
                np.where(dy > 0, room.floor_y / dy, big),
                np.where(dy < 0, room.ceiling_y / dy, big),
                np.where(dx < 0, -room.half_width_m / dx, big),
                np.where(dx > 0, room.half_width_m / dx, big),
                np.where(dz > 0, room.depth_m / dz, big),
            ]
        )
    which = np.argmin(candidates, axis=0)
    s = np.take_along_axis(candidates, which[None], axis=0)[0]
    point = rays * s[..., None]
    code = which.copy()
    x, y, z = point[..., 0], point[..., 1], point[..., 2]

    on_back = which == BACK
    door = on_back & (np.abs(x) < room.door_half_width_m) & (y > room.floor_y - room.door_height_m)
    frame = on_back & ~door & (np.abs(x) < room.door_half_width_m + 0.08) & (
        y > room.floor_y - room.door_height_m - 0.08
    )
    code[door] = DOOR
    code[frame] = FRAME
    on_ceiling = which == CEILING
    lamp = on_ceiling & (np.abs(np.abs(x) - 0.9) < 0.3) & (np.mod(z, 2.0) < 0.6)
    code[lamp] = LAMP
    board = (which == LEFT) & (z > 2.4) & (z < 3.4) & (y > -0.45) & (y < 0.25)
    code[board] = BOARD
    return point, code


def visible_background(room: Room, camera: PinholeCamera, rng: np.random.Generator) -> np.ndarray:
    """BGR float32 (H, W, 3) in 0..1."""
    point, code = _hits(room, camera.ray_directions())
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    img = np.zeros(code.shape + (3,), dtype=np.float32)

    tiles = (np.floor(x / 0.6) + np.floor(z / 0.6)) % 2
    grout = (np.mod(x, 0.6) < 0.015) | (np.mod(z, 0.6) < 0.015)
    floor = np.where(tiles[..., None] > 0, [0.55, 0.57, 0.56], [0.47, 0.49, 0.50])
    floor = np.where(grout[..., None], [0.35, 0.36, 0.36], floor)
    _paint(img, code == FLOOR, floor)

    wall_tone = np.array([0.72, 0.80, 0.84]) + rng.uniform(-0.05, 0.05, 3)
    shade = (0.92 + 0.08 * np.clip((room.floor_y - y) / room.ceiling_height_m, 0, 1))[..., None]
    _paint(img, code == BACK, wall_tone * shade)
    _paint(img, code == LEFT, wall_tone * 0.90 * shade)
    _paint(img, code == RIGHT, wall_tone * 0.94 * shade)
    _paint(img, code == CEILING, np.broadcast_to([0.86, 0.86, 0.86], img.shape))
    _paint(img, code == LAMP, np.broadcast_to([0.99, 0.99, 0.97], img.shape))
    _paint(img, code == FRAME, np.broadcast_to([0.18, 0.26, 0.36], img.shape))
    outside = np.clip(0.80 + 0.15 * (room.floor_y - y) / room.door_height_m, 0, 1)[..., None]
    _paint(img, code == DOOR, outside * np.array([0.98, 0.93, 0.86]))
    stripes = (np.floor(z / 0.25) % 3)[..., None]
    board = np.where(stripes == 0, [0.20, 0.35, 0.75], np.where(stripes == 1, [0.85, 0.85, 0.80], [0.25, 0.55, 0.30]))
    _paint(img, code == BOARD, board)

    # Light falls off with distance, and no real wall is perfectly flat in colour.
    dist = np.linalg.norm(point, axis=-1)
    img *= (1.0 - 0.04 * np.clip(dist - 1.0, 0, 6))[..., None].astype(np.float32)
    img += rng.normal(0, 0.01, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def thermal_background(
    room: Room,
    camera: PinholeCamera,
    ambient_c: float,
    outdoor_c: float,
    supersample: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """True surface temperatures (°C, float32) at the supersampled resolution (H*s, W*s)."""
    point, code = _hits(room, camera.ray_directions(supersample))
    y = point[..., 1]
    height_above_floor = room.floor_y - y
    # Warm air rises: about 0.4 °C per metre up the walls; the floor sits below the air temperature.
    temp = ambient_c + 0.4 * (height_above_floor - 1.2)
    temp = np.where(code == FLOOR, ambient_c - 1.5, temp)
    temp = np.where(code == CEILING, ambient_c + 0.8, temp)
    temp = np.where(code == LAMP, ambient_c + 11.0, temp)
    temp = np.where(code == FRAME, ambient_c - 0.5, temp)
    temp = np.where(code == DOOR, outdoor_c + 0.5 * (height_above_floor - 1.0), temp)
    temp = np.where(code == BOARD, ambient_c + 0.2, temp)
    # Large, smooth patches: radiators behind the walls, sunlit spots; nothing the eye could pick out.
    h, w = temp.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    for _ in range(3):
        cx, cy, r, a = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.15, 0.4), rng.uniform(-0.6, 0.6)
        temp = temp + a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)) * (code != DOOR)
    return temp.astype(np.float32)


def surface_depth_m(room: Room, camera: PinholeCamera, supersample: int) -> np.ndarray:
    """How far in front of the camera (along its axis) the room's surface is at each (sub)pixel, in metres:
    what the lens's focus acts on."""
    point, _ = _hits(room, camera.ray_directions(supersample))
    return (point @ camera.rotation.T)[..., 2].astype(np.float32)


def _paint(img: np.ndarray, mask: np.ndarray, colour) -> None:
    colour = np.asarray(colour, dtype=np.float32)
    if colour.ndim == 1:
        img[mask] = colour
    else:
        img[mask] = np.broadcast_to(colour, img.shape)[mask]
