"""PT2E static int8 quantization with the classifier head and the score left in fp32.

ExecuTorch's and LiteRT's int8 programs are both quantized through PT2E
(``prepare_pt2e`` -> calibration on train crops -> ``convert_pt2e``), each with
its backend's quantizer. Quantized, the head's softmax would leave the program as
int8 and every score would sit on a 1/256 grid (the ONNX Runtime INT8 export had
the same flaw at 1/255): dev scores collapse onto a few values and a calibration
at low APCER has no threshold to choose. :class:`FloatHead` wraps a backend's
quantizer and takes the annotations off the head (every node from the backbone's
last convolution or global pooling to the outputs), so the head runs in fp32 on
the dequantized feature map and the score is a float. The head is found by walking
the graph back from the outputs, not by module names, so it holds for every model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.fx import GraphModule, Node

from fasdistill.errors import InputError

# Walking back from the outputs: a convolution ends the head (it stays quantized);
# a global pooling joins the head and ends the walk. ATen operator names.
_BACKBONE = {
    "conv1d",
    "conv2d",
    "conv3d",
    "convolution",
    "_convolution",
    "conv_transpose1d",
    "conv_transpose2d",
}
_POOLING = {
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "_adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "mean",
    "amax",
}
ANNOTATION = "quantization_annotation"


def _op(node: Node) -> str:
    """``conv2d`` for ``aten.conv2d.default``; a Python callable's name otherwise."""
    target = node.target
    return getattr(target, "_opname", None) or getattr(target, "__name__", str(target))


def head_nodes(graph_module: GraphModule) -> list[Node]:
    """The op nodes between the backbone's last feature map and the outputs.

    Stops at convolutions (not included) and global poolings (included). A walk
    that reaches the image input means nothing tells the head from the backbone.
    """
    output = next(n for n in graph_module.graph.nodes if n.op == "output")
    stack = list(output.all_input_nodes)
    head: dict[Node, None] = {}
    while stack:
        node = stack.pop()
        if node in head or node.op == "get_attr":
            continue
        if node.op == "placeholder":
            raise InputError(
                "cannot keep the classifier head in fp32: the path from the score back to "
                "the image has no convolution or pooling"
            )
        if _op(node) in _BACKBONE:
            continue
        head[node] = None
        if _op(node) not in _POOLING:
            stack.extend(node.all_input_nodes)
    return list(head)


class FloatHead:
    """A PT2E quantizer that annotates like ``base`` except on the classifier head.

    Quacks like ``torchao``'s ``Quantizer`` (``prepare_pt2e`` calls only these
    methods); not a subclass, so this module imports without torchao installed.
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.head: list[str] = []  # names of the nodes left in fp32, for the record

    def transform_for_annotation(self, model: GraphModule) -> GraphModule:
        return self.base.transform_for_annotation(model)

    def annotate(self, model: GraphModule) -> GraphModule:
        model = self.base.annotate(model)
        head = head_nodes(model)
        for node in head:
            node.meta.pop(ANNOTATION, None)
        self.head = [node.name for node in head]
        return model

    def validate(self, model: GraphModule) -> None:
        self.base.validate(model)

    def prepare_obs_or_fq_callback(self, model: GraphModule, mapping: dict) -> None:
        self.base.prepare_obs_or_fq_callback(model, mapping)


def quantize(
    scored: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    quantizer: Any,
    calibration: np.ndarray,
    fold_quantize: bool = True,
) -> GraphModule:
    """``scored`` with int8 backbone (``quantizer``'s scheme) and fp32 head, calibrated.

    ``calibration``: preprocessed train crops (N, 3, S, S), run one at a time (the
    programs take batch 1) so the observers see real faces' ranges.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = torch.export.export(scored, example).module()
    prepared = prepare_pt2e(captured, FloatHead(quantizer))
    for image in calibration:
        prepared(torch.from_numpy(image[None]))
    return convert_pt2e(prepared, fold_quantize=fold_quantize)
