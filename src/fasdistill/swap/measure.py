"""The SWAP measurement: Speed, Weight, Accuracy and Power of models, side by side.

The first model is the reference (the teacher); every other figure is also given
as a ratio to it. Models are exported and checked (:mod:`fasdistill.export`), then
timed per runtime with all models interleaved in one process, so their ratios
survive a noisy machine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropDataset, CropIndex, read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.engine.evaluation import score_split
from fasdistill.errors import InputError
from fasdistill.export.pipeline import (
    FILE_NAMES,
    ExportOptions,
    eer_threshold,
    export_checkpoint,
    metrics_at,
    runtime_scorer,
    score_splits,
    split_metrics,
    torch_scorer,
)
from fasdistill.metrics.bootstrap import paired_acer_samples, unit_weights, weighted_auc
from fasdistill.metrics.scores import ScoreSet, write_scores
from fasdistill.swap import gpu
from fasdistill.swap.foreign import ForeignModel, onnx_weight
from fasdistill.swap.machine import machine
from fasdistill.swap.power import (
    DeviceProfile,
    active_power_energy_j,
    compute_energy_j,
    inferences_per_battery_percent,
    measure_rapl_j,
)
from fasdistill.swap.speed import interleaved_latency
from fasdistill.swap.weight import bytes_moved, measure_weight
from fasdistill.utils.ort import open_session

RUNTIMES = (
    "onnx",
    "onnx-int8",
    "pytorch",
    "pte",
    "pte-int8",
    "tflite",
    "tflite-int8",
    "ncnn",
    "pytorch-cuda",  # eager on the current GPU; energy from NVML
)
DEFAULT_RUNTIMES = ("onnx", "onnx-int8", "pytorch")  # the first is the headline runtime
AXES = ("speed", "weight", "accuracy", "power")


@dataclass
class SwapOptions:
    """How to measure; defaults follow a phone: batch 1 on one big core."""

    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    threads: int = 1
    batch: int = 8  # a second batch size besides 1
    latency_runs: int = 200
    latency_seconds: float = 3.0
    bootstrap: int = 1000
    confidence: float = 0.95
    profile: DeviceProfile = field(default_factory=DeviceProfile)
    score_weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(AXES, 1.0))

    def validate(self) -> None:
        unknown = sorted(set(self.runtimes) - set(RUNTIMES))
        if unknown or not self.runtimes:
            raise InputError(f"unknown runtimes {unknown}; choose from {', '.join(RUNTIMES)}")
        if self.threads < 1 or self.batch < 1 or self.latency_runs < 1:
            raise InputError("threads, batch and latency runs must be >= 1")
        bad = sorted(set(self.score_weights) - set(AXES))
        if bad or any(w < 0 for w in self.score_weights.values()):
            raise InputError(f"SWAP score weights take keys {AXES} and values >= 0, got {bad}")


def labels_for(paths: list[Path]) -> list[str]:
    """Short unique names: the fewest trailing run-directory parts that tell models apart.

    ``runs/intra/kd/seed0/checkpoints/best.pt`` is ``seed0`` alone, ``kd/seed0`` beside
    ``scratch/seed0``; a file outside a ``checkpoints`` folder is named by its path.
    """
    parts = []
    for path in paths:
        path = Path(path)
        base = path.parent.parent if path.parent.name == "checkpoints" else path.with_suffix("")
        parts.append(base.resolve().parts)
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label}#{i}" for i, label in enumerate(labels)]  # the same file twice


def run_swap(
    checkpoints: list[Path],
    index_path: Path,
    out: Path,
    options: SwapOptions | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure every model; returns the ``swap.json`` content (the caller writes reports)."""
    options = options or SwapOptions()
    options.validate()
    if not checkpoints:
        raise InputError("name at least one model (the first is the reference)")
    index = read_crop_index(index_path)
    if not any(r["split"] == "test" for r in index.rows):
        raise InputError(f"{index_path}: no test crops; SWAP compares models on the test split")
    torch.set_num_threads(options.threads)
    formats = tuple(r for r in options.runtimes if not r.startswith("pytorch"))
    device = gpu.require_cuda() if "pytorch-cuda" in options.runtimes else None
    models: list[dict[str, Any]] = []
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]] = {r: {} for r in options.runtimes}
    test_scores: dict[str, tuple[ScoreSet, float]] = {}
    foreign = [p for p in checkpoints if Path(p).suffix.lower() == ".onnx"]
    if foreign and options.runtimes[0] != "onnx":
        raise InputError(
            f"{foreign[0]}: a third-party ONNX model runs only in ONNX Runtime; make onnx the "
            "first (headline) runtime"
        )
    for path, label in zip(checkpoints, labels_for(checkpoints), strict=True):
        path = Path(path)
        if path.suffix.lower() == ".onnx":
            entry, scores = _foreign(path, label, index, options, callers)
        else:
            entry, scores = _ours(
                path, label, index_path, index, out, options, formats, callers, device
            )
        test_scores[label] = (scores, entry["threshold"])
        score_file = write_scores(out / "scores" / f"{label.replace('/', '__')}.test.csv", scores)
        entry["test_scores"] = str(score_file.relative_to(out))
        entry["test"] = entry["accuracy"][entry["primary_runtime"]]["test"]
        models.append(entry)
        log(f"{label}: {entry['model']}, {entry['weight']['params'] / 1e6:.3f} M params")
    latency = _time_all(models, callers, options, log)
    for m in models:
        m["latency"] = {
            r: latency[r][m["label"]] for r in options.runtimes if latency[r][m["label"]]
        }
        m["power"] = _power(m, callers, options)
    _ratios(models, test_scores, options)
    return {
        "reference": models[0]["label"],
        "index": str(index_path),
        "machine": machine(),
        "options": asdict(options),
        "models": models,
        "pareto": pareto_front(models, options.runtimes),
    }


