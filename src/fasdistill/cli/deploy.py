"""CLI stages that ship a model: export (ONNX, INT8, ExecuTorch, LiteRT, ncnn) and swap."""

from __future__ import annotations

import argparse
from pathlib import Path

from fasdistill.errors import InputError


def add_export(sub: argparse._SubParsersAction) -> None:
    from fasdistill.export.pipeline import FORMATS, ExportOptions

    defaults = ExportOptions()
    p = sub.add_parser(
        "export",
        help="export a best.pt to ONNX, INT8, ExecuTorch, LiteRT and ncnn, each checked against "
        "PyTorch on real crops",
        description="Export a deployable checkpoint. Every artifact carries its preprocessing "
        "and calibrated threshold as metadata, and is written only after its scores on real dev "
        "crops match PyTorch's. INT8 is calibrated on train crops; its classifier head and "
        "score stay fp32. export.json records parity, score resolution, file sizes, dev/test "
        "metrics at the embedded threshold and interleaved latency. A format that fails is "
        "recorded there with its reason and the others are still written: exit status 1 then, "
        "0 when every format was written or skipped, 2 on bad input (nothing written). "
        "Third-party output goes to OUT/third_party.log.",
    )
    p.add_argument("checkpoint", type=Path, help="a best.pt written by train or distill")
    p.add_argument("--data", required=True, type=Path, help="prepared index.csv or its directory")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--format",
        help=f"comma-separated formats from {', '.join(FORMATS)} (default: all whose runtime "
        "is installed; the others are skipped with a line naming the extra to install)",
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
    import shutil
    import tempfile

    from fasdistill.export.pipeline import FORMATS, ExportOptions, prepare_export, run_export
    from fasdistill.utils.quiet import third_party_to_log

    named = args.format is not None
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip()) if named else FORMATS
    if not formats:
        raise InputError("--format: name at least one format")
    options = ExportOptions(
        formats=formats,
        skip_unavailable=not named,  # a format asked for by name must not be skipped silently
        parity_crops=args.parity_crops,
        calibration_crops=args.calibration_crops,
        threads=args.threads,
        int8_stem=args.int8_stem,
        latency_runs=args.latency_runs,
        latency_seconds=args.latency_seconds,
    )
    # Runtimes print as they load, during the checks too; the checks write nothing, so
    # their noise waits in a temporary log that moves into OUT once they pass.
    with tempfile.TemporaryDirectory() as tmp:
        early = Path(tmp) / "third_party.log"
        with third_party_to_log(early):
            job = prepare_export(args.checkpoint, args.data, args.out, options)
        log_path = args.out / "third_party.log"
        with early.open("rb") as source, log_path.open("ab") as target:
            shutil.copyfileobj(source, target)
    with third_party_to_log(log_path) as say:
        report = run_export(job, log=say)
        say(f"wrote {args.out / 'export.json'}; third-party output in {log_path}")
        say(_export_closing_line(report))
    return 1 if report["failed"] or "error" in report.get("latency", {}) else 0


def _export_closing_line(report: dict) -> str:
    """One line: how many artifacts were written, and which formats failed or were skipped."""
    written, failed, skipped = report["formats"], report["failed"], report["skipped"]
    parts = [f"{len(written)} artifact{'s' if len(written) != 1 else ''} written"]
    if skipped:
        parts.append(f"{len(skipped)} skipped (runtime not installed: {', '.join(skipped)})")
    if "error" in report.get("latency", {}):
        parts.append("latency not measured")
    if failed:
        return f"export finished with failures: {', '.join(failed)} failed; " + "; ".join(parts)
    return "export finished: " + "; ".join(parts)


