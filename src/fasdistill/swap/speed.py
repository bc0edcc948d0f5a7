"""Latency measured the way shared, noisy machines allow: interleaved, many runs, medians.

Models compared with each other run in one process, alternately (A, B, A, B, ...),
so drift of the machine (other jobs, frequency scaling) hits all of them alike and
their ratios stay meaningful even when the absolute figures move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Per-call latency statistics of one model in milliseconds, and its throughput."""

    runs: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    fps: float  # calls per second at the median latency, times the batch size

    @classmethod
    def from_times(cls, seconds: list[float], batch: int = 1) -> Latency:
        ms = np.asarray(seconds) * 1e3
        median = float(np.median(ms))
        return cls(
            runs=len(ms),
            median_ms=median,
            p95_ms=float(np.percentile(ms, 95)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            fps=1e3 * batch / median,
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def interleaved_latency(
    calls: dict[str, Callable[[], object]],
    min_runs: int = 200,
    min_seconds: float = 3.0,
    warmup: int = 10,
    batch: int = 1,
) -> dict[str, Latency]:
    """Time each call alternately until every one ran ``min_runs`` times and ``min_seconds`` passed.

    ``calls`` maps a name to a zero-argument function doing one inference; the
    first ``warmup`` rounds are not timed (allocations, lazy initialisation).
    """
    if not calls:
        raise ValueError("nothing to time")
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_runs or time.perf_counter() - start < min_seconds:
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: Latency.from_times(t, batch) for name, t in times.items()}
