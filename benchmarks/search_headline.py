"""The search headline: searched students against hand-made ones, per runtime, and the cascade.

Reads finished searches (``fasdistill search``, one per protocol) and the hand-made
students of the ``search_handmade`` study (same teacher, input size, recipe and step
budget, 3 seeds). Per protocol, one SWAP run measures the teacher, the four hand-made
students and the search's final front (each at its best *dev* seed) on ONNX Runtime
fp32, INT8 and ncnn (when installed), every model interleaved in one loop per
runtime. Accuracy is the mean over seeds (dev and test, threshold fixed on dev).
Then: whether the front dominates every hand-made student on every runtime, the
issue's aims checked against the measured figures, the chosen student's ONNX Runtime
profile (where its time goes), and on the first protocol the cascades of the
chosen student before the teacher and before the best hand-made student, against
each of their members alone, in one more SWAP run.

    fasdistill study search_handmade --out runs/search_handmade --parallel 2 --no-swap
    fasdistill search --data runs/search_handmade/crops_intra \\
        --teacher runs/search_handmade/intra/teacher/checkpoints/best.pt \\
        --config benchmarks/search_headline.yaml --latency-table runs/search/onnx-1t.json \\
        --out runs/search/intra --parallel 2 --no-swap            # and lodo_phone alike
    python benchmarks/search_headline.py --handmade runs/search_handmade \\
        --search intra=runs/search/intra --search lodo_phone=runs/search/lodo_phone \\
        --out runs/search_headline
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from fasdistill.export import ncnn
from fasdistill.swap.measure import run_swap
from fasdistill.swap.options import SwapOptions
from fasdistill.swap.profile import nominal_peak_gflops, profile_onnx
from fasdistill.swap.report import write_reports
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

HANDMADE = ("swapnet", "minifasnet", "mobilenetv3_050", "mobilenetv3_075")
AIMS = {"latency_ms": 0.5, "retention": 0.99, "speedup": 15.0}


def _seed_stats(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean (and std) dev and test ACER over seeds; the best-dev seed (never test)."""
    dev = [r["dev"]["acer"] for r in runs.values()]
    test = [r["test"]["acer"] for r in runs.values()]
    return {
        "seeds": sorted(runs),
        "dev_acer_mean": statistics.fmean(dev),
        "test_acer_mean": statistics.fmean(test),
        "test_acer_std": statistics.pstdev(test),
        "best_dev_seed": min(runs, key=lambda s: (runs[s]["dev"]["acer"], s)),
    }


def handmade_models(study: Path, protocol: str) -> dict[str, dict[str, Any]]:
    """The study's hand-made students on ``protocol``: figures over seeds and a checkpoint."""
    models = {}
    for name in HANDMADE:
        runs = {
            int(p.parent.name.removeprefix("seed")): json.loads(p.read_text())
            for p in sorted((study / protocol / name).glob("seed*/result.json"))
        }
        if not runs:
            sys.exit(f"{study / protocol / name}: no finished seeds; run the search_handmade study")
        stats = _seed_stats(runs)
        seed_dir = study / protocol / name / f"seed{stats['best_dev_seed']}"
        models[name] = stats | {"kind": "hand-made", "checkpoint": seed_dir / "checkpoints/best.pt"}
    return models


