"""``fasdistill quickstart``: the whole mission on built-in synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_quickstart(sub: argparse._SubParsersAction) -> None:
    from fasdistill.quickstart import BUDGETS

    p = sub.add_parser(
        "quickstart",
        help="synthetic data -> teacher -> distilled student -> export -> SWAP report",
        description="Generate SynthSpoof, prepare crops, train a ResNet-18 teacher, train the "
        "swapnet student from scratch and distilled, export the distilled student to every "
        "installed runtime, and write the SWAP report. A rerun resumes: finished stages are "
        "skipped and an interrupted training continues from its last epoch. A part that fails "
        "(an export format, a SWAP cell) is named in the closing lines and the exit status is 1; "
        "the rest is still complete. Converters' and runtimes' own output goes to "
        "OUT/third_party.log.",
    )
    p.add_argument("--out", type=Path, default=Path("out/quickstart"), help="output directory")
    p.add_argument(
        "--budget",
        choices=sorted(BUDGETS),
        default="small",
        help="smoke: a few minutes on 2 cores, every stage and file but numbers that mean "
        "nothing (for checks); small: under 15 min on 2 cores; full: the data and budget of "
        "the kd_gain study",
    )
    p.set_defaults(handler=_run, stage="quickstart")


def _run(args: argparse.Namespace) -> int:
    from fasdistill.quickstart import headline_lines, run_quickstart

    headline = run_quickstart(args.out, args.budget, third_party_log=True)
    print("\n".join(headline_lines(headline)))
    return 1 if headline["failed"] else 0  # a part failed: the closing lines name it
