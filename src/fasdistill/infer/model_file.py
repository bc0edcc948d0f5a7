"""One deployable model file, whatever its format, with the metadata prediction needs.

A ``best.pt`` of ours, an exported ONNX model (metadata in ``metadata_props``), a
program whose metadata travels in a ``<file>.json`` sidecar (ExecuTorch ``.pte``,
LiteRT ``.tflite``, ncnn ``.param`` + ``.bin``), or a third-party ONNX model described
by a YAML sidecar (:mod:`fasdistill.infer.foreign`). Every format gives the same
``meta`` (input size, crop scale, colour order, mean/std, classes, threshold and
its criterion and level) and a scorer of preprocessed crops, so calibration and
prediction never need the training config.

A file that is not what its name says is one line naming what it is: a
directory, an empty file, bytes that are not ONNX (or are a PyTorch checkpoint).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY, SIDECAR_SUFFIXES, SUFFIXES, Format, format_of_suffix
from fasdistill.infer import foreign

Scorer = Callable[[np.ndarray], np.ndarray]
SIDECAR_KINDS = SIDECAR_SUFFIXES  # artifact suffix -> format whose metadata is a sidecar


@dataclass
class ModelFile:
    """A model file and its decoded metadata; ``kind`` names the runtime it runs in."""

    path: Path
    kind: str  # "pytorch", a registered format's name, "foreign" (any format + YAML sidecar)
    # or "cascade" (two model files: fasdistill.infer.cascade.CascadeModel)
    meta: dict[str, Any]  # a foreign model's also names its ``format``

    @property
    def format(self) -> Format:
        """The registry entry of the runtime it runs in (not for a PyTorch checkpoint)."""
        return REGISTRY[self.meta["format"] if self.kind == "foreign" else self.kind]

    @property
    def thread_safe(self) -> bool:
        """Whether one loaded model may score from several threads at once."""
        return self.kind == "pytorch" or (self.kind != "foreign" and self.format.thread_safe)

    @property
    def threshold(self) -> float:
        """The decision threshold; a model that has none (a foreign one) is refused."""
        if self.meta.get("threshold") is None:
            raise InputError(
                f"{self.path}: no threshold: run fasdistill calibrate --model {self.path} "
                "--data <your dev crops or score CSV>"
            )
        return float(self.meta["threshold"])

    def scorer(self, threads: int = 1) -> Scorer:
        """P(bona fide) of preprocessed crops (N, 3, S, S float32), in the file's runtime."""
        from fasdistill.export.pipeline import runtime_scorer, torch_scorer

        if self.kind == "pytorch":
            from fasdistill.engine.checkpoint import load_deployable

            model, _ = load_deployable(self.path)
            return torch_scorer(model)
        if self.kind == "foreign":
            return foreign.foreign_scorer(self.path, tuple(self.meta["classes"]), threads)
        if not self.format.available():
            raise InputError(f"{self.path}: its runtime is not installed ({self.format.extra})")
        return runtime_scorer(self.kind, self.path, threads)


# Models made of several files (a cascade) register how they are recognised and opened
# when their module is imported (``fasdistill.infer`` imports them), so this module,
# which they build on, never imports them.
OPENERS: list[tuple[Callable[[Path], bool], Callable[[Path], ModelFile]]] = []


def open_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read a model file's metadata (the model itself loads when it is first scored).

    The format comes from the suffix (:mod:`fasdistill.export.formats`); its entry
    reads the metadata our exports carry. A file without it is a model from
    elsewhere, described by a YAML sidecar (:mod:`fasdistill.infer.foreign`). A cascade
    (``model.cascade.json`` or its folder) opens as one model (:mod:`fasdistill.infer.cascade`).
    """
    path = Path(path)
    for matches, opener in OPENERS:
        if matches(path):
            return opener(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a model file")
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes), not a model file")
    if path.suffix.lower() == ".pt":
        from fasdistill.engine.checkpoint import load_deployable_state, require_rgb

        meta = dict(load_deployable_state(path)["meta"])
        require_rgb(meta, path, "prediction")
        return ModelFile(path, "pytorch", meta)
    entry = format_of_suffix(path)
    if entry is None:
        known = ", ".join([".pt", *(f"{s} ({n})" for s, n in SUFFIXES.items())])
        raise InputError(f"{path}: unknown model format {path.suffix.lower()!r}; expected {known}")
    meta = entry.read_metadata(path)
    if meta is not None:
        return ModelFile(path, entry.name, meta)
    return _open_foreign(path, entry)


def _open_foreign(path: Path, entry: Format) -> ModelFile:
    """A third-party model described by a YAML sidecar."""
    sidecar = foreign.sidecar_for(path)
    if sidecar is None:
        raise InputError(foreign.no_sidecar_message(path, entry))
    spec = foreign.read_sidecar(path, sidecar)
    return ModelFile(path, "foreign", foreign.foreign_meta(path, spec, sidecar))


def write_with_threshold(
    model: ModelFile,
    out: str | os.PathLike[str],
    threshold: float,
    criterion: str,
    level: str | None = None,
) -> Path:
    """A copy of ``model`` at ``out`` that carries a new threshold; the original is untouched.

    Every file of the copy is written under a temporary name and renamed, the
    model file last, so an interrupted write leaves no model without its metadata.
    """
    out = Path(out)
    if out.suffix.lower() != model.path.suffix.lower():
        raise InputError(f"{out}: keep the model's suffix {model.path.suffix!r}")
    if out.resolve() == model.path.resolve():
        raise InputError(f"{out}: is the input model; calibration never overwrites it")
    out.parent.mkdir(parents=True, exist_ok=True)
    new = {
        "threshold": float(threshold),
        "threshold_criterion": criterion,
        "threshold_level": level or model.meta.get("threshold_level") or "frame",
    }
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".calibrate-") as tmp:
        staged = Path(tmp) / out.name
        if model.kind == "pytorch":
            from fasdistill.engine.checkpoint import load_deployable_state, save_checkpoint

            state = load_deployable_state(model.path)
            state["meta"] = state["meta"] | new
            save_checkpoint(staged, state)
            staged.replace(out)
            return out
        entry = model.format
        originals = entry.files_of(model.path)
        copies = entry.files_of(staged)
        if model.kind == "foreign":  # the program as it is; the threshold goes in its YAML
            for original, copy in zip(originals, copies, strict=True):
                if original.exists() and copy.suffix != ".json":
                    shutil.copyfile(original, copy)
            sidecar = staged.with_name(staged.name + ".yaml")
            foreign.write_calibrated_sidecar(Path(model.meta["sidecar"]), sidecar, new)
            copies = [*(c for c in copies if c.exists()), sidecar]
        else:
            shutil.copyfile(model.path, staged)
            for original, copy in zip(originals[1:], copies[1:], strict=True):
                if copy.suffix != ".json":  # the sidecar is written from the new metadata
                    shutil.copyfile(original, copy)
            entry.write_metadata(staged, model.meta | new)
        for copy in copies[1:]:  # metadata and weights first, the model file last
            copy.replace(out.parent / copy.name)
        staged.replace(out)
    return out
