"""The export formats: one entry per artifact a runtime runs, read by export, predict and swap.

An entry says what the artifact is called, which runtime runs it and which module
implements it (its ``available()`` and ``EXTRA``), whether it is quantized, and
names the functions that do the work, each ``"module:function"``:

- ``converter`` ``(Conversion, path) -> None``: write the artifact at ``path`` from
  the PyTorch model (or, with ``source``, from that format's checked artifact);
- ``scorer_of`` ``(path, threads) -> Scorer``: P(bona fide) of preprocessed crops;
- ``reader`` ``(path) -> meta | None``: the fasdistill metadata the artifact carries
  (inside it, or in its JSON sidecar); None when it has none (a model from elsewhere);
- ``writer`` ``(path, meta) -> None``: write that metadata (threshold included);
- ``runner_of`` ``(path, threads) -> Runner``: the artifact's raw outputs, for models
  from elsewhere (:mod:`fasdistill.infer.foreign`) that say what their outputs mean.

Export, predict/calibrate (:mod:`fasdistill.infer.model_file`) and swap read the
entries and never list format names themselves: adding a runtime is one entry here
plus its module. Implementations are imported when first used, so reading the
registry needs no optional runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from fasdistill.errors import InputError

Scorer = Callable[[np.ndarray], np.ndarray]


class Runner(Protocol):
    """A loaded artifact that returns every output for an (N, 3, H, W) float32 batch."""

    input_count: int
    input_shape: list[Any]  # (N, 3, H, W); a dimension the file does not fix is a string
    output_names: list[str]

    def run(self, x: np.ndarray) -> list[np.ndarray]: ...


def _resolve(target: str) -> Any:
    """``"package.module:name"`` -> that object (looked up when called, so tests can patch it)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# The JSON sidecar every format without metadata of its own uses (its module's SIDECAR_FORMAT).
SIDECAR_READ = "fasdistill.export.sidecar:read"
SIDECAR_WRITE = "fasdistill.export.sidecar:write"


@dataclass(frozen=True)
class Conversion:
    """What a converter is given: the checked deployable model and what it was checked with."""

    model: Any  # torch.nn.Module (not imported here: reading the registry needs no torch)
    meta: dict[str, Any]
    calibration: np.ndarray | None = None  # train crops, for quantized formats
    source: Path | None = None  # the checked artifact of the entry's ``source`` format
    int8_stem: bool = False  # quantize the first convolution too


@dataclass(frozen=True)
class Format:
    """One export format."""

    name: str  # as --format and swap --runtimes take it, e.g. "pte-int8"
    file_name: str  # the artifact's name in an export folder
    runtime: str  # what runs it, for messages ("ExecuTorch")
    label: str  # how parity messages name its fp32 scores ("ONNX", "LiteRT")
    module: str  # the implementing module, e.g. "fasdistill.export.pte"
    converter: str  # "module:function" of (Conversion, path) -> report dict or None
    scorer_of: str  # "module:function" of (path, threads) -> Scorer
    runner_of: str  # "module:function" of (path, threads or None) -> Runner
    quantized: bool = False
    sidecar: bool = True  # metadata in <file>.json; False: inside the file (ONNX)
    # "module:function" of (path) -> metadata dict or None when it has none, and of
    # (path, metadata) -> None; None: the JSON sidecar of the module's SIDECAR_FORMAT
    reader: str | None = None
    writer: str | None = None
    source: str | None = None  # converted from this format's artifact, not from PyTorch
    thread_safe: bool = False  # one loaded model may be scored from several threads at once
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

    def convert(self, conversion: Conversion, path: Path) -> dict[str, Any] | None:
        """Write the artifact at ``path``; some converters also say how (for export.json)."""
        return _resolve(self.converter)(conversion, path)

    def scorer(self, path: Path, threads: int) -> Scorer:
        return _resolve(self.scorer_of)(path, threads)

    def read_metadata(self, path: Path) -> dict[str, Any] | None:
        if self.reader is not None:
            return _resolve(self.reader)(path)
        return _resolve(SIDECAR_READ)(path, self.sidecar_format())

    def write_metadata(self, path: Path, meta: dict[str, Any]) -> None:
        if self.writer is not None:
            _resolve(self.writer)(path, meta)
        else:
            _resolve(SIDECAR_WRITE)(path, meta, self.sidecar_format())

    def open_runner(self, path: Path, threads: int | None = None) -> Runner:
        return _resolve(self.runner_of)(path, threads)

    def input_shape(self, path: Path) -> list[Any]:
        """The artifact's input shape: read from the file where its module can (no
        runtime session), else from a loaded runner."""
        read = getattr(self.implementation(), "input_shape", None)
        return list(read(path)) if read else list(self.open_runner(path, 1).input_shape)

    def files_of(self, target: Path) -> list[Path]:
        """Every file an artifact at ``target`` consists of (model, sidecar, weights)."""
        files = [target]
        if self.sidecar:
            files.append(target.with_name(target.name + ".json"))
        companions = getattr(self.implementation(), "companion_files", None)
        return files + (list(companions(target)) if companions else [])

    def files(self, out: Path) -> list[Path]:
        """Every file a written artifact in export folder ``out`` consists of."""
        return self.files_of(out / self.file_name)


