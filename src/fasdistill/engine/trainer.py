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

What is optimised is the caller's: ``objective`` builds an
:class:`~fasdistill.engine.objective.Objective` (supervised by default; the
distillation package passes its own), so the loop knows nothing of teachers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from fasdistill.config import RunConfig
from fasdistill.data.loader import CropDataset, CropIndex, read_crop_index
from fasdistill.engine import distributed as dist_utils
from fasdistill.engine.checkpoint import rng_state, save_deployable, set_rng_state
from fasdistill.engine.evaluation import dev_metrics, score_split
from fasdistill.engine.objective import Batch, Objective, Supervised
from fasdistill.engine.optim import Optimisation, planned_epochs
from fasdistill.engine.rundir import RunLogger, check_run_dir, init_run_dir
from fasdistill.engine.state import TrainState
from fasdistill.errors import FasDistillError, InputError
from fasdistill.models import FASModel, build_model, model_kwargs

# Builds what a run optimises from its recipe, student, index, input size and device.
ObjectiveFactory = Callable[[RunConfig, FASModel, CropIndex, int, torch.device], Objective]


class NonFiniteLossError(FasDistillError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_metric: float
    history: list[dict[str, Any]] = field(default_factory=list)


def supervised(
    config: RunConfig, model: FASModel, index: CropIndex, input_size: int, device: torch.device
) -> Objective:
    """The default objective: cross-entropy and the recipe's auxiliary heads."""
    return Supervised(model, config)


# ---------------------------------------------------------------------------- the run


def train(
    config: RunConfig,
    index_path: str | Path,
    run_dir: str | Path,
    resume: bool = False,
    show_progress: bool = True,
    objective: ObjectiveFactory | None = None,
) -> TrainResult:
    """Train ``config`` on a prepared crop index; writes everything under ``run_dir``.

    ``objective`` builds what is optimised (default :func:`supervised`); a recipe with
    a ``distill:`` section needs the distillation objective
    (:func:`fasdistill.distill.fit` passes it).
    """
    if objective is None:
        if config.distill is not None:
            raise InputError(
                f"recipe {config.name!r} has a distill: section: run it with fasdistill "
                "distill, or fasdistill.distill.fit() from Python"
            )
        objective = supervised
    info = dist_utils.setup()
    run_dir = Path(run_dir)
    logger: RunLogger | None = None
    try:
        index = read_crop_index(index_path, config.data.scale)
        if config.data.batch_size % info.world_size:
            raise InputError(
                f"data.batch_size={config.data.batch_size} is the global batch and must divide "
                f"evenly over {info.world_size} processes"
            )
        torch.manual_seed(config.train.seed)
        random.seed(config.train.seed)
        model = build_model(
            config.model.name,
            num_classes=len(index.classes),
            aux=tuple(config.model.aux),
            **model_kwargs(config.model.model_dump()),
        )
        input_size = config.data.input_size or model.input_size
        model.to(info.device)
        # Built (teacher loaded and checked, adapters sized) before anything is written.
        built = objective(config, model, index, input_size, info.device)
        check_run_dir(run_dir, config, resume, built.describe())
        dist_utils.barrier(info)  # every rank has checked before rank 0 writes anything
        if not resume:
            init_run_dir(run_dir, config, info, index, built.describe())
        dist_utils.barrier(info)
        logger = RunLogger(run_dir, info.is_main)
        return _fit(config, index, built, input_size, run_dir, resume, info, logger, show_progress)
    finally:
        if logger is not None:
            logger.close()
        dist_utils.teardown(info)


def _fit(
    config: RunConfig,
    index: CropIndex,
    objective: Objective,
    input_size: int,
    run_dir: Path,
    resume: bool,
    info: dist_utils.DistInfo,
    logger: RunLogger,
    show_progress: bool,
) -> TrainResult:
    device = info.device
    model = objective.model
    train_set = CropDataset(
        index,
        "train",
        input_size,
        train=True,
        augment=config.data.augment,
        modalities=objective.modalities,
    )
    dev_set = CropDataset(index, "dev", input_size, modalities=model.modalities)
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
    epochs = planned_epochs(config, steps_per_epoch)
    optim = Optimisation.build(objective.module, config, steps_per_epoch, epochs, device)
    net: nn.Module = objective.module
    if info.distributed:
        net = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    state = TrainState(objective, optim)
    last_path = run_dir / "checkpoints" / "last.pt"
    saved_rng = state.restore(last_path, info.rank) if resume else None
    # The teacher-output cache (if any) is filled before the RNG state is restored,
    # so a resumed run continues from exactly the state the interrupted one saved.
    objective.prepare(train_set, device)
    if saved_rng is not None:
        set_rng_state(saved_rng)
    if info.is_main:
        logger.record(
            "budget",
            state.global_step,
            {
                "epochs": epochs,
                "steps_per_epoch": steps_per_epoch,
                "steps": epochs * steps_per_epoch,
                "images": epochs * steps_per_epoch * config.data.batch_size,
            },
        )

    metric_name = config.train.select_metric
    progress = _progress(show_progress and info.is_main)
    task = (
        progress.add_task(
            "train",
            total=epochs * steps_per_epoch,
            completed=state.epoch * steps_per_epoch,
        )
        if progress
        else None
    )
    try:
        for epoch in range(state.epoch, epochs):
            sampler.set_epoch(epoch)
            epoch_start = time.perf_counter()
            seen, term_sums, state.global_step = _train_epoch(
                _Step(net, objective, optim, config, info, device, epochs, steps_per_epoch),
                loader,
                epoch,
                state.global_step,
                logger,
                progress,
                task,
                last_path,
            )
            train_seconds = time.perf_counter() - epoch_start
            terms = {k: v / max(1, seen) for k, v in term_sums.items()}

            # Model selection on dev only (rank 0 scores; the decision is broadcast).
            record: dict[str, Any] = {}
            if info.is_main:
                dev = dev_metrics(
                    score_split(model, dev_set, device, per_rank_batch * 2, config.data.workers),
                    config.data.level,
                )
                improved = dev[metric_name] < state.best["metric"]
                if improved:
                    state.best = {
                        "metric": dev[metric_name],
                        "epoch": epoch + 1,
                        "threshold": dev["threshold"],
                        "dev": dev,
                    }
                    save_deployable(
                        run_dir / "checkpoints" / "best.pt",
                        model,
                        config,
                        index,
                        input_size,
                        state.best,
                    )
                record = {
                    "train_loss": sum(terms.values()),
                    "terms": terms,
                    "lr": optim.scheduler.get_last_lr()[0],
                    "seconds": time.perf_counter() - epoch_start,
                    "dev": dev,
                    "best": improved,
                    "images_per_s": seen / max(train_seconds, 1e-9),
                }
            state.best, record = dist_utils.broadcast_object(info, (state.best, record))  # type: ignore[misc]
            state.bad_epochs = 0 if record["best"] else state.bad_epochs + 1
            state.history.append({"epoch": epoch + 1, **record})
            logger.record("epoch", epoch + 1, record)
            state.epoch = epoch + 1
            rngs = _gather_rng(info)
            if info.is_main:
                state.save(last_path, epochs, rngs)
            dist_utils.barrier(info)
            stop = config.train.early_stop
            if stop is not None and state.bad_epochs >= stop:
                break
    finally:
        if progress:
            progress.stop()
    best = state.best
    return TrainResult(
        run_dir, state.epoch, int(best["epoch"]), float(best["metric"]), state.history
    )


@dataclass
class _Step:
    """What one optimiser step needs (bundled to keep the epoch loop readable)."""

    net: nn.Module
    objective: Objective
    optim: Optimisation
    config: RunConfig
    info: dist_utils.DistInfo
    device: torch.device
    epochs: int
    steps_per_epoch: int


def _train_epoch(
    step: _Step,
    loader: DataLoader,
    epoch: int,
    global_step: int,
    logger: RunLogger,
    progress: Any,
    task: Any,
    last_path: Path,
) -> tuple[int, dict[str, float], int]:
    """One pass over the training shard.

    Returns the images seen on all ranks, each loss term summed over those images,
    and the global step.
    """
    config, info, device = step.config, step.info, step.device
    optimizer, scaler, amp = step.optim.optimizer, step.optim.scaler, step.optim.amp_dtype
    step.net.train()
    start, seen = time.perf_counter(), 0
    term_sums: dict[str, float] = {}
    for images, labels, rows, views in loader:
        batch = Batch(
            images.to(device, non_blocking=True),
            labels.to(device, non_blocking=True),
            rows,
            views,
        )
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            terms = step.objective.losses(
                step.net(batch.images), batch, global_step / step.steps_per_epoch
            )
        loss = torch.stack([t.float() for t in terms.values()]).sum()
        # One collective and one host sync per step: every term's global sum, the global
        # batch size and how many ranks have a finite loss (so every rank stops together).
        size = float(images.shape[0])
        stats = torch.stack(
            [
                *(t.detach().float() * size for t in terms.values()),
                torch.tensor(size, device=device),
                torch.isfinite(loss.detach()).float(),
            ]
        )
        *term_totals, global_batch, finite = dist_utils.all_reduce_sum(info, stats).tolist()
        if finite < info.world_size:
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {global_step + 1}; "
                f"stopped. The last good checkpoint is {last_path}"
                + (
                    ""
                    if last_path.exists()
                    else " (none yet: the same command, without --resume, starts the run again)"
                )
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.train.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(step.objective.module.parameters(), config.train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step.optim.scheduler.step()
        global_step += 1
        seen += int(global_batch)
        for name, total in zip(terms, term_totals, strict=True):
            term_sums[name] = term_sums.get(name, 0.0) + total
        loss_value = sum(term_totals) / global_batch  # mean over the global batch
        rate = seen / max(time.perf_counter() - start, 1e-9)
        if global_step % config.train.log_every == 0:
            logger.record(
                "step",
                global_step,
                {
                    "epoch": epoch + 1,
                    "loss": loss_value,
                    "terms": {k: v / global_batch for k, v in zip(terms, term_totals, strict=True)},
                    "lr": step.optim.scheduler.get_last_lr()[0],
                    "images_per_s": rate,
                },
            )
        if progress is not None:
            progress.update(
                task,
                advance=1,
                description=(
                    f"epoch {epoch + 1}/{step.epochs} loss {loss_value:.4f} {rate:.0f} img/s"
                ),
            )
    return seen, term_sums, global_step


def _gather_rng(info: dist_utils.DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG state (rank order), for a resume on the same number of processes."""
    state = rng_state()
    if not info.distributed:
        return [state]
    gathered: list[Any] = [None] * info.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


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
