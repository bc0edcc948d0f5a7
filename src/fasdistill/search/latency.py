"""Per-block latency tables for a runtime, and whole-model timing to check them against.

A SearchNet's latency on a runtime is estimated without building it: each of its
layers (:class:`~fasdistill.models.searchnet.Block`) is exported alone to that
runtime, as ``block -> global average pool``, and timed interleaved with a
reference that only pools the block's output. The difference is the block's
time; the per-call overhead, the pooling and the output copy cancel. A model's
estimate is the sum over its blocks plus its head (pool + linear classifier on the
last map, which carries the per-call overhead once).

The table is built on the machine, runtime and thread count it describes, and only
for the blocks asked for; it grows as a search needs more (saved after every entry,
so an interrupted build resumes). :func:`check_table` times whole models and
reports the estimate's error, which is the table's only warrant.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fasdistill.errors import InputError
from fasdistill.export.formats import FORMATS, REGISTRY, Conversion
from fasdistill.models.searchnet import Block, arch_blocks
from fasdistill.utils.atomic import atomic_write_json
from fasdistill.utils.latency import interleaved_latency
from fasdistill.utils.machine import machine

Log = Callable[[str], None]
# Every export format, and PyTorch eager on the CPU.
RUNTIMES = (*FORMATS, "pytorch")
TABLE_VERSION = 2  # 2: blocks timed in interleaved groups
# What the exporters write beside a probe: a probe is never scored or deployed.
_PROBE_META: dict[str, Any] = {
    "model": "latency-probe",
    "role": "student",
    "classes": ["bonafide", "attack"],
    "crop_scale": 1.0,
    "colour_order": "RGB",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "threshold": 0.5,
    "threshold_criterion": "none (latency probe)",
    "threshold_level": "frame",
}


class _Pooled(nn.Module):
    """``body`` then a global average pool: an (N, C) output every exporter accepts."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)


class _Head(nn.Module):
    """Pool + classifier. Named attributes, not an ``nn.Sequential``: pnnx writes each
    module's path as a Python name, and a path that starts with a digit ("0.pool") is
    not one (its ncnn conversion then fails with a SyntaxError)."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.pooled = _Pooled(nn.Identity())
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pooled(x))


def head_key(channels: int, side: int, classes: int) -> str:
    return f"head c{channels}@{side} k{classes}"


def check_runtime(runtime: str) -> None:
    """Refuse a runtime the table cannot time here, naming why."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime != "pytorch" and not REGISTRY[runtime].available():
        raise InputError(f"runtime {runtime!r}: {REGISTRY[runtime].missing_reason()}")


def runtime_call(
    module: nn.Module, channels: int, side: int, runtime: str, threads: int, work: Path
) -> Callable[[np.ndarray], object]:
    """``module`` (input (1, channels, side, side)) loaded in ``runtime``: a call on an array.

    Exported with the registry's own converters, so a probe runs exactly as an
    exported model does (BN folded, the runtime's fusions); quantized formats are
    calibrated on random inputs, which sets ranges but not speed.
    """
    module = module.eval()
    if runtime == "pytorch":
        torch.set_num_threads(threads)

        def call(x: np.ndarray) -> object:
            with torch.inference_mode():
                return module(torch.from_numpy(x))

        return call
    entry = REGISTRY[runtime]
    meta = _PROBE_META | {"input_size": side, "input_channels": channels}
    calibration = None
    if entry.quantized:
        rng = np.random.default_rng(0)
        calibration = rng.standard_normal((8, channels, side, side)).astype(np.float32)
    source = None
    if entry.source is not None:
        source_entry = REGISTRY[entry.source]
        source = work / source_entry.file_name
        source_entry.convert(Conversion(module, meta), source)
    path = work / entry.file_name
    with torch.no_grad():
        entry.convert(Conversion(module, meta, calibration=calibration, source=source), path)
    return entry.open_runner(path, threads).run


