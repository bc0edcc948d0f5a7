"""Training candidates (short proxy runs and full-budget runs), their dev figures, rank checks.

Every run is a distillation run of the search's recipe with a SearchNet student, in
its own folder; a finished run keeps ``dev.json`` and is never retrained, an
interrupted one resumes from ``last.pt``. Runs are scored on dev only; the test
split is read by :func:`test_figures`, which the search calls for its final
models once every choice is made.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.utils.atomic import atomic_write_json

Log = Callable[[str], None]
# Proxy figures a short run gives, each "lower is better": dev ACER and EER at the dev EER
# threshold, 1 - AUC, and the mean negative log-likelihood of the true class.
PROXY_METRICS = ("acer", "eer", "auc", "nll")


@dataclass(frozen=True)
class TrainJob:
    """One run: a recipe and its overrides on an index, in ``run_dir``."""

    name: str
    recipe: str
    overrides: tuple[str, ...]
    index: str
    run_dir: str


def candidate_overrides(
    arch: str, size: int, steps: int, seed: int, teacher: Path, extra: Sequence[str]
) -> list[str]:
    """The overrides of a SearchNet run: the study's student budget rules, in steps.

    The same as ``fasdistill study`` gives its distilled students (one epoch raised to
    ``steps``, no early stop, flips only so the teacher's outputs are cached), so a
    searched student and a hand-made one trained by a study get the same budget.
    """
    return [
        "model.name=searchnet",
        f"model.arch={arch}",
        f"data.input_size={size}",
        "data.workers=0",
        "train.epochs=1",
        f"train.min_steps={steps}",
        "train.early_stop=null",
        f"train.seed={seed}",
        "train.log_every=50",
        "data.augment.resized_crop=[1.0,1.0]",
        *extra,
        f"distill.teacher=[{teacher}]",
        "distill.cache=true",
    ]


def dev_figures(best: Path, index_path: str | Path) -> dict[str, float]:
    """Dev ACER, EER, APCER, BPCER, HTER, AUC (threshold at the dev EER) and the NLL."""
    import torch

    from fasdistill.data.loader import CropDataset, read_crop_index
    from fasdistill.engine.checkpoint import load_deployable
    from fasdistill.engine.evaluation import dev_metrics, score_split

    model, meta = load_deployable(best)
    index = read_crop_index(index_path)
    scores = score_split(
        model, CropDataset(index, "dev", int(meta["input_size"])), torch.device("cpu"), 128, 0
    )
    figures = dev_metrics(scores, meta.get("threshold_level", "frame"))
    p = np.clip(scores.scores, 1e-6, 1 - 1e-6)
    likelihood = np.where(scores.bonafide, p, 1 - p)
    return figures | {"nll": float(-np.log(likelihood).mean())}


def run_one(job: TrainJob, threads: int) -> dict[str, Any]:
    """Train (or resume) ``job`` and return its dev figures (``dev.json``)."""
    import time

    import torch

    torch.set_num_threads(threads)
    run_dir = Path(job.run_dir)
    done = run_dir / "dev.json"
    if done.exists():
        return json.loads(done.read_text())
    from fasdistill.config import load_recipe
    from fasdistill.distill import fit

    config = load_recipe(job.recipe, list(job.overrides))
    last = run_dir / "checkpoints" / "last.pt"
    start = time.perf_counter()
    fit(config, job.index, run_dir, resume=last.exists(), show_progress=False)
    seconds = time.perf_counter() - start
    result = {"dev": dev_figures(run_dir / "checkpoints" / "best.pt", job.index)}
    result |= {"seconds": seconds, "overrides": list(job.overrides), "recipe": job.recipe}
    atomic_write_json(done, result)
    return result


def run_jobs(jobs: list[TrainJob], parallel: int, log: Log) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` (finished ones are read back), ``parallel`` at a time, cores shared."""
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        done = Path(job.run_dir) / "dev.json"
        if done.exists():
            results[job.name] = json.loads(done.read_text())
        else:
            todo.append(job)
    if not todo:
        return results
    threads = max(1, (os.cpu_count() or 1) // max(1, parallel))
    log(f"training {len(todo)} run(s), {parallel} at a time ({len(results)} already finished)")
    if parallel <= 1:
        for i, job in enumerate(todo):
            results[job.name] = run_one(job, threads)
            acer = results[job.name]["dev"]["acer"]
            log(f"  [{i + 1}/{len(todo)}] {job.name}: dev ACER {acer:.4f}")
        return results
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        futures = {job.name: pool.submit(run_one, job, threads) for job in todo}
        for i, (name, future) in enumerate(futures.items()):
            results[name] = future.result()
            log(f"  [{i + 1}/{len(todo)}] {name}: dev ACER {results[name]['dev']['acer']:.4f}")
    return results


def ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    out = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        out[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (ties: average ranks); nan when either side is constant."""
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def proxy_value(figures: dict[str, float], metric: str) -> float:
    """A proxy figure, lower is better (AUC turned into 1 - AUC)."""
    return 1.0 - figures["auc"] if metric == "auc" else float(figures[metric])


def test_figures(best: Path, index_path: str | Path) -> dict[str, Any]:
    """Dev and test figures of a final model, the threshold fixed on dev (EER)."""
    from fasdistill.data.loader import read_crop_index
    from fasdistill.engine.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(best, read_crop_index(index_path))
    keys = ("acer", "eer", "apcer", "bpcer", "hter", "auc")
    return {
        "threshold": float(report["threshold"]),
        "dev": {k: float(report["dev"][k]) for k in keys},
        "test": {k: float(report["test"][k]) for k in keys},
    }
