"""The checks every export passes before it is written, and what is reported of each.

Parity: the export's scores on real dev crops against PyTorch's (fp32: by score,
int8: by decision). Conversion: a converter's failure becomes one line that names
the format and, when the converter says which, the operator that blocks it.
Score resolution: how many distinct scores an export gives on those crops, so a
score quantized onto a 1/255 grid (which no threshold calibration can work with)
shows in the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fasdistill.errors import InputError


class ParityLimits(Protocol):
    """How close an export must stay to PyTorch (``ExportOptions`` has both fields)."""

    fp32_tolerance: float  # max |score difference| of an fp32 export
    int8_min_agreement: float  # fraction of parity crops with PyTorch's decision (INT8)


def parity(
    reference: np.ndarray, scores: np.ndarray, threshold: float, own: float | None = None
) -> dict[str, float]:
    """How far an export's scores are from PyTorch's on the same crops.

    Decisions compare PyTorch at ``threshold`` with the export at its ``own`` threshold
    (default: the same). The dev EER threshold is one dev crop's score, so a parity
    check on dev crops may see that crop flip on differences of 1e-7.
    """
    diff = np.abs(reference - scores)
    same = (reference >= threshold) == (scores >= (threshold if own is None else own))
    return {
        "crops": len(reference),
        "max_abs_score_diff": float(diff.max()),
        "mean_abs_score_diff": float(diff.mean()),
        "decision_agreement": float(same.mean()),
        "disagreements": int((~same).sum()),
    }


def score_resolution(scores: np.ndarray) -> dict[str, Any]:
    """How finely ``scores`` can separate crops: count, distinct values, smallest step.

    ``grid`` names a quantization grid (``"1/255"``: a uint8 score, ``"1/256"``: an
    int8 one) when at least two distinct scores strictly between 0 and 1 all lie on
    it, else None.
    """
    values = np.unique(np.asarray(scores, dtype=np.float64))
    steps = np.diff(values)
    inner = values[(values > 0) & (values < 1)]
    grid = None
    for n in (255, 256):
        if len(inner) >= 2 and np.allclose(values * n, np.round(values * n), rtol=0, atol=1e-3):
            grid = f"1/{n}"
            break
    return {
        "scores": len(scores),
        "distinct": len(values),
        "smallest_step": float(steps.min()) if len(steps) else None,
        "grid": grid,
    }


def describe_resolution(resolution: dict[str, Any]) -> str:
    """``score resolution: 256 dev scores, 256 distinct, smallest step 3.1e-07``."""
    step = resolution["smallest_step"]
    if resolution["grid"]:
        step_text = f"on a {resolution['grid']} grid"
    elif step is None:
        step_text = "all equal"
    else:
        step_text = f"smallest step {step:.1e}"
    return (
        f"score resolution: {resolution['scores']} dev scores, "
        f"{resolution['distinct']} distinct, {step_text}"
    )


def require_parity(
    check: dict[str, float], target: Path, runtime: str, quantized: bool, options: ParityLimits
) -> None:
    """Refuse an export whose scores stray from PyTorch's: fp32 by score, INT8 by decision."""
    if quantized and check["decision_agreement"] < options.int8_min_agreement:
        raise InputError(
            f"{target}: not written; {runtime} decisions agree with PyTorch on "
            f"{100 * check['decision_agreement']:.1f} % of {check['crops']} dev crops "
            f"(< {100 * options.int8_min_agreement:g} %)"
        )
    if not quantized and check["max_abs_score_diff"] > options.fp32_tolerance:
        raise InputError(
            f"{target}: not written; {runtime} scores differ from PyTorch by up to "
            f"{check['max_abs_score_diff']:.2e} (> {options.fp32_tolerance:g}) on "
            f"{check['crops']} dev crops"
        )


# How converters name an operator they cannot handle, e.g. "aten::grid_sampler",
# "Unsupported: ONNX export of operator X", "operator 'x' is not supported".
_OPERATOR = re.compile(
    r"(aten::[\w.]+|aten\.[\w.]+|(?:operator|op)\s+['\"`]?([\w.:]+)['\"`]?)", re.IGNORECASE
)


@contextmanager
def conversion(fmt: str, model: str) -> Iterator[None]:
    """Turn a converter's failure into one line naming the format and, if found, the operator."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:  # converters raise anything
        text = str(exc)
        found = _OPERATOR.search(text)
        operator = (found.group(2) or found.group(1)) if found else None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        blocker = f"operator {operator!r} blocks it" if operator else f"it failed: {first}"
        raise InputError(f"{fmt}: cannot convert {model}; {blocker}") from exc
