"""Frozen teachers: a fasdistill checkpoint, or a third-party ONNX model.

A teacher takes the *student's* input batch (normalised as the crop loader
normalises it, at the student's input size) and returns float32 ``logits`` (class
0 = bona fide) and, where it has one, a bona fide ``pixel`` map of
probabilities. It brings that batch to its own preprocessing first: its input
size (resized here) and, for ONNX models, its colour order and mean/std. What
cannot be converted is refused before training: other classes, another crop
scale, or (for our checkpoints) another normalisation.

A teacher is frozen: ``requires_grad_(False)``, forward under ``no_grad`` and
pinned to eval mode, which a generic ``.train()`` cannot flip (torchdistill never
calls ``teacher.eval()``; a frozen BN flipped to train mode is a classic bug).
BatchNorm in train mode (batch statistics, running buffers untouched) is only
possible with ``bn_train: true``.
"""

from __future__ import annotations

import abc
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fasdistill.config import TeacherSpec
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD
from fasdistill.engine.checkpoint import load_deployable_state
from fasdistill.errors import InputError
from fasdistill.models import FASModel, build_model
from fasdistill.utils.hashing import sha256_file
from fasdistill.utils.ort import open_session

BINARY = ("bonafide", "attack")
ONNX_ONLY_FIELDS = (
    "input_size",
    "colour_order",
    "mean",
    "std",
    "crop_scale",
    "output",
    "output_name",
    "live_index",
    "classes",
)