def _ours(
    path: Path,
    label: str,
    index_path: Path,
    index: CropIndex,
    out: Path,
    options: SwapOptions,
    formats: tuple[str, ...],
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]],
    device: torch.device | None = None,
) -> tuple[dict[str, Any], ScoreSet]:
    """A checkpoint of ours: exported to every asked format, scored in each runtime
    (and on ``device``, a GPU, when given)."""
    model, meta = load_deployable(path)
    size = int(meta["input_size"])
    if formats:
        export_options = ExportOptions(formats=formats, threads=options.threads, latency_runs=0)
        export = export_checkpoint(path, index_path, out / "artifacts" / label, export_options)
    else:
        accuracy = split_metrics(torch_scorer(model), index, size, meta, meta["threshold"])
        export = {"formats": {}, "accuracy": {"pytorch": accuracy}}
    weight = measure_weight(model, size)
    scores = score_split(model, CropDataset(index, "test", size), torch.device("cpu"), 64, 0)
    if "pytorch" in callers:
        callers["pytorch"][label] = torch_scorer(model)
    for fmt in formats:
        path_fmt = out / "artifacts" / label / FILE_NAMES[fmt]
        callers[fmt][label] = runtime_scorer(fmt, path_fmt, options.threads)
    if device is not None:  # scored on the GPU too: its accuracy is reported, not assumed
        callers["pytorch-cuda"][label] = scorer = gpu.cuda_scorer(model, device)
        export["accuracy"]["pytorch-cuda"] = split_metrics(
            scorer, index, size, meta, meta["threshold"]
        )
    entry = {
        "label": label,
        "source": "fasdistill checkpoint",
        "checkpoint": str(path),
        "model": meta["model"],
        "role": meta["role"],
        "input_size": size,
        "threshold": float(meta["threshold"]),
        "primary_runtime": "pytorch" if "pytorch" in export["accuracy"] else formats[0],
        "weight": weight.as_dict()
        | {"bytes": {f: e["bytes"] for f, e in export["formats"].items()}},
        "accuracy": export["accuracy"],
        "export": {f: e["parity"] for f, e in export["formats"].items()},
    }
    return entry, scores


