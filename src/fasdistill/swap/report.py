"""SWAP reports: ``swap.json`` (every figure with its provenance), ``swap.md``, ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasdistill.utils.atomic import atomic_write_json, atomic_write_text


def _ci(entry: dict[str, Any], key: str, scale: float = 100.0, digits: int = 1) -> str:
    value = f"{scale * entry[key]:.{digits}f}"
    if f"{key}_ci" in entry:
        lo, hi = entry[f"{key}_ci"]
        value += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
    return value


def markdown(swap: dict[str, Any]) -> str:
    """The SWAP table (reference first, ratios to it), per-runtime latency and energy."""
    options = swap["options"]
    runtimes = options["runtimes"]
    first = runtimes[0]
    cpu = swap["machine"]["cpu"]
    versions = ", ".join(f"{k} {v}" for k, v in swap["machine"]["versions"].items())
    conf = round(100 * options["confidence"])
    lines = [
        "# SWAP report",
        "",
        f"Reference: **{swap['reference']}**. Data: `{swap['index']}` (test split; thresholds "
        "fixed on dev). "
        f"Speed and energy: {first}, batch 1, {options['threads']} thread(s), on {cpu['model']} "
        f"({', '.join(cpu['isa']) or 'no listed ISA extensions'}; {versions}).",
        "",
        f"| model | params | MACs | test ACER % | retention % [{conf} % CI] | AUC | "
        f"latency ms | speed-up | energy / inference | SWAP score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        acc = m["test"]
        ratios = m["vs_reference"]
        power = m["power"][first]
        lines.append(
            f"| {m['label']} ({m['model']}{', third-party' if m['role'] == 'external' else ''}) "
            f"| {m['weight']['params'] / 1e6:.3f} M "
            f"| {m['weight']['macs'] / 1e6:.1f} M | {100 * acc['acer']:.2f} "
            f"| {_ci(ratios['accuracy'], 'retention')} | {acc['auc']:.4f} "
            f"| {m['latency'][first]['batch1']['median_ms']:.3f} "
            f"| {ratios[first]['speedup']:.1f}x "
            f"| {1e3 * power['energy_j']:.3f} mJ ({power['energy_source']}) "
            f"| {m['swap_score']:.2f} |"
        )
    lines += [
        "",
        f"Pareto front (test ACER, latency, energy, parameters): {', '.join(swap['pareto'])}.",
        "",
        "## Speed per runtime (median / p95 / p99 ms; interleaved, one process)",
        "",
        f"| model | runtime | batch 1 | FPS | batch {options['batch']} | FPS |",
        "|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        for runtime in m["latency"]:
            lat = m["latency"][runtime]
            one = lat["batch1"]
            many = lat.get(f"batch{options['batch']}", one)
            lines.append(
                f"| {m['label']} | {runtime} | {one['median_ms']:.3f} / {one['p95_ms']:.3f} / "
                f"{one['p99_ms']:.3f} | {one['fps']:.0f} | {many['median_ms']:.3f} / "
                f"{many['p95_ms']:.3f} / {many['p99_ms']:.3f} | {many['fps']:.0f} |"
            )
    lines += [
        "",
        "## Accuracy per runtime (test, each artifact at its own dev threshold)",
        "",
        "| model | runtime | ACER % | APCER % | BPCER % | HTER % | AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        for runtime, acc in m["accuracy"].items():
            t = acc["test"]
            lines.append(
                f"| {m['label']} | {runtime} | {100 * t['acer']:.2f} | {100 * t['apcer']:.2f} "
                f"| {100 * t['bpcer']:.2f} | {100 * t['hter']:.2f} | {t['auc']:.4f} |"
            )
    profile = options["profile"]
    lines += [
        "",
        "## Power (energy per batch-1 inference)",
        "",
        "Every figure names how it was obtained. *Modelled (compute)*: MACs x "
        f"{profile['fp32_mac_pj']} pJ (fp32) or {profile['int8_mac_pj']} pJ (int8) + DRAM bytes "
        f"x {profile['dram_pj_per_byte']} pJ ({profile['name']}). *Modelled (active power)*: "
        f"{profile['active_watts']} W x measured latency. Battery: 1 % of 4,000 mAh at 3.85 V.",
        "",
        "| model | runtime | measured | modelled (compute) | modelled (active power) | "
        "inferences per 1 % battery |",
        "|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        for runtime in m["power"]:
            p = m["power"][runtime]
            measured = (
                "n/a (no counters)"
                if p["measured_j"] is None
                else f"{1e3 * p['measured_j']:.3f} mJ"
            )
            lines.append(
                f"| {m['label']} | {runtime} | {measured} | {1e6 * p['modelled_compute_j']:.1f} µJ "
                f"| {1e3 * p['modelled_active_j']:.3f} mJ "
                f"| {p['inferences_per_battery_percent']:,.0f} ({p['energy_source']}) |"
            )
    return "\n".join(lines) + "\n"


def write_reports(swap: dict[str, Any], out: Path) -> list[Path]:
    """``swap.json`` and ``swap.md`` into ``out``, each written atomically."""
    from fasdistill.swap.html import write_html

    return [
        atomic_write_json(out / "swap.json", swap),
        atomic_write_text(out / "swap.md", markdown(swap)),
        write_html(swap, out),
    ]
