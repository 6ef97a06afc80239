"""Real face photographs for the simulated visitors.

The face detector must be judged on real faces, not drawn ones, so the simulator pastes photographs
that ship inside scikit-image (no download at run time): the astronaut portrait and the 100 faces of
its LFW subset (25x25 grey crops, aligned so the eyes sit at the same pixels in every crop). Each photo
comes with its eye centres, which is what lets the simulator put the hot inner canthi of the thermal
face exactly where the photographed eyes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Eye centres (x, y) in photo pixels, measured once by eye on the images themselves.
ASTRONAUT_EYES = ((206.0, 101.0), (246.0, 103.0))
ASTRONAUT_CROP = (130, 30, 330, 260)  # x1, y1, x2, y2: the head, without the helmet ring
LFW_EYES = ((6.0, 8.0), (15.0, 8.0))  # every crop of the subset is aligned to these


@dataclass(frozen=True)
class FacePhoto:
    """A face image (BGR float32 in 0..1) and the centres of its left and right eye, in its pixels."""

    name: str
    image: np.ndarray
    eyes: tuple[tuple[float, float], tuple[float, float]]
    grey: bool


@lru_cache(maxsize=1)
def face_photos() -> tuple[FacePhoto, ...]:
    """The astronaut first, then the 100 LFW faces, in a fixed order (so a seed picks the same faces)."""
    import skimage.data  # scikit-image is slow to import; only the simulator needs it

    astronaut = skimage.data.astronaut()[:, :, ::-1].astype(np.float32) / 255.0
    x1, y1, x2, y2 = ASTRONAUT_CROP
    photos = [
        FacePhoto(
            name="astronaut",
            image=np.ascontiguousarray(astronaut[y1:y2, x1:x2]),
            eyes=tuple((x - x1, y - y1) for x, y in ASTRONAUT_EYES),  # type: ignore[arg-type]
            grey=False,
        )
    ]
    lfw = skimage.data.lfw_subset()[:100]  # the first 100 are faces, the last 100 are not
    for k, face in enumerate(lfw):
        grey = face.astype(np.float32)
        photos.append(
            FacePhoto(name=f"lfw-{k:03d}", image=np.repeat(grey[:, :, None], 3, axis=2), eyes=LFW_EYES, grey=True)
        )
    return tuple(photos)
