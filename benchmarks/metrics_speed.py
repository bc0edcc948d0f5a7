"""How long do the PAD metrics take on a million scores, on one core?

Target (issue #2): every metric of one dev/test evaluation on 1,000,000 scores
in under 1 s on one core. Prints a table of median wall times over repeats.

    python benchmarks/metrics_speed.py [--n 1000000] [--repeats 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core, as the target says; set before numpy loads

import argparse
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from fasdistill.metrics import EvalOptions, ScoreSet, auc_from_curve, error_curve, evaluate
from fasdistill.metrics.bootstrap import bootstrap_ci
from fasdistill.metrics.pad import Criterion


def make_scores(n: int, seed: int) -> ScoreSet:
    """n frame scores: 10 frames a video, 50 videos a subject, three species."""
    rng = np.random.default_rng(seed)
    video = np.arange(n) // 10
    kind = rng.integers(0, 4, video[-1] + 1)[video]  # per video: 0 bona fide, 1-3 species
    bona = kind == 0
    subject = video // 50
    scores = np.where(bona, 1.0, -0.5 * kind) + rng.normal(0, 1, n)
    pai = np.where(bona, -1, kind - 1)
    return ScoreSet(
        scores=scores,
        bonafide=bona,
        pai=pai,
        pai_names=("print", "replay", "mask"),
        video=video,
        video_names=tuple(str(v) for v in range(video[-1] + 1)),
        subject=subject,
        subject_names=tuple(str(s) for s in range(subject[-1] + 1)),
        sample_ids=(),
        source="<benchmark>",
    )


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dev, test = make_scores(args.n, 0), make_scores(args.n, 1)
    curve = error_curve(dev)
    threshold = Criterion.parse("eer").select(curve)
    rows = [
        ("error curve (all thresholds, per species)", lambda: error_curve(dev)),
        (
            "threshold: eer / bpcer20 / min-hter",
            lambda: [Criterion.parse(c).select(curve) for c in ("eer", "bpcer20", "min-hter")],
        ),
        ("AUC (from the error curve, as evaluate() does)", lambda: auc_from_curve(curve)),
        ("bootstrap CI (1000 resamples, subjects)", lambda: bootstrap_ci(dev, threshold)),
        ("video-level aggregation (mean)", lambda: dev.to_video_level("mean")),
        ("all metrics, one set (frame level, CI)", lambda: evaluate(dev, None, EvalOptions())),
        ("all metrics, dev + test (frame level, CI)", lambda: evaluate(dev, test, EvalOptions())),
        (
            "all metrics, dev + test (video level, CI)",
            lambda: evaluate(dev, test, EvalOptions(level="video")),
        ),
    ]
    table = Table(
        title=f"PAD metrics on {args.n:,} scores per set, 1 thread, median of {args.repeats}",
        title_justify="left",
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("< 1 s", justify="center")
    for name, fn in rows:
        seconds = timed(fn, args.repeats)
        table.add_row(name, f"{seconds:.3f}", "yes" if seconds < 1.0 else "NO")
    Console().print(table)


if __name__ == "__main__":
    main()
