"""How does SynthSpoof's ``difficulty`` knob move the error of hand-crafted baselines?

For each difficulty in 0, 0.25, 0.5 (the default), 0.75 and 1, generates a
SynthSpoof still-image set (all domains, same seed, so only the difficulty
changes) into a temporary directory and fits two baselines on its ``train``
split: ``colour-hist`` (joint Cr-Cb chroma histogram plus saturation, value
and luma histograms of the face crop) and ``fft-energy``
(log energy of the grey face crop's 2-D spectrum in radial bands and high-band
angular sectors), each a numpy L2-regularised logistic regression scoring
P(bona fide). The threshold is chosen on ``dev`` (EER); test EER (all attacks
pooled: the per-species ISO figure moves in large steps on sets this size), ACER
(worst species, ISO) and AUC are reported, with whether the EER is
non-decreasing and the AUC non-increasing in difficulty, and whether the default
difficulty is far from perfect (test EER >= 10 % for both baselines).

    python benchmarks/synth_difficulty.py [--subjects 30] [--samples 2] [--size 96] \
        [--seeds 0,1,2] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from fasdistill.baselines import FEATURES, Features, fit_and_score, load_crops
from fasdistill.data.synth.domains import DOMAINS
from fasdistill.data.synth.generator import SynthConfig, generate, iter_samples
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.utils.workers import default_workers

DIFFICULTIES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_DIFFICULTY = 0.5
FAR_FROM_PERFECT_EER = 0.10

SHORT = {"colour-hist": "hist", "fft-energy": "fft"}  # table headers


def run_baseline(
    rows: list[dict[str, str]], crops: list[np.ndarray], features: Features
) -> dict[str, float]:
    """Train on train, pick the threshold on dev, return test EER/ACER/AUC and seconds."""
    start = time.perf_counter()
    sets = fit_and_score(rows, crops, features)
    test = evaluate(sets["dev"], sets["test"], EvalOptions(criterion="eer", bootstrap=0))
    report = test.report["test"]
    result = {
        "eer": float(report["eer_pooled"]),
        "acer": float(report["acer"]),
        "auc": float(report["auc"]),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=30, help="subjects per domain")
    parser.add_argument("--samples", type=int, default=2, help="samples per class and subject")
    parser.add_argument("--size", type=int, default=96, help="image size in pixels")
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds; metrics are averaged over them"
    )
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()

    results: dict[float, dict[str, dict[str, float]]] = {}
    gen_seconds: dict[float, float] = {}
    n_samples = 0
    seeds = [int(s) for s in args.seeds.split(",")]
    for difficulty in DIFFICULTIES:
        per_seed: list[dict[str, dict[str, float]]] = []
        gen_seconds[difficulty] = 0.0
        for seed in seeds:
            config = SynthConfig(
                subjects=args.subjects,
                samples=args.samples,
                frames=1,
                size=args.size,
                domains=tuple(DOMAINS),
                difficulty=difficulty,
                seed=seed,
            )
            with tempfile.TemporaryDirectory(prefix="synth_difficulty.") as tmp:
                start = time.perf_counter()
                generate(tmp, config, workers=args.workers)
                rows = list(iter_samples(tmp))
                crops = load_crops(Path(tmp), rows)
                gen_seconds[difficulty] += time.perf_counter() - start
            n_samples = len(rows)
            per_seed.append(
                {name: run_baseline(rows, crops, features) for name, features in FEATURES.items()}
            )
        results[difficulty] = {
            name: {k: float(np.mean([r[name][k] for r in per_seed])) for k in per_seed[0][name]}
            for name in FEATURES
        }

    table = Table(
        title=(
            f"SynthSpoof difficulty vs baselines: {len(DOMAINS)} domains x {args.subjects} "
            f"subjects, {n_samples} images of {args.size}px per set, mean of seeds {args.seeds}; "
            "test EER (threshold-free) / ACER (at the dev EER threshold) / AUC in %; "
            "s = seconds"
        ),
        caption=", ".join(f"{short} = {name}" for name, short in SHORT.items()),
        caption_justify="left",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("difficulty", justify="right")
    table.add_column("gen s", justify="right")
    for name in FEATURES:  # two header lines, so the table fits 80 columns
        for metric in ("EER", "ACER", "AUC", "s"):
            table.add_column(f"{SHORT[name]}\n{metric}", justify="right")
    for difficulty in DIFFICULTIES:
        cells = [f"{difficulty:.2f}", f"{gen_seconds[difficulty]:.1f}"]
        for name in FEATURES:
            r = results[difficulty][name]
            cells += [
                f"{100 * r['eer']:.1f}",
                f"{100 * r['acer']:.1f}",
                f"{100 * r['auc']:.1f}",
                f"{r['seconds']:.1f}",
            ]
        table.add_row(*cells)
    console = Console()
    console.print(table)

    for name in FEATURES:
        eers = [results[d][name]["eer"] for d in DIFFICULTIES]
        aucs = [results[d][name]["auc"] for d in DIFFICULTIES]
        eer_up = all(b >= a for a, b in itertools.pairwise(eers))
        auc_down = all(b <= a for a, b in itertools.pairwise(aucs))
        console.print(
            f"{name}: test EER non-decreasing with difficulty: {'yes' if eer_up else 'no'}; "
            f"test AUC non-increasing: {'yes' if auc_down else 'no'}"
        )
    default_eers = {name: results[DEFAULT_DIFFICULTY][name]["eer"] for name in FEATURES}
    far = all(e >= FAR_FROM_PERFECT_EER for e in default_eers.values())
    listed = ", ".join(f"{name} {100 * e:.1f} %" for name, e in default_eers.items())
    console.print(
        f"default difficulty {DEFAULT_DIFFICULTY}: far from perfect (test EER >= "
        f"{100 * FAR_FROM_PERFECT_EER:.0f} % for both baselines): {'yes' if far else 'no'} "
        f"({listed})"
    )


if __name__ == "__main__":
    main()
