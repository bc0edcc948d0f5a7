"""Latency measured the way shared, noisy machines allow: interleaved, many runs, medians.

Models compared with each other run in one process, alternately (A, B, A, B, ...),
so drift of the machine (other jobs, frequency scaling) hits all of them alike and
their ratios stay meaningful even when the absolute figures move. A time cap bounds
the loop for slow models (a 256-px third-party network at batch 8); the run count
reached and whether the cap cut the loop short are part of the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from fasdistill.utils.text import failure_reason


@dataclass(frozen=True)
class Latency:
    """Per-call latency statistics of one model in milliseconds, and its throughput."""

    runs: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    fps: float  # calls per second at the median latency, times the batch size
    capped: bool = False  # the time cap stopped the loop before the asked run count

    @classmethod
    def from_times(cls, seconds: list[float], batch: int = 1, capped: bool = False) -> Latency:
        ms = np.asarray(seconds) * 1e3
        median = float(np.median(ms))
        return cls(
            runs=len(ms),
            median_ms=median,
            p95_ms=float(np.percentile(ms, 95)),
            p99_ms=float(np.percentile(ms, 99)),
            mean_ms=float(ms.mean()),
            fps=1e3 * batch / median,
            capped=capped,
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def interleaved_latency(
    calls: dict[str, Callable[[], object]],
    min_runs: int = 200,
    min_seconds: float = 3.0,
    warmup: int = 10,
    batch: int = 1,
    max_seconds: float | None = None,
    failed: dict[str, str] | None = None,
) -> dict[str, Latency]:
    """Time each call alternately until every one ran ``min_runs`` times and ``min_seconds`` passed.

    ``calls`` maps a name to a zero-argument function doing one inference; the
    first ``warmup`` rounds are not timed (allocations, lazy initialisation).
    ``max_seconds`` bounds the whole loop, warm-up included (at least one warm-up
    and one timed round always run): a slow model stops there with the runs it
    reached, marked ``capped``. With ``failed`` given, a call that raises is
    dropped from the loop and its reason recorded there (the others go on);
    without it the exception propagates.
    """
    if not calls:
        raise ValueError("nothing to time")
    live = dict(calls)
    start = time.perf_counter()

    def run(name: str) -> float | None:
        t0 = time.perf_counter()
        try:
            live[name]()
        except Exception as exc:  # a runtime failing mid-run: drop it, keep the rest
            if failed is None:
                raise
            failed[name] = f"failed while timing: {failure_reason(exc)}"
            del live[name]
            return None
        return time.perf_counter() - t0

    def over(cap_share: float = 1.0) -> bool:
        return max_seconds is not None and time.perf_counter() - start >= cap_share * max_seconds

    for round_ in range(warmup):
        if round_ > 0 and over(0.2):  # warm-up takes at most a fifth of the cap
            break
        for name in list(live):
            run(name)
    times: dict[str, list[float]] = {name: [] for name in live}
    timed_start = time.perf_counter()
    rounds = 0
    capped = False
    while live and (rounds < min_runs or time.perf_counter() - timed_start < min_seconds):
        if rounds > 0 and over():
            capped = rounds < min_runs
            break
        for name in list(live):
            seconds = run(name)
            if seconds is not None:
                times[name].append(seconds)
        rounds += 1
    return {
        name: Latency.from_times(t, batch, capped=capped)
        for name, t in times.items()
        if name in live and t
    }
