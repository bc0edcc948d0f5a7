"""Knowledge distillation: frozen teachers, feature taps, adapters, losses, the objective.

``fasdistill train`` with a ``distill:`` section (or ``fasdistill distill``) runs
the one training loop with :class:`Distilled` as its objective (:func:`fit` passes
it to the loop). The losses in
:mod:`fasdistill.distill.losses` are pure functions of tensors.
"""

from __future__ import annotations

from fasdistill.distill import losses
from fasdistill.distill.objective import Distilled, DistillModule
from fasdistill.distill.run import distilled, fit
from fasdistill.distill.taps import FeatureTaps
from fasdistill.distill.teacher import OnnxTeacher, Teacher, TorchTeacher, load_teacher

__all__ = [
    "DistillModule",
    "Distilled",
    "FeatureTaps",
    "OnnxTeacher",
    "Teacher",
    "TorchTeacher",
    "distilled",
    "fit",
    "load_teacher",
    "losses",
]
