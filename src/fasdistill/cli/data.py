"""CLI stages that make and inspect data: synth, prepare, models, metrics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError

# ---------------------------------------------------------------------------- metrics


def add_metrics(sub: argparse._SubParsersAction) -> None:
    from fasdistill.metrics.bootstrap import UNITS
    from fasdistill.metrics.evaluate import LEVELS
    from fasdistill.metrics.pad import CRITERIA_HELP
    from fasdistill.metrics.scores import REDUCERS

    p = sub.add_parser(
        "metrics",
        help="ISO/IEC 30107-3 metrics from dev/test score files (threshold fixed on dev)",
        description="Choose a threshold on the dev scores, apply it unchanged to the test "
        "scores, and report APCER (per PAI species and worst), BPCER, ACER, HTER, EER, AUC "
        "and TPR@FPR with bootstrap confidence intervals. Scores: higher = more likely bona fide.",
    )
    p.add_argument("--dev", required=True, type=Path, help="dev score CSV (chooses the threshold)")
    p.add_argument("--test", type=Path, help="test score CSV (evaluated at the dev threshold)")
    p.add_argument("--criterion", default="eer", help=CRITERIA_HELP)
    p.add_argument("--level", choices=LEVELS, default="frame", help="evaluate frames or videos")
    p.add_argument(
        "--reducer",
        choices=REDUCERS,
        default="mean",
        help="how frame scores make a video score (with --level video)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for confidence intervals (at least 40; 0 = none)",
    )
    p.add_argument(
        "--ci-unit", choices=UNITS, default="subject", help="resampling unit of the bootstrap"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    p.add_argument("--out", type=Path, help="write metrics.json and DET/ROC/histogram PNGs here")
    p.add_argument("--no-plots", action="store_true", help="with --out, skip the PNG figures")
    p.set_defaults(handler=_run_metrics, stage="metrics")


def _run_metrics(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fasdistill.metrics.evaluate import EvalOptions, evaluate
    from fasdistill.metrics.scores import read_scores
    from fasdistill.metrics.table import metrics_table
    from fasdistill.utils.hashing import sha256_file

    options = EvalOptions(
        criterion=args.criterion,
        level=args.level,
        reducer=args.reducer,
        bootstrap=args.bootstrap,
        ci_unit=args.ci_unit,
        confidence=args.confidence,
        seed=args.seed,
    )
    options.validate()
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a directory")
    dev = read_scores(args.dev)
    test = read_scores(args.test) if args.test is not None else None
    result = evaluate(dev, test, options)
    report = result.report
    inputs = {"dev": args.dev} | ({"test": args.test} if args.test is not None else {})
    report["inputs"] = {k: {"path": str(v), "sha256": sha256_file(v)} for k, v in inputs.items()}
    console = Console()
    console.print(metrics_table(report))
    for warning in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if args.out is not None:
        from fasdistill.utils.atomic import atomic_write_bytes, atomic_write_json

        figures = {}
        if not args.no_plots:
            from fasdistill.metrics.plots import render_all

            figures = render_all(result)
        # Everything is computed before the first byte is written.
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in figures.items():
            atomic_write_bytes(args.out / name, data)
        if args.no_plots:  # figures from an earlier run would contradict the new metrics.json
            from fasdistill.metrics.plots import FIGURE_NAMES

            for name in FIGURE_NAMES:
                (args.out / name).unlink(missing_ok=True)
        atomic_write_json(args.out / "metrics.json", report)
        console.print(
            f"wrote {args.out / 'metrics.json'}" + (f" and {', '.join(figures)}" if figures else "")
        )
    return 0


# ---------------------------------------------------------------------------- shared


def _progress_bar(console: Any) -> Any:
    """The bar of the long stages: description, bar, done/total, time left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (
        Progress.get_default_columns()[0],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console)


def _workers(requested: int | None) -> int:
    """--workers as given (>= 1), or every usable core."""
    from fasdistill.utils.workers import default_workers

    if requested is not None and requested < 1:
        raise InputError(f"--workers must be >= 1, got {requested}")
    return requested or default_workers()


# ---------------------------------------------------------------------------- synth


