"""A run directory: checked before anything is written, provenance, and the run's logs.

Layout: ``config.yaml`` (the resolved recipe), ``meta.json`` (seed, commit,
versions, command, world size, data, and what the objective says about itself,
e.g. the teacher's SHA-256), ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fasdistill.config import RunConfig, dump_recipe
from fasdistill.data.loader import CropIndex
from fasdistill.engine import distributed as dist_utils
from fasdistill.engine.provenance import git_commit, versions
from fasdistill.errors import InputError
from fasdistill.utils.atomic import atomic_write_json, atomic_write_text


def check_run_dir(
    run_dir: Path, config: RunConfig, resume: bool, objective: dict[str, Any] | None = None
) -> None:
    """Refuse to overwrite a run, or to resume one with another recipe or teacher.

    Every rank checks. ``objective`` is the objective's ``describe()``; on resume it
    must equal the one recorded in ``meta.json`` (a changed teacher file is refused).
    """
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
        meta_path = run_dir / "meta.json"
        if objective and meta_path.exists():
            saved_objective = json.loads(meta_path.read_text()).get("objective", {})
            if saved_objective != json.loads(json.dumps(objective)):
                raise InputError(
                    f"{run_dir}: the objective differs from the one this run started with "
                    f"(saved {saved_objective}, now {objective}); a teacher file that changed "
                    "cannot continue a distilled run"
                )
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise InputError(f"{run_dir}: run directory is not empty; use --resume or a new --out")


def init_run_dir(
    run_dir: Path,
    config: RunConfig,
    info: dist_utils.DistInfo,
    index: CropIndex,
    objective: dict[str, Any],
) -> None:
    """Write the resolved recipe and the run's provenance (main process, new runs only)."""
    if not info.is_main:
        return
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", dump_recipe(config))
    atomic_write_json(
        run_dir / "meta.json",
        {
            "seed": config.train.seed,
            "git_commit": git_commit(),
            "versions": versions(),
            "command": sys.argv,
            "world_size": info.world_size,
            "device": str(info.device),
            "data_index": str(index.root / "index.csv"),
            "classes": list(index.classes),
            "crop_scale": index.scale,
            "objective": objective,
        },
    )


class RunLogger:
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
