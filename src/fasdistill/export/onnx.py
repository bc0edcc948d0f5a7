"""ONNX export of a deployable model, with its preprocessing and threshold inside the file.

The graph takes ``image`` (N, 3, H, W float32: RGB pixels / 255, then (x - mean) / std,
the same tensor the PyTorch model takes) and returns ``logits`` (N, classes) and
``score`` (N,) = softmax(logits)[:, 0] = P(bona fide). Everything prediction needs
(input size, crop scale, colour order, mean/std, class names, calibrated threshold
and its criterion) is stored in the model's ``metadata_props``, so an exported model
never needs the training config.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fasdistill.errors import InputError
from fasdistill.export.formats import Conversion
from fasdistill.utils.sniff import model_format
from fasdistill.utils.text import first_line

OPSET = 17
METADATA_FORMAT = "fasdistill-onnx/1"
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "score")
# checkpoint metadata copied into the model's metadata_props, JSON-encoded
META_KEYS = (
    "model",
    "role",
    "input_size",
    "crop_scale",
    "colour_order",
    "mean",
    "std",
    "classes",
    "threshold",
    "threshold_criterion",
    "threshold_level",
)
# How the training crops were cut (from the index's prepare.json), when known: prediction
# cuts faces at ``crop_size`` and resizes as the loader did, with the same ``detector``.
OPTIONAL_META_KEYS = ("crop_size", "detector")


class ScoredModel(nn.Module):
    """A deployable model that also returns the liveness score P(bona fide)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(images)
        return logits, torch.softmax(logits, dim=1)[:, 0]


def onnx_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """The ``metadata_props`` of an exported model, from a checkpoint's metadata."""
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise InputError(f"the checkpoint metadata lacks {missing}; re-save it with this version")
    props = {"fasdistill_format": METADATA_FORMAT}
    props |= {key: json.dumps(meta[key]) for key in META_KEYS}
    props |= {key: json.dumps(meta[key]) for key in OPTIONAL_META_KEYS if meta.get(key)}
    props["input"] = json.dumps(
        f"{INPUT_NAME}: N x 3 x input_size x input_size float32, {meta['colour_order']}, "
        "pixels / 255, then (x - mean) / std"
    )
    props["outputs"] = json.dumps("logits: N x classes; score: N, P(bona fide), higher = live")
    return props


def metadata_props(path: str | os.PathLike[str]) -> dict[str, str]:
    """The raw ``metadata_props`` of an ONNX file (weights not loaded)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except Exception as exc:  # noqa: BLE001 - protobuf raises several types
        raise InputError(f"{path}: not a readable ONNX model ({exc})") from None
    return {p.key: p.value for p in model.metadata_props}


def read_onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The decoded fasdistill metadata of an exported model; a clear error if it has none."""
    props = metadata_props(path)
    if props.get("fasdistill_format") != METADATA_FORMAT:
        raise InputError(
            f"{path}: no fasdistill metadata (fasdistill_format="
            f"{props.get('fasdistill_format')!r}); give its preprocessing in a sidecar YAML"
        )
    keys = META_KEYS + tuple(k for k in OPTIONAL_META_KEYS if k in props)
    return {key: json.loads(props[key]) for key in keys}


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The registry's reader: our metadata, None for a valid ONNX model without it.

    A file that is not ONNX is one line saying what it is (a PyTorch checkpoint,
    truncated or corrupt bytes, no graph).
    """
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
    if props.get("fasdistill_format") != METADATA_FORMAT:
        return None
    keys = META_KEYS + tuple(k for k in OPTIONAL_META_KEYS if k in props)
    return {key: json.loads(props[key]) for key in keys}


def write_metadata(path: Path, meta: dict[str, Any]) -> None:
    """The registry's writer: ``meta`` (threshold included) into the model's metadata_props."""
    import onnx

    proto = onnx.load(str(path))
    add_metadata(proto, onnx_metadata(meta))
    onnx.save(proto, str(path))


class OnnxRunner:
    """Every output of an ONNX model in ONNX Runtime (the registry's runner)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime

        from fasdistill.utils.ort import open_session

        self.session = open_session(path, threads)  # None: ORT chooses (training)
        # A failed run raises ORT's message, which callers put in their one error line:
        # ORT's own copy of it on stderr is silenced.
        self._options = onnxruntime.RunOptions()
        self._options.log_severity_level = 4
        inputs = self.session.get_inputs()
        self.input_count = len(inputs)
        self.input_shape = list(inputs[0].shape)
        self._input = inputs[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        outputs = self.session.run(None, {self._input: x}, self._options)
        return [np.asarray(o) for o in outputs]


def input_shape(path: Path) -> list[Any]:
    """The first input's shape from the graph (weights not loaded); free dimensions as names."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]


def open_runner(path: Path, threads: int | None = None) -> OnnxRunner:
    return OnnxRunner(path, threads)


def convert(conversion: Conversion, path: Path) -> None:
    """The registry's converter: the fp32 graph with its metadata."""
    export_onnx(conversion.model, conversion.meta, path)


def export_onnx(model: nn.Module, meta: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (eval mode, CPU) as ONNX with a dynamic batch and its metadata.

    Uses the TorchScript exporter: on torch 2.13 it exports these CNNs in under a
    second where the torch.export-based one takes 10-30 s, at the same outputs.
    Writes ``path`` directly; callers that need atomicity write to a temporary name.
    """
    import onnx

    path = Path(path)
    size = int(meta["input_size"])
    channels = int(meta.get("input_channels", 3))  # 3 (RGB) but for latency probes
    scored = ScoredModel(model).eval().cpu()
    dummy = torch.zeros(1, channels, size, size)
    axes = {INPUT_NAME: {0: "batch"}} | {name: {0: "batch"} for name in OUTPUT_NAMES}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            scored,
            (dummy,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    add_metadata(proto, onnx_metadata(meta))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def add_metadata(proto: Any, props: dict[str, str]) -> None:
    """Set ``metadata_props`` entries of an ONNX ModelProto (replacing same-named ones)."""
    kept = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for prop in kept:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
