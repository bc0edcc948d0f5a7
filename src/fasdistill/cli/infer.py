"""CLI stages that use a trained model: calibrate its threshold, predict on images and videos."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fasdistill.infer.model_file import ModelFile
    from fasdistill.infer.predict import Predictor
    from fasdistill.infer.video import VideoOptions


def add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="choose a model's threshold on your own dev data; write a calibrated copy",
        description="Score your dev crops with the model in its own runtime (or read a score "
        "CSV), choose the threshold by a criterion, and write a copy of the model that carries "
        "it (the original is untouched). Prints the expected APCER/BPCER on the calibration "
        "data and out of bag (threshold chosen on resampled subjects, rates on the others).",
    )
    p.add_argument(
        "--model", required=True, type=Path, help="best.pt, .onnx, .pte, .tflite or ncnn .param"
    )
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="a prepared crop index (index.csv or its directory) or a score CSV of this model",
    )
    p.add_argument(
        "--criterion",
        default="eer",
        help="eer, min-hter, bpcer@apcer=0.01, apcer@bpcer=5%%, bpcer100, fixed=0.7 (default eer)",
    )
    p.add_argument("--out", type=Path, help="calibrated model (default: <name>.calibrated<ext>)")
    p.add_argument("--split", default="dev", help="split of the index to calibrate on (dev)")
    p.add_argument("--level", choices=("frame", "video"), help="default: the model's own level")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="resamples (at least 40); 0: no intervals"
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--force",
        action="store_true",
        help="write a threshold outside [0, 1] or one that rejects every live face or accepts "
        "every attack of a species on this data (refused otherwise)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_run_calibrate, stage="calibrate")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _interval(values: list[float] | None) -> str:
    return "" if not values else f" [{100 * values[0]:.2f}, {100 * values[1]:.2f}]"


def _run_calibrate(args: argparse.Namespace) -> int:
    from fasdistill.infer.calibrate import calibrate

    report = calibrate(
        args.model,
        args.data,
        args.criterion,
        out=args.out,
        split=args.split,
        level=args.level,
        bootstrap=args.bootstrap,
        threads=args.threads,
        force=args.force,
    )
    if args.json:
        print(json.dumps(report, indent=2), flush=True)
        _warn(report["warnings"])
        return 0
    on, oob, before = (
        report["on_calibration_data"],
        report["out_of_bag"],
        report["at_previous_threshold"],
    )
    n = report["samples"]
    was = (
        "the model had none"
        if report["previous_threshold"] is None
        else f"was {report['previous_threshold']:.6g}, {report['previous_criterion']}"
    )
    lines = [
        f"calibrated on {n['bonafide']} bona fide + {n['attack']} attack {report['level']}-level "
        f"samples of {report['subjects']} subjects ({report['data']})",
        f"threshold {report['threshold']:.6g} by {report['criterion']} ({was})",
    ]
    if before is not None:
        lines.append(
            f"  at the old threshold here: APCER {_pct(before['apcer'])}, "
            f"BPCER {_pct(before['bpcer'])}"
        )
    lines.append(
        f"  on this data:             APCER {_pct(on['apcer'])}{_interval(on['apcer_ci'])}, "
        f"BPCER {_pct(on['bpcer'])}{_interval(on['bpcer_ci'])}"
    )
    if oob and "apcer" in oob:
        lines.append(
            f"  expected on new subjects: APCER {_pct(oob['apcer'])}{_interval(oob['apcer_ci'])}, "
            f"BPCER {_pct(oob['bpcer'])}{_interval(oob['bpcer_ci'])} "
            f"(out of bag, {oob['valid_resamples']} resamples, 95 % intervals)"
        )
    elif oob:
        lines.append(f"  expected on new subjects: {oob['note']}")
    lines.append(f"wrote {report['calibrated_model']}")
    print("\n".join(lines), flush=True)
    _warn(report["warnings"])
    return 0


def _warn(warnings: list[str]) -> None:
    """Warnings last, on stderr, so a JSON report on stdout stays parseable."""
    for warning in warnings:
        print(f"fasdistill calibrate: warning: {warning}", file=sys.stderr)


IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})
SIGPIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool whose reader left


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (so the flag is named in the error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_predict(sub: argparse._SubParsersAction) -> None:
    from fasdistill.infer.predict import PredictOptions, QualityGate
    from fasdistill.infer.stream import StreamOptions
    from fasdistill.infer.video import RULES, VideoOptions

    gate, video, stream = QualityGate(), VideoOptions(), StreamOptions()
    p = sub.add_parser(
        "predict",
        help="score faces in images, videos and folders with a deployed model",
        description="Detect the face, crop it exactly as the model's training crops were cut "
        "(read from the model file), check its size and quality, score it and decide at the "
        "model's calibrated threshold. Images and videos that cannot be judged get a status "
        "(unreadable, image_too_large, no_face, multiple_faces, face_not_in_frame, "
        "face_too_small, low_quality), never bonafide. The exit status reports errors (2: bad "
        "model, option, path or a folder without images or videos; 141: the reader of the "
        "output went away, e.g. | head), not decisions.",
    )
    p.add_argument("paths", nargs="*", type=Path, help="images, videos or folders (recursive)")
    p.add_argument(
        "--model",
        required=True,
        type=Path,
        help="best.pt, .onnx, .pte, .tflite, ncnn .param or a cascade's model.cascade.json",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file (JSON lines)")
    p.add_argument("--detector", help="face detector (default: the one the crops were made with)")
    p.add_argument("--multiple-faces", choices=("largest", "reject"), default="largest")
    p.add_argument(
        "--boxes",
        choices=("auto", "detector"),
        default="auto",
        help="auto: use <name>.boxes.csv beside a file when present (SynthSpoof), else detect",
    )
    p.add_argument("--min-sharpness", type=float, default=gate.min_sharpness)
    p.add_argument("--min-brightness", type=float, default=gate.min_brightness)
    p.add_argument("--max-brightness", type=float, default=gate.max_brightness)
    p.add_argument(
        "--min-edge-margin",
        type=float,
        default=PredictOptions().min_edge_margin,
        help="least gap between the face box and the frame edge, as a share of the box's "
        "longer side (default %(default)s); closer: face_not_in_frame",
    )
    p.add_argument(
        "--frames", type=positive_int, default=video.frames, help="frames sampled per video"
    )
    p.add_argument(
        "--window",
        type=positive_int,
        help=f"frames per smoothing window of a video (default {video.window}), or per "
        f"decision of a camera or stream (default {stream.window})",
    )
    p.add_argument("--video-rule", choices=RULES, default=video.rule)
    p.add_argument(
        "--threads",
        type=positive_int,
        default=PredictOptions().threads,
        help="inference threads (>= 1)",
    )
    p.add_argument(
        "--min-face",
        type=float,
        default=PredictOptions().min_face,
        help="smallest face searched for, as a share of the frame's shorter side (default "
        "%(default)s); detection runs at the resolution it needs: smaller is slower",
    )
    live = p.add_argument_group(
        "live input",
        "Judge a camera or a stream frame by frame, following faces between detections, and "
        "print one JSON line per face per decision window (--window frames).",
    )
    source = live.add_mutually_exclusive_group()
    source.add_argument(
        "--camera",
        metavar="SOURCE",
        help="a camera index (0), a device (/dev/video0) or a stream URL; always the newest "
        "frame (frames that arrive while one is judged are skipped)",
    )
    source.add_argument(
        "--stream",
        metavar="SOURCE",
        help="a video file or recorded stream, judged frame by frame, none skipped",
    )
    live.add_argument(
        "--detect-every",
        type=positive_int,
        default=stream.detect_every,
        help="frames between re-detections of each face on a square around it (default "
        "%(default)s); faces are tracked in between, and searched for again at once when a "
        "track is lost or the scene cuts (1: detect on every frame)",
    )
    live.add_argument(
        "--search-every",
        type=positive_int,
        default=stream.search_every,
        help="frames between searches of the whole frame for new faces (default %(default)s; "
        "also at once when no face is tracked)",
    )
    live.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    live.add_argument(
        "--preview",
        action="store_true",
        help="show the frames with boxes, scores and statuses (needs OpenCV with a GUI)",
    )
    live.add_argument(
        "--no-decode-thread",
        action="store_true",
        help="decode frames in the judging thread (one core) instead of a thread of their own",
    )
    p.set_defaults(handler=_run_predict, stage="predict")


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders searched recursively for images and videos, in sorted order.

    Names are matched, nothing is opened: a FIFO or socket named like an image is
    listed and the predictor reports it ``unreadable`` without reading it. A missing
    path, or a folder holding no image or video, is an InputError before any file
    is judged.
    """
    from fasdistill.data.imageio import VIDEO_SUFFIXES
    from fasdistill.errors import InputError

    media = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in media and not p.is_dir()
            )
            if not found:
                raise InputError(
                    f"{path}: no image or video files in this folder or below (looked for "
                    f"{' '.join(sorted(IMAGE_SUFFIXES))} and {' '.join(sorted(VIDEO_SUFFIXES))})"
                )
            files += found
        elif path.exists() or path.is_symlink():  # a broken link gets its status line
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _run_predict(args: argparse.Namespace) -> int:
    from fasdistill.errors import InputError
    from fasdistill.infer.predict import PredictOptions, Predictor, QualityGate
    from fasdistill.infer.video import VideoOptions

    live = args.camera or args.stream
    if live and args.paths:
        raise InputError("give files to judge, or --camera / --stream, not both")
    if not live and not args.paths:
        raise InputError("nothing to judge: give images, videos or folders, or --camera SOURCE")
    files = [] if live else expand_paths(args.paths)
    gate = QualityGate(args.min_sharpness, args.min_brightness, args.max_brightness)
    options = PredictOptions(
        args.detector,
        args.multiple_faces,
        min_edge_margin=args.min_edge_margin,
        quality=gate,
        threads=args.threads,
        min_face=args.min_face,
    )
    video = VideoOptions(frames=args.frames, window=args.window or 5, rule=args.video_rule)
    video.validate()
    predictor = Predictor.from_file(args.model, options)
    if "pytorch" in _kinds(predictor.model):  # torch's thread pool is the process's: ours here
        import torch

        torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)  # OpenCV's detector and resize threads: process-wide too
    try:
        if live:
            _predict_stream(args, predictor)
        else:
            _predict_files(args, predictor, files, video)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, like a Unix tool killed by SIGPIPE.
        # Point stdout at /dev/null so the interpreter's final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return SIGPIPE_EXIT
    return 0


