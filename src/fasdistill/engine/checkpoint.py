"""Checkpoints: atomic writes, safe loads, and the RNG state a bit-exact resume needs.

Files are written to a temporary file and renamed, so a crash mid-write leaves
the previous checkpoint intact. They hold only tensors and plain containers and
are read with ``torch.load(weights_only=True)``: no pickled code is ever run.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import torch

from fasdistill.config import RunConfig, dump_recipe
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD, CropIndex
from fasdistill.engine.provenance import versions
from fasdistill.errors import InputError
from fasdistill.models import DeployableFAS, FASModel, build_model, model_kwargs
from fasdistill.utils.atomic import atomic_write_bytes
from fasdistill.utils.sniff import model_format
from fasdistill.utils.text import first_line, strip_ansi

CHECKPOINT_FORMAT = "fasdistill-checkpoint"
CHECKPOINT_VERSION = 1
# torch names the class a weights-only load refused: "Unsupported global: GLOBAL a.B was not..."
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only).

    Anything else is one line that says what the file is (a directory, empty, an
    ONNX model under a ``.pt`` name, a PyTorch file of other objects): never the
    loader's advice to load it unsafely.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a model file")
    if not path.exists():
        raise InputError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: is empty (0 bytes), not a fasdistill checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a foreign file makes torch raise many types
        raise InputError(f"{path}: {_unreadable(path, exc)}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a fasdistill checkpoint (no format {CHECKPOINT_FORMAT!r})")
    return state


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in the user's terms."""
    kind = model_format(path)
    if kind == "onnx":
        return "looks like an ONNX model, not a fasdistill checkpoint; rename it to .onnx"
    if kind is None:
        return "not a readable fasdistill checkpoint (neither a PyTorch nor an ONNX file)"
    text = strip_ansi(str(exc))
    refused = _REFUSED_GLOBAL.search(text)
    if refused:
        return (
            f"not a fasdistill checkpoint: it holds Python objects ({refused.group(1)}) that "
            "safe loading refuses; fasdistill checkpoints hold only tensors and plain containers"
        )
    if "weights_only" in text or "WeightsUnpickler" in text:
        return (
            "not a fasdistill checkpoint: safe loading refuses its contents; fasdistill "
            "checkpoints hold only tensors and plain containers"
        )
    reason = first_line(exc).split(". ")[0]  # torch appends paragraphs of advice
    return f"not a readable fasdistill checkpoint (truncated or corrupt: {reason})"


def rng_state() -> dict[str, Any]:
    """Python and torch (CPU, CUDA) generator states as safe-to-load values.

    Augmentation, dropout and DataLoader worker seeds all draw from torch's
    generator; numpy's global generator is not used by fasdistill.
    """
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_deployable(
    path: Path,
    model: FASModel,
    config: RunConfig,
    index: CropIndex,
    input_size: int,
    best: dict[str, Any],
) -> None:
    """The deployable model plus everything prediction needs to use it.

    ``model`` holds backbone + head only (what is exported and counted); the
    training-only aux heads go under ``aux`` so the model can teach pixel-map
    distillation later, but they are never part of the deployable weights.
    """
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": model.deployable().state_dict(),
            "aux": model.aux.state_dict(),
            "meta": {
                "model": config.model.name,
                **model_kwargs(config.model.model_dump()),
                "role": model.role,
                "aux": list(model.aux.keys()),
                "classes": list(index.classes),
                "input_size": input_size,
                "crop_scale": index.scale,
                "colour_order": COLOUR_ORDER,
                "mean": list(MEAN),
                "std": list(STD),
                "threshold": best["threshold"],
                "threshold_criterion": "eer on dev",
                # The threshold applies to scores at this level (video = mean of frame scores).
                "threshold_level": config.data.level,
                **crop_settings(index),
                "dev": best["dev"],
                "epoch": best["epoch"],
                "select_metric": config.train.select_metric,
                "recipe": dump_recipe(config),
                "versions": versions(),
            },
        },
    )


def crop_settings(index: CropIndex) -> dict[str, Any]:
    """The stored crop side and the detector of the index's ``prepare`` run, when it says.

    Prediction cuts faces at this side and resizes them as the loader did, so a
    deployed model sees faces prepared exactly as in training.
    """
    try:
        settings = json.loads((index.root / "prepare.json").read_text())["settings"]
        return {"crop_size": int(settings["size"]), "detector": str(settings["detector"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # an index made by other means: crops are cut at the input size


def load_deployable_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``best.pt`` checked to hold a deployable model and its metadata (not a ``last.pt``)."""
    state = load_checkpoint(path)
    meta = state.get("meta")
    if not isinstance(meta, dict) or "model" not in meta or "classes" not in meta:
        raise InputError(f"{path}: not a deployable model checkpoint (use checkpoints/best.pt)")
    return state


def require_rgb(meta: dict[str, Any], path: str | os.PathLike[str], what: str) -> None:
    """InputError unless the model reads RGB alone: export and prediction take camera frames.

    A multi-modal model (depth, NIR) is a teacher or is scored on prepared crops
    (its run, studies, ``fasdistill swap``); distill it into an RGB student to deploy.
    """
    modalities = list(meta.get("modalities") or ["rgb"])
    if modalities != ["rgb"]:
        raise InputError(
            f"{path}: reads {' + '.join(modalities)}; {what} takes RGB frames only. It is scored "
            "on prepared multi-modal crops (its run, a study, fasdistill swap); to deploy, "
            "distill it into an RGB student (recipe distill_crossmodal)"
        )


def load_deployable(path: str | os.PathLike[str]) -> tuple[DeployableFAS, dict[str, Any]]:
    """The deployable model of a ``best.pt`` (eval mode) and its metadata."""
    state = load_deployable_state(path)
    meta = state["meta"]
    model = build_model(
        meta["model"], num_classes=len(meta["classes"]), **model_kwargs(meta)
    ).deployable()
    model.load_state_dict(state["model"])
    return model.eval(), meta
