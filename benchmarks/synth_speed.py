"""How fast does SynthSpoof render? Images per second with 1 worker and with all cores.

Target (issue #3): the quick-start set, about 2,000 face images at 128 px, in
under 60 s on a 2-core machine using both cores.

    python benchmarks/synth_speed.py [--subjects 125] [--size 128] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from rich.console import Console
from rich.table import Table

from fasdistill.data.synth import SynthConfig, generate
from fasdistill.utils.workers import default_workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=125, help="subjects per domain")
    parser.add_argument("--samples", type=int, default=1, help="samples per class per subject")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--workers", default=f"1,{default_workers()}", help="comma-separated worker counts to time"
    )
    args = parser.parse_args()
    config = SynthConfig(subjects=args.subjects, samples=args.samples, size=args.size)
    n = config.subjects * len(config.domains) * (1 + len(config.species)) * config.samples
    table = Table(
        title=f"SynthSpoof rendering: {n:,} images at {args.size} px, 4 domains",
        title_justify="left",
    )
    for column in ("workers", "seconds", "images/s", "under 60 s"):
        table.add_column(column, justify="right")
    for workers in sorted({int(w) for w in args.workers.split(",")}):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            generate(f"{tmp}/set", config, workers=workers)
            seconds = time.perf_counter() - start
        table.add_row(
            str(workers), f"{seconds:.1f}", f"{n / seconds:.1f}", "yes" if seconds < 60 else "no"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
