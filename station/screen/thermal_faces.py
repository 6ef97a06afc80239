"""Faces found in the thermal image itself, for stations (and recordings) without a visible camera.

Many kiosks have only a thermal camera, and a visible camera fails in the dark or in glare. The face
model was trained on visible faces, but a thermal face, contrast-stretched to 8 bits, still has a
face's layout (a warm oval, two eye sockets, a nose, a mouth), and the same CenterFace finds most of
them. What thermal adds to make it reliable:

* **Temperature windowing, both polarities.** The 8-bit image spans a fixed 12 °C from the coldest
  part of the scene, so a face keeps the same contrast whatever else is in view (a bright reference
  disc does not squash it). In a thermal face the eyes are the warmest skin, the opposite of a
  visible face's dark eyes, and hair is cold; for some faces the inverted image looks more like what
  the model learnt (on the kiosk recordings it puts the eyes on the warm eye spots where the plain
  image, for a face a metre away, can latch onto the cold nostrils as "eyes" and read the face 20 %
  too small, so too far). So the inverted image is tried whenever the plain one shows no confident
  face, and the two sets of detections are merged.
* **Skin plausibility.** A detection is kept only when its warmest skin reads like skin: the hottest
  2 % of its box between ``skin_min_c`` and ``skin_max_c`` and clearly warmer than the room. The
  warmest part, not the centre: spectacle lenses are opaque in the long-wave infrared and read near
  room temperature, so a spectacle wearer's face centre (lenses and the cool nose) can be only 2 °C
  above a warm room, while the canthi, lips and forehead around it stay warm. A poster, a photograph
  or a cold window frame with a face-like pattern reads at room temperature throughout.
* **One head, one box.** A bowed head can show the model two "faces", the face itself and the crown
  and forehead above it. Two heads at the same distance cannot be closer than about a head's width,
  so two boxes of similar size whose centres are closer than that are one head: the better one stays.
* **Temporal confirmation and distance** come from the engine downstream: a track needs several
  readings before a decision, and the canthus ROI's size in thermal pixels says whether the face is
  near enough to be measured, exactly as with a visible camera.

Pure functions of a °C frame; the detector is the station's own :class:`~station.screen.detect.FaceDetector`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from station.screen.detect import FaceDetector
from station.screen.track import iou_matrix, shift_and_ratio
from station.types import Faces


@dataclass(frozen=True)
class ThermalFaceSettings:
    """How thermal frames are shown to the face model and which detections count as skin.

    scale
        Upscaling before detection: a face across a third of a 160x120 frame is ~40 px, small for the
        model; 1.5x brings it where it finds faces reliably without costing much time.
    window_c
        The span of temperatures mapped to 0-255, starting at the scene's 2nd percentile.
    skin_min_c, skin_max_c
        The warmest 10 % of a face's central region must read within these (apparent, emissivity 1):
        skin seen by an uncorrected Lepton reads about 30-38 °C, a fever a little more.
    contrast_c
        ... and be this much warmer than the scene's median (the room). On the 14 kiosk recordings every
        real face's warmest 2 % is at least 2.7 °C above the room (a spectacle wearer in a 29 °C room);
        a surface at room temperature is 0 °C above it.
    warm_percentile
        The percentile of the box that stands for its warmest skin: high enough to find the canthi or
        lips, low enough that one hot pixel does not.
    second_pass_below
        The inverted image is also searched when the plain one's best face scores below this.
    same_head_widths, same_head_ratio
        Two boxes whose centres are closer than this many widths (of the larger) and whose widths differ
        by less than this factor are one head.
    nms_iou
        Plain and inverted detections of the same face overlap: above this IoU the better one stays.
    """

    scale: float = 1.5
    window_c: float = 12.0
    skin_min_c: float = 29.0
    skin_max_c: float = 42.0
    contrast_c: float = 2.5
    warm_percentile: float = 98.0
    second_pass_below: float = 0.6
    same_head_widths: float = 0.75
    same_head_ratio: float = 1.5
    nms_iou: float = 0.3


def to_grey8(celsius: np.ndarray, settings: ThermalFaceSettings) -> np.ndarray:
    """The frame as 8-bit grey over a fixed window above the scene's cold end, upscaled."""
    finite = np.nan_to_num(celsius, nan=float(np.nanmedian(celsius)))
    low = float(np.percentile(finite, 2.0))
    grey = np.clip((finite - low) * (255.0 / settings.window_c), 0, 255).astype(np.uint8)
    if settings.scale != 1.0:
        grey = cv2.resize(grey, None, fx=settings.scale, fy=settings.scale, interpolation=cv2.INTER_LINEAR)
    return grey


