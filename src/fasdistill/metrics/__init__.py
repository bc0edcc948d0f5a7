"""ISO/IEC 30107-3 presentation attack detection metrics over score files."""

from fasdistill.metrics.bootstrap import bootstrap_ci
from fasdistill.metrics.evaluate import EvalOptions, Evaluation, evaluate
from fasdistill.metrics.pad import (
    Criterion,
    ErrorCurve,
    ErrorRates,
    auc,
    auc_from_curve,
    equal_error_rate,
    error_curve,
    error_rates,
    tpr_at_fpr,
)
from fasdistill.metrics.scores import ScoreSet, read_scores, write_scores

__all__ = [
    "Criterion",
    "ErrorCurve",
    "ErrorRates",
    "EvalOptions",
    "Evaluation",
    "ScoreSet",
    "auc",
    "auc_from_curve",
    "bootstrap_ci",
    "equal_error_rate",
    "error_curve",
    "error_rates",
    "evaluate",
    "read_scores",
    "tpr_at_fpr",
    "write_scores",
]
