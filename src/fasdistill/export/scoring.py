"""Scoring crops with PyTorch or an exported file, and the metrics of those scores.

Every export is checked and measured the same way: its scores on real crops in
the runtime it ships for (ONNX Runtime, ExecuTorch, LiteRT, ncnn) against the
PyTorch model's. The SWAP report and ``predict`` score exported files with the
same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fasdistill.data.loader import CropDataset, CropIndex
from fasdistill.engine.evaluation import score_dataset
from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY
from fasdistill.export.onnx import INPUT_NAME
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.metrics.scores import ScoreSet
from fasdistill.models import bonafide_score
from fasdistill.utils.ort import open_session

Scorer = Callable[[np.ndarray], np.ndarray]


def load_images(index: CropIndex, split: str, size: int, count: int) -> np.ndarray:
    """Up to ``count`` preprocessed crops of ``split``, evenly spread over it (deterministic)."""
    dataset = CropDataset(index, split, size)
    if len(dataset) == 0:
        raise InputError(f"{index.root}: the index has no {split} crops, needed to check an export")
    picks = np.unique(
        np.linspace(0, len(dataset) - 1, min(count, len(dataset))).round().astype(int)
    )
    return torch.stack([dataset[int(i)][0] for i in picks]).numpy()


def onnx_scorer(path: Path, threads: int) -> Scorer:
    """Scores P(bona fide) from an exported ONNX file in ONNX Runtime."""
    session = open_session(path, threads)
    return lambda x: session.run(["score"], {INPUT_NAME: x.astype(np.float32)})[0]


def runtime_scorer(fmt: str, path: Path, threads: int) -> Scorer:
    """The scorer of an exported file in the runtime its format runs in."""
    return REGISTRY[fmt].scorer(path, threads)


def torch_scorer(model: torch.nn.Module) -> Scorer:
    """Scores P(bona fide) from the PyTorch model, the reference of every check."""

    @torch.no_grad()
    def score(x: np.ndarray) -> np.ndarray:
        return bonafide_score(model(torch.from_numpy(x))).numpy()

    return score


def score_splits(
    scorer: Scorer, index: CropIndex, size: int, modalities: tuple[str, ...] = ("rgb",)
) -> dict[str, ScoreSet]:
    """Scores of the dev (and test, when present) crops by ``scorer``, each split scored once."""
    sets = {}
    for split in ("dev", "test"):
        dataset = CropDataset(index, split, size, modalities=modalities)
        if len(dataset):
            sets[split] = score_dataset(lambda images: scorer(images.numpy()), dataset, 64)
    return sets


def metrics_at(
    sets: dict[str, ScoreSet], meta: dict[str, Any], threshold: float
) -> dict[str, dict[str, float]]:
    """Dev (and test) ISO metrics of scored splits at a fixed ``threshold``."""
    options = EvalOptions(
        criterion=f"fixed={threshold!r}",
        level=meta.get("threshold_level", "frame"),
        bootstrap=0,
    )
    report = evaluate(sets["dev"], sets.get("test"), options).report
    keys = ("acer", "apcer", "bpcer", "hter", "eer", "auc")
    return {split: {k: float(report[split][k]) for k in keys} for split in sets}


def split_metrics(
    scorer: Scorer,
    index: CropIndex,
    size: int,
    meta: dict[str, Any],
    threshold: float,
    modalities: tuple[str, ...] = ("rgb",),
) -> dict[str, dict[str, float]]:
    """Dev (and test, when present) ISO metrics at the model's embedded threshold."""
    return metrics_at(score_splits(scorer, index, size, modalities), meta, threshold)


def dev_threshold(scorer: Scorer, index: CropIndex, size: int, meta: dict[str, Any]) -> float:
    """The dev EER threshold of ``scorer``'s scores, at the model's threshold level."""
    dev = score_dataset(lambda images: scorer(images.numpy()), CropDataset(index, "dev", size), 64)
    return eer_threshold(dev, meta)


def eer_threshold(dev: ScoreSet, meta: dict[str, Any]) -> float:
    """The EER threshold of scored dev crops, at the model's threshold level."""
    options = EvalOptions(criterion="eer", level=meta.get("threshold_level", "frame"), bootstrap=0)
    return float(evaluate(dev, None, options).threshold)
