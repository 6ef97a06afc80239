"""Where a face found in the visible image lies on the thermal image.

The two cameras sit a few centimetres apart, so no single mapping fits every distance. The profile's
:class:`~station.profile.schema.Registration` holds a homography that is exact for points at one reference
distance and a parallax term for the rest: a point at depth ``d`` lands shifted by
``parallax_px_m * (1/d - 1/d_ref)`` thermal pixels (the shift of a stereo pair goes as baseline / depth).
That needs each face's depth, which the face itself gives: adult eyes are ~63 mm apart, so the pixels
between them and the focal length say how far away it is.

All functions are pure and vectorised over points and faces.
"""

from __future__ import annotations

import math

import numpy as np

from station.errors import ProfileError
from station.profile.schema import Registration, frame_size
from station.types import Faces

#: Adult mean interpupillary distance, metres (about 57-70 mm covers most adults; 63 mm is the mean).
MEAN_IPD_M = 0.063

#: Share of the visible frame that must land on the thermal frame (at the reference distance). Small on
#: purpose: a cheap wide webcam (90 degrees) beside a narrow thermal lens (18 degrees) puts only ~3 % of
#: its frame on the thermal one, and that is a working station; a profile below 1 % is for other cameras.
MIN_VISIBLE_SHARE = 0.01
#: Share of the thermal frame the visible frame must cover. A narrow visible camera (45 degrees) beside a
#: wide thermal one (95 degrees) covers ~14 %; below 5 % almost nobody the thermal camera sees can be
#: found, and the profile is for other cameras, another resolution or swapped streams.
MIN_THERMAL_COVERED = 0.05
#: Distances a face is screened at, metres: people walk up from ~3 m and stop where the thermal camera
#: puts 3 pixels across a canthus (0.67 m for a Lepton, ~1 m for a Boson); 0.5 m leaves room for any lens.
SCREENING_RANGE_M = (0.5, 3.0)
#: Visible and thermal pixels sampled per side when measuring how the frames overlap.
_OVERLAP_GRID = 41


def _check_registration(registration: Registration) -> None:
    if not isinstance(registration, Registration):
        raise TypeError(f"registration: expected a station.profile.schema.Registration, "
                        f"got {type(registration).__name__}")


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


def check_registration_covers(
    registration: Registration,
    visible_shape: tuple[int, ...],
    thermal_shape: tuple[int, ...],
    *,
    origin: str = "calibration profile",
) -> None:
    """Refuse a registration that does not put the visible frame on the thermal frame.

    A profile's homography can be perfectly invertible and still be for other cameras: one that sends
    the visible frame 1e9 px away, or shrinks it onto a few thermal pixels, maps every face off the
    thermal image (or onto one pixel), and the station screens nobody without a word. Whether it fits
    depends on the frame sizes, which the profile does not record, so this runs when the profile meets
    its sources. Three checks, each about where faces can land:

    * the homography's horizon (where it sends points to infinity) must not cross the visible frame;
    * at the reference distance at least :data:`MIN_VISIBLE_SHARE` of the visible frame must land on
      the thermal frame, and it must cover at least :data:`MIN_THERMAL_COVERED` of the thermal frame,
      both measured on a grid of pixels, so a frame clipped by the other counts only where it overlaps;
    * across :data:`SCREENING_RANGE_M` the parallax must not move a face further than the thermal
      frame's diagonal from where the homography puts it: a shift that large sends a face at one end of
      the range off the frame, so the parallax cannot be this rig's (it is the thermal focal length times
      a baseline of a few centimetres).

    Parameters
    ----------
    registration
        The profile's registration.
    visible_shape, thermal_shape
        The frames' shapes, ``(height, width[, channels])`` as ``frame.image.shape`` gives them.
    origin
        How the message names the profile (its path).

    Raises
    ------
    ProfileError
        One line saying which check failed, with the numbers, and what to do.
    ValueError
        A shape that is not an image shape (a bug in the caller).
    """
    _check_registration(registration)
    vw, vh = frame_size(visible_shape, "visible_shape")
    tw, th = frame_size(thermal_shape, "thermal_shape")
    where = f"{origin}: [registration]"
    redo = "recalibrate with station calibrate register"
    h = registration.matrix

    # Pixel i spans [i, i + 1): the frame is [0, w] x [0, h]. w (the homogeneous coordinate) is affine in
    # x and y, so its sign over the rectangle is settled at the corners.
    corners = np.array([[0.0, 0.0, 1.0], [vw, 0.0, 1.0], [vw, vh, 1.0], [0.0, vh, 1.0]])
    w = corners @ h[2]
    if not (np.all(w > 0) or np.all(w < 0)):
        raise ProfileError(f"{where} the homography sends part of the {vw}x{vh} visible frame to infinity (its "
                           f"horizon crosses the frame), so it cannot be these cameras' mapping; {redo}")
    sign = 1.0 if w[0] > 0 else -1.0

    visible_share = _share_inside(h, vw, vh, tw, th, sign)
    thermal_covered = _share_inside(np.linalg.inv(h), tw, th, vw, vh, sign)
    if visible_share < MIN_VISIBLE_SHARE or thermal_covered < MIN_THERMAL_COVERED:
        raise ProfileError(
            f"{where} at the reference distance {_percent(visible_share)} of the {vw}x{vh} visible frame lands on "
            f"the {tw}x{th} thermal frame and covers {_percent(thermal_covered)} of it (at least "
            f"{100 * MIN_VISIBLE_SHARE:g} % and {100 * MIN_THERMAL_COVERED:g} % expected): the profile is for other "
            f"cameras, another resolution or another mounting; {redo}"
        )

    near, far = SCREENING_RANGE_M
    inverse_ref = 1.0 / registration.reference_distance_m
    reach = max(abs(1.0 / near - inverse_ref), abs(1.0 / far - inverse_ref))
    shift = math.hypot(*registration.parallax_px_m) * reach
    diagonal = math.hypot(tw, th)
    if shift > diagonal:
        parallax = ", ".join(f"{v:g}" for v in registration.parallax_px_m)
        raise ProfileError(
            f"{where} parallax_px_m [{parallax}] moves a face up to {shift:.0f} thermal px between {near:g} and "
            f"{far:g} m, more than the {tw}x{th} thermal frame's diagonal ({diagonal:.0f} px), so faces at one end "
            f"of the range land off the frame; {redo}"
        )


def _share_inside(h: np.ndarray, width: int, height: int, to_width: int, to_height: int, sign: float) -> float:
    """Share of a ``width x height`` frame's pixels that ``h`` puts inside a ``to_width x to_height`` frame.

    ``sign`` is the sign of the homogeneous coordinate on the visible side of the horizon: a point mapped
    with the other sign is behind it, not on the frame, even where its coordinates fall inside.
    """
    xs = (np.arange(_OVERLAP_GRID) + 0.5) * (width / _OVERLAP_GRID)
    ys = (np.arange(_OVERLAP_GRID) + 0.5) * (height / _OVERLAP_GRID)
    xx, yy = np.meshgrid(xs, ys)
    points = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], axis=1) @ h.T
    w = points[:, 2]
    ahead = w * sign > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = points[:, 0] / w, points[:, 1] / w
    inside = ahead & (x >= 0) & (x <= to_width) & (y >= 0) & (y <= to_height)
    return float(np.mean(inside))


def _percent(share: float) -> str:
    """A share as a percentage that never reads 0 % when a little is there, nor 100 % when a little is not."""
    if 0 < share < 0.001:
        return "under 0.1 %"
    return f"{100 * share:.1f} %"


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