def searched_models(search: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The search's final front (figures over seeds, best-dev seed's checkpoint), its result."""
    result = json.loads((search / "result.json").read_text())
    models = {}
    for row in result["front"]:
        point = row["point"]
        runs = {
            int(s): {"dev": v["dev"], "test": v["test"]}
            for s, v in result["test"]["models"][point]["seeds"].items()
        }
        stats = _seed_stats(runs)
        folder = search / "full" / (point.replace("@", "_") + "px")
        models[f"searched/{point}"] = stats | {
            "kind": "searched",
            "chosen": point == result["chosen"],
            "retention_mean": result["test"]["models"][point]["retention_mean"],
            "checkpoint": folder / f"seed{stats['best_dev_seed']}" / "checkpoints/best.pt",
        }
    return models, result


def latency(entry: dict[str, Any], runtime: str) -> float | None:
    """Batch-1 latency (ms): the median, or for a cascade the mean over real test faces."""
    cell = entry["latency"].get(runtime, {}).get("batch1")
    if cell is None:
        return None
    return cell["mean_ms"] if entry.get("latency_statistic") == "mean" else cell["median_ms"]


def dominance(models: dict[str, dict], runtimes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per runtime and hand-made student: the searched points at least as fast and as accurate.

    Accuracy is the mean test ACER over seeds, the figure the tables report (``by``), and
    the mean dev ACER (``by_dev``); ties count as dominating (no worse on both).
    """
    searched = {k: m for k, m in models.items() if m["kind"] == "searched"}

    def beating(hand: dict[str, Any], runtime: str, figure: str) -> list[str] | None:
        h_ms = latency(hand, runtime)
        if h_ms is None:
            return None  # the hand-made student was not measured there (the reason is listed)
        return [
            k
            for k, s in searched.items()
            if (s_ms := latency(s, runtime)) is not None
            and s_ms <= h_ms
            and s[figure] <= hand[figure]
        ]

    return [
        {
            "runtime": runtime,
            "handmade": name,
            "by": beating(hand, runtime, "test_acer_mean"),
            "by_dev": beating(hand, runtime, "dev_acer_mean"),
        }
        for runtime in runtimes
        for name, hand in models.items()
        if hand["kind"] == "hand-made"
    ]


def measure_protocol(
    args: argparse.Namespace, protocol: str, search: Path, runtimes: tuple[str, ...]
) -> dict[str, Any]:
    settings = json.loads((search / "search.json").read_text())
    teacher, data = Path(settings["teacher"]), Path(settings["data"])
    searched, result = searched_models(search)
    models: dict[str, dict[str, Any]] = {
        "teacher": {"kind": "teacher", "checkpoint": teacher, **result["test"]["teacher"]},
        **handmade_models(args.handmade, protocol),
        **searched,
    }
    out = args.out / protocol
    swap = run_swap(
        [Path(m["checkpoint"]) for m in models.values()],
        data,
        out / "swap",
        SwapOptions(runtimes=runtimes, threads=args.threads, bootstrap=0),
        labels=list(models),
    )
    write_reports(swap, out / "swap")
    for entry in swap["models"]:
        models[entry["label"]] |= {
            "latency": entry["latency"],
            "params": entry["weight"]["params"],
            "macs": entry["weight"]["macs"],
            "input_size": entry["input_size"],
        }
    t_ms = {r: latency(models["teacher"], r) for r in runtimes}
    for m in models.values():
        m["speedup"] = {
            r: t_ms[r] / ms for r in runtimes if t_ms[r] and (ms := latency(m, r)) is not None
        }
        m["checkpoint"] = str(m["checkpoint"])
    chosen = next(k for k, m in models.items() if m.get("chosen"))
    return {
        "search": str(search),
        "teacher_test_acer": result["test"]["teacher"]["test"]["acer"],
        "latency_check": result["latency_check"],
        "proxy": result["proxy"],
        "models": models,
        "chosen": chosen,
        "left_out": swap["left_out"],
    }


