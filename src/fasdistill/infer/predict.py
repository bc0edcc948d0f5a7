"""Prediction on images: detect, crop exactly as in training, gate, score, decide; fail closed.

Preprocessing comes from the model file's metadata (:mod:`fasdistill.infer.model_file`):
the crop scale, the side crops were stored at in ``prepare`` (``crop_size``) and the
detector it used, then the same resize and normalisation as the training loader. A
face gets ``bonafide`` or ``attack`` only when everything before the model worked:
otherwise the result says why not, and never ``bonafide``:

``unreadable`` (missing, empty, corrupt or truncated file, or not a regular
file), ``image_too_large`` (its header declares more pixels than the memory
bound), ``no_face``, ``multiple_faces`` (policy ``reject``),
``face_not_in_frame`` (the face box touches or crosses the frame's edge:
:func:`edge_problem`), ``face_too_small`` (the crop would be enlarged more than
``max_upscale`` times to reach the model's input), and ``low_quality`` (blurred,
too dark or too bright: :class:`QualityGate`).

A ``Predictor`` changes no process-wide state: ``threads`` goes to the runtimes
that take a per-session thread count (ONNX Runtime, ExecuTorch, LiteRT, ncnn);
PyTorch's intra-op thread pool is global to the process, so for a ``best.pt`` it
is the caller's to set (``torch.set_num_threads``; the CLI does it).
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from fasdistill.data.crops import square_crop, square_region
from fasdistill.data.detect import DEFAULT_DETECTOR, Detection, FaceDetector, get_detector
from fasdistill.data.imageio import MAX_PIXELS, read_image
from fasdistill.data.loader import model_input, resize_square
from fasdistill.errors import InputError
from fasdistill.infer.model_file import ModelFile, open_model

DECISIONS = ("bonafide", "attack")
FAILURES = (
    "unreadable",
    "image_too_large",
    "no_face",
    "multiple_faces",
    "face_not_in_frame",
    "face_too_small",
    "low_quality",
)
STATUSES = DECISIONS + FAILURES


@dataclass(frozen=True)
class QualityGate:
    """Thresholds a face crop must pass before it is scored.

    Measured on the context crop cut from the image at 128 px, whatever side the
    model's crops have, so the gate judges the capture, not the model.
    ``min_sharpness``: variance of the Laplacian of that grey crop: a sharp photo
    gives about 700, the same blurred with a Gaussian of sigma 3 px 15, SynthSpoof
    images 30-2,970 (docs/predict.md). ``min_brightness`` / ``max_brightness``:
    mean grey level (0-255). ``max_clipped``: share of pixels at <= 5 or >= 250.
    """

    min_sharpness: float = 10.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0
    max_clipped: float = 0.5

    side: ClassVar[int] = 128

    def check(self, crop_bgr: np.ndarray) -> tuple[bool, dict[str, float]]:
        """Whether a crop of ``side`` px passes, and its measures."""
        grey = cv2.cvtColor(resize_square(crop_bgr, self.side), cv2.COLOR_BGR2GRAY)
        measures = {
            "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
            "brightness": float(grey.mean()),
            "clipped": float(((grey <= 5) | (grey >= 250)).mean()),
        }
        ok = (
            measures["sharpness"] >= self.min_sharpness
            and self.min_brightness <= measures["brightness"] <= self.max_brightness
            and measures["clipped"] <= self.max_clipped
        )
        return ok, measures


@dataclass
class PredictOptions:
    """How faces are found and which are scored."""

    detector: str | None = None  # None: the detector the training crops were prepared with
    multiple_faces: str = "largest"  # or "reject"
    max_upscale: float = 2.0  # a crop may be enlarged at most this much to the model input
    # The smallest face searched for, as a share of the frame's shorter side: the
    # detector runs at the resolution that shows such a face at its own smallest size
    # (a fifth: 96 px in a 640 x 480 frame). Smaller faces may still be found.
    min_face: float = 0.2
    min_edge_margin: float = 0.05  # face box to frame edge, as a share of its longer side
    quality: QualityGate = field(default_factory=QualityGate)
    max_pixels: int = MAX_PIXELS
    threads: int = 1

    def validate(self) -> None:
        if self.multiple_faces not in ("largest", "reject"):
            raise InputError(
                f"multiple-faces policy must be 'largest' or 'reject', got {self.multiple_faces!r}"
            )
        if self.max_upscale < 1:
            raise InputError(f"max upscale must be >= 1, got {self.max_upscale}")
        if not 0 < self.min_face <= 1:
            raise InputError(
                f"min face must lie in (0, 1] (of the shorter side), got {self.min_face}"
            )
        if not 0 <= self.min_edge_margin < 1:
            raise InputError(f"min edge margin must lie in [0, 1), got {self.min_edge_margin}")
        if (
            isinstance(self.threads, bool)
            or not isinstance(self.threads, Integral)
            or self.threads < 1
        ):
            raise InputError(f"threads must be an integer >= 1, got {self.threads!r}")


@dataclass
class Prediction:
    """The result for one image (or one video frame)."""

    status: str  # one of STATUSES
    score: float | None = None  # P(bona fide), only when a face was scored
    threshold: float | None = None
    box: tuple[float, float, float, float] | None = None
    faces: int = 0
    quality: dict[str, float] | None = None
    detail: str = ""

    @property
    def is_bonafide(self) -> bool:
        return self.status == "bonafide"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["box"] = None if self.box is None else [round(v, 1) for v in self.box]
        return out


class Predictor:
    """A model loaded once, its preprocessing, and a face detector; safe to share across threads.

    ONNX Runtime and PyTorch models are called concurrently; the other runtimes
    (ExecuTorch, LiteRT, ncnn) behind a lock. Every thread gets its own detector.
    """

    def __init__(self, model: ModelFile, options: PredictOptions | None = None) -> None:
        self.model = model
        self.options = options or PredictOptions()
        self.options.validate()
        meta = model.meta
        self.input_size = int(meta["input_size"])
        self.crop_size = int(meta.get("crop_size") or self.input_size)
        self.crop_scale = float(meta["crop_scale"])
        self.threshold = model.threshold
        self.detector_name = self.options.detector or meta.get("detector") or DEFAULT_DETECTOR
        get_detector(self.detector_name)  # fail now if it cannot load here
        self._score = model.scorer(self.options.threads)
        self._lock = None if model.thread_safe else threading.Lock()
        self._local = threading.local()

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], options: PredictOptions | None = None
    ) -> Predictor:
        return cls(open_model(path), options)

    # ------------------------------------------------------------------ pieces

    @property
    def detector(self) -> FaceDetector:
        if not hasattr(self._local, "detector"):
            self._local.detector = get_detector(self.detector_name)
        return self._local.detector

    def score_tensors(self, batch: np.ndarray) -> np.ndarray:
        """P(bona fide) of preprocessed crops, in the model's runtime."""
        if self._lock is None:
            return np.asarray(self._score(batch), dtype=np.float64)
        with self._lock:
            return np.asarray(self._score(batch), dtype=np.float64)

    @property
    def model_min_face(self) -> float:
        """The smallest face box side (px) whose crop is not ``face_too_small``."""
        return self.input_size / (self.options.max_upscale * self.crop_scale)

    def min_face(self, height: int, width: int) -> float:
        """The smallest face side (px) detection must find in a frame of this size:
        ``options.min_face`` of its shorter side, and never below what the model accepts."""
        return max(self.model_min_face, self.options.min_face * min(height, width))

    def preprocess(self, crop_bgr: np.ndarray) -> np.ndarray:
        """A stored-size BGR crop as the model's input tensor (as the training loader does)."""
        return model_input(crop_bgr, self.input_size).numpy()

    def face(
        self, image_bgr: np.ndarray, box: tuple[float, float, float, float] | None = None
    ) -> tuple[Prediction, np.ndarray | None]:
        """Find, check and crop the face of one image; the tensor is None unless it passed."""
        if box is None:
            wanted = self.min_face(*image_bgr.shape[:2])
            found: list[Detection] = self.detector.detect(image_bgr, wanted)
            if not found:
                return Prediction("no_face", detail="no face detected"), None
            if len(found) > 1 and self.options.multiple_faces == "reject":
                return Prediction("multiple_faces", faces=len(found)), None
            chosen = max(found, key=lambda d: d.area)
            box, faces = chosen.box, len(found)
        else:
            faces = 1
        height, width = image_bgr.shape[:2]
        try:
            _, _, side = square_region(box, self.crop_scale, width, height)
        except InputError as exc:  # a given box with no area or outside the image
            return Prediction("no_face", box=box, faces=0, detail=str(exc)), None
        cut = edge_problem(box, width, height, self.options.min_edge_margin, self.crop_scale)
        if cut:
            return Prediction("face_not_in_frame", box=box, faces=faces, detail=cut), None
        if side * self.options.max_upscale < self.input_size:
            detail = f"crop side {side} px < {self.input_size} px / {self.options.max_upscale:g}"
            return Prediction("face_too_small", box=box, faces=faces, detail=detail), None
        gate = self.options.quality
        passed, measures = gate.check(square_crop(image_bgr, box, self.crop_scale, gate.side))
        if not passed:
            return Prediction("low_quality", box=box, faces=faces, quality=measures), None
        crop = square_crop(image_bgr, box, self.crop_scale, self.crop_size)
        result = Prediction("attack", box=box, faces=faces, quality=measures)
        return result, self.preprocess(crop)

    # ------------------------------------------------------------------ public API

    def predict(self, image: np.ndarray | str | os.PathLike[str], box: Any = None) -> Prediction:
        """One image: a BGR uint8 array (as cv2 reads it) or a file path."""
        return self.predict_batch([image], [box])[0]

    def predict_batch(
        self, images: list[np.ndarray | str | os.PathLike[str]], boxes: list[Any] | None = None
    ) -> list[Prediction]:
        """Several images; the faces that pass every check are scored in one runtime call."""
        boxes = boxes or [None] * len(images)
        results: list[Prediction] = []
        tensors, scored = [], []
        for image, box in zip(images, boxes, strict=True):
            if not isinstance(image, np.ndarray):
                read = read_image(image, self.options.max_pixels)
                if read.image is None:
                    results.append(Prediction(read.status, detail=read.detail))
                    continue
                image = read.image
            elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise InputError(f"predict takes BGR uint8 (H, W, 3) arrays, got {image.shape}")
            result, tensor = self.face(image, box)
            results.append(result)
            if tensor is not None:
                tensors.append(tensor)
                scored.append(result)
        self.decide(scored, tensors)
        return results

    def decide(self, predictions: list[Prediction], tensors: list[np.ndarray]) -> None:
        """Score the faces that passed every check in one runtime call and decide each
        at the model's threshold (``predictions[i]`` is the face of ``tensors[i]``)."""
        if not tensors:
            return
        for result, score in zip(predictions, self.score_tensors(np.stack(tensors)), strict=True):
            result.score = float(score)
            result.threshold = self.threshold
            result.status = "bonafide" if score >= self.threshold else "attack"


