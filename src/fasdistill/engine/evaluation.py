"""Scoring a split with a model, and the dev metrics that select checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from fasdistill.data.loader import CropDataset, CropIndex
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.metrics import EvalOptions, ScoreSet, evaluate
from fasdistill.models import bonafide_score


@torch.no_grad()
def score_split(
    model: nn.Module, dataset: CropDataset, device: torch.device, batch_size: int, workers: int
) -> ScoreSet:
    """Liveness scores P(bona fide) of every crop of ``dataset`` as a ScoreSet."""
    model.eval()

    def scorer(images: torch.Tensor) -> np.ndarray:
        logits = model(images.to(device, non_blocking=True))
        return bonafide_score(logits).cpu().numpy()

    return score_dataset(scorer, dataset, batch_size, workers, device.type == "cuda")


def score_dataset(
    scorer: Callable[[torch.Tensor], np.ndarray],
    dataset: CropDataset,
    batch_size: int = 64,
    workers: int = 0,
    pin_memory: bool = False,
) -> ScoreSet:
    """Scores of every crop of ``dataset`` by ``scorer`` (images -> P(bona fide)), any runtime."""
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory
    )
    scores = np.empty(len(dataset))
    for images, _, rows, _ in loader:
        scores[rows.numpy()] = scorer(images)
    rows = dataset.rows
    return ScoreSet.from_arrays(
        scores,
        [r["label"] for r in rows],
        [r["pai"] for r in rows],
        [r["video_id"] for r in rows],
        [r["subject"] for r in rows],
        [r["crop_path"] for r in rows],
        source=f"{dataset.split} crops of {dataset.index.root}",
    )


def dev_metrics(scores: ScoreSet, level: Literal["frame", "video"]) -> dict[str, float]:
    """ACER, EER, APCER, BPCER, AUC, HTER on dev at the dev EER threshold, and that threshold."""
    report = evaluate(scores, None, EvalOptions(criterion="eer", level=level, bootstrap=0)).report
    dev = report["dev"]
    return {k: float(dev[k]) for k in ("acer", "eer", "apcer", "bpcer", "auc", "hter")} | {
        "threshold": float(report["threshold"])
    }


def evaluate_checkpoint(
    path: str | Path, index: CropIndex, device: torch.device | None = None, bootstrap: int = 0
) -> dict[str, Any]:
    """Dev and test metrics of a ``best.pt``, the threshold fixed on dev (EER) as it was chosen.

    Returns the evaluation report (``dev``, ``test``, ``threshold``); the test split
    is read here, after training, never during it.
    """
    device = device or torch.device("cpu")
    model, meta = load_deployable(path)
    model.to(device)
    size = int(meta["input_size"])
    mods = model.modalities
    dev = score_split(model, CropDataset(index, "dev", size, modalities=mods), device, 128, 0)
    test = score_split(model, CropDataset(index, "test", size, modalities=mods), device, 128, 0)
    level = meta.get("threshold_level", "frame")
    options = EvalOptions(criterion="eer", level=level, bootstrap=bootstrap)
    return evaluate(dev, test, options).report
