"""The training loop: one file, plain PyTorch, readable top to bottom.

``train()`` fits a model on the ``train`` crops of a prepared index, scores the
``dev`` crops after every epoch, fixes the threshold on dev (EER) and keeps the
checkpoint with the best dev ACER (or EER). The test split is never read.

Runs on one process, or on several under ``torchrun`` (DDP; NCCL on GPU, gloo on
CPU). ``data.batch_size`` is the *global* batch, split evenly over processes, so
a recipe keeps its batch size on 1 or 8 devices (exactly the same optimisation for
models without BatchNorm; BatchNorm statistics are per process). Every epoch ends with an
atomic ``checkpoints/last.pt`` holding model, optimiser, scheduler, AMP scaler,
epoch, step and RNG state: ``resume=True`` continues bit-for-bit.
"""

from __future__ import annotations

import json
import math
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from fasdistill import __version__
from fasdistill.config import RunConfig, dump_recipe
from fasdistill.data.loader import COLOUR_ORDER, MEAN, STD, CropDataset, CropIndex, read_crop_index
from fasdistill.engine import distributed as dist_utils
from fasdistill.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fasdistill.errors import FasDistillError, InputError
from fasdistill.metrics import EvalOptions, ScoreSet, evaluate
from fasdistill.models import FASModel, bonafide_score, build_model
from fasdistill.models.heads import fourier_target, pixel_map_target
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text


