"""A run directory: checked before anything is written, provenance, and the run's logs.

Layout: ``config.yaml`` (the resolved recipe), ``meta.json`` (seed, commit,
versions, command, world size, data, and what the objective says about itself,
e.g. the teacher's SHA-256), ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.

A run that stopped before its first checkpoint (a NaN loss or a teacher failure
at the first step, Ctrl-C in the first epoch) leaves only those files and no
``checkpoints/last.pt``: there is nothing to resume, so the same command starts
it again and replaces them. A directory holding anything else (a checkpoint,
a file of the user's) is never cleared.
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
            if unfinished_files(run_dir, resolved):
                raise InputError(
                    f"{run_dir}: nothing to resume: the run stopped before its first checkpoint "
                    "(no checkpoints/last.pt); run the same command without --resume to start "
                    "it again"
                )
            if not run_dir.exists() or not any(run_dir.iterdir()):
                raise InputError(f"{run_dir}: nothing to resume (no run here); drop --resume")
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
    if run_dir.exists() and any(run_dir.iterdir()) and not unfinished_files(run_dir, resolved):
        raise InputError(f"{run_dir}: run directory is not empty; use --resume or a new --out")


RUN_FILES = ("config.yaml", "meta.json", "metrics.jsonl")
META_KEYS = {"seed", "command", "objective"}


def _ours_temporary(path: Path, names: tuple[str, ...]) -> bool:
    """An atomic write's leftover temporary file (``.<name>.<random>.tmp``) of one of ``names``."""
    return path.is_file() and any(
        path.name.startswith(f".{n}.") and path.name.endswith(".tmp") for n in names
    )


def unfinished_files(run_dir: Path, resolved: str) -> list[Path]:
    """The files of a run that stopped before its first checkpoint, or [] when ``run_dir``
    is not such a run.

    Such a run holds only what ``init_run_dir`` and ``RunLogger`` write (``config.yaml``,
    ``meta.json``, ``metrics.jsonl``, TensorBoard event files in ``tb/``, an empty
    ``checkpoints/``) and atomic-write leftovers; its ``meta.json`` is ours, or, when
    it has none, its ``config.yaml`` is ``resolved`` (the one about to be written).
    A checkpoint (``last.pt`` or ``best.pt``) or any other entry makes it a run to keep.
    """
    if not run_dir.is_dir():
        return []
    found: list[Path] = []
    for entry in run_dir.iterdir():
        if (entry.name in RUN_FILES and entry.is_file()) or _ours_temporary(entry, RUN_FILES):
            found.append(entry)
        elif entry.name == "tb" and entry.is_dir():
            events = list(entry.iterdir())
            if not all(e.is_file() and e.name.startswith("events.out.tfevents.") for e in events):
                return []
            found += [*events, entry]
        elif entry.name == "checkpoints" and entry.is_dir():
            leftovers = list(entry.iterdir())
            if not all(_ours_temporary(e, ("last.pt", "best.pt")) for e in leftovers):
                return []
            found += [*leftovers, entry]
        else:
            return []
    meta = run_dir / "meta.json"
    if meta.is_file():
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            data = None
        ours = isinstance(data, dict) and data.keys() >= META_KEYS
        if not ours:
            return []
    elif any(p.name in ("metrics.jsonl", "tb") for p in found):
        return []  # written after meta.json: without it, not a run of ours
    elif (run_dir / "config.yaml").is_file() and (run_dir / "config.yaml").read_text() != resolved:
        return []
    return found


def _clear_unfinished(run_dir: Path, resolved: str) -> None:
    """Remove an unfinished run's files one by one (never a whole tree), deepest first."""
    for path in sorted(
        unfinished_files(run_dir, resolved), key=lambda p: len(p.parts), reverse=True
    ):
        if path.is_dir():
            path.rmdir()  # emptied above; fails rather than deletes anything unexpected
        else:
            path.unlink(missing_ok=True)


def init_run_dir(
    run_dir: Path,
    config: RunConfig,
    info: dist_utils.DistInfo,
    index: CropIndex,
    objective: dict[str, Any],
) -> None:
    """Write the resolved recipe and the run's provenance (main process, new runs only),
    replacing the files of a run that stopped before its first checkpoint."""
    if not info.is_main:
        return
    _clear_unfinished(run_dir, dump_recipe(config))  # a run that never reached last.pt
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
