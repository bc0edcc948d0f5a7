"""Weight: parameters, MACs, activation traffic and memory of a deployable model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from fasdistill.models import count_macs, count_params
from fasdistill.models.multimodal import channel_count


@dataclass(frozen=True)
class Weight:
    """Size and work of one forward pass on a (1, 3, s, s) input."""

    params: int
    macs: int
    activation_elements: int  # outputs of every leaf layer, summed
    peak_layer_elements: int  # the largest input + output of one leaf layer

    def bytes_moved(self, bytes_per_value: int) -> int:
        """DRAM traffic of one inference in the compute energy model (see :func:`bytes_moved`)."""
        return bytes_moved(self.params, self.activation_elements, bytes_per_value)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak_activation_bytes_fp32"] = 4 * self.peak_layer_elements
        return data


def bytes_moved(params: int, activation_elements: int, bytes_per_value: int) -> int:
    """Weights read once, every layer output written once and read once.

    An estimate (caches cut it, im2col and padding add to it), stated as such.
    """
    return bytes_per_value * (params + 2 * activation_elements)


def _numel(values: Any) -> int:
    if isinstance(values, Tensor):
        return values.numel()
    if isinstance(values, (tuple, list)):
        return sum(_numel(v) for v in values)
    return 0


@torch.no_grad()
def measure_weight(model: nn.Module, input_size: int) -> Weight:
    """Parameters and MACs (as ``fasdistill models`` counts them) and activation sizes.

    Activations come from forward hooks on leaf modules in eval mode. The peak is
    the largest input + output of a single layer, a lower bound of peak activation
    memory (a residual branch keeps one more tensor alive).
    """
    leaves = [m for m in model.modules() if not list(m.children())]
    totals = {"outputs": 0, "peak": 0}

    def hook(_: nn.Module, inputs: Any, output: Any) -> None:
        out = _numel(output)
        totals["outputs"] += out
        totals["peak"] = max(totals["peak"], _numel(inputs) + out)

    handles = [leaf.register_forward_hook(hook) for leaf in leaves]
    was_training = model.training
    model.eval()
    try:
        channels = channel_count(getattr(model, "modalities", ("rgb",)))
        model(torch.zeros(1, channels, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return Weight(
        params=count_params(model),
        macs=count_macs(model, input_size),
        activation_elements=totals["outputs"],
        peak_layer_elements=totals["peak"],
    )
