"""The quick start's distillation method, chosen once from the kd_gain study's results.

The rule: the distillation method with the lowest mean *dev* ACER over its seeds
on the ``intra`` protocol (teacher and scratch rows left out; a tie goes to the
first name); test never decides. The choice is data inside the package
(``src/fasdistill/recipes/quickstart_method.json``), so an installed fasdistill
needs no benchmark folder; tests/test_quickstart.py recomputes it from the
committed results, so the two cannot drift apart.

    python benchmarks/quickstart_method.py           # rewrite the packaged choice
    python benchmarks/quickstart_method.py --check   # exit 1 if it differs from the results
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fasdistill.quickstart import METHOD_FILE
from fasdistill.utils.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "kd_gain.json"
COMMAND = "fasdistill study kd_gain --out runs/kd_gain"  # what makes RESULTS (same runs)
RULE = (
    "lowest mean dev ACER over seeds on protocol intra among distillation methods "
    "(teacher and scratch excluded; ties by name); test never decides"
)


def choose(results: dict[str, Any], source: str) -> dict[str, Any]:
    """The method choice (with its evidence) from a ``kd_gain.json`` document."""
    dev: dict[str, list[float]] = {}
    for name, run in results["results"].items():
        if name.startswith("intra/") and run["method"] not in ("teacher", "scratch"):
            dev.setdefault(run["method"], []).append(run["dev"]["acer"])
    if not dev:
        raise SystemExit(f"{source}: no intra students to choose from")
    method = min(dev, key=lambda m: (sum(dev[m]) / len(dev[m]), m))
    return {
        "method": method,
        "recipe": f"distill_{method}",
        "dev_acer": sum(dev[method]) / len(dev[method]),
        "seeds": len(dev[method]),
        "rule": RULE,
        "results": source,
        "results_commit": results.get("git_commit"),
        "command": COMMAND,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    choice = choose(json.loads(RESULTS.read_text()), str(RESULTS.relative_to(REPO)))
    if args.check:
        packaged = json.loads(METHOD_FILE.read_text())
        if packaged != choice:
            print(f"{METHOD_FILE} differs from {RESULTS}: run without --check", file=sys.stderr)
            return 1
        print(f"{METHOD_FILE}: {choice['method']}, as the results say")
        return 0
    atomic_write_json(METHOD_FILE, choice)
    print(f"{METHOD_FILE}: {choice['method']} (mean dev ACER {100 * choice['dev_acer']:.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
