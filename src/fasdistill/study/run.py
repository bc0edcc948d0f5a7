"""Running a study: its runs (``jobs``) on an executor (``executors``), then its table
and the SWAP report of the reference teacher against the dev-chosen student.
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.study.executors import Executor, Log, execute
from fasdistill.study.jobs import check_jobs, checkpoint, dataset_root, prepare_data
from fasdistill.study.results import (
    check_compatible,
    finished_runs,
    merge_results,
    read_results_file,
)
from fasdistill.study.spec import Job, Study, plan, plan_names
from fasdistill.study.table import dev_key, student_runs, table
from fasdistill.utils.text import failure_reason

# ---------------------------------------------------------------------------- SWAP


def chosen_student(study: Study, results: dict[str, dict[str, Any]], protocol: str) -> str | None:
    """The dev-chosen student run on ``protocol``: the student with the lowest mean dev
    ACER over its seeds (then the highest mean dev AUC), and its seed with the lowest
    dev ACER. Dev only: test figures are never looked at."""
    found = {s: student_runs(results, protocol, s) for s in study.student_order()}
    means = {
        s: tuple(statistics.fmean(k) for k in zip(*map(dev_key, runs), strict=True))
        for s, runs in found.items()
        if runs
    }
    if not means:
        return None
    best = min(means, key=lambda s: means[s])
    return min(found[best], key=dev_key)["job"]


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
    checkpoints = [checkpoint(out, name) for name in (teacher, student)]
    # labelled by run: "teacher", "kd/seed0" (the protocol is the report's folder)
    labels = [name.split("/", 1)[1] for name in (teacher, student)]
    swap = run_swap(
        checkpoints, index, folder, options, lambda line: log(f"  swap: {line}"), labels
    )
    write_reports(swap, folder)
    return {"teacher": teacher, "student": student, "report": str(folder / "report.html")}


# ---------------------------------------------------------------------------- the study


def settings(study: Study) -> dict[str, Any]:
    """What a results file's runs must share to be merged: the budget and the data."""
    return {
        "budget": study.budget.model_dump(mode="json"),
        "data": study.data.model_dump(mode="json"),
    }


def results_payload(
    study: Study, protocols: list[str], students: list[str], seeds: list[int], results: dict
) -> dict[str, Any]:
    from fasdistill.engine.provenance import git_commit, versions

    return {
        "study": study.name,
        **settings(study),
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
    protocols, students, _ = plan_names(jobs)
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
    stored = out / "results.json"  # one of another budget or data: refused now, not after
    if stored.exists() and not replace:
        check_compatible(stored, read_results_file(stored), settings(study))
    protocols, students, seeds = plan_names(jobs)
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
