"""Knowledge distillation: frozen teachers, feature taps, adapters, losses, the objective.

``fasdistill train`` with a ``distill:`` section (or ``fasdistill distill``) runs
the one training loop with :class:`Distilled` as its objective (:func:`fit` passes
it to the loop). The losses in
:mod:`fasdistill.distill.losses` are pure functions of tensors.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): the recipe schema imports ``distill.methods`` and
# must not pull in the objective, the teachers and the training loop with it.
_WHERE = {
    "losses": "fasdistill.distill.losses",
    "methods": "fasdistill.distill.methods",
    "Distilled": "fasdistill.distill.objective",
    "DistillModule": "fasdistill.distill.objective",
    "distilled": "fasdistill.distill.run",
    "fit": "fasdistill.distill.run",
    "FeatureTaps": "fasdistill.distill.taps",
    "ForeignTeacher": "fasdistill.distill.teachers",
    "OnnxTeacher": "fasdistill.distill.teachers",
    "Teacher": "fasdistill.distill.teacher",
    "TorchTeacher": "fasdistill.distill.teacher",
    "load_teacher": "fasdistill.distill.teachers",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'fasdistill.distill' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    return module if module.__name__.endswith(f".{name}") else getattr(module, name)
