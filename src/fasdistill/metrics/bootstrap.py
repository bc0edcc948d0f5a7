"""Cluster bootstrap confidence intervals for error rates at a fixed threshold.

Frames of one video, and videos of one subject, are not independent, so the
resampling unit is a subject (default) or a video, never a frame. Each unit is
reduced once to a row of counts (bona fide seen / rejected, attacks seen /
accepted per species); a resample is then a multinomial weight vector over units
and all its rates come from one matrix product.
"""

from __future__ import annotations

import math

import numpy as np

from fasdistill.errors import InputError
from fasdistill.metrics.scores import ScoreSet

UNITS = ("subject", "video")
_MAX_WEIGHTS = 20_000_000  # weights held at once (resamples x units), about 160 MB


def min_resamples(confidence: float = 0.95) -> int:
    """Fewest resamples whose percentile interval has a resample beyond each bound.

    Each tail holds a share (1 - confidence) / 2 of the resamples; with fewer than
    2 / (1 - confidence) of them (40 at 95 %) a tail holds less than one resample,
    and the bound is just the most extreme resample drawn.
    """
    return math.ceil(2.0 / (1.0 - confidence) - 1e-9)


def check_resamples(resamples: int, confidence: float = 0.95) -> None:
    """Refuse a resample count too small to give an interval (0 means no intervals)."""
    needed = min_resamples(confidence)
    if resamples < 0 or 0 < resamples < needed:
        raise InputError(
            f"--bootstrap {resamples}: a {100 * confidence:g} % percentile interval needs at "
            f"least {needed} resamples (2 / (1 - {confidence:g})), so that each tail holds one; "
            "use 1000, or 0 for no intervals"
        )


def min_units(confidence: float = 0.95) -> int:
    """Fewest resampling units (subjects) for a percentile interval not set by one unit.

    A resample that draws the same one of k units k times has probability k**-k;
    while that exceeds the tail share (1 - confidence) / 2, the interval's bound is
    that single unit's own rate. At 95 % this needs k >= 4 (3**-3 = 3.7 % > 2.5 %).
    """
    alpha = (1.0 - confidence) / 2.0
    k = 1
    while k ** (-k) > alpha:
        k += 1
    return k


def _unit_counts(scores: ScoreSet, threshold: float, unit: str) -> np.ndarray:
    """Per-unit counts: [bona total, bona rejected, attack totals..., attack accepted...]."""
    if unit not in UNITS:
        raise InputError(f"unknown bootstrap unit {unit!r}; choose one of {UNITS}")
    codes = scores.subject if unit == "subject" else scores.video
    n_units = int(codes.max()) + 1 if len(scores) else 0
    accepted = scores.scores >= threshold
    attack = ~scores.bonafide
    n_pai = len(scores.pai_names)
    columns = [
        np.bincount(codes, weights=scores.bonafide.astype(float), minlength=n_units),
        np.bincount(codes, weights=(scores.bonafide & ~accepted).astype(float), minlength=n_units),
    ]
    for k in range(n_pai):
        columns.append(
            np.bincount(codes, weights=(scores.pai == k).astype(float), minlength=n_units)
        )
    for k in range(n_pai):
        hit = (scores.pai == k) & attack & accepted
        columns.append(np.bincount(codes, weights=hit.astype(float), minlength=n_units))
    counts = np.stack(columns, axis=1)
    return counts[counts[:, 0] + counts[:, 2 : 2 + n_pai].sum(axis=1) > 0]