def aims(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's aims for the chosen student, measured: met, or missed by how much."""
    m = protocol["models"][protocol["chosen"]]
    got = {
        "latency_ms": latency(m, "onnx"),
        "retention": m["retention_mean"],
        "speedup": m["speedup"].get("onnx"),
    }
    rows = []
    for name, aim in AIMS.items():
        value = got[name]
        met = value is not None and (value <= aim if name == "latency_ms" else value >= aim)
        rows.append({"aim": name, "target": aim, "measured": value, "met": met})
    return rows


def cascades(args: argparse.Namespace, protocol: str, measured: dict[str, Any]) -> dict:
    """The chosen student before the teacher and before the best hand-made student (dev).

    The members are the ONNX files the protocol's SWAP run exported (and checked against
    PyTorch); each band is chosen on dev by ``build_cascade``.
    """
    from fasdistill.infer.cascade import CASCADE_FILE, build_cascade

    models = measured["models"]
    data = json.loads((Path(measured["search"]) / "search.json").read_text())["data"]
    hand = min(
        (k for k, m in models.items() if m["kind"] == "hand-made"),
        key=lambda k: models[k]["dev_acer_mean"],
    )
    small = measured["chosen"]
    folder = args.out / protocol / "cascade"
    artifacts = args.out / protocol / "swap" / "artifacts"
    built = []
    for large in ("teacher", hand):
        target = folder / f"cascade_{large}"
        if not (target / CASCADE_FILE).exists():
            build_cascade(artifacts / small / "model.onnx", artifacts / large / "model.onnx",
                          data, target, threads=args.threads, log=print)  # fmt: skip
        built.append(target / CASCADE_FILE)
    labels = ["teacher", small, hand, "cascade_teacher", f"cascade_{hand}"]
    paths = [Path(models[k]["checkpoint"]) for k in ("teacher", small, hand)] + built
    swap = run_swap(
        paths,
        Path(data),
        folder / "swap",
        SwapOptions(runtimes=("onnx",), threads=args.threads, bootstrap=0),
        labels=labels,
    )
    write_reports(swap, folder / "swap")
    rows = []
    for entry in swap["models"]:
        cascade = entry.get("cascade", {})
        rows.append(
            {
                "label": entry["label"],
                "latency_ms": latency(entry, "onnx"),
                "latency_statistic": entry.get("latency_statistic", "median"),
                "test_acer": entry["test"]["acer"],
                "share_passed_on": cascade.get("scored", {}).get("test", {}).get("share_passed_on"),
            }
        )
    return {"small": small, "large": ["teacher", hand], "rows": rows}


def profile_chosen(args: argparse.Namespace, protocol: str, measured: dict) -> dict[str, Any]:
    """Where the chosen student's time goes in ONNX Runtime, against the core's peak."""
    chosen = measured["chosen"]
    entry = measured["models"][chosen]
    onnx = args.out / protocol / "swap" / "artifacts" / chosen / "model.onnx"
    profile = profile_onnx(onnx, entry["input_size"], args.threads, args.profile_runs)
    machine = json.loads((args.out / protocol / "swap" / "swap.json").read_text())["machine"]
    return profile | {"peak": nominal_peak_gflops(machine["cpu"], args.threads)}


def table_checks(args: argparse.Namespace, runtimes: tuple[str, ...]) -> dict[str, Any]:
    """Per runtime: a block table for ``--lut-archs`` architectures of the default space
    (seeded), fitted on ``lut_fit`` of them and checked on ``lut_check`` others timed whole.
    """
    import random

    from fasdistill.search.latency import LatencyTable, check_table, fit_table
    from fasdistill.search.run import _spread
    from fasdistill.search.settings import SearchConfig

    config = SearchConfig.model_validate({})
    rng = random.Random(args.lut_seed)
    archs = list(dict.fromkeys(config.space.sample(rng) for _ in range(args.lut_archs)))
    checks = {}
    for runtime in runtimes:
        table = LatencyTable(args.out / "tables" / f"{runtime}-{args.threads}t.json",
                             runtime, args.threads)  # fmt: skip
        try:
            table.build(archs, 2, runs=config.lut_runs)
            ordered = sorted(archs, key=lambda a: table.raw_estimate(*a, 2))
            picks = _spread(ordered, config.lut_fit + config.lut_check)
            fit = picks[::2][: config.lut_fit]
            if not table.fit["models"]:
                fit_table(table, fit, 2, config.timing_runs, config.timing_seconds)
            check = check_table(table, [a for a in picks if a not in fit], 2,
                                config.timing_runs, config.timing_seconds)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - a converter raises many types; one runtime failing leaves the others measured
            checks[runtime] = {"failed": f"{type(error).__name__}: {error}"}
            print(f"latency table {runtime}: failed ({checks[runtime]['failed']})")
            continue
        checks[runtime] = check | {"entries": len(table.entries), "archs": len(archs)}
        print(f"latency table {runtime}: median error {100 * check['median_abs_error']:.1f} %")
    return checks


def _table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table and the blank line after it."""
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    return [*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def markdown(headline: dict[str, Any], runtimes: tuple[str, ...]) -> str:
    lines = ["# Searched students against hand-made ones", ""]
    for protocol, p in headline["protocols"].items():
        check, proxy = p["latency_check"], p["proxy"]
        last = proxy["history"][-1]["spearman"]
        lines += [
            f"## {protocol}",
            "",
            f"Teacher test ACER {100 * p['teacher_test_acer']:.2f} %. Latency table: median "
            f"error {100 * check['median_abs_error']:.1f} % (max "
            f"{100 * check['max_abs_error']:.1f} %) on {len(check['models'])} whole models. "
            f"Proxy used: {proxy['used']} after {proxy.get('proxy_steps')} steps "
            f"({'ranks' if proxy['ranks'] else 'does not rank'}: "
            + ", ".join(f"{m} {'n/a' if v is None else f'{v:+.2f}'}" for m, v in last.items())
            + f" on {proxy['history'][-1]['candidates']} candidates).",
            "",
            "| model | params | MMAC | px | seeds | dev ACER (mean) | test ACER (mean ± std) | "
            + " | ".join(f"{r} ms" for r in runtimes)
            + " | speed-up (onnx) |",
            "|---" * (7 + len(runtimes) + 1) + "|",
        ]
        for name, m in p["models"].items():
            mark = " **(chosen)**" if m.get("chosen") else ""
            dev = m.get("dev_acer_mean", m.get("dev", {}).get("acer"))
            test = (
                f"{100 * m['test_acer_mean']:.2f} ± {100 * m['test_acer_std']:.2f} %"
                if "test_acer_mean" in m
                else f"{100 * m['test']['acer']:.2f} %"
            )
            speed = m["speedup"].get("onnx")
            lines.append(
                f"| {name}{mark} | {m['params'] / 1e6:.3f} M | {m['macs'] / 1e6:.1f} | "
                f"{m['input_size']} | {len(m.get('seeds', [0]))} | {100 * dev:.2f} % | {test} | "
                + " | ".join(_ms(latency(m, r)) for r in runtimes)
                + f" | {'—' if speed is None else f'{speed:.1f}x'} |"
            )
        lines += ["", "Dominance (a searched point at least as fast and as accurate, test ACER "
                  "mean; dev ACER mean in brackets):", "",
                  "| runtime | " + " | ".join(HANDMADE) + " |",
                  "|---" * (len(HANDMADE) + 1) + "|"]  # fmt: skip
        for runtime in runtimes:
            cells = []
            for name in HANDMADE:
                row = next(
                    d for d in p["dominance"] if d["runtime"] == runtime and d["handmade"] == name
                )
                if row["by"] is None:
                    cells.append("not measured")
                    continue
                test = "yes" if row["by"] else "no"
                cells.append(f"{test} ({'yes' if row['by_dev'] else 'no'})")
            lines.append(f"| {runtime} | " + " | ".join(cells) + " |")
        lines += ["", "| aim | target | measured | met |", "|---|---|---|---|"]
        for a in p["aims"]:
            value = a["measured"]
            text = "—" if value is None else f"{value:.3f}"
            lines.append(f"| {a['aim']} | {a['target']} | {text} | {'yes' if a['met'] else 'no'} |")
        if p["left_out"]:
            why = [f"{x['model']} in {x['runtime']}: {x['reason']}" for x in p["left_out"]]
            lines += ["", "Left out: " + "; ".join(why)]
        lines.append("")
    tables = headline.get("tables")
    if tables:
        lines += [
            "Latency tables per runtime (the default space, 1 thread; each fitted on 6 "
            "models and checked on 8 others timed whole):",
            "",
            *_table(
                ["runtime", "entries", "median error", "max error"],
                [
                    [r, t["entries"], f"{100 * t['median_abs_error']:.1f} %",
                     f"{100 * t['max_abs_error']:.1f} %"] if "failed" not in t
                    else [r, f"failed: {t['failed']}", "", ""]
                    for r, t in tables.items()
                ],
            ),
        ]  # fmt: skip
    prof = headline.get("profile")
    if prof:
        peak = prof["peak"]
        lines += [
            f"Chosen student in ONNX Runtime ({headline['profile_protocol']}): "
            f"{prof['kernel_ms']:.3f} ms of kernels, {prof['gflops']:.1f} GFLOP/s against a "
            f"nominal {peak['gflops']:.1f} ({peak['method']}).",
            "",
            *_table(
                ["operator", "ms", "share", "GFLOP/s"],
                [
                    [o["op"], f"{o['ms']:.3f}", f"{100 * o['share']:.1f} %",
                     "" if o["gflops"] is None else f"{o['gflops']:.1f}"]
                    for o in prof["ops"]
                ],
            ),
        ]  # fmt: skip
    cascade = headline.get("cascade")
    if cascade:
        lines += [
            "Cascades (ONNX Runtime fp32, 1 thread; a cascade's latency is its mean over the "
            "test faces, a model's the median):",
            "",
            *_table(
                ["model", "latency ms", "test ACER", "share passed on"],
                [
                    [r["label"], _ms(r["latency_ms"]), f"{100 * r['test_acer']:.2f} %",
                     "" if r["share_passed_on"] is None else f"{100 * r['share_passed_on']:.1f} %"]
                    for r in cascade["rows"]
                ],
            ),
        ]  # fmt: skip
    return "\n".join(lines)


def _kept(path: Path, make: Any) -> Any:
    """A finished stage's record is read back: a rerun after a failure resumes there."""
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    atomic_write_json(path, value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handmade", type=Path, default=Path("runs/search_handmade"))
    parser.add_argument("--search", action="append", required=True, help="PROTOCOL=SEARCH_DIR")
    parser.add_argument("--out", type=Path, default=Path("runs/search_headline"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile-runs", type=int, default=500)
    parser.add_argument("--lut-archs", type=int, default=20, help="0: no per-runtime check")
    parser.add_argument("--lut-seed", type=int, default=1)
    args = parser.parse_args()
    searches = dict(s.split("=", 1) for s in args.search)
    runtimes = ("onnx", "onnx-int8") + (("ncnn",) if ncnn.available() else ())
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    headline: dict[str, Any] = {"runtimes": list(runtimes), "protocols": {}}
    for protocol, folder in searches.items():

        def make(p: str = protocol, f: str = folder) -> dict[str, Any]:
            return measure_protocol(args, p, Path(f), runtimes)

        measured = _kept(args.out / protocol / "measured.json", make)
        measured["dominance"] = dominance(measured["models"], runtimes)
        measured["aims"] = aims(measured)
        headline["protocols"][protocol] = measured
    first = next(iter(searches))
    chosen = headline["protocols"][first]
    headline["profile_protocol"] = first
    headline["profile"] = _kept(args.out / first / "profile.json",
                                lambda: profile_chosen(args, first, chosen))  # fmt: skip
    headline["cascade"] = _kept(args.out / first / "cascade.json",
                                lambda: cascades(args, first, chosen))  # fmt: skip
    if args.lut_archs:
        headline["tables"] = _kept(args.out / "tables.json", lambda: table_checks(args, runtimes))
    atomic_write_json(args.out / "search_headline.json", headline)
    text = markdown(headline, runtimes)
    atomic_write_text(args.out / "search_headline.md", text)
    print(text)


if __name__ == "__main__":
    main()
