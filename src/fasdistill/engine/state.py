"""The state of a run between epochs, which saves itself to ``last.pt`` and restores from it.

``last.pt`` holds the student, the objective's trainable parts (adapters), the
optimiser, schedule and AMP scaler, the epoch and step reached, the dev-best so
far, the early-stopping count, the history and every rank's RNG state: what a
bit-exact ``--resume`` needs, written and read by the same object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fasdistill.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    load_checkpoint,
    save_checkpoint,
)
from fasdistill.engine.objective import Objective
from fasdistill.engine.optim import Optimisation


@dataclass
class TrainState:
    """Where a run stands after ``epoch`` epochs (``global_step`` optimiser steps)."""

    objective: Objective
    optim: Optimisation
    epoch: int = 0
    global_step: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"metric": math.inf, "epoch": -1})
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def save(self, path: Path, epochs: int, rngs: list[dict[str, Any]]) -> None:
        """Write ``last.pt`` atomically (rank 0 only; ``rngs`` holds every rank's state)."""
        save_checkpoint(
            path,
            {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "model": self.objective.model.state_dict(),
                "objective": self.objective.state_dict(),
                "optimizer": self.optim.optimizer.state_dict(),
                "scheduler": self.optim.scheduler.state_dict(),
                "scaler": self.optim.scaler.state_dict(),
                "epoch": self.epoch,
                "epochs": epochs,
                "global_step": self.global_step,
                "best": self.best,
                "bad_epochs": self.bad_epochs,
                "history": self.history,
                "rng": rngs,
            },
        )

    def restore(self, path: Path, rank: int) -> dict[str, Any]:
        """Load ``last.pt`` into this state; returns this rank's saved RNG state.

        The caller sets the RNG state itself, after any work that draws random
        numbers on the way back (e.g. filling a teacher-output cache).
        """
        state = load_checkpoint(path)
        self.objective.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state.get("objective", {}))
        self.optim.optimizer.load_state_dict(state["optimizer"])
        self.optim.scheduler.load_state_dict(state["scheduler"])
        self.optim.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.best = dict(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.history = list(state["history"])
        rngs = state["rng"]
        return rngs[rank] if rank < len(rngs) else rngs[0]
