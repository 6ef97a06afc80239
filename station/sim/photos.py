"""Real face photographs for the simulated visitors.

The face detector must be judged on real faces, not drawn ones, so the simulator pastes photographs
that ship inside scikit-image (no download at run time): the astronaut portrait and 40 of the 100 faces of
its LFW subset (25x25 grey crops, aligned so the eyes sit at nearly the same pixels in every crop). Each photo
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
LFW_EYES = ((6.0, 8.0), (15.0, 8.0))  # where the subset's alignment puts the eyes, on average
# The LFW crops whose eyes really are at LFW_EYES, to within 1 px (about 7 mm on a face): two independent
# estimates agreed, the crop alignment above and CenterFace's eye landmarks (less its mean 0.5 px downward
# bias) in a one-off check. The other 60 crops are misaligned or turned by up to 27 mm, which would put
# the simulated hot canthi beside the photographed eyes, so they are not used.
LFW_ALIGNED = (
    3, 7, 8, 9, 10, 13, 18, 22, 23, 24, 27, 28, 34, 36, 37, 41, 45, 46, 50, 52,
    54, 55, 59, 60, 61, 62, 66, 69, 72, 73, 82, 85, 86, 88, 90, 91, 92, 93, 95, 99,
)


@dataclass(frozen=True)
class FacePhoto:
    """A face image (BGR float32 in 0..1) and the centres of its left and right eye, in its pixels."""

    name: str
    image: np.ndarray
    eyes: tuple[tuple[float, float], tuple[float, float]]
    grey: bool


@lru_cache(maxsize=1)
def face_photos() -> tuple[FacePhoto, ...]:
    """The astronaut first, then the aligned LFW faces, in a fixed order (so a seed picks the same faces)."""
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
    lfw = skimage.data.lfw_subset()  # the first 100 are faces, the last 100 are not
    for k in LFW_ALIGNED:
        grey = lfw[k].astype(np.float32)
        photos.append(
            FacePhoto(name=f"lfw-{k:03d}", image=np.repeat(grey[:, :, None], 3, axis=2), eyes=LFW_EYES, grey=True)
        )
    return tuple(photos)
