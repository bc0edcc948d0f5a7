"""``fasdistill search``: a student searched for a runtime's latency budget, chosen on dev."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search a student for a latency/parameter budget on a runtime: latency table, "
        "distillation proxy, Pareto front, final models, SWAP report",
        description="Search the SearchNet family (width, depth, kernel, expansion, dense or "
        "depthwise blocks per stage, and input side) for the best student within a budget "
        "on one runtime and thread count. Latency comes from a per-block table timed on that "
        "runtime and checked against whole models; candidates are ranked by a short "
        "distillation on dev, whose rank correlation with full-budget dev ACER is measured "
        "(a proxy that does not rank is replaced). The Pareto front (dev ACER against "
        "latency) is trained in full with every seed; the choice is made on dev, then test "
        "is read. Resumable: rerun the same command. Writes OUT/result.json, OUT/search.md "
        "and OUT/swap/report.html.",
    )
    # required for a search; --show prints the settings without them
    p.add_argument("--data", type=Path, help="a prepared crop index folder (required)")
    p.add_argument("--teacher", type=Path, help="the teacher's best.pt (required)")
    p.add_argument("--out", type=Path, default=Path("runs/search"), help="the search folder")
    p.add_argument(
        "--runtime",
        help="the runtime to be fast on (default onnx; any swap runtime but pytorch-cuda)",
    )
    p.add_argument("--threads", type=int, help="threads of that runtime (default 1)")
    p.add_argument("--max-latency-ms", type=float, help="latency budget per face (batch 1)")
    p.add_argument("--max-params", help="parameter budget, e.g. 1M or 500k")
    p.add_argument(
        "--config", type=Path, help="a YAML file of search settings (see docs/search.md)"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a setting, e.g. --set candidates=24 --set space.resolutions=[48,64]",
    )
    p.add_argument(
        "--latency-table",
        type=Path,
        help="a latency table to use and grow (default OUT/latency/RUNTIME-Nt.json); searches "
        "on one machine, runtime and thread count can share one",
    )
    p.add_argument("--parallel", type=int, default=1, help="training runs at a time (default 1)")
    p.add_argument(
        "--swap-runtimes",
        help="the SWAP report's runtimes, comma-separated (default: the search's runtime)",
    )
    p.add_argument("--no-swap", action="store_true", help="skip the SWAP report")
    p.add_argument("--show", action="store_true", help="print the settings as YAML and stop")
    p.set_defaults(handler=_run_search, stage="search")


def _run_search(args: argparse.Namespace) -> int:
    import sys

    import yaml

    from fasdistill.errors import InputError
    from fasdistill.search.run import run_search
    from fasdistill.search.settings import load_search_config, parse_count

    config = load_search_config(
        args.config,
        args.overrides,
        runtime=args.runtime,
        threads=args.threads,
        max_latency_ms=args.max_latency_ms,
        max_params=parse_count(args.max_params) if args.max_params else None,
    )
    if args.show:
        sys.stdout.write(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        return 0
    missing = [f"--{k}" for k in ("data", "teacher") if getattr(args, k) is None]
    if missing:
        raise InputError(f"{' and '.join(missing)} required (only --show runs without them)")
    runtimes = (
        None
        if args.no_swap
        else tuple(r.strip() for r in (args.swap_runtimes or "").split(",") if r.strip())
    )
    result = run_search(
        config, args.data, args.teacher, args.out, args.parallel, runtimes, table=args.latency_table
    )
    print((args.out / "search.md").read_text())
    print(f"chosen: {result['chosen']} (seed {result['chosen_seed']}): {result['checkpoint']}")
    return 0
