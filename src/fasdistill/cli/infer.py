"""CLI stages that use a trained model: calibrate its threshold for a deployment."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples; 0: no intervals")
    p.add_argument("--threads", type=int, default=1)
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
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    on, oob, before = (
        report["on_calibration_data"],
        report["out_of_bag"],
        report["at_previous_threshold"],
    )
    n = report["samples"]
    lines = [
        f"calibrated on {n['bonafide']} bona fide + {n['attack']} attack {report['level']}-level "
        f"samples of {report['subjects']} subjects ({report['data']})",
        f"threshold {report['threshold']:.6g} by {report['criterion']} "
        f"(was {report['previous_threshold']:.6g}, {report['previous_criterion']})",
        f"  at the old threshold here: APCER {_pct(before['apcer'])}, "
        f"BPCER {_pct(before['bpcer'])}",
        f"  on this data:             APCER {_pct(on['apcer'])}{_interval(on['apcer_ci'])}, "
        f"BPCER {_pct(on['bpcer'])}{_interval(on['bpcer_ci'])}",
    ]
    if oob and oob.get("valid_resamples"):
        lines.append(
            f"  expected on new subjects: APCER {_pct(oob['apcer'])}{_interval(oob['apcer_ci'])}, "
            f"BPCER {_pct(oob['bpcer'])}{_interval(oob['bpcer_ci'])} "
            f"(out of bag, {oob['valid_resamples']} resamples, 95 % intervals)"
        )
    lines.append(f"wrote {report['calibrated_model']}")
    print("\n".join(lines))
    return 0