def _onnx(name: str, file_name: str, quantized: bool) -> Format:
    module = "fasdistill.export.quantize" if quantized else "fasdistill.export.onnx"
    return Format(
        name,
        file_name,
        runtime="ONNX Runtime",
        label="ONNX",
        module="fasdistill.export.onnx",
        converter=f"{module}:convert",
        scorer_of="fasdistill.export.scoring:onnx_scorer",
        runner_of="fasdistill.export.onnx:open_runner",
        quantized=quantized,
        sidecar=False,
        reader="fasdistill.export.onnx:read_metadata",
        writer="fasdistill.export.onnx:write_metadata",
        source="onnx" if quantized else None,
        thread_safe=True,  # ONNX Runtime sessions
    )


def _program(
    name: str, file_name: str, runtime: str, module: str, scorer: str, int8: bool
) -> Format:
    """A batch-1 program converted from the PyTorch model (int8: PT2E), with a sidecar."""
    return Format(
        name,
        file_name,
        runtime=runtime,
        label=runtime,
        module=f"fasdistill.export.{module}",
        converter=f"fasdistill.export.{module}:convert",
        scorer_of=f"fasdistill.export.{module}:{scorer}",
        runner_of=f"fasdistill.export.{module}:open_runner",
        quantized=int8,
        not_installed=f"{runtime} is not installed",
    )


_ALL = (
    _onnx("onnx", "model.onnx", quantized=False),
    _onnx("onnx-int8", "model.int8.onnx", quantized=True),
    _program("pte", "model.pte", "ExecuTorch", "pte", "pte_scorer", int8=False),
    _program("pte-int8", "model.int8.pte", "ExecuTorch", "pte", "pte_scorer", int8=True),
    _program("tflite", "model.tflite", "LiteRT", "litert", "tflite_scorer", int8=False),
    _program("tflite-int8", "model.int8.tflite", "LiteRT", "litert", "tflite_scorer", int8=True),
    Format(
        "ncnn",
        "model.ncnn.param",  # + model.ncnn.bin
        runtime="ncnn",
        label="ncnn",
        module="fasdistill.export.ncnn",
        converter="fasdistill.export.ncnn:convert",
        scorer_of="fasdistill.export.ncnn:ncnn_scorer",
        runner_of="fasdistill.export.ncnn:open_runner",
        not_installed="pnnx/ncnn are not installed",
    ),
)
REGISTRY: dict[str, Format] = {f.name: f for f in _ALL}
FORMATS = tuple(REGISTRY)
DEFAULT_FORMATS = ("onnx", "onnx-int8")  # export's library default and swap's default runtimes
FILE_NAMES = {name: f.file_name for name, f in REGISTRY.items()}
# Every artifact suffix, read as its fp32 format (an int8 file has the same suffix and runtime).
SUFFIXES = {f.suffix: f.name for f in _ALL if not f.quantized}
# Formats whose metadata is a JSON sidecar, by the artifact's file suffix.
SIDECAR_SUFFIXES = {f.suffix: f.name for f in REGISTRY.values() if f.sidecar and not f.quantized}


def format_of_suffix(path: Path) -> Format | None:
    """The (fp32) format an artifact's suffix names, or None."""
    name = SUFFIXES.get(path.suffix.lower())
    return None if name is None else REGISTRY[name]


def missing_runtimes() -> dict[str, str]:
    """Formats whose runtime cannot be imported here, each with the extra that installs it."""
    return {name: f.missing_reason() for name, f in REGISTRY.items() if not f.available()}


def format_for(path: Path, stated: str | None, where: str) -> Format:
    """The format a model from elsewhere runs in: ``stated`` (a sidecar's ``format``), else
    its suffix's; its runtime must be installed. Errors start with ``where``."""
    if stated is not None and stated not in REGISTRY:
        raise InputError(
            f"{where}: format: {stated!r} is not a registered format; choose from "
            f"{', '.join(FORMATS)}"
        )
    entry = REGISTRY[stated] if stated is not None else format_of_suffix(path)
    if entry is None:
        raise InputError(
            f"{where}: format: not stated, and the suffix of {path.name} names no format; "
            f"state one of {', '.join(FORMATS)}"
        )
    if not entry.available():
        raise InputError(
            f"{where}: format: {entry.name} runs in {entry.runtime}, which is not installed "
            f"here ({entry.extra})"
        )
    return entry
