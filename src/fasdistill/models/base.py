"""The model contract every teacher and student follows, and the conv block they share.

A :class:`FASModel` is ``backbone -> feature map -> head -> logits`` plus optional
training-only auxiliary heads on the same feature map. Only backbone + head are
ever deployed, counted, timed or exported (:meth:`FASModel.deployable`), so a
training signal such as a pixel map never inflates a student's SWAP figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from fasdistill.errors import InputError

ROLES = ("teacher", "student")
# forward_train keys that aux heads must not shadow
RESERVED_OUTPUTS = ("logits", "features")


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation: the unit most backbones repeat.

    ``padding`` defaults to ``kernel_size // 2`` so stride 1 keeps the map size and
    stride 2 halves it (rounding up) for any input size.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: Callable[[int], nn.Module] | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                kernel_size // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act(out_channels))
        super().__init__(*layers)


def relu(_: int) -> nn.Module:
    """ReLU factory for :class:`ConvBNAct` (its ``act`` takes the channel count)."""
    return nn.ReLU(inplace=True)


def hardswish(_: int) -> nn.Module:
    """Hard-swish factory for :class:`ConvBNAct`."""
    return nn.Hardswish(inplace=True)


def prelu(channels: int) -> nn.Module:
    """Per-channel PReLU factory for :class:`ConvBNAct` (MiniFASNet's activation)."""
    return nn.PReLU(channels)


def init_weights(module: nn.Module) -> None:
    """He init for convs, unit/zero norms, small normal linears: one deterministic recipe.

    Residual branches are *not* zero-initialised: that would start every branch
    conv with a zero gradient, which looks like a dead layer to gradient checks.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _ModelInfo(nn.Module):
    """Metadata shared by the trainable model and its deployable view."""

    name: str
    role: str
    input_size: int
    num_classes: int
    modalities: tuple[str, ...] = ("rgb",)  # the input's sensors, channels stacked in this order

    def _set_info(
        self,
        name: str,
        role: str,
        input_size: int,
        num_classes: int,
        modalities: tuple[str, ...] = ("rgb",),
    ) -> None:
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        self.name = name
        self.role = role
        self.input_size = input_size
        self.num_classes = num_classes
        self.modalities = tuple(modalities)

    def extra_repr(self) -> str:
        extra = "" if self.modalities == ("rgb",) else f", modalities={self.modalities}"
        return (
            f"name={self.name!r}, role={self.role!r}, input_size={self.input_size}, "
            f"num_classes={self.num_classes}{extra}"
        )


class DeployableFAS(_ModelInfo):
    """Backbone + head only: what is exported, timed and counted.

    It holds the *same* module objects as the :class:`FASModel` it came from, so it
    shares weights (and BN statistics) and its state-dict keys are a subset of the
    full model's (``backbone.*``, ``head.*``), which keeps hook paths identical.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        *,
        name: str,
        role: str,
        input_size: int,
        num_classes: int,
        modalities: tuple[str, ...] = ("rgb",),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self._set_info(name, role, input_size, num_classes, modalities)

    def forward(self, x: Tensor) -> Tensor:
        """Images (N, 3, H, W) -> logits (N, num_classes); class 0 is bona fide."""
        return self.head(self.backbone(x))


class FASModel(_ModelInfo):
    """A face anti-spoofing classifier with optional training-only auxiliary heads.

    ``backbone`` maps images to a feature map (N, C, h, w) and exposes ``out_channels``;
    ``head`` maps that map to logits (N, num_classes); ``aux`` heads read the same
    map and exist only for training losses (pixel-wise or Fourier supervision).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        aux: Mapping[str, nn.Module] | None = None,
        *,
        name: str,
        role: str,
        input_size: int,
        num_classes: int,
        modalities: tuple[str, ...] = ("rgb",),
    ) -> None:
        super().__init__()
        aux = dict(aux or {})
        clash = sorted(set(aux) & set(RESERVED_OUTPUTS))
        if clash:
            raise InputError(f"aux head names {clash} clash with forward_train's own outputs")
        self.backbone = backbone
        self.head = head
        self.aux = nn.ModuleDict(aux)
        self._set_info(name, role, input_size, num_classes, modalities)

    @property
    def feature_channels(self) -> int:
        """Channels of the final feature map (what feature distillation adapts to)."""
        return int(self.backbone.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """The deployable path: images (N, 3, H, W) -> logits (N, num_classes)."""
        return self.head(self.backbone(x))

    def forward_train(self, x: Tensor) -> dict[str, Tensor]:
        """Logits, the final feature map (for distillation) and every aux head's output."""
        features = self.backbone(x)
        outputs = {"logits": self.head(features), "features": features}
        for name, aux_head in self.aux.items():
            outputs[name] = aux_head(features)
        return outputs

    def deployable(self) -> DeployableFAS:
        """A view with backbone + head only, sharing weights: aux heads never ship."""
        return DeployableFAS(
            self.backbone,
            self.head,
            name=self.name,
            role=self.role,
            input_size=self.input_size,
            num_classes=self.num_classes,
            modalities=self.modalities,
        )


def bonafide_score(logits: Tensor) -> Tensor:
    """Liveness score P(bonafide) = softmax probability of class 0, higher = more live."""
    return torch.softmax(logits.float(), dim=1)[:, 0]
