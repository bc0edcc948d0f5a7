"""The search space: which SearchNets (architecture string + input side) a search may try.

Per stage: block type (dense or inverted residual; the first stage is dense), kernel,
width, depth and expansion; and the input side. Candidates are drawn at random
(seeded) and refined by mutating one choice of a good one. The hand-made swapnet is
the point ``d3w32n1-d3w64n2-d3w96n2-d3w128n2`` at 64 px.
"""

from __future__ import annotations

import random
from dataclasses import replace

from pydantic import Field, model_validator

from fasdistill.models.searchnet import Stage, format_arch, parse_arch
from fasdistill.schema import Section


class SearchSpace(Section):
    """Choices per stage (lists index the stages) and of the input side."""

    resolutions: list[int] = Field(default_factory=lambda: [32, 40, 48, 56, 64, 80, 96])
    widths: list[list[int]] = Field(
        default_factory=lambda: [
            [8, 16, 24, 32],
            [16, 24, 32, 48, 64],
            [24, 32, 48, 64, 96],
            [32, 48, 64, 96, 128],
        ]
    )
    depths: list[list[int]] = Field(default_factory=lambda: [[1], [1, 2], [1, 2, 3], [1, 2]])
    kernels: list[int] = Field(default_factory=lambda: [3, 5])
    expansions: list[int] = Field(default_factory=lambda: [2, 3, 4])
    types: list[str] = Field(default_factory=lambda: ["d", "i"])

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        if len(self.widths) != len(self.depths) or not self.widths:
            raise ValueError("widths and depths need one list per stage, the same number of stages")
        if any(not w for w in self.widths) or any(not d for d in self.depths):
            raise ValueError("every stage needs at least one width and one depth")
        if any(not 16 <= r <= 512 for r in self.resolutions) or not self.resolutions:
            raise ValueError("resolutions must be sides in 16-512 px")
        if not set(self.types) <= {"d", "i"} or not self.types:
            raise ValueError("types are 'd' (dense) and/or 'i' (inverted residual)")
        if any(k % 2 == 0 for k in self.kernels) or not self.kernels:
            raise ValueError("kernels must be odd")
        return self

    @property
    def stages(self) -> int:
        return len(self.widths)

    def sample(self, rng: random.Random) -> tuple[str, int]:
        """One architecture and input side drawn uniformly, choice by choice."""
        stages = tuple(self._stage(i, rng) for i in range(self.stages))
        return format_arch(stages), rng.choice(self.resolutions)

    def _stage(self, i: int, rng: random.Random) -> Stage:
        kind = "d" if i == 0 else rng.choice(self.types)
        return Stage(
            kind,
            rng.choice(self.kernels),
            rng.choice(self.widths[i]),
            rng.choice(self.depths[i]),
            rng.choice(self.expansions) if kind == "i" else 1,
        )

    def mutate(self, arch: str, size: int, rng: random.Random) -> tuple[str, int]:
        """A neighbour: one choice (a stage's type, kernel, width, depth or expansion, or
        the input side) changed to another value of the space."""
        stages = list(parse_arch(arch))
        while True:
            gene = rng.randrange(self.stages * 5 + 1)
            if gene == self.stages * 5:
                others = [r for r in self.resolutions if r != size]
                if others:
                    return arch, rng.choice(others)
                continue
            i, field = divmod(gene, 5)
            stage = stages[i]
            if field == 0:
                options = [t for t in self.types if t != stage.type and i > 0]
                if options:
                    kind = options[0]
                    exp = rng.choice(self.expansions) if kind == "i" else 1
                    stages[i] = replace(stage, type=kind, expansion=exp)
                    return format_arch(tuple(stages)), size
            else:
                name, values = [
                    ("kernel", self.kernels),
                    ("width", self.widths[i]),
                    ("depth", self.depths[i]),
                    ("expansion", self.expansions if stage.type == "i" else []),
                ][field - 1]
                options = [v for v in values if v != getattr(stage, name)]
                if options:
                    stages[i] = replace(stage, **{name: rng.choice(options)})
                    return format_arch(tuple(stages)), size

    def contains(self, arch: str, size: int) -> bool:
        """Whether ``arch`` at ``size`` is a point of this space."""
        stages = parse_arch(arch)
        if len(stages) != self.stages or size not in self.resolutions:
            return False
        for i, s in enumerate(stages):
            if s.width not in self.widths[i] or s.depth not in self.depths[i]:
                return False
            if s.kernel not in self.kernels or s.type not in ({"d"} if i == 0 else self.types):
                return False
            if s.type == "i" and s.expansion not in self.expansions:
                return False
        return True
