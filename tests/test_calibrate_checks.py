"""calibrate refuses thresholds that lock users out or let attacks in; says when data are few."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from fasdistill.cli import main
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD
from fasdistill.export.onnx import export_onnx
from fasdistill.infer.calibrate import calibrate, min_samples_for_rate
from fasdistill.infer.model_file import open_model
from fasdistill.metrics.bootstrap import min_resamples, min_units
from fasdistill.metrics.scores import ScoreSet, write_scores


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny exported model with fasdistill metadata (the scores come from score files)."""
    meta = {
        "model": "tiny",
        "role": "student",
        "input_size": 8,
        "crop_scale": 1.5,
        "colour_order": COLOUR_ORDER,
        "mean": list(MEAN),
        "std": list(STD),
        "classes": ["bonafide", "attack"],
        "threshold": 0.5,
        "threshold_criterion": "eer on dev",
        "threshold_level": "frame",
    }
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    return export_onnx(net, meta, tmp_path_factory.mktemp("model") / "model.onnx")


def score_file(
    path: Path,
    scores: Sequence[float],
    labels: Sequence[str],
    subjects: Sequence[str] | None = None,
    pai: Sequence[str] | None = None,
) -> Path:
    return write_scores(path, ScoreSet.from_arrays(scores, labels, pai=pai, subjects=subjects))


