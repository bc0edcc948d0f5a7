"""Cluster bootstrap confidence intervals for error rates at a fixed threshold.

Frames of one video, and videos of one subject, are not independent, so the
resampling unit is a subject (default) or a video, never a frame. Each unit is
reduced once to a row of counts (bona fide seen / rejected, attacks seen /
accepted per species); a resample is then a multinomial weight vector over units
and all its rates come from one matrix product.
"""

from __future__ import annotations

import numpy as np

from fasdistill.errors import InputError
from fasdistill.metrics.scores import ScoreSet

UNITS = ("subject", "video")
_MAX_WEIGHTS = 20_000_000  # weights held at once (resamples x units), about 160 MB


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
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_WEIGHTS // max(n_units, 1))
    draws: list[np.ndarray] = []
    remaining = n_resamples
    while remaining > 0:
        size = min(chunk, remaining)
        weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=size)
        draws.append(weights.astype(np.float64) @ counts)
        remaining -= size
    sums = np.concatenate(draws, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bpcer = sums[:, 1] / sums[:, 0]
        totals = sums[:, 2 : 2 + n_pai]
        accepted = sums[:, 2 + n_pai :]
        per_pai = np.where(totals > 0, accepted / np.where(totals > 0, totals, 1.0), np.nan)
        all_nan = np.isnan(per_pai).all(axis=1)
        apcer = np.full(per_pai.shape[0], np.nan)
        apcer[~all_nan] = np.nanmax(per_pai[~all_nan], axis=1)
        apcer_pooled = accepted.sum(axis=1) / totals.sum(axis=1)
    samples = {
        "apcer": apcer,
        "bpcer": bpcer,
        "acer": (apcer + bpcer) / 2.0,
        "hter": (apcer_pooled + bpcer) / 2.0,
    }
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
