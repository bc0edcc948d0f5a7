"""What a search writes for people: ``search.md`` and the SWAP report of its choice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Log = Callable[[str], None]


def write_swap(
    out: Path,
    teacher: Path,
    data: Path,
    result: dict[str, Any],
    runtimes: tuple[str, ...],
    threads: int,
    log: Log,
) -> None:
    """The teacher against the chosen student (its best dev seed): ``OUT/swap/report.html``."""
    from fasdistill.swap.measure import SwapOptions, run_swap
    from fasdistill.swap.report import write_reports

    folder = out / "swap"
    if (folder / "report.html").exists():
        return
    options = SwapOptions(runtimes=tuple(dict.fromkeys(runtimes)), threads=threads)
    label = f"searched/{result['chosen']}/seed{result['chosen_seed']}"
    swap = run_swap(
        [teacher, Path(result["checkpoint"])],
        data,
        folder,
        options,
        log=log,
        labels=["teacher", label],
    )
    write_reports(swap, folder)
    log(f"SWAP report: {folder / 'report.html'}")


def rho_text(value: float | None) -> str:
    """A rank correlation for a table (``n/a``: one side was constant)."""
    return "n/a" if value is None else f"{value:+.2f}"


def markdown(result: dict[str, Any]) -> str:
    """The search's summary: the latency check, the proxy check, the front and the choice."""
    check, proxy = result["latency_check"], result["proxy"]
    last = proxy["history"][-1]
    teacher = result["test"]["teacher"]["test"]["acer"]
    lines = [
        f"# Student search on {result['runtime']} ({result['threads']} thread(s))",
        "",
        f"Budget: {result['budget']}. Chosen on dev: **{result['chosen']}** "
        f"(seed {result['chosen_seed']}).",
        "",
        f"Latency table: median error {100 * check['median_abs_error']:.1f} % "
        f"(max {100 * check['max_abs_error']:.1f} %) on {len(check['models'])} whole models.",
        f"Proxy: {proxy['used']} after {proxy.get('proxy_steps', last.get('proxy_steps'))} "
        f"steps ({'replaced ' + proxy['initial'] if proxy['replaced'] else 'kept'}); "
        f"Spearman with full dev ACER on {last['candidates']} candidates: "
        + ", ".join(f"{m} {rho_text(v)}" for m, v in last["spearman"].items()),
        "",
        "| point | params | MMAC | latency ms | dev ACER (mean) | test ACER (mean ± std) "
        "| retention |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["front"]:
        t = result["test"]["models"][r["point"]]
        lines.append(
            f"| {r['point']} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} | "
            f"{r['latency_ms']:.3f} | {100 * r['dev_acer_mean']:.2f} % | "
            f"{100 * t['test_acer_mean']:.2f} ± {100 * t['test_acer_std']:.2f} % | "
            f"{100 * t['retention_mean']:.1f} % |"
        )
    lines += [
        "",
        f"Teacher test ACER: {100 * teacher:.2f} %. Test figures were read after the choice.",
        "",
    ]
    return "\n".join(lines)
