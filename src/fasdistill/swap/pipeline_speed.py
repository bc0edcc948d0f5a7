"""End-to-end throughput on a video: decode, crop and preprocess, infer, per stage.

What a phone does per frame once a face is found: decode the frame, cut the square
context crop around the face box at the model's crop scale, resize and normalise
it exactly as training did (``data.crops`` + ``data.loader``), and score it. The
model's figure alone hides the other two stages; this shows their share.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.crops import square_crop
from fasdistill.data.loader import model_input
from fasdistill.data.video import open_video
from fasdistill.errors import InputError


def read_boxes(path: Path) -> dict[int, tuple[float, float, float, float]]:
    """``frame,x,y,w,h`` rows (a SynthSpoof ``.boxes.csv``) by frame index."""
    with path.open(newline="") as handle:
        return {
            int(r["frame"]): (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
            for r in csv.DictReader(handle)
        }


def video_throughput(
    video: Path,
    boxes: dict[int, tuple[float, float, float, float]],
    score: Callable[[np.ndarray], Any],
    crop_scale: float,
    crop_size: int,
    input_size: int,
    repeats: int = 3,
) -> dict[str, Any]:
    """Seconds per frame of each stage (median over ``repeats`` passes) and end-to-end FPS.

    ``crop_size`` is the side crops were stored at when the model was trained (then
    resized to ``input_size``), so the pixels match training exactly.
    """
    passes = []
    for _ in range(repeats):
        stages = {"decode": 0.0, "crop_preprocess": 0.0, "infer": 0.0}
        frames = 0
        capture = open_video(video)
        try:
            while True:
                t0 = time.perf_counter()
                ok, frame = capture.read()
                t1 = time.perf_counter()
                if not ok:
                    break
                if frames not in boxes:
                    raise InputError(f"{video}: no face box for frame {frames}")
                crop = square_crop(frame, boxes[frames], crop_scale, crop_size)
                x = model_input(crop, input_size).numpy()[None]
                t2 = time.perf_counter()
                score(x)
                t3 = time.perf_counter()
                stages["decode"] += t1 - t0
                stages["crop_preprocess"] += t2 - t1
                stages["infer"] += t3 - t2
                frames += 1
        finally:
            capture.release()
        if frames == 0:
            raise InputError(f"{video}: no frame could be decoded")
        passes.append({k: v / frames for k, v in stages.items()} | {"frames": frames})
    per_frame = {k: float(np.median([p[k] for p in passes])) for k in passes[0] if k != "frames"}
    total = sum(per_frame.values())
    return {
        "video": str(video),
        "frames": passes[0]["frames"],
        "ms_per_frame": {k: 1e3 * v for k, v in per_frame.items()},
        "fps": 1.0 / total,
        "repeats": repeats,
    }
