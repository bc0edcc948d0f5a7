"""SearchNet: the student family ``fasdistill search`` explores, one architecture per string.

An architecture is a short string of stages separated by ``-``; each stage is
``{type}{kernel}[e{expansion}]w{width}n{depth}``:

- ``d``: dense ``kernel x kernel`` conv + BN + ReLU blocks (swapnet's unit);
- ``i``: inverted residuals (1x1 expand by ``expansion`` + ReLU, ``kernel x kernel``
  depthwise + ReLU, 1x1 linear projection; residual when the shape allows): the
  MobileNetV2 unit without squeeze-excite.

The first block of every stage halves the map (stride 2); the first stage reads
the RGB image and must be dense. The head is a global average pool and a linear
classifier. SwapNet is the point ``d3w32n1-d3w64n2-d3w96n2-d3w128n2`` (the same
layers in the same order). The input side is not part of the string: it is the
run's ``data.input_size``.

The same :class:`Block` records describe the network and key the per-block
latency table (:mod:`fasdistill.search.latency`), so a table entry and a layer of
the built model can never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor, nn

from fasdistill.errors import InputError
from fasdistill.models.base import ConvBNAct, relu
from fasdistill.models.heads import ClassifierHead
from fasdistill.models.registry import register

BLOCK_TYPES = ("d", "i")
SWAPNET_ARCH = "d3w32n1-d3w64n2-d3w96n2-d3w128n2"
_STAGE = re.compile(
    r"^(?P<type>[a-z])(?P<kernel>\d+)(?:e(?P<exp>\d+))?w(?P<width>\d+)n(?P<depth>\d+)$"
)


@dataclass(frozen=True, order=True)
class Stage:
    """One stage: ``depth`` blocks of one type, the first with stride 2."""

    type: str
    kernel: int
    width: int
    depth: int
    expansion: int = 1  # inverted residuals only

    def __str__(self) -> str:
        exp = f"e{self.expansion}" if self.type == "i" else ""
        return f"{self.type}{self.kernel}{exp}w{self.width}n{self.depth}"


@dataclass(frozen=True, order=True)
class Block:
    """One layer of a SearchNet at a given input map: what it computes and on what shape.

    ``side`` is the side of the block's input map; the block's output side is
    ``ceil(side / stride)``.
    """

    type: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    side: int
    expansion: int = 1

    @property
    def out_side(self) -> int:
        return -(-self.side // self.stride)

    @property
    def key(self) -> str:
        """A stable text key for tables (JSON object keys)."""
        return (
            f"{self.type}k{self.kernel}e{self.expansion}s{self.stride}"
            f"c{self.in_channels}-{self.out_channels}@{self.side}"
        )

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the block's convolutions (as ``count_macs`` counts them)."""
        out = self.out_side**2
        if self.type == "d":
            return self.kernel**2 * self.in_channels * self.out_channels * out
        hidden = self.in_channels * self.expansion
        expand = self.in_channels * hidden * self.side**2 if self.expansion != 1 else 0
        return expand + self.kernel**2 * hidden * out + hidden * self.out_channels * out

    def build(self) -> nn.Module:
        """The block as a module (BN and activations included)."""
        if self.type == "d":
            return ConvBNAct(
                self.in_channels, self.out_channels, self.kernel, self.stride, act=relu
            )
        return InvertedResidual(
            self.in_channels, self.out_channels, self.kernel, self.stride, self.expansion
        )


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU) -> kxk depthwise (ReLU) -> 1x1 projection; residual when shapes allow."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, act=relu))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=relu),
            ConvBNAct(hidden, out_channels, 1),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def parse_arch(arch: str) -> tuple[Stage, ...]:
    """The stages of an architecture string; a malformed one is an error naming the part."""
    if not isinstance(arch, str) or not arch.strip():
        raise InputError(
            f"model.arch must be a SearchNet string like 'd3w32n1-d3w64n2', got {arch!r}"
        )
    stages = []
    for i, part in enumerate(arch.strip().split("-")):
        match = _STAGE.match(part)
        if match is None:
            raise InputError(
                f"model.arch {arch!r}: stage {i + 1} {part!r} is not "
                "{d|i}{kernel}[e{expansion}]w{width}n{depth}, e.g. d3w32n1 or i5e4w64n2"
            )
        kind, exp = match["type"], match["exp"]
        if kind not in BLOCK_TYPES:
            raise InputError(f"model.arch {arch!r}: stage {i + 1} type {kind!r} is not d or i")
        if (kind == "i") != (exp is not None):
            raise InputError(
                f"model.arch {arch!r}: stage {i + 1} {part!r}: an expansion (e..) goes with "
                "inverted residuals (i) and only with them"
            )
        stage = Stage(
            kind,
            int(match["kernel"]),
            int(match["width"]),
            int(match["depth"]),
            int(exp) if exp else 1,
        )
        if stage.kernel % 2 == 0 or not 1 <= stage.kernel <= 7:
            raise InputError(f"model.arch {arch!r}: stage {i + 1} kernel must be odd, 1-7")
        if not 1 <= stage.width <= 1024 or not 1 <= stage.depth <= 8 or stage.expansion > 8:
            raise InputError(
                f"model.arch {arch!r}: stage {i + 1} needs width 1-1024, depth 1-8, expansion <= 8"
            )
        stages.append(stage)
    if stages[0].type != "d":
        raise InputError(f"model.arch {arch!r}: the first stage reads RGB and must be dense (d)")
    return tuple(stages)


def format_arch(stages: tuple[Stage, ...]) -> str:
    return "-".join(str(s) for s in stages)


def arch_blocks(arch: str, input_size: int) -> list[Block]:
    """Every layer of ``arch`` at a square input of ``input_size``, in order."""
    blocks = []
    channels, side = 3, input_size
    for stage in parse_arch(arch):
        for j in range(stage.depth):
            block = Block(
                stage.type,
                channels,
                stage.width,
                stage.kernel,
                2 if j == 0 else 1,
                side,
                stage.expansion,
            )
            blocks.append(block)
            channels, side = stage.width, block.out_side
    return blocks


def arch_macs(arch: str, input_size: int, num_classes: int) -> int:
    """MACs of the deployable SearchNet at ``input_size``, from its blocks (no model built)."""
    blocks = arch_blocks(arch, input_size)
    return sum(b.macs for b in blocks) + blocks[-1].out_channels * num_classes


class SearchNetBackbone(nn.Module):
    """The layers of an architecture string, in one ``features`` sequence."""

    def __init__(self, arch: str) -> None:
        super().__init__()
        # The side only sets Block.side (bookkeeping); the layers are the same at any input.
        blocks = arch_blocks(arch, 64)
        self.features = nn.Sequential(*(b.build() for b in blocks))
        self.out_channels = blocks[-1].out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


@register(
    "searchnet",
    "student",
    64,
    "SearchNet: the searched family (dense or inverted-residual stages) of model.arch "
    "(default: swapnet's layers)",
)
def searchnet(
    num_classes: int, dropout: float, arch: str = SWAPNET_ARCH
) -> tuple[nn.Module, nn.Module]:
    """A SearchNet of ``arch`` (see the module docstring) with a pooled linear head."""
    backbone = SearchNetBackbone(arch)
    return backbone, ClassifierHead(backbone.out_channels, num_classes, dropout)
