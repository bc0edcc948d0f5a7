"""What one optimiser step needs: the optimiser, its schedule, and mixed precision.

``lr_factor`` is the schedule (linear warm-up, then cosine, step or constant), as a
multiplier of ``optim.lr`` at each optimiser step; ``planned_epochs`` stretches a
run to ``train.min_steps``, so a recipe keeps its budget on any dataset size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fasdistill.config import RunConfig
from fasdistill.errors import InputError


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device`` (None: full precision)."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if setting == "fp16":
        if device.type != "cuda":
            raise InputError("train.amp=fp16 needs a GPU; use bf16 or off on CPU")
        return torch.float16
    return torch.bfloat16


def planned_epochs(config: RunConfig, steps_per_epoch: int) -> int:
    """``train.epochs``, raised until the run makes at least ``train.min_steps`` steps."""
    if config.train.min_steps is None:
        return config.train.epochs
    return max(config.train.epochs, math.ceil(config.train.min_steps / max(1, steps_per_epoch)))


def lr_factor(
    step: int, steps_per_epoch: int, config: RunConfig, epochs: int | None = None
) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (linear warm-up, then the schedule).

    ``epochs`` is the run's planned length (default ``train.epochs``).
    """
    schedule = config.schedule
    total = max(1, (epochs or config.train.epochs) * steps_per_epoch)
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


@dataclass
class Optimisation:
    """The optimiser, its learning-rate schedule, the AMP scaler and autocast dtype."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None

    @classmethod
    def build(
        cls,
        module: nn.Module,
        config: RunConfig,
        steps_per_epoch: int,
        epochs: int,
        device: torch.device,
    ) -> Optimisation:
        o = config.optim
        params = [p for p in module.parameters() if p.requires_grad]
        if o.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, steps_per_epoch, config, epochs)
        )
        dtype = amp_dtype(config.train.amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        return cls(optimizer, scheduler, scaler, dtype)
