"""Static INT8 quantization for ONNX Runtime, calibrated on real face crops.

QDQ format, per-channel symmetric int8 weights, uint8 activations with min/max
ranges observed on crops of the *train* split: never random tensors (their ranges
are not a face's) and never test crops (that would tune the model on test data).

The stem (the first convolution, which reads the pixels) stays in fp32 by default,
as is common practice: on the SynthSpoof swapnet student quantizing it moved dev
scores by up to 0.70, keeping it by at most 0.08 (docs/export.md), and the stem is
a small share of the compute.

The classifier head stays in fp32 too: every node between the last convolution (or
global pooling) and the ``score`` output (pooling, Gemm/MatMul, Softmax, Gather).
Quantized, the softmax leaves the model as uint8, so every score is a multiple of
1/255: dev scores collapse onto a few values, no threshold below 1/255 exists and a
calibration at low APCER has nothing to choose from. The head is found by walking
the graph back from the outputs, not by node names, so it holds for every model.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.errors import InputError
from fasdistill.export.formats import Conversion
from fasdistill.export.onnx import INPUT_NAME, OUTPUT_NAMES, add_metadata

# Where the backbone ends, walking back from the score: a convolution stays quantized;
# a global pooling (the last step that reduces the feature map) joins the fp32 head.
_BACKBONE_OPS = {"Conv", "ConvTranspose", "ConvInteger", "QLinearConv"}
_POOLING_OPS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax", "AveragePool"}


class _Batches:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over arrays (N, 3, H, W)."""

    def __init__(self, images: np.ndarray, batch_size: int) -> None:
        self._batches: Iterator[np.ndarray] = iter(
            [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def head_nodes(graph: Any) -> list[str]:
    """Names of the nodes that form the outputs from the backbone's last feature map.

    Walks back from ``logits`` and ``score`` and stops at convolutions (not included)
    and global poolings (included). A walk that reaches the image input means there
    is no convolution or pooling to tell the head from the backbone: an error.
    """
    producer = {out: node for node in graph.node for out in node.output}
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input} - initializers
    stack = [producer[o.name] for o in graph.output if o.name in producer]
    head: dict[str, Any] = {}
    while stack:
        node = stack.pop()
        if node.name in head or node.op_type in _BACKBONE_OPS:
            continue
        head[node.name] = node
        if node.op_type in _POOLING_OPS:
            continue
        for name in node.input:
            if name in inputs:
                raise InputError(
                    f"cannot keep the classifier head in fp32: the path from "
                    f"{'/'.join(OUTPUT_NAMES)} back to {name!r} has no convolution or pooling"
                )
            if name in producer:
                stack.append(producer[name])
    return list(head)


def _name_nodes(path: Path) -> Any:
    """Load ``path`` and give unnamed nodes a name (exclusion works by node name)."""
    import onnx

    proto = onnx.load(str(path))
    if any(not node.name for node in proto.graph.node):
        for i, node in enumerate(proto.graph.node):
            node.name = node.name or f"{node.op_type}_{i}"
        onnx.save(proto, str(path))
    return proto


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    int8_path: str | os.PathLike[str],
    calibration: np.ndarray,
    batch_size: int = 16,
    keep_stem_fp32: bool = True,
) -> Path:
    """Write a static QDQ int8 copy of ``fp32_path``, calibrated on ``calibration`` images.

    ``calibration`` is float32 (N, 3, H, W), preprocessed exactly as the model's input.
    The classifier head (:func:`head_nodes`) stays fp32, so ``score`` is a float; the
    fp32 model's ``metadata_props`` are carried over.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if calibration.ndim != 4 or len(calibration) == 0:
        raise InputError(f"INT8 calibration needs a batch of images, got shape {calibration.shape}")
    int8_path = Path(int8_path)
    source = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph folding first, as ORT's quantization guide asks.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        graph = _name_nodes(prepared).graph
        convs = [n.name for n in graph.node if n.op_type == "Conv"]
        keep_fp32 = head_nodes(graph) + (convs[:1] if keep_stem_fp32 else [])
        quantize_static(
            str(prepared),
            str(int8_path),
            _Batches(calibration.astype(np.float32), batch_size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_fp32,
        )
    proto = onnx.load(str(int8_path))
    props = {p.key: p.value for p in source.metadata_props}
    stem = "fp32" if keep_stem_fp32 else "int8"
    note = json.dumps(f"static int8 QDQ, per-channel weights, stem {stem}, head and score fp32")
    add_metadata(proto, props | {"quantization": note})
    onnx.save(proto, str(int8_path))
    return int8_path


def convert(conversion: Conversion, path: Path) -> dict[str, Any]:
    """The registry's converter: static INT8 of the checked fp32 ONNX (``conversion.source``).

    Returns how it was calibrated, for ``export.json``.
    """
    if conversion.source is None or conversion.calibration is None:
        raise ValueError("ONNX INT8 needs its fp32 ONNX source and calibration crops")
    stem = "int8" if conversion.int8_stem else "fp32"
    quantize_int8(conversion.source, path, conversion.calibration, keep_stem_fp32=stem == "fp32")
    return {
        "calibration": {
            "split": "train",
            "crops": len(conversion.calibration),
            "method": "minmax, QDQ, per-channel int8 weights, uint8 activations",
            "stem": stem,
            "head": "fp32",
        }
    }