def _resample(counts: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column sums of ``counts`` under ``n_resamples`` cluster resamples of its rows (units)."""
    n_units = counts.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_WEIGHTS // max(n_units, 1))
    draws: list[np.ndarray] = []
    remaining = n_resamples
    while remaining > 0:
        size = min(chunk, remaining)
        weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=size)
        draws.append(weights.astype(np.float64) @ counts)
        remaining -= size
    return np.concatenate(draws, axis=0)


def _rates(sums: np.ndarray, n_pai: int) -> dict[str, np.ndarray]:
    """APCER (worst species), BPCER, ACER and HTER of each resample's summed counts."""
    with np.errstate(invalid="ignore", divide="ignore"):
        bpcer = sums[:, 1] / sums[:, 0]
        totals = sums[:, 2 : 2 + n_pai]
        accepted = sums[:, 2 + n_pai :]
        per_pai = np.where(totals > 0, accepted / np.where(totals > 0, totals, 1.0), np.nan)
        all_nan = np.isnan(per_pai).all(axis=1)
        apcer = np.full(per_pai.shape[0], np.nan)
        apcer[~all_nan] = np.nanmax(per_pai[~all_nan], axis=1)
        apcer_pooled = accepted.sum(axis=1) / totals.sum(axis=1)
    return {
        "apcer": apcer,
        "bpcer": bpcer,
        "acer": (apcer + bpcer) / 2.0,
        "hter": (apcer_pooled + bpcer) / 2.0,
    }


def paired_acer_samples(
    a: ScoreSet,
    threshold_a: float,
    b: ScoreSet,
    threshold_b: float,
    unit: str = "subject",
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ACER of two models on the *same* samples under the same cluster resamples.

    Pairing keeps what both models find hard in every resample, so intervals of a
    difference or a ratio are not inflated by sampling the two sets separately.
    """
    if a.bonafide.tolist() != b.bonafide.tolist() or len(a) != len(b):
        raise InputError("paired bootstrap needs two score sets of the same samples")
    counts_a = _unit_counts(a, threshold_a, unit)
    counts_b = _unit_counts(b, threshold_b, unit)
    sums = _resample(np.hstack([counts_a, counts_b]), n_resamples, seed)
    width = counts_a.shape[1]
    return (
        _rates(sums[:, :width], len(a.pai_names))["acer"],
        _rates(sums[:, width:], len(b.pai_names))["acer"],
    )


def bootstrap_ci(
    scores: ScoreSet,
    threshold: float,
    unit: str = "subject",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """Percentile intervals of APCER, BPCER, ACER and HTER at ``threshold``.

    The threshold stays fixed (it was chosen on dev), so the intervals describe
    the sampling noise of the evaluated set, not of the threshold choice.
    """
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must lie in (0, 1), got {confidence}")
    counts = _unit_counts(scores, threshold, unit)
    n_units, n_pai = counts.shape[0], len(scores.pai_names)
    samples = _rates(_resample(counts, n_resamples, seed), n_pai)
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, object] = {
        "method": "percentile cluster bootstrap at the fixed dev threshold",
        "unit": unit,
        "n_units": int(n_units),
        "n_resamples": int(n_resamples),
        "confidence": confidence,
        "seed": seed,
    }
    for name, values in samples.items():
        valid = values[np.isfinite(values)]
        if valid.size == 0:
            out[name] = None
            continue
        lo, hi = np.quantile(valid, [alpha, 1.0 - alpha])
        out[name] = [float(lo), float(hi)]
    out["n_valid"] = int(np.isfinite(samples["acer"]).sum())
    return out


def unit_weights(scores: ScoreSet, unit: str, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Per-sample weights (resamples x samples) of cluster resamples of subjects or videos."""
    if unit not in UNITS:
        raise InputError(f"unknown bootstrap unit {unit!r}; choose one of {UNITS}")
    codes = scores.subject if unit == "subject" else scores.video
    used, inverse = np.unique(codes, return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(used), np.full(len(used), 1.0 / len(used)), size=n_resamples)
    return draws[:, inverse].astype(np.float64)


def weighted_auc(scores: ScoreSet, weights: np.ndarray) -> np.ndarray:
    """AUC (P(bona fide scores above an attack's), ties count half) per row of ``weights``."""
    bona = scores.scores[scores.bonafide]
    attack = scores.scores[~scores.bonafide]
    order = np.argsort(attack, kind="stable")
    attack_sorted = attack[order]
    w_bona = weights[:, scores.bonafide]
    w_attack = weights[:, ~scores.bonafide][:, order]
    cumulative = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(w_attack, axis=1)], axis=1)
    left = np.searchsorted(attack_sorted, bona, side="left")
    right = np.searchsorted(attack_sorted, bona, side="right")
    below = cumulative[:, left]
    ties = cumulative[:, right] - below
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((below + 0.5 * ties) * w_bona).sum(axis=1) / (
            w_bona.sum(axis=1) * w_attack.sum(axis=1)
        )