class NonFiniteLossError(FasDistillError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- set-up helpers


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _versions() -> dict[str, str]:
    return {
        "fasdistill": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "platform": platform.platform(),
    }


def _amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "fp16":
        if device.type != "cuda":
            raise InputError("train.amp=fp16 needs a GPU; use bf16 or off on CPU")
        return torch.float16
    return torch.bfloat16


def lr_factor(step: int, steps_per_epoch: int, config: RunConfig) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (linear warm-up, then the schedule)."""
    schedule = config.schedule
    total = max(1, config.train.epochs * steps_per_epoch)
    warmup = int(schedule.warmup_epochs * steps_per_epoch)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule.name == "constant":
        return 1.0
    if schedule.name == "step":
        return schedule.gamma ** (step // (schedule.step_epochs * steps_per_epoch))
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = schedule.min_lr_ratio
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    o = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def _loss(
    outputs: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor, config: RunConfig
) -> torch.Tensor:
    """Cross-entropy over bona fide + species, plus the weighted training-only aux losses."""
    logits = outputs["logits"].float()
    loss = F.cross_entropy(logits, labels, label_smoothing=config.train.label_smoothing)
    weights = config.train.aux_weights
    if "pixel" in outputs:
        target = pixel_map_target(labels == 0, outputs["pixel"])
        loss = loss + weights.pixel * F.binary_cross_entropy_with_logits(
            outputs["pixel"].float(), target
        )
    if "fourier" in outputs:
        size = outputs["fourier"].shape[-1]
        target = fourier_target(images.float(), size)
        loss = loss + weights.fourier * F.mse_loss(outputs["fourier"].float(), target)
    return loss


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def score_split(
    model: nn.Module, dataset: CropDataset, device: torch.device, batch_size: int, workers: int
) -> ScoreSet:
    """Liveness scores P(bona fide) of every crop of ``dataset`` as a ScoreSet."""
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    scores = np.empty(len(dataset))
    for images, _, rows in loader:
        logits = model(images.to(device, non_blocking=True))
        scores[rows.numpy()] = bonafide_score(logits).cpu().numpy()
    rows = dataset.rows
    return ScoreSet.from_arrays(
        scores,
        [r["label"] for r in rows],
        [r["pai"] for r in rows],
        [r["video_id"] for r in rows],
        [r["subject"] for r in rows],
        [r["crop_path"] for r in rows],
        source=f"dev crops of {dataset.index.root}",
    )


def _dev_metrics(scores: ScoreSet, config: RunConfig) -> dict[str, float]:
    report = evaluate(
        scores, None, EvalOptions(criterion="eer", level=config.data.level, bootstrap=0)
    ).report
    dev = report["dev"]
    return {k: float(dev[k]) for k in ("acer", "eer", "apcer", "bpcer", "auc", "hter")} | {
        "threshold": float(report["threshold"])
    }


# ---------------------------------------------------------------------------- the run


class _Logger:
    """JSONL records and TensorBoard scalars, written by the main process only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))

    def record(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"type": kind, "step": step, **values}) + "\n")
        assert self.tb is not None
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.tb.add_scalar(f"{kind}/{key}", value, step)
            elif isinstance(value, dict):
                for sub, v in value.items():
                    if isinstance(v, (int, float)):
                        self.tb.add_scalar(f"{kind}/{key}/{sub}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _check_run_dir(run_dir: Path, config: RunConfig, resume: bool) -> None:
    """Refuse to overwrite a run, or to resume one with another recipe (every rank checks)."""
    resolved = dump_recipe(config)
    config_path = run_dir / "config.yaml"
    if resume:
        if not (run_dir / "checkpoints" / "last.pt").exists():
            raise InputError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        if config_path.exists() and config_path.read_text() != resolved:
            saved = config_path.read_text()
            raise InputError(
                f"{run_dir}: the recipe differs from the run's config.yaml; resume with the same "
                f"recipe and overrides (saved:\n{saved})"
            )
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: run directory is not empty; use --resume or a new --out")


def _init_run_dir(
    run_dir: Path, config: RunConfig, info: dist_utils.DistInfo, index: CropIndex
) -> None:
    """Write the resolved recipe and the run's provenance (main process, new runs only)."""
    resolved = dump_recipe(config)
    config_path = run_dir / "config.yaml"
    if info.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        atomic_write_text(config_path, resolved)
        atomic_write_json(
            run_dir / "meta.json",
            {
                "seed": config.train.seed,
                "git_commit": _git_commit(),
                "versions": _versions(),
                "command": sys.argv,
                "world_size": info.world_size,
                "device": str(info.device),
                "data_index": str(index.root / "index.csv"),
                "classes": list(index.classes),
                "crop_scale": index.scale,
            },
        )


def train(
    config: RunConfig,
    index_path: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
) -> TrainResult:
    """Train ``config`` on a prepared crop index; writes everything under ``run_dir``."""
    info = dist_utils.setup()
    run_dir = Path(run_dir)
    logger: _Logger | None = None
    try:
        index = read_crop_index(index_path, config.data.scale)
        if config.data.batch_size % info.world_size:
            raise InputError(
                f"data.batch_size={config.data.batch_size} is the global batch and must divide "
                f"evenly over {info.world_size} processes"
            )
        _check_run_dir(run_dir, config, resume)
        dist_utils.barrier(info)  # every rank has checked before rank 0 writes anything
        if not resume:
            _init_run_dir(run_dir, config, info, index)
        dist_utils.barrier(info)
        logger = _Logger(run_dir, info.is_main)
        return _fit(config, index, run_dir, resume, info, logger, show_progress)
    finally:
        if logger is not None:
            logger.close()
        dist_utils.teardown(info)


def _fit(
    config: RunConfig,
    index: CropIndex,
    run_dir: Path,
    resume: bool,
    info: dist_utils.DistInfo,
    logger: _Logger,
    show_progress: bool,
) -> TrainResult:
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)
    device = info.device
    model: FASModel = build_model(
        config.model.name, num_classes=len(index.classes), aux=tuple(config.model.aux)
    )
    input_size = config.data.input_size or model.input_size
    model.to(device)
    train_set = CropDataset(index, "train", input_size, train=True, augment=config.data.augment)
    dev_set = CropDataset(index, "dev", input_size)
    per_rank_batch = config.data.batch_size // info.world_size
    sampler = DistributedSampler(
        train_set,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=True,
        seed=config.train.seed,
    )
    loader = DataLoader(
        train_set,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=config.data.workers,
        pin_memory=device.type == "cuda",
        # An incomplete last batch is dropped when a full one exists: a batch of one
        # breaks BatchNorm in training mode, and equal batches keep DDP equivalent.
        drop_last=len(sampler) >= per_rank_batch,
    )
    steps_per_epoch = len(loader)
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, steps_per_epoch, config)
    )
    amp_dtype = _amp_dtype(config.train.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    net: nn.Module = _TrainView(model)
    if info.distributed:
        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    start_epoch, global_step, bad_epochs = 0, 0, 0
    best: dict[str, Any] = {"metric": math.inf, "epoch": -1}
    history: list[dict[str, Any]] = []
    last_path = run_dir / "checkpoints" / "last.pt"
    if resume:
        state = load_checkpoint(last_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        best, bad_epochs, history = (
            dict(state["best"]),
            int(state["bad_epochs"]),
            list(state["history"]),
        )
        set_rng_state(state["rng"][info.rank] if info.rank < len(state["rng"]) else state["rng"][0])

    metric_name = config.train.select_metric
    progress = _progress(show_progress and info.is_main)
    task = (
        progress.add_task(
            "train",
            total=config.train.epochs * steps_per_epoch,
            completed=start_epoch * steps_per_epoch,
        )
        if progress
        else None
    )
    epochs_run = start_epoch
    try:
        for epoch in range(start_epoch, config.train.epochs):
            sampler.set_epoch(epoch)
            epoch_start = time.perf_counter()
            seen, loss_sum, global_step = _train_epoch(
                _Step(net, model, optimizer, scheduler, scaler, amp_dtype, config, info, device),
                loader,
                epoch,
                global_step,
                logger,
                progress,
                task,
                last_path,
            )
            train_seconds = time.perf_counter() - epoch_start
            train_loss = loss_sum / max(1, seen)

            # Model selection on dev only (rank 0 scores; the decision is broadcast).
            record: dict[str, Any] = {}
            if info.is_main:
                dev = _dev_metrics(
                    score_split(model, dev_set, device, per_rank_batch * 2, config.data.workers),
                    config,
                )
                improved = dev[metric_name] < best["metric"]
                if improved:
                    best = {
                        "metric": dev[metric_name],
                        "epoch": epoch + 1,
                        "threshold": dev["threshold"],
                        "dev": dev,
                    }
                    _save_deployable(
                        run_dir / "checkpoints" / "best.pt", model, config, index, input_size, best
                    )
                record = {
                    "train_loss": train_loss,
                    "lr": scheduler.get_last_lr()[0],
                    "seconds": time.perf_counter() - epoch_start,
                    "dev": dev,
                    "best": improved,
                    "images_per_s": seen / max(train_seconds, 1e-9),
                }
            best, record = dist_utils.broadcast_object(info, (best, record))  # type: ignore[misc]
            bad_epochs = 0 if record["best"] else bad_epochs + 1
            history.append({"epoch": epoch + 1, **record})
            logger.record("epoch", epoch + 1, record)
            rngs = _gather_rng(info)
            if info.is_main:
                save_checkpoint(
                    last_path,
                    {
                        "format": CHECKPOINT_FORMAT,
                        "version": CHECKPOINT_VERSION,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "epoch": epoch + 1,
                        "global_step": global_step,
                        "best": best,
                        "bad_epochs": bad_epochs,
                        "history": history,
                        "rng": rngs,
                    },
                )
            dist_utils.barrier(info)
            epochs_run = epoch + 1
            if config.train.early_stop is not None and bad_epochs >= config.train.early_stop:
                break
    finally:
        if progress:
            progress.stop()
    return TrainResult(run_dir, epochs_run, int(best["epoch"]), float(best["metric"]), history)


@dataclass
class _Step:
    """What one optimiser step needs (bundled to keep the epoch loop readable)."""

    net: nn.Module
    model: FASModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    config: RunConfig
    info: dist_utils.DistInfo
    device: torch.device


def _train_epoch(
    step: _Step,
    loader: DataLoader,
    epoch: int,
    global_step: int,
    logger: _Logger,
    progress: Any,
    task: Any,
    last_path: Path,
) -> tuple[int, float, int]:
    """One pass over the training shard; returns (images seen on all ranks, loss sum, step)."""
    config, info, device = step.config, step.info, step.device
    step.net.train()
    start, seen, loss_sum = time.perf_counter(), 0, 0.0
    for images, labels, _ in loader:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(
            device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None
        ):
            loss = _loss(step.net(images), images, labels, config)
        # One collective and one host sync per step: the global loss sum, the global
        # batch size and how many ranks have a finite loss (so every rank stops together).
        batch = float(images.shape[0])
        stats = torch.stack(
            [
                loss.detach().float() * batch,
                torch.tensor(batch, device=device),
                torch.isfinite(loss.detach()).float(),
            ]
        )
        global_loss, global_batch, finite = dist_utils.all_reduce_sum(info, stats).tolist()
        if finite < info.world_size:
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {global_step + 1}; "
                f"stopped. The last good checkpoint is {last_path}"
                + ("" if last_path.exists() else " (none yet: the first epoch failed)")
            )
        step.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(loss).backward()
        if config.train.grad_clip is not None:
            step.scaler.unscale_(step.optimizer)
            nn.utils.clip_grad_norm_(step.model.parameters(), config.train.grad_clip)
        step.scaler.step(step.optimizer)
        step.scaler.update()
        step.scheduler.step()
        global_step += 1
        seen += int(global_batch)
        loss_value = global_loss / global_batch  # mean over the global batch
        loss_sum += global_loss
        rate = seen / max(time.perf_counter() - start, 1e-9)
        if global_step % config.train.log_every == 0:
            logger.record(
                "step",
                global_step,
                {
                    "epoch": epoch + 1,
                    "loss": loss_value,
                    "lr": step.scheduler.get_last_lr()[0],
                    "images_per_s": rate,
                },
            )
        if progress is not None:
            progress.update(
                task,
                advance=1,
                description=(
                    f"epoch {epoch + 1}/{config.train.epochs} "
                    f"loss {loss_value:.4f} {rate:.0f} img/s"
                ),
            )
    return seen, loss_sum, global_step


class _TrainView(nn.Module):
    """The model with ``forward_train`` as its forward, so DDP's hooks wrap the training path."""

    def __init__(self, model: FASModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.forward_train(images)


def _gather_rng(info: dist_utils.DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG state (rank order), for a resume on the same number of processes."""
    state = rng_state()
    if not info.distributed:
        return [state]
    gathered: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


def _save_deployable(
    path: Path,
    model: FASModel,
    config: RunConfig,
    index: CropIndex,
    input_size: int,
    best: dict[str, Any],
) -> None:
    """The deployable model (no aux heads) plus everything prediction needs to use it."""
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": model.deployable().state_dict(),
            "meta": {
                "model": config.model.name,
                "role": model.role,
                "classes": list(index.classes),
                "input_size": input_size,
                "crop_scale": index.scale,
                "colour_order": COLOUR_ORDER,
                "mean": list(MEAN),
                "std": list(STD),
                "threshold": best["threshold"],
                "threshold_criterion": "eer on dev",
                # The threshold applies to scores at this level (video = mean of frame scores).
                "threshold_level": config.data.level,
                "dev": best["dev"],
                "epoch": best["epoch"],
                "select_metric": config.train.select_metric,
                "recipe": dump_recipe(config),
                "versions": _versions(),
            },
        },
    )


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.completed}/{task.total}",
        TimeRemainingColumn(),
    )
    progress.start()
    return progress
