"""CLI stage that combines two models: ``cascade`` (the small one decides the faces it is
sure of, the large one the rest)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_cascade(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cascade",
        help="a small model decides the faces it is sure of, a larger one the rest: one "
        "deployable folder",
        description="Score the dev crops with both models, choose the band of small-model "
        "scores around its threshold whose faces go on to the large model (fewest faces passed "
        "on, with the cascade's dev ACER no worse than the large model's alone), and write OUT: "
        "copies of both model files and model.cascade.json. predict, swap and Python's "
        "open_model take OUT/model.cascade.json like any model file (docs/cascade.md).",
    )
    what = "best.pt, .onnx, .int8.onnx, .pte, .tflite, ncnn .param, or a model with a sidecar"
    p.add_argument("--small", required=True, type=Path, help=f"the small model: {what}")
    p.add_argument("--large", required=True, type=Path, help="the larger model (or the teacher)")
    p.add_argument(
        "--data", required=True, type=Path, help="prepared index.csv or its directory (dev split)"
    )
    p.add_argument("--out", required=True, type=Path, help="the cascade folder to write")
    p.add_argument("--threads", type=int, default=1, help="runtime threads while scoring dev")
    p.set_defaults(handler=_run_cascade, stage="cascade")


def _run_cascade(args: argparse.Namespace) -> int:
    from fasdistill.errors import InputError
    from fasdistill.infer.cascade import CASCADE_FILE, build_cascade

    if args.threads < 1:
        raise InputError(f"--threads: must be >= 1, got {args.threads}")
    manifest = build_cascade(args.small, args.large, args.data, args.out, threads=args.threads)
    small, large = manifest["members"]["small"], manifest["members"]["large"]
    dev, band = manifest["dev"], manifest["band"]
    lines = [
        f"small: {small['source']} ({small['runtime']}, {small['input_size']} px, "
        f"threshold {small['threshold']:.6g})",
        f"large: {large['source']} ({large['runtime']}, {large['input_size']} px, "
        f"threshold {large['threshold']:.6g})",
        f"band: small score in [{band['lo']:.6g}, {band['hi']:.6g}] goes on to the large model "
        f"(chosen on {dev['faces']} dev faces of {dev['data']}, {dev['level']} level)",
        f"dev ACER: small alone {100 * dev['small_acer']:.2f} %, large alone "
        f"{100 * dev['large_acer']:.2f} %, cascade {100 * dev['cascade_acer']:.2f} %",
        f"dev share passed on: {100 * dev['share_passed_on']:.1f} % ({dev['passed_on']} of "
        f"{dev['faces']} faces)",
        f"wrote {args.out / CASCADE_FILE}",
    ]
    print("\n".join(lines), flush=True)
    return 0
