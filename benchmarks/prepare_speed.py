"""How fast does `fasdistill prepare` turn videos into face crops? Frames per second.

Renders a small SynthSpoof video set (FFV1 AVI, lossless), then times
preparation (decode + face boxes + crop + PNG write) with the dataset's own
boxes, with each face detector, and with 1 and all workers.

    python benchmarks/prepare_speed.py [--subjects 4] [--frames 16] [--size 224]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from fasdistill.data.prepare import PrepareConfig, prepare
from fasdistill.data.synth import SynthConfig, generate
from fasdistill.utils.workers import default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4, help="SynthSpoof subjects per domain")
    parser.add_argument("--frames", type=int, default=16, help="frames per video")
    parser.add_argument("--size", type=int, default=224, help="video frame side in pixels")
    parser.add_argument("--crop", type=int, default=128, help="crop side in pixels")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one worker = one core, in this process as in the pool's
    workers = sorted({1, default_workers()})
    with tempfile.TemporaryDirectory(prefix="prepare_speed.") as tmp:
        data = Path(tmp) / "synth"
        config = SynthConfig(
            subjects=args.subjects,
            samples=1,
            frames=args.frames,
            size=args.size,
            domains=("studio", "dim"),
        )
        generate(data, config, workers=default_workers())
        table = Table(
            title=f"fasdistill prepare: SynthSpoof videos, {args.size} px frames, "
            f"{args.crop} px crops at scale 1.5",
            title_justify="left",
        )
        for column in ("face boxes", "workers", "frames", "seconds", "frames/s"):
            table.add_column(column, justify="right")
        runs = [("annotation", "yunet"), ("detector", "yunet"), ("detector", "haar")]
        for boxes, detector in runs:
            for n in workers:
                out = Path(tmp) / f"out_{boxes}_{detector}_{n}"
                prep = PrepareConfig(
                    dataset="synthspoof",
                    root=str(data),
                    frames=args.frames,
                    detector=detector,
                    boxes=boxes,
                    size=args.crop,
                )
                start = time.perf_counter()
                summary = prepare(prep, out, workers=n)
                seconds = time.perf_counter() - start
                frames = summary["frames_this_run"]
                label = "dataset's own" if boxes == "annotation" else detector
                table.add_row(
                    label, str(n), str(frames), f"{seconds:.1f}", f"{frames / seconds:.0f}"
                )
        Console().print(table)


if __name__ == "__main__":
    main()
