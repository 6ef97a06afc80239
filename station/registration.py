"""Where a face found in the visible image lies on the thermal image.

The two cameras sit a few centimetres apart, so no single mapping fits every distance. The profile's
:class:`~station.profile.Registration` holds a homography that is exact for points at one reference
distance and a parallax term for the rest: a point at depth ``d`` lands shifted by
``parallax_px_m * (1/d - 1/d_ref)`` thermal pixels (the shift of a stereo pair goes as baseline / depth).
That needs each face's depth, which the face itself gives: adult eyes are ~63 mm apart, so the pixels
between them and the focal length say how far away it is.

All functions are pure and vectorised over points and faces.
"""

from __future__ import annotations

import math

import numpy as np

from station.profile import Registration
from station.types import Faces

#: Adult mean interpupillary distance, metres (about 57-70 mm covers most adults; 63 mm is the mean).
MEAN_IPD_M = 0.063


def _check_registration(registration: Registration) -> None:
    if not isinstance(registration, Registration):
        raise TypeError(f"registration: expected a station.profile.Registration, got {type(registration).__name__}")


def distance_from_eyes(
    eye_distance_px: np.ndarray | float, visible_focal_px: float, ipd_m: float = MEAN_IPD_M
) -> np.ndarray | float:
    """Depth of a face (metres along the visible camera's axis) from the pixels between its eyes.

    Pinhole projection: two points ``ipd_m`` apart at depth ``d`` appear ``f * ipd_m / d`` pixels
    apart, so ``d = f * ipd_m / eye_distance_px``. It assumes a face square to the camera: a head
    turned by ``yaw`` shows its eyes ``cos(yaw)`` closer together and so reads farther away (4 % at 15°),
    and people's own eye spacing varies by about ±6 % around 63 mm. Both errors reach the thermal
    image only through the parallax term, which is small near the reference distance.

    Parameters
    ----------
    eye_distance_px
        Pixels between the two eye centres in the visible image (a number or an array), > 0.
    visible_focal_px
        The visible camera's focal length in pixels (``Registration.visible_focal_px``).
    ipd_m
        The eye spacing assumed, metres.

    Returns
    -------
    float or numpy.ndarray
        Metres; a float for a number, a float64 array for an array.
    """
    if not (math.isfinite(visible_focal_px) and visible_focal_px > 0):
        raise ValueError(f"visible_focal_px: expected a focal length above 0 pixels, got {visible_focal_px}")
    if not (math.isfinite(ipd_m) and 0.02 < ipd_m < 0.12):
        raise ValueError(f"ipd_m: expected an eye spacing in metres (0.02-0.12), got {ipd_m}")
    eyes = np.asarray(eye_distance_px, dtype=np.float64)
    if not np.all(np.isfinite(eyes) & (eyes > 0)):
        raise ValueError(f"eye_distance_px: expected finite distances above 0 pixels, got {eye_distance_px}")
    out = visible_focal_px * ipd_m / eyes
    return float(out) if out.ndim == 0 else out


def visible_to_thermal(
    points_px: np.ndarray, distance_m: np.ndarray | float, registration: Registration
) -> np.ndarray:
    """Visible pixels to thermal pixels for points at the given depths.

    Parameters
    ----------
    points_px
        ``(..., 2)`` visible pixel coordinates (x, y).
    distance_m
        Depth of the points, metres: a number, or an array broadcastable to ``points_px.shape[:-1]``
        (one per face, say, with points ``(N, 5, 2)`` and distances ``(N, 1)``).
    registration
        The profile's registration.

    Returns
    -------
    numpy.ndarray
        ``(..., 2)`` float64 thermal pixel coordinates.
    """
    _check_registration(registration)
    points = np.asarray(points_px, dtype=np.float64)
    if points.ndim < 1 or points.shape[-1] != 2:
        raise ValueError(f"points_px: expected shape (..., 2), got {points.shape}")
    distance = np.asarray(distance_m, dtype=np.float64)
    try:
        distance = np.broadcast_to(distance, points.shape[:-1])
    except ValueError:
        raise ValueError(
            f"distance_m: expected a shape broadcastable to {points.shape[:-1]}, got {distance.shape}"
        ) from None
    if not np.all(np.isfinite(distance) & (distance > 0)):
        raise ValueError("distance_m: expected finite distances above 0 metres, got " + np.array2string(distance))
    h = registration.matrix
    mapped = points @ h[:, :2].T + h[:, 2]
    xy = mapped[..., :2] / mapped[..., 2:3]
    shift = np.asarray(registration.parallax_px_m, dtype=np.float64)
    return xy + shift * (1.0 / distance - 1.0 / registration.reference_distance_m)[..., None]


def map_faces(
    faces: Faces, registration: Registration, ipd_m: float = MEAN_IPD_M
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each face's box and landmarks on the thermal image, each mapped at its own distance.

    A face's distance comes from its own eye spacing (:func:`distance_from_eyes`), so two people side
    by side at different depths each get their own parallax. The thermal box is the bounding box of
    the mapped corners (a homography does not keep boxes axis-aligned).

    Parameters
    ----------
    faces
        Faces in visible pixels, with CenterFace's five landmarks (eyes first).
    registration
        The profile's registration.
    ipd_m
        The eye spacing assumed for every face, metres.

    Returns
    -------
    xyxy : numpy.ndarray
        ``(N, 4)`` float32 thermal boxes.
    landmarks : numpy.ndarray
        ``(N, 5, 2)`` float32 thermal landmarks.
    distance_m : numpy.ndarray
        ``(N,)`` float64 distances, metres.
    """
    _check_registration(registration)
    if not isinstance(faces, Faces):
        raise TypeError(f"faces: expected station.types.Faces, got {type(faces).__name__}")
    n = len(faces)
    if n == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0,), np.float64)
    distance = np.asarray(distance_from_eyes(faces.eye_distance_px, registration.visible_focal_px, ipd_m))
    x1, y1, x2, y2 = faces.xyxy.astype(np.float64).T
    corners = np.stack([np.c_[x1, y1], np.c_[x2, y1], np.c_[x2, y2], np.c_[x1, y2]], axis=1)  # (N, 4, 2)
    thermal_corners = visible_to_thermal(corners, distance[:, None], registration)
    xyxy = np.concatenate([thermal_corners.min(axis=1), thermal_corners.max(axis=1)], axis=1)
    landmarks = visible_to_thermal(faces.landmarks, distance[:, None], registration)
    return xyxy.astype(np.float32), landmarks.astype(np.float32), distance
