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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fasdistill.errors import InputError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name: str = "swapnet"
    aux: list[Literal["pixel", "fourier"]] = Field(default_factory=list)


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


class RunConfig(_Section):
    """A full training recipe."""

    name: str = "run"
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

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
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(f"{source}: {dotted!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


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


def load_recipe(
    path: str | os.PathLike[str] | None, overrides: list[str] | None = None
) -> RunConfig:
    """Read a YAML recipe (or defaults when ``path`` is None), apply overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
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
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
