"""What a visitor looks like to each camera, painted on flat textures that the renderer places in 3-D.

A person is two billboards: the head (a plane through the eyes) and the neck and shoulders (a plane a
little behind it). Both cameras see the *same* billboards, so the visible photo's eyes and the thermal
face's hot inner canthi come from one geometry, and parallax between the cameras is real.

Textures share one grid: 1 mm per texel, origin at the midpoint between the eyes, x to the person's
left as the camera sees it, y down. Visible textures hold premultiplied BGR plus alpha; thermal ones
hold true surface temperature, emissivity and alpha.

The thermal face follows the literature on facial thermograms: the inner canthi are the hottest skin
(closest to the core: they sit over the ophthalmic artery's branches), the eyes a little cooler, the
forehead about half a degree to one degree below the canthi, cheeks cooler, the nose tip coolest, hair
near the air temperature, and spectacle lenses opaque at 8-14 µm, so they show their own (near-ambient)
temperature and hide the canthi behind them.

Each inner canthus is a small hot spot painted with the rest of the face, before any optics: its size,
profile and contrast are the person's own (:class:`~station.sim.people.CanthusSpot`), its centre is
exactly the canthus temperature, and the skin around it stands ``contrast_c`` lower. Nothing here blurs
it: the only optical blur is the camera's (:mod:`station.sim.optics`), so a small, peaked or high-contrast
spot reads low through a coarse camera as it would through a real one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from station.sim.people import Person
from station.sim.photos import FacePhoto

TEXEL_M = 0.001
HEAD_SIZE_PX = (200, 300)  # width, height of the head texture
TORSO_TEXEL_M = 0.002
TORSO_SIZE_PX = (260, 330)
TORSO_TOP_M = 0.06  # below the eyes
TORSO_BEHIND_M = 0.09  # neck and shoulders sit behind the face plane

FACE_CENTRE_M = (0.0, 0.026)
FACE_AXES_M = (0.068, 0.098)
HAIR_CENTRE_M = (0.0, -0.022)
HAIR_AXES_M = (0.084, 0.106)
LENS_AXES_M = (0.025, 0.017)

# Each inner canthus sits about a quarter of the eye-to-eye distance inward from its eye's centre,
# that is 0.26 IPD from the midline (palpebral fissures are ~30 mm wide for a 63 mm IPD).
CANTHUS_FROM_MIDLINE = 0.26
# The skin around each canthus (eyelids, the side of the nose's bridge) within about this radius stands at
# the person's canthus temperature less the spot's contrast; farther out the face keeps its own pattern.
PERIORBITAL_SIGMA_M = 0.008
# The temperature field of skin is smooth on the scale of a few millimetres (heat spreads in tissue):
# the face's broad pattern is smoothed by this much before the canthus spots go on.
SKIN_SMOOTHING_M = 0.0025

SKIN_EMISSIVITY = 0.98
HAIR_EMISSIVITY = 0.97
CLOTH_EMISSIVITY = 0.95
GLASS_EMISSIVITY = 0.92


@dataclass(frozen=True)
class Texture:
    """A billboard's texels: ``channels`` (h, w, C) float32 and ``alpha`` (h, w) in 0..1."""

    channels: np.ndarray
    alpha: np.ndarray
    texel_m: float
    origin_px: tuple[float, float]  # texel coordinates (j, i) of the billboard's anchor point

    def premultiplied(self) -> np.ndarray:
        """(h, w, C+1): channels times alpha, then alpha, ready for one warp per layer."""
        return np.dstack([self.channels * self.alpha[..., None], self.alpha]).astype(np.float32)


def canthus_positions_m(ipd_m: float) -> np.ndarray:
    """Inner canthi (2, 2) in head-plane metres: a quarter IPD inward from each eye, a hair below."""
    x = ipd_m * CANTHUS_FROM_MIDLINE
    return np.array([[-x, 0.001], [x, 0.001]])


