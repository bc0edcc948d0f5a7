"""A self-contained ``report.html``: the SWAP table and its charts, nothing fetched.

Images are PNGs inlined as data URIs, the style is inline, and a Content Security
Policy forbids every other source, so the page renders the same offline, from an
e-mail attachment or an artifact store, and cannot call out to the network.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from fasdistill.metrics.pad import error_curve
from fasdistill.metrics.plots import _DET_CLIP, _DET_TICKS, _png, _probit, _subsample
from fasdistill.metrics.scores import read_scores
from fasdistill.swap.ratios import speed_ms
from fasdistill.swap.sensors import sensor_lines
from fasdistill.swap.summary import (
    RATIOS_LEGEND,
    accuracy_notes,
    cascade_notes,
    cell_missing,
    latency_text,
    left_out_lines,
    omitted_lines,
    ratio_rows,
    retention_text,
)
from fasdistill.utils.atomic import atomic_write_text

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
AXIS_LABELS = {"S": "Speed-up", "W": "1 / params", "A": "Retention", "P": "1 / energy"}


def _colour(i: int) -> str:
    return COLOURS[i % len(COLOURS)]


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis 0.5, 1, 2, 5, 10 ... instead of 5x10^-1, 10^0, 2x10^0."""

    def label(value: float, _: int) -> str:
        mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
        return f"{value:g}" if round(mantissa, 6) in (1.0, 2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def _headline(swap: dict[str, Any]) -> str:
    return swap.get("headline_runtime", swap["options"]["runtimes"][0])


def pareto_png(swap: dict[str, Any]) -> bytes:
    """Test ACER against headline-runtime latency; marker area ~ parameters."""
    runtime = _headline(swap)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    biggest = max(m["weight"]["params"] for m in swap["models"])
    for i, m in enumerate(swap["models"]):
        if runtime not in m["latency"]:
            continue  # a missing cell: listed under "Left out" on the page
        x = speed_ms(m, runtime)  # a cascade's mean
        y = 100 * m["test"]["acer"]
        size = 40 + 400 * m["weight"]["params"] / biggest
        on_front = m["label"] in swap["pareto"]
        ax.scatter(x, y, s=size, color=_colour(i), edgecolor="black" if on_front else "none")
        ax.annotate(m["label"], (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.15)  # room for the labels beside the points
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(f"latency, {runtime}, batch 1 (ms, log)")
    ax.set_ylabel("test ACER (%)")
    ax.set_title("Accuracy vs latency (outlined: Pareto front; area ~ parameters)", fontsize=9)
    ax.grid(True, alpha=0.3)
    return _png(fig)


def det_png(swap: dict[str, Any], root: Path) -> bytes:
    """Test DET curves (worst species, ISO APCER) of every model, operating points marked."""
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot()
    for i, m in enumerate(swap["models"]):
        scores = read_scores(root / m["test_scores"])
        curve = error_curve(scores)
        idx = _subsample(curve.thresholds.size)
        ax.plot(
            _probit(curve.apcer[idx]), _probit(curve.bpcer[idx]), color=_colour(i), label=m["label"]
        )
        test = m["test"]
        ax.plot(
            _probit(np.array([test["apcer"]])),
            _probit(np.array([test["bpcer"]])),
            "o",
            color=_colour(i),
            mec="black",
        )
    lim = _probit(np.array([_DET_CLIP, 0.95]))
    ticks = [t for t in _DET_TICKS if _DET_CLIP <= t <= 0.95]
    positions = _probit(np.array(ticks))
    ax.set_xticks(positions, [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(positions, [f"{100 * t:g}" for t in ticks])
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("APCER, worst species (%)")
    ax.set_ylabel("BPCER (%)")
    ax.set_title("DET on test (dots: threshold fixed on dev)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def latency_png(swap: dict[str, Any]) -> bytes:
    """Batch-1 median latency per runtime and model (a cascade's mean), p95 as the whisker."""
    runtimes = swap["options"]["runtimes"]
    models = swap["models"]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        xs = np.arange(len(runtimes)) + (i - (len(models) - 1) / 2) * width
        nan = {"median_ms": float("nan"), "p95_ms": float("nan")}  # runtime it does not run in
        med = [speed_ms(m, r) if r in m["latency"] else nan["median_ms"] for r in runtimes]
        p95 = [m["latency"].get(r, {"batch1": nan})["batch1"]["p95_ms"] for r in runtimes]
        err = [np.zeros(len(med)), np.subtract(p95, med)]
        ax.bar(xs, med, width, yerr=err, color=_colour(i), label=m["label"], capsize=2)
        for x, runtime in zip(xs, runtimes, strict=True):
            if runtime in m.get("missing", {}) and runtime not in m["latency"]:
                where = (x, 0.02)  # at the bar's place, just above the axis
                ax.annotate("left out", where, xycoords=("data", "axes fraction"), rotation=90,
                            ha="center", va="bottom", fontsize=7, color="#a40000")  # fmt: skip
    ax.set_xticks(np.arange(len(runtimes)), runtimes)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    mean = any(m.get("latency_statistic") == "mean" for m in models)
    ax.set_ylabel(f"ms per image (log; whisker: p95{'; cascades: mean' if mean else ''})")
    ax.set_title(
        f"Latency per runtime, batch 1, {swap['options']['threads']} thread(s)", fontsize=9
    )
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def swap_letters_png(swap: dict[str, Any]) -> bytes:
    """The four SWAP gains over the reference per model, on a log axis (1 = reference).

    A gain that could not be computed (a missing cell, an undefined retention) has no bar.
    """
    runtime = _headline(swap)
    models = swap["models"]
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    letters = list(AXIS_LABELS)
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        r = m["vs_reference"]
        same = r.get(runtime, {})
        retained = r["accuracy"]["retention"]
        gains = [
            same.get("speedup", math.nan),
            1 / r["params_ratio"],
            math.nan if retained is None else retained,
            1 / same["energy_ratio"] if "energy_ratio" in same else math.nan,
        ]
        xs = np.arange(4) + (i - (len(models) - 1) / 2) * width
        score = "–" if m["swap_score"] is None else f"{m['swap_score']:.2f}"
        ax.bar(xs, gains, width, color=_colour(i), label=f"{m['label']} (score {score})")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(np.arange(4), [f"{k}: {AXIS_LABELS[k]}" for k in letters])
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel("gain over the reference (log)")
    ax.set_title(f"S, W, A, P per model ({runtime})", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


def speed_table(swap: dict[str, Any]) -> str:
    """Median ms per model, runtime and batch size with the runs reached; missing cells say why."""
    batch = swap["options"]["batch"]
    keys = ["batch1"] + ([f"batch{batch}"] if batch != 1 else [])
    head = [
        "model",
        "runtime",
        *(f"batch {k.removeprefix('batch')}: median ms (runs)" for k in keys),
    ]
    rows = []
    for m in swap["models"]:
        for runtime in swap["options"]["runtimes"]:
            why = m.get("missing", {}).get(runtime)
            lat = m["latency"].get(runtime, {})
            if not lat and not why:
                continue  # not run in it (a third-party model): no row
            if not lat:  # the whole cell is missing: its reason once, across the batches
                why_html = f'<span class="missing">missing: {html.escape(why or "")}</span>'
                rows.append(
                    f"<tr><td>{html.escape(m['label'])}</td><td>{html.escape(runtime)}</td>"
                    f'<td colspan="{len(keys)}">{why_html}</td></tr>'
                )
                continue
            cells = []
            for key in keys:
                if key in lat:
                    capped = ", capped" if lat[key].get("capped") else ""
                    ms = speed_ms(m, runtime, int(key.removeprefix("batch")))
                    mean = " mean" if m.get("latency_statistic") == "mean" else ""
                    cells.append(f"{ms:.3f}{mean} ({lat[key]['runs']}{capped})")
                else:
                    cells.append(f'<span class="missing">missing: {html.escape(why or "")}</span>')
            row = [html.escape(m["label"]), html.escape(runtime), *cells]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return (
        '<table id="speed-table"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _onnx_size(size: int | None) -> str:
    """The ONNX file's size; a dash when there is none (not exported, or not asked for)."""
    return "–" if size is None else f"{size / 1e6:.2f} MB"


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def render(swap: dict[str, Any], root: Path) -> str:
    """The page: provenance, cells left out, the SWAP and ratios tables, then the four charts."""
    runtime = _headline(swap)
    cpu = swap["machine"]["cpu"]
    rows = []
    for m in swap["models"]:
        acc = m["test"]
        ratio = m["vs_reference"]
        missing = cell_missing(m, runtime)
        power = m["power"].get(runtime)
        if missing is None and power is not None:
            latency = html.escape(latency_text(m, runtime))
            speedup = f"{ratio[runtime]['speedup']:.1f}x" if runtime in ratio else "–"
            energy = (
                f"{1e3 * power['energy_j']:.3f} mJ<br>"
                f"<small>{html.escape(power['energy_source'])}</small>"
            )
            battery = f"{power['inferences_per_battery_percent']:,.0f}"
        else:
            why = missing or m.get("missing", {}).get(runtime, "no energy figure")
            latency = f'<span class="missing">{html.escape(why)}</span>'
            speedup = energy = battery = "–"
        score = m["swap_score"]
        score_text = (
            f"–<br><small>{html.escape(m.get('swap_score_note', ''))}</small>"
            if score is None
            else f"{score:.2f}"
        )
        cells = [
            f"{html.escape(m['label'])}<br><small>{html.escape(m['model'])}</small>",
            f"{m['weight']['params'] / 1e6:.3f} M",
            f"{m['weight']['macs'] / 1e6:.1f} M",
            _onnx_size(m["weight"]["bytes"].get("onnx")),
            f"{100 * acc['acer']:.2f}",
            html.escape(retention_text(ratio["accuracy"])),
            _fmt(acc["auc"], 4),
            latency,
            speedup,
            energy,
            battery,
            score_text,
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = [
        "model", "params", "MACs", "ONNX size", "test ACER %", "retention % [95 % CI]", "AUC",
        f"latency ms ({runtime})", "speed-up", "energy / inference", "per 1 % battery",
        "SWAP score",
    ]  # fmt: skip
    ratio_head, ratio_body = ratio_rows(swap)
    ratio_table = (
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in ratio_head) + "</tr></thead>"
        "<tbody>"
        + "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in ratio_body
        )
        + "</tbody>"
    )
    left_out = left_out_lines(swap)
    left_out_html = (
        f'<div class="missing"><b>Left out ({len(left_out)}):</b> these cells have no figures.'
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in left_out) + "</ul></div>"
        if left_out
        else ""
    )
    notes = omitted_lines(swap) + accuracy_notes(swap) + cascade_notes(swap) + sensor_lines(swap)
    omitted_html = (
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in notes) + "</ul>"
        if notes
        else ""
    )
    options = swap["options"]
    note = swap.get("headline_note")
    note_html = f"<p><b>Note:</b> {html.escape(note)}.</p>" if note else ""
    figures = [
        _img(swap_letters_png(swap), "SWAP gains per model"),
        _img(pareto_png(swap), "accuracy versus latency"),
        _img(det_png(swap, root), "DET curves of all models"),
        _img(latency_png(swap), "latency per runtime"),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in swap["machine"]["versions"].items())
    isa = ", ".join(cpu["isa"]) or "no listed ISA extensions"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>SWAP report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; font-size: 0.9em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
th {{ background: #f0f0f0; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr));
  gap: 1em; margin-top: 1em; }}
figure {{ margin: 0; }}
img {{ width: 100%; }}
small {{ color: #666; }}
.missing {{ color: #a40000; }}
</style></head><body>
<h1>SWAP report</h1>
<p>Reference: <b>{html.escape(swap["reference"])}</b>. Test split of
<code>{html.escape(swap["index"])}</code>, thresholds fixed on dev. Speed and energy:
{html.escape(runtime)}, batch 1, {swap["options"]["threads"]} thread(s), models interleaved in one
process, on {html.escape(cpu["model"])} ({html.escape(isa)};
{html.escape(versions)}). Energy labelled <i>modelled</i> is not measured.</p>
{note_html}
{left_out_html}
<table id="swap-table"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Pareto front (test ACER, latency, energy, parameters):
{html.escape(", ".join(swap["pareto"]))}.</p>
<h2>Ratios to the reference</h2>
<p>{html.escape(RATIOS_LEGEND)}</p>
<table id="ratios-table">{ratio_table}</table>
{omitted_html}
<h2>Speed per runtime</h2>
<p>Models interleaved in one process; each cell ran until {options["latency_runs"]} runs and
{options["latency_seconds"]} s, or at most {options.get("latency_max_seconds", "–")} s per model
(capped: stopped by the time bound first).</p>
{speed_table(swap)}
<div class="charts">
{chr(10).join(figures)}
</div>
</body></html>
"""


def write_html(swap: dict[str, Any], out: Path) -> Path:
    """``report.html`` into ``out`` (score files are read relative to it), atomically."""
    return atomic_write_text(out / "report.html", render(swap, out))
