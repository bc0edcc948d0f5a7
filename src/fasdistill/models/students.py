"""Students (< 1 M deployable parameters): MiniFASNet, MobileNetV3-Small, SwapNet, smoke-cnn.

All are written from scratch in plain torch. Measured at their default inputs
(FLOPs / 2 from ``FlopCounterMode``, two classes): see ``fasdistill models`` or
``benchmarks/model_latency.py`` for the live numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from fasdistill.models.base import ConvBNAct, hardswish, prelu, relu
from fasdistill.models.heads import ClassifierHead, GDCHead
from fasdistill.models.registry import register

# --- MiniFASNet ------------------------------------------------------------------------


class DepthWiseBlock(nn.Module):
    """MiniFASNet's unit: 1x1 expand (PReLU) -> 3x3 depthwise (PReLU) -> 1x1 project.

    The residual variant adds its input back; the strided one downsamples.
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        out_channels: int,
        stride: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(
            ConvBNAct(in_channels, hidden, 1, act=prelu),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=prelu),
            ConvBNAct(hidden, out_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


# Silent-Face MiniFASNetV2 ("1.8M_" pruned widths). Per stage: (downsampling block
# hidden width, stage output width, hidden widths of the residual blocks that follow).
_MINIFASNET_V2: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    (103, 64, (13, 13, 13, 13)),
    (231, 128, (231, 52, 26, 77, 26, 26)),
    (308, 128, (26, 26)),
)


class MiniFASNetBackbone(nn.Module):
    """MiniFASNetV2 trunk: 3x3/2 stem, depthwise 3x3, three strided stages, 1x1 to 512.

    Stride 16: an 80 x 80 face ends on a 5 x 5 map, which the GDC head then weighs.
    """

    def __init__(self, embedding_channels: int = 512) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(3, 32, 3, 2, act=prelu), ConvBNAct(32, 32, 3, groups=32, act=prelu)
        )
        stages: list[nn.Module] = []
        in_channels = 32
        for down_hidden, width, hiddens in _MINIFASNET_V2:
            blocks = [DepthWiseBlock(in_channels, down_hidden, width, stride=2)]
            blocks += [DepthWiseBlock(width, h, width, residual=True) for h in hiddens]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.expand = ConvBNAct(in_channels, embedding_channels, 1, act=prelu)
        self.out_channels = embedding_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.expand(self.stages(self.stem(x)))


