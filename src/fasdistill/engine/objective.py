"""What the training loop optimises: an :class:`Objective`.

The trainer owns the loop (data, DDP, AMP, schedule, dev-only selection,
checkpoints, resume); an objective owns *what* is optimised. ``module`` is what
trains (the student, plus any training-only adapters): DDP wraps it, the
optimiser, gradient clipping and ``last.pt`` use it. ``losses`` returns named
terms that the step sums and logs one by one. Supervised training is the
trivial objective; :class:`fasdistill.distill.Distilled` adds a frozen teacher.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fasdistill.config import RunConfig
from fasdistill.data.loader import CropDataset
from fasdistill.models import FASModel
from fasdistill.models.heads import fourier_target, pixel_map_target


@dataclass(frozen=True)
class Batch:
    """One training batch: normalised images, class labels, dataset rows and views."""

    images: Tensor
    labels: Tensor
    rows: Tensor  # positions in the training split (for cached teacher outputs)
    views: Tensor  # geometry: 0 whole crop, 1 mirrored, -1 cropped (colours aside)


class Objective(abc.ABC):
    """The contract between the training loop and what it optimises."""

    model: FASModel  # the student: what is selected on dev and saved as best.pt
    module: nn.Module  # what trains: forward(images) -> dict of outputs

    @property
    def modalities(self) -> tuple[str, ...]:
        """What a training batch stacks (the student's, plus what its teachers read)."""
        return self.model.modalities

    @abc.abstractmethod
    def losses(self, out: dict[str, Tensor], batch: Batch, epoch: float) -> dict[str, Tensor]:
        """Named, already weighted loss terms; the step minimises their sum.

        ``epoch`` is the fractional number of epochs done (for term warm-ups).
        """

    def prepare(self, train_set: CropDataset, device: torch.device) -> None:  # noqa: B027
        """Called once before the first step (e.g. to fill a teacher-output cache)."""

    def state_dict(self) -> dict[str, Any]:
        """Training state outside ``model`` to checkpoint (adapters); {} when none."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> dict[str, Any]:
        """What identifies the objective in ``meta.json`` (e.g. the teacher's SHA-256)."""
        return {"kind": type(self).__name__.lower()}


class TrainView(nn.Module):
    """The model with ``forward_train`` as its forward, so DDP's hooks wrap the training path."""

    def __init__(self, model: FASModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.model.forward_train(images)


def supervised_terms(
    out: dict[str, Tensor], images: Tensor, labels: Tensor, config: RunConfig, scale: float = 1.0
) -> dict[str, Tensor]:
    """Cross-entropy over bona fide + species, plus the weighted training-only aux losses."""
    terms = {
        "ce": scale
        * F.cross_entropy(
            out["logits"].float(), labels, label_smoothing=config.train.label_smoothing
        )
    }
    weights = config.train.aux_weights
    if "pixel" in out:
        target = pixel_map_target(labels == 0, out["pixel"])
        terms["pixel"] = (
            scale * weights.pixel * F.binary_cross_entropy_with_logits(out["pixel"].float(), target)
        )
    if "fourier" in out:
        target = fourier_target(images.float(), out["fourier"].shape[-1])
        terms["fourier"] = scale * weights.fourier * F.mse_loss(out["fourier"].float(), target)
    return terms


class Supervised(Objective):
    """Plain supervised training: cross-entropy plus the auxiliary heads' losses."""

    def __init__(self, model: FASModel, config: RunConfig) -> None:
        self.model = model
        self.module = TrainView(model)
        self.config = config

    def losses(self, out: dict[str, Tensor], batch: Batch, epoch: float) -> dict[str, Tensor]:
        return supervised_terms(out, batch.images, batch.labels, self.config)
