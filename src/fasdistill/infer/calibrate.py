"""Choose a model's operating point on the deployment's own data, and write it into a copy.

A threshold tuned on someone else's data rejects live users or accepts photos in
a new place. ``calibrate`` scores the user's dev crops with the model file in its
own runtime (or reads scores it already has), picks the threshold by any criterion
of the metrics stage (``eer``, ``bpcer@apcer=0.01``, ``apcer@bpcer=0.05``,
``min-hter``, ``fixed=0.7``), and writes a copy of the model carrying it.

Two sets of expected error rates are reported:

- **on the calibration data** at the chosen threshold, with cluster-bootstrap
  intervals at that fixed threshold (how noisy the estimate is; optimistic, since
  the same data chose the threshold);
- **out of bag**: in every bootstrap resample of subjects the threshold is chosen
  on the drawn subjects and applied to the subjects not drawn; the median and
  percentile interval of those rates estimate what new people from the same
  population will see, threshold-choice noise included.

Before anything is written, the choice is checked: scores must be probabilities;
a threshold outside [0, 1], or one that rejects every live face or accepts every
attack of a species on the calibration data, is refused unless ``force``; too few
samples or subjects for the criterion (minimums derived in :func:`data_warnings`)
and intervals that cannot be trusted are warnings with the figures.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD, CropDataset, read_crop_index
from fasdistill.errors import InputError
from fasdistill.infer.model_file import ModelFile, open_model, write_with_threshold
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.metrics.bootstrap import check_resamples, min_resamples, min_units
from fasdistill.metrics.pad import Criterion, ErrorRates, error_curve, error_rates
from fasdistill.metrics.scores import ScoreSet, read_scores


def default_output(model: Path) -> Path:
    """``model.int8.onnx`` -> ``model.int8.calibrated.onnx`` beside it."""
    return model.with_name(f"{model.stem}.calibrated{model.suffix}")


def load_scores(model: ModelFile, data: Path, split: str, threads: int) -> ScoreSet:
    """The calibration scores: a score CSV as given, or ``split`` of a crop index scored now."""
    if data.suffix.lower() == ".csv" and data.name != "index.csv":
        return read_scores(data)
    from fasdistill.engine.evaluation import score_dataset

    index = read_crop_index(data)
    meta = model.meta
    if index.scale != meta["crop_scale"]:
        raise InputError(
            f"{data}: crops at scale {index.scale}, {model.path.name} expects "
            f"{meta['crop_scale']} (prepare crops at its scale)"
        )
    expected = {"colour_order": COLOUR_ORDER, "mean": list(MEAN), "std": list(STD)}
    for key, value in expected.items():
        if meta[key] != value:
            raise InputError(
                f"{model.path}: {key} {meta[key]} differs from the crop loader's {value}; "
                "calibrate from a score file made with the model's own preprocessing"
            )
    scorer = model.scorer(threads)
    dataset = CropDataset(index, split, int(meta["input_size"]))
    return score_dataset(lambda images: scorer(images.numpy()), dataset, 64)


def _subset(scores: ScoreSet, rows: np.ndarray) -> ScoreSet:
    return dataclasses.replace(
        scores,
        scores=scores.scores[rows],
        bonafide=scores.bonafide[rows],
        pai=scores.pai[rows],
        video=scores.video[rows],
        subject=scores.subject[rows],
        sample_ids=tuple(scores.sample_ids[i] for i in rows),
    )


def out_of_bag(
    scores: ScoreSet, criterion: Criterion, resamples: int, confidence: float, seed: int = 0
) -> dict[str, Any]:
    """Rates on subjects left out of each resample, at the threshold its drawn subjects chose."""
    rng = np.random.default_rng(seed)
    units = np.unique(scores.subject)
    rows_of = {u: np.flatnonzero(scores.subject == u) for u in units}
    apcer, bpcer = [], []
    for _ in range(resamples):
        drawn = rng.choice(units, size=len(units), replace=True)
        left = np.setdiff1d(units, drawn)
        inbag = _subset(scores, np.concatenate([rows_of[u] for u in drawn]))
        oob = _subset(scores, np.concatenate([rows_of[u] for u in left] or [np.array([], int)]))
        if min(inbag.n_bonafide, inbag.n_attack, oob.n_bonafide, oob.n_attack) == 0:
            continue
        rates = error_rates(oob, criterion.select(error_curve(inbag)))
        apcer.append(rates.apcer)
        bpcer.append(rates.bpcer)
    needed = min_resamples(confidence)
    if len(apcer) < needed:
        return {
            "valid_resamples": len(apcer),
            "note": f"not estimated: only {len(apcer)} of {resamples} resamples left out "
            f"subjects of both classes (at least {needed} needed; calibrate on more subjects)",
        }
    alpha = (1 - confidence) / 2
    out: dict[str, Any] = {"valid_resamples": len(apcer), "unit": "subject"}
    for name, values in (("apcer", apcer), ("bpcer", bpcer)):
        lo, mid, hi = np.quantile(values, [alpha, 0.5, 1 - alpha])
        out[name] = float(mid)
        out[f"{name}_ci"] = [float(lo), float(hi)]
    return out


def check_probabilities(scores: ScoreSet, source: Path) -> None:
    """Refuse scores that are not probabilities: a threshold on them would mean nothing here."""
    outside = (scores.scores < 0.0) | (scores.scores > 1.0)
    if outside.any():
        raise InputError(
            f"{source}: {int(outside.sum())} of {len(scores)} scores lie outside [0, 1] "
            f"(min {scores.scores.min():.6g}, max {scores.scores.max():.6g}); calibrate needs "
            "P(bona fide) probabilities, higher = bona fide (not logits or distances)"
        )


def threshold_problems(threshold: float, rates: ErrorRates, scores: ScoreSet) -> list[str]:
    """What makes ``threshold`` unusable: outside the score range, or 100 % errors for a class."""
    problems = []
    if not 0.0 <= threshold <= 1.0:
        problems.append(
            f"threshold {threshold:.6g} lies outside the score range [0, 1] of P(bona fide)"
        )
    if rates.bpcer >= 1.0:
        problems.append(
            f"on the calibration data it rejects every live face (BPCER 100 % of "
            f"{scores.n_bonafide} bona fide)"
        )
    every = [name for name, rate in rates.apcer_per_pai.items() if rate >= 1.0]
    if every:
        counts = scores.pai_counts()
        accepted = ", ".join(f"{name}: {counts[name]} of {counts[name]}" for name in every)
        problems.append(
            f"on the calibration data it accepts every attack of a species (APCER 100 %, "
            f"{accepted} accepted)"
        )
    return problems


def min_samples_for_rate(rate: float, confidence: float = 0.95) -> int | None:
    """Fewest samples that can show an error rate <= ``rate`` at ``confidence``.

    With n samples and no error, the one-sided upper bound on the rate is
    1 - (1 - confidence)**(1/n), about -ln(1 - confidence)/n (the rule of three,
    3/n, at 95 %); it reaches ``rate`` only from n = ln(1/(1 - confidence))/rate.
    None for a rate of 0, which no finite set can show.
    """
    if rate <= 0.0:
        return None
    return math.ceil(math.log(1.0 / (1.0 - confidence)) / rate - 1e-9)


def _width(ci: list[float] | None) -> str:
    if not ci:
        return "no interval"
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] %, width {100 * (ci[1] - ci[0]):.2f} points"


def data_warnings(
    scores: ScoreSet, criterion: Criterion, ci: dict[str, Any], confidence: float
) -> list[str]:
    """Figures showing the calibration data are too few for the criterion, if they are.

    Two minimums: every criterion needs :func:`min_units` subjects with bona fide
    samples and as many with attacks, or the subject bootstrap's interval is one
    subject's rate; a criterion with a target rate r needs
    :func:`min_samples_for_rate` samples of the constrained class (attacks of each
    PAI species for APCER, bona fide for BPCER), or the target cannot be shown.
    """
    warnings = []
    figures = (
        f"{scores.n_bonafide} bona fide and {scores.n_attack} attack samples of "
        f"{np.unique(scores.subject).size} subjects; intervals here: APCER "
        f"{_width(ci.get('apcer'))}, BPCER {_width(ci.get('bpcer'))}"
    )
    k = min_units(confidence)
    with_bona = int(np.unique(scores.subject[scores.bonafide]).size)
    with_attack = int(np.unique(scores.subject[~scores.bonafide]).size)
    if min(with_bona, with_attack) < k:
        warnings.append(
            f"too few subjects: {with_bona} with bona fide and {with_attack} with attack "
            f"samples; the subject bootstrap needs at least {k} of each, or a "
            f"{100 * confidence:g} % interval is one subject's rate ({figures})"
        )
    if criterion.kind in ("bpcer@apcer", "apcer@bpcer"):
        assert criterion.value is not None
        rate = criterion.value
        needed = min_samples_for_rate(rate, confidence)
        if criterion.kind == "bpcer@apcer":
            counts, what, metric = scores.pai_counts(), "attacks of each PAI species", "APCER"
        else:
            counts, what, metric = {"bona fide": scores.n_bonafide}, "bona fide samples", "BPCER"
        short = {name: n for name, n in counts.items() if needed is None or n < needed}
        if short:
            fewest = min(short.values())
            bound = 1.0 - (1.0 - confidence) ** (1.0 / fewest)
            need = (
                f"no finite number of {what} can show it"
                if needed is None
                else f"at least {needed} {what} are needed"
            )
            have = ", ".join(f"{name} {n}" for name, n in short.items())
            warnings.append(
                f"too few samples to show {metric} <= {100 * rate:g} %: {need} (here {have}); "
                f"with {fewest} and no error the {100 * confidence:g} % upper bound on "
                f"{metric} is {100 * bound:.2f} % ({figures})"
            )
    return warnings


def interval_notes(on_data: dict[str, Any], ci: dict[str, Any], scores: ScoreSet) -> list[str]:
    """Say so when a reported interval does not contain its own estimate, and why."""
    notes = []
    for name in ("apcer", "bpcer"):
        bounds = ci.get(name)
        estimate = on_data[name]
        if not bounds or bounds[0] - 1e-12 <= estimate <= bounds[1] + 1e-12:
            continue
        if name == "apcer" and len(scores.pai_counts()) > 1:
            why = (
                "APCER is the worst species' rate, and the worst of several resampled "
                "species rates lies above the estimate in most resamples (few attacks per "
                "species bias it upward)"
            )
        else:
            why = "its resampled rates are skewed (too few subjects)"
        notes.append(
            f"the {name.upper()} interval [{100 * bounds[0]:.2f}, {100 * bounds[1]:.2f}] % does "
            f"not contain its estimate {100 * estimate:.2f} %: {why}; read it as a sign the "
            "data are too few, not as a range for the rate"
        )
    return notes


def calibrate(
    model_path: str | os.PathLike[str],
    data: str | os.PathLike[str],
    criterion: str,
    out: str | os.PathLike[str] | None = None,
    split: str = "dev",
    level: str | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    threads: int = 1,
    force: bool = False,
) -> dict[str, Any]:
    """Calibrate ``model_path`` on ``data``; write the calibrated copy; return the report.

    Every check runs before anything is written; an unusable threshold raises
    unless ``force`` (then it is written and the report's ``warnings`` say what it does).
    """
    check_resamples(bootstrap, confidence)
    model = open_model(model_path)
    if model.kind == "cascade":
        raise InputError(
            f"{model.path}: a cascade is not calibrated as one model: its band was chosen on dev "
            "for its members' thresholds; calibrate each member, then rebuild it with "
            "fasdistill cascade"
        )
    data = Path(data)
    from_file = data.suffix.lower() == ".csv" and data.name != "index.csv"
    level = level or model.meta.get("threshold_level") or "frame"
    options = EvalOptions(criterion=criterion, level=level, bootstrap=bootstrap,
                          confidence=confidence)  # fmt: skip
    options.validate()
    scores = load_scores(model, data, split, threads)
    check_probabilities(scores, data if from_file else model.path)
    scores.require_both_classes()
    evaluation = evaluate(scores, None, options)
    chosen = evaluation.report["dev"]
    at_level = evaluation.sets["dev"].scores
    name = evaluation.criterion.name
    threshold = evaluation.threshold
    problems = threshold_problems(threshold, error_rates(at_level, threshold), at_level)
    if problems and not force:
        raise InputError(
            f"--criterion {name}: {'; '.join(problems)}; pass --force to write it anyway"
        )
    ci = dict(chosen.get("ci", {}))
    warnings = list(evaluation.report["warnings"])
    if problems:
        warnings.append(f"written because of --force: {'; '.join(problems)}")
    if ci and ci.get("n_valid", 0) < min_resamples(confidence):
        warnings.append(
            f"no intervals on the calibration data: only {ci.get('n_valid', 0)} of {bootstrap} "
            "resamples drew subjects of both classes"
        )
        ci = {}
    warnings += data_warnings(at_level, evaluation.criterion, ci, confidence)
    warnings += interval_notes(chosen, ci, at_level)
    had = model.meta.get("threshold")
    previous = None if had is None else error_rates(at_level, float(had))
    described = f"{name} on {len(at_level)} {level}-level samples of {data}"
    target = Path(out) if out is not None else default_output(model.path)
    write_with_threshold(model, target, threshold, described, level)
    return {
        "model": str(model.path),
        "calibrated_model": str(target),
        "data": str(data),
        "split": None if from_file else split,
        "level": level,
        "criterion": name,
        "threshold": threshold,
        "forced": bool(problems),
        "previous_threshold": had,
        "previous_criterion": model.meta.get("threshold_criterion"),
        "samples": {"bonafide": at_level.n_bonafide, "attack": at_level.n_attack},
        "subjects": int(np.unique(at_level.subject).size),
        "at_previous_threshold": None
        if previous is None
        else {"apcer": previous.apcer, "bpcer": previous.bpcer},
        "on_calibration_data": {
            "apcer": chosen["apcer"],
            "bpcer": chosen["bpcer"],
            "acer": chosen["acer"],
            "apcer_ci": ci.get("apcer"),
            "bpcer_ci": ci.get("bpcer"),
        },
        "out_of_bag": out_of_bag(at_level, evaluation.criterion, bootstrap, confidence)
        if bootstrap
        else None,
        "warnings": warnings,
    }