def resize_batch(images: Tensor, size: int) -> Tensor:
    """Square bilinear resize of a batch (antialiased when shrinking); identity at ``size``."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )


def binary_logits_from_probability(p: Tensor, eps: float = 1e-6) -> Tensor:
    """(N,) live probabilities -> (N, 2) logits [log p, log(1 - p)] (bona fide first)."""
    p = p.float().clamp(eps, 1.0 - eps)
    return torch.stack([p.log(), (1.0 - p).log()], dim=1)


class Teacher(abc.ABC):
    """A frozen teacher's contract (see the module docstring)."""

    path: Path
    kind: str  # "fasdistill" or "onnx"
    classes: tuple[str, ...]
    input_size: int
    has_pixel: bool

    @property
    def module(self) -> nn.Module | None:
        """The torch network (for feature hooks), or None when it has none (ONNX)."""
        return None

    @abc.abstractmethod
    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Student-preprocessed images -> ``logits`` (and ``pixel`` when available)."""

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
    """A ``best.pt`` written by ``fasdistill train`` (its aux heads included, if saved)."""

    kind = "fasdistill"

    def __init__(self, path: Path, bn_train: bool, device: torch.device) -> None:
        self.path = path
        state = load_deployable_state(path)
        meta = state["meta"]
        self.meta = meta
        self.classes = tuple(meta["classes"])
        self.input_size = int(meta["input_size"])
        aux = tuple(meta.get("aux", ())) if "aux" in state else ()
        net = build_model(meta["model"], num_classes=len(self.classes), aux=aux)
        net.deployable().load_state_dict(state["model"])
        if aux:
            net.aux.load_state_dict(state["aux"])
        self.has_pixel = "pixel" in aux
        self.frozen = _FrozenNet(net, bn_train).to(device)

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


class OnnxTeacher(Teacher):
    """A third-party ONNX model run with ONNX Runtime, with its stated preprocessing.

    ``output`` says what the chosen output means: class ``logits`` (``classes``
    names them; without names a two-column output is read as live/attack with the
    live column at ``live_index``), a live ``probability`` (one column, or the
    ``live_index`` column), or a pixel/depth ``map`` whose mean is the live score.
    Probabilities and maps become two-class logits ``[log p, log(1 - p)]``.
    """

    kind = "onnx"

    def __init__(self, spec: TeacherSpec, path: Path, data_classes: tuple[str, ...]) -> None:
        self.path = path
        self.spec = spec
        self.session = open_session(path)
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise InputError(f"{path}: expected one input, the model has {len(inputs)}")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        static = [d for d in shape[2:] if isinstance(d, int)]
        if spec.input_size is not None:
            self.input_size = spec.input_size
        elif len(static) == 2 and static[0] == static[1]:
            self.input_size = int(static[0])
        else:
            raise InputError(
                f"{path}: the input size is not fixed in the model ({shape}); state input_size"
            )
        names = [o.name for o in self.session.get_outputs()]
        if spec.output_name is not None and spec.output_name not in names:
            raise InputError(f"{path}: no output {spec.output_name!r}; the model has {names}")
        self.output_name = spec.output_name or names[0]
        self.has_pixel = spec.output == "map"
        if spec.output == "logits" and spec.classes is not None:
            if set(spec.classes) != set(data_classes) or len(spec.classes) != len(data_classes):
                raise InputError(
                    f"{path}: the teacher's classes {list(spec.classes)} differ from the data's "
                    f"{list(data_classes)}; give the same names, or omit classes for a "
                    "two-column live/attack output"
                )
            self.order = [spec.classes.index(c) for c in data_classes]
            self.classes = tuple(data_classes)
        else:
            self.order = None
            self.classes = BINARY
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        self._ours = (mean, std)
        self._theirs = (
            torch.tensor(spec.mean).view(1, 3, 1, 1),
            torch.tensor(spec.std).view(1, 3, 1, 1),
        )

    def _preprocess(self, images: Tensor) -> np.ndarray:
        mean, std = self._ours
        pixels = images.detach().float().cpu() * std + mean  # RGB in [0, 1]
        pixels = resize_batch(pixels, self.input_size)
        if self.spec.colour_order != COLOUR_ORDER:
            pixels = pixels.flip(1)
        their_mean, their_std = self._theirs
        return ((pixels - their_mean) / their_std).numpy().astype(np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.fixed_batch in (None, x.shape[0]):
            return self.session.run([self.output_name], {self.input_name: x})[0]
        if self.fixed_batch != 1:
            raise InputError(f"{self.path}: fixed batch size {self.fixed_batch} is not supported")
        parts = [
            self.session.run([self.output_name], {self.input_name: x[i : i + 1]})[0]
            for i in range(x.shape[0])
        ]
        return np.concatenate(parts, axis=0)

    @torch.no_grad()
    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        raw = torch.from_numpy(np.asarray(self._run(self._preprocess(images)), np.float32))
        n = images.shape[0]
        spec = self.spec
        result: dict[str, Tensor] = {}
        if spec.output == "logits":
            logits = raw.reshape(n, -1)
            if self.order is not None:
                logits = logits[:, self.order]
            else:
                if logits.shape[1] != 2:
                    raise InputError(
                        f"{self.path}: {logits.shape[1]} logits per image; name them with "
                        "classes, or use a two-column live/attack output"
                    )
                logits = logits[:, [spec.live_index, 1 - spec.live_index]]
            result["logits"] = logits
        elif spec.output == "probability":
            p = raw.reshape(n, -1)
            column = 0 if p.shape[1] == 1 else spec.live_index
            result["logits"] = binary_logits_from_probability(p[:, column])
        else:
            maps = (
                raw.reshape(n, 1, *raw.shape[-2:]) if raw.dim() >= 3 else raw.reshape(n, 1, 1, -1)
            )
            maps = maps.clamp(0.0, 1.0)
            result["logits"] = binary_logits_from_probability(maps.mean(dim=(1, 2, 3)))
            result["pixel"] = maps
        return {k: v.to(images.device) for k, v in result.items()}


def load_teacher(
    spec: TeacherSpec,
    where: str,
    data_classes: tuple[str, ...],
    crop_scale: float,
    device: torch.device,
) -> Teacher:
    """Load and check one teacher; ``where`` names it in errors (e.g. ``distill.teacher[0]``)."""
    path = Path(spec.path)
    if not path.is_file():
        raise InputError(f"{where}: teacher file {path} not found")
    if path.suffix.lower() == ".onnx":
        if spec.bn_train:
            raise InputError(f"{where}: bn_train applies to fasdistill checkpoints, not ONNX")
        if spec.crop_scale is None:
            raise InputError(
                f"{where}: state the crop scale {path.name} was trained on (crop_scale); "
                f"the data's crops are at {crop_scale}"
            )
        if not math.isclose(spec.crop_scale, crop_scale, rel_tol=1e-6):
            raise InputError(
                f"{where}: {path.name} expects crops at scale {spec.crop_scale}, the data's are "
                f"at {crop_scale}; prepare crops at {spec.crop_scale}"
            )
        return OnnxTeacher(spec, path, data_classes)
    stated = sorted(set(ONNX_ONLY_FIELDS) & spec.model_fields_set)
    if stated:
        raise InputError(
            f"{where}: {', '.join(stated)} describe ONNX teachers; {path.name} is a fasdistill "
            "checkpoint that carries its own preprocessing"
        )
    teacher = TorchTeacher(path, spec.bn_train, device)
    meta = teacher.meta
    if tuple(meta["classes"]) != tuple(data_classes):
        raise InputError(
            f"{where}: {path} was trained on classes {list(meta['classes'])}, the data has "
            f"{list(data_classes)}"
        )
    if not math.isclose(float(meta["crop_scale"]), crop_scale, rel_tol=1e-6):
        raise InputError(
            f"{where}: {path} was trained on crops at scale {meta['crop_scale']}, the data's are "
            f"at {crop_scale}"
        )
    theirs = (meta.get("colour_order"), list(meta.get("mean", [])), list(meta.get("std", [])))
    ours = (COLOUR_ORDER, list(MEAN), list(STD))
    if theirs != ours:
        raise InputError(
            f"{where}: {path} normalises inputs as colour/mean/std {theirs}, the data as {ours}"
        )
    return teacher
