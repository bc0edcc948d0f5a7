"""The ``fasdistill`` command: one sub-command per pipeline stage.

This package only parses arguments, calls the library and prints; every stage's
logic lives in its package. Errors meant for the user (``FasDistillError``) are
printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from fasdistill import __version__
from fasdistill.cli.cascade import add_cascade
from fasdistill.cli.data import add_metrics, add_models, add_prepare, add_synth
from fasdistill.cli.deploy import add_export, add_swap
from fasdistill.cli.infer import add_calibrate, add_predict
from fasdistill.cli.quickstart import add_quickstart
from fasdistill.cli.recipes import add_recipes
from fasdistill.cli.search import add_search
from fasdistill.cli.study import add_study
from fasdistill.cli.train import add_distill, add_train
from fasdistill.errors import FasDistillError

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fasdistill",
        description="Face anti-spoofing distillation toolkit: data, training, distillation, "
        "evaluation, export and SWAP reports.",
    )
    parser.add_argument("--version", action="version", version=f"fasdistill {__version__}")
    sub = parser.add_subparsers(title="stages", metavar="<stage>", required=True)
    add_quickstart(sub)
    add_synth(sub)
    add_prepare(sub)
    add_models(sub)
    add_recipes(sub)
    add_train(sub)
    add_distill(sub)
    add_study(sub)
    add_search(sub)
    add_metrics(sub)
    add_export(sub)
    add_swap(sub)
    add_calibrate(sub)
    add_cascade(sub)
    add_predict(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except FasDistillError as error:
        print(f"fasdistill {args.stage}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fasdistill {args.stage}: interrupted", file=sys.stderr)
        return 130
