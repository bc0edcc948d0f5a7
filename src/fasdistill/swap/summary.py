"""The text of SWAP cells shared by ``swap.md``, ``report.html`` and the terminal.

A cell left out (``m["missing"][runtime]``) reads as its reason; a ratio that needs
it reads as a dash, and the closing line counts and names every such cell. A
cascade's latency reads ``mean``: its speed figure is the mean over real test faces.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

from fasdistill.swap.ratios import best_ms, speed_ms, statistic

DASH = "–"


def retention_text(entry: dict[str, Any], key: str = "retention", digits: int = 1) -> str:
    """``98.3 [94.0, 102.9]`` in per cent; ``undefined`` / ``[no interval]`` where it has none."""
    value = entry.get(key)
    if value is None:
        return "undefined"
    text = f"{100 * value:.{digits}f}"
    if f"{key}_ci" in entry:
        ci = entry[f"{key}_ci"]
        text += " [no interval]" if ci is None else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def cell_missing(m: dict[str, Any], runtime: str) -> str | None:
    """Why model ``m`` has no figure in ``runtime``, or None when it has one."""
    if runtime in m.get("missing", {}) and runtime not in m["latency"]:
        return f"missing: {m['missing'][runtime]}"
    if runtime not in m["latency"]:
        return m.get("not_run", {}).get(runtime, "not run")
    return None


def left_out_lines(swap: dict[str, Any]) -> list[str]:
    """One ``model x runtime: reason`` line per cell left out."""
    return [f"{c['model']} x {c['runtime']}: {c['reason']}" for c in swap.get("left_out", [])]


def closing_line(swap: dict[str, Any]) -> str:
    """What the command ends with: finished, or finished with N cells left out and why."""
    lines = left_out_lines(swap)
    if not lines:
        return "finished; every model was measured in every runtime asked for"
    cells = "1 cell" if len(lines) == 1 else f"{len(lines)} cells"
    return f"finished; {cells} left out: " + "; ".join(lines)


def times(value: float) -> str:
    """``7.1x``; a ratio below 0.1 keeps two significant digits (``0.000057x``), not ``0.0x``."""
    if value >= 0.095 or value <= 0:
        return f"{value:.1f}x"
    return f"{value:.{1 - math.floor(math.log10(value))}f}x"


def speedup_text(m: dict[str, Any], runtime: str) -> str:
    """``7.1x`` against the reference in ``runtime``, or a dash where a cell is missing."""
    ratio = m["vs_reference"].get(runtime)
    return DASH if ratio is None else times(ratio["speedup"])


def best_text(m: dict[str, Any], kind: str) -> str:
    """``7.6x (tflite, 0.946 ms)``: best-to-best speed-up, and the model's best runtime."""
    best = m["best_runtime"][kind]
    b2b = m["vs_reference"]["best_to_best"].get(kind)
    if best is None or b2b is None:
        return DASH
    mean = " mean" if "mean_ms" in best else ""
    return f"{times(b2b['speedup'])} ({best['runtime']}, {best_ms(best):.3f} ms{mean})"


def latency_text(m: dict[str, Any], runtime: str) -> str:
    """``1.075``, or for a cascade ``0.812 mean (38.0 % went on)``: the speed figure."""
    text = f"{speed_ms(m, runtime):.3f}"
    if statistic(m) == "mean":
        text += " mean"
        share = m.get("cascade", {}).get("scored", {}).get("test", {}).get("share_passed_on")
        if share is not None:
            text += f" ({100 * share:.1f} % went on)"
    return text


