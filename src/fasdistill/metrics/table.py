"""An evaluation report as a table for the terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.table import Table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}"


def _interval(ci: dict[str, Any] | None, key: str) -> str:
    if not ci or ci.get(key) is None:
        return ""
    lo, hi = ci[key]
    return f" [{100 * lo:.2f}, {100 * hi:.2f}]"


def metrics_table(report: dict[str, Any]) -> Table:
    """The dev/test metrics of an evaluation report as a rich table (percent)."""
    splits = [s for s in ("dev", "test") if s in report]
    table = Table(
        title=f"PAD metrics (%), {report['level']} level, threshold {report['threshold']:.6g} "
        f"by {report['criterion']} on dev",
        title_justify="left",
    )
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        table.add_row(label, *(get(report[s]) for s in splits))

    row("samples (bona fide / attack)", lambda m: f"{m['n_bonafide']} / {m['n_attack']}")
    species = sorted({p for s in splits for p in report[s]["apcer_per_pai"]})
    for name in species:
        row(f"  APCER {name}", lambda m, n=name: _percent(m["apcer_per_pai"].get(n)))
    row("APCER (worst species)", lambda m: f"{_percent(m['apcer'])} ({m['apcer_worst_pai']})")
    row("APCER pooled", lambda m: _percent(m["apcer_pooled"]))
    row("BPCER", lambda m: _percent(m["bpcer"]) + _interval(m.get("ci"), "bpcer"))
    row("ACER", lambda m: _percent(m["acer"]) + _interval(m.get("ci"), "acer"))
    row("HTER", lambda m: _percent(m["hter"]) + _interval(m.get("ci"), "hter"))
    row(
        "EER (worst species / pooled)",
        lambda m: f"{_percent(m['eer'])} / {_percent(m['eer_pooled'])}",
    )
    row("AUC", lambda m: f"{100 * m['auc']:.3f}")
    for key in report[splits[0]]["tpr_at_fpr"]:
        row(f"TPR @ FPR={float(key):.1%}", lambda m, k=key: _percent(m["tpr_at_fpr"][k]))
    return table
