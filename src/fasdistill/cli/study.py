"""``fasdistill study``: a declared grid of teachers, students, methods and seeds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: integers, got {text!r}") from None


def add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study: teachers, students and methods over protocols and seeds, "
        "selected on dev; writes the table and a SWAP report",
        description="Run a study declared in a YAML file (or a packaged study by name: "
        "`fasdistill study --list`). Every run is resumable and selected on dev; the "
        "threshold is fixed on dev. Writes OUT/results.json (merged, never fewer runs), "
        "OUT/<study>.md (dev/test ACER, HTER, AUC, retention, paired gain per seed, minutes "
        "per run) and OUT/swap/<protocol>/report.html (the teacher against the dev-chosen "
        "student).",
    )
    p.add_argument("study", nargs="?", help="a study YAML file or a packaged study's name")
    p.add_argument("--out", type=Path, help="the study's folder (default: runs/<study>)")
    p.add_argument("--list", action="store_true", help="list the packaged studies")
    p.add_argument("--show", action="store_true", help="print the study (base merged) as YAML")
    p.add_argument("--root", help="the dataset's root (for studies on a public dataset)")
    p.add_argument("--protocols", help="only these protocols (comma-separated)")
    p.add_argument("--students", help="only these students (comma-separated)")
    p.add_argument("--seeds", help="only these seeds (comma-separated)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change the study, e.g. --set budget.student_steps=100 (repeatable)",
    )
    p.add_argument("--parallel", type=int, default=2, help="local: runs at a time (default 2)")
    p.add_argument(
        "--executor",
        default="local",
        choices=["local", "submitit", "submitit-local"],
        help="local: a process pool; submitit: a cluster scheduler (SLURM); "
        "submitit-local: submitit's local executor",
    )
    p.add_argument(
        "--executor-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="submitit parameter, e.g. slurm_partition=gpu, gpus_per_node=1, cpus_per_task=8",
    )
    p.add_argument("--no-swap", action="store_true", help="skip the SWAP report")
    p.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: tabulate the finished runs in --out, or the --results files; "
        "every planned run must be there (a table is never made from fewer)",
    )
    p.add_argument(
        "--results",
        type=Path,
        nargs="+",
        help="with --table-only: results files to tabulate (e.g. benchmarks/results/"
        "kd_gain.json); read, never written",
    )
    p.add_argument(
        "--replace-results",
        action="store_true",
        help="write OUT/results.json with this invocation's runs only (default: merge)",
    )
    p.set_defaults(handler=_run_study, stage="study")


def _run_study(args: argparse.Namespace) -> int:
    from fasdistill.errors import InputError
    from fasdistill.study.spec import builtin_study_names, load_study, plan

    if args.list:
        for name in builtin_study_names():
            study = load_study(name)
            print(f"{name:<28}  {study.description.strip().splitlines()[0]}")
        print("\nuse: fasdistill study NAME --out DIR; --show prints one as YAML")
        return 0
    if args.study is None:
        raise InputError("name a study (a YAML file or a packaged name; --list lists them)")
    if args.results and not args.table_only:
        raise InputError("--results is read by --table-only only")
    params = {}
    for item in args.executor_param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--executor-param {item!r}: expected KEY=VALUE")
        params[key] = int(value) if value.isdigit() else value
    study = load_study(args.study, args.overrides)
    if args.show:
        import yaml

        sys.stdout.write(yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
        return 0
    protocols, students = _names(args.protocols), _names(args.students)
    seeds = _seeds(args.seeds)
    out = args.out or Path("runs") / study.name
    from fasdistill.study.executors import Executor
    from fasdistill.study.run import run_study, tabulate

    if args.table_only:
        jobs = plan(study, protocols, students, seeds)
        for path in args.results or [None]:
            if path is not None:
                print(f"<!-- fasdistill study {args.study} --table-only --results {path} -->")
            print(tabulate(study, jobs, out=out, results_file=path))
        return 0
    executor = Executor(args.executor, args.parallel, out / "submitit", params)
    outcome = run_study(
        study,
        out,
        protocols,
        students,
        seeds,
        args.root,
        executor,
        args.replace_results,
        swap=not args.no_swap,
    )
    print(f"wrote {out}/{study.name}.md and {out}/results.json")
    if outcome["failed"]:
        for what, reason in outcome["failed"].items():
            print(f"failed: {what}: {reason}", file=sys.stderr)
        print(f"{len(outcome['failed'])} parts failed (OUT/failed.json); the rest finished")
        return 1
    return 0
