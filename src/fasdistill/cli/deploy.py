"""CLI stages that ship a model: export (ONNX, INT8) with parity checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from fasdistill.errors import InputError


def add_export(sub: argparse._SubParsersAction) -> None:
    from fasdistill.export.pipeline import FORMATS, ExportOptions

    defaults = ExportOptions()
    p = sub.add_parser(
        "export",
        help="export a best.pt to ONNX / INT8, each checked against PyTorch on real crops",
        description="Export a deployable checkpoint. Every artifact carries its preprocessing "
        "and calibrated threshold as metadata, and is written only after its scores on real dev "
        "crops match PyTorch's. INT8 is calibrated on train crops. export.json records parity, "
        "file sizes, dev/test metrics at the embedded threshold and interleaved latency.",
    )
    p.add_argument("checkpoint", type=Path, help="a best.pt written by train or distill")
    p.add_argument("--data", required=True, type=Path, help="prepared index.csv or its directory")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--format",
        default=",".join(FORMATS),
        help=f"comma-separated formats from {', '.join(FORMATS)} (default: all)",
    )
    p.add_argument("--threads", type=int, default=defaults.threads, help="runtime threads")
    p.add_argument("--parity-crops", type=int, default=defaults.parity_crops)
    p.add_argument("--calibration-crops", type=int, default=defaults.calibration_crops)
    p.add_argument(
        "--int8-stem",
        action="store_true",
        help="quantize the first convolution too (default: it stays fp32, see docs/export.md)",
    )
    p.add_argument("--latency-runs", type=int, default=defaults.latency_runs)
    p.add_argument("--latency-seconds", type=float, default=defaults.latency_seconds)
    p.set_defaults(handler=_run_export, stage="export")


def _run_export(args: argparse.Namespace) -> int:
    from fasdistill.export.pipeline import ExportOptions, export_checkpoint

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    if not formats:
        raise InputError("--format: name at least one format")
    options = ExportOptions(
        formats=formats,
        parity_crops=args.parity_crops,
        calibration_crops=args.calibration_crops,
        threads=args.threads,
        int8_stem=args.int8_stem,
        latency_runs=args.latency_runs,
        latency_seconds=args.latency_seconds,
    )
    export_checkpoint(args.checkpoint, args.data, args.out, options)
    print(f"wrote {args.out / 'export.json'}")
    return 0
