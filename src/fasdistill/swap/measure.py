"""The SWAP measurement: Speed, Weight, Accuracy and Power of models, side by side.

The first model is the reference (the teacher); every other figure is also given
as a ratio to it (:mod:`fasdistill.swap.ratios`). Every model file and sidecar is
opened and checked before any work starts. Models are then exported and checked
(:mod:`fasdistill.export`), and timed per runtime with all models interleaved in
one process, so their ratios survive a noisy machine. A cascade
(:mod:`fasdistill.swap.cascade`) gets one row, timed on real test faces, its speed
the mean per face.

One failing cell never sinks the report: an artifact that is not written (its
parity gate refused it) or a runtime that fails while scoring, timing or
measuring energy leaves that model x runtime cell out, with the reason, in
``m["missing"]`` and the report's ``left_out``; everything else is measured.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropDataset, CropIndex, read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.engine.evaluation import score_split
from fasdistill.errors import InputError
from fasdistill.export.formats import FORMATS, format_of_suffix
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
from fasdistill.infer.cascade import is_cascade
from fasdistill.metrics.scores import ScoreSet, write_scores
from fasdistill.models.multimodal import channel_count
from fasdistill.swap import gpu
from fasdistill.swap.cascade import (
    CheckedCascade,
    RealFaces,
    cascade_entry,
    check_cascade,
    compute_energy,
)
from fasdistill.swap.foreign import ForeignModel
from fasdistill.swap.options import AXES, DEFAULT_RUNTIMES, RUNTIMES, SwapOptions
from fasdistill.swap.power import (
    active_power_energy_j,
    compute_energy_j,
    inferences_per_battery_percent,
    measure_rapl_j,
)
from fasdistill.swap.ratios import compare, headline_runtime, pareto_front, speed_ms
from fasdistill.swap.sensors import sensor_cost
from fasdistill.swap.weight import bytes_moved, measure_weight
from fasdistill.utils.latency import interleaved_latency
from fasdistill.utils.machine import machine
from fasdistill.utils.text import failure_reason

__all__ = ["AXES", "DEFAULT_RUNTIMES", "RUNTIMES", "SwapOptions", "labels_for", "run_swap"]
Log = Callable[[str], None]
Callers = dict[str, dict[str, Callable[[np.ndarray], Any]]]


def labels_for(paths: list[Path]) -> list[str]:
    """Short unique names: the fewest trailing run-directory parts that tell models apart.

    ``runs/intra/kd/seed0/checkpoints/best.pt`` is ``seed0`` alone, ``kd/seed0`` beside
    ``scratch/seed0``; a cascade by its folder; a file outside a ``checkpoints`` folder
    is named by its path.
    """
    parts = []
    for path in paths:
        path = Path(path)
        if is_cascade(path):
            base = path if path.is_dir() else path.parent
        elif path.parent.name == "checkpoints":
            base = path.parent.parent
        else:
            base = path.with_suffix("")
        parts.append(base.resolve().parts)
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label}#{i}" for i, label in enumerate(labels)]  # the same file twice


@dataclass
class Candidate:
    """A model opened and checked before any work: ours (model + meta), a model from
    elsewhere, or a cascade."""

    path: Path
    label: str
    model: torch.nn.Module | None = None
    meta: dict[str, Any] | None = None
    foreign: ForeignModel | None = None
    cascade: CheckedCascade | None = None


def check_models(
    checkpoints: list[Path],
    index_path: Path,
    index: CropIndex,
    options: SwapOptions,
    labels: list[str] | None = None,
) -> list[Candidate]:
    """Open every model file and sidecar, so a bad one is one line before anything is written.

    A checkpoint is loaded and its crop scale compared with the index's; a
    third-party ONNX model's sidecar is read and the model run once on a dummy
    batch (:class:`~fasdistill.swap.foreign.ForeignModel`); a cascade's members are
    opened and its runtime checked (:func:`~fasdistill.swap.cascade.check_cascade`).
    """
    candidates = []
    labels = labels or labels_for(checkpoints)
    if len(labels) != len(checkpoints) or len(set(labels)) != len(labels):
        raise InputError(f"model labels must be unique, one per model; got {labels}")
    for path, label in zip(checkpoints, labels, strict=True):
        path = Path(path)
        if is_cascade(path):
            candidates.append(Candidate(path, label, cascade=check_cascade(path, index, options)))
            continue
        if format_of_suffix(path) is not None:  # a model file from elsewhere
            model = ForeignModel(path, index, options.threads)
            if options.runtimes[0] != model.format.name:
                fmt = model.format.name
                raise InputError(
                    f"{path}: a third-party {model.format.label} model runs only in "
                    f"{model.format.runtime}; make {fmt} the first (headline) runtime"
                )
            candidates.append(Candidate(path, label, foreign=model))
            continue
        model, meta = load_deployable(path)
        if model.modalities != ("rgb",) and "pytorch" not in options.runtimes:
            raise InputError(
                f"{path}: reads {' + '.join(model.modalities)}, which only the pytorch runtime "
                "takes (export is for RGB models); add pytorch to --runtimes"
            )
        if float(meta["crop_scale"]) != float(index.scale):
            raise InputError(
                f"{path}: the model expects crops at scale {meta['crop_scale']}, the index "
                f"{index_path} has {index.scale}; prepare crops at its scale"
            )
        candidates.append(Candidate(path, label, model=model, meta=meta))
    return candidates


def _prefixed(log: Log, prefix: str, line: str) -> None:
    log(prefix + line)


def _eta(done: int, total: int, start: float) -> str:
    """Elapsed time and, from the pace so far, the time left."""
    elapsed = time.perf_counter() - start
    if done == 0:
        return "started"
    return f"{elapsed:.0f} s, about {elapsed / done * (total - done):.0f} s left"


def _scoring_progress(
    score: Callable[[np.ndarray], np.ndarray], total: int, what: str, log: Log, every: float = 10.0
) -> Callable[[np.ndarray], np.ndarray]:
    """``score`` that logs how many of ``total`` crops it scored, at most every ``every`` s.

    A 256-px third-party model can take seconds per crop on one core; this keeps the
    terminal saying where it is and how long is left.
    """
    start = last = time.perf_counter()
    done = 0

    def run(images: np.ndarray) -> np.ndarray:
        nonlocal done, last
        result = score(images)
        done += len(images)
        now = time.perf_counter()
        if now - last >= every and done < total:
            last = now
            left = (now - start) / done * (total - done)
            log(f"{what}: {done}/{total} crops scored, about {left:.0f} s left")
        return result

    return run


def run_swap(
    checkpoints: list[Path],
    index_path: Path,
    out: Path,
    options: SwapOptions | None = None,
    log: Log = print,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Measure every model; returns the ``swap.json`` content (the caller writes reports).

    ``labels`` names the models in the report (default: their run folders' shortest
    unique suffixes).
    """
    options = options or SwapOptions()
    options.validate()
    if not checkpoints:
        raise InputError("name at least one model (the first is the reference)")
    index = read_crop_index(index_path)
    if not any(r["split"] == "test" for r in index.rows):
        raise InputError(f"{index_path}: no test crops; SWAP compares models on the test split")
    device = gpu.require_cuda() if "pytorch-cuda" in options.runtimes else None
    candidates = check_models(checkpoints, index_path, index, options, labels)
    torch.set_num_threads(options.threads)
    formats = tuple(r for r in options.runtimes if r in FORMATS)
    models: list[dict[str, Any]] = []
    callers: Callers = {r: {} for r in options.runtimes}
    test_scores: dict[str, tuple[ScoreSet, float]] = {}
    start = time.perf_counter()
    for i, c in enumerate(candidates):
        step = f"[{i + 1}/{len(candidates)}] {c.label}"
        started = time.perf_counter()
        if c.cascade is not None:
            runs_in = c.cascade.runs_in
            log(f"{step}: scoring dev and test in {runs_in} ({_eta(i, len(candidates), start)})")
            prefixed = functools.partial(_prefixed, log, f"{step}: ")
            entry, scores = cascade_entry(
                c.label, c.cascade, index, options, callers, prefixed, _scoring_progress
            )
        elif c.foreign is not None:
            log(f"{step}: scoring dev and test in ONNX Runtime ({_eta(i, len(candidates), start)})")
            prefixed = functools.partial(_prefixed, log, f"{step}: ")
            entry, scores = _foreign(c, index, options, callers, prefixed)
        else:
            what = f"exporting to {', '.join(formats)} and scoring" if formats else "scoring"
            log(f"{step}: {what} ({_eta(i, len(candidates), start)})")
            entry, scores = _ours(c, index_path, index, out, options, formats, callers, device, log)
        test_scores[c.label] = (scores, entry["threshold"])
        score_file = write_scores(out / "scores" / f"{c.label.replace('/', '__')}.test.csv", scores)
        entry["test_scores"] = str(score_file.relative_to(out))
        entry["test"] = entry["accuracy"][entry["primary_runtime"]]["test"]
        models.append(entry)
        left = "".join(f"; {r} left out: {why}" for r, why in entry["missing"].items())
        took = time.perf_counter() - started
        log(
            f"{step}: {entry['model']}, {entry['weight']['params'] / 1e6:.3f} M params, "
            f"done in {took:.0f} s{left}"
        )
    latency = _time_all(models, callers, options, log)
    for m in models:
        m["latency"] = {r: latency[r][m["label"]] for r in options.runtimes if r in latency}
        m["latency"] = {r: lat for r, lat in m["latency"].items() if "batch1" in lat}
        m["power"] = _power(m, callers, options)
    headline, note = headline_runtime(models, options.runtimes)
    compare(models, test_scores, options, headline)
    swap = {
        "reference": models[0]["label"],
        "index": str(index_path),
        "machine": machine(),
        "options": asdict(options),
        "headline_runtime": headline,
        "models": models,
        "pareto": pareto_front(models, (headline,)),
        "left_out": [
            {"model": m["label"], "runtime": r, "reason": why}
            for m in models
            for r, why in m["missing"].items()
        ],
    }
    if note:
        swap["headline_note"] = note
        log(f"note: {note}")
    return swap


