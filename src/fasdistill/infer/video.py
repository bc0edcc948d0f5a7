"""Prediction on videos: frame predictions, temporal smoothing, one decision that fails closed.

Sampled frames go through :class:`~fasdistill.infer.predict.Predictor` one by one
(the same detection, crop and quality gate as an image). The scores of the frames
with a scored face are smoothed over a sliding window and reduced by a rule:

- ``mean``: the mean frame score against the threshold (the ``video`` threshold
  level of training, where a video's score is the mean of its frames');
- ``all-windows``: every window's mean must pass (the strictest: one bad stretch
  rejects the video);
- ``majority``: more than half of the window means must pass.

A video is only ``bonafide`` when at least ``min_scored`` of its sampled frames had
a scored face; otherwise its status is the most common reason frames failed
(``no_face``, ``low_quality``, ...), and a file that yields no frame is
``unreadable``.

Frames are decoded, judged and dropped one at a time: only their statuses and
scores are kept, so memory does not grow with ``frames``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.video import FramesTooLarge, iter_frames
from fasdistill.errors import InputError
from fasdistill.infer.predict import Prediction, Predictor, boxes_beside

RULES = ("mean", "all-windows", "majority")


@dataclass
class VideoOptions:
    frames: int = 30  # sampled uniformly over the video
    window: int = 5  # frames per smoothing window
    rule: str = "mean"
    min_scored: float = 0.5  # share of sampled frames that must have a scored face

    def validate(self) -> None:
        if self.rule not in RULES:
            raise InputError(f"unknown video rule {self.rule!r}; choose one of {', '.join(RULES)}")
        if self.frames < 1 or self.window < 1:
            raise InputError("video frames and window must be >= 1")
        if not 0 < self.min_scored <= 1:
            raise InputError(f"min scored share must lie in (0, 1], got {self.min_scored}")


@dataclass
class VideoPrediction:
    status: str
    score: float | None = None
    threshold: float | None = None
    frames: int = 0  # sampled frames decoded
    scored: int = 0  # frames with a scored face
    rule: str = "mean"
    window: int = 5
    frame_statuses: dict[str, int] = field(default_factory=dict)
    frame_scores: list[float] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def window_means(scores: np.ndarray, window: int) -> np.ndarray:
    """Means of every run of ``window`` consecutive scores (one mean if there are fewer)."""
    if len(scores) <= window:
        return np.array([scores.mean()])
    kernel = np.ones(window) / window
    return np.convolve(scores, kernel, mode="valid")


def decide(scores: np.ndarray, threshold: float, options: VideoOptions) -> tuple[float, bool]:
    """The video's score under ``options.rule`` and whether it passes the threshold."""
    if options.rule == "mean":
        value = float(scores.mean())
    else:
        means = window_means(scores, options.window)
        # all-windows: the worst window decides; majority: the median window does.
        value = float(means.min() if options.rule == "all-windows" else np.median(means))
        if options.rule == "majority":
            return value, bool((means >= threshold).mean() > 0.5)
    return value, value >= threshold


def predict_video(
    predictor: Predictor,
    path: str | os.PathLike[str],
    options: VideoOptions | None = None,
    use_boxes: bool = True,
) -> VideoPrediction:
    """One decision for a video file (see the module docstring)."""
    options = options or VideoOptions()
    options.validate()
    path = Path(path)
    base = {"rule": options.rule, "window": options.window}
    boxes = boxes_beside(path) if use_boxes else None
    reader = iter_frames(path, count=options.frames, max_pixels=predictor.options.max_pixels)
    statuses: Counter[str] = Counter()
    frame_scores: list[float] = []
    decoded = 0
    while True:
        try:
            index, frame = next(reader, (-1, None))
        except FramesTooLarge as exc:
            return VideoPrediction("image_too_large", detail=str(exc), **base)
        except InputError as exc:
            return VideoPrediction("unreadable", detail=str(exc), **base)
        if index < 0:
            break
        if frame is None:  # a planned frame the file could not deliver
            continue
        decoded += 1
        result: Prediction = predictor.predict(frame, boxes.get(index) if boxes else None)
        statuses[result.status] += 1
        if result.score is not None:
            frame_scores.append(result.score)
    if not decoded:
        return VideoPrediction("unreadable", detail=f"{path}: no frame could be decoded", **base)
    scores = np.array(frame_scores)
    out = VideoPrediction(
        "attack",
        threshold=predictor.threshold,
        frames=decoded,
        scored=len(scores),
        frame_statuses=dict(statuses),
        frame_scores=[round(float(s), 6) for s in scores],
        **base,
    )
    if len(scores) < options.min_scored * decoded:
        failures = Counter({k: v for k, v in statuses.items() if k not in ("bonafide", "attack")})
        out.status = failures.most_common(1)[0][0]
        out.detail = f"{len(scores)} of {decoded} frames had a scored face"
        return out
    out.score, passed = decide(scores, predictor.threshold, options)
    out.status = "bonafide" if passed else "attack"
    return out
