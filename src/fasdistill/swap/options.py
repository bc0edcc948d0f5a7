"""What a SWAP measurement runs and how: runtimes, threads, batch, time bounds, bootstrap."""

from __future__ import annotations

from dataclasses import dataclass, field

from fasdistill.errors import InputError
from fasdistill.export.formats import DEFAULT_FORMATS, FORMATS
from fasdistill.metrics.bootstrap import check_resamples
from fasdistill.swap.power import DeviceProfile

# Every export format, PyTorch eager on the CPU, and PyTorch eager on the current GPU
# (energy from NVML).
RUNTIMES = (*FORMATS, "pytorch", "pytorch-cuda")
DEFAULT_RUNTIMES = (*DEFAULT_FORMATS, "pytorch")  # the first is the headline runtime
AXES = ("speed", "weight", "accuracy", "power")


@dataclass
class SwapOptions:
    """How to measure; defaults follow a phone: batch 1 on one big core."""

    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    threads: int = 1
    batch: int = 8  # a second batch size besides 1
    latency_runs: int = 200
    latency_seconds: float = 3.0  # at least this long per runtime and batch size ...
    bootstrap: int = 1000
    confidence: float = 0.95
    profile: DeviceProfile = field(default_factory=DeviceProfile)
    score_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AXES, 1.0))
    # ... and at most this long per model, runtime and batch size, whatever the run count
    latency_max_seconds: float = 15.0

    def validate(self) -> None:
        """Refuse options that cannot be measured, each named, before any work starts."""
        unknown = sorted(set(self.runtimes) - set(RUNTIMES))
        if unknown or not self.runtimes:
            raise InputError(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")
        if self.threads < 1 or self.batch < 1 or self.latency_runs < 1:
            raise InputError("threads, batch and latency runs must be >= 1")
        if self.latency_seconds < 0:
            raise InputError("latency seconds must be >= 0")
        if not self.latency_max_seconds > 0 or self.latency_max_seconds < self.latency_seconds:
            raise InputError(
                f"the latency cap ({self.latency_max_seconds} s) must be > 0 and at least the "
                f"minimum latency time ({self.latency_seconds} s)"
            )
        if not 0.0 < self.confidence < 1.0:
            raise InputError(f"confidence must lie in (0, 1), got {self.confidence}")
        check_resamples(self.bootstrap, self.confidence)
        bad = sorted(set(self.score_weights) - set(AXES))
        if bad or any(w < 0 for w in self.score_weights.values()):
            raise InputError(f"SWAP score weights take keys {AXES} and values >= 0, got {bad}")