def _ours(
    c: Candidate,
    index_path: Path,
    index: CropIndex,
    out: Path,
    options: SwapOptions,
    formats: tuple[str, ...],
    callers: Callers,
    device: torch.device | None,
    log: Log,
) -> tuple[dict[str, Any], ScoreSet]:
    """A checkpoint of ours: exported to every asked format, scored in each runtime
    (and on ``device``, a GPU, when given). A format that is not written is a missing cell."""
    model, meta = c.model, c.meta
    assert model is not None and meta is not None
    size = int(meta["input_size"])
    missing: dict[str, str] = {}
    modalities = tuple(model.modalities)
    not_run: dict[str, str] = {}
    if modalities != ("rgb",):  # a multi-modal model: scored and timed in PyTorch only
        reads = " + ".join(modalities)
        not_run = {
            r: f"reads {reads}: export and its runtimes take RGB models only"
            for r in options.runtimes
            if r != "pytorch"
        }
        formats = ()
    if formats:
        export_options = ExportOptions(formats=formats, threads=options.threads, latency_runs=0)
        export = export_checkpoint(
            c.path,
            index_path,
            out / "artifacts" / c.label,
            export_options,
            log=lambda line: log(f"    {line}"),
        )
        missing |= {f: str(why) for f, why in export.get("failed", {}).items()}
        missing |= {f: f"skipped: {why}" for f, why in export.get("skipped", {}).items()}
    else:
        accuracy = split_metrics(
            torch_scorer(model), index, size, meta, meta["threshold"], modalities
        )
        export = {"formats": {}, "accuracy": {"pytorch": accuracy}}
    weight = measure_weight(model, size)
    test_set = CropDataset(index, "test", size, modalities=modalities)
    scores = score_split(model, test_set, torch.device("cpu"), 64, 0)
    if "pytorch" in callers:
        callers["pytorch"][c.label] = torch_scorer(model)
    for fmt in formats:
        if fmt in missing:
            continue
        if fmt not in export["formats"]:
            missing[fmt] = "not written by the export"
            continue
        try:
            path = out / "artifacts" / c.label / FILE_NAMES[fmt]
            callers[fmt][c.label] = runtime_scorer(fmt, path, options.threads)
        except Exception as exc:  # noqa: BLE001 - runtimes raise unrelated types; that cell only
            missing[fmt] = f"failed to load: {failure_reason(exc)}"
    if device is not None:  # scored on the GPU too: its accuracy is reported, not assumed
        scorer = gpu.cuda_scorer(model, device)
        try:
            export["accuracy"]["pytorch-cuda"] = split_metrics(
                scorer, index, size, meta, meta["threshold"]
            )
            callers["pytorch-cuda"][c.label] = scorer
        except Exception as exc:  # noqa: BLE001 - e.g. out of GPU memory; CPU cells still count
            missing["pytorch-cuda"] = f"failed while scoring: {failure_reason(exc)}"
    entry = {
        "label": c.label,
        "source": "fasdistill checkpoint",
        "checkpoint": str(c.path),
        "model": meta["model"],
        "role": meta["role"],
        "input_size": size,
        "threshold": float(meta["threshold"]),
        "primary_runtime": "pytorch" if "pytorch" in export["accuracy"] else formats[0],
        "weight": weight.as_dict()
        | {"bytes": {f: e["bytes"] for f, e in export["formats"].items()}},
        "accuracy": export["accuracy"],
        "export": {f: e["parity"] for f, e in export["formats"].items()},
        "missing": missing,
    }
    if not_run:
        entry["not_run"] = not_run
    if modalities != ("rgb",):
        entry["modalities"] = list(modalities)
        entry["sensors"] = sensor_cost(modalities)
    return entry, scores


