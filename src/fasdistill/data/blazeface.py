"""MediaPipe BlazeFace (short range), shipped inside fasdistill as ONNX: the default detector.

See :class:`BlazeFaceDetector`; the interface is :class:`~fasdistill.data.detection.FaceDetector`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from fasdistill.data.detection import Detection, FaceDetector, resize_for_detection
from fasdistill.errors import InputError

_WEIGHTS = Path(__file__).parent / "weights"


@functools.lru_cache(maxsize=16)  # one per input size seen: computed once, not per frame
def _anchor_centres(height: int, width: int) -> np.ndarray:
    """BlazeFace short-range anchor centres (N, 2) in input pixels, in its output order.

    MediaPipe's SSD anchors for this model: a stride-8 grid with 2 anchors per
    cell, then a stride-16 grid with 6, row by row; all are of unit size
    ("fixed_anchor_size"), so only their centres matter. The network is fully
    convolutional: an input of any multiple of 16 gives grids of matching size.
    """
    parts = []
    for stride, per_cell in ((8, 2), (16, 6)):
        xs = (np.arange(width // stride) + 0.5) * stride
        ys = (np.arange(height // stride) + 0.5) * stride
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        parts.append(np.repeat(grid, per_cell, axis=0))
    centres = np.concatenate(parts).astype(np.float32)
    centres.setflags(write=False)  # shared by every call with this size
    return centres


class _OnnxNet:
    """An ONNX detector on ONNX Runtime (one thread) if installed, else OpenCV's DNN module.

    Called with an NCHW float32 blob; returns (logits (N,), regressors (N, 16)).
    """

    def __init__(self, path: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            self.runtime = "onnxruntime"
            self._run = lambda blob: session.run(["classificators", "regressors"], {"input": blob})
        else:
            net = cv2.dnn.readNetFromONNX(path)
            names = net.getUnconnectedOutLayersNames()
            order = [names.index("classificators"), names.index("regressors")]

            def run(blob: np.ndarray) -> list[np.ndarray]:
                net.setInput(blob)
                outputs = net.forward(names)
                return [outputs[i] for i in order]

            self.runtime = "opencv"
            self._run = run

    def __call__(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, regressors = self._run(blob)
        return logits.reshape(-1), regressors.reshape(-1, 16)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression: each face is the score-weighted
    mean of the boxes (x, y, w, h) and points overlapping its best box by more than
    ``iou``, with the best box's score. Returns (box, score, points), best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, points = boxes[order], scores[order], points[order]
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    left = np.ones(len(scores), bool)
    faces = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        inter = np.clip(np.minimum(x1[i], x1) - np.maximum(x0[i], x0), 0, None) * np.clip(
            np.minimum(y1[i], y1) - np.maximum(y0[i], y0), 0, None
        )
        group = left & (inter / (areas[i] + areas - inter) > iou)
        group[i] = True
        left &= ~group
        weights = scores[group] / scores[group].sum()
        box = (boxes[group] * weights[:, None]).sum(axis=0)
        marks = (points[group] * weights[:, None, None]).sum(axis=0)
        faces.append((box, float(scores[i]), marks))
    return faces


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace (short range): boxes, scores, six landmarks.

    The weights ship inside fasdistill (``weights/blazeface_short_range.onnx``,
    Apache-2.0, see ``weights/NOTICE``). ONNX Runtime runs them at one thread
    when it is installed (about 1.5x faster here), OpenCV's ONNX reader otherwise
    (its threads are process-wide: ``cv2.setNumThreads``); both give the TFLite
    model's outputs to 1e-4 (``tools/blazeface_onnx.py``). The network is fully
    convolutional: the frame is scaled so the smallest face wanted is
    :attr:`smallest_face` pixels (default: a tenth of the shorter side), within
    [``min_input``, ``max_input``] on its longer side, padded with black to a
    multiple of 16, and boxes are mapped back to the input's pixels. Decoding and
    the weighted non-maximum suppression are MediaPipe's.

    ``landmarks`` are six points: the face's right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion. BlazeFace's box runs from the
    brows to the chin: tighter than YuNet's, so crops cut around it differ, and
    a model is best used with the detector its crops were cut with.
    """

    name: ClassVar[str] = "blazeface"
    weights_file: ClassVar[str] = "blazeface_short_range.onnx"
    # Face side (px at the network's input) it finds reliably: the astronaut's face is
    # found from 16 px, not at 14 (`benchmarks/detect_photos.py --sizes`); 20 leaves a margin.
    smallest_face: ClassVar[float] = 20.0
    refine_side: ClassVar[int | None] = 128  # faces refined at 64 px, as in a selfie
    default_face_fraction: ClassVar[float] = 0.1  # of the shorter side, when min_face is None

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        min_input: int = 64,
        max_input: int = 640,
    ) -> None:
        super().__init__()
        if not 0.0 < score_threshold < 1.0:
            raise InputError(f"score_threshold must lie in (0, 1), got {score_threshold}")
        if not 0.0 < nms_iou < 1.0:
            raise InputError(f"nms_iou must lie in (0, 1), got {nms_iou}")
        if not 16 <= min_input <= max_input:
            raise InputError(f"need 16 <= min_input <= max_input, got {min_input}, {max_input}")
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.min_input = min_input
        self.max_input = max_input
        self.weights = self._find_weights()

    @classmethod
    def _find_weights(cls) -> str:
        path = _WEIGHTS / cls.weights_file
        if not path.is_file():
            raise InputError(f"the blazeface detector's weights are missing: {path}")
        return str(path)

    def _build_model(self) -> Any:
        return _OnnxNet(self.weights)

    def input_scale(self, height: int, width: int, min_face: float | None) -> float:
        """Resize factor from the frame to the network's input (before padding)."""
        if min_face is None:
            min_face = self.default_face_fraction * min(height, width)
        longer = max(height, width)
        scale = self.smallest_face / min_face
        return min(max(scale, self.min_input / longer), self.max_input / longer)

    def _detect(self, image: np.ndarray, model: Any, min_face: float | None) -> list[Detection]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        scale = self.input_scale(height, width, min_face)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = resize_for_detection(image, size) if scale != 1 else image
        pad_w, pad_h = -size[0] % 16, -size[1] % 16
        if pad_w or pad_h:
            small = cv2.copyMakeBorder(small, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(small, 1 / 127.5, None, (127.5,) * 3, swapRB=True)
        logits, raw = model(blob)
        keep = logits > np.log(self.score_threshold / (1 - self.score_threshold))
        if not keep.any():
            return []
        centres = _anchor_centres(*small.shape[:2])[keep]
        raw = raw[keep].astype(np.float64)
        scores = 1 / (1 + np.exp(-np.clip(logits[keep].astype(np.float64), -100, 100)))
        # offsets are in input pixels: centre (dx, dy) from the anchor, then w, h, 6 points
        wh = raw[:, 2:4]
        boxes = np.concatenate([centres + raw[:, 0:2] - wh / 2, wh], axis=1) / scale
        points = (raw[:, 4:].reshape(-1, 6, 2) + centres[:, None, :]) / scale
        detections = []
        for box, score, marks in weighted_nms(boxes, scores, points, self.nms_iou):
            if box[2] > 0 and box[3] > 0:
                landmarks = tuple((float(x), float(y)) for x, y in marks)
                detections.append(
                    Detection(box=tuple(float(v) for v in box), score=score, landmarks=landmarks)
                )
        return detections
