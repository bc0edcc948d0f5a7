"""DET and ROC curves and score histograms, rendered to PNG bytes.

Figures are built with the object API (no pyplot global state) so plotting is
safe in worker processes and needs no display.
"""

from __future__ import annotations

import io
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fasdistill.metrics.evaluate import Evaluation, SetResult

_MAX_POINTS = 4000
_DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95)
_DET_CLIP = 5e-4
_SPLIT_STYLE = {"dev": "--", "test": "-"}
_PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_BONAFIDE_COLOUR = "#2ca02c"
_POOLED_COLOUR = "#1f77b4"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _subsample(n: int) -> np.ndarray:
    """Indices that keep a curve's shape while bounding the points drawn."""
    if n <= _MAX_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, _MAX_POINTS).round().astype(int))


_PPF = np.vectorize(NormalDist().inv_cdf, otypes=[float])


def _probit(p: np.ndarray) -> np.ndarray:
    return _PPF(np.clip(p, _DET_CLIP, 1.0 - _DET_CLIP))


def _species_colours(evaluation: Evaluation) -> dict[str, str]:
    names: list[str] = []
    for result in evaluation.sets.values():
        names.extend(n for n in result.curve.pai_names if n not in names)
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _operating_point(result: SetResult) -> tuple[float, float, float]:
    m = result.metrics
    return m["apcer"], m["apcer_pooled"], m["bpcer"]


def det_png(evaluation: Evaluation) -> bytes:
    """DET curves (normal-deviate axes): per species, worst species (ISO) and pooled."""
    colours = _species_colours(evaluation)
    fig = Figure(figsize=(9.6, 5.6))
    ax = fig.add_subplot()
    for split, result in evaluation.sets.items():
        curve, style = result.curve, _SPLIT_STYLE[split]
        idx = _subsample(curve.thresholds.size)
        y = _probit(curve.bpcer[idx])
        for row, name in enumerate(curve.pai_names):
            ax.plot(
                _probit(curve.apcer_per_pai[row, idx]),
                y,
                style,
                color=colours[name],
                lw=1.0,
                alpha=0.8,
                label=f"{split}: {name}",
            )
        ax.plot(
            _probit(curve.apcer[idx]),
            y,
            style,
            color="black",
            lw=1.8,
            label=f"{split}: worst species (ISO APCER)",
        )
        ax.plot(
            _probit(curve.apcer_pooled[idx]),
            y,
            style,
            color=_POOLED_COLOUR,
            lw=1.4,
            label=f"{split}: all attacks pooled",
        )
        apcer, _, bpcer = _operating_point(result)
        ax.plot(
            _probit(np.array([apcer])),
            _probit(np.array([bpcer])),
            "o",
            color="black",
            mfc="white" if split == "dev" else "black",
            ms=7,
            label=f"{split} at dev threshold: APCER {apcer:.1%}, BPCER {bpcer:.1%}",
        )
    lim = _probit(np.array([_DET_CLIP, 0.95]))
    ax.plot(lim, lim, ":", color="grey", lw=0.8)
    ticks = [t for t in _DET_TICKS if _DET_CLIP <= t <= 0.95]
    positions = _probit(np.array(ticks))
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(positions, labels)
    ax.set_yticks(positions, labels)
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("APCER (%)")
    ax.set_ylabel("BPCER (%)")
    ax.set_title(
        f"DET ({evaluation.report['level']} level, threshold by {evaluation.criterion.name} on dev)"
    )
    ax.grid(True, alpha=0.3)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return _png(fig)


def roc_png(evaluation: Evaluation) -> bytes:
    """Pooled ROC, bona fide as the positive class, log-scaled FPR axis."""
    fig = Figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot()
    floor = 1e-4
    for split, result in evaluation.sets.items():
        curve = result.curve
        idx = _subsample(curve.thresholds.size)
        fpr = np.maximum(curve.apcer_pooled[idx], floor)
        tpr = 1.0 - curve.bpcer[idx]
        m = result.metrics
        ax.step(
            fpr,
            tpr,
            _SPLIT_STYLE[split],
            where="post",
            color=_POOLED_COLOUR if split == "test" else "grey",
            label=f"{split}: AUC {m['auc']:.4f}, TPR@FPR=1% {m['tpr_at_fpr']['0.01']:.3f}",
        )
        _, apcer_pooled, bpcer = _operating_point(result)
        ax.plot(
            [max(apcer_pooled, floor)],
            [1.0 - bpcer],
            "o",
            color="black",
            mfc="white" if split == "dev" else "black",
            label=f"{split} at dev threshold",
        )
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("FPR = pooled APCER (log scale)")
    ax.set_ylabel("TPR = 1 - BPCER")
    ax.set_title("ROC (bona fide = positive class)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def histogram_png(evaluation: Evaluation) -> bytes:
    """Score histograms of bona fide and each attack species, with the dev threshold."""
    colours = _species_colours(evaluation)
    sets = list(evaluation.sets.values())
    fig = Figure(figsize=(6.4, 2.9 * len(sets)))
    all_scores = np.concatenate([r.scores.scores for r in sets])
    lo, hi = float(all_scores.min()), float(all_scores.max())
    if hi <= lo:
        hi = lo + 1.0
    smallest = min(min(r.scores.n_bonafide, r.scores.n_attack) for r in sets)
    bins = np.linspace(lo, hi, int(np.clip(2 * np.sqrt(smallest), 10, 60)) + 1)
    for i, result in enumerate(sets):
        ax = fig.add_subplot(len(sets), 1, i + 1)
        s = result.scores
        ax.hist(
            s.scores[s.bonafide],
            bins=bins,
            density=True,
            histtype="stepfilled",
            alpha=0.35,
            color=_BONAFIDE_COLOUR,
            label=f"bona fide (n={s.n_bonafide})",
        )
        for code, name in enumerate(s.pai_names):
            mask = s.pai == code
            if mask.any():
                ax.hist(
                    s.scores[mask],
                    bins=bins,
                    density=True,
                    histtype="step",
                    lw=1.4,
                    color=colours.get(name, "black"),
                    label=f"{name} (n={int(mask.sum())})",
                )
        ax.axvline(
            evaluation.threshold,
            color="black",
            ls="--",
            lw=1.0,
            label=f"dev threshold {evaluation.threshold:.4g}",
        )
        ax.set_title(
            f"{result.name}: score distributions ({evaluation.report['level']} level)", fontsize=10
        )
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    ax.set_xlabel("liveness score (higher = more likely bona fide)")
    fig.tight_layout()
    return _png(fig)


FIGURE_NAMES = ("det.png", "roc.png", "histograms.png")


def render_all(evaluation: Evaluation) -> dict[str, bytes]:
    """Every figure as ``{file name: PNG bytes}``."""
    renderers = (det_png, roc_png, histogram_png)
    return {name: render(evaluation) for name, render in zip(FIGURE_NAMES, renderers, strict=True)}
