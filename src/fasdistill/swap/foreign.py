"""Models from elsewhere in the SWAP report: a model file in any registered format.

A third-party model (the one a team ships today, a vendor's) gets a row like any
other, timed in its own runtime. Its preprocessing and output meaning come from the
fasdistill metadata of our own ONNX exports, or from a small YAML sidecar beside it
(``model.onnx.yaml`` or ``model.yaml``) with the keys a teacher from elsewhere
takes in a recipe (``format``, ``output_index``, ``lower_is_live`` and ``score``
too: docs/predict.md). Parameters and MACs are counted in ONNX graphs; for other
formats the sidecar states ``params`` and ``macs``:

    input_size: 256
    colour_order: RGB        # or BGR
    mean: [0.5, 0.5, 0.5]    # on pixels scaled to [0, 1]
    std: [0.5, 0.5, 0.5]
    crop_scale: 1.5          # must equal the crops' scale
    output: map              # logits | probability | map (mean = live score)
    output_name: depth       # optional: which output
    live_index: 0            # logits/probability: the bona fide column
    classes: [...]           # logits: class names, to reorder to the data's

The sidecar is read by :mod:`fasdistill.infer.foreign` (shared with ``predict`` and
``calibrate``, which also read ``threshold`` from it). In the report its threshold is
chosen on the dev split (EER) like every other model's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropIndex
from fasdistill.distill.teachers import ForeignTeacher
from fasdistill.errors import InputError
from fasdistill.infer.foreign import SIDECAR_KEYS, foreign_spec, sidecar_for
from fasdistill.models import bonafide_score

__all__ = ["SIDECAR_KEYS", "ForeignModel", "foreign_spec", "onnx_weight", "sidecar_for"]


def onnx_weight(path: Path, input_size: int) -> dict[str, Any]:
    """Parameters (initializer elements) and MACs of Conv, Gemm and MatMul at batch 1."""
    import onnx
    from onnx import numpy_helper, shape_inference

    proto = onnx.load(str(path))
    graph = proto.graph
    params = sum(int(np.prod(numpy_helper.to_array(t).shape)) for t in graph.initializer)
    first = graph.input[0].type.tensor_type.shape
    for i, dim in enumerate(first.dim):
        if not dim.HasField("dim_value"):
            dim.dim_value = 1 if i == 0 else input_size
    inferred = shape_inference.infer_shapes(proto).graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*inferred.input, *inferred.value_info, *inferred.output]
    }
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    per_node: dict[str, tuple[str, int]] = {}
    for node in inferred.node:
        out = shapes.get(node.output[0], [])
        macs = 0
        if node.op_type == "Conv" and len(node.input) > 1 and out:
            weight = shapes.get(node.input[1], [])  # (Cout, Cin / groups, kH, kW)
            if weight:
                macs = int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in ("Gemm", "MatMul") and out:
            a = shapes.get(node.input[0], [])
            if a:
                macs = int(np.prod(out)) * a[-1]
        per_node[node.name] = (node.op_type, macs)
    return {
        "params": params,
        "macs": sum(m for _, m in per_node.values()),
        "per_node": per_node,
        "complete_shapes": all(shapes.values()),
    }


class ForeignModel:
    """A third-party model in any registered format, scored on our crops through its own
    preprocessing and timed in its own runtime."""

    def __init__(self, path: Path, index: CropIndex, threads: int | None = None) -> None:
        """``threads``: the runtime's, for scoring and timing (None: the runtime chooses)."""
        self.path = path
        self.spec, self.source = foreign_spec(path)
        if self.spec.crop_scale != index.scale:
            raise InputError(
                f"{path}: the model expects crops at scale {self.spec.crop_scale}, the index "
                f"{index.root} has {index.scale}; prepare crops at its scale"
            )
        # Run once on a dummy batch: a sidecar field the model contradicts (input_size,
        # live_index, output, classes, score) is one line naming the sidecar, before any work.
        where = self.source if self.source != "fasdistill metadata" else str(path)
        self.teacher = ForeignTeacher(
            self.spec, path, tuple(index.classes), where=where, threads=threads
        )
        self.format = self.teacher.format
        self.input_size = int(self.teacher.input_size)
        self.weight = self._weight(where)

    def _weight(self, where: str) -> dict[str, Any]:
        """Parameters and MACs: counted in an ONNX graph, else stated in the sidecar."""
        if not self.format.sidecar:  # the graph is ONNX: count them
            counted = onnx_weight(self.path, self.input_size)
            return {"params": counted["params"], "macs": counted["macs"]}
        stated = {key: getattr(self.spec, key, None) for key in ("params", "macs")}
        missing = [key for key, value in stated.items() if value is None]
        if missing:
            raise InputError(
                f"{where}: {', '.join(missing)}: SWAP cannot count the parameters and MACs of "
                f"a {self.format.runtime} model; state params and macs in the sidecar"
            )
        return stated

    def bytes(self) -> int:
        """The artifact's size: the model file and the files it needs beside it."""
        files = self.format.files_of(self.path)
        return sum(f.stat().st_size for f in files if f.exists())

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output for a batch already in the model's preprocessing (for timing)."""
        return self.teacher.run_outputs(x)

    def score(self, images: np.ndarray) -> np.ndarray:
        """P(bona fide) of our preprocessed crops (any size: resized to the model's)."""
        logits = self.teacher.outputs(torch.from_numpy(np.asarray(images, np.float32)))["logits"]
        return bonafide_score(logits).numpy()
