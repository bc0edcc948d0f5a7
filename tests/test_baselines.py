"""Hand-crafted baselines: the classifier, the features and scoring a SynthSpoof set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fasdistill.baselines import (
    LogisticRegression,
    colour_hist,
    fft_energy,
    fit_and_score,
    load_crops,
)
from fasdistill.data.synth import SynthConfig, generate, iter_samples
from fasdistill.errors import InputError


def test_logistic_regression_separates_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (50, 3)), rng.normal(2, 1, (50, 3))])
    y = np.r_[np.zeros(50), np.ones(50)]
    p = LogisticRegression().fit(x, y).predict(x)
    assert ((p > 0.5) == y).mean() > 0.95
    assert np.array_equal(p, LogisticRegression().fit(x, y).predict(x))


def test_features_have_fixed_length_and_normalisation() -> None:
    rng = np.random.default_rng(1)
    for shape in ((40, 30, 3), (90, 70, 3)):
        crop = rng.integers(0, 256, shape, dtype=np.uint8)
        hist = colour_hist(crop)
        assert hist.shape == (64 + 3 * 16,)
        assert (hist**2).sum() == pytest.approx(4.0)  # four histograms, each unit mass
        assert fft_energy(crop).shape == (16,)


def test_fit_and_score_a_synthetic_set(tmp_path: Path) -> None:
    config = SynthConfig(subjects=3, samples=1, size=48, domains=("studio", "dim"), seed=5)
    generate(tmp_path / "s", config, workers=1)
    rows = list(iter_samples(tmp_path / "s"))
    scored = fit_and_score(rows, load_crops(tmp_path / "s", rows), "colour-hist")
    assert set(scored) == {"dev", "test"}
    for split, scores in scored.items():
        assert len(scores) == sum(r["split"] == split for r in rows)
        assert ((scores.scores >= 0) & (scores.scores <= 1)).all()
        assert scores.n_bonafide and scores.n_attack
    train_only = [r for r in rows if r["split"] == "train"]
    with pytest.raises(InputError, match="no 'dev' rows"):
        fit_and_score(train_only, load_crops(tmp_path / "s", train_only), "fft-energy")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    row = {"path": "missing.png", "box_x": "0", "box_y": "0", "box_w": "4", "box_h": "4"}
    with pytest.raises(InputError, match=r"missing\.png: cannot read"):
        load_crops(tmp_path, [row])
