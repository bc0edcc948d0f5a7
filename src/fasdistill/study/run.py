"""Running a study: its data, its runs as independent jobs, its table and SWAP report.

Runs go to an executor: a local process pool (``local``, one run per worker, as
many threads each as the cores allow) or a cluster scheduler through ``submitit``
(``submitit``: SLURM, or ``submitit-local`` for its local executor). A run whose
study asks for ``launch.nproc_per_node`` > 1 is a torchrun DDP job. A run that
fails is reported with its reason and the runs that need it are skipped; the rest
finish. Every run resumes: a finished one keeps its ``result.json``, an
interrupted one continues from its ``last.pt``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.study.results import (
    finished_runs,
    merge_results,
    summarise,
    test_fingerprint,
)
from fasdistill.study.spec import Job, Study, plan, run_config
from fasdistill.study.table import dev_best, table
from fasdistill.utils.text import failure_reason

Log = Callable[[str], None]
EXECUTORS = ("local", "submitit", "submitit-local")


# ---------------------------------------------------------------------------- data


def prepare_data(
    study: Study, out: Path, protocols: list[str], root: str | None, workers: int
) -> dict[str, Path]:
    """The crops of every protocol (resumable): generated, prepared, or the given indexes."""
    data = study.data
    if data.indexes is not None:
        indexes = {p: Path(data.indexes[p]) for p in protocols}
        for p, path in indexes.items():
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
        config = SynthConfig(subjects=s.subjects, size=s.size, difficulty=s.difficulty, seed=s.seed)
        generate(synth, config, workers=workers)
        dataset, source, extra = "synthspoof", str(synth), {}
    else:
        assert data.dataset is not None
        d = data.dataset
        source = dataset_root(study, root)
        dataset = d.name
        extra = {"frames": d.frames, "detector": d.detector, "boxes": d.boxes}
        extra["scales"] = tuple(d.scales)
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


# ---------------------------------------------------------------------------- one run


def teacher_checkpoints(study: Study, job: Job, out: Path) -> list[Path]:
    """The teacher checkpoints a student run learns from (a ``dev_best`` one: the chosen)."""
    names = list(job.teachers)
    if names and study.students[job.run].choose == "dev_best":
        found = {t: json.loads((out / job.protocol / t / "result.json").read_text()) for t in names}
        names = [dev_best(found)]
    return [out / job.protocol / t / "checkpoints" / "best.pt" for t in names]


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


def job_failure(error: BaseException) -> str:
    """Why a job failed, as one line; a scheduler's wrapped traceback gives its last line."""
    text = str(error)
    if "Traceback (most recent call last)" in text:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else text
        return last.removeprefix("fasdistill.errors.")[:300]
    return failure_reason(error)


# ---------------------------------------------------------------------------- executors


