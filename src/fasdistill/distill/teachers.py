"""Loading any teacher (:func:`load_teacher`), and teachers from elsewhere.

:func:`load_teacher` opens a ``best.pt`` of ours (:class:`~fasdistill.distill.teacher.TorchTeacher`)
or a model from elsewhere in any registered export format (:class:`ForeignTeacher`: ONNX,
LiteRT, ExecuTorch or ncnn, run by the export-format registry's runner, with its stated
preprocessing and output meaning), and checks it before anything is trained or written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from fasdistill.config import TeacherSpec
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD
from fasdistill.distill.batches import (
    PROBE_BATCH,
    binary_logits_from_probability,
    channels,
    probe_batch,
    resize_batch,
)
from fasdistill.distill.teacher import BINARY, FOREIGN_ONLY_FIELDS, Teacher, TorchTeacher
from fasdistill.distill.user_score import checked_score, load_score_function
from fasdistill.errors import InputError
from fasdistill.export.formats import format_for
from fasdistill.utils.text import one_line


class ForeignTeacher(Teacher):
    """A model from elsewhere, in any registered format, with its stated preprocessing.

    The runtime comes from the export-format registry (``format``, default: the
    file's suffix). ``output`` says what the chosen output (``output_name`` or
    ``output_index``; default the first) means: class ``logits`` (``classes`` names
    them; without names a two-column output is read as live/attack with the live
    column at ``live_index``), a live ``probability`` (one column, or the
    ``live_index`` column of a softmax), or a pixel/depth ``map`` whose mean is the
    live score. ``lower_is_live`` flips a probability or map that is P(attack).
    ``score: module:function`` instead names a function of the user's own that takes
    every output (numpy arrays) and returns P(bona fide) per image, for models whose
    score combines outputs. Probabilities and maps become two-class logits
    ``[log p, log(1 - p)]``.

    Constructing one checks the model's input against ``input_size`` and runs it
    once on :func:`probe_batch` at ``probe_size`` (default: its own input size):
    every field the output contradicts is an :class:`InputError` that starts with
    ``where`` (a recipe key such as ``distill.teacher[0]``, or a sidecar file) and
    names the field. Any later runtime failure is an :class:`InputError` naming the
    model file.
    """

    def __init__(
        self,
        spec: TeacherSpec,
        path: Path,
        data_classes: tuple[str, ...],
        where: str | None = None,
        probe_size: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.path = path
        self.spec = spec
        self.where = where or str(path)
        self.format = format_for(path, spec.format, self.where)
        self.kind = self.format.name
        self._check_fields()
        self.score_function = load_score_function(spec.score, self.where) if spec.score else None
        self.runner = self.format.open_runner(path, threads)  # None: the runtime chooses
        if self.runner.input_count != 1:
            raise InputError(
                f"{self.where}: {path.name} has {self.runner.input_count} inputs; a teacher "
                "takes one image batch"
            )
        shape = self.input_shape = list(self.runner.input_shape)
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise InputError(
                f"{self.where}: {path.name} takes inputs of shape {shape}; a teacher takes "
                "(N, 3, H, W) images"
            )
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if self.fixed_batch not in (None, 1):
            raise InputError(
                f"{self.where}: {path.name} takes a fixed batch of {self.fixed_batch}; export "
                "it with a dynamic batch (or a batch of 1)"
            )
        self.input_size = self._input_size(shape)
        names = self.runner.output_names
        if spec.output_name is not None and spec.output_name not in names:
            raise InputError(
                f"{self.where}: output_name: {path.name} has no output {spec.output_name!r}; "
                f"its outputs are {names}"
            )
        if spec.output_index is not None and spec.output_index >= len(names):
            raise InputError(
                f"{self.where}: output_index: {spec.output_index}, but {path.name} has "
                f"{len(names)} output(s) {names} (counted from 0)"
            )
        if spec.output_name is not None:
            self.output_index = names.index(spec.output_name)
        else:
            self.output_index = spec.output_index or 0
        self.output_name = names[self.output_index]
        self.has_pixel = spec.output == "map" and self.score_function is None
        self._ours = (channels(MEAN), channels(STD))
        self._theirs = (channels(spec.mean), channels(spec.std))
        # The probe: run once, check the raw output against the description, then
        # map class names to the data's, and check the converted outputs too.
        batch = probe_batch(probe_size or self.input_size)
        raw = self.run_outputs(self._preprocess(batch))
        if self.score_function is None:
            self._check_raw(raw[self.output_index], PROBE_BATCH)
        if spec.output == "logits" and spec.classes is not None and self.score_function is None:
            if sorted(spec.classes) != sorted(data_classes):
                raise InputError(
                    f"{self.where}: classes: {list(spec.classes)} differ from the data's "
                    f"{list(data_classes)}; give the same names, or omit classes for a "
                    "two-column live/attack output"
                )
            self.order: list[int] | None = [spec.classes.index(c) for c in data_classes]
            self.classes = tuple(data_classes)
        else:
            self.order = None
            self.classes = BINARY
        self._check_outputs(self._convert(raw, PROBE_BATCH), PROBE_BATCH)

    def _check_fields(self) -> None:
        """Fields that contradict each other, before the model is loaded."""
        spec, stated = self.spec, self.spec.model_fields_set
        if spec.output_name is not None and spec.output_index is not None:
            raise InputError(
                f"{self.where}: output_index: give output_name or output_index, not both"
            )
        if spec.score is not None:
            chooses = ("output", "output_name", "output_index", "live_index", "classes")
            clash = [name for name in chooses if name in stated]
            if clash:
                raise InputError(
                    f"{self.where}: {clash[0]}: score: {spec.score} takes every output and "
                    f"returns P(bona fide); leave {clash[0]} out"
                )
        elif spec.lower_is_live and spec.output == "logits":
            raise InputError(
                f"{self.where}: lower_is_live: applies to probability, map and score outputs; "
                "for logits state live_index (the bona fide column)"
            )

    # ------------------------------------------------------------------ checks

    def _input_size(self, shape: list[Any]) -> int:
        """The side the model is run at: ``input_size``, checked against a fixed input."""
        h, w = (d if isinstance(d, int) and d > 0 else None for d in shape[2:])
        name = self.path.name
        if h is not None and w is not None and h != w:
            raise InputError(
                f"{self.where}: {name} takes {h}x{w} inputs; only square inputs are supported"
            )
        fixed = h if h is not None and h == w else None
        stated = self.spec.input_size
        if stated is not None and fixed is not None and stated != fixed:
            raise InputError(
                f"{self.where}: input_size: {stated}, but {name} takes {fixed}x{fixed} inputs; "
                f"state input_size: {fixed} or leave it out"
            )
        if stated is not None:
            return stated
        if fixed is None:
            raise InputError(
                f"{self.where}: input_size: not stated, and {name}'s input size is not fixed "
                f"({shape}); state input_size"
            )
        return fixed

    def _check_raw(self, raw: np.ndarray, n: int) -> None:
        """The model's own output on the probe, against ``output``, ``classes`` and
        ``live_index``."""
        spec = self.spec
        what = f"{self.path.name}'s output {self.output_name!r}"
        shape = tuple(raw.shape)
        if raw.ndim == 0 or shape[0] != n:
            raise InputError(
                f"{self.where}: {what} has shape {shape} for a batch of {n}; a teacher "
                "gives one result per image"
            )
        if not np.isfinite(raw).all():
            raise InputError(
                f"{self.where}: {what} is not finite (NaN or inf) on a test batch; the model "
                "is broken or needs other inputs (check mean, std and colour_order)"
            )
        per_image = shape[1:]
        if spec.output == "map":
            one_map = len(per_image) == 3 and 1 in (per_image[0], per_image[-1])
            if not (len(per_image) == 2 or one_map):
                raise InputError(
                    f"{self.where}: output: map, but {what} has shape {shape}, not one 2-D map "
                    "per image; name a one-map output (output_name), or state output: logits "
                    "or probability"
                )
            return
        if sum(d > 1 for d in per_image) > 1:
            raise InputError(
                f"{self.where}: output: {spec.output}, but {what} has shape {shape}, a map "
                "per image; state output: map"
            )
        columns = int(np.prod(per_image)) if per_image else 1
        if spec.output == "probability":
            if columns > 1 or "live_index" in spec.model_fields_set:
                self._check_live_index(what, columns)
            low, high = float(raw.min()), float(raw.max())
            if low < -1e-6 or high > 1.0 + 1e-6:
                raise InputError(
                    f"{self.where}: output: probability, but {what} ranges from {low:.3g} to "
                    f"{high:.3g} on a test batch, outside [0, 1]: it looks like logits; state "
                    "output: logits"
                )
            return
        if spec.classes is not None:
            if len(spec.classes) != columns:
                raise InputError(
                    f"{self.where}: classes: {len(spec.classes)} names {list(spec.classes)}, "
                    f"but {what} has {columns} columns; give one name per column"
                )
            if "live_index" in spec.model_fields_set:
                self._check_live_index(what, columns)
        elif columns != 2:
            raise InputError(
                f"{self.where}: classes: not stated, and {what} has {columns} columns; name "
                "them (one per column, bonafide among them), or use a two-column live/attack "
                "output"
            )
        else:
            self._check_live_index(what, columns)

    def _check_live_index(self, what: str, columns: int) -> None:
        if self.spec.live_index >= columns:
            span = "column (0)" if columns == 1 else f"columns (0..{columns - 1})"
            raise InputError(
                f"{self.where}: live_index: {self.spec.live_index}, but {what} has {columns} {span}"
            )

    # ------------------------------------------------------------------ running

    def _preprocess(self, images: Tensor) -> np.ndarray:
        mean, std = self._ours
        pixels = images.detach().float().cpu() * std + mean  # RGB in [0, 1]
        pixels = resize_batch(pixels, self.input_size)
        if self.spec.colour_order != COLOUR_ORDER:
            pixels = pixels.flip(1)
        their_mean, their_std = self._theirs
        return ((pixels - their_mean) / their_std).numpy().astype(np.float32)

    def run_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output for a batch in the model's own preprocessing; a runtime failure
        names the file."""
        try:
            if self.fixed_batch is None:
                return self.runner.run(x)
            parts = [self.runner.run(x[i : i + 1]) for i in range(x.shape[0])]
            return [np.concatenate(outputs, axis=0) for outputs in zip(*parts, strict=True)]
        except Exception as error:  # noqa: BLE001 - runtimes raise several unrelated types
            raise InputError(
                f"{self.where}: {self.format.runtime} cannot run {self.path} on {x.shape[0]} "
                f"images of {x.shape[-2]}x{x.shape[-1]} px (its input: {self.input_shape}; "
                f"check input_size): {one_line(error)}"
            ) from None

    def _convert(self, raw: list[np.ndarray], n: int) -> dict[str, Tensor]:
        """The checked raw outputs as two-class (or reordered class) logits and a map."""
        spec = self.spec
        if self.score_function is not None:
            p = checked_score(self.score_function, raw, n, spec.score or "", self.where)
            if spec.lower_is_live:
                p = 1.0 - p
            return {"logits": binary_logits_from_probability(torch.from_numpy(p))}
        values = torch.from_numpy(np.asarray(raw[self.output_index], np.float32))
        if spec.output == "logits":
            logits = values.reshape(n, -1)
            if self.order is not None:
                return {"logits": logits[:, self.order]}
            return {"logits": logits[:, [spec.live_index, 1 - spec.live_index]]}
        if spec.output == "probability":
            p = values.reshape(n, -1)
            p = p[:, 0 if p.shape[1] == 1 else spec.live_index]
            if spec.lower_is_live:
                p = 1.0 - p
            return {"logits": binary_logits_from_probability(p)}
        if values.dim() == 4 and values.shape[-1] == 1 and values.shape[1] != 1:
            values = values.permute(0, 3, 1, 2)  # an NHWC map (N, H, W, 1)
        maps = values.reshape(n, 1, *values.shape[-2:]).clamp(0.0, 1.0)
        if spec.lower_is_live:
            maps = 1.0 - maps
        return {"logits": binary_logits_from_probability(maps.mean(dim=(1, 2, 3))), "pixel": maps}

    @torch.no_grad()
    def outputs(self, images: Tensor) -> dict[str, Tensor]:
        raw = self.run_outputs(self._preprocess(images))
        converted = self._convert(raw, images.shape[0])
        return {k: v.to(images.device) for k, v in converted.items()}


