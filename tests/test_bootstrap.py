"""Cluster bootstrap: agreement with a plain resampling loop, determinism, coverage sanity."""

from __future__ import annotations

import numpy as np
import pytest

from fasdistill.errors import InputError
from fasdistill.metrics import bootstrap_ci, error_rates
from fasdistill.metrics.simulate import simulate_scores


def loop_bootstrap(scores, threshold, n_resamples, seed):  # type: ignore[no-untyped-def]
    """The textbook subject bootstrap, one resample at a time."""
    rng = np.random.default_rng(seed)
    n_units = len(scores.subject_names)
    weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_resamples)
    acers, hters = [], []
    for w in weights:
        rows = np.repeat(np.arange(len(scores)), w[scores.subject])
        bona = scores.bonafide[rows]
        accepted = scores.scores[rows] >= threshold
        if not bona.any() or bona.all():
            continue
        bpcer = np.mean(~accepted[bona])
        per_pai = [
            np.mean(accepted[scores.pai[rows] == k]) for k in np.unique(scores.pai[rows][~bona])
        ]
        acers.append((max(per_pai) + bpcer) / 2)
        hters.append((np.mean(accepted[~bona]) + bpcer) / 2)
    return np.quantile(acers, [0.025, 0.975]), np.quantile(hters, [0.025, 0.975])


def test_matches_plain_resampling_loop() -> None:
    s = simulate_scores(n_subjects=12, frames=3, seed=3)
    ci = bootstrap_ci(s, threshold=-0.7, unit="subject", n_resamples=300, seed=11)
    acer, hter = loop_bootstrap(s, -0.7, 300, 11)
    assert ci["acer"] == pytest.approx(list(acer))
    assert ci["hter"] == pytest.approx(list(hter))
    assert ci["n_units"] == 12 and ci["n_valid"] == 300


def test_deterministic_and_brackets_point_estimate() -> None:
    s = simulate_scores(n_subjects=30, seed=5)
    a = bootstrap_ci(s, -0.7, n_resamples=400, seed=1)
    b = bootstrap_ci(s, -0.7, n_resamples=400, seed=1)
    assert a == b
    r = error_rates(s, -0.7)
    assert a["acer"][0] <= r.acer <= a["acer"][1]
    assert a["hter"][0] <= r.hter <= a["hter"][1]
    video = bootstrap_ci(s, -0.7, unit="video", n_resamples=400, seed=1)
    assert video["n_units"] == len(s.video_names)
    assert video["acer"] != a["acer"]


def test_bad_arguments() -> None:
    s = simulate_scores(n_subjects=2)
    with pytest.raises(InputError, match="bootstrap unit"):
        bootstrap_ci(s, 0.0, unit="frame")
    with pytest.raises(InputError, match="n_resamples"):
        bootstrap_ci(s, 0.0, n_resamples=0)