@dataclass
class Executor:
    """Where runs go: ``local`` (a process pool), ``submitit`` or ``submitit-local``."""

    kind: str = "local"
    parallel: int = 2  # local: runs at a time
    folder: Path | None = None  # submitit: its logs and pickles
    parameters: dict[str, Any] = field(default_factory=dict)  # submitit: e.g. slurm_partition
    _pool: Any = None

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(f"--executor: one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.parallel < 1:
            raise InputError(f"--parallel must be >= 1, got {self.parallel}")

    @property
    def slots(self) -> int:
        """Runs in flight at once (a scheduler queues the rest itself)."""
        return self.parallel if self.kind == "local" else 10**6

    def threads(self) -> int:
        if self.kind == "local":
            return max(1, (os.cpu_count() or 1) // self.parallel)
        return int(self.parameters.get("cpus_per_task", 1))

    def __enter__(self) -> Executor:
        if self.kind == "local":
            self._pool = ProcessPoolExecutor(self.parallel, mp_context=get_context("spawn"))
            return self
        try:
            import submitit
        except ImportError:
            raise InputError(
                "--executor submitit needs the submitit package: pip install 'fasdistill[cluster]'"
            ) from None
        cluster = "local" if self.kind == "submitit-local" else None
        assert self.folder is not None
        self._pool = submitit.AutoExecutor(folder=str(self.folder), cluster=cluster)
        params = dict(self.parameters)
        params.setdefault("timeout_min", 24 * 60)
        try:
            self._pool.update_parameters(**params)
        except (TypeError, ValueError) as exc:
            raise InputError(f"--executor-param: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.kind == "local" and self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A handle with ``done()`` and ``result()`` (a future or a submitit job)."""
        return self._pool.submit(fn, *args)


@dataclass
class Outcome:
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # job -> reason


def execute(
    study: Study,
    jobs: list[Job],
    out: Path,
    indexes: dict[str, Path],
    executor: Executor,
    log: Log = print,
) -> Outcome:
    """Run jobs, each when the runs it needs have finished; failures do not stop the rest."""
    outcome = Outcome()
    pending = list(jobs)
    running: dict[str, tuple[Job, Any]] = {}
    data = study.model_dump(mode="json")
    threads = executor.threads()
    start = time.perf_counter()
    with executor:
        while pending or running:
            for job in list(pending):
                blocked = [d for d in job.after if d in outcome.failed]
                if blocked:
                    pending.remove(job)
                    outcome.failed[job.name] = f"not run: {blocked[0]} failed"
                    log(f"{job.name}: {outcome.failed[job.name]}")
                    continue
                if len(running) >= executor.slots:
                    break
                if all(d in outcome.done for d in job.after):
                    pending.remove(job)
                    index = indexes[job.protocol]
                    handle = executor.submit(run_job, data, job, out, index, threads)
                    running[job.name] = (job, handle)
            finished = [n for n, (_, h) in running.items() if h.done()]
            if not finished:
                time.sleep(0.2)
                continue
            for name in finished:
                job, handle = running.pop(name)
                try:
                    r = handle.result()
                except Exception as exc:  # noqa: BLE001 - one run's failure never sinks the study
                    outcome.failed[name] = job_failure(exc)
                    log(f"{time.strftime('%H:%M:%S')} {name}: FAILED ({outcome.failed[name]})")
                    continue
                outcome.done[name] = r
                total = len(outcome.done) + len(outcome.failed)
                log(
                    f"{time.strftime('%H:%M:%S')} [{total}/{len(jobs)}] {name}: dev ACER "
                    f"{100 * r['dev']['acer']:.2f}% test ACER {100 * r['test']['acer']:.2f}% "
                    f"AUC {r['test']['auc']:.3f} ({r['wall_seconds'] / 60:.1f} min; "
                    f"{(time.perf_counter() - start) / 60:.1f} min in all)"
                )
    return outcome


# ---------------------------------------------------------------------------- SWAP


def chosen_student(study: Study, results: dict[str, dict[str, Any]], protocol: str) -> str | None:
    """The dev-chosen student run on ``protocol``: the student with the lowest mean dev
    ACER over its seeds (then the highest mean dev AUC), and its seed with the lowest
    dev ACER. Dev only: test figures are never looked at."""
    import statistics

    means = {}
    for s in study.student_order():
        runs = [r for k, r in results.items() if k.startswith(f"{protocol}/{s}/")]
        if runs:
            means[s] = (
                statistics.fmean(r["dev"]["acer"] for r in runs),
                -statistics.fmean(r["dev"]["auc"] for r in runs),
            )
    if not means:
        return None
    best = min(means, key=lambda s: means[s])
    runs = {k: r for k, r in results.items() if k.startswith(f"{protocol}/{best}/")}
    return min(runs, key=lambda k: (runs[k]["dev"]["acer"], -runs[k]["dev"]["auc"]))


def write_swap(
    study: Study,
    out: Path,
    results: dict[str, dict[str, Any]],
    protocol: str,
    index: Path,
    log: Log = print,
) -> dict[str, Any]:
    """The SWAP report of the reference teacher against the dev-chosen student."""
    from fasdistill.swap.measure import SwapOptions, run_swap
    from fasdistill.swap.report import write_reports

    teacher = f"{protocol}/{study.table.teacher}"
    student = chosen_student(study, results, protocol)
    if teacher not in results or student is None:
        raise InputError(f"{protocol}: no finished teacher and student to compare")
    spec = study.swap
    options = SwapOptions(
        runtimes=tuple(spec.runtimes),
        latency_runs=spec.latency_runs,
        latency_seconds=spec.latency_seconds,
        bootstrap=spec.bootstrap,
    )
    folder = out / "swap" / protocol
    checkpoints = [out / name / "checkpoints" / "best.pt" for name in (teacher, student)]
    # labelled by run: "teacher", "kd/seed0" (the protocol is the report's folder)
    labels = [name.split("/", 1)[1] for name in (teacher, student)]
    swap = run_swap(
        checkpoints, index, folder, options, lambda line: log(f"  swap: {line}"), labels
    )
    write_reports(swap, folder)
    return {"teacher": teacher, "student": student, "report": str(folder / "report.html")}


# ---------------------------------------------------------------------------- the study


def results_payload(
    study: Study, protocols: list[str], students: list[str], seeds: list[int], results: dict
) -> dict[str, Any]:
    from fasdistill.engine.provenance import git_commit, versions

    return {
        "study": study.name,
        "budget": study.budget.model_dump(mode="json"),
        "data": study.data.model_dump(mode="json"),
        "protocols": protocols,
        "methods": students,
        "seeds": seeds,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": versions(),
        "git_commit": git_commit(),
        "results": results,
    }


def write_outputs(
    study: Study,
    out: Path,
    payload: dict[str, Any],
    replace: bool,
    log: Log = print,
    failed: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Merge into OUT/results.json (never fewer runs) and write OUT/<study>.md.

    Runs that failed (or were skipped because a run they need failed) are listed
    under the tables with their reasons.
    """
    from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

    path = out / "results.json"
    merged, kept = merge_results(path, payload, replace)
    markdown = table(study, merged["results"], payload["protocols"], payload["methods"])
    if failed:
        markdown += (
            "\n**Not in these tables** (failed, or not run because a run they need failed):\n\n"
        )
        markdown += "\n".join(f"- `{name}`: {why}" for name, why in failed.items()) + "\n"
    atomic_write_json(path, merged)
    atomic_write_text(out / f"{study.name}.md", markdown + "\n")
    if kept:
        log(f"{path}: kept {len(kept)} earlier runs outside this plan")
    return markdown, merged


def check_jobs(study: Study, jobs: list[Job], out: Path) -> None:
    """Every run's recipe and overrides load (before any data or run folder is made)."""
    from fasdistill.config import load_recipe
    from fasdistill.distill.objective import cache_problem

    checked: set[tuple[str, tuple[str, ...]]] = set()
    for job in jobs:
        teachers = [out / job.protocol / t / "checkpoints" / "best.pt" for t in job.teachers[:1]]
        if job.teachers and study.students[job.run].choose == "all":
            teachers = [out / job.protocol / t / "checkpoints" / "best.pt" for t in job.teachers]
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


def planned_results(
    study: Study, jobs: list[Job], found: dict[str, dict[str, Any]], source: str
) -> dict[str, dict[str, Any]]:
    """The planned runs' records, all of them: a table is never made from fewer."""
    missing = [job.name for job in jobs if job.name not in found]
    if missing:
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        shown = ", ".join(missing[:6]) + more
        raise InputError(
            f"{source}: {len(missing)} of the {len(jobs)} runs study {study.name!r} plans are "
            f"not finished ({shown}); run them, or narrow the table with --protocols, "
            "--students or --seeds"
        )
    return {job.name: found[job.name] for job in jobs}


def tabulate(
    study: Study,
    jobs: list[Job],
    out: Path | None = None,
    results_file: Path | None = None,
) -> str:
    """The table of the planned runs from a results file or a study folder; trains nothing."""
    from fasdistill.study.results import read_results_file

    if results_file is not None:
        found = read_results_file(results_file)["results"]
        source = str(results_file)
    else:
        assert out is not None
        path = out / "results.json"
        found = read_results_file(path)["results"] if path.exists() else {}
        found = found | finished_runs(out, [job.name for job in jobs])
        source = str(out)
    results = planned_results(study, jobs, found, source)
    protocols = list(dict.fromkeys(job.protocol for job in jobs))
    students = list(dict.fromkeys(job.run for job in jobs if not job.is_teacher))
    return table(study, results, protocols, students)


def run_study(
    study: Study,
    out: Path,
    protocols: list[str] | None = None,
    students: list[str] | None = None,
    seeds: list[int] | None = None,
    root: str | None = None,
    executor: Executor | None = None,
    replace: bool = False,
    swap: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Run a study (resumable) and write its results, table and SWAP report.

    Returns {"markdown", "failed": {what: reason}, "swap": {protocol: report}}.
    """
    from fasdistill.utils.atomic import atomic_write_json

    jobs = plan(study, protocols, students, seeds)
    check_jobs(study, jobs, out)
    if study.data.dataset is not None:
        dataset_root(study, root)
    # A results file of another budget or data in OUT is refused now, not after the runs.
    empty = results_payload(study, [], [], [], {})
    merge_results(out / "results.json", empty, replace)
    protocols = list(dict.fromkeys(job.protocol for job in jobs))
    students = list(dict.fromkeys(job.run for job in jobs if not job.is_teacher))
    seeds = sorted({job.seed for job in jobs if job.seed is not None})
    executor = executor or Executor(folder=out / "submitit")
    if executor.folder is None:
        executor.folder = out / "submitit"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study.json", study.model_dump(mode="json"))
    log(f"{study.name}: {len(jobs)} runs on {', '.join(protocols)}; preparing data")
    indexes = prepare_data(study, out, protocols, root, os.cpu_count() or 1)
    outcome = execute(study, jobs, out, indexes, executor, log)
    payload = results_payload(study, protocols, students, seeds, outcome.done)
    markdown, merged = write_outputs(study, out, payload, replace, log, outcome.failed)
    log(markdown)
    failed = dict(outcome.failed)
    reports = {}
    wanted = study.swap.protocols or protocols[:1]
    for p in (p for p in wanted if p in protocols) if swap and study.swap.enabled else ():
        try:
            reports[p] = write_swap(study, out, merged["results"], p, indexes[p], log)
            log(f"SWAP report ({p}): {reports[p]['report']}")
        except Exception as exc:  # noqa: BLE001 - the table stands without it
            failed[f"swap {p}"] = failure_reason(exc)
    atomic_write_json(out / "failed.json", failed)
    return {"markdown": markdown, "failed": failed, "swap": reports}