def _pairs(text: str, flag: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}; a malformed item names the flag."""
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InputError(f"{flag}: expected key=value items separated by commas, got {item!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def add_swap(sub: argparse._SubParsersAction) -> None:
    from fasdistill.swap.options import DEFAULT_RUNTIMES, RUNTIMES, SwapOptions

    defaults = SwapOptions()
    p = sub.add_parser(
        "swap",
        help="Speed, Weight, Accuracy and Power of models side by side (swap.json, swap.md)",
        description="Export and check every model, then measure latency per runtime with all "
        "models interleaved in one process, parameters/MACs/bytes, ISO metrics on test at "
        "thresholds fixed on dev with retention against the first model (paired bootstrap "
        "intervals), and energy per inference: measured from RAPL counters where readable, "
        "otherwise modelled and labelled so. A model x runtime cell that fails (an artifact "
        "refused by its parity gate, a runtime error) is left out with its reason and the rest "
        "is measured: exit status 1 then, 0 when every cell was measured, 2 on bad input. "
        "Third-party output goes to OUT/third_party.log.",
    )
    p.add_argument(
        "--models", nargs="+", required=True, type=Path, help="best.pt files; first = reference"
    )
    p.add_argument("--data", required=True, type=Path, help="prepared index.csv or its directory")
    p.add_argument("--out", required=True, type=Path, help="report directory")
    p.add_argument(
        "--runtimes",
        default=",".join(DEFAULT_RUNTIMES),
        help=f"from {', '.join(RUNTIMES)}; the first is the headline (pte needs the mobile "
        "extra, tflite the litert extra, ncnn the ncnn extra, pytorch-cuda an NVIDIA GPU)",
    )
    p.add_argument("--threads", type=int, default=defaults.threads)
    p.add_argument("--batch", type=int, default=defaults.batch, help="second batch size besides 1")
    p.add_argument("--latency-runs", type=int, default=defaults.latency_runs)
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=defaults.latency_seconds,
        help="minimum timing per runtime and batch size",
    )
    p.add_argument(
        "--latency-max-seconds",
        type=float,
        default=defaults.latency_max_seconds,
        help="time cap per model, runtime and batch size: a slow model stops there with the "
        "runs it reached (reported)",
    )
    p.add_argument(
        "--bootstrap", type=int, default=defaults.bootstrap, help="at least 40; 0: no intervals"
    )
    p.add_argument(
        "--profile",
        default="",
        help="device-profile overrides, e.g. active_watts=2,fp32_mac_pj=3.7 (see docs/swap.md)",
    )
    p.add_argument(
        "--weights", default="", help="SWAP-score weights, e.g. speed=2,weight=1,accuracy=4,power=1"
    )
    p.set_defaults(handler=_run_swap, stage="swap")


def _run_swap(args: argparse.Namespace) -> int:
    import dataclasses

    from fasdistill.swap.measure import run_swap
    from fasdistill.swap.options import SwapOptions
    from fasdistill.swap.power import DeviceProfile
    from fasdistill.swap.report import write_reports
    from fasdistill.swap.summary import closing_line, ratio_lines
    from fasdistill.utils.quiet import third_party_to_log

    fields = {f.name: f.type for f in dataclasses.fields(DeviceProfile)}
    overrides: dict[str, object] = {}
    for key, value in _pairs(args.profile, "--profile").items():
        if key not in fields:
            raise InputError(f"--profile: unknown key {key!r}; known: {', '.join(fields)}")
        try:
            overrides[key] = value if key == "name" else float(value)
        except ValueError:
            raise InputError(f"--profile: {key} must be a number, got {value!r}") from None
    weights = SwapOptions().score_weights
    for key, value in _pairs(args.weights, "--weights").items():
        try:
            weights[key] = float(value)
        except ValueError:
            raise InputError(f"--weights: {key} must be a number, got {value!r}") from None
    options = SwapOptions(
        runtimes=tuple(r.strip() for r in args.runtimes.split(",") if r.strip()),
        threads=args.threads,
        batch=args.batch,
        latency_runs=args.latency_runs,
        latency_seconds=args.latency_seconds,
        latency_max_seconds=args.latency_max_seconds,
        bootstrap=args.bootstrap,
        profile=DeviceProfile(**overrides),
        score_weights=weights,
    )
    options.validate()
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{args.out}: cannot create the report directory ({exc.strerror})"
        ) from None
    log = args.out / "third_party.log"
    with third_party_to_log(log) as say:
        swap = run_swap(list(args.models), args.data, args.out, options, log=say)
        for line in ["", *ratio_lines(swap), ""]:
            say(line)
        for path in write_reports(swap, args.out):
            say(f"wrote {path}")
        say(f"third-party output: {log}")
        say(closing_line(swap))
    return 1 if swap["left_out"] else 0
