"""What a search is given: its settings (``SearchConfig``), read from YAML and ``--set``.

A point of the space is ``ARCH@SIDE``: a SearchNet string and its input side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fasdistill.errors import InputError
from fasdistill.schema import Section
from fasdistill.search.space import SearchSpace

SWAPNET_POINT = "d3w32n1-d3w64n2-d3w96n2-d3w128n2@64"


class SearchConfig(Section):
    """What to search, for which runtime and budget, and how much to spend on it."""

    runtime: str = "onnx"
    threads: int = Field(1, ge=1)
    max_latency_ms: float | None = Field(None, gt=0)
    max_params: int | None = Field(None, ge=1)
    space: SearchSpace = Field(default_factory=SearchSpace)
    pool: int = Field(200, ge=2)  # architectures drawn (and put in the latency table)
    include: list[str] = Field(default_factory=lambda: [SWAPNET_POINT])  # "arch@side"
    latency_margin: float = Field(1.5, ge=1.0)  # candidates up to this x the latency budget
    candidates: int = Field(16, ge=2)  # first-round proxy runs
    refine: int = Field(8, ge=0)  # mutations of the proxy front, also proxy-trained
    proxy: Literal["acer", "eer", "auc", "nll"] = "acer"
    proxy_steps: int = Field(60, ge=1)
    min_rank: float = Field(0.5, ge=-1.0, le=1.0)  # Spearman a proxy must reach
    escalate: int = Field(1, ge=0)  # times the proxy's steps may double when none ranks
    check: int = Field(8, ge=2)  # fully trained candidates the rank check uses, at least
    front_max: int = Field(6, ge=1)  # final models, at most
    steps: int = Field(270, ge=1)  # the full budget (optimiser steps)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    recipe: str = "distill_kd"
    overrides: list[str] = Field(default_factory=list)
    lut_fit: int = Field(6, ge=1)
    lut_check: int = Field(8, ge=1)
    lut_runs: int = Field(100, ge=5)  # timed runs per table entry
    timing_runs: int = Field(200, ge=5)  # and per whole model (fit, check, final front)
    timing_seconds: float = Field(2.0, ge=0.0)  # at least this long per whole-model loop
    seed: int = 0


def parse_count(text: str) -> int:
    """``"1M"``, ``"500k"``, ``"250000"`` -> an int; anything else is an error naming it."""
    raw = str(text).strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(raw[-1:], 1)
    try:
        value = float(raw[:-1] if scale > 1 else raw) * scale
    except ValueError:
        raise InputError(
            f"--max-params {text!r}: expected a count like 1M, 500k or 250000"
        ) from None
    if value < 1:
        raise InputError(f"--max-params {text!r}: must be at least 1")
    return int(value)


def split_point(point: str) -> tuple[str, int]:
    arch, _, side = point.partition("@")
    if not side.isdigit():
        raise InputError(f"include {point!r}: expected ARCH@SIDE, e.g. {SWAPNET_POINT}")
    return arch, int(side)


def point_id(arch: str, size: int) -> str:
    return f"{arch}@{size}"


def load_search_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **given: Any
) -> SearchConfig:
    """Defaults, then a YAML file of settings, then ``given`` fields, then ``key=value`` overrides.

    Every unknown key or bad value is an error that names it.
    """
    import yaml
    from pydantic import ValidationError

    from fasdistill.config import _set_path, parse_overrides
    from fasdistill.study.spec import format_errors

    source = str(path) if path else "search settings"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise InputError(f"{path}: cannot read the search settings ({error})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: search settings must be a mapping of fields")
    data |= {k: v for k, v in given.items() if v is not None}
    for key, value in parse_overrides(overrides or []):
        _set_path(data, key, value, "--set")
    try:
        return SearchConfig.model_validate(data)
    except ValidationError as error:
        raise InputError(format_errors(error, source)) from None