def _foreign(
    path: Path,
    label: str,
    index: CropIndex,
    options: SwapOptions,
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]],
) -> tuple[dict[str, Any], ScoreSet]:
    """A third-party ONNX model: its own preprocessing, a dev threshold, ONNX Runtime only."""
    model = ForeignModel(path, index)
    size = model.input_size
    meta = {"threshold_level": "frame"}
    sets = score_splits(model.score, index, size)  # dev and test scored once each
    threshold = eer_threshold(sets["dev"], meta)
    accuracy = metrics_at(sets, meta, threshold)
    scores = sets["test"]
    weight = onnx_weight(path, size)
    session = open_session(path, options.threads)
    name = session.get_inputs()[0].name
    callers["onnx"][label] = lambda x: session.run(None, {name: x})
    entry = {
        "label": label,
        "source": f"third-party ONNX ({model.source})",
        "checkpoint": str(path),
        "model": path.name,
        "role": "external",
        "input_size": size,
        "threshold": threshold,
        "primary_runtime": "onnx",
        "weight": {
            "params": weight["params"],
            "macs": weight["macs"],
            "activation_elements": 0,  # not known without running it layer by layer
            "bytes": {"onnx": path.stat().st_size},
        },
        "accuracy": {"onnx": accuracy},
        "export": {},
    }
    return entry, scores


