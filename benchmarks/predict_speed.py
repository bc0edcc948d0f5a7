"""End-to-end prediction speed on a video: decode + detect + crop + gate + infer, per runtime.

Builds a 640 x 480 MJPG video of a real face (scikit-image's astronaut photo,
panning), then runs ``Predictor`` on every frame with each model file of an
export directory (and the ``best.pt`` it came from), runtimes interleaved round by
round so machine drift hits them alike. Prints frames/s (median over rounds) and
where the time goes.

    python benchmarks/predict_speed.py --export export/kd --checkpoint runs/kd/checkpoints/best.pt
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data

from fasdistill.export.pipeline import FILE_NAMES
from fasdistill.infer.model_file import open_model
from fasdistill.infer.predict import PredictOptions, Predictor


def make_video(path: Path, frames: int) -> None:
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for i in range(frames):
        frame = canvas.copy()
        x = 40 + (i * 3) % 80
        frame[:, x : x + 480] = cv2.resize(face, (480, 480))
        writer.write(frame)
    writer.release()


def one_pass(predictor: Predictor, video: Path) -> dict[str, float]:
    """Seconds per frame of each stage, over every frame of ``video``."""
    capture = cv2.VideoCapture(str(video))
    spent = {"decode": 0.0, "detect": 0.0, "crop_gate": 0.0, "infer": 0.0}
    frames = 0
    while True:
        t0 = time.perf_counter()
        ok, frame = capture.read()
        t1 = time.perf_counter()
        if not ok:
            break
        found = predictor.detector.detect(frame)
        t2 = time.perf_counter()
        box = max(found, key=lambda d: d.area).box if found else None
        _, tensor = predictor.face(frame, box) if box else (None, None)
        t3 = time.perf_counter()
        if tensor is not None:
            predictor.score_tensors(tensor[None])
        t4 = time.perf_counter()
        spent["decode"] += t1 - t0
        spent["detect"] += t2 - t1
        spent["crop_gate"] += t3 - t2
        spent["infer"] += t4 - t3
        frames += 1
    capture.release()
    return {k: v / max(frames, 1) for k, v in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="a fasdistill export directory")
    parser.add_argument("--checkpoint", type=Path, help="also time the best.pt in PyTorch")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = {k: args.export / v for k, v in FILE_NAMES.items() if (args.export / v).exists()}
    if args.checkpoint:
        paths["pytorch"] = args.checkpoint
    predictors = {}
    for name, path in paths.items():
        try:
            model = open_model(path)
            predictors[name] = Predictor(model, PredictOptions(threads=args.threads))
        except Exception as exc:  # noqa: BLE001 - a runtime that is not installed here
            print(f"{name}: skipped ({exc})")
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "face.avi"
        make_video(video, args.frames)
        for predictor in predictors.values():
            one_pass(predictor, video)  # warm-up
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in predictors}
        for _ in range(args.rounds):
            for name, predictor in predictors.items():
                rounds[name].append(one_pass(predictor, video))
    print(
        f"\n{args.frames} frames of 640 x 480 MJPG, {args.threads} thread(s), median of "
        f"{args.rounds} interleaved rounds; detector {predictor.detector_name}"
    )
    print("\n| runtime | frames/s | decode ms | detect ms | crop + gate ms | infer ms |")
    print("|---|---|---|---|---|---|")
    for name, runs in rounds.items():
        med = {k: statistics.median(r[k] for r in runs) * 1e3 for k in runs[0]}
        fps = 1e3 / sum(med.values())
        print(
            f"| {name} | {fps:.0f} | {med['decode']:.2f} | {med['detect']:.2f} "
            f"| {med['crop_gate']:.2f} | {med['infer']:.2f} |"
        )


if __name__ == "__main__":
    main()