def ratio_rows(swap: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ratios table shared by ``swap.md``, the HTML and the terminal."""
    runtimes = swap["options"]["runtimes"]
    headline = swap.get("headline_runtime", runtimes[0])
    head = [
        "model",
        "params",
        *runtimes,
        "best-to-best fp32",
        "best-to-best incl. int8",
        f"retention % [{round(100 * swap['options']['confidence'])} % CI]",
        f"energy ({headline})",
    ]
    rows = []
    for m in swap["models"]:
        ratios = m["vs_reference"]
        energy = ratios.get(headline, {}).get("energy_ratio")
        rows.append(
            [
                m["label"],
                f"{ratios['params_ratio']:.3f}",
                *(speedup_text(m, r) for r in runtimes),
                best_text(m, "fp32"),
                best_text(m, "any"),
                retention_text(ratios["accuracy"]),
                DASH if energy is None else f"{energy:.3f}",
            ]
        )
    return head, rows


RATIOS_LEGEND = (
    "params, energy: the model's over the reference's. Per runtime: speed-up, the reference's "
    "batch-1 median latency over the model's in that runtime. Best-to-best: the reference in its "
    "fastest CPU runtime over the model in its own (fp32 runtimes only, then int8 included); the "
    "model's best runtime and latency in brackets."
)


def omitted_lines(swap: dict[str, Any]) -> list[str]:
    """Ratios not given, one line per reason: ``teacher x onnx-int8 left out: no onnx-int8
    ratio for teacher, student``."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for m in swap["models"]:
        for key, why in m["vs_reference"].get("omitted", {}).items():
            grouped.setdefault((why, key), []).append(m["label"])
    return [
        f"{why}: no {key.replace('_', ' ')} ratio for {', '.join(labels)}"
        for (why, key), labels in grouped.items()
    ]


def accuracy_notes(swap: dict[str, Any]) -> list[str]:
    """Why a retention or its interval is not given (see ``ratios.BOOTSTRAP_RULE``)."""
    return [
        f"{m['label']}: {key.removesuffix('_note').replace('_', ' ')}: "
        f"{m['vs_reference']['accuracy'][key]}"
        for m in swap["models"]
        for key in ("retention_note", "retention_ci_note", "auc_ratio_ci_note", "ci_note")
        if key in m["vs_reference"]["accuracy"]
    ]


def ratio_lines(swap: dict[str, Any]) -> list[str]:
    """The ratios table as aligned plain text, for the terminal."""
    head, rows = ratio_rows(swap)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    legend = f"Ratios to the reference ({swap['reference']}). {RATIOS_LEGEND}"
    lines = textwrap.wrap(legend, width=100)
    for row in [head, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for note in cascade_notes(swap):
        lines += textwrap.wrap(note, width=100)
    return lines


def cascade_notes(swap: dict[str, Any]) -> list[str]:
    """One line per cascade: what runs, the share of faces that went on, and that its speed
    and energy are means over real test faces."""
    lines = []
    for m in swap["models"]:
        info = m.get("cascade")
        if info is None:
            continue
        small, large = info["members"]["small"], info["members"]["large"]
        test = info["scored"]["test"]
        band = info["band"]
        line = (
            f"{m['label']} is a cascade: {small['file']} ({small['runtime']}) decides a face "
            f"unless its score lies in [{band['lo']:.4g}, {band['hi']:.4g}]; then "
            f"{large['file']} ({large['runtime']}) does. {100 * test['share_passed_on']:.1f} % "
            f"of the test faces ({test['passed_on']} of {test['faces']}) went on to the large "
            "member. Its latency and energy are the mean per call over real test faces cycled "
            f"through ({info['timing_faces']} crops, shuffled), not a median; speed-ups and energy "
            "ratios use that mean"
        )
        cell = m["latency"].get(info["runtime"], {}).get("batch1")
        if cell is not None:
            timed = cell.get("cascade", {})
            line += f" (batch 1: mean {cell['mean_ms']:.3f} ms, median {cell['median_ms']:.3f} ms"
            same = m.get("vs_reference", {}).get(info["runtime"], {}).get("speedup_mean_to_mean")
            if same is not None:
                line += f"; against the reference's mean, not its median: {times(same)}"
            if timed.get("share_passed_on") is not None:
                line += f"; {100 * timed['share_passed_on']:.1f} % of the timed faces went on"
            if timed.get("small_ms_per_call") is not None:
                line += f"; small member {timed['small_ms_per_call']:.3f} ms a call"
            if timed.get("large_ms_per_call_run") is not None:
                line += f", large member {timed['large_ms_per_call_run']:.3f} ms a call it ran"
            line += ")"
        lines.append(line + f". {m['weight']['note']}.")
    return lines
