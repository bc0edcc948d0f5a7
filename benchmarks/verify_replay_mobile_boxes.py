"""Check the Replay-Mobile face-location mapping on a copy of the data: shipped boxes vs YuNet.

The adapter maps the boxes of ``faceloc/rect`` (made for the frames of Idiap's
first loader) into the upright frames OpenCV decodes; the mapping follows from
Idiap's loaders, not from pixels (see ``fasdistill.data.formats.replay_mobile``).
This script samples videos of each kind (phone, tablet, the two client-8 tablet
videos the first loader flips), runs YuNet on a few frames and prints, per kind,
the median intersection-over-union of the mapped shipped box with YuNet's box.
A correct mapping gives a median IoU well above 0.5 for every kind; a mirrored or
flipped one gives about 0. Exit status 1 if any kind falls below ``--min-iou``.

    python benchmarks/verify_replay_mobile_boxes.py /data/replay-mobile
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

from fasdistill.data.detect import get_detector
from fasdistill.data.formats.base import Box, Sample
from fasdistill.data.formats.replay_mobile import ReplayMobile, flipped_tablet
from fasdistill.data.video import read_frames


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def kind(sample: Sample) -> str:
    if flipped_tablet(sample):
        return "tablet, client 8 exception"
    return sample.device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the Replay-Mobile release folder")
    parser.add_argument("--videos", type=int, default=20, help="videos per kind")
    parser.add_argument("--frames", type=int, default=3, help="frames per video")
    parser.add_argument("--min-iou", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    adapter = ReplayMobile(args.root)
    by_kind: dict[str, list[Sample]] = {}
    for sample in adapter.samples():
        by_kind.setdefault(kind(sample), []).append(sample)
    detector = get_detector("yunet")
    rng = random.Random(args.seed)
    print("| videos of | videos | frames compared | median IoU | IoU > 0.5 | frames not upright |")
    print("|---|---|---|---|---|---|")
    failed = False
    for name, samples in sorted(by_kind.items()):
        chosen = rng.sample(samples, min(args.videos, len(samples)))
        ious: list[float] = []
        wrong_size = 0
        for sample in chosen:
            boxes = adapter.face_boxes(sample) or {}
            frames, _ = read_frames(sample.path, count=args.frames)
            for index, frame in frames:
                if (frame.shape[1], frame.shape[0]) != adapter.annotation_frame_size(sample):
                    wrong_size += 1
                    continue
                found = detector.best(frame)
                if index in boxes and found is not None:
                    ious.append(iou(boxes[index], found.box))
        median = statistics.median(ious) if ious else 0.0
        share = sum(v > 0.5 for v in ious) / len(ious) if ious else 0.0
        failed |= median < args.min_iou
        print(
            f"| {name} | {len(chosen)} | {len(ious)} | {median:.2f} | {100 * share:.0f} % "
            f"| {wrong_size} |"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
