"""Memory of long-running prediction: RSS after 1,000 and after 10,000 frames, per path.

Every path runs ``Predictor.predict`` once per frame (YuNet on the whole frame, the
context crop, the quality gate, the model), each in a fresh child process so one
row cannot inflate the next:

- ``frames``: a generator of frames, as a camera loop feeds them;
- ``video``: one MJPG video of that many frames, every frame sampled
  (``predict_video`` with ``--frames`` = its length);
- ``folder``: ``fasdistill predict`` on a folder of that many JPEG files (100
  distinct pictures, hard-linked under 10,000 names), its output to /dev/null;
- ``binding``: the ``frames`` row with yuface's own ``detect`` binding instead of
  fasdistill's direct call: what 6329bf7 ran, for contrast.

Frames are 224 x 224 (YuNet's working size, so nothing is resized before
detection) with scikit-image's astronaut panning, so every frame has a scored
face. RSS is the process's plus its children's (VmRSS from /proc, Linux only),
read every ``--first`` frames; the table gives the first and the last reading.

    python benchmarks/predict_memory.py --model export/kd/model.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from skimage import data

ROWS = ("frames", "video", "folder", "binding")
SIDE = 224


def tree_rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process and all its descendants, in MiB."""
    pid = os.getpid() if pid is None else pid
    total = 0.0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += tree_rss_mb(int(child))
    return total


def frame(i: int) -> np.ndarray:
    """Frame ``i``: the astronaut photo at 224 px, panned a pixel a frame (24 positions)."""
    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (SIDE, SIDE))
    return np.ascontiguousarray(np.roll(face, i % 24 - 12, axis=1))


def frames(count: int) -> Iterator[np.ndarray]:
    pictures = [frame(i) for i in range(24)]
    for i in range(count):
        yield pictures[i % 24]


def write_video(path: Path, count: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (SIDE, SIDE))
    for picture in frames(count):
        writer.write(picture)
    writer.release()


def write_folder(folder: Path, count: int) -> None:
    folder.mkdir()
    distinct = []
    for i in range(min(100, count)):
        path = folder / f"{i:05d}.jpg"
        cv2.imwrite(str(path), frame(i))
        distinct.append(path)
    for i in range(len(distinct), count):
        os.link(distinct[i % len(distinct)], folder / f"{i:05d}.jpg")


def run_row(row: str, model: Path, count: int, marks: tuple[int, ...]) -> dict[str, object]:
    """One row, in this process: count frames through the path, RSS at every mark."""
    from fasdistill.infer.model_file import open_model
    from fasdistill.infer.predict import Predictor

    seen: dict[int, tuple[float, float]] = {}
    statuses: dict[str, int] = {}
    judge = Predictor.predict
    start = time.perf_counter()

    def counted(self: Predictor, image: object, box: object = None) -> object:
        result = judge(self, image, box)
        statuses[result.status] = statuses.get(result.status, 0) + 1
        done = sum(statuses.values())
        if done in marks:
            seen[done] = (tree_rss_mb(), time.perf_counter() - start)
        return result

    Predictor.predict = counted  # every path below judges frames through this method
    with tempfile.TemporaryDirectory() as tmp:
        if row in ("frames", "binding"):
            predictor = Predictor(open_model(model))
            if row == "binding":
                import yuface

                predictor.detector._model = yuface.yuface.detect  # 6329bf7's leaking call
            for picture in frames(count):
                predictor.predict(picture)
        elif row == "video":
            from fasdistill.infer.video import VideoOptions, predict_video

            video = Path(tmp) / "long.avi"
            write_video(video, count)
            start = time.perf_counter()
            predict_video(Predictor(open_model(model)), video, VideoOptions(frames=count))
        else:
            from fasdistill.cli import main

            write_folder(Path(tmp) / "in", count)
            start = time.perf_counter()
            with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
                main(["predict", str(Path(tmp) / "in"), "--model", str(model), "--json"])
    return {
        "row": row,
        "rss": {str(k): v[0] for k, v in seen.items()},
        "statuses": statuses,
        "seconds": {str(k): v[1] for k, v in seen.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a fasdistill model file")
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=1_000, help="the earlier RSS mark")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated: {ROWS}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    marks = (*range(args.first, args.frames, args.first), args.frames)  # RSS every --first
    if args.child:
        print(json.dumps(run_row(args.child, args.model, args.frames, marks)))
        return
    print(f"{args.frames:,} frames of {SIDE} x {SIDE} per row; RSS = process + children, MiB")
    statuses = {}
    print(
        f"\n| path | after {args.first:,} | after {args.frames:,} | difference | s / 1,000 frames |"
    )
    print("|---|---|---|---|---|")
    for row in args.rows.split(","):
        command = [
            sys.executable,
            __file__,
            "--model",
            str(args.model),
            "--frames",
            str(args.frames),
            "--first",
            str(args.first),
            "--child",
            row,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"| {row} | failed: {done.stderr.strip().splitlines()[-1:]} | | | |")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        early, late = result["rss"][str(args.first)], result["rss"][str(args.frames)]
        seconds = result["seconds"]
        rate = (seconds[str(args.frames)] - seconds[str(args.first)]) / (args.frames - args.first)
        print(
            f"| {row} | {early:.1f} | {late:.1f} | {late - early:+.1f} | {1000 * rate:.1f} |",
            flush=True,
        )
        statuses[row] = result["statuses"], [result["rss"][str(m)] for m in marks]
    for row, (counts, series) in statuses.items():
        print(f"\n{row}: frame statuses {counts}")
        print(f"  RSS every {args.first:,} frames: " + " ".join(f"{v:.1f}" for v in series))


if __name__ == "__main__":
    main()