def _predict_stream(args: argparse.Namespace, predictor: Predictor) -> None:
    """One JSON line per face track per decision window, flushed as it is made."""
    from fasdistill.infer.stream import (
        FrameReader,
        Preview,
        StreamOptions,
        StreamPredictor,
        open_source,
        parse_source,
    )

    source = parse_source(args.camera or args.stream)
    options = StreamOptions(
        detect_every=args.detect_every, search_every=args.search_every, window=args.window or 15
    )
    streamer = StreamPredictor(predictor, options)
    preview = Preview() if args.preview else None  # fails before the source is opened
    capture = open_source(source, predictor.options.max_pixels)
    reader = FrameReader(
        capture,
        live=bool(args.camera),
        threaded=not args.no_decode_thread,
        max_frames=args.max_frames,
    )
    try:
        for index, time_s, image in reader:
            faces = streamer.frame(image)
            for decision in streamer.decide(index, time_s, faces):
                print(json.dumps(decision.as_dict()), flush=True)
                if preview is not None:
                    preview.last[decision.track] = decision
            if preview is not None and not preview.show(image, faces):
                break
        for decision in streamer.finish():
            print(json.dumps(decision.as_dict()), flush=True)
    finally:
        reader.close()
        if preview is not None:
            preview.close()
    if reader.dropped:
        print(
            f"fasdistill predict: {reader.dropped} camera frames arrived while others were "
            "judged and were skipped",
            file=sys.stderr,
        )