def edge_problem(
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    margin: float,
    crop_scale: float,
) -> str:
    """Why a face is not wholly inside the frame ('' when it is).

    A face box must keep at least ``margin`` times its longer side from every edge
    of the frame, and never touch one: a face the edge cuts is only partly seen,
    and detectors then draw its box at or past the edge (YuNet puts the box of the
    astronaut photo, cut so her face starts at x = 0, 4 px from it; cut by a tenth
    of her face, at x = 0). SynthSpoof's training faces keep 7 % or more of their
    side from every edge. The detail also says how much of the model's context crop
    (``crop_scale`` times the box, centred on it) the frame lacks.
    """
    x, y, w, h = box
    longer = max(w, h)
    gaps = {"left": x, "top": y, "right": width - (x + w), "bottom": height - (y + h)}
    edge, gap = min(gaps.items(), key=lambda item: item[1])
    needed = margin * longer
    if gap > 0 and gap >= needed:
        return ""
    side = crop_scale * longer
    cx, cy = x + w / 2, y + h / 2
    seen_w = max(0.0, min(cx + side / 2, width) - max(cx - side / 2, 0))
    seen_h = max(0.0, min(cy + side / 2, height) - max(cy - side / 2, 0))
    outside = 1 - seen_w * seen_h / (side * side)
    if gap < 0:
        where = f"crosses the {edge} edge of the {width}x{height} frame by {-gap:.3g} px"
    elif gap == 0:
        where = f"touches the {edge} edge of the {width}x{height} frame"
    else:
        where = f"is {gap:.3g} px from the {edge} edge of the {width}x{height} frame"
    wanted = f"at least {needed:.3g} px: {margin:.0%} of its {longer:.0f} px side"
    return (
        f"face box {where} (needs a gap, {wanted}); {outside:.0%} of the model's "
        f"{side:.0f} px crop at scale {crop_scale:g} lies outside the frame"
    )


def boxes_beside(path: Path) -> dict[int, tuple[float, float, float, float]] | None:
    """Face boxes shipped beside a file (``<name>.boxes.csv``: frame,x,y,w,h), as SynthSpoof
    and the folder layout store them; None when there is no such file."""
    import csv

    sidecar = path.with_name(path.stem + ".boxes.csv")
    if not sidecar.is_file():
        return None
    boxes = {}
    with sidecar.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                boxes[int(row["frame"])] = tuple(float(row[k]) for k in ("x", "y", "w", "h"))
            except (KeyError, ValueError):
                message = f"{sidecar}: expected columns frame,x,y,w,h with numbers"
                raise InputError(message) from None
    return boxes
