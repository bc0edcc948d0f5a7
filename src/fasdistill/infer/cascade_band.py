"""The band of a cascade and its single score: pure functions of score arrays.

A face whose small-member score ``s`` has ``lo <= s <= hi`` goes on to the large
member; every other face is decided by the small member at its threshold.
:func:`choose_band` picks the band on dev: ``lo <= t_small <= hi``, edges from the
small member's dev score quantiles, the fewest faces passed on with the cascade's
dev ACER (ISO/IEC 30107-3, APCER = worst PAI species) at most the large member's
alone. :func:`map_small_scores` puts the small member's scores on the large
member's scale, so one threshold (the large member's) gives every decision.
:mod:`fasdistill.infer.cascade` builds, writes and opens cascades with them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from fasdistill.errors import InputError
from fasdistill.metrics.pad import error_rates
from fasdistill.metrics.scores import ScoreSet

QUANTILES = 101  # candidate band edges: the small member's dev score percentiles
_CLIP = 1e-7  # scores are clipped to [_CLIP, 1 - _CLIP] before the logit
_ACER_TOLERANCE = 1e-12  # rates are ratios of counts; allow for last-bit rounding
SCORE_RULE = (
    "faces decided by the small member: sigmoid(logit(s) - logit(t_small) + logit(t_large)) "
    "(s clipped to [1e-7, 1 - 1e-7]; monotone, s >= t_small exactly when the result >= t_large); "
    "faces passed on: the large member's score"
)
BAND_RULE = "a face whose small-member score s has lo <= s <= hi goes on to the large member"


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), _CLIP, 1.0 - _CLIP)
    return np.log(q) - np.log1p(-q)


def map_small_scores(
    scores: np.ndarray, small_threshold: float, large_threshold: float
) -> np.ndarray:
    """Small-member scores moved onto the large member's scale, in logit space.

    Monotone (non-decreasing), and ``s >= small_threshold`` exactly when the result
    is ``>= large_threshold``: a value the rounding of the sigmoid would put on the
    wrong side is pinned to the threshold (accepted) or just below it (rejected).
    """
    s = np.asarray(scores, np.float64).reshape(-1)
    shifted = _logit(s) - _logit(small_threshold) + _logit(large_threshold)
    mapped = 1.0 / (1.0 + np.exp(-shifted))
    below = np.nextafter(large_threshold, -np.inf)
    return np.where(
        s >= small_threshold, np.maximum(mapped, large_threshold), np.minimum(mapped, below)
    )


def in_band(scores: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Which faces go on to the large member: small score in ``[lo, hi]`` (both included)."""
    s = np.asarray(scores, np.float64).reshape(-1)
    return (s >= lo) & (s <= hi)


def cascade_scores(
    small: np.ndarray,
    large: np.ndarray,
    band: tuple[float, float],
    small_threshold: float,
    large_threshold: float,
) -> np.ndarray:
    """The cascade's score of faces both members scored (the band picks whose score counts)."""
    passed = in_band(small, *band)
    out = map_small_scores(small, small_threshold, large_threshold)
    out[passed] = np.asarray(large, np.float64).reshape(-1)[passed]
    return out


@dataclass(frozen=True)
class BandChoice:
    """The band chosen on dev and the dev figures that justify it."""

    lo: float
    hi: float
    passed_on: int  # dev faces inside the band
    faces: int
    cascade_acer: float
    small_acer: float  # each member alone, at its own threshold
    large_acer: float
    level: str  # frame or video: the level the ACERs were computed at
    candidates: int  # bands evaluated

    @property
    def share(self) -> float:
        """The share of dev faces passed on to the large member."""
        return self.passed_on / self.faces

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"share_passed_on": self.share}


def _acer(dev: ScoreSet, scores: np.ndarray, threshold: float, level: str) -> float:
    """ISO ACER (worst-species APCER) of ``dev``'s faces with ``scores``, at ``level``."""
    scored = dataclasses.replace(dev, scores=np.asarray(scores, np.float64))
    if level == "video":
        scored = scored.to_video_level("mean")
    return error_rates(scored, threshold).acer


