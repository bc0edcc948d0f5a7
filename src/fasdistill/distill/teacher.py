"""Frozen teachers: the interface, and ours (a fasdistill checkpoint). Models from
elsewhere in any export format and the loader of both are in :mod:`fasdistill.distill.teachers`.

A teacher takes the *student's* input batch (normalised as the crop loader
normalises it, at the student's input size) and returns float32 ``logits`` (class
0 = bona fide) and, where it has one, a bona fide ``pixel`` map of
probabilities. It brings that batch to its own preprocessing first: its input
size (resized here) and, for models from elsewhere (ONNX, LiteRT, ExecuTorch or
ncnn, run by the export-format registry's runner), its colour order and mean/std. What
cannot be converted is refused before training: other classes, another crop
scale, or (for our checkpoints) another normalisation.

Every teacher is run once as it loads, on a dummy batch at the student's input
size (:func:`fasdistill.distill.batches.probe_batch`), and its output is checked
against its description (input size, output kind, columns, ``classes``,
``live_index``, ``output_index``, probability range, map shape, a ``score``
function's result, finite values): a mistake is one
:class:`InputError` naming the field, before any run directory is written, not a
traceback at the first training step.

A teacher is frozen: ``requires_grad_(False)``, forward under ``no_grad`` and
pinned to eval mode, which a generic ``.train()`` cannot flip (torchdistill never
calls ``teacher.eval()``; a frozen BN flipped to train mode is a classic bug).
BatchNorm in train mode (batch statistics, running buffers untouched) is only
possible with ``bn_train: true``.
"""

from __future__ import annotations

import abc
import functools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fasdistill.config import TeacherSpec
from fasdistill.distill.batches import (
    PROBE_BATCH,
    probe_batch,
    resize_batch,
)
from fasdistill.engine.checkpoint import load_deployable_state
from fasdistill.errors import InputError
from fasdistill.models import FASModel, build_model, model_kwargs
from fasdistill.models.multimodal import channel_count
from fasdistill.utils.hashing import sha256_file
from fasdistill.utils.text import one_line

BINARY = ("bonafide", "attack")
FOREIGN_ONLY_FIELDS = tuple(sorted(set(TeacherSpec.model_fields) - {"path", "bn_train"}))


class Teacher(abc.ABC):
    """A frozen teacher's contract (see the module docstring)."""

    path: Path
    where: str  # how errors name this teacher: a recipe key or a sidecar file
    kind: str  # "fasdistill", or the registered format a model from elsewhere runs in
    classes: tuple[str, ...]
    input_size: int
    has_pixel: bool
    modalities: tuple[str, ...] = ("rgb",)  # what it reads (channels stacked in this order)

    @property
    def module(self) -> nn.Module | None:
        """The torch network (for feature hooks); None for a model from elsewhere."""
        return None

    @abc.abstractmethod
    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Student-preprocessed images -> ``logits`` (and ``pixel`` when available)."""

    def _check_outputs(self, out: dict[str, Tensor], n: int) -> None:
        """What every teacher must give on the probe batch: (n, classes) logits, a
        (n, 1, h, w) pixel map when it claims one, and only finite numbers."""
        logits = out.get("logits")
        if logits is None or tuple(logits.shape) != (n, len(self.classes)):
            shape = None if logits is None else tuple(logits.shape)
            raise InputError(
                f"{self.where}: {self.path.name} gives logits of shape {shape} for {n} images; "
                f"its classes {list(self.classes)} need ({n}, {len(self.classes)})"
            )
        pixel = out.get("pixel")
        if self.has_pixel and (pixel is None or pixel.dim() != 4 or pixel.shape[:2] != (n, 1)):
            shape = None if pixel is None else tuple(pixel.shape)
            raise InputError(
                f"{self.where}: {self.path.name} says it has a pixel map, and gives {shape} "
                f"for {n} images instead of ({n}, 1, H, W)"
            )
        for key, value in out.items():
            if not bool(torch.isfinite(value).all()):
                raise InputError(
                    f"{self.where}: {self.path.name} gives non-finite {key} (NaN or inf) on a "
                    "test batch; the model file is broken"
                )

    @functools.cached_property
    def sha256(self) -> str:
        """The teacher file's digest (read once), recorded in meta.json and checked on resume."""
        return sha256_file(self.path)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "sha256": self.sha256}


class _FrozenNet(nn.Module):
    """Holds the teacher network and keeps it in eval mode whatever ``.train()`` says."""

    def __init__(self, net: FASModel, bn_train: bool) -> None:
        super().__init__()
        self.net = net.requires_grad_(False)
        self.bn_train = bn_train
        if bn_train:
            for m in net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.momentum = 0.0  # batch statistics, running buffers unchanged
        self.train(False)

    def train(self, mode: bool = True) -> _FrozenNet:
        self.training = False
        self.net.eval()
        if self.bn_train:
            for m in self.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train(True)
        return self


class TorchTeacher(Teacher):
    """A ``best.pt`` written by ``fasdistill train`` (its aux heads included, if saved).

    Constructing one runs it on :func:`probe_batch` at ``probe_size`` (default: its
    own input size) and checks its logits and pixel map.
    """

    kind = "fasdistill"

    def __init__(
        self,
        path: Path,
        bn_train: bool,
        device: torch.device,
        where: str | None = None,
        probe_size: int | None = None,
    ) -> None:
        self.path = path
        self.where = where or str(path)
        state = load_deployable_state(path)
        meta = state["meta"]
        self.meta = meta
        self.classes = tuple(meta["classes"])
        self.input_size = int(meta["input_size"])
        aux = tuple(meta.get("aux", ())) if "aux" in state else ()
        net = build_model(
            meta["model"], num_classes=len(self.classes), aux=aux, **model_kwargs(meta)
        )
        try:
            net.deployable().load_state_dict(state["model"])
            if aux:
                net.aux.load_state_dict(state["aux"])
        except RuntimeError as error:
            raise InputError(
                f"{self.where}: {path}'s weights do not fit a {meta['model']} with "
                f"{len(self.classes)} classes {list(self.classes)} ({one_line(error, 200)})"
            ) from None
        self.has_pixel = "pixel" in aux
        self.modalities = net.modalities
        self.frozen = _FrozenNet(net, bn_train).to(device)
        batch = probe_batch(probe_size or self.input_size, device, channel_count(self.modalities))
        try:
            out = self.outputs(batch)
        except RuntimeError as error:
            raise InputError(
                f"{self.where}: {path.name} fails on a test batch of {PROBE_BATCH} images "
                f"({one_line(error)})"
            ) from None
        self._check_outputs(out, PROBE_BATCH)

    @property
    def module(self) -> nn.Module:
        return self.frozen.net

    @torch.no_grad()
    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        self.frozen.train(False)  # re-pin, in case a caller changed a submodule's mode
        out = self.frozen.net.forward_train(resize_batch(images, self.input_size))
        result = {"logits": out["logits"].float()}
        if "pixel" in out:
            result["pixel"] = torch.sigmoid(out["pixel"].float())
        return result