def skin_like(celsius: np.ndarray, faces: Faces, settings: ThermalFaceSettings) -> np.ndarray:
    """Which faces read like skin: their warmest part in the skin range and clearly above the room."""
    if not len(faces):
        return np.zeros(0, bool)
    room = float(np.nanmedian(celsius))
    h, w = celsius.shape
    keep = np.zeros(len(faces), bool)
    for k, (x1, y1, x2, y2) in enumerate(faces.xyxy.astype(np.float64)):
        region = celsius[max(int(round(y1)), 0) : min(int(np.ceil(y2)) + 1, h),
                         max(int(round(x1)), 0) : min(int(np.ceil(x2)) + 1, w)]
        region = region[np.isfinite(region)]
        if region.size == 0:
            continue
        warm = float(np.percentile(region, settings.warm_percentile))
        keep[k] = settings.skin_min_c <= warm <= settings.skin_max_c and warm - room >= settings.contrast_c
    return keep


def find_faces(detector: FaceDetector, celsius: np.ndarray, settings: ThermalFaceSettings | None = None) -> Faces:
    """Faces in a °C frame, in its own pixel coordinates, kept only where they read like skin, one per head."""
    settings = settings or ThermalFaceSettings()
    grey = to_grey8(celsius, settings)
    faces = _skin(detector.detect(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)), celsius, settings)
    if not len(faces) or float(faces.score.max()) < settings.second_pass_below:
        inverted = _skin(detector.detect(cv2.cvtColor(255 - grey, cv2.COLOR_GRAY2BGR)), celsius, settings)
        faces = _concat(faces, inverted)
    return one_box_per_head(faces, settings)


def one_box_per_head(faces: Faces, settings: ThermalFaceSettings) -> Faces:
    """The best-scoring box of each head: others that overlap it (IoU above ``nms_iou``, e.g. the same face
    found in both polarities) or sit closer than a head's width at a similar size are dropped."""
    if len(faces) < 2:
        return faces
    shift, ratio = shift_and_ratio(faces.xyxy, faces.xyxy)
    same = (iou_matrix(faces.xyxy, faces.xyxy) > settings.nms_iou) | (
        (shift < settings.same_head_widths) & (ratio < settings.same_head_ratio))
    kept: list[int] = []
    for k in np.argsort(-faces.score, kind="stable"):
        if not same[k, kept].any():
            kept.append(int(k))
    return faces[np.array(kept, dtype=np.int64)]


def _concat(a: Faces, b: Faces) -> Faces:
    if not len(a):
        return b
    if not len(b):
        return a
    return Faces(xyxy=np.concatenate([a.xyxy, b.xyxy]), score=np.concatenate([a.score, b.score]),
                 landmarks=np.concatenate([a.landmarks, b.landmarks]))


def _skin(found: Faces, celsius: np.ndarray, settings: ThermalFaceSettings) -> Faces:
    if not len(found):
        return found
    s = settings.scale
    # model coordinates are pixel centres of the upscaled image: back to the frame's pixel centres
    scaled = Faces(
        xyxy=((found.xyxy + 0.5) / s - 0.5).astype(np.float32),
        score=found.score,
        landmarks=((found.landmarks + 0.5) / s - 0.5).astype(np.float32),
    )
    keep = skin_like(celsius, scaled, settings)
    return Faces(xyxy=scaled.xyxy[keep], score=scaled.score[keep], landmarks=scaled.landmarks[keep])
