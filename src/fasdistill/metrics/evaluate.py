"""Dev/test evaluation: choose the threshold on dev, apply it unchanged to test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fasdistill import __version__
from fasdistill.errors import InputError
from fasdistill.metrics.bootstrap import bootstrap_ci, check_resamples
from fasdistill.metrics.pad import (
    Criterion,
    ErrorCurve,
    auc_from_curve,
    equal_error_rate,
    error_curve,
    error_rates,
    tpr_at_fpr,
)
from fasdistill.metrics.scores import REDUCERS, ScoreSet

LEVELS = ("frame", "video")
TPR_FPRS = (1e-2, 1e-3)
DECISION_RULE = "bona fide iff score >= threshold"


@dataclass
class EvalOptions:
    """How to evaluate: threshold criterion, level, and the bootstrap."""

    criterion: str = "eer"
    level: str = "frame"
    reducer: str = "mean"
    bootstrap: int = 1000
    ci_unit: str = "subject"
    confidence: float = 0.95
    seed: int = 0

    def validate(self) -> None:
        if self.level not in LEVELS:
            raise InputError(f"unknown level {self.level!r}; choose one of {LEVELS}")
        if self.reducer not in REDUCERS:
            raise InputError(f"unknown video reducer {self.reducer!r}; choose one of {REDUCERS}")
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"confidence must lie in (0, 1), got {self.confidence}")
        check_resamples(self.bootstrap, self.confidence)
        Criterion.parse(self.criterion)


@dataclass
class SetResult:
    """Metrics of one split, its curve kept for plotting."""

    name: str
    scores: ScoreSet
    curve: ErrorCurve
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """A full dev/test evaluation; ``report`` is what ``metrics.json`` holds."""

    threshold: float
    criterion: Criterion
    sets: dict[str, SetResult]
    report: dict[str, Any]


def set_metrics(
    scores: ScoreSet, threshold: float, options: EvalOptions, curve: ErrorCurve | None = None
) -> tuple[dict[str, Any], ErrorCurve]:
    """Every metric of one set at ``threshold`` (fractions in [0, 1])."""
    curve = curve if curve is not None else error_curve(scores)
    rates = error_rates(scores, threshold)
    metrics: dict[str, Any] = {
        "n_samples": len(scores),
        "n_bonafide": scores.n_bonafide,
        "n_attack": scores.n_attack,
        "n_per_pai": scores.pai_counts(),
        "n_videos": int(np.count_nonzero(np.bincount(scores.video))),
        "n_subjects": int(np.count_nonzero(np.bincount(scores.subject))),
        "apcer": rates.apcer,
        "apcer_worst_pai": rates.worst_pai,
        "apcer_per_pai": rates.apcer_per_pai,
        "apcer_pooled": rates.apcer_pooled,
        "bpcer": rates.bpcer,
        "acer": rates.acer,
        "hter": rates.hter,
        "eer": equal_error_rate(curve.apcer, curve.bpcer),
        "eer_pooled": equal_error_rate(curve.apcer_pooled, curve.bpcer),
        "auc": auc_from_curve(curve),
        "tpr_at_fpr": {f"{fpr:g}": tpr_at_fpr(curve, fpr) for fpr in TPR_FPRS},
    }
    if options.bootstrap > 0:
        metrics["ci"] = bootstrap_ci(
            scores,
            threshold,
            unit=options.ci_unit,
            n_resamples=options.bootstrap,
            confidence=options.confidence,
            seed=options.seed,
        )
    return metrics, curve


def _at_level(scores: ScoreSet, options: EvalOptions) -> ScoreSet:
    if options.level == "video":
        return scores.to_video_level(options.reducer)
    return scores


def evaluate(
    dev: ScoreSet, test: ScoreSet | None = None, options: EvalOptions | None = None
) -> Evaluation:
    """Pick the threshold on ``dev`` by ``options.criterion``; report dev and test.

    The test set never influences the threshold: it is read only after the
    threshold is fixed.
    """
    options = options or EvalOptions()
    options.validate()
    criterion = Criterion.parse(options.criterion)
    dev_level = _at_level(dev, options)
    dev_curve = error_curve(dev_level)
    threshold = criterion.select(dev_curve)
    sets: dict[str, SetResult] = {}
    dev_metrics, _ = set_metrics(dev_level, threshold, options, dev_curve)
    sets["dev"] = SetResult("dev", dev_level, dev_curve, dev_metrics)
    if test is not None:
        test_level = _at_level(test, options)
        test_metrics, test_curve = set_metrics(test_level, threshold, options)
        sets["test"] = SetResult("test", test_level, test_curve, test_metrics)
    warnings = []
    if dev_metrics["auc"] < 0.5:
        warnings.append(
            f"dev AUC is {dev_metrics['auc']:.3f} < 0.5: the scores look inverted; "
            "fasdistill expects higher scores for bona fide presentations"
        )
    if test is not None:
        unseen = sorted(set(sets["test"].metrics["n_per_pai"]) - set(dev_metrics["n_per_pai"]))
        if unseen:
            warnings.append(f"PAI species in test but not in dev (unseen attacks): {unseen}")
    report: dict[str, Any] = {
        "fasdistill_version": __version__,
        "criterion": criterion.name,
        "threshold": threshold,
        "decision_rule": DECISION_RULE,
        "level": options.level,
        "video_reducer": options.reducer if options.level == "video" else None,
    }
    for name, result in sets.items():
        report[name] = result.metrics
    report["warnings"] = warnings
    return Evaluation(threshold=threshold, criterion=criterion, sets=sets, report=report)