def _foreign(
    c: Candidate, index: CropIndex, options: SwapOptions, callers: Callers, log: Log
) -> tuple[dict[str, Any], ScoreSet]:
    """A third-party model: its own preprocessing, a dev threshold, its own runtime only."""
    model, path = c.foreign, c.path
    assert model is not None
    fmt, size = model.format, model.input_size
    meta = {"threshold_level": "frame"}
    total = sum(r["split"] in ("dev", "test") for r in index.rows)
    scorer = _scoring_progress(model.score, total, "scoring", log)
    sets = score_splits(scorer, index, size)  # dev and test scored once each
    threshold = eer_threshold(sets["dev"], meta)
    accuracy = metrics_at(sets, meta, threshold)
    callers[fmt.name][c.label] = model.run
    only = f"third-party {fmt.label} model: runs in {fmt.runtime} only"
    entry = {
        "label": c.label,
        "source": f"third-party {fmt.label} ({model.source})",
        "checkpoint": str(path),
        "model": path.name,
        "role": "external",
        "input_size": size,
        "threshold": threshold,
        "primary_runtime": fmt.name,
        "weight": model.weight
        | {
            "activation_elements": 0,  # not known without running it layer by layer
            "bytes": {fmt.name: model.bytes()},
        },
        "accuracy": {fmt.name: accuracy},
        "export": {},
        "missing": {},
        "not_run": {r: only for r in options.runtimes if r != fmt.name},
    }
    return entry, sets["test"]