def _grid(size_px: tuple[int, int], texel_m: float, top_m: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    w, h = size_px
    xs = (np.arange(w) - (w - 1) / 2.0) * texel_m
    ys = (np.arange(h) - (h - 1) / 2.0) * texel_m if top_m is None else top_m + np.arange(h) * texel_m
    return np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))


def _ellipse(xx, yy, centre, axes, feather_m: float = 0.0015) -> np.ndarray:
    """Soft-edged ellipse coverage in 0..1 (the soft edge keeps warped outlines from aliasing)."""
    r = np.sqrt(((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2)
    return np.clip(0.5 - (r - 1.0) * min(axes) / feather_m, 0.0, 1.0).astype(np.float32)


def _ring(xx, yy, centre, axes, width_m: float) -> np.ndarray:
    outer = _ellipse(xx, yy, centre, (axes[0] + width_m / 2, axes[1] + width_m / 2), 0.0008)
    inner = _ellipse(xx, yy, centre, (axes[0] - width_m / 2, axes[1] - width_m / 2), 0.0008)
    return np.clip(outer - inner, 0, 1)


def _head_origin() -> tuple[float, float]:
    w, h = HEAD_SIZE_PX
    return ((w - 1) / 2.0, (h - 1) / 2.0)


def _torso_origin() -> tuple[float, float]:
    w, _ = TORSO_SIZE_PX
    return ((w - 1) / 2.0, -TORSO_TOP_M / TORSO_TEXEL_M)


# ---------------------------------------------------------------------------------------------- visible
def visible_head(person: Person, photo: FacePhoto) -> Texture:
    xx, yy = _grid(HEAD_SIZE_PX, TEXEL_M)
    w, h = HEAD_SIZE_PX
    hair = _ellipse(xx, yy, HAIR_CENTRE_M, HAIR_AXES_M)
    face = _ellipse(xx, yy, FACE_CENTRE_M, FACE_AXES_M, feather_m=0.004)
    skin = np.asarray(person.skin_bgr, dtype=np.float32)

    # Place the photo so its eyes land on this person's eyes: a similarity transform, exact for two points.
    (ex1, ey1), (ex2, ey2) = photo.eyes
    jx, iy = _head_origin()
    half = person.ipd_m / 2.0 / TEXEL_M
    src = np.array([[ex1, ey1], [ex2, ey2]], dtype=np.float64)
    dst = np.array([[jx - half, iy], [jx + half, iy]], dtype=np.float64)
    m = _similarity(src, dst)
    image = photo.image * (skin / 0.62) if photo.grey else photo.image
    warped = cv2.warpAffine(np.clip(image, 0, 1), m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    covered = cv2.warpAffine(np.ones(photo.image.shape[:2], np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    covered = cv2.erode(covered, np.ones((5, 5), np.uint8))

    colour = np.empty((h, w, 3), dtype=np.float32)
    colour[:] = np.asarray(person.hair_bgr, dtype=np.float32)
    photo_weight = (face * covered)[..., None]
    colour = colour * (1 - face[..., None]) + skin * 0.9 * face[..., None]
    colour = colour * (1 - photo_weight) + np.clip(warped, 0, 1) * photo_weight

    # A little shading towards the face's rim reads as a rounded head rather than a flat disc.
    r = np.sqrt(((xx - FACE_CENTRE_M[0]) / FACE_AXES_M[0]) ** 2 + ((yy - FACE_CENTRE_M[1]) / FACE_AXES_M[1]) ** 2)
    colour *= (1.0 - 0.18 * np.clip(r, 0, 1) ** 3)[..., None]

    if person.glasses:
        for eye_x in (-person.ipd_m / 2, person.ipd_m / 2):
            lens = _ellipse(xx, yy, (eye_x, 0.0), LENS_AXES_M, 0.001)
            rim = _ring(xx, yy, (eye_x, 0.0), LENS_AXES_M, 0.003)
            tint = 0.18 * lens[..., None]
            colour = colour * (1 - tint) + np.array([0.55, 0.45, 0.40], np.float32) * tint
            colour = colour * (1 - rim[..., None]) + np.array([0.08, 0.08, 0.10], np.float32) * rim[..., None]
        bridge = ((np.abs(xx) < person.ipd_m / 2 - LENS_AXES_M[0]) & (np.abs(yy + 0.003) < 0.0015)).astype(np.float32)
        colour = colour * (1 - bridge[..., None]) + 0.08 * bridge[..., None]

    alpha = np.maximum(hair, face)
    return Texture(np.clip(colour, 0, 1).astype(np.float32), alpha, TEXEL_M, _head_origin())


def visible_torso(person: Person) -> Texture:
    xx, yy = _grid(TORSO_SIZE_PX, TORSO_TEXEL_M, top_m=TORSO_TOP_M)
    neck, body = _torso_masks(xx, yy)
    colour = np.empty(xx.shape + (3,), dtype=np.float32)
    cloth = np.asarray(person.clothing_bgr, dtype=np.float32)
    folds = 1.0 - 0.08 * np.sin(xx * 40.0 + yy * 12.0) ** 2
    colour[:] = cloth * folds[..., None]
    skin = np.asarray(person.skin_bgr, dtype=np.float32) * 0.8
    colour = colour * (1 - (neck * (1 - body))[..., None]) + skin * (neck * (1 - body))[..., None]
    return Texture(colour, np.maximum(neck, body), TORSO_TEXEL_M, _torso_origin())


def head_outline_m(n: int = 32) -> np.ndarray:
    """The head's silhouette (hair and face ellipses together) in head-plane metres, for occlusion."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    hair = np.c_[HAIR_CENTRE_M[0] + HAIR_AXES_M[0] * np.cos(a), HAIR_CENTRE_M[1] + HAIR_AXES_M[1] * np.sin(a)]
    chin = np.c_[FACE_CENTRE_M[0] + FACE_AXES_M[0] * np.cos(a), FACE_CENTRE_M[1] + FACE_AXES_M[1] * np.sin(a)]
    return np.vstack([hair, chin[(chin[:, 1] > 0)]])  # the face ellipse's lower half reaches below the hair


def torso_outline_m(n: int = 9) -> np.ndarray:
    """Neck and shoulders (as :func:`_torso_masks` paints them) in torso-plane metres, for occlusion."""
    bottom = TORSO_TOP_M + TORSO_SIZE_PX[1] * TORSO_TEXEL_M
    xs = np.linspace(-0.23, 0.23, n)
    shoulders = np.c_[xs, 0.215 + 0.9 * np.maximum(np.abs(xs) - 0.06, 0) ** 2 / 0.2]
    neck = np.array([[-0.052, TORSO_TOP_M], [0.052, TORSO_TOP_M]])
    return np.vstack([[[-0.23, bottom]], shoulders[: n // 2], neck, shoulders[n // 2 + 1 :], [[0.23, bottom]]])


def _torso_masks(xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    neck = (np.clip(0.5 - (np.abs(xx) - 0.052) / 0.002, 0, 1) * (yy < 0.26)).astype(np.float32)
    shoulder_line = 0.215 + 0.9 * np.maximum(np.abs(xx) - 0.06, 0) ** 2 / 0.2
    body = np.clip(0.5 - (shoulder_line - yy) / 0.003, 0, 1) * np.clip(0.5 - (np.abs(xx) - 0.23) / 0.003, 0, 1)
    return neck, body.astype(np.float32)


# ---------------------------------------------------------------------------------------------- thermal
def canthus_temperatures(person: Person) -> tuple[float, float]:
    """Left and right canthus °C: the hotter one is the person's true canthus temperature.

    The other is up to 0.2 °C cooler, as faces are not symmetric; which side is hotter is drawn from
    the person's own sway phase, so it is fixed per person and needs no extra random draw.
    """
    asym = 0.05 + 0.15 * abs(np.sin(person.sway_phase * 3.1))
    if np.cos(person.sway_phase) >= 0:
        return person.canthus_c, person.canthus_c - asym
    return person.canthus_c - asym, person.canthus_c


def lips_below_canthus_c(person: Person) -> float:
    """How much cooler than the canthus a person's lips are (negative: warmer), fixed per person from its
    sway phase, so it needs no extra random draw and every other draw of a seeded scene stays as it was."""
    return 0.55 * float(np.sin(person.sway_phase * 1.7 + 0.4))


def thermal_head(person: Person, ambient_c: float) -> Texture:
    """Channels: true temperature (°C) and emissivity.

    The broad pattern (forehead, cheeks, nose, lips, jaw, eyes, hair) is painted and smoothed first; the
    skin around each inner canthus is set ``contrast_c`` below the canthus; then each canthus's hot spot
    rises from there to its own temperature (:func:`canthus_temperatures`), reached at the texel nearest
    the canthus, so the texture's hottest point there *is* the true temperature. No blur follows.
    """
    xx, yy = _grid(HEAD_SIZE_PX, TEXEL_M)
    hair = _ellipse(xx, yy, HAIR_CENTRE_M, HAIR_AXES_M)
    face = _ellipse(xx, yy, FACE_CENTRE_M, FACE_AXES_M, feather_m=0.004)
    tc = person.canthus_c
    spot = person.canthus_spot
    forehead_drop, cheek_drop, nose_drop = person.face_pattern_c

    def bump(cx, cy, sx, sy):
        return np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))

    skin = tc - forehead_drop - 0.35 + 0.35 / (1 + np.exp((yy + 0.02) / 0.008))
    skin -= (cheek_drop - forehead_drop - 0.35) * (bump(-0.038, 0.038, 0.016, 0.016) + bump(0.038, 0.038, 0.016, 0.016))
    skin -= nose_drop * bump(0.0, 0.047, 0.009, 0.011)
    # The lips: as warm as the canthi give or take half a degree (FDA study: canthiMax - T_OR_Max has a
    # median of 0.03 °C, middle 80 % within about +-0.6), the offset fixed per person by its sway phase.
    lips = bump(0.0, 0.077, 0.018, 0.007)
    skin = skin * (1 - lips) + (tc - lips_below_canthus_c(person)) * lips
    r = np.sqrt(((xx - FACE_CENTRE_M[0]) / FACE_AXES_M[0]) ** 2 + ((yy - FACE_CENTRE_M[1]) / FACE_AXES_M[1]) ** 2)
    skin -= 1.2 * np.clip(r, 0, 1) ** 4  # the jaw line and temples lose more heat
    canthi = canthus_positions_m(person.ipd_m)
    surround_c = tc - spot.contrast_c
    for cx, cy in canthi:
        near = bump(cx, cy, PERIORBITAL_SIGMA_M, PERIORBITAL_SIGMA_M)
        skin = skin * (1 - near) + surround_c * near
    # The eyes' surface is cooler than the canthus beside it, and no warmer than the skin around it.
    eye_c = tc - max(0.45, spot.contrast_c + 0.1)
    for eye_x in (-person.ipd_m / 2, person.ipd_m / 2):
        eye = _ellipse(xx, yy, (eye_x, 0.0), (0.013, 0.006), 0.002)
        skin = skin * (1 - eye) + eye_c * eye
    hair_c = ambient_c + 4.5
    temp = hair_c * (1 - face) + skin * face
    temp = cv2.GaussianBlur(temp.astype(np.float32), (0, 0), SKIN_SMOOTHING_M / TEXEL_M)

    # The hot spots, centred on the texel nearest each canthus (within half a millimetre of it).
    for (cx, cy), peak in zip(canthi, canthus_temperatures(person), strict=True):
        sx, sy = xx[0, np.argmin(np.abs(xx[0] - cx))], yy[np.argmin(np.abs(yy[:, 0] - cy)), 0]
        weight = spot.profile(np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2)).astype(np.float32)
        temp = np.maximum(temp, temp + (peak - temp) * weight)
    emissivity = HAIR_EMISSIVITY * (1 - face) + SKIN_EMISSIVITY * face

    if person.glasses:
        for eye_x in (-person.ipd_m / 2, person.ipd_m / 2):
            lens = _ellipse(xx, yy, (eye_x, 0.0), LENS_AXES_M, 0.001)
            rim = _ring(xx, yy, (eye_x, 0.0), LENS_AXES_M, 0.003)
            cover = np.maximum(lens, rim)
            temp = temp * (1 - cover) + (ambient_c + 2.5 + 1.5 * rim) * cover
            emissivity = emissivity * (1 - lens) + GLASS_EMISSIVITY * lens
        bridge = ((np.abs(xx) < person.ipd_m / 2 - LENS_AXES_M[0]) & (np.abs(yy + 0.003) < 0.0015)).astype(np.float32)
        temp = temp * (1 - bridge) + (ambient_c + 4.0) * bridge

    alpha = np.maximum(hair, face)
    return Texture(np.dstack([temp, emissivity]).astype(np.float32), alpha, TEXEL_M, _head_origin())


def thermal_torso(person: Person, ambient_c: float) -> Texture:
    xx, yy = _grid(TORSO_SIZE_PX, TORSO_TEXEL_M, top_m=TORSO_TOP_M)
    neck, body = _torso_masks(xx, yy)
    cloth_c = ambient_c + 5.5 + 0.6 * np.sin(xx * 40.0 + yy * 12.0) - 1.5 * np.clip(yy - 0.3, 0, 1)
    neck_c = person.canthus_c - 1.6
    only_neck = neck * (1 - body)
    temp = cloth_c * (1 - only_neck) + neck_c * only_neck
    emissivity = CLOTH_EMISSIVITY * (1 - only_neck) + SKIN_EMISSIVITY * only_neck
    return Texture(np.dstack([temp, emissivity]).astype(np.float32), np.maximum(neck, body), TORSO_TEXEL_M,
                   _torso_origin())


# ---------------------------------------------------------------------------------------------- blackbody
BLACKBODY_HOUSING_M = 0.07
BLACKBODY_EMITTER_M = 0.045


def blackbody_textures(setpoint_c: float, ambient_c: float) -> tuple[Texture, Texture]:
    """Visible and thermal faces of the reference source: a housing around a flat, black emitter."""
    n = int(round(BLACKBODY_HOUSING_M / TEXEL_M))
    xx, yy = _grid((n, n), TEXEL_M)
    emitter = ((np.abs(xx) < BLACKBODY_EMITTER_M / 2) & (np.abs(yy) < BLACKBODY_EMITTER_M / 2)).astype(np.float32)
    alpha = np.ones_like(xx)
    colour = np.empty(xx.shape + (3,), np.float32)
    colour[:] = 0.32
    colour = colour * (1 - emitter[..., None]) + 0.04 * emitter[..., None]
    temp = (ambient_c + 2.0) * (1 - emitter) + setpoint_c * emitter
    emissivity = 0.95 * (1 - emitter) + 1.0 * emitter
    origin = ((n - 1) / 2.0, (n - 1) / 2.0)
    return (
        Texture(colour, alpha, TEXEL_M, origin),
        Texture(np.dstack([temp, emissivity]).astype(np.float32), alpha, TEXEL_M, origin),
    )


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix of the rotation+scale+shift taking two source points onto two destination points."""
    vs, vd = src[1] - src[0], dst[1] - dst[0]
    scale = np.linalg.norm(vd) / np.linalg.norm(vs)
    angle = np.arctan2(vd[1], vd[0]) - np.arctan2(vs[1], vs[0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    shift = dst[0] - rot @ src[0]
    return np.hstack([rot, shift[:, None]]).astype(np.float64)
