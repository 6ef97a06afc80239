"""Faces found in the thermal image itself, for stations (and recordings) without a visible camera.

Many kiosks have only a thermal camera, and a visible camera fails in the dark or in glare. The face
model was trained on visible faces, but a thermal face, contrast-stretched to 8 bits, still has a
face's layout (a warm oval, two eye sockets, a nose, a mouth), and the same CenterFace finds most of
them. What thermal adds to make it reliable:

* **Temperature windowing, both polarities.** The 8-bit image spans a fixed 12 °C from the coldest
  part of the scene, so a face keeps the same contrast whatever else is in view (a bright reference
  disc does not squash it). In a thermal face the eyes are the warmest skin, the opposite of a
  visible face's dark eyes, and hair is cold; for some faces the inverted image looks more like what
  the model learnt, so when the plain image shows no face the inverted one is tried.
* **Skin plausibility.** A detection is kept only when its central region reads like skin: its
  warmest part between ``skin_min_c`` and ``skin_max_c`` and clearly warmer than the room. A poster,
  a photograph or a cold window frame with a face-like pattern reads at room temperature.
* **Temporal confirmation and distance** come from the engine downstream: a track needs several
  readings before a decision, and the canthus ROI's size in thermal pixels says whether the face is
  near enough to be measured, exactly as with a visible camera.

Pure functions of a °C frame; the detector is the station's own :class:`~station.detect.FaceDetector`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from station.detect import FaceDetector
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
        ... and be this much warmer than the scene's median (the room).
    """

    scale: float = 1.5
    window_c: float = 12.0
    skin_min_c: float = 29.0
    skin_max_c: float = 42.0
    contrast_c: float = 3.0


def to_grey8(celsius: np.ndarray, settings: ThermalFaceSettings) -> np.ndarray:
    """The frame as 8-bit grey over a fixed window above the scene's cold end, upscaled."""
    finite = np.nan_to_num(celsius, nan=float(np.nanmedian(celsius)))
    low = float(np.percentile(finite, 2.0))
    grey = np.clip((finite - low) * (255.0 / settings.window_c), 0, 255).astype(np.uint8)
    if settings.scale != 1.0:
        grey = cv2.resize(grey, None, fx=settings.scale, fy=settings.scale, interpolation=cv2.INTER_LINEAR)
    return grey


def skin_like(celsius: np.ndarray, faces: Faces, settings: ThermalFaceSettings) -> np.ndarray:
    """Which faces read like skin: their central region warm, in the skin range, above the room."""
    if not len(faces):
        return np.zeros(0, bool)
    room = float(np.nanmedian(celsius))
    h, w = celsius.shape
    keep = np.zeros(len(faces), bool)
    for k, (x1, y1, x2, y2) in enumerate(faces.xyxy.astype(np.float64)):
        cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
        region = celsius[max(int(cy - hh), 0) : min(int(np.ceil(cy + hh)) + 1, h),
                         max(int(cx - hw), 0) : min(int(np.ceil(cx + hw)) + 1, w)]
        region = region[np.isfinite(region)]
        if region.size == 0:
            continue
        warm = float(np.percentile(region, 90))
        keep[k] = settings.skin_min_c <= warm <= settings.skin_max_c and warm - room >= settings.contrast_c
    return keep


def find_faces(detector: FaceDetector, celsius: np.ndarray, settings: ThermalFaceSettings | None = None) -> Faces:
    """Faces in a °C frame, in its own pixel coordinates, kept only where they read like skin."""
    settings = settings or ThermalFaceSettings()
    grey = to_grey8(celsius, settings)
    faces = _skin(detector.detect(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)), celsius, settings)
    if not len(faces):
        faces = _skin(detector.detect(cv2.cvtColor(255 - grey, cv2.COLOR_GRAY2BGR)), celsius, settings)
    return faces


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
