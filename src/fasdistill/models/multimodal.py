"""Models that see more than RGB: depth and near-infrared (NIR) beside the colour image.

A batch stacks its modalities' channels in the canonical order of
:data:`~fasdistill.data.formats.base.MODALITIES` (RGB's 3, then 1 each for depth
and NIR); :func:`select` takes out the channels one model reads, so a teacher on
RGB + depth + NIR and an RGB-only student train on the same batch.

Two fusions wrap any registered backbone:

- ``early``: the channels are stacked at the input; the backbone's first
  convolution takes all of them (one network, the cost of RGB alone plus a few
  input channels);
- ``late``: one backbone per modality, their final maps concatenated and fused by
  a 1x1 convolution back to one backbone's width (so heads, adapters and feature
  distillation see the shape they always do).

**Modality dropout** (training only): each sample loses each modality with
probability ``p`` (never all of them): its channels are zeroed (early) or its
branch's features are (late). A teacher trained so also scores samples whose
depth or NIR is missing: give zeros for them (:func:`select` with ``fill``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch
from torch import Tensor, nn

from fasdistill.errors import InputError
from fasdistill.models.base import ConvBNAct, relu

CHANNELS = {"rgb": 3, "depth": 1, "ir": 1}
ORDER = tuple(CHANNELS)
FUSIONS = ("early", "late")


def check_modalities(modalities: Sequence[str], where: str = "modalities") -> tuple[str, ...]:
    """``modalities`` in canonical order; InputError for unknown or repeated names."""
    unknown = [m for m in modalities if m not in CHANNELS]
    if unknown or not modalities or len(set(modalities)) != len(modalities):
        raise InputError(
            f"{where}: {list(modalities)} must name each of {', '.join(ORDER)} at most once "
            "(and at least one)"
        )
    return tuple(m for m in ORDER if m in modalities)


def channel_count(modalities: Sequence[str]) -> int:
    return sum(CHANNELS[m] for m in modalities)


def channel_index(layout: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Positions in a batch stacked as ``layout`` of the channels of ``wanted``."""
    start, where = 0, {}
    for name in layout:
        where[name] = list(range(start, start + CHANNELS[name]))
        start += CHANNELS[name]
    missing = [m for m in wanted if m not in where]
    if missing:
        raise InputError(
            f"the batch holds {', '.join(layout)}; a model needs {', '.join(missing)} too"
        )
    return [i for m in wanted for i in where[m]]


def select(
    images: Tensor, layout: Sequence[str], wanted: Sequence[str], fill: bool = False
) -> Tensor:
    """The channels of ``wanted`` from a batch stacked as ``layout``.

    ``fill``: a modality the batch lacks becomes zeros (a missing sensor, as modality
    dropout trained the model to expect) instead of an error.
    """
    if tuple(layout) == tuple(wanted):
        return images
    if not fill:
        return images[:, channel_index(layout, wanted)]
    parts = []
    for m in wanted:
        if m in layout:
            parts.append(images[:, channel_index(layout, [m])])
        else:
            n, _, h, w = images.shape
            parts.append(images.new_zeros(n, CHANNELS[m], h, w))
    return torch.cat(parts, dim=1)


def widen_input(backbone: nn.Module, in_channels: int) -> nn.Module:
    """``backbone`` with its first convolution taking ``in_channels`` instead of 3."""
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.in_channels != 3 or module.groups != 1:
                break
            wide = nn.Conv2d(
                in_channels,
                module.out_channels,
                module.kernel_size,
                module.stride,
                module.padding,
                module.dilation,
                bias=module.bias is not None,
            )
            parent = backbone.get_submodule(name.rsplit(".", 1)[0]) if "." in name else backbone
            setattr(parent, name.rsplit(".", 1)[-1], wide)
            return backbone
    raise InputError(f"{type(backbone).__name__}: no plain 3-channel first convolution to widen")


def _drop_mask(n: int, k: int, p: float, device: torch.device) -> Tensor:
    """(n, k) keep mask: each entry dropped with probability ``p``, never a whole row."""
    keep = torch.rand(n, k, device=device) >= p
    empty = ~keep.any(dim=1)
    if bool(empty.any()):
        pick = torch.randint(0, k, (int(empty.sum()),), device=device)
        keep[empty.nonzero(as_tuple=True)[0], pick] = True
    return keep


class MultiModalBackbone(nn.Module):
    """A backbone over stacked modalities with early or late fusion (module docstring)."""

    def __init__(
        self,
        backbones: Sequence[nn.Module],
        modalities: Sequence[str],
        fusion: str = "early",
        modality_dropout: float = 0.0,
    ) -> None:
        """``backbones``: one (early fusion) or one per modality (late), RGB-input each."""
        super().__init__()
        if fusion not in FUSIONS:
            raise InputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise InputError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.modalities = check_modalities(modalities)
        self.fusion = fusion
        self.modality_dropout = modality_dropout
        self.in_channels = channel_count(self.modalities)
        wanted = 1 if fusion == "early" else len(self.modalities)
        if len(backbones) != wanted:
            raise InputError(
                f"{fusion} fusion of {len(self.modalities)} modalities takes {wanted} "
                f"backbone(s), got {len(backbones)}"
            )
        if fusion == "early":
            self.net = widen_input(backbones[0], self.in_channels)
            self.out_channels = int(self.net.out_channels)
        else:
            self.branches = nn.ModuleDict(
                {
                    m: net if CHANNELS[m] == 3 else widen_input(net, CHANNELS[m])
                    for m, net in zip(self.modalities, backbones, strict=True)
                }
            )
            width = int(backbones[0].out_channels)
            self.fuse = ConvBNAct(width * len(backbones), width, 1, act=relu)
            self.out_channels = width
        # Each modality's channels in the stacked input: (start, end).
        widths = [CHANNELS[m] for m in self.modalities]
        self._slices = [(end - w, end) for w, end in zip(widths, accumulate(widths), strict=True)]

    def extra_repr(self) -> str:
        return (
            f"modalities={self.modalities}, fusion={self.fusion!r}, dropout={self.modality_dropout}"
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise InputError(
                f"this model reads {'+'.join(self.modalities)} ({self.in_channels} channels), "
                f"got {x.shape[1]}"
            )
        keep = None
        if self.training and self.modality_dropout > 0:
            keep = _drop_mask(x.shape[0], len(self.modalities), self.modality_dropout, x.device)
        if self.fusion == "early":
            if keep is not None:
                repeats = torch.tensor([CHANNELS[m] for m in self.modalities], device=x.device)
                channel_keep = keep.repeat_interleave(repeats, dim=1)
                x = x * channel_keep[:, :, None, None].to(x.dtype)
            return self.net(x)
        maps = []
        for k, (m, idx) in enumerate(zip(self.modalities, self._slices, strict=True)):
            feature = self.branches[m](x[:, idx[0] : idx[1]])
            if keep is not None:
                feature = feature * keep[:, k, None, None, None].to(feature.dtype)
            maps.append(feature)
        return self.fuse(torch.cat(maps, dim=1))