def _kinds(model: ModelFile) -> set[str]:
    """The kinds of model file that run: a cascade's members, or the model itself."""
    from fasdistill.infer.cascade import CascadeModel

    if isinstance(model, CascadeModel):
        return {model.small.kind, model.large.kind}
    return {model.kind}


def _predict_files(
    args: argparse.Namespace, predictor: Predictor, files: list[Path], video: VideoOptions
) -> None:
    """One line (or JSON object) per file, flushed as it is judged."""
    from fasdistill.data.imageio import is_video
    from fasdistill.infer.predict import boxes_beside
    from fasdistill.infer.video import predict_video

    use_boxes = args.boxes == "auto"
    for path in files:
        if is_video(path):
            result, kind = predict_video(predictor, path, video, use_boxes).as_dict(), "video"
        else:
            boxes = boxes_beside(path) if use_boxes else None
            box = boxes.get(0) if boxes else None
            result, kind = predictor.predict(path, box).as_dict(), "image"
        if args.json:
            print(json.dumps({"path": str(path), "kind": kind, **result}), flush=True)
        else:
            score = "-" if result["score"] is None else f"{result['score']:.4f}"
            detail = f"  ({result['detail']})" if result.get("detail") else ""
            print(f"{result['status']:17s} {score:>7s}  {path}{detail}", flush=True)