def _time_all(
    models: list[dict[str, Any]],
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]],
    options: SwapOptions,
    log: Callable[[str], None],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per runtime and batch size, every model timed in one interleaved loop."""
    out: dict[str, dict[str, dict[str, Any]]] = {
        r: {m["label"]: {} for m in models} for r in callers
    }
    for runtime, calls in callers.items():
        for batch in sorted({1, options.batch}):
            inputs = {
                m["label"]: np.zeros((batch, 3, m["input_size"], m["input_size"]), np.float32)
                for m in models
            }
            timed = interleaved_latency(
                {label: (lambda c=c, x=inputs[label]: c(x)) for label, c in calls.items()},
                min_runs=options.latency_runs,
                min_seconds=options.latency_seconds,
                batch=batch,
            )
            for label, stats in timed.items():
                out[runtime][label][f"batch{batch}"] = stats.as_dict()
            medians = ", ".join(f"{k} {v.median_ms:.3f} ms" for k, v in timed.items())
            log(f"{runtime} batch {batch}: {medians}")
    return out


def _power(
    model: dict[str, Any],
    callers: dict[str, dict[str, Callable[[np.ndarray], Any]]],
    options: SwapOptions,
) -> dict[str, Any]:
    """Energy per batch-1 inference per runtime: RAPL when readable, else both models."""
    weight, profile = model["weight"], options.profile
    size = model["input_size"]
    one = np.zeros((1, 3, size, size), np.float32)
    out = {}
    for runtime in model["latency"]:
        int8 = runtime.endswith("int8")
        latency_s = model["latency"][runtime]["batch1"]["median_ms"] / 1e3
        moved = bytes_moved(weight["params"], weight["activation_elements"], 1 if int8 else 4)
        compute = compute_energy_j(weight["macs"], moved, int8, profile)
        active = active_power_energy_j(latency_s, profile)
        entry = {
            "modelled_compute_j": compute,
            "modelled_compute_label": "modelled (compute: MACs x pJ/MAC + DRAM bytes x pJ/byte)"
            if weight["activation_elements"]
            else "modelled (compute: MACs and weights only; activation traffic unknown)",
            "modelled_active_j": active,
            "modelled_active_label": "modelled (active power x measured latency)",
            "measured_j": None,
        }
        calls = callers[runtime][model["label"]]
        runs = max(50, options.latency_runs)
        if runtime == "pytorch-cuda":
            device = gpu.require_cuda()
            measured = gpu.measure_nvml_j(lambda c=calls: c(one), device, runs)
        else:
            measured = measure_rapl_j(lambda c=calls: c(one), runs=runs)
        if measured is not None:
            entry["measured_j"] = measured["energy_j"]
            entry["measured_label"] = measured["label"]
        # Unmeasured, a CPU runtime takes the profile's core power x latency; a GPU one the
        # compute model (a phone core's watts say nothing about a GPU).
        on_gpu = runtime == "pytorch-cuda"
        kind = "compute" if on_gpu else "active"
        if measured is not None:
            energy, label = measured["energy_j"], measured["label"]
            source = f"measured, {'NVML' if on_gpu else 'RAPL'}"
        else:
            energy, label = entry[f"modelled_{kind}_j"], entry[f"modelled_{kind}_label"]
            source = f"modelled, {'compute' if on_gpu else 'active power'}"
        entry |= {"energy_j": energy, "energy_label": label, "energy_source": source}
        entry["inferences_per_battery_percent"] = inferences_per_battery_percent(energy)
        out[runtime] = entry
    return out


def _ratios(
    models: list[dict[str, Any]],
    test_scores: dict[str, tuple[ScoreSet, float]],
    options: SwapOptions,
) -> None:
    """Ratios to the reference, retention with paired bootstrap intervals, SWAP score."""
    ref = models[0]
    ref_scores, ref_threshold = test_scores[ref["label"]]
    alpha = (1 - options.confidence) / 2
    for m in models:
        scores, threshold = test_scores[m["label"]]
        acer_t = ref["test"]["acer"]
        acer_s = m["test"]["acer"]
        auc_t = ref["test"]["auc"]
        auc_s = m["test"]["auc"]
        retention = {
            "retention": (1 - acer_s) / (1 - acer_t),
            "auc_ratio": auc_s / auc_t,
            "acer_difference": acer_s - acer_t,
        }
        if options.bootstrap > 0 and len(scores) == len(ref_scores):
            s_acer, t_acer = paired_acer_samples(
                scores, threshold, ref_scores, ref_threshold, n_resamples=options.bootstrap
            )
            weights = unit_weights(ref_scores, "subject", options.bootstrap)
            samples = {
                "retention": (1 - s_acer) / (1 - t_acer),
                "auc_ratio": weighted_auc(scores, weights) / weighted_auc(ref_scores, weights),
                "acer_difference": s_acer - t_acer,
            }
            for key, values in samples.items():
                valid = values[np.isfinite(values)]
                retention[f"{key}_ci"] = [float(v) for v in np.quantile(valid, [alpha, 1 - alpha])]
        ratios = {"accuracy": retention}
        for runtime in options.runtimes:
            if runtime not in m["latency"] or runtime not in ref["latency"]:
                continue  # a third-party model runs in ONNX Runtime only
            lat_t = ref["latency"][runtime]["batch1"]["median_ms"]
            lat_s = m["latency"][runtime]["batch1"]["median_ms"]
            energy_t = ref["power"][runtime]["energy_j"]
            energy_s = m["power"][runtime]["energy_j"]
            ratios[runtime] = {"speedup": lat_t / lat_s, "energy_ratio": energy_s / energy_t}
        ratios["params_ratio"] = m["weight"]["params"] / ref["weight"]["params"]
        ratios["macs_ratio"] = m["weight"]["macs"] / ref["weight"]["macs"]
        m["vs_reference"] = ratios
        m["swap_score"] = swap_score(ratios, options)


def swap_score(ratios: dict[str, Any], options: SwapOptions) -> float:
    """Weighted geometric mean of the four gains over the reference (the reference scores 1).

    speed: speed-up on the first runtime listed; weight: 1 / params ratio;
    accuracy: retention; power: 1 / energy ratio on the same runtime.
    """
    runtime = options.runtimes[0]
    gains = {
        "speed": ratios[runtime]["speedup"],
        "weight": 1 / ratios["params_ratio"],
        "accuracy": ratios["accuracy"]["retention"],
        "power": 1 / ratios[runtime]["energy_ratio"],
    }
    total = sum(options.score_weights.get(k, 0.0) for k in AXES)
    if total == 0:
        return 1.0
    log_sum = sum(options.score_weights.get(k, 0.0) * math.log(max(gains[k], 1e-12)) for k in AXES)
    return math.exp(log_sum / total)


def pareto_front(models: list[dict[str, Any]], runtimes: tuple[str, ...]) -> list[str]:
    """Models no other model beats on test ACER, latency, energy and size all at once."""
    runtime = runtimes[0]

    def point(m: dict[str, Any]) -> tuple[float, ...]:
        return (
            m["test"]["acer"],
            m["latency"][runtime]["batch1"]["median_ms"],
            m["power"][runtime]["energy_j"],
            float(m["weight"]["params"]),
        )

    points = {m["label"]: point(m) for m in models}
    front = []
    for label, p in points.items():
        dominated = any(
            all(o <= v for o, v in zip(q, p, strict=True)) and q != p
            for other, q in points.items()
            if other != label
        )
        if not dominated:
            front.append(label)
    return front
