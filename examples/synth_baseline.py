"""Score a SynthSpoof set with a hand-crafted baseline and write dev/test score files.

Trains the baseline on the set's ``train`` split (``intra`` protocol) and writes
``OUT/dev.csv`` and ``OUT/test.csv`` for ``fasdistill metrics``.

    python examples/synth_baseline.py SYNTH_DIR OUT_DIR [--features colour-hist|fft-energy]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fasdistill.baselines import FEATURES, fit_and_score, load_crops
from fasdistill.data.synth import iter_samples
from fasdistill.metrics.scores import write_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("synth_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--features", choices=sorted(FEATURES), default="fft-energy")
    args = parser.parse_args()
    rows = list(iter_samples(args.synth_dir))
    scored = fit_and_score(rows, load_crops(args.synth_dir, rows), args.features)
    for split, scores in scored.items():
        path = write_scores(args.out_dir / f"{split}.csv", scores)
        print(f"wrote {path} ({len(scores)} {args.features} scores)")


if __name__ == "__main__":
    main()
