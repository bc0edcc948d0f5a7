"""The distillation objective: the supervised terms plus KD terms from frozen teachers.

``Distilled.module`` is the student plus its training-only adapters: its forward
runs the student's training path, reads the student's tapped features and
passes them through the adapters, so DDP sees (and all-reduces) every trainable
parameter. The teachers run inside :meth:`Distilled.losses`, under ``no_grad``,
outside DDP and outside every checkpoint.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn

from fasdistill.config import RunConfig
from fasdistill.data.loader import CropDataset, CropIndex, is_view_only, keeps_geometry
from fasdistill.distill.adapters import make_adapter
from fasdistill.distill.methods import FEATURE_KINDS, Method, TermContext, TermInputs
from fasdistill.distill.taps import FeatureTaps
from fasdistill.distill.teacher import Teacher
from fasdistill.distill.teachers import load_teacher
from fasdistill.engine.objective import Batch, Objective, supervised_terms
from fasdistill.errors import InputError
from fasdistill.models import FASModel
from fasdistill.models.multimodal import channel_count, check_modalities, select

SUPERVISED_TERMS = ("ce", "pixel", "fourier")


def term_names(terms: list[Any]) -> list[str]:
    """Each term's log name: its kind (``pixel_kd`` beside the supervised ``pixel``),
    numbered when a kind appears more than once."""
    kinds = [f"{t.kind}_kd" if t.kind in SUPERVISED_TERMS else t.kind for t in terms]
    return [
        f"{k}{sum(1 for x in kinds[:i] if x == k) + 1}" if kinds.count(k) > 1 else k
        for i, k in enumerate(kinds)
    ]


class DistillModule(nn.Module):
    """Student + adapters: ``forward`` returns the student's training outputs and, per
    feature term, its (adapted) tapped feature under ``feature:<term>``."""

    def __init__(
        self,
        student: FASModel,
        taps: FeatureTaps,
        wanted: dict[str, tuple[str, int]],
        adapters: dict[str, nn.Module],
        layout: tuple[str, ...] = ("rgb",),
    ) -> None:
        super().__init__()
        self.student = student
        self.layout = layout  # what a batch stacks; the student reads its own channels
        self.adapters = nn.ModuleDict(adapters)
        self._taps = taps
        self._wanted = wanted  # term name -> (student module path, call)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self._taps.clear()
        out = dict(self.student.forward_train(select(images, self.layout, self.student.modalities)))
        for name, (path, call) in self._wanted.items():
            feature = self._taps.get(name, path, call)
            if name in self.adapters:
                feature = self.adapters[name](feature)
            out[f"feature:{name}"] = feature
        self._taps.clear()
        return out


class Distilled(Objective):
    """Supervised terms (scaled by ``distill.ce_weight``) plus the recipe's KD terms."""

    def __init__(
        self,
        model: FASModel,
        config: RunConfig,
        index: CropIndex,
        input_size: int,
        device: torch.device,
    ) -> None:
        assert config.distill is not None
        self.model = model
        self.config = config
        self.spec = config.distill
        self.terms: list[Method] = list(self.spec.terms)
        self.names = term_names(self.terms)
        # Each teacher is probed on a dummy batch at the student's input size as it loads.
        self.teachers: list[Teacher] = [
            load_teacher(t, f"distill.teacher[{i}]", index.classes, index.scale, device, input_size)
            for i, t in enumerate(self.spec.teacher)
        ]
        self._check_terms(index.classes)
        # A batch stacks every modality the student or a teacher reads (canonical order):
        # a depth + NIR teacher teaches an RGB student from the same registered crops.
        wanted = {m for t in self.teachers for m in t.modalities} | set(model.modalities)
        self.layout = check_modalities(sorted(wanted))
        # Teachers with only bona fide vs attack outputs are matched by reducing the student.
        self.reduce = [t.classes != tuple(index.classes) for t in self.teachers]
        feature_terms = {
            n: t for n, t in zip(self.names, self.terms, strict=True) if t.kind in FEATURE_KINDS
        }
        student_taps = FeatureTaps(
            model, [(self._where(n), t.student) for n, t in feature_terms.items()], "student"
        )
        self.teacher_taps = None
        if feature_terms:
            teacher_net = self.teachers[0].module
            assert teacher_net is not None  # checked in _check_terms
            self.teacher_taps = FeatureTaps(
                teacher_net,
                [(self._where(n), t.teacher) for n, t in feature_terms.items()],
                "teacher",
            )
        adapters = self._size_adapters(model, student_taps, feature_terms, input_size, device)
        self.module = DistillModule(
            model,
            student_taps,
            {n: (t.student, t.student_call) for n, t in feature_terms.items()},
            adapters,
            self.layout,
        ).to(device)
        self.cache: dict[str, Tensor] | None = None

    # ------------------------------------------------------------------ checks and set-up

    def _where(self, name: str) -> str:
        return f"distill term {name!r}"

    def _check_terms(self, classes: tuple[str, ...]) -> None:
        first = self.teachers[0]
        for name, term in zip(self.names, self.terms, strict=True):
            where = self._where(name)
            if term.kind in FEATURE_KINDS and first.module is None:
                raise InputError(
                    f"{where}: {term.kind} needs the teacher's intermediate features, and "
                    f"{first.path.name} is an ONNX model that gives only its outputs; use an "
                    "output-level term (kd, kd_std, dkd, dist, multi_teacher, pixel)"
                )
            context = TermContext(
                where,
                tuple(classes),
                len(self.teachers),
                tuple(self.config.model.aux),
                first.path.name,
                first.has_pixel,
                lambda message: warnings.warn(message, stacklevel=4),
            )
            problem = term.check(context)
            if problem:
                raise InputError(problem)
        problem = cache_problem(self.config)
        if problem:
            raise InputError(problem)

    def _size_adapters(
        self,
        model: FASModel,
        taps: FeatureTaps,
        terms: dict[str, Any],
        input_size: int,
        device: torch.device,
    ) -> dict[str, nn.Module]:
        """Adapters sized by one dummy forward of student and teacher (eval mode, no grad)."""
        needs = {n: t for n, t in terms.items() if t.adapted}
        if not needs:
            return {}
        dummy = torch.zeros(2, channel_count(self.layout), input_size, input_size, device=device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model.forward_train(select(dummy, self.layout, model.modalities))
                self.teachers[0].outputs(select(dummy, self.layout, self.teachers[0].modalities))
            adapters = {}
            for name, term in needs.items():
                s = taps.get(self._where(name), term.student, term.student_call)
                assert self.teacher_taps is not None
                t = self.teacher_taps.get(self._where(name), term.teacher, term.teacher_call)
                # Channels (or width) only: maps of other sizes are pooled by the losses.
                adapters[name] = make_adapter(tuple(s.shape), tuple(t.shape), self._where(name))
        finally:
            model.train(was_training)
            taps.clear()
            if self.teacher_taps is not None:
                self.teacher_taps.clear()
        return adapters

    # ------------------------------------------------------------------ teacher outputs

    def prepare(self, train_set: CropDataset, device: torch.device) -> None:
        """With ``cache: true``, run every teacher once on each crop and its mirror image.

        Each teacher sees the stored crop read at its own input size, as in its own
        training, not the student's input resized: a teacher trained at the crops' full
        size keeps the detail a smaller student input loses. (Uncached, a teacher can
        only resize the student's view, so the two agree only when the sizes do.)
        Outputs and tapped features are kept (on the training device) for the whole run:
        about 2 x crops x feature size floats, small for face crops and final maps.
        """
        if not self.spec.cache:
            return
        plain = {
            size: CropDataset(train_set.index, train_set.split, size, modalities=self.layout)
            for size in {t.input_size for t in self.teachers}
        }
        parts: dict[str, list[Tensor]] = {}
        # A plain loop, not a DataLoader: iterating one draws from the global RNG, and
        # a cached run must consume random numbers exactly as an uncached one does.
        for start in range(0, len(train_set), 64):
            rows = range(start, min(start + 64, len(train_set)))
            sized = {s: torch.stack([d[i][0] for i in rows]).to(device) for s, d in plain.items()}
            mirrored = {s: images.flip(3) for s, images in sized.items()}
            for view, batch in enumerate((sized, mirrored)):
                for k, outputs in enumerate(self._run_teachers(batch)):
                    for key, value in outputs.items():
                        parts.setdefault(f"{k}:{key}:{view}", []).append(value.cpu())
        merged = {k: torch.cat(v) for k, v in parts.items()}
        keys = {k.rsplit(":", 1)[0] for k in merged}
        self.cache = {
            key: torch.stack([merged[f"{key}:0"], merged[f"{key}:1"]], dim=1).to(device)
            for key in keys
        }

    def _run_teachers(self, images: Tensor | dict[int, Tensor]) -> list[dict[str, Tensor]]:
        """Every teacher's outputs; the first one's also hold ``feature:<term>`` taps.

        ``images``: one batch for all teachers (each resizes it to its input size), or
        the same crops read at each teacher's input size, keyed by that size.
        """
        outputs = [
            t.outputs(
                select(
                    images[t.input_size] if isinstance(images, dict) else images,
                    self.layout,
                    t.modalities,
                )
            )
            for t in self.teachers
        ]
        if self.teacher_taps is not None:
            for name, term in zip(self.names, self.terms, strict=True):
                if term.kind in FEATURE_KINDS:
                    outputs[0][f"feature:{name}"] = self.teacher_taps.get(
                        self._where(name), term.teacher, term.teacher_call
                    )
            self.teacher_taps.clear()
        return outputs

    def _teacher_outputs(self, batch: Batch) -> list[dict[str, Tensor]]:
        if self.cache is None:
            return self._run_teachers(batch.images)
        if bool((batch.views < 0).any()):
            raise InputError("distill.cache: a batch holds augmented views that are not cached")
        rows, views = batch.rows.to(batch.images.device), batch.views.to(batch.images.device)
        return [
            {
                key.split(":", 1)[1]: value[rows, views]
                for key, value in self.cache.items()
                if key.startswith(f"{k}:")
            }
            for k in range(len(self.teachers))
        ]

    # ------------------------------------------------------------------ the loss

    def losses(self, out: dict[str, Tensor], batch: Batch, epoch: float) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        if self.spec.ce_weight > 0:
            terms = supervised_terms(
                out, batch.images, batch.labels, self.config, scale=self.spec.ce_weight
            )
        teacher = self._teacher_outputs(batch)
        for name, term in zip(self.names, self.terms, strict=True):
            ramp = min(1.0, epoch / term.warmup_epochs) if term.warmup_epochs > 0 else 1.0
            inputs = TermInputs(name, out, teacher, batch.labels, self.reduce)
            terms[name] = term.weight * ramp * term.loss(inputs)
        return terms

    # ------------------------------------------------------------------ state

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.layout

    def state_dict(self) -> dict[str, Any]:
        return {"adapters": self.module.adapters.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "adapters" in state:
            self.module.adapters.load_state_dict(state["adapters"])

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "distilled",
            "teachers": [t.describe() for t in self.teachers],
            "terms": self.names,
        }


def cache_problem(config: RunConfig) -> str | None:
    """Why ``config``'s cached teacher outputs would not match what the student sees."""
    spec, augment = config.distill, config.data.augment
    if spec is None or not spec.cache:
        return None
    if not keeps_geometry(augment):
        return (
            "distill.cache: cached teacher outputs need the whole crop, at most "
            "mirrored (data.augment.resized_crop=[1.0,1.0])"
        )
    if spec.teacher_view == "same" and not is_view_only(augment):
        return (
            "distill.cache: cached teacher outputs need augmentation limited to flips "
            "(data.augment.colour_jitter=0, blur=0), or distill.teacher_view: clean "
            "to have the teachers score the crops before colour jitter and blur"
        )
    return None
