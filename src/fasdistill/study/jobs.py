"""One study run: its data, its pre-run checks, and the run itself (in-process or torchrun).

A run trains (or resumes) one recipe with the study's overrides, then evaluates its
dev-selected checkpoint on dev and test with the threshold fixed on dev. A finished
run keeps its ``result.json``; an interrupted one continues from its ``last.pt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.study.results import summarise, test_fingerprint
from fasdistill.study.spec import Job, Study, run_config
from fasdistill.study.table import dev_best

# ---------------------------------------------------------------------------- data


def prepare_data(
    study: Study, out: Path, protocols: list[str], root: str | None, workers: int
) -> dict[str, Path]:
    """The crops of every protocol (resumable): generated, prepared, or the given indexes."""
    data = study.data
    if data.indexes is not None:
        indexes = {}
        for p in protocols:
            path = Path(data.indexes[p])
            path = path / "index.csv" if path.is_dir() else path
            if not path.is_file():
                raise InputError(f"{study.name}: data.indexes.{p}: {path} is not an index.csv")
            indexes[p] = path
        return indexes
    from fasdistill.data.prepare import PrepareConfig, prepare

    if data.synthspoof is not None:
        from fasdistill.data.synth import SynthConfig, generate

        synth = out / "synth"
        s = data.synthspoof
        config = SynthConfig(
            subjects=s.subjects,
            size=s.size,
            difficulty=s.difficulty,
            seed=s.seed,
            modalities=tuple(s.modalities),
        )
        generate(synth, config, workers=workers)
        dataset, source, extra = (
            "synthspoof",
            str(synth),
            {"detector": s.detector, "boxes": s.boxes, "modalities": tuple(s.modalities)},
        )
    else:
        assert data.dataset is not None
        d = data.dataset
        source = dataset_root(study, root)
        dataset = d.name
        extra = {"frames": d.frames, "detector": d.detector, "boxes": d.boxes}
        extra["scales"] = tuple(d.scales)
        extra["modalities"] = tuple(d.modalities)
    indexes = {}
    for p in protocols:
        crops = out / f"crops_{p}"
        config = PrepareConfig(
            dataset=dataset,
            root=source,
            protocol=data.adapter_protocol(p),
            size=data.crop_size,
            **extra,
        )
        prepare(config, crops, workers=workers)
        indexes[p] = crops / "index.csv"
    return indexes


def dataset_root(study: Study, root: str | None) -> str:
    """The root of a dataset study: --root, else the study's ``data.dataset.root``."""
    assert study.data.dataset is not None
    source = root or study.data.dataset.root
    if not source:
        raise InputError(
            f"{study.name}: data.dataset.root is not set; give the dataset's root with "
            f"--root (for {study.data.dataset.name})"
        )
    return source


# ---------------------------------------------------------------------------- checks


def check_jobs(study: Study, jobs: list[Job], out: Path) -> None:
    """Every run's recipe and overrides load (before any data or run folder is made)."""
    from fasdistill.config import load_recipe
    from fasdistill.distill.objective import cache_problem

    checked: set[tuple[str, tuple[str, ...]]] = set()
    for job in jobs:
        # before any teacher finished: a dev_best student's first candidate stands in
        every = not job.teachers or study.students[job.run].choose == "all"
        names = job.teachers if every else job.teachers[:1]
        teachers = [checkpoint(out, f"{job.protocol}/{t}") for t in names]
        recipe, overrides = run_config(study, job, teachers)
        key = (recipe, tuple(o for o in overrides if not o.startswith("train.seed=")))
        if key in checked:
            continue
        checked.add(key)
        try:
            problem = cache_problem(load_recipe(recipe, overrides))
        except InputError as exc:
            raise InputError(f"{study.name}: run {job.name}: {exc}") from None
        if problem:
            raise InputError(f"{study.name}: run {job.name}: {problem}")


# ---------------------------------------------------------------------------- one run


def checkpoint(out: Path, run: str) -> Path:
    """The dev-selected checkpoint of run ``run`` (``intra/teacher``, ``intra/kd/seed0``)."""
    return out / run / "checkpoints" / "best.pt"


def teacher_checkpoints(study: Study, job: Job, out: Path) -> list[Path]:
    """The teacher checkpoints a student run learns from (a ``dev_best`` one: the chosen)."""
    names = list(job.teachers)
    if names and study.students[job.run].choose == "dev_best":
        found = {t: json.loads((out / job.protocol / t / "result.json").read_text()) for t in names}
        names = [dev_best(found)]
    return [checkpoint(out, f"{job.protocol}/{t}") for t in names]


def run_job(
    study_data: dict[str, Any], job: Job, out: Path, index: Path, threads: int
) -> dict[str, Any]:
    """Train (or resume) one run, then evaluate its dev-selected checkpoint on dev and test."""
    import torch

    torch.set_num_threads(threads)
    from fasdistill.config import load_recipe

    study = Study.model_validate(study_data)
    run_dir = out / job.name
    result_path = run_dir / "result.json"
    recipe, overrides = run_config(study, job, teacher_checkpoints(study, job, out))
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if result.get("test_set") == test_fingerprint(index):
            return result
        # The protocol's test split changed (train and dev did not: the checkpoint
        # still stands), so evaluate the finished run again instead of retraining it.
        return summarise(
            job.name, job.run, job.seed, run_dir, index, recipe, result["overrides"],
            result["wall_seconds"],
        )  # fmt: skip
    config = load_recipe(recipe, overrides)  # checked before anything is written
    last = run_dir / "checkpoints" / "last.pt"
    start = time.perf_counter()
    # A run killed before its first checkpoint starts again (fit replaces its files).
    if study.launch.nproc_per_node > 1:
        torchrun(recipe, overrides, index, run_dir, last.exists(), study.launch.nproc_per_node)
    else:
        from fasdistill.distill import fit

        fit(config, index, run_dir, resume=last.exists(), show_progress=False)
    wall = time.perf_counter() - start
    return summarise(job.name, job.run, job.seed, run_dir, index, recipe, overrides, wall)


def torchrun(
    recipe: str, overrides: list[str], index: Path, run_dir: Path, resume: bool, processes: int
) -> None:
    """One run as a torchrun DDP job of ``processes`` workers on this node."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "fasdistill.cli",
        "train",
        "--recipe",
        recipe,
        "--data",
        str(index),
        "--out",
        str(run_dir),
        "--no-progress",
        *(["--resume"] if resume else []),
        *overrides,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    log = torchrun_log(run_dir)  # beside the run: its folder must be empty or its own
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        ours = [line for line in lines if line.startswith("fasdistill train: error:")]
        why = ours[0].removeprefix("fasdistill train: error: ") if ours else " | ".join(lines[-3:])
        raise RuntimeError(f"torchrun exited {done.returncode}: {why} (log: {log})")


def torchrun_log(run_dir: Path) -> Path:
    """The torchrun output of a run (``intra/kd/seed0`` -> ``intra/kd/seed0.torchrun.log``)."""
    return run_dir.with_name(f"{run_dir.name}.torchrun.log")
