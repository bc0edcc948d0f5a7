"""Teachers: ResNet-18/34/50 and a CDCN++-style central difference network, from scratch.

Default input is 128 x 128 for all of them. Face crops in FAS benchmarks are
small (OULU/SiW faces are often 100-200 px wide, MiniFASNet trains at 80), so
224 would upsample most crops; 128 is also the students' default, so teacher and
student see the same batch without a resize and, at stride 32, both end on a 4 x 4
map, which keeps feature distillation spatially aligned. It cuts the teachers' cost
to a third of 224 (ResNet-50: 1.35 G instead of 4.1 G MACs). CDCN++ was published
at 256; at 128 its multi-scale fusion works on a 16 x 16 map instead of 32 x 32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fasdistill.errors import InputError
from fasdistill.models.base import ConvBNAct, relu
from fasdistill.models.heads import ClassifierHead
from fasdistill.models.registry import register


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = ConvBNAct(in_channels, channels, 3, stride, act=relu)
        self.conv2 = ConvBNAct(channels, out_channels, 3)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, with a shortcut: ResNet-50 (v1.5 stride)."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = ConvBNAct(in_channels, channels, 1, act=relu)
        self.conv2 = ConvBNAct(channels, channels, 3, stride, act=relu)
        self.conv3 = ConvBNAct(channels, out_channels, 1)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride)


class ResNet(nn.Module):
    """ImageNet-style ResNet trunk (7x7/2 stem, max-pool, four stages); ends at stride 32."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(3, 64, 7, 2, act=relu), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        )
        stages: list[nn.Module] = []
        in_channels = 64
        for index, depth in enumerate(depths):
            channels = 64 * 2**index
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if index > 0 and i == 0 else 1
                blocks.append(block(in_channels, channels, stride))
                in_channels = channels * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _resnet(
    block: type[BasicBlock | Bottleneck], depths: tuple[int, ...], num_classes: int, dropout: float
) -> tuple[nn.Module, nn.Module]:
    backbone = ResNet(block, depths)
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout)


@register("resnet18", "teacher", 128, "ResNet-18 (BasicBlock)")
def resnet18(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """ResNet-18: the cheap teacher and the speed reference for students."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes, dropout)


@register("resnet34", "teacher", 128, "ResNet-34 (BasicBlock)")
def resnet34(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """ResNet-34."""
    return _resnet(BasicBlock, (3, 4, 6, 3), num_classes, dropout)


@register("resnet50", "teacher", 128, "ResNet-50 (Bottleneck)")
def resnet50(num_classes: int, dropout: float) -> tuple[nn.Module, nn.Module]:
    """ResNet-50 (stride on the 3x3 conv, as in torchvision's v1.5)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes, dropout)


class CDConv2d(nn.Conv2d):
    """Central difference convolution (Yu et al., CVPR 2020), bias-free.

    ``y = conv(x, w) - theta * x_centre * sum(w)``: theta blends a vanilla conv
    (intensity) with a conv over differences to the centre pixel (gradients), which
    captures spoof texture such as moire and print lattices and ignores uniform
    lighting shifts. Since the centre tap always lies inside the image, the
    difference term is folded into the kernel, so it costs one ordinary conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        theta: float = 0.7,
    ) -> None:
        if kernel_size % 2 == 0:
            raise InputError(f"kernel_size must be odd for a centre tap, got {kernel_size}")
        if not 0.0 <= theta <= 1.0:
            raise InputError(f"theta must be in [0, 1], got {theta}")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False
        )
        self.theta = theta
        centre_tap = torch.zeros(1, 1, kernel_size, kernel_size)
        centre_tap[..., kernel_size // 2, kernel_size // 2] = 1.0
        self.register_buffer("centre_tap", centre_tap, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight
        if self.theta:
            centre = weight.sum(dim=(2, 3), keepdim=True) * self.centre_tap
            weight = weight - self.theta * centre
        return F.conv2d(x, weight, None, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, theta={self.theta}"


def _cdc(in_channels: int, out_channels: int, theta: float) -> nn.Sequential:
    return nn.Sequential(
        CDConv2d(in_channels, out_channels, theta=theta),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SpatialAttention(nn.Module):
    """CBAM-style map: mean and max over channels -> kxk conv -> sigmoid, times the input."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CDCNppBackbone(nn.Module):
    """CDCN++ trunk: three CDC levels, per-level spatial attention, fused at stride 8.

    Level widths are the NAS-searched ones of CDCN++. Level outputs (strides 2, 4, 8)
    are weighted by spatial attention (kernels 7, 5, 3: coarser levels, smaller
    kernels), resized bilinearly to the stride-8 map, concatenated and fused by a
    CDC conv. Output: the fused (N, 128, H/8, W/8) map; the original's depth-map
    conv is the ``pixel`` aux head here, requested like for any other model.
    """

    out_channels = 128

    def __init__(self, theta: float = 0.7) -> None:
        super().__init__()
        pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stem = _cdc(3, 64, theta)
        self.level1 = nn.Sequential(
            _cdc(64, 128, theta), _cdc(128, 204, theta), _cdc(204, 128, theta), pool
        )
        self.level2 = nn.Sequential(
            _cdc(128, 153, theta),
            _cdc(153, 128, theta),
            _cdc(128, 179, theta),
            _cdc(179, 128, theta),
            pool,
        )
        self.level3 = nn.Sequential(
            _cdc(128, 128, theta), _cdc(128, 153, theta), _cdc(153, 128, theta), pool
        )
        self.attention = nn.ModuleList([SpatialAttention(k) for k in (7, 5, 3)])
        self.fuse = _cdc(3 * 128, self.out_channels, theta)

    def forward(self, x: Tensor) -> Tensor:
        level1 = self.level1(self.stem(x))
        level2 = self.level2(level1)
        level3 = self.level3(level2)
        size = level3.shape[-2:]
        maps = [
            F.interpolate(att(level), size=size, mode="bilinear", align_corners=False)
            if level.shape[-2:] != size
            else att(level)
            for att, level in zip(self.attention, (level1, level2, level3), strict=True)
        ]
        return self.fuse(torch.cat(maps, dim=1))


@register(
    "cdcnpp",
    "teacher",
    128,
    "CDCN++-style central difference network (theta 0.7), multi-scale attention; "
    "published at 256, default 128 here",
)
def cdcnpp(num_classes: int, dropout: float, theta: float = 0.7) -> tuple[nn.Module, nn.Module]:
    """CDCN++-style teacher; add ``aux=("pixel",)`` for its pixel-map supervision."""
    backbone = CDCNppBackbone(theta)
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout)