class LatencyTable:
    """Block and head latencies (ms) on one runtime, thread count and machine, as JSON."""

    def __init__(self, path: Path, runtime: str, threads: int) -> None:
        self.path, self.runtime, self.threads = Path(path), runtime, threads
        self.entries: dict[str, dict[str, float]] = {}
        # measured ~= scale * (sum of entries) + offset_ms, fitted on whole models
        self.fit: dict[str, Any] = {"scale": 1.0, "offset_ms": 0.0, "models": []}
        self.machine = machine()
        if self.path.exists():
            data = json.loads(self.path.read_text())
            mine = {"runtime": runtime, "threads": threads, "version": TABLE_VERSION}
            theirs = {k: data.get(k) for k in mine}
            if theirs != mine:
                raise InputError(
                    f"{self.path}: a latency table for {theirs}, not {mine}; "
                    "use another --out or delete it"
                )
            self.entries = data["entries"]
            self.fit = data.get("fit", self.fit)

    def save(self) -> None:
        atomic_write_json(
            self.path,
            {
                "version": TABLE_VERSION,
                "runtime": self.runtime,
                "threads": self.threads,
                "machine": self.machine,
                "method": "block -> pool, minus pool alone; medians (ms) of groups of "
                "probes timed interleaved",
                "fit": self.fit,
                "entries": dict(sorted(self.entries.items())),
            },
        )

    def estimate(self, arch: str, input_size: int, classes: int) -> float:
        """The estimated latency (ms) of SearchNet ``arch`` at ``input_size`` (fit applied)."""
        fit = self.fit
        return fit["scale"] * self.raw_estimate(arch, input_size, classes) + fit["offset_ms"]

    def raw_estimate(self, arch: str, input_size: int, classes: int) -> float:
        """The sum of the table's entries for ``arch`` at ``input_size`` (ms)."""
        blocks = arch_blocks(arch, input_size)
        last = blocks[-1]
        keys = [b.key for b in blocks] + [head_key(last.out_channels, last.out_side, classes)]
        missing = [k for k in keys if k not in self.entries]
        if missing:
            raise InputError(f"{self.path}: no entry for {missing[:3]}; build the table first")
        return sum(self.entries[k]["ms"] for k in keys)

    def build(
        self,
        archs: Iterable[tuple[str, int]],
        classes: int,
        runs: int = 100,
        seconds: float = 1.0,
        log: Log = print,
        group: int = 16,
    ) -> int:
        """Time every block and head of ``(arch, input_size)`` pairs not yet in the table.

        ``group`` entries are timed in one interleaved loop; the table is saved after
        each group (an interrupted build resumes). Returns how many were added.
        """
        check_runtime(self.runtime)
        todo: dict[str, tuple[nn.Module, nn.Module, int, int, int, int]] = {}
        for arch, size in archs:
            blocks = arch_blocks(arch, size)
            for block in blocks:
                if block.key not in self.entries and block.key not in todo:
                    todo[block.key] = _block_probe(block)
            last = blocks[-1]
            key = head_key(last.out_channels, last.out_side, classes)
            if key not in self.entries and key not in todo:
                todo[key] = _head_probe(last.out_channels, last.out_side, classes)
        keys = list(todo)
        for start in range(0, len(keys), group):
            chunk = keys[start : start + group]
            with tempfile.TemporaryDirectory(prefix="fasdistill-lut-") as tmp:
                calls: dict[str, Callable[[], object]] = {}
                for i, key in enumerate(chunk):
                    probe, reference, c_in, side, c_ref, side_ref = todo[key]
                    for role, module, c, s in (
                        ("probe", probe, c_in, side),
                        ("ref", reference, c_ref, side_ref),
                    ):
                        if module is None:
                            continue
                        work = Path(tmp) / f"{i}-{role}"
                        work.mkdir()
                        call = runtime_call(module, c, s, self.runtime, self.threads, work)
                        x = np.zeros((1, c, s, s), np.float32)
                        calls[f"{role}:{key}"] = lambda call=call, x=x: call(x)
                # A group's probes run interleaved, as a whole model's layers follow one
                # another: timed back to back alone, a block finds its code and data in
                # the caches and runs faster than it does inside a model.
                timed = interleaved_latency(calls, min_runs=runs, min_seconds=seconds)
            for key in chunk:
                entry = {"probe_ms": timed[f"probe:{key}"].median_ms}
                if f"ref:{key}" in timed:
                    entry["reference_ms"] = timed[f"ref:{key}"].median_ms
                entry["ms"] = entry["probe_ms"] - entry.get("reference_ms", 0.0)
                self.entries[key] = entry
            self.save()
            log(f"latency table {self.runtime}: {start + len(chunk)}/{len(keys)} new entries")
        return len(todo)


