"""Typed, validated experiment recipes (YAML), with command-line overrides.

A recipe names the model, the data handling, the optimiser, the schedule and
the training loop. Every section forbids unknown keys, so a typo is an error
that names the key instead of a silently ignored setting; wrong types are
errors that name the key too. ``key.sub=value`` overrides from the command line
are parsed as YAML scalars and validated the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fasdistill.distill.methods import DistillTerm
from fasdistill.errors import InputError
from fasdistill.schema import Section
from fasdistill.utils.packaged import packaged_names, resolve_packaged

_Section = Section


class ModelConfig(_Section):
    name: str = "swapnet"
    aux: list[Literal["pixel", "fourier"]] = Field(default_factory=list)
    # The architecture string of a model family (searchnet: ``fasdistill search``'s students)
    arch: str | None = None
    # Sensors the model reads (rgb, depth, ir; channels stacked in that order), how a
    # multi-modal model fuses them, and the training-only chance of dropping each one.
    modalities: list[Literal["rgb", "depth", "ir"]] = Field(default_factory=lambda: ["rgb"])
    fusion: Literal["early", "late"] = "early"
    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0)


class AugmentConfig(_Section):
    """Augmentations for FAS: on by default only what keeps attack cues intact."""

    flip: bool = True  # mirror images carry the same cues
    resized_crop: tuple[float, float] = (0.85, 1.0)  # area fraction kept; (1, 1) = off
    colour_jitter: float = Field(0.0, ge=0.0, le=0.5)  # off: colour casts are attack cues
    blur: float = Field(0.0, ge=0.0, le=0.5)  # probability of a mild blur; off: blur hides moire

    @model_validator(mode="after")
    def _check_crop(self) -> AugmentConfig:
        lo, hi = self.resized_crop
        if not 0.1 <= lo <= hi <= 1.0:
            raise ValueError("resized_crop must satisfy 0.1 <= min <= max <= 1")
        return self


class DataConfig(_Section):
    scale: float | None = None  # crop scale to use from the index (None: the only one present)
    input_size: int | None = Field(None, ge=16, le=1024)  # None: the model's default
    batch_size: int = Field(64, ge=1)
    workers: int = Field(2, ge=0)
    level: Literal["frame", "video"] = "frame"  # evaluation level on dev
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class OptimConfig(_Section):
    name: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # SGD only


class ScheduleConfig(_Section):
    name: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    step_epochs: int = Field(10, ge=1)  # step schedule: decay every N epochs
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)  # cosine floor as a fraction of lr


class AuxWeights(_Section):
    """Loss weights of the training-only auxiliary heads requested in ``model.aux``."""

    pixel: float = Field(0.5, ge=0.0)
    fourier: float = Field(0.1, ge=0.0)


class TrainConfig(_Section):
    epochs: int = Field(10, ge=1)
    seed: int = Field(0, ge=0)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, off on CPU
    grad_clip: float | None = Field(5.0, gt=0.0)
    select_metric: Literal["acer", "eer"] = "acer"  # on dev, at the dev EER threshold
    early_stop: int | None = Field(None, ge=1)  # epochs without dev improvement
    aux_weights: AuxWeights = Field(default_factory=AuxWeights)
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    log_every: int = Field(10, ge=1)  # steps between JSONL step records
    # A budget that means the same on any dataset size: epochs are raised until the
    # run makes at least this many optimiser steps (None: exactly ``epochs``).
    min_steps: int | None = Field(None, ge=1)


# ---------------------------------------------------------------------------- distillation


class TeacherSpec(_Section):
    """A frozen teacher: a fasdistill ``best.pt``, or a model from elsewhere.

    A checkpoint of ours carries its own preprocessing. A third-party model's (in any
    registered format: ONNX, LiteRT, ExecuTorch, ncnn) must be stated: its input side,
    colour order, mean/std (on pixels scaled to [0, 1]), the crop scale it was trained
    on, and what its output means: class ``logits``, a live ``probability``, a
    pixel/depth ``map`` whose mean is the live score, or a ``score`` function of the
    user's own that combines several outputs.
    """

    path: str
    bn_train: bool = False  # BatchNorm in train mode (ours only; default: eval, frozen)
    input_size: int | None = Field(None, ge=8, le=2048)
    colour_order: Literal["RGB", "BGR"] = "RGB"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_scale: float | None = Field(None, gt=0.0)
    output: Literal["logits", "probability", "map"] = "logits"
    output_name: str | None = None  # which output, by name (default: the first)
    output_index: int | None = Field(None, ge=0)  # which output, by position
    live_index: int = Field(0, ge=0)  # class index of bona fide in logits/probabilities
    classes: list[str] | None = None  # logits: class names (bonafide first after reorder)
    format: str | None = None  # a registered export format; default: from the file suffix
    lower_is_live: bool = False  # probability/map/score is P(attack): 1 - it is P(bona fide)
    score: str | None = None  # "module:function" of the output list -> P(bona fide) per image

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every std must be > 0")
        return value


class DistillConfig(_Section):
    """Distillation: the frozen teacher(s), the supervised weight and the KD terms.

    ``teacher`` is a path, a mapping (for ONNX teachers' preprocessing) or a list of
    them; single-teacher terms use the first, ``multi_teacher`` uses all.
    """

    teacher: list[TeacherSpec]
    ce_weight: float = Field(1.0, ge=0.0)  # weight of the supervised terms (alpha of Hinton KD)
    cache: bool = False  # cache teacher outputs (and tapped features) per crop and view
    # What the teachers score: "same", the student's augmented view; "clean", the crop
    # without the photometric augmentation (colour jitter, blur), from the cache.
    teacher_view: Literal["same", "clean"] = "same"
    terms: list[DistillTerm] = Field(min_length=1)

    @field_validator("teacher", mode="before")
    @classmethod
    def _teacher_list(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            return [{"path": str(value)}]
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            return [{"path": str(v)} if isinstance(v, (str, os.PathLike)) else v for v in value]
        return value

    @model_validator(mode="after")
    def _check_terms(self) -> DistillConfig:
        if not self.teacher:
            raise ValueError("teacher: give at least one teacher")
        if self.teacher_view == "clean" and not self.cache:
            raise ValueError(
                "teacher_view: clean takes the teachers' outputs on un-augmented crops "
                "from the cache; set cache: true"
            )
        for i, term in enumerate(self.terms):
            problem = term.recipe_problem(len(self.teacher))
            if problem:
                raise ValueError(f"terms[{i}] ({term.kind}): {problem}")
        return self


class RunConfig(_Section):
    """A full training recipe."""

    name: str = "run"
    description: str = ""  # one line, shown by ``fasdistill recipes``
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    distill: DistillConfig | None = None  # present: distil from a frozen teacher

    @model_validator(mode="after")
    def _aux_heads_have_weight(self) -> RunConfig:
        for head in self.model.aux:
            if getattr(self.train.aux_weights, head) == 0:
                raise ValueError(
                    f"model.aux requests the {head!r} head but train.aux_weights.{head} is 0: "
                    "the head would train nothing; drop it from model.aux or give it a weight"
                )
        return self


def _format_errors(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(recipe)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r}")
        else:
            problems.append(f"{key}: {item['msg']} (got {item.get('input')!r})")
    return f"{source}: " + "; ".join(problems)


def _set_path(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    """Set ``a.b.c`` in nested mappings; a number indexes a list (``distill.terms.1.weight``)."""
    node: Any = data
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(
                    f"{source}: {dotted!r}: {'.'.join(parts[:i])} is a list of {len(node)}; "
                    f"{part!r} is not an index into it"
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise InputError(f"{source}: {dotted!r}: {parts[i - 1]!r} is not a section")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``key.sub=value`` strings to (key, YAML-parsed value) pairs."""
    pairs = []
    for text in overrides:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise InputError(f"override {text!r}: expected key.sub=value (e.g. optim.lr=0.01)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise InputError(f"override {text!r}: value is not valid YAML ({exc})") from None
        pairs.append((key.strip(), value))
    return pairs


# The recipes shipped inside the package (``fasdistill recipes`` lists them).
BUILTIN_RECIPES = Path(__file__).resolve().with_name("recipes")


def builtin_recipe_names() -> list[str]:
    """The names of the built-in recipes (file stems), sorted."""
    return packaged_names(BUILTIN_RECIPES)


def resolve_recipe(recipe: str | os.PathLike[str]) -> Path:
    """A recipe file from a path or a built-in name (``teacher_resnet18[.yaml]``).

    An existing file wins, so a local copy is never shadowed by a built-in of the
    same name; a bare name (no folder) is then looked up among the built-in recipes.
    """
    return resolve_packaged(recipe, BUILTIN_RECIPES, "recipe", "fasdistill recipes")


def load_recipe(
    path: str | os.PathLike[str] | None, overrides: list[str] | None = None
) -> RunConfig:
    """Read a YAML recipe (path or built-in name; defaults if None), apply overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = resolve_recipe(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: recipe not found") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise InputError(
                f"{path}: a recipe is a mapping of sections, got {type(loaded).__name__}"
            )
        data = loaded
    for key, value in parse_overrides(overrides or []):
        _set_path(data, key, value, "override")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise InputError(_format_errors(error, source)) from None


def dump_recipe(config: RunConfig) -> str:
    """The resolved recipe as YAML (written into every run directory)."""
    data = config.model_dump(mode="json")
    if data["distill"] is None:  # supervised recipes read as they always did
        del data["distill"]
    if not data["description"]:  # and so do recipes without a description
        del data["description"]
    if data["model"]["arch"] is None:  # and models without an architecture string
        del data["model"]["arch"]
    return yaml.safe_dump(data, sort_keys=False)
