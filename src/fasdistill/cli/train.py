"""CLI stages that train: train and distill (one loop, single process or torchrun DDP)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fasdistill.errors import InputError


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """--data, --out, --resume, --no-progress and overrides: shared by train and distill."""
    p.add_argument("--data", required=True, type=Path, help="prepared index.csv or its directory")
    p.add_argument("--out", type=Path, help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="recipe overrides, e.g. optim.lr=0.01 train.epochs=5 distill.terms.0.weight=2",
    )


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a teacher or a student on prepared crops (single process or torchrun DDP)",
        description="Train on the train split of a prepared index, select the best epoch on the "
        "dev split (ACER or EER at the dev EER threshold; the test split is never read). "
        "Multi-GPU/multi-node: torchrun --nproc_per_node N -m fasdistill.cli train ...",
    )
    p.add_argument(
        "--recipe",
        help="built-in recipe name (see `fasdistill recipes`) or YAML file; defaults if omitted",
    )
    _add_run_arguments(p)
    p.set_defaults(handler=_run_train, stage="train")


def _run_train(args: argparse.Namespace) -> int:
    from fasdistill.config import load_recipe
    from fasdistill.distill import fit

    config = load_recipe(args.recipe, args.overrides)
    if args.stage == "distill":
        if config.distill is None:
            raise InputError(
                f"{args.recipe}: no distill: section (see `fasdistill recipes distill_kd`)"
            )
        if args.teacher is not None:  # the first teacher's file; its stated preprocessing stays
            config.distill.teacher[0].path = args.teacher
    run_dir = args.out or Path("runs") / config.name
    result = fit(config, args.data, run_dir, resume=args.resume, show_progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"{result.epochs_run} epochs; best dev {config.train.select_metric} "
            f"{100 * result.best_metric:.2f}% at epoch {result.best_epoch}; "
            f"checkpoints in {run_dir / 'checkpoints'}"
        )
    return 0


def add_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="distil a frozen teacher into a student (KD, DKD, DIST, FitNets, AT, RKD, ...)",
        description="Train a student with the recipe's distill: terms from a frozen teacher "
        "(a fasdistill best.pt, or an ONNX model with its preprocessing in the recipe). Same "
        "loop as `train`: dev-only selection, torchrun DDP, AMP, bit-exact --resume.",
    )
    p.add_argument(
        "--recipe",
        required=True,
        help="recipe with a distill: section: a built-in name (e.g. distill_kd) or a YAML file",
    )
    p.add_argument("--teacher", help="teacher best.pt or .onnx (overrides distill.teacher)")
    _add_run_arguments(p)
    p.set_defaults(handler=_run_train, stage="distill")
