"""Real-time prediction: speed, memory and accuracy of the frame pipeline against today's.

Three parts, one thread per stage (ONNX Runtime, PyTorch and OpenCV at one thread):

1. **speed**: 640 x 480 and 1280 x 720 MJPG videos of a real face (scikit-image's
   astronaut photo, panning and zooming), judged frame by frame by every pipeline
   with every runtime, interleaved round by round; frames/s end to end and
   milliseconds per stage, medians over rounds. The process is pinned to one core
   except in the rows marked "decode thread", which give decoding its own thread
   and core. Pipelines:
   - ``today``: YuNet on the full frame (scaled to 640 px) on every frame, the
     largest face cropped, gated and scored: the pipeline before this benchmark;
   - ``<detector> search``: the whole frame searched on every frame, at the
     resolution the smallest wanted face needs (a fifth of the shorter side),
     each face found then re-detected on a square around it;
   - ``<detector> every``: each face re-detected on every frame around its last
     box, the whole frame searched every 30th frame (new faces);
   - ``<detector> tracked``: each face re-detected every 10th frame, followed by
     median flow in between; searches as above (and at once when a track is
     lost or the scene cuts).
2. **memory**: 10,000 frames through the stream pipeline with detection on every
   frame; resident memory after 1,000 and after 10,000 frames.
3. **parity**: on SynthSpoof test videos and on videos made from three
   public-domain photos, every fast pipeline against its detector's full-frame
   detection on every frame: box IoU (median, 5th percentile), |score difference|,
   frame decisions that agree, and the test ACER of the student through each.

    python benchmarks/predict_speed.py --export EXPORT_DIR --checkpoint best.pt \\
        --synth SYNTH_VIDEO_DIR --out benchmarks/results/predict_speed

writes ``OUT.md`` and ``OUT.json`` (the tables below, and every figure in them).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread per stage; set before numpy and torch load

import argparse
import csv
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from matplotlib import cbook
from skimage import data as skdata

from fasdistill.data.detect import FaceDetector, YuNetDetector, get_detector
from fasdistill.export.pipeline import FILE_NAMES
from fasdistill.infer.model_file import open_model
from fasdistill.infer.predict import PredictOptions, Predictor, boxes_beside
from fasdistill.infer.stream import FrameReader, StreamOptions, StreamPredictor, open_source
from fasdistill.infer.track import iou
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
TRACKED_EVERY = 10
HAVE_YUNET = importlib.util.find_spec("yuface") is not None
DETECTORS = ("yunet", "blazeface") if HAVE_YUNET else ("blazeface",)


# ---------------------------------------------------------------------- inputs


def photos() -> dict[str, np.ndarray]:
    """Three public-domain photos shipped inside installed packages, BGR."""
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {
        "astronaut": cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR),
        "cameraman": cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2BGR),
        "grace_hopper": grace,
    }


# face centre and side (px) in each photo, hand-checked (tests/test_detect.py's regions)
FACES = {"astronaut": (222, 128, 105), "cameraman": (215, 148, 95), "grace_hopper": (262, 232, 205)}


def moving_face(photo: str, width: int, height: int, frames: int) -> Iterator[np.ndarray]:
    """The photo's face panning and zooming slowly across a (width x height) frame.

    The face's side is about 0.35 of the frame's height (a selfie at arm's length),
    swinging +-10 % in size and +-12 % of the width sideways over 90 frames.
    """
    image = photos()[photo]
    fx, fy, side = FACES[photo]
    for i in range(frames):
        phase = 2 * np.pi * i / 90
        scale = 0.35 * height / side * (1 + 0.1 * np.sin(phase))
        cx = width / 2 + 0.12 * width * np.sin(phase / 2)
        cy = height / 2
        matrix = np.float32([[scale, 0, cx - scale * fx], [0, scale, cy - scale * fy]])
        yield cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


def write_video(path: Path, frames: Iterator[np.ndarray], size: tuple[int, int]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


# ---------------------------------------------------------------------- pipelines


def legacy_yunet() -> FaceDetector:
    """YuNet as the pipeline before this benchmark ran it: the frame's search alone."""
    detector = YuNetDetector()
    detector.refine_side = None  # type: ignore[misc]  # boxes straight from the search
    return detector


def today_frame(
    predictor: Predictor, detector: FaceDetector, frame: np.ndarray, times: dict[str, float]
) -> tuple[Any, str, float | None]:
    """The pipeline before this benchmark: full-frame detection, largest face, crop, score."""
    t0 = time.perf_counter()
    found = detector.detect(frame)
    t1 = time.perf_counter()
    box = max(found, key=lambda d: d.area).box if found else None
    result, tensor = predictor.face(frame, box) if box else (None, None)
    t2 = time.perf_counter()
    if tensor is not None:
        predictor.decide([result], [tensor])
    t3 = time.perf_counter()
    times["detect"] += t1 - t0
    times["crop_gate"] += t2 - t1
    times["infer"] += t3 - t2
    if result is None:
        return box, "no_face", None
    return box, result.status, result.score


def speed_pass(pipeline: str, predictor: Predictor, video: Path) -> dict[str, float]:
    """Frames/s end to end and ms per frame in each stage, over every frame of ``video``."""
    threaded = pipeline.endswith("decode thread")
    reader = FrameReader(open_source(str(video), 10**9), threaded=threaded)
    frames = 0
    start = time.perf_counter()
    if pipeline == "today":
        detector = legacy_yunet()
        times = {"detect": 0.0, "crop_gate": 0.0, "infer": 0.0}
        for _, _, frame in reader:
            today_frame(predictor, detector, frame, times)
            frames += 1
        searches, redetections, track = frames, 0, 0.0
    else:
        streamer = StreamPredictor(predictor, stream_options(pipeline))
        for index, seconds, frame in reader:
            streamer.decide(index, seconds, streamer.frame(frame))
            frames += 1
        tracker = streamer.tracker
        times = {
            "detect": tracker.detect_s,
            "crop_gate": streamer.timings["crop_gate"],
            "infer": streamer.timings["infer"],
        }
        searches, redetections = tracker.searches, tracker.redetections
        track = tracker.follow_s
    wall = time.perf_counter() - start
    reader.close()
    per = {k: v / frames * 1e3 for k, v in times.items()}
    return {
        "fps": frames / wall,
        "decode": reader.decode_s / frames * 1e3,
        "detect": per["detect"],
        "track": track / frames * 1e3,
        "crop_gate": per["crop_gate"],
        "infer": per["infer"],
        "searches": searches / frames,
        "redetections": redetections / frames,
    }


KINDS = ("search", "every", "tracked")


def stream_options(pipeline: str) -> StreamOptions:
    if " search" in pipeline:
        return StreamOptions(detect_every=1, search_every=1)
    return StreamOptions(detect_every=TRACKED_EVERY if "tracked" in pipeline else 1)


def pipelines() -> list[str]:
    names = ["today"] if HAVE_YUNET else []
    for detector in DETECTORS:
        names += [f"{detector} {kind}" for kind in KINDS]
    return [*names, "blazeface every, decode thread", "blazeface tracked, decode thread"]


def with_detector(model: Any, name: str) -> Predictor:
    detector = "yunet" if name == "today" else name.split()[0]
    return Predictor(model, PredictOptions(detector=detector, threads=1))


def speed(models: dict[str, Any], rounds: int, frames: int, workdir: Path) -> list[dict[str, Any]]:
    core = {min(os.sched_getaffinity(0))}
    everything = os.sched_getaffinity(0)
    rows: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    videos = {
        size: write_video(workdir / f"{size}.avi", moving_face("astronaut", w, h, frames), (w, h))
        for size, (w, h) in SIZES.items()
    }
    predictors = {
        (runtime, name): with_detector(model, name)
        for runtime, model in models.items()
        for name in pipelines()
    }
    for round_ in range(rounds + 1):  # round 0 warms up and is dropped
        for size, video in videos.items():
            for (runtime, name), predictor in predictors.items():
                os.sched_setaffinity(0, everything if name.endswith("decode thread") else core)
                result = speed_pass(name, predictor, video)
                os.sched_setaffinity(0, everything)
                if round_:
                    rows.setdefault((size, name, runtime), []).append(result)
        print(f"speed round {round_}/{rounds} done", file=sys.stderr, flush=True)
    out = []
    for (size, name, runtime), runs in rows.items():
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        out.append({"size": size, "pipeline": name, "runtime": runtime, **median})
    for row in out:
        today = [
            r
            for r in out
            if r["pipeline"] == "today"
            and (r["size"], r["runtime"]) == (row["size"], row["runtime"])
        ]
        row["x_today"] = row["fps"] / today[0]["fps"] if today else None
    return out


# ---------------------------------------------------------------------- batching


def batching(models: dict[str, Any], repeats: int = 200) -> list[dict[str, Any]]:
    """ms per crop when the student scores 1, 4 or 15 crops (a window's) in one call."""
    rows = []
    for runtime, model in models.items():
        predictor = Predictor(model, PredictOptions(threads=1))
        crop = predictor.preprocess(np.full((predictor.crop_size,) * 2 + (3,), 128, np.uint8))
        times = {}
        for batch in (1, 4, 15):
            tensors = np.stack([crop] * batch)
            predictor.score_tensors(tensors)
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(repeats // batch + 1):
                    predictor.score_tensors(tensors)
                runs.append((time.perf_counter() - start) / ((repeats // batch + 1) * batch))
            times[batch] = statistics.median(runs) * 1e3
        rows.append({"runtime": runtime, "ms_per_crop": times})
    return rows


# ---------------------------------------------------------------------- memory


def rss_mb() -> float:
    with Path("/proc/self/status").open() as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory(model: Any, frames: int) -> list[dict[str, Any]]:
    rows = []
    clip = list(moving_face("astronaut", 640, 480, 90))
    for detector in DETECTORS:
        streamer = StreamPredictor(with_detector(model, detector), StreamOptions(detect_every=1))
        marks = []
        for i in range(frames):
            frame = clip[i % len(clip)]
            streamer.decide(i, i / 30, streamer.frame(frame))
            if (i + 1) % 1000 == 0:
                marks.append(rss_mb())
        rows.append({"detector": detector, "frames": frames, "rss_mb": marks})
        print(f"memory {detector} done", file=sys.stderr, flush=True)
    return rows


# ---------------------------------------------------------------------- parity


def full_frame_run(
    predictor: Predictor, frames: list[np.ndarray], detector: FaceDetector | None = None
) -> list[tuple[Any, str, float | None]]:
    """Every frame searched at the detector's default resolution, as ``prepare`` does."""
    detector = detector or get_detector(predictor.detector_name)
    times = {"detect": 0.0, "crop_gate": 0.0, "infer": 0.0}
    return [today_frame(predictor, detector, frame, times) for frame in frames]


def stream_run(
    predictor: Predictor, frames: list[np.ndarray], pipeline: str
) -> list[tuple[Any, str, float | None]]:
    streamer = StreamPredictor(predictor, stream_options(pipeline))
    out = []
    for frame in frames:
        faces = streamer.frame(frame)
        if not faces:
            out.append((None, "no_face", None))
            continue
        p = faces[0].prediction  # the largest face, as the full-frame pipeline takes
        out.append((p.box, p.status, p.score))
    return out


def boxes_run(
    predictor: Predictor, frames: list[np.ndarray], boxes: dict[int, Any]
) -> list[tuple[Any, str, float | None]]:
    out = []
    for i, frame in enumerate(frames):
        p = predictor.predict(frame, boxes.get(i))
        out.append((p.box, p.status, p.score))
    return out


def video_decision(frames: list[tuple[Any, str, float | None]], threshold: float) -> bool:
    """Accepted as bona fide: at least half the frames scored, their mean passes (fail closed)."""
    scores = [s for _, _, s in frames if s is not None]
    return len(scores) >= 0.5 * len(frames) and float(np.mean(scores)) >= threshold


def acer(decisions: list[tuple[str, str, bool]]) -> dict[str, float]:
    """ISO/IEC 30107-3 rates from (label, species, accepted) per video, in per cent."""
    bona = [a for label, _, a in decisions if label == "bonafide"]
    species = sorted({s for label, s, _ in decisions if label != "bonafide"})
    apcer = {
        s: 100 * float(np.mean([a for label, p, a in decisions if p == s and label != "bonafide"]))
        for s in species
    }
    bpcer = 100 * (1 - float(np.mean(bona)))
    return {
        "acer": (max(apcer.values()) + bpcer) / 2,
        "bpcer": bpcer,
        **{f"apcer_{k}": v for k, v in apcer.items()},
    }


WINDOW = 15  # frames per decision, as `predict --camera` decides


def compare(reference: list, fast: list, threshold: float) -> dict[str, list[float]]:
    """Per-frame IoU, |score difference| and status agreement of two runs of one video, and
    the agreement of their decisions over windows of WINDOW frames (a shorter video: one)."""
    ious, diffs, agree, near, fast_only, reference_only = [], [], [], [], [], []
    for (box_a, status_a, score_a), (box_b, status_b, score_b) in zip(reference, fast, strict=True):
        fast_only.append(float(box_a is None and box_b is not None))
        reference_only.append(float(box_a is not None and box_b is None))
        if box_a is not None and box_b is not None:
            ious.append(iou(box_a, box_b))
        if score_a is not None and score_b is not None:
            diffs.append(abs(score_a - score_b))
        if score_a is not None:
            near.append(float(abs(score_a - threshold) < 0.05))
        agree.append(float(status_a == status_b))
    windows = [
        float(
            video_decision(reference[i : i + WINDOW], threshold)
            == video_decision(fast[i : i + WINDOW], threshold)
        )
        for i in range(0, len(reference), WINDOW)
    ]
    return {
        "iou": ious,
        "diff": diffs,
        "agree": agree,
        "windows": windows,
        "near": near,
        "fast_only": fast_only,
        "reference_only": reference_only,
    }


def summary(parts: dict[str, list[float]]) -> dict[str, float]:
    ious, diffs = np.array(parts["iou"] or [np.nan]), np.array(parts["diff"] or [np.nan])
    return {
        "iou_median": float(np.median(ious)),
        "iou_p5": float(np.percentile(ious, 5)),
        "diff_median": float(np.median(diffs)),
        "diff_p95": float(np.percentile(diffs, 95)),
        "agree": 100 * float(np.mean(parts["agree"])),
        "frames": len(parts["agree"]),
        "windows_agree": 100 * float(np.mean(parts["windows"])),
        "windows": len(parts["windows"]),
        "near_threshold": 100 * float(np.mean(parts["near"] or [np.nan])),
        "found_fast_only": int(sum(parts["fast_only"])),
        "found_reference_only": int(sum(parts["reference_only"])),
        "big_score_changes": int(sum(d > 0.2 for d in parts["diff"])),
    }


def read_video(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def synth_test_videos(root: Path, limit: int | None) -> list[dict[str, str]]:
    split = {}
    with (root / "protocols" / "intra.csv").open(newline="") as handle:
        split = {row["sample_id"]: row["split"] for row in csv.DictReader(handle)}
    with (root / "samples.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if split.get(r["sample_id"]) == "test"]
    return rows[:limit] if limit else rows


def parity(model: Any, synth: Path | None, limit: int | None) -> dict[str, Any]:
    runs: dict[str, Callable[[Predictor, list[np.ndarray]], list]] = {}
    predictors = {d: with_detector(model, d) for d in DETECTORS}
    for d in DETECTORS:
        runs[f"{d} full frame"] = full_frame_run
        for kind in KINDS:
            runs[f"{d} {kind}"] = lambda p, f, name=f"{d} {kind}": stream_run(p, f, name)
    out: dict[str, Any] = {"photos": {}, "synth": {}}
    threshold = next(iter(predictors.values())).threshold
    # real photos, moving: no labels, agreement only
    parts: dict[str, dict[str, list[float]]] = {}
    for photo in photos():
        frames = list(moving_face(photo, 640, 480, 90))
        for d in DETECTORS:
            reference = runs[f"{d} full frame"](predictors[d], frames)
            for kind in KINDS:
                got = compare(reference, runs[f"{d} {kind}"](predictors[d], frames), threshold)
                bucket = parts.setdefault(f"{d} {kind}", {})
                for k, v in got.items():
                    bucket.setdefault(k, []).extend(v)
    out["photos"] = {k: summary(v) for k, v in parts.items()}
    print("parity on photos done", file=sys.stderr, flush=True)
    if synth is None:
        return out
    videos = synth_test_videos(synth, limit)
    decisions: dict[str, list[tuple[str, str, bool]]] = {}
    parts = {}
    for n, row in enumerate(videos):
        path = synth / row["path"]
        frames = read_video(path)
        species = row["pai"] or "bonafide"
        results = {
            "annotation boxes": boxes_run(
                predictors[DETECTORS[0]], frames, boxes_beside(path) or {}
            )
        }
        if HAVE_YUNET:
            results["today"] = full_frame_run(predictors["yunet"], frames, legacy_yunet())
        for d in DETECTORS:
            for kind in ("full frame", *KINDS):
                results[f"{d} {kind}"] = runs[f"{d} {kind}"](predictors[d], frames)
            for kind in KINDS:
                got = compare(results[f"{d} full frame"], results[f"{d} {kind}"], threshold)
                bucket = parts.setdefault(f"{d} {kind}", {})
                for k, v in got.items():
                    bucket.setdefault(k, []).extend(v)
        for name, frames_out in results.items():
            decisions.setdefault(name, []).append(
                (row["label"], species, video_decision(frames_out, threshold))
            )
        if (n + 1) % 50 == 0:
            print(f"parity synth {n + 1}/{len(videos)}", file=sys.stderr, flush=True)
    out["synth"] = {
        "videos": len(videos),
        "pipelines": {k: summary(v) for k, v in parts.items()},
        "acer": {k: acer(v) for k, v in decisions.items()},
    }
    return out


# ---------------------------------------------------------------------- report


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rule(n: int) -> str:
    return "|" + "---|" * n


SPEED_NOTE = (
    "Frames/s end to end and ms per frame in each stage; median of {rounds} interleaved rounds "
    "of {frames} frames; one thread per stage, the process pinned to one core except in the "
    "rows where decoding has its own thread (and core). `x today`: frames/s over today's "
    "pipeline's, same runtime and frame size. `detect`: detector ms per frame (searches and "
    "re-detections); `search`, `re-detect`: detector runs of each kind per frame."
)
PARITY_NOTE = (
    "Each fast pipeline against its detector's full-frame search on every frame at the "
    "detector's default resolution (as `prepare` cuts crops): box IoU, |score difference| and "
    "frame statuses that agree (bonafide, attack, or the same failure); decisions over windows "
    f"of {WINDOW} frames (a SynthSpoof video is one window) that agree; the share of the "
    "reference's scored frames within 0.05 of the threshold, where a small score change flips "
    "a frame."
)


def markdown(result: dict[str, Any]) -> str:
    lines = [f"`{result['command']}`", "", result["machine"], "", "## Speed", ""]
    lines += [SPEED_NOTE.format(rounds=result["rounds"], frames=result["frames"]), ""]
    head = ("frame", "pipeline", "runtime", "frames/s", "x today", "decode", "detect", "track")
    lines += [_row(*head, "crop + gate", "infer", "search", "re-detect"), _rule(12)]
    for r in result["speed"]:
        x = "-" if r["x_today"] is None else f"{r['x_today']:.1f}x"
        ms = [f"{r[k]:.2f}" for k in ("decode", "detect", "track", "crop_gate", "infer")]
        counts = [f"{r['searches']:.2f}", f"{r['redetections']:.2f}"]
        lines.append(
            _row(r["size"], r["pipeline"], r["runtime"], f"{r['fps']:.0f}", x, *ms, *counts)
        )
    lines += ["", "## Memory", ""]
    lines += ["Stream pipeline, each face re-detected on every frame, 640 x 480; resident MiB.", ""]
    lines += [_row("detector", "after 1,000 frames", "after 10,000", "difference", "every 1,000")]
    lines += [_rule(5)]
    for r in result["memory"]:
        m = r["rss_mb"]
        marks = " ".join(f"{v:.0f}" for v in m)
        lines.append(
            _row(r["detector"], f"{m[0]:.1f}", f"{m[-1]:.1f}", f"{m[-1] - m[0]:+.1f}", marks)
        )
    if result.get("batching"):
        lines += ["", "## Batching", "", "ms per crop when one call scores 1, 4 or 15 crops "]
        lines[-1] += "(a decision window's), one thread, one core; median of 5."
        lines += ["", _row("runtime", "batch 1", "batch 4", "batch 15"), _rule(4)]
        for r in result["batching"]:
            ms = r["ms_per_crop"]
            cells = [f"{ms[k]:.3f}" for k in sorted(ms, key=int)]
            lines.append(_row(r["runtime"], *cells))
    p = result["parity"]
    lines += ["", "## Parity", "", PARITY_NOTE, ""]
    lines += [
        "Photos: astronaut, cameraman and Grace Hopper, each moving over 90 frames of 640 x 480."
    ]
    cols = (
        "pipeline",
        "frames",
        "IoU median",
        "IoU 5th pct",
        r"\|Δscore\| median",
        r"\|Δscore\| 95th",
    )
    cols = (*cols, "frames agree", "decisions agree", "ref. near threshold", "face: fast only")
    cols = (*cols, "face: ref. only", r"\|Δscore\| > 0.2")
    lines += ["", _row(*cols), _rule(12)]
    for name, q in p["photos"].items():
        lines.append(_row(name, q["frames"], *_parity_cells(q)))
    if p.get("synth"):
        synth = p["synth"]
        lines += ["", f"SynthSpoof: {synth['videos']} intra test videos.", ""]
        lines += [_row(*cols), _rule(12)]
        for name, q in synth["pipelines"].items():
            lines.append(_row(name, q["frames"], *_parity_cells(q)))
        species = sorted(k for k in next(iter(synth["acer"].values())) if k.startswith("apcer_"))
        lines += [
            "",
            "Test ACER of the student through each pipeline, per cent (per video: accepted when at "
            "least half its frames were scored and their mean passes the model's threshold):",
            "",
            _row("pipeline", "ACER", "BPCER", *(f"APCER {k[6:]}" for k in species)),
            _rule(3 + len(species)),
        ]
        for name, a in synth["acer"].items():
            rates = [f"{a[k]:.2f}" for k in ("acer", "bpcer", *species)]
            lines.append(_row(name, *rates))
    return "\n".join(lines) + "\n"


def _parity_cells(q: dict[str, float]) -> list[str]:
    return [
        f"{q['iou_median']:.3f}",
        f"{q['iou_p5']:.3f}",
        f"{q['diff_median']:.4f}",
        f"{q['diff_p95']:.4f}",
        f"{q['agree']:.1f} %",
        f"{q['windows_agree']:.1f} % of {q['windows']}",
        f"{q['near_threshold']:.0f} %",
        str(q["found_fast_only"]),
        str(q["found_reference_only"]),
        str(q["big_score_changes"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="a fasdistill export directory")
    parser.add_argument("--checkpoint", type=Path, help="also time the best.pt in PyTorch")
    parser.add_argument(
        "--extra-model",
        type=Path,
        action="append",
        default=[],
        help="another model file to time (speed only), e.g. a searched student's model.onnx; "
        "named after its folder",
    )
    parser.add_argument("--synth", type=Path, help="a SynthSpoof video set (synth --frames N)")
    parser.add_argument("--frames", type=int, default=120, help="frames per speed video")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory-frames", type=int, default=10_000)
    parser.add_argument("--parity-videos", type=int, help="at most this many SynthSpoof videos")
    parser.add_argument("--parts", default="speed,memory,batching,parity")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    models: dict[str, Any] = {}
    for name, file in FILE_NAMES.items():
        if (args.export / file).exists():
            try:
                models[name] = open_model(args.export / file)
            except Exception as exc:  # noqa: BLE001 - a runtime not installed here
                print(f"{name}: skipped ({exc})", file=sys.stderr)
    if args.checkpoint:
        models["pytorch"] = open_model(args.checkpoint)
    first = models.get("onnx") or next(iter(models.values()))
    timed = dict(models)
    for path in args.extra_model:
        timed[f"{path.parent.name}/{path.name}"] = open_model(path)
    parts = set(filter(None, args.parts.split(",")))  # --parts "": rewrite the tables only
    result: dict[str, Any] = {
        "command": "python benchmarks/predict_speed.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} vCPU, Python "
        f"{platform.python_version()}, OpenCV {cv2.__version__}; YuNet "
        f"{'installed' if HAVE_YUNET else 'not installed (yuface): its rows are missing'}",
        "frames": args.frames,
        "rounds": args.rounds,
        "speed": [],
        "memory": [],
        "batching": [],
        "parity": {"photos": {}},
    }
    if args.out and args.out.with_suffix(".json").is_file():
        # a rerun of some parts keeps the others (and says which command made them)
        kept = json.loads(args.out.with_suffix(".json").read_text())
        names = ("speed", "memory", "batching", "parity")
        reused = [p for p in names if p not in parts and kept.get(p)]
        for part in reused:
            result[part] = kept[part]
        if reused and not parts:  # nothing run: the tables written again from the JSON
            result["command"] = kept["command"]
            result["frames"], result["rounds"] = kept["frames"], kept["rounds"]
        elif reused:
            result["command"] = (
                f"{kept['command']}; then (not {', '.join(reused)}) {result['command']}"
            )
            result["frames"], result["rounds"] = kept["frames"], kept["rounds"]
    with tempfile.TemporaryDirectory() as tmp:
        if "speed" in parts:
            result["speed"] = speed(timed, args.rounds, args.frames, Path(tmp))
    if "memory" in parts:
        result["memory"] = memory(first, args.memory_frames)
    if "batching" in parts:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        result["batching"] = batching(timed)
    if "parity" in parts:
        result["parity"] = parity(first, args.synth, args.parity_videos)
    text = markdown(result)
    print(text)
    if args.out:
        atomic_write_json(args.out.with_suffix(".json"), result)
        atomic_write_text(args.out.with_suffix(".md"), text)


if __name__ == "__main__":
    main()