def add_synth(sub: argparse._SubParsersAction) -> None:
    from fasdistill.data.synth.domains import DOMAINS, SPECIES

    p = sub.add_parser(
        "synth",
        help="generate SynthSpoof, the built-in synthetic face anti-spoofing benchmark",
        description="Render bona fide faces and print, replay and mask attacks, recaptured "
        "through one camera model per domain, with train/dev/test and leave-one-domain-out "
        "protocols. An interrupted run resumes when started again with the same arguments.",
    )
    p.add_argument("--out", type=Path, help="dataset directory (created; resumable)")
    p.add_argument("--preview", type=Path, help="write a contact sheet PNG (one row per domain)")
    p.add_argument("--subjects", type=int, default=40, help="subjects per domain")
    p.add_argument(
        "--samples",
        type=int,
        default=2,
        help="samples per class (bona fide and each species) per subject",
    )
    p.add_argument("--frames", type=int, default=1, help="1 = PNG images; 2-64 = FFV1 AVI videos")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (even)")
    p.add_argument(
        "--domains",
        default=",".join(DOMAINS),
        help=f"comma-separated domains ({', '.join(DOMAINS)})",
    )
    p.add_argument(
        "--species",
        default=",".join(SPECIES),
        help=f"comma-separated attack species ({', '.join(SPECIES)})",
    )
    p.add_argument(
        "--difficulty",
        type=float,
        default=0.5,
        help="0 = strongest attack artefacts .. 1 = faintest",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--modalities",
        default="rgb",
        help="sensors to record: rgb, or rgb,depth,ir for registered depth and near-infrared "
        "frames beside each RGB one (the RGB frames are the same either way)",
    )
    p.add_argument("--workers", type=int, help="worker processes (default: all usable cores)")
    p.set_defaults(handler=_run_synth, stage="synth")


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _run_synth(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fasdistill.data.synth import SynthConfig, generate
    from fasdistill.data.synth.preview import contact_sheet

    if args.out is None and args.preview is None:
        raise InputError("give --out DIR (the dataset), --preview SHEET.png, or both")
    config = SynthConfig(
        subjects=args.subjects,
        samples=args.samples,
        frames=args.frames,
        size=args.size,
        domains=_split_names(args.domains),
        species=_split_names(args.species),
        difficulty=args.difficulty,
        seed=args.seed,
        modalities=_split_names(args.modalities),
    )
    config.validate()
    workers = _workers(args.workers)
    console = Console()
    if args.preview is not None:
        contact_sheet(config, args.preview)
        console.print(f"wrote {args.preview}")
    if args.out is not None:
        with _progress_bar(console) as bar:
            task = bar.add_task("rendering", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            samples = generate(args.out, config, workers=workers, progress=report)
        console.print(f"wrote {samples} and {args.out / 'protocols'}")
    return 0


# ---------------------------------------------------------------------------- prepare


def add_prepare(sub: argparse._SubParsersAction) -> None:
    from fasdistill.data.formats import DATASETS
    from fasdistill.data.prepare import BOX_MODES

    p = sub.add_parser(
        "prepare",
        help="cut square face crops from a dataset's videos/images, with an index",
        description="Sample frames, find faces (the dataset's boxes or landmarks, else a "
        "detector), cut square context crops and write DIR/index.csv. Bad data is counted per "
        "reason, never fatal; an interrupted run resumes with the same command.",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument(
        "--root", required=True, help="dataset root (cross-domain: name=PATH,name=PATH,...)"
    )
    p.add_argument("--protocol", help="protocol name (default: the dataset's main protocol)")
    p.add_argument("--out", required=True, type=Path, help="output directory (resumable)")
    frames = p.add_mutually_exclusive_group()
    frames.add_argument(
        "--frames", type=int, default=None, help="frames per video, spread uniformly (default 10)"
    )
    frames.add_argument("--every", type=int, help="take every k-th frame instead")
    p.add_argument(
        "--detector", default="blazeface", help="face detector: blazeface (default), yunet or haar"
    )
    p.add_argument(
        "--boxes",
        choices=BOX_MODES,
        default="auto",
        help="auto: dataset boxes, else the detector; or only one of them",
    )
    p.add_argument(
        "--scale",
        default="1.5",
        help="context scale(s) times the face box, comma-separated (e.g. 1.0,2.7)",
    )
    p.add_argument("--size", type=int, default=128, help="crop side in pixels")
    p.add_argument(
        "--modalities",
        default="rgb",
        help="rgb, or rgb,depth,ir on multi-modal sets: one crop per modality, same box",
    )
    p.add_argument("--workers", type=int, help="worker processes (default: all usable cores)")
    p.set_defaults(handler=_run_prepare, stage="prepare")


def _run_prepare(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fasdistill.data.prepare import PrepareConfig, prepare

    try:
        scales = tuple(float(s) for s in args.scale.split(",") if s.strip())
    except ValueError:
        raise InputError(
            f"--scale {args.scale!r}: expected numbers such as 1.5 or 1.0,2.7"
        ) from None
    frames = args.frames if args.frames is not None or args.every is not None else 10
    config = PrepareConfig(
        dataset=args.dataset,
        root=args.root,
        protocol=args.protocol,
        frames=frames,
        every=args.every,
        detector=args.detector,
        boxes=args.boxes,
        scales=scales,
        size=args.size,
        modalities=_split_names(args.modalities),
    )
    workers = _workers(args.workers)
    console = Console()
    with _progress_bar(console) as bar:
        task = bar.add_task("samples", total=None)

        def report(done: int, total: int, frames_done: int) -> None:
            bar.update(
                task, completed=done, total=total, description=f"samples ({frames_done} frames)"
            )

        summary = prepare(config, args.out, workers=workers, progress=report)
    table = Table(
        title=f"prepared {summary['samples']} samples into {args.out}", title_justify="left"
    )
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, n in summary["status_counts"].items():
        table.add_row(status, str(n))
    if summary["skipped_files"]:
        table.add_row("files not in the dataset's naming scheme", str(summary["skipped_files"]))
    console.print(table)
    for split, counts in summary["crops_by_split"].items():
        console.print(f"{split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + " crops")
    console.print(f"wrote {args.out / 'index.csv'}")
    return 0


# ---------------------------------------------------------------------------- models and train


def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list every model: role, default input, deployable parameters and MACs",
        description="Teachers and students built by name. Parameters and MACs count the "
        "deployable network only (training-only auxiliary heads excluded); MACs are "
        "torch.utils.flop_counter FLOPs / 2 at the default input.",
    )
    p.set_defaults(handler=_run_models, stage="models")


def _run_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from fasdistill.models import models_table

    table = Table(title="fasdistill models (2 classes)", title_justify="left")
    for column in ("name", "role", "input", "params", "MACs"):
        table.add_column(column, justify="left" if column in ("name", "role") else "right")
    for row in models_table():
        table.add_row(
            row["name"],
            row["role"],
            f"{row['input_size']}",
            f"{row['params'] / 1e6:.3f} M",
            f"{row['macs'] / 1e6:.1f} M",
        )
    Console().print(table)
    return 0