@register(
    "minifasnet",
    "student",
    80,
    "MiniFASNetV2-style (Silent-Face): depthwise residual blocks, PReLU, GDC embedding",
)
def minifasnet(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """MiniFASNetV2 shape at 80 x 80: 5 x 5 final map, 5 x 5 GDC, 128-d embedding."""
    backbone = MiniFASNetBackbone()
    head = GDCHead(backbone.out_channels, num_classes, kernel=5, embedding=128, dropout=dropout)
    return backbone, head


# --- MobileNetV3-Small -----------------------------------------------------------------


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor``, never losing more than 10 %."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 squeeze (ReLU) -> 1x1 excite (hard-sigmoid)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels // 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.squeeze = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU(inplace=True)
        self.excite = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.excite(self.act(self.squeeze(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1x1 expand -> kxk depthwise -> (SE) -> 1x1 linear projection."""

    def __init__(
        self,
        in_channels: int,
        kernel: int,
        expanded: int,
        out_channels: int,
        use_se: bool,
        act: Callable[[int], nn.Module],
        stride: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != in_channels:
            layers.append(ConvBNAct(in_channels, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if use_se:
            layers.append(SqueezeExcite(expanded))
        layers.append(ConvBNAct(expanded, out_channels, 1))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


# (kernel, expanded, out, SE, hard-swish, stride): Howard et al. 2019, Table 2
_MOBILENETV3_SMALL: tuple[tuple[int, int, int, bool, bool, int], ...] = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


class MobileNetV3SmallBackbone(nn.Module):
    """MobileNetV3-Small trunk at a width multiplier, up to its last 1x1 conv (6x widening)."""

    def __init__(self, width: float) -> None:
        super().__init__()
        in_channels = make_divisible(16 * width)
        layers: list[nn.Module] = [ConvBNAct(3, in_channels, 3, 2, act=hardswish)]
        for kernel, expanded, out, use_se, use_hs, stride in _MOBILENETV3_SMALL:
            out_channels = make_divisible(out * width)
            layers.append(
                InvertedResidual(
                    in_channels,
                    kernel,
                    make_divisible(expanded * width),
                    out_channels,
                    use_se,
                    hardswish if use_hs else relu,
                    stride,
                )
            )
            in_channels = out_channels
        self.out_channels = 6 * in_channels
        layers.append(ConvBNAct(in_channels, self.out_channels, 1, act=hardswish))
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _mobilenetv3_small(
    width: float, num_classes: int, dropout: float
) -> tuple[nn.Module, nn.Module]:
    backbone = MobileNetV3SmallBackbone(width)
    hidden = make_divisible(1024 * width)
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout, hidden=hidden)


@register(
    "mobilenetv3-small-0.5",
    "student",
    128,
    "MobileNetV3-Small x0.5: inverted residuals, SE, hard-swish; 512-d classifier",
)
def mobilenetv3_small_050(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """MobileNetV3-Small at width 0.5."""
    return _mobilenetv3_small(0.5, num_classes, dropout)


@register(
    "mobilenetv3-small-0.75",
    "student",
    128,
    "MobileNetV3-Small x0.75: inverted residuals, SE, hard-swish; 768-d classifier",
)
def mobilenetv3_small_075(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """MobileNetV3-Small at width 0.75."""
    return _mobilenetv3_small(0.75, num_classes, dropout)


# --- SwapNet ---------------------------------------------------------------------------


class SwapNetBackbone(nn.Module):
    """A plain stack of dense 3x3 conv + BN + ReLU layers; strided layers halve the map.

    ``widths[i]`` is layer i's output channels and ``strides[i]`` its stride.
    """

    def __init__(self, widths: Sequence[int], strides: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for width, stride in zip(widths, strides, strict=True):
            layers.append(ConvBNAct(in_channels, width, 3, stride, act=relu))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


# Chosen with benchmarks/model_latency.py: at MiniFASNet's params and MACs it runs 6-7x
# faster in ONNX Runtime on one core (dense 3x3 convs reach ~55-65 MMAC/ms; MiniFASNet's
# depthwise/PReLU graph ~8-9).
_SWAPNET_WIDTHS = (32, 64, 64, 96, 96, 128, 128)
_SWAPNET_STRIDES = (2, 2, 1, 2, 1, 2, 1)


@register(
    "swapnet",
    "student",
    128,
    "SwapNet (ours): 7 dense 3x3 conv-BN-ReLU layers, stride 16, no depthwise; "
    "ORT latency follows MACs",
)
def swapnet(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """Dense, shallow, early-striding CNN for fast single-thread CPU inference.

    Tiny models in ONNX Runtime are bound by per-op overhead and by ops that run far
    below peak (depthwise convs, PReLU, SE's HardSigmoid/Mul). Seven dense 3x3 convs
    (BN folds into them at export, ReLU fuses into them in ORT) make an optimised ORT
    graph of ten nodes (MiniFASNet: 97, MobileNetV3-Small: 118) whose latency tracks
    its MACs. Early striding (two stride-2 convs before any
    stride-1 one) keeps the wide layers on small maps; stride 16 ends on an 8 x 8 map at
    128 (5 x 5 at 80, like MiniFASNet) for pixel-map and feature distillation.
    """
    backbone = SwapNetBackbone(_SWAPNET_WIDTHS, _SWAPNET_STRIDES)
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout)


# --- smoke-cnn -------------------------------------------------------------------------


class SmokeCNN(nn.Module):
    """Three strided 3x3 convs with GroupNorm + ReLU (8, 16, 32 channels).

    For tests and examples only. GroupNorm normalises each sample on its own, so
    unlike BatchNorm the result does not depend on how a batch is split across
    processes: single-process and DDP training match exactly.
    """

    out_channels = 32

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for width in (8, 16, self.out_channels):
            layers += [
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(4, width),
                nn.ReLU(inplace=True),
            ]
            in_channels = width
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


@register(
    "smoke-cnn",
    "student",
    64,
    "tiny 3-conv GroupNorm network for tests and examples (not for real use)",
    dropout=0.0,
)
def smoke_cnn(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """Test-only model: tiny, deterministic across process counts (no BN, no dropout)."""
    backbone = SmokeCNN()
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout)