def separable(path: Path, subjects: int = 8, per_subject: int = 4) -> Path:
    """Bona fide near 0.8, attacks near 0.2, ``per_subject`` of each for every subject."""
    rng = np.random.default_rng(0)
    n = subjects * per_subject
    live = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    scores = np.clip(np.where(live, 0.8, 0.2) + rng.normal(0, 0.05, 2 * n), 0, 1)
    who = [f"s{i % subjects}" for i in range(2 * n)]
    return score_file(path, scores, np.where(live, "bonafide", "attack"), who)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("fixed=-1", "threshold -1 lies outside the score range [0, 1] of P(bona fide)"),
        ("fixed=-1", "accepts every attack of a species (APCER 100 %, attack: 32 of 32"),
        ("fixed=1.5", "threshold 1.5 lies outside the score range [0, 1]"),
        ("fixed=1.5", "rejects every live face (BPCER 100 % of 32 bona fide)"),
        ("fixed=0", "accepts every attack of a species (APCER 100 %"),
    ],
)
def test_a_threshold_that_locks_out_or_lets_in_everyone_is_refused(
    criterion: str,
    expected: str,
    model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = separable(tmp_path / "dev.csv")
    out = tmp_path / "cal.onnx"
    base = ["calibrate", "--model", str(model), "--data", str(data), "--out", str(out)]
    code, _, err = run([*base, "--criterion", criterion, "--bootstrap", "0"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"--criterion {criterion}: " in err and expected in err and "--force" in err, err
    assert not out.exists()
    # --force writes it, and a warning says what it does.
    code, printed, err = run(
        [*base, "--criterion", criterion, "--bootstrap", "0", "--force"], capsys
    )
    assert code == 0 and f"wrote {out}" in printed
    assert "warning: written because of --force: " in err and expected in err, err
    assert open_model(out).threshold == float(criterion.split("=")[1])


def test_a_target_met_only_by_rejecting_everyone_is_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """bpcer@apcer=0.1 on data where an attack outscores every live face."""
    data = score_file(
        tmp_path / "dev.csv",
        [0.6, 0.7, 0.8, 0.2, 0.3, 0.9],
        ["bonafide"] * 3 + ["attack"] * 3,
        ["a", "b", "c", "a", "b", "c"],
    )
    args = ["calibrate", "--model", str(model), "--data", str(data), "--bootstrap", "0"]
    code, _, err = run([*args, "--criterion", "bpcer@apcer=0.1"], capsys)
    assert code == 2 and "--criterion bpcer@apcer=0.1: " in err
    assert "rejects every live face (BPCER 100 % of 3 bona fide)" in err


def test_scores_that_are_not_probabilities_are_refused(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = score_file(
        tmp_path / "logits.csv", [2.5, 1.0, -3.0, -0.5], ["bonafide"] * 2 + ["attack"] * 2
    )
    code, _, err = run(["calibrate", "--model", str(model), "--data", str(data)], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"{data}: 3 of 4 scores lie outside [0, 1] (min -3, max 2.5)" in err, err


@pytest.mark.parametrize("resamples", [1, 10, 39])
def test_too_few_resamples_for_an_interval_are_refused(
    resamples: int, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = separable(tmp_path / "dev.csv")
    args = ["calibrate", "--model", str(model), "--data", str(data), "--bootstrap", str(resamples)]
    code, _, err = run(args, capsys)
    assert code == 2 and f"--bootstrap {resamples}: " in err and "at least 40 resamples" in err
    assert not list(tmp_path.glob("*.onnx"))


def test_forty_resamples_give_intervals_that_contain_their_estimates(
    model: Path, tmp_path: Path
) -> None:
    report = calibrate(model, separable(tmp_path / "dev.csv"), "eer", bootstrap=40)
    on = report["on_calibration_data"]
    for name in ("apcer", "bpcer"):
        low, high = on[f"{name}_ci"]
        assert low <= on[name] <= high
    assert report["warnings"] == []  # 8 subjects of each class, no target rate


def test_one_subject_with_one_sample_of_each_class_warns(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = score_file(tmp_path / "dev.csv", [0.9, 0.1], ["bonafide", "attack"], ["s1", "s1"])
    args = ["calibrate", "--model", str(model), "--data", str(data), "--bootstrap", "100"]
    code, printed, err = run([*args, "--json"], capsys)
    assert code == 0
    report = json.loads(printed)
    assert report["out_of_bag"]["note"].startswith("not estimated: only 0 of 100 resamples")
    (warning,) = report["warnings"]
    assert warning.startswith("too few subjects: 1 with bona fide and 1 with attack samples")
    assert "needs at least 4 of each" in warning
    assert "1 bona fide and 1 attack samples of 1 subjects" in warning
    assert "APCER [0.00, 0.00] %, width 0.00 points" in warning
    assert f"warning: {warning}" in err


def test_a_target_rate_needs_enough_samples_to_show_it(model: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    subjects = [f"s{i % 20}" for i in range(200)]
    live = np.arange(200) < 100
    scores = np.where(live, rng.uniform(0.5, 1.0, 200), rng.uniform(0.0, 0.6, 200))
    data = score_file(tmp_path / "dev.csv", scores, np.where(live, "bonafide", "attack"), subjects)
    report = calibrate(model, data, "bpcer@apcer=0.01", bootstrap=0)
    (warning,) = report["warnings"]
    assert warning.startswith(
        "too few samples to show APCER <= 1 %: at least 300 attacks of each PAI species are "
        "needed (here attack 100); with 100 and no error the 95 % upper bound on APCER is 2.95 %"
    )
    report = calibrate(model, data, "apcer@bpcer=0.05", bootstrap=0)
    assert report["warnings"] == []  # 100 bona fide >= 3 / 0.05 = 60
    report = calibrate(model, data, "apcer@bpcer=0.02", bootstrap=0)
    assert "at least 150 bona fide samples are needed (here bona fide 100)" in report["warnings"][0]


def test_an_interval_without_its_estimate_says_why(model: Path, tmp_path: Path) -> None:
    """Five species, each accepted from a different fifth of the subjects: APCER 20 % on the
    data, but the worst of five resampled species rates lies above 20 % in nearly every
    resample, so the percentile interval of the worst-species APCER misses its estimate."""
    scores, labels, pai, who = [], [], [], []
    for s in range(10):
        for k in range(5):
            scores.append(0.9 if (s + k) % 5 == 0 else 0.1)
            labels.append("attack")
            pai.append(f"pai{k}")
            who.append(f"s{s}")
        scores += [0.9, 0.8]
        labels += ["bonafide", "bonafide"]
        pai += ["", ""]
        who += [f"s{s}", f"s{s}"]
    data = score_file(tmp_path / "dev.csv", scores, labels, who, pai)
    report = calibrate(model, data, "fixed=0.5", bootstrap=1000)
    on = report["on_calibration_data"]
    assert on["apcer"] == pytest.approx(0.2) and on["apcer_ci"][0] > 0.2
    notes = [w for w in report["warnings"] if "does not contain its estimate" in w]
    assert len(notes) == 1 and notes[0].startswith("the APCER interval [30.00, 60.00] %")
    assert "worst species' rate" in notes[0]


def test_the_minimums_follow_from_the_interval() -> None:
    assert min_resamples(0.95) == 40 and min_resamples(0.9) == 20
    assert min_units(0.95) == 4 and min_units(0.8) == 3
    assert min_samples_for_rate(0.01) == 300 and min_samples_for_rate(0.05) == 60
    assert min_samples_for_rate(0.0) is None
