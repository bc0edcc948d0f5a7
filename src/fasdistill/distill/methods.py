"""The distillation methods: one class each, holding its recipe schema, its checks and its loss.

A recipe's ``distill.terms`` entry is validated into one of these classes by its
``kind``; :meth:`Method.loss` computes the term from :class:`TermInputs` (the
student's outputs, the teachers' outputs and the batch labels) with the pure
functions of :mod:`fasdistill.distill.losses`. Adding a method is one class here
(and its loss function there); :data:`METHODS` lists them all.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from fasdistill.distill import losses as L
from fasdistill.schema import Section


def binary(logits: Tensor) -> Tensor:
    """(N, C) logits over bona fide + species -> (N, 2) bona fide vs any attack."""
    if logits.shape[1] == 2:
        return logits
    return torch.stack([logits[:, 0], torch.logsumexp(logits[:, 1:], dim=1)], dim=1)


@dataclass
class TermInputs:
    """What a term is computed from, for one batch.

    ``teacher[k]`` holds teacher k's outputs (``logits``, ``pixel``, and for the first
    teacher ``feature:<term name>``); ``reduce[k]``: teacher k scores bona fide vs
    attack only, so the student's species logits are merged to match.
    """

    name: str
    student: dict[str, Tensor]
    teacher: list[dict[str, Tensor]]
    labels: Tensor
    reduce: list[bool]

    def logits(self, k: int = 0) -> tuple[Tensor, Tensor]:
        """Student and teacher ``k`` logits over the same classes."""
        student = self.student["logits"].float()
        return (binary(student) if self.reduce[k] else student), self.teacher[k]["logits"]

    def labels_for(self, reduce: bool) -> Tensor:
        return self.labels.clamp(max=1) if reduce else self.labels

    def features(self) -> tuple[Tensor, Tensor]:
        """The student's (adapted) and the first teacher's tapped features of this term."""
        key = f"feature:{self.name}"
        return self.student[key], self.teacher[0][key]


@dataclass
class TermContext:
    """What a method's :meth:`Method.check` may look at before training starts."""

    where: str  # e.g. "distill term 'kd'", for error messages
    classes: tuple[str, ...]
    teachers: int
    student_aux: tuple[str, ...]
    teacher: str  # the first teacher's file name
    teacher_has_pixel: bool
    warn: Callable[[str], None]


class Method(Section):
    """A weighted distillation term; its weight ramps linearly from 0 over ``warmup_epochs``."""

    weight: float = Field(1.0, ge=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)
    level: ClassVar[Literal["output", "feature"]] = "output"
    adapted: ClassVar[bool] = False  # a learned adapter maps student features to the teacher's

    def recipe_problem(self, teachers: int) -> str | None:
        """What is wrong with this term in a recipe with ``teachers`` teachers, if anything."""
        return None

    def check(self, ctx: TermContext) -> str | None:
        """An error message if this term cannot run with these teachers and student."""
        return None

    @abc.abstractmethod
    def loss(self, x: TermInputs) -> Tensor:
        """This term's value for one batch (a scalar, before its weight and warm-up)."""


class KD(Method):
    """Hinton KD: T^2 KL(softmax(z_t/T) || softmax(z_s/T))."""

    kind: Literal["kd"]
    temperature: float = Field(4.0, gt=0.0)

    def loss(self, x: TermInputs) -> Tensor:
        return L.kd_kl(*x.logits(), self.temperature)


class KDStandardized(Method):
    """KD on z-scored logits (logit standardisation, Sun et al. 2024)."""

    kind: Literal["kd_std"]
    temperature: float = Field(2.0, gt=0.0)

    def loss(self, x: TermInputs) -> Tensor:
        return L.kd_standardized(*x.logits(), self.temperature)


class DKD(Method):
    """Decoupled KD: alpha TCKD + beta NCKD (Zhao et al. 2022)."""

    kind: Literal["dkd"]
    alpha: float = Field(L.DKD_ALPHA, ge=0.0)
    beta: float = Field(L.DKD_BETA, ge=0.0)
    temperature: float = Field(L.DKD_TEMPERATURE, gt=0.0)

    def check(self, ctx: TermContext) -> str | None:
        if len(ctx.classes) <= 2:
            ctx.warn(
                f"{ctx.where}: DKD with {len(ctx.classes)} classes has no non-target part "
                "(NCKD is 0); only TCKD trains. Prepare data with one class per attack species."
            )
        return None

    def loss(self, x: TermInputs) -> Tensor:
        s, t = x.logits()
        labels = x.labels_for(x.reduce[0])
        return L.dkd(s, t, labels, self.alpha, self.beta, self.temperature)


class DIST(Method):
    """DIST: inter- and intra-class correlation (Huang et al. 2022)."""

    kind: Literal["dist"]
    beta: float = Field(1.0, ge=0.0)
    gamma: float = Field(1.0, ge=0.0)
    temperature: float = Field(1.0, gt=0.0)

    def loss(self, x: TermInputs) -> Tensor:
        return L.dist(*x.logits(), self.beta, self.gamma, self.temperature)


