"""Write simulated dev/test score files for trying `fasdistill metrics`.

The scores come from a subject-clustered Gaussian model
(`fasdistill.metrics.simulate`), not from any model or data: they exercise the
evaluation, they measure nothing.

    python examples/simulated_scores.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from fasdistill.metrics.scores import write_scores
from fasdistill.metrics.simulate import simulate_scores


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    dev = write_scores(
        out / "dev.csv", simulate_scores(n_subjects=20, frames=8, seed=1, prefix="dev_")
    )
    test = write_scores(
        out / "test.csv", simulate_scores(n_subjects=30, frames=8, seed=2, prefix="test_")
    )
    print(f"wrote simulated score files {dev} and {test}")


if __name__ == "__main__":
    main()
