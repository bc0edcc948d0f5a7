"""SWAP reports: ``swap.json`` (every figure with its provenance), ``swap.md``, ``report.html``.

A cell that was left out (``m["missing"][runtime]``) is shown where its numbers
would be, with the reason; the terminal gets the ratios table and a closing line.
A cascade's latency is marked ``mean`` and explained under *Cascades*.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fasdistill.swap.html import write_html
from fasdistill.swap.sensors import sensor_lines
from fasdistill.swap.summary import (
    DASH,
    RATIOS_LEGEND,
    accuracy_notes,
    cascade_notes,
    cell_missing,
    latency_text,
    left_out_lines,
    omitted_lines,
    ratio_rows,
    retention_text,
    speedup_text,
)
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def markdown(swap: dict[str, Any]) -> str:
    """The SWAP table (reference first, ratios to it), per-runtime latency and energy."""
    options = swap["options"]
    runtimes = options["runtimes"]
    first = swap.get("headline_runtime", runtimes[0])
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
    ]
    if swap.get("headline_note"):
        lines += ["", f"Note: {swap['headline_note']}."]
    left_out = left_out_lines(swap)
    if left_out:
        lines += ["", f"**Left out ({len(left_out)}):** these cells have no figures."]
        lines += [f"- {line}" for line in left_out]
    lines += [
        "",
        f"| model | params | MACs | test ACER % | retention % [{conf} % CI] | AUC | "
        f"latency ms | speed-up | energy / inference | SWAP score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        acc = m["test"]
        ratios = m["vs_reference"]
        missing = cell_missing(m, first)
        if missing is None:
            power = m["power"].get(first)
            latency = latency_text(m, first)
            energy = (
                DASH
                if power is None
                else f"{1e3 * power['energy_j']:.3f} mJ ({power['energy_source']})"
            )
        else:
            latency, energy = missing, DASH
        score = m["swap_score"]
        lines.append(
            f"| {m['label']} ({m['model']}{', third-party' if m['role'] == 'external' else ''}) "
            f"| {m['weight']['params'] / 1e6:.3f} M "
            f"| {m['weight']['macs'] / 1e6:.1f} M | {100 * acc['acer']:.2f} "
            f"| {retention_text(ratios['accuracy'])} | {acc['auc']:.4f} "
            f"| {latency} | {speedup_text(m, first)} | {energy} "
            f"| {DASH + ' (' + m['swap_score_note'] + ')' if score is None else f'{score:.2f}'} |"
        )
    cascades = cascade_notes(swap)
    if cascades:
        lines += ["", "Cascades (latency marked *mean*):", *(f"- {line}" for line in cascades)]
    sensors = sensor_lines(swap)
    if sensors:
        lines += ["", "Sensors beyond the RGB camera:", *(f"- {line}" for line in sensors)]
    lines += [
        "",
        f"Pareto front (test ACER, latency, energy, parameters): {', '.join(swap['pareto'])}.",
        "",
        "## Ratios to the reference",
        "",
        RATIOS_LEGEND,
        "",
        *_table(*ratio_rows(swap)),
    ]
    omitted = omitted_lines(swap)
    if omitted:
        lines += ["", "Ratios not given:", *(f"- {line}" for line in omitted)]
    notes = accuracy_notes(swap)
    if notes:
        lines += ["", "Accuracy ratios:", *(f"- {line}" for line in notes)]
    lines += _speed_section(swap) + _accuracy_section(swap) + _power_section(swap)
    return "\n".join(lines) + "\n"


def _timing(m: dict[str, Any], lat: dict[str, Any]) -> str:
    """``median / p95 / p99``; a cascade's ``mean X (median Y) / p95 / p99``."""
    first = f"{lat['median_ms']:.3f}"
    if m.get("latency_statistic") == "mean":
        first = f"mean {lat['mean_ms']:.3f} (median {first})"
    return f"{first} / {lat['p95_ms']:.3f} / {lat['p99_ms']:.3f}"


def _runs(lat: dict[str, Any]) -> str:
    return f"{lat['runs']}{' (capped)' if lat.get('capped') else ''}"


def _speed_section(swap: dict[str, Any]) -> list[str]:
    options = swap["options"]
    batch = options["batch"]
    lines = [
        "",
        "## Speed per runtime (median / p95 / p99 ms; interleaved, one process)",
        "",
        f"Each cell ran until {options['latency_runs']} runs and {options['latency_seconds']} s, "
        f"or at most {options.get('latency_max_seconds', DASH)} s per model (capped: stopped by "
        "the time bound first).",
        "",
        f"| model | runtime | batch 1 | FPS | runs | batch {batch} | FPS | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in swap["models"]:
        for runtime in options["runtimes"]:
            missing = m.get("missing", {}).get(runtime)
            if runtime not in m["latency"]:
                if missing:
                    lines.append(f"| {m['label']} | {runtime} | missing: {missing} ||||||")
                continue
            lat = m["latency"][runtime]
            one = lat["batch1"]
            many = lat.get(f"batch{batch}")
            if many is None:
                tail = f"missing: {missing} | | " if missing else f"{DASH} | | "
            else:
                tail = f"{_timing(m, many)} | {many['fps']:.0f} | {_runs(many)}"
            lines.append(
                f"| {m['label']} | {runtime} | {_timing(m, one)} | {one['fps']:.0f} | {_runs(one)} "
                f"| {tail} |"
            )
    return lines


def _accuracy_section(swap: dict[str, Any]) -> list[str]:
    lines = [
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
        for runtime in m.get("missing", {}):
            if runtime not in m["accuracy"]:
                lines.append(f"| {m['label']} | {runtime} | left out (see above) |||||")
    return lines


def _power_section(swap: dict[str, Any]) -> list[str]:
    profile = swap["options"]["profile"]
    lines = [
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
        for runtime in swap["options"]["runtimes"]:
            p = m["power"].get(runtime)
            if p is None:
                if runtime in m.get("missing", {}):
                    lines.append(f"| {m['label']} | {runtime} | left out (see above) ||||")
                continue
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
    return lines


def write_reports(swap: dict[str, Any], out: Path) -> list[Path]:
    """``swap.json``, ``swap.md`` and ``report.html`` into ``out``, each written atomically."""
    return [
        atomic_write_json(out / "swap.json", swap),
        atomic_write_text(out / "swap.md", markdown(swap)),
        write_html(swap, out),
    ]