class MultiTeacher(Method):
    """KD from every listed teacher, fixed or confidence-adaptive weights."""

    kind: Literal["multi_teacher"]
    temperature: float = Field(4.0, gt=0.0)
    weights: list[float] | None = None  # one per teacher; None: uniform
    adaptive: bool = False

    def recipe_problem(self, teachers: int) -> str | None:
        if self.weights is None:
            return None
        if self.adaptive:
            return "give fixed weights or adaptive: true, not both"
        if len(self.weights) != teachers:
            return f"{len(self.weights)} weights for {teachers} teachers"
        if min(self.weights) < 0 or sum(self.weights) <= 0:
            return "weights must be >= 0, not all zero"
        return None

    def check(self, ctx: TermContext) -> str | None:
        if ctx.teachers < 2:
            ctx.warn(f"{ctx.where}: multi_teacher with one teacher is plain KD")
        return None

    def loss(self, x: TermInputs) -> Tensor:
        reduce = any(x.reduce)
        student = x.student["logits"].float()
        s = binary(student) if reduce else student
        ts = [binary(t["logits"]) if reduce else t["logits"] for t in x.teacher]
        return L.multi_teacher_kd(
            s, ts, x.labels_for(reduce), self.temperature, weights=self.weights,
            adaptive=self.adaptive,
        )  # fmt: skip


class Pixel(Method):
    """The student's auxiliary pixel map regresses the teacher's bona fide map."""

    kind: Literal["pixel"]

    def check(self, ctx: TermContext) -> str | None:
        if "pixel" not in ctx.student_aux:
            return (
                f"{ctx.where}: pixel distillation needs the student's pixel head "
                "(model.aux: [pixel])"
            )
        if not ctx.teacher_has_pixel:
            return (
                f"{ctx.where}: the teacher {ctx.teacher} has no pixel map (train it with "
                "model.aux: [pixel], or use an ONNX teacher with output: map)"
            )
        return None

    def loss(self, x: TermInputs) -> Tensor:
        return L.pixel_map(x.student["pixel"], x.teacher[0]["pixel"])


class FeatureMethod(Method):
    """Terms on intermediate features, captured by hooks on modules named by path."""

    level: ClassVar[Literal["output", "feature"]] = "feature"
    student: str = "backbone"  # module path in the student (``backbone`` = final map)
    teacher: str = "backbone"  # module path in the teacher
    student_call: int = -1  # which call, for modules that run more than once per forward
    teacher_call: int = -1


class FitNet(FeatureMethod):
    """FitNets hint: MSE(adapter(f_s), f_t) with a learned 1x1 conv + BN adapter."""

    kind: Literal["fitnet"]
    adapted: ClassVar[bool] = True

    def loss(self, x: TermInputs) -> Tensor:
        return L.fitnet(*x.features())


class AT(FeatureMethod):
    """Attention transfer (Zagoruyko & Komodakis 2017)."""

    kind: Literal["at"]
    p: float = Field(2.0, gt=0.0)

    def loss(self, x: TermInputs) -> Tensor:
        return L.attention_transfer(*x.features(), self.p)


class RKD(FeatureMethod):
    """Relational KD: distance + angle (Park et al. 2019)."""

    kind: Literal["rkd"]
    distance_weight: float = Field(25.0, ge=0.0)
    angle_weight: float = Field(50.0, ge=0.0)

    def loss(self, x: TermInputs) -> Tensor:
        return L.rkd(*x.features(), self.distance_weight, self.angle_weight)


class PKT(FeatureMethod):
    """Probabilistic knowledge transfer (Passalis & Tefas 2018)."""

    kind: Literal["pkt"]

    def loss(self, x: TermInputs) -> Tensor:
        return L.pkt(*x.features())


class SP(FeatureMethod):
    """Similarity-preserving KD (Tung & Mori 2019)."""

    kind: Literal["sp"]

    def loss(self, x: TermInputs) -> Tensor:
        return L.similarity_preserving(*x.features())


class OneClass(FeatureMethod):
    """One-class KD: bona fide features of the student match the teacher's (Li et al. 2022)."""

    kind: Literal["one_class"]
    adapted: ClassVar[bool] = True

    def loss(self, x: TermInputs) -> Tensor:
        return L.one_class_kd(*x.features(), x.labels == 0)


METHODS: tuple[type[Method], ...] = (
    KD, KDStandardized, DKD, DIST, MultiTeacher, Pixel, FitNet, AT, RKD, PKT, SP, OneClass,
)  # fmt: skip
DistillTerm = Annotated[
    KD | KDStandardized | DKD | DIST | MultiTeacher | Pixel | FitNet | AT | RKD | PKT | SP
    | OneClass,
    Field(discriminator="kind"),
]  # fmt: skip


def kind_of(method: type[Method]) -> str:
    return method.model_fields["kind"].annotation.__args__[0]  # Literal["kd"] -> "kd"


FEATURE_KINDS = tuple(kind_of(m) for m in METHODS if m.level == "feature")
OUTPUT_KINDS = tuple(kind_of(m) for m in METHODS if m.level == "output")
