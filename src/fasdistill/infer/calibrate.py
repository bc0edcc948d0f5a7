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
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD, CropDataset, read_crop_index
from fasdistill.errors import InputError
from fasdistill.infer.model_file import ModelFile, open_model, write_with_threshold
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.metrics.pad import Criterion, error_curve, error_rates
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
    if not apcer:
        return {"valid_resamples": 0, "note": "too few subjects of each class to leave some out"}
    alpha = (1 - confidence) / 2
    out: dict[str, Any] = {"valid_resamples": len(apcer), "unit": "subject"}
    for name, values in (("apcer", apcer), ("bpcer", bpcer)):
        lo, mid, hi = np.quantile(values, [alpha, 0.5, 1 - alpha])
        out[name] = float(mid)
        out[f"{name}_ci"] = [float(lo), float(hi)]
    return out


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
) -> dict[str, Any]:
    """Calibrate ``model_path`` on ``data``; write the calibrated copy; return the report."""
    model = open_model(model_path)
    data = Path(data)
    level = level or model.meta.get("threshold_level", "frame")
    options = EvalOptions(criterion=criterion, level=level, bootstrap=bootstrap,
                          confidence=confidence)  # fmt: skip
    options.validate()
    scores = load_scores(model, data, split, threads)
    scores.require_both_classes()
    evaluation = evaluate(scores, None, options)
    chosen = evaluation.report["dev"]
    at_level = evaluation.sets["dev"].scores
    shipped = error_rates(at_level, model.threshold)
    name = evaluation.criterion.name
    described = f"{name} on {len(at_level)} {level}-level samples of {data}"
    target = Path(out) if out is not None else default_output(model.path)
    write_with_threshold(model, target, evaluation.threshold, described)
    ci = chosen.get("ci", {})
    return {
        "model": str(model.path),
        "calibrated_model": str(target),
        "data": str(data),
        "split": None if data.suffix.lower() == ".csv" and data.name != "index.csv" else split,
        "level": level,
        "criterion": name,
        "threshold": evaluation.threshold,
        "previous_threshold": model.threshold,
        "previous_criterion": model.meta.get("threshold_criterion"),
        "samples": {"bonafide": at_level.n_bonafide, "attack": at_level.n_attack},
        "subjects": int(np.unique(at_level.subject).size),
        "at_previous_threshold": {"apcer": shipped.apcer, "bpcer": shipped.bpcer},
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
    }
