"""Training runs for any recipe: the one training loop with the objective the recipe asks for.

The training loop (:mod:`fasdistill.engine.trainer`) takes the objective from its
caller and knows nothing of teachers; :func:`fit` is the caller for a recipe that
may or may not have a ``distill:`` section (the command line, the quick start and
the benchmarks use it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fasdistill.config import RunConfig
from fasdistill.data.loader import CropIndex
from fasdistill.distill.objective import Distilled
from fasdistill.engine.trainer import TrainResult, supervised, train
from fasdistill.models import FASModel


def distilled(
    config: RunConfig, model: FASModel, index: CropIndex, input_size: int, device: torch.device
) -> Distilled:
    """The objective of ``config``'s ``distill:`` section (its teachers loaded and probed)."""
    return Distilled(model, config, index, input_size, device)


def fit(
    config: RunConfig,
    index_path: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``config``: distilled when it has a ``distill:`` section, supervised otherwise."""
    objective = distilled if config.distill is not None else supervised
    return train(config, index_path, run_dir, resume, show_progress, objective=objective)
