"""ISO/IEC 30107-3 presentation attack detection metrics, vectorised.

Decision rule, everywhere: a presentation is accepted as **bona fide iff its
score >= threshold** (higher score = more likely bona fide).

- APCER of a PAI species: share of that species' attacks accepted as bona fide.
- APCER: the worst species' APCER (ISO/IEC 30107-3). ``apcer_pooled`` treats all
  attacks as one class and is reported under that name only.
- BPCER: share of bona fide presentations rejected.
- ACER = (APCER + BPCER) / 2, with the ISO (worst-species) APCER.
- HTER = (APCER_pooled + BPCER) / 2, as cross-dataset FAS papers report it.
- EER: the error rate where APCER equals BPCER (``eer`` with the ISO APCER,
  ``eer_pooled`` with the pooled one); AUC and TPR@FPR come from the pooled ROC
  with bona fide as the positive class (TPR = 1 - BPCER, FPR = APCER_pooled).

Every curve is computed from sorted scores with ``searchsorted`` over the
candidate thresholds, so a million scores take a fraction of a second.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from fasdistill.errors import InputError
from fasdistill.metrics.scores import ScoreSet

# Rates are ratios of integer counts; comparisons against a target rate allow
# for the last-bit rounding of those divisions.
_RATE_TOL = 1e-12


@dataclass(frozen=True)
class ErrorCurve:
    """Error rates at every threshold that changes a decision on one set.

    ``thresholds`` ascend: the unique scores (accepting a score needs
    ``score >= t``), then one value just above the maximum (reject everything).
    """

    thresholds: np.ndarray
    bpcer: np.ndarray
    apcer_per_pai: np.ndarray  # shape (n_species, n_thresholds)
    apcer_pooled: np.ndarray
    pai_names: tuple[str, ...]

    @functools.cached_property
    def apcer(self) -> np.ndarray:
        """ISO APCER: the worst species at each threshold (computed once)."""
        return self.apcer_per_pai.max(axis=0)


def error_curve(scores: ScoreSet) -> ErrorCurve:
    """APCER (per species and pooled) and BPCER at every decision-changing threshold.

    One sort serves every class: after sorting, the number of a class's samples
    strictly below the j-th unique score is its running count at the position
    where that score first appears.
    """
    scores.require_both_classes()
    order = np.argsort(scores.scores)
    s = scores.scores[order]
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    thresholds = np.append(s[first], np.nextafter(s[-1], np.inf))
    cut = np.append(first, s.size)  # samples strictly below each threshold: s[:cut]

    def below(mask: np.ndarray) -> np.ndarray:
        return np.r_[0, np.cumsum(mask)][cut]

    bona_mask = scores.bonafide[order]
    n_bona = int(bona_mask.sum())
    bpcer = below(bona_mask) / n_bona
    attack_mask = ~bona_mask
    n_attack = s.size - n_bona
    pooled = (n_attack - below(attack_mask)) / n_attack
    pai = np.where(attack_mask, scores.pai[order], -1)
    species = np.flatnonzero(np.bincount(pai[attack_mask], minlength=len(scores.pai_names)))
    per_pai = np.empty((species.size, thresholds.size))
    for row, code in enumerate(species):
        mask = pai == code
        total = int(mask.sum())
        per_pai[row] = (total - below(mask)) / total
    return ErrorCurve(
        thresholds=thresholds,
        bpcer=bpcer,
        apcer_per_pai=per_pai,
        apcer_pooled=pooled,
        pai_names=tuple(scores.pai_names[c] for c in species),
    )


@dataclass(frozen=True)
class ErrorRates:
    """Error rates of one set at one threshold."""

    threshold: float
    apcer_per_pai: dict[str, float]
    apcer_pooled: float
    bpcer: float

    @property
    def apcer(self) -> float:
        return max(self.apcer_per_pai.values())

    @property
    def worst_pai(self) -> str:
        return max(self.apcer_per_pai, key=lambda k: self.apcer_per_pai[k])

    @property
    def acer(self) -> float:
        return (self.apcer + self.bpcer) / 2.0

    @property
    def hter(self) -> float:
        return (self.apcer_pooled + self.bpcer) / 2.0


def error_rates(scores: ScoreSet, threshold: float) -> ErrorRates:
    """APCER per species, pooled APCER and BPCER of ``scores`` at ``threshold``."""
    scores.require_both_classes()
    accepted = scores.scores >= threshold
    attack = ~scores.bonafide
    per_pai: dict[str, float] = {}
    totals = np.bincount(scores.pai[attack], minlength=len(scores.pai_names))
    hits = np.bincount(scores.pai[attack & accepted], minlength=len(scores.pai_names))
    for code, name in enumerate(scores.pai_names):
        if totals[code]:
            per_pai[name] = float(hits[code] / totals[code])
    return ErrorRates(
        threshold=float(threshold),
        apcer_per_pai=per_pai,
        apcer_pooled=float(np.count_nonzero(attack & accepted) / np.count_nonzero(attack)),
        bpcer=float(np.count_nonzero(scores.bonafide & ~accepted) / scores.n_bonafide),
    )


def _eer_index(apcer: np.ndarray, bpcer: np.ndarray) -> int:
    """Threshold index where |APCER - BPCER| is smallest.

    Ties go to the smaller APCER + BPCER, then to the lowest threshold.
    """
    gap = np.abs(apcer - bpcer)
    candidates = np.flatnonzero(gap <= gap.min() + _RATE_TOL)
    total = apcer[candidates] + bpcer[candidates]
    return int(candidates[np.flatnonzero(total <= total.min() + _RATE_TOL)[0]])


def equal_error_rate(apcer: np.ndarray, bpcer: np.ndarray) -> float:
    """EER as the mean of APCER and BPCER at the closest crossing."""
    i = _eer_index(apcer, bpcer)
    return float((apcer[i] + bpcer[i]) / 2.0)


def auc(scores: ScoreSet) -> float:
    """Area under the pooled ROC: P(bona fide score > attack score), ties count half."""
    scores.require_both_classes()
    _, inverse, counts = np.unique(scores.scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of the last element of each tie group
    average_rank = upper - (counts - 1) / 2.0
    n_bona, n_attack = scores.n_bonafide, scores.n_attack
    rank_sum = average_rank[inverse][scores.bonafide].sum()
    return float((rank_sum - n_bona * (n_bona + 1) / 2.0) / (n_bona * n_attack))


def auc_from_curve(curve: ErrorCurve) -> float:
    """AUC by the trapezoid rule over the pooled ROC; equals :func:`auc` (ties count half)."""
    fpr = curve.apcer_pooled
    tpr = 1.0 - curve.bpcer
    return float(np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:])) / 2.0)


def tpr_at_fpr(curve: ErrorCurve, fpr: float) -> float:
    """Highest TPR (1 - BPCER) among thresholds whose pooled APCER <= ``fpr``."""
    ok = np.flatnonzero(curve.apcer_pooled <= fpr + _RATE_TOL)
    return float(1.0 - curve.bpcer[ok[0]])  # the last threshold always has APCER 0


# ----------------------------------------------------------------------------
# Threshold criteria (applied on the dev set, never on test)

_CRITERION_RE = re.compile(r"^(bpcer@apcer|apcer@bpcer|fixed)\s*=\s*([-+0-9.eE]+)(%?)$")
_BPCER_N_RE = re.compile(r"^bpcer(\d+)$")
CRITERIA_HELP = (
    "eer (APCER = BPCER, default), bpcer@apcer=X (lowest BPCER with APCER <= X; "
    "bpcer20 = bpcer@apcer=0.05), apcer@bpcer=X (lowest APCER with BPCER <= X), "
    "min-hter (minimum HTER), fixed=T (threshold T as given); X as a fraction or a percentage"
)


@dataclass(frozen=True)
class Criterion:
    """A named rule that picks a decision threshold on the dev set."""

    kind: str  # eer | bpcer@apcer | apcer@bpcer | min-hter | fixed
    value: float | None = None

    @property
    def name(self) -> str:
        if self.value is None:
            return self.kind
        return f"{self.kind}={self.value:g}"

    @classmethod
    def parse(cls, text: str) -> Criterion:
        """Parse ``eer``, ``min-hter``, ``bpcer@apcer=0.05``, ``bpcer20``, ``fixed=0.5``..."""
        t = text.strip().lower().replace(" ", "")
        if t in ("eer", "min-hter"):
            return cls(t)
        m = _BPCER_N_RE.match(t)
        if m and int(m.group(1)) > 0:
            return cls("bpcer@apcer", 1.0 / int(m.group(1)))
        m = _CRITERION_RE.match(t)
        if not m:
            raise InputError(f"unknown threshold criterion {text!r}; use {CRITERIA_HELP}")
        kind, number, percent = m.groups()
        try:
            value = float(number)
        except ValueError:
            raise InputError(f"criterion {text!r}: {number!r} is not a number") from None
        if kind == "fixed":
            if not math.isfinite(value):
                raise InputError(f"criterion {text!r}: a fixed threshold must be a finite number")
            if percent:
                raise InputError(
                    f"criterion {text!r}: a fixed threshold is a score, not a percentage"
                )
            return cls(kind, value)
        if percent:
            value /= 100.0
        if not 0.0 <= value <= 1.0:
            raise InputError(f"criterion {text!r}: the target rate must lie in [0, 1] (or 0-100%)")
        return cls(kind, value)

    def select(self, curve: ErrorCurve) -> float:
        """The threshold this criterion picks on ``curve`` (a dev-set curve)."""
        t = curve.thresholds
        if self.kind == "fixed":
            assert self.value is not None
            return float(self.value)
        if self.kind == "eer":
            return float(t[_eer_index(curve.apcer, curve.bpcer)])
        if self.kind == "min-hter":
            return float(t[np.argmin(curve.apcer_pooled + curve.bpcer)])
        assert self.value is not None
        if self.kind == "bpcer@apcer":
            # APCER falls as the threshold rises: the first threshold meeting the
            # target has the lowest BPCER. The last threshold (reject all) always does.
            return float(t[np.flatnonzero(curve.apcer <= self.value + _RATE_TOL)[0]])
        if self.kind == "apcer@bpcer":
            return float(t[np.flatnonzero(curve.bpcer <= self.value + _RATE_TOL)[-1]])
        raise InputError(f"unknown criterion kind {self.kind!r}")
