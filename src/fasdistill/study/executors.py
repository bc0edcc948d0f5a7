"""Where a study's runs go: a local process pool or a scheduler through ``submitit``.

Runs are independent jobs, each submitted when the runs it needs have finished.
``local``: a process pool, one run per worker with cores / workers threads;
``submitit``: SLURM; ``submitit-local``: submitit's local executor (the same
submission path on this machine). A run that fails is reported with its reason and
the runs that need it are skipped; the rest finish.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.study.jobs import run_job
from fasdistill.study.spec import Job, Study
from fasdistill.utils.text import failure_reason

Log = Callable[[str], None]
EXECUTORS = ("local", "submitit", "submitit-local")


def job_failure(error: BaseException) -> str:
    """Why a job failed, as one line; a scheduler's wrapped traceback gives its last line."""
    text = str(error)
    if "Traceback (most recent call last)" in text:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else text
        return last.removeprefix("fasdistill.errors.")[:300]
    return failure_reason(error)


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
