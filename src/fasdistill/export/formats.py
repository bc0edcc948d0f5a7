"""The export formats: one entry per artifact a runtime runs, read by export, predict and swap.

An entry says what the artifact is called, which runtime runs it and which module
implements it (its ``available()``, ``EXTRA`` and, for formats whose metadata sits in a
JSON sidecar, ``SIDECAR_FORMAT``), whether it is quantized, how it is scored and (for
batch-1 programs) how it is exported. Adding a runtime is one entry here plus its
module. Implementations are imported when first used, so reading the registry needs
no optional runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

Scorer = Callable[[np.ndarray], np.ndarray]


def _resolve(target: str) -> Any:
    """``"package.module:name"`` -> that object."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Format:
    """One export format."""

    name: str  # as --format and swap --runtimes take it, e.g. "pte-int8"
    file_name: str  # the artifact's name in an export folder
    runtime: str  # what runs it, for messages ("ExecuTorch")
    module: str  # the implementing module, e.g. "fasdistill.export.pte"
    scorer_of: str  # "module:function" of (path, threads) -> Scorer
    quantized: bool = False
    sidecar: bool = True  # metadata in <file>.json; False: inside the file (ONNX)
    exporter: str | None = None  # "module:function" of a batch-1 program's converter
    not_installed: str = ""  # the start of the reason when its runtime is missing

    @property
    def suffix(self) -> str:
        return Path(self.file_name).suffix

    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)

    def available(self) -> bool:
        check = getattr(self.implementation(), "available", None)
        return True if check is None else bool(check())

    @property
    def extra(self) -> str:
        """The install command that brings its runtime."""
        return str(getattr(self.implementation(), "EXTRA", "pip install 'fasdistill[onnx]'"))

    def missing_reason(self) -> str:
        return f"{self.not_installed} ({self.extra})"

    def sidecar_format(self) -> str:
        return str(self.implementation().SIDECAR_FORMAT)

    def scorer(self, path: Path, threads: int) -> Scorer:
        return _resolve(self.scorer_of)(path, threads)

    def export(self) -> Callable[..., None]:
        if self.exporter is None:
            raise ValueError(f"{self.name} has no batch-1 program exporter")
        return _resolve(self.exporter)

    def files(self, out: Path) -> list[Path]:
        """Every file a written artifact consists of (model, sidecar, weights)."""
        target = out / self.file_name
        files = [target]
        if self.sidecar:
            files.append(target.with_name(target.name + ".json"))
        companions = getattr(self.implementation(), "companion_files", None)
        return files + (list(companions(target)) if companions else [])


def _onnx(name: str, file_name: str, quantized: bool) -> Format:
    return Format(
        name,
        file_name,
        runtime="ONNX Runtime",
        module="fasdistill.export.onnx",
        scorer_of="fasdistill.export.scoring:onnx_scorer",
        quantized=quantized,
        sidecar=False,
    )


def _program(
    name: str, file_name: str, runtime: str, module: str, functions: tuple[str, str], int8: bool
) -> Format:
    """A batch-1 program converted from the PyTorch model (int8: PT2E), with a sidecar.

    ``functions``: the module's scorer and exporter.
    """
    scorer, exporter = functions
    return Format(
        name,
        file_name,
        runtime=runtime,
        module=f"fasdistill.export.{module}",
        scorer_of=f"fasdistill.export.{module}:{scorer}",
        quantized=int8,
        exporter=f"fasdistill.export.{module}:{exporter}",
        not_installed=f"{runtime} is not installed",
    )


_PTE, _TFLITE = ("pte_scorer", "export_pte"), ("tflite_scorer", "export_tflite")
_ALL = (
    _onnx("onnx", "model.onnx", quantized=False),
    _onnx("onnx-int8", "model.int8.onnx", quantized=True),
    _program("pte", "model.pte", "ExecuTorch", "pte", _PTE, int8=False),
    _program("pte-int8", "model.int8.pte", "ExecuTorch", "pte", _PTE, int8=True),
    _program("tflite", "model.tflite", "LiteRT", "litert", _TFLITE, int8=False),
    _program("tflite-int8", "model.int8.tflite", "LiteRT", "litert", _TFLITE, int8=True),
    Format(
        "ncnn",
        "model.ncnn.param",  # + model.ncnn.bin
        runtime="ncnn",
        module="fasdistill.export.ncnn",
        scorer_of="fasdistill.export.ncnn:ncnn_scorer",
        not_installed="pnnx/ncnn are not installed",
    ),
)
REGISTRY: dict[str, Format] = {f.name: f for f in _ALL}
FORMATS = tuple(REGISTRY)
FILE_NAMES = {name: f.file_name for name, f in REGISTRY.items()}
# Formats whose metadata is a JSON sidecar, by the artifact's file suffix.
SIDECAR_SUFFIXES = {f.suffix: f.name for f in REGISTRY.values() if f.sidecar and not f.quantized}


def missing_runtimes() -> dict[str, str]:
    """Formats whose runtime cannot be imported here, each with the extra that installs it."""
    return {name: f.missing_reason() for name, f in REGISTRY.items() if not f.available()}