def fit_table(
    table: LatencyTable,
    archs: list[tuple[str, int]],
    classes: int,
    runs: int = 200,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """Fit ``measured = sum of entries + offset`` on whole models and store it in the table.

    A whole graph costs a little more than its blocks timed one by one (the input and
    output copies, the arena's allocations, reorders between layers): a constant per
    model, the median over the fit models. A scale is not fitted: on the few models
    a fit can afford it follows their noise (checked: a fitted scale doubled the error
    on other models), while the sum itself tracks size.
    """
    measured = time_archs(archs, classes, table.runtime, table.threads, runs, seconds)
    raw = np.array([table.raw_estimate(a, s, classes) for a, s in archs])
    got = np.array([measured[point] for point in archs])
    offset = float(np.median(got - raw))
    table.fit = {
        "scale": 1.0,
        "offset_ms": offset,
        "models": [
            {"arch": a, "input_size": s, "sum_ms": float(r), "measured_ms": float(m)}
            for (a, s), r, m in zip(archs, raw, got, strict=True)
        ],
    }
    table.save()
    return table.fit


def _block_probe(block: Block) -> tuple[nn.Module, nn.Module, int, int, int, int]:
    """The block then a pool, and the pool alone on the block's output (its reference)."""
    probe = _Pooled(block.build())
    reference = _Pooled(nn.Identity())
    return probe, reference, block.in_channels, block.side, block.out_channels, block.out_side


def _head_probe(
    channels: int, side: int, classes: int
) -> tuple[nn.Module, None, int, int, int, int]:
    """Pool + linear classifier on the last map: the head, with the per-call overhead."""
    return (
        _Head(channels, classes),
        None,
        channels,
        side,
        0,
        0,
    )


def time_models(
    models: dict[str, tuple[nn.Module, int]],
    runtime: str,
    threads: int,
    runs: int = 200,
    seconds: float = 2.0,
) -> dict[str, float]:
    """Batch-1 median latency (ms) of whole deployable models, interleaved in one loop."""
    check_runtime(runtime)
    with tempfile.TemporaryDirectory(prefix="fasdistill-lut-") as tmp:
        calls, inputs = {}, {}
        for i, (name, (model, size)) in enumerate(models.items()):
            work = Path(tmp) / str(i)
            work.mkdir()
            calls[name] = runtime_call(model, 3, size, runtime, threads, work)
            inputs[name] = np.zeros((1, 3, size, size), np.float32)
        timed = interleaved_latency(
            {n: (lambda c=c, a=inputs[n]: c(a)) for n, c in calls.items()},
            min_runs=runs,
            min_seconds=seconds,
        )
    return {name: t.median_ms for name, t in timed.items()}


def time_archs(
    archs: list[tuple[str, int]],
    classes: int,
    runtime: str,
    threads: int,
    runs: int = 200,
    seconds: float = 2.0,
) -> dict[tuple[str, int], float]:
    """Batch-1 median latency (ms) of SearchNets ``(arch, input_size)``, interleaved.

    Latency does not depend on the weights' values, so freshly built models stand
    for trained ones.
    """
    from fasdistill.models import build_model

    models = {
        f"{arch}@{size}": (
            build_model("searchnet", num_classes=classes, arch=arch).deployable(),
            size,
        )
        for arch, size in archs
    }
    measured = time_models(models, runtime, threads, runs, seconds)
    return {point: measured[f"{point[0]}@{point[1]}"] for point in archs}


def check_table(
    table: LatencyTable,
    archs: list[tuple[str, int]],
    classes: int,
    runs: int = 200,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """Each architecture's estimate against its whole-model timing: the table's error.

    The models are timed interleaved in one loop; the error of each is
    ``estimate / measured - 1``; the summary is the median absolute error.
    """
    measured = time_archs(archs, classes, table.runtime, table.threads, runs, seconds)
    rows = []
    for arch, size in archs:
        estimate = table.estimate(arch, size, classes)
        rows.append(
            {
                "arch": arch,
                "input_size": size,
                "estimate_ms": estimate,
                "measured_ms": measured[arch, size],
                "error": estimate / measured[arch, size] - 1.0,
            }
        )
    errors = [abs(r["error"]) for r in rows]
    return {
        "runtime": table.runtime,
        "threads": table.threads,
        "models": rows,
        "median_abs_error": statistics.median(errors),
        "max_abs_error": max(errors),
    }
