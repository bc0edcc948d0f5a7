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

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY, SIDECAR_SUFFIXES
from fasdistill.export.onnx import META_KEYS, METADATA_FORMAT, OPTIONAL_META_KEYS
from fasdistill.infer import foreign
from fasdistill.utils.sniff import model_format
from fasdistill.utils.text import first_line

Scorer = Callable[[np.ndarray], np.ndarray]
SIDECAR_KINDS = SIDECAR_SUFFIXES  # artifact suffix -> format whose metadata is a sidecar


@dataclass
class ModelFile:
    """A model file and its decoded metadata; ``kind`` names the runtime it runs in."""

    path: Path
    kind: str  # pytorch | onnx | pte | tflite | ncnn | foreign (ONNX + YAML sidecar)
    meta: dict[str, Any]

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
        if not REGISTRY[self.kind].available():
            extra = REGISTRY[self.kind].extra
            raise InputError(f"{self.path}: its runtime is not installed ({extra})")
        return runtime_scorer(self.kind, self.path, threads)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def open_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read a model file's metadata (the model itself loads when it is first scored)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a model file")
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes), not a model file")
    suffix = path.suffix.lower()
    if suffix == ".pt":
        from fasdistill.engine.checkpoint import load_deployable_state

        meta = dict(load_deployable_state(path)["meta"])
        return ModelFile(path, "pytorch", meta)
    if suffix == ".onnx":
        return _open_onnx(path)
    if suffix in SIDECAR_KINDS:
        kind = SIDECAR_KINDS[suffix]
        sidecar = sidecar_path(path)
        try:
            data = json.loads(sidecar.read_text())
        except FileNotFoundError:
            raise InputError(f"{path}: its metadata sidecar {sidecar.name} is missing") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{sidecar}: not a readable JSON sidecar ({exc})") from None
        expected = REGISTRY[kind].sidecar_format()
        if not isinstance(data, dict) or data.get("fasdistill_format") != expected:
            found = data.get("fasdistill_format") if isinstance(data, dict) else None
            raise InputError(f"{sidecar}: fasdistill_format is {found!r}, expected {expected!r}")
        missing = [k for k in META_KEYS if k not in data]
        if missing:
            raise InputError(f"{sidecar}: missing keys {missing}")
        keys = META_KEYS + tuple(k for k in OPTIONAL_META_KEYS if k in data)
        return ModelFile(path, kind, {k: data[k] for k in keys})
    raise InputError(
        f"{path}: unknown model format {suffix!r}; expected .pt, .onnx, .pte, .tflite or "
        ".param (ncnn)"
    )


def _open_onnx(path: Path) -> ModelFile:
    """Our export (metadata inside) or a third-party model described by a YAML sidecar."""
    import onnx

    if model_format(path) == "pytorch":
        raise InputError(
            f"{path}: is not a valid ONNX file: it looks like a PyTorch checkpoint; "
            "rename it to .pt"
        )
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        reason = first_line(exc)
        raise InputError(
            f"{path}: is not a valid ONNX file (truncated or corrupt: {reason})"
        ) from None
    if not proto.graph.node or not proto.graph.input or not proto.graph.output:
        raise InputError(f"{path}: is not a valid ONNX file (no graph: truncated or not ONNX)")
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("fasdistill_format") == METADATA_FORMAT:
        from fasdistill.export.onnx import read_onnx_metadata

        return ModelFile(path, "onnx", read_onnx_metadata(path))
    sidecar = foreign.sidecar_for(path)
    if sidecar is None:
        raise InputError(foreign.no_sidecar_message(path))
    spec = foreign.read_sidecar(path, sidecar)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return ModelFile(path, "foreign", foreign.foreign_meta(path, spec, sidecar, shape))


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
        elif model.kind == "onnx":
            import onnx

            from fasdistill.export.onnx import add_metadata

            proto = onnx.load(str(model.path))
            add_metadata(proto, {key: json.dumps(value) for key, value in new.items()})
            onnx.save(proto, str(staged))
        elif model.kind == "foreign":
            shutil.copyfile(model.path, staged)
            sidecar = staged.with_name(staged.name + ".yaml")
            foreign.write_calibrated_sidecar(Path(model.meta["sidecar"]), sidecar, new)
            sidecar.replace(out.with_name(out.name + ".yaml"))
        else:
            shutil.copyfile(model.path, staged)
            if model.kind == "ncnn":
                shutil.copyfile(model.path.with_suffix(".bin"), staged.with_suffix(".bin"))
                staged.with_suffix(".bin").replace(out.with_suffix(".bin"))
            data = json.loads(sidecar_path(model.path).read_text()) | new | {"program": out.name}
            sidecar_path(staged).write_text(json.dumps(data, indent=2) + "\n")
            sidecar_path(staged).replace(sidecar_path(out))
        staged.replace(out)
    return out
