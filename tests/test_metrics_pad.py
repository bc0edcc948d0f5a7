"""PAD metrics: hand-computed cases, brute-force agreement, ties and invariances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fasdistill.errors import InputError
from fasdistill.metrics import (
    Criterion,
    ScoreSet,
    auc,
    auc_from_curve,
    equal_error_rate,
    error_curve,
    error_rates,
    tpr_at_fpr,
)


def make(bona: list[float], attacks: dict[str, list[float]]) -> ScoreSet:
    scores = list(bona)
    labels = ["bonafide"] * len(bona)
    pai = [""] * len(bona)
    for name, values in attacks.items():
        scores += values
        labels += ["attack"] * len(values)
        pai += [name] * len(values)
    return ScoreSet.from_arrays(scores, labels, pai)


HAND = make([0.9, 0.8, 0.7, 0.2], {"print": [0.1, 0.6], "replay": [0.7, 0.3, 0.05]})


def test_hand_computed_rates_and_iso_definitions() -> None:
    r = error_rates(HAND, 0.5)
    # One of four bona fide rejected (0.2); print 0.6 accepted (1/2); replay 0.7 accepted (1/3).
    assert r.bpcer == 0.25
    assert r.apcer_per_pai == {"print": 0.5, "replay": pytest.approx(1 / 3)}
    assert r.apcer == 0.5 and r.worst_pai == "print"
    assert r.apcer_pooled == pytest.approx(2 / 5)
    assert r.acer == pytest.approx((0.5 + 0.25) / 2)
    assert r.hter == pytest.approx((0.4 + 0.25) / 2)


def test_apcer_and_bpcer_are_not_swapped() -> None:
    # Only attacks score high here: a swapped implementation reports APCER 0, BPCER 1.
    s = make([0.1, 0.2], {"print": [0.8, 0.9]})
    r = error_rates(s, 0.5)
    assert r.apcer == 1.0 and r.bpcer == 1.0
    s = make([0.9, 0.8, 0.7], {"print": [0.1, 0.6, 0.2, 0.3]})
    r = error_rates(s, 0.65)
    assert r.apcer == 0.0
    assert r.bpcer == 0.0
    r = error_rates(s, 0.75)
    assert r.bpcer == pytest.approx(1 / 3)  # bona fide 0.7 rejected
    assert r.apcer == 0.0
    r = error_rates(s, 0.55)
    assert r.apcer == 0.25  # attack 0.6 accepted as bona fide
    assert r.bpcer == 0.0


def test_score_equal_to_threshold_is_accepted() -> None:
    s = make([0.5], {"print": [0.5]})
    r = error_rates(s, 0.5)
    assert r.apcer == 1.0 and r.bpcer == 0.0
    assert auc(s) == 0.5


def test_eer_hand_case_with_tied_gaps() -> None:
    s = make([1, 2, 3, 4], {"print": [0, 1, 2, 3]})
    curve = error_curve(s)
    # |APCER - BPCER| is 0.25 at t=2 (0.5 vs 0.25) and at t=3 (0.25 vs 0.5): lowest wins.
    assert Criterion.parse("eer").select(curve) == 2.0
    assert equal_error_rate(curve.apcer, curve.bpcer) == 0.375


def test_auc_hand_case() -> None:
    # 4 x 4 pairs: bona fide wins 13, ties 2 (count half) -> 14/16.
    s = make([1, 2, 3, 4], {"print": [0, 1, 2, 0.5]})
    assert auc(s) == pytest.approx((13 + 0.5 * 2) / 16)


def test_criterion_parsing() -> None:
    assert Criterion.parse("EER") == Criterion("eer")
    assert Criterion.parse("bpcer20") == Criterion("bpcer@apcer", 0.05)
    assert Criterion.parse("bpcer@apcer=5%") == Criterion("bpcer@apcer", 0.05)
    assert Criterion.parse("apcer@bpcer=0.1") == Criterion("apcer@bpcer", 0.1)
    assert Criterion.parse("fixed=-1.5") == Criterion("fixed", -1.5)
    assert Criterion.parse("min-hter").name == "min-hter"
    for bad in ("eerr", "bpcer@apcer=1.5", "bpcer@apcer=x", "bpcer0", "fixed=5%"):
        with pytest.raises(InputError):
            Criterion.parse(bad)


def test_one_class_sets_are_rejected() -> None:
    with pytest.raises(InputError, match="no attack"):
        error_curve(make([0.1, 0.2], {}))
    with pytest.raises(InputError, match="no bona fide"):
        error_curve(make([], {"print": [0.1]}))


# ---------------------------------------------------------------------------- brute force

SPECIES = ("print", "replay", "mask")


@st.composite
def score_sets(draw: st.DrawFn, integer_scores: bool = False) -> ScoreSet:
    n = draw(st.integers(2, 40))
    if integer_scores:  # many ties
        value = st.integers(-5, 5).map(float)
    else:
        value = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
    scores = draw(st.lists(value, min_size=n, max_size=n))
    kinds = draw(st.lists(st.sampled_from(("bonafide", *SPECIES)), min_size=n, max_size=n))
    assume("bonafide" in kinds and any(k != "bonafide" for k in kinds))
    labels = ["bonafide" if k == "bonafide" else "attack" for k in kinds]
    pai = ["" if k == "bonafide" else k for k in kinds]
    return ScoreSet.from_arrays(scores, labels, pai)


def brute_rates(s: ScoreSet, t: float) -> tuple[float, float, float]:
    """(ISO APCER, pooled APCER, BPCER) with plain loops."""
    bona = [x for x, b in zip(s.scores, s.bonafide, strict=True) if b]
    per_species: dict[int, list[float]] = {}
    for x, b, p in zip(s.scores, s.bonafide, s.pai, strict=True):
        if not b:
            per_species.setdefault(int(p), []).append(x)
    apcers = [sum(x >= t for x in xs) / len(xs) for xs in per_species.values()]
    attacks = [x for xs in per_species.values() for x in xs]
    pooled = sum(x >= t for x in attacks) / len(attacks)
    bpcer = sum(x < t for x in bona) / len(bona)
    return max(apcers), pooled, bpcer


def brute_thresholds(s: ScoreSet) -> list[float]:
    values = sorted(set(s.scores.tolist()))
    return [*values, values[-1] + 1.0]


@given(score_sets())
def test_curve_matches_brute_force(s: ScoreSet) -> None:
    curve = error_curve(s)
    assert curve.thresholds.tolist()[:-1] == sorted(set(s.scores.tolist()))
    for i, t in enumerate(curve.thresholds):
        iso, pooled, bpcer = brute_rates(s, float(t))
        assert curve.apcer[i] == pytest.approx(iso)
        assert curve.apcer_pooled[i] == pytest.approx(pooled)
        assert curve.bpcer[i] == pytest.approx(bpcer)
        r = error_rates(s, float(t))
        assert (r.apcer, r.apcer_pooled, r.bpcer) == pytest.approx((iso, pooled, bpcer))


@given(score_sets(integer_scores=True))
def test_criteria_match_brute_force(s: ScoreSet) -> None:
    check_criteria_against_brute_force(s)


@pytest.mark.slow
@settings(max_examples=3000)
@given(st.one_of(score_sets(integer_scores=True), score_sets()))
def test_criteria_match_brute_force_thorough(s: ScoreSet) -> None:
    check_criteria_against_brute_force(s)


def check_criteria_against_brute_force(s: ScoreSet) -> None:
    curve = error_curve(s)
    table = [brute_rates(s, t) for t in brute_thresholds(s)]
    # EER: smallest |APCER - BPCER|, ties to the smallest sum.
    gap = min(abs(a - b) for a, _, b in table)
    eer = min((a + b) / 2 for a, _, b in table if abs(a - b) == pytest.approx(gap))
    assert equal_error_rate(curve.apcer, curve.bpcer) == pytest.approx(eer)
    iso, _, bpcer = brute_rates(s, Criterion.parse("eer").select(curve))
    assert (iso + bpcer) / 2 == pytest.approx(eer)
    # min-HTER
    best_hter = min((p + b) / 2 for _, p, b in table)
    _, pooled, bpcer = brute_rates(s, Criterion.parse("min-hter").select(curve))
    assert (pooled + bpcer) / 2 == pytest.approx(best_hter)
    for target in (0.0, 0.05, 0.2, 0.5):
        best_bpcer = min(b for a, _, b in table if a <= target + 1e-12)
        _, _, got = brute_rates(s, Criterion("bpcer@apcer", target).select(curve))
        assert got == pytest.approx(best_bpcer)
        best_apcer = min(a for a, _, b in table if b <= target + 1e-12)
        got_apcer, _, got_bpcer = brute_rates(s, Criterion("apcer@bpcer", target).select(curve))
        assert got_apcer == pytest.approx(best_apcer)
        assert got_bpcer <= target + 1e-12
        best_tpr = max(1 - b for _, p, b in table if p <= target + 1e-12)
        assert tpr_at_fpr(curve, target) == pytest.approx(best_tpr)


@given(score_sets(integer_scores=True))
def test_auc_matches_pairwise_definition(s: ScoreSet) -> None:
    bona = s.scores[s.bonafide]
    att = s.scores[~s.bonafide]
    wins = sum((b > a) + 0.5 * (b == a) for b in bona for a in att)
    assert auc(s) == pytest.approx(wins / (len(bona) * len(att)))
    assert auc_from_curve(error_curve(s)) == pytest.approx(wins / (len(bona) * len(att)))


@given(
    score_sets(integer_scores=True),
    st.sampled_from(["eer", "min-hter", "bpcer20", "apcer@bpcer=0.1"]),
)
def test_metrics_invariant_to_monotonic_transforms(s: ScoreSet, name: str) -> None:
    def transform(x: np.ndarray) -> np.ndarray:
        return np.exp(x / 3.0) * 7.0 - 2.0  # strictly increasing, keeps ties and order

    moved = ScoreSet.from_arrays(
        transform(s.scores), s.bonafide.tolist(), [s.pai_names[p] if p >= 0 else "" for p in s.pai]
    )
    criterion = Criterion.parse(name)
    t1 = criterion.select(error_curve(s))
    t2 = criterion.select(error_curve(moved))
    r1, r2 = error_rates(s, t1), error_rates(moved, t2)
    assert (r1.apcer, r1.apcer_pooled, r1.bpcer) == (r2.apcer, r2.apcer_pooled, r2.bpcer)
    assert auc(s) == auc(moved)
    c1, c2 = error_curve(s), error_curve(moved)
    assert equal_error_rate(c1.apcer, c1.bpcer) == equal_error_rate(c2.apcer, c2.bpcer)
    if math.isfinite(t1) and t1 <= s.scores.max():
        assert transform(np.array([t1]))[0] == pytest.approx(t2)