def check_threshold(value: float, where: str) -> float:
    """``value`` as a float, refused unless strictly inside (0, 1) (the logit needs it)."""
    value = float(value)
    if not 0.0 < value < 1.0:
        raise InputError(
            f"{where}: threshold {value:.6g} must lie strictly inside (0, 1) for a cascade "
            "(recalibrate the model: fasdistill calibrate)"
        )
    return value


def candidate_edges(
    small: np.ndarray, threshold: float, quantiles: int = QUANTILES
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper band edges to try: the small scores' quantiles on each side of the
    threshold, the threshold itself, and 0 and 1 (the band of every score)."""
    q = np.quantile(np.asarray(small, np.float64), np.linspace(0.0, 1.0, quantiles))
    lows = np.unique(np.r_[0.0, q[q <= threshold], threshold])
    highs = np.unique(np.r_[threshold, q[q >= threshold], 1.0])
    return lows, highs


def choose_band(
    dev: ScoreSet,
    large: np.ndarray,
    small_threshold: float,
    large_threshold: float,
    level: str = "frame",
    quantiles: int = QUANTILES,
) -> BandChoice:
    """The band passing on the fewest dev faces with cascade dev ACER <= the large member's.

    ``dev`` holds the small member's dev scores with their labels; ``large`` the large
    member's scores of the same faces, in the same order. Bands are tried in order of
    the faces they pass on; among bands passing on the fewest feasible number, the
    lowest cascade ACER wins, then the widest (the same dev cost, more margin). The
    band [0, 1] is the large member alone, so one is always feasible.
    """
    small = np.asarray(dev.scores, np.float64)
    large = np.asarray(large, np.float64).reshape(-1)
    if large.shape != small.shape:
        raise InputError(f"{dev.source}: {small.size} small-member scores, {large.size} large")
    if level not in ("frame", "video"):
        raise InputError(f"threshold_level: expected frame or video, got {level!r}")
    if quantiles < 2:
        raise InputError(f"quantiles must be >= 2, got {quantiles}")
    for name, values in (("small", small), ("large", large)):
        if values.size and (values.min() < 0.0 or values.max() > 1.0):
            raise InputError(
                f"{dev.source}: the {name} member's scores leave [0, 1] (min {values.min():.6g}, "
                f"max {values.max():.6g}); a cascade needs P(bona fide) probabilities"
            )
    t_small = check_threshold(small_threshold, "small member")
    t_large = check_threshold(large_threshold, "large member")
    dev.require_both_classes()
    large_acer = _acer(dev, large, t_large, level)
    small_acer = _acer(dev, small, t_small, level)
    mapped = map_small_scores(small, t_small, t_large)
    lows, highs = candidate_edges(small, t_small, quantiles)
    ordered = np.sort(small)
    below = np.searchsorted(ordered, lows, side="left")  # faces under each lo
    upto = np.searchsorted(ordered, highs, side="right")  # faces at or under each hi
    counts = upto[None, :] - below[:, None]
    width = highs[None, :] - lows[:, None]
    order = np.lexsort((-width.ravel(), counts.ravel()))  # fewest faces, then widest
    best: tuple[float, int] | None = None  # (acer, flat index)
    tried = 0
    for flat in order:
        count = counts.flat[flat]
        if best is not None and count > counts.flat[best[1]]:
            break
        i, j = np.unravel_index(flat, counts.shape)
        tried += 1
        scores = np.where(in_band(small, lows[i], highs[j]), large, mapped)
        acer = _acer(dev, scores, t_large, level)
        if acer <= large_acer + _ACER_TOLERANCE and (
            best is None or acer < best[0] - _ACER_TOLERANCE
        ):
            best = (acer, int(flat))
    assert best is not None, "the band [0, 1] is the large member alone and always feasible"
    i, j = np.unravel_index(best[1], counts.shape)
    return BandChoice(
        lo=float(lows[i]),
        hi=float(highs[j]),
        passed_on=int(counts[i, j]),
        faces=int(small.size),
        cascade_acer=float(best[0]),
        small_acer=float(small_acer),
        large_acer=float(large_acer),
        level=level,
        candidates=tried,
    )