def _time_all(
    models: list[dict[str, Any]], callers: Callers, options: SwapOptions, log: Log
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per runtime and batch size, every model timed in one interleaved loop, time-capped.

    A model whose runtime fails mid-loop is dropped from that runtime (its cell is
    missing, with the reason); the others finish. A cascade scores the next real test
    faces at each call (:class:`~fasdistill.swap.cascade.RealFaces`); its cell also
    records how many went on to the large member.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {
        r: {m["label"]: {} for m in models} for r in callers
    }
    by_label = {m["label"]: m for m in models}
    batches = sorted({1, options.batch})
    loops = [(r, b) for r, calls in callers.items() if calls for b in batches]
    start = time.perf_counter()
    for done, (runtime, batch) in enumerate(loops):
        calls = callers[runtime]
        if not calls:
            continue
        cap = options.latency_max_seconds * len(calls)
        log(
            f"timing {runtime} batch {batch} ({done + 1}/{len(loops)}): {len(calls)} model(s), "
            f"at most {cap:.0f} s (or a warm-up and a timed call each, if longer)"
        )
        sizes = {label: by_label[label]["input_size"] for label in calls}
        channels = {
            label: channel_count(by_label[label].get("modalities", ["rgb"])) for label in calls
        }
        inputs = {
            label: np.zeros((batch, channels[label], n, n), np.float32)
            for label, n in sizes.items()
        }
        real = {label: c for label, c in calls.items() if isinstance(c, RealFaces)}
        for c in real.values():
            c.take_stats()  # count this loop's faces only
        failed: dict[str, str] = {}
        timed = interleaved_latency(
            {
                label: c.cycle(batch) if label in real else (lambda c=c, x=inputs[label]: c(x))
                for label, c in calls.items()
            },
            min_runs=options.latency_runs,
            min_seconds=options.latency_seconds,
            batch=batch,
            max_seconds=cap,
            failed=failed,
        )
        for label, stats in timed.items():
            out[runtime][label][f"batch{batch}"] = stats.as_dict()
            if label in real:  # warm-up included
                out[runtime][label][f"batch{batch}"]["cascade"] = real[label].take_stats()
        for label, why in failed.items():
            by_label[label]["missing"][runtime] = f"batch {batch}: {why}"
            del calls[label]
        results = ", ".join(
            f"{k} {f'mean {v.mean_ms:.3f}' if k in real else f'{v.median_ms:.3f}'} ms "
            f"({v.runs} run{'s' * (v.runs != 1)}"
            f"{', capped' if v.capped else ''})"
            for k, v in timed.items()
        )
        results += "".join(f"; {k} left out: {why}" for k, why in failed.items())
        log(f"{runtime} batch {batch}: {results} [{_eta(done + 1, len(loops), start)}]")
    return out


def _power(model: dict[str, Any], callers: Callers, options: SwapOptions) -> dict[str, Any]:
    """Energy per batch-1 inference per runtime: RAPL when readable, else both models.

    A counter measurement runs at most ``latency_max_seconds``; a runtime that fails
    during it is a missing cell. A cascade's figures are per face, on real test faces:
    its mean latency, and the compute model of the small member plus the large one
    times the share passed on.
    """
    weight, profile = model["weight"], options.profile
    size = model["input_size"]
    one = np.zeros((1, 3, size, size), np.float32)
    out = {}
    for runtime in model["latency"]:
        int8 = runtime.endswith("int8")
        latency_s = speed_ms(model, runtime) / 1e3
        moved = bytes_moved(weight["params"], weight["activation_elements"], 1 if int8 else 4)
        compute = compute_energy_j(weight["macs"], moved, int8, profile)
        if "cascade" in model:
            compute = compute_energy(model, profile)
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
        calls = callers[runtime].get(model["label"])
        if calls is None:
            continue  # failed at the larger batch: already a missing cell
        bound = int(options.latency_max_seconds / max(latency_s, 1e-9))
        runs = max(1, min(max(50, options.latency_runs), bound))
        try:
            call = calls.cycle(1) if isinstance(calls, RealFaces) else (lambda c=calls: c(one))
            if runtime == "pytorch-cuda":
                device = gpu.require_cuda()
                measured = gpu.measure_nvml_j(call, device, runs)
            else:
                measured = measure_rapl_j(call, runs=runs)
        except Exception as exc:  # noqa: BLE001 - a runtime broke mid-measurement: that cell only
            model["missing"][runtime] = f"failed while measuring energy: {failure_reason(exc)}"
            continue
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
