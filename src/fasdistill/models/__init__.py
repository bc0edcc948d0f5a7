"""Face anti-spoofing models by name: teachers, students, heads and their registry.

Importing this package registers every model, so ``build_model("minifasnet")``
works after ``import fasdistill.models``.
"""

from __future__ import annotations

# Registration order is table order: teachers first.
from fasdistill.models import teachers  # isort: split

from fasdistill.models import students  # isort: split

from fasdistill.models import searchnet
from fasdistill.models.base import DeployableFAS, FASModel, bonafide_score
from fasdistill.models.heads import AUX_HEADS, fourier_target, pixel_map_target
from fasdistill.models.registry import (
    ModelSpec,
    build_model,
    count_macs,
    count_params,
    get_spec,
    model_kwargs,
    model_specs,
    models_table,
    register,
)

del searchnet, students, teachers  # imported for their registrations only

__all__ = [
    "AUX_HEADS",
    "DeployableFAS",
    "FASModel",
    "ModelSpec",
    "bonafide_score",
    "build_model",
    "count_macs",
    "count_params",
    "fourier_target",
    "get_spec",
    "model_kwargs",
    "model_specs",
    "models_table",
    "pixel_map_target",
    "register",
]