OnnxTeacher = ForeignTeacher  # its name when it ran ONNX models only


def load_teacher(
    spec: TeacherSpec,
    where: str,
    data_classes: tuple[str, ...],
    crop_scale: float,
    device: torch.device,
    input_size: int | None = None,
) -> Teacher:
    """Load, probe and check one teacher before anything is trained or written.

    ``where`` names it in errors (e.g. ``distill.teacher[0]``); ``input_size`` is the
    student's (the probe batch's size; default: the teacher's own).
    """
    path = Path(spec.path)
    if not path.is_file():
        raise InputError(f"{where}: teacher file {path} not found")
    if path.suffix.lower() != ".pt":  # a model from elsewhere, in a registered format
        if spec.bn_train:
            raise InputError(
                f"{where}: bn_train applies to fasdistill checkpoints, not {path.name}"
            )
        if spec.crop_scale is None:
            raise InputError(
                f"{where}: crop_scale: not stated; state the crop scale {path.name} was trained "
                f"on (the data's crops are at {crop_scale})"
            )
        if not math.isclose(spec.crop_scale, crop_scale, rel_tol=1e-6):
            raise InputError(
                f"{where}: crop_scale: {path.name} expects crops at scale {spec.crop_scale}, "
                f"the data's are at {crop_scale}; prepare crops at {spec.crop_scale}"
            )
        return ForeignTeacher(spec, path, data_classes, where=where, probe_size=input_size)
    stated = sorted(set(FOREIGN_ONLY_FIELDS) & spec.model_fields_set)
    if stated:
        raise InputError(
            f"{where}: {', '.join(stated)} describe models from elsewhere; {path.name} is a "
            "fasdistill "
            "checkpoint that carries its own preprocessing"
        )
    teacher = TorchTeacher(path, spec.bn_train, device, where=where, probe_size=input_size)
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
