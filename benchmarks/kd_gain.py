"""Does distillation help? Teacher, scratch student and distilled students on SynthSpoof.

For each protocol (the default ``intra`` and one leave-one-domain-out protocol) it
trains a ResNet-18 teacher (with photometric domain randomisation on the
leave-one-domain-out protocol), the swapnet student from scratch, and the student
distilled with each method, every student with several seeds and the same budget
(optimiser steps, so it means the same on any dataset size). Every checkpoint is
chosen on dev; the threshold is fixed on dev (EER) and applied to test. It prints
and writes a table of dev ACER, test ACER / HTER / AUC (mean ± std over seeds), the
retention (1 - ACER_student) / (1 - ACER_teacher), the per-seed gain over the student
trained alone and the training time per run. On lodo protocols the students named in
DR_METHODS (asked for with --methods) also see the teacher's domain randomisation;
the ``*_full`` ones learn from that teacher recipe trained on the full-size crops.

Everything is resumable: a finished run keeps its ``result.json`` and is not run
again; an interrupted one continues from its ``last.pt``.

    python benchmarks/kd_gain.py --out runs/kd_gain                 # the full table
    python benchmarks/kd_gain.py --out runs/kd_gain_quick --quick   # intra, KD only, 1 seed
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fasdistill.config import BUILTIN_RECIPES
from kd_gain_table import dev_best, merge_results, read_results_file, table

RECIPES = BUILTIN_RECIPES  # the recipes that ship inside the package
OUTPUT_METHODS = ("kd", "kd_std", "dkd", "dist")
FEATURE_METHODS = ("fitnet", "at")
ENSEMBLE_METHODS = ("multi_teacher",)  # lodo protocols only: needs the teachers below
# lodo protocols only: students that see the lodo teacher's photometric domain
# randomisation: name -> (the method they train like, what the teacher scores:
# "same", each augmented view, uncached; "clean", the crop before jitter and blur).
DR_METHODS = {
    "scratch_dr": ("scratch", None),
    "kd_dr": ("kd", "same"),
    "kd_dr_clean": ("kd", "clean"),
    "fitnet_dr_clean": ("fitnet", "clean"),
    "at_dr_clean": ("at", "clean"),
    "kd_dr_clean_devbest": ("kd", "clean"),
    "pixel_dr_clean": ("pixel", "clean"),
    "multi_teacher_dr_clean": ("multi_teacher", "clean"),
    "kd_dr_clean_full": ("kd", "clean"),
    "pixel_dr_clean_full": ("pixel", "clean"),
}
# The lodo teacher recipe with seeds 0 and 1. A "*_devbest" student learns from the
# one with the lower dev ACER (then the higher dev AUC; dev only, never test), a DR
# multi_teacher student from both.
LODO_SEEDS = ("teacher", "teacher_seed1")
CROP_SIZE = 96  # the prepared crops' side
# The lodo teacher recipe trained on the stored crops at their full size instead of the
# students' input size; a "*_full" student learns from it (its cached outputs are
# computed on the full-size crops, so it sees detail the student's input has lost).
FULL_SIZE_TEACHER = "teacher_full"
ALL_METHODS = ("scratch", *OUTPUT_METHODS, *FEATURE_METHODS, *ENSEMBLE_METHODS, *DR_METHODS)
# The multi_teacher row's teachers besides the lodo teacher: other recipes, another
# seed and another architecture (name -> recipe, overrides beyond the teacher budget).
ENSEMBLE = {
    "teacher_plain": ("teacher_resnet18", []),
    "teacher_strong": (
        "teacher_resnet18_xdomain",
        ["data.augment.colour_jitter=0.4", "data.augment.blur=0.5", "train.early_stop=null"],
    ),
    "teacher_seed1": ("teacher_resnet18_xdomain", ["train.seed=1"]),
    "teacher_r34": ("teacher_resnet18_xdomain", ["model.name=resnet34"]),
}
# Every teacher beside "teacher": name -> (recipe, or None for the protocol's teacher
# recipe, overrides beyond the teacher budget).
EXTRA_TEACHERS = {**ENSEMBLE, FULL_SIZE_TEACHER: (None, [f"data.input_size={CROP_SIZE}"])}


@dataclass
class Budget:
    """Input side and optimiser steps of teachers and students (the same for every student)."""

    input_size: int = 64
    teacher_steps: int = 810  # batch 64: 45 epochs of the 1,152 intra training crops
    student_steps: int = 405  # batch 128: 45 epochs of the same crops
    subjects: int = 60  # SynthSpoof subjects per domain
    lodo_teacher: str = "teacher_resnet18_xdomain"  # the teacher recipe on lodo protocols
    teacher_patience: str = "recipe"  # teachers' early stopping: the recipe's, "none" or epochs
    difficulty: float = 0.5  # SynthSpoof's attack-trace difficulty (0.5: its default)


@dataclass
class Job:
    name: str  # e.g. "intra/kd/seed0"
    protocol: str
    method: str  # "teacher", "scratch" or a distillation recipe suffix
    seed: int
    after: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- data


def prepare_data(out: Path, protocols: list[str], budget: Budget) -> dict[str, Path]:
    """SynthSpoof at the budget's difficulty, and crops per protocol (both resumable)."""
    from fasdistill.data.prepare import PrepareConfig, prepare
    from fasdistill.data.synth import SynthConfig, generate

    synth = out / "synth"
    config = SynthConfig(subjects=budget.subjects, size=128, difficulty=budget.difficulty)
    generate(synth, config, workers=os.cpu_count())
    indexes = {}
    for protocol in protocols:
        crops = out / f"crops_{protocol}"
        config = PrepareConfig(
            dataset="synthspoof", root=str(synth), protocol=protocol, size=CROP_SIZE
        )
        prepare(config, crops, workers=os.cpu_count() or 1)
        indexes[protocol] = crops / "index.csv"
    return indexes


# ---------------------------------------------------------------------------- one run


def teachers_of(job: Job, out: Path) -> list[Path]:
    """The teacher checkpoints a distilled run learns from."""
    if job.method.endswith("_devbest"):
        found = out / job.protocol
        names = [
            dev_best({n: json.loads((found / n / "result.json").read_text()) for n in LODO_SEEDS})
        ]
    elif seed_teachers(job.method):
        names = list(LODO_SEEDS)
    elif job.method.endswith("_full"):
        names = [FULL_SIZE_TEACHER]
    elif job.method in ENSEMBLE_METHODS:
        names = ["teacher", *ENSEMBLE]
    else:
        names = ["teacher"]
    return [out / job.protocol / name / "checkpoints" / "best.pt" for name in names]


def seed_teachers(method: str) -> bool:
    """Does this student learn from (or choose among) the lodo recipe's seeds?"""
    ensemble = method in DR_METHODS and DR_METHODS[method][0] in ENSEMBLE_METHODS
    return method.endswith("_devbest") or ensemble


def run_overrides(job: Job, budget: Budget, teachers: list[Path]) -> tuple[Path, list[str]]:
    """The recipe and the overrides of one run; the budget is set in steps."""
    if job.method.startswith("teacher"):  # early stopping on dev as in its recipe
        # An unseen domain needs a teacher that cannot key on its source domains'
        # photometry; within the domains colour and blur are attack cues (see the recipes).
        recipe = budget.lodo_teacher if job.protocol.startswith("lodo") else "teacher_resnet18"
        own, extra = EXTRA_TEACHERS.get(job.method, (None, []))
        recipe = own or recipe
        return RECIPES / f"{recipe}.yaml", [
            f"data.input_size={budget.input_size}",
            "data.workers=1",
            "train.epochs=1",
            f"train.min_steps={budget.teacher_steps}",
            *patience(budget),
            *extra,
        ]
    students = [
        f"data.input_size={budget.input_size}",
        "data.workers=0",
        "train.epochs=1",
        f"train.min_steps={budget.student_steps}",
        "train.early_stop=null",
        f"train.seed={job.seed}",
        "train.log_every=50",
        # Every student sees the same augmentation: flips only, which also lets the
        # distilled ones reuse cached teacher outputs and features.
        "data.augment.resized_crop=[1.0,1.0]",
    ]
    method, view = DR_METHODS.get(job.method, (job.method, None))
    if job.method in DR_METHODS:
        students += domain_randomisation(budget)
    if method == "scratch":
        return RECIPES / "student_swapnet.yaml", students
    listed = ",".join(str(t) for t in teachers)
    # Cached unless the teacher scores every augmented view.
    cache = "false" if view == "same" else "true"
    overrides = [*students, f"distill.teacher=[{listed}]", f"distill.cache={cache}"]
    if view == "clean":
        overrides.append("distill.teacher_view=clean")
    return RECIPES / f"distill_{method}.yaml", overrides


def domain_randomisation(budget: Budget) -> list[str]:
    """The lodo teacher recipe's photometric augmentation, as overrides for a student."""
    from fasdistill.config import load_recipe

    augment = load_recipe(RECIPES / f"{budget.lodo_teacher}.yaml").data.augment
    return [
        f"data.augment.colour_jitter={augment.colour_jitter}",
        f"data.augment.blur={augment.blur}",
    ]


def patience(budget: Budget) -> list[str]:
    """The teachers' early-stopping override, if the budget changes the recipe's."""
    if budget.teacher_patience == "recipe":
        return []
    value = "null" if budget.teacher_patience == "none" else int(budget.teacher_patience)
    return [f"train.early_stop={value}"]


def run_job(job: Job, out: Path, index: Path, budget: Budget, threads: int) -> dict[str, Any]:
    """Train (or resume) one run, then evaluate its dev-selected checkpoint on dev and test."""
    import torch

    torch.set_num_threads(threads)
    from fasdistill.config import load_recipe
    from fasdistill.distill import fit

    run_dir = out / job.name
    result_path = run_dir / "result.json"
    recipe, overrides = run_overrides(job, budget, teachers_of(job, out))
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if result.get("test_set") == test_fingerprint(index):
            return result
        # The protocol's test split changed (train and dev did not: the checkpoint
        # still stands), so evaluate the finished run again instead of retraining it.
        return summarise(job, run_dir, index, recipe, result["overrides"], result["wall_seconds"])
    config = load_recipe(recipe, overrides)
    # A run killed before its first checkpoint starts again (fit() replaces its files).
    last = run_dir / "checkpoints" / "last.pt"
    start = time.perf_counter()
    fit(config, index, run_dir, resume=last.exists(), show_progress=False)
    return summarise(job, run_dir, index, recipe, overrides, time.perf_counter() - start)


def test_fingerprint(index: Path) -> dict[str, Any]:
    """Size and SHA-256 of an index's test rows: a result is valid only for this test set."""
    import csv
    import hashlib

    with index.open(newline="") as handle:
        paths = sorted(
            r["crop_path"]
            for r in csv.DictReader(handle)
            if r["split"] == "test" and r["status"] == "ok"
        )
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()
    return {"crops": len(paths), "sha256": digest}


def summarise(
    job: Job, run_dir: Path, index: Path, recipe: Path, overrides: list[str], wall: float
) -> dict[str, Any]:
    """Evaluate a finished run's dev-selected checkpoint and write its ``result.json``."""
    from fasdistill.data.loader import read_crop_index
    from fasdistill.engine.checkpoint import load_checkpoint
    from fasdistill.engine.evaluation import evaluate_checkpoint
    from fasdistill.utils.atomic import atomic_write_json

    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    report = evaluate_checkpoint(run_dir / "checkpoints" / "best.pt", read_crop_index(index))
    keys = ("acer", "hter", "auc", "apcer", "bpcer", "eer")
    result = {
        "job": job.name,
        "method": job.method,
        "seed": job.seed,
        "recipe": recipe.stem,  # the name `--recipe` takes (older results: recipes/<name>.yaml)
        "overrides": overrides,
        "epochs": state["epoch"],
        "steps": state["global_step"],
        "best_epoch": state["best"]["epoch"],
        "train_seconds": sum(h["seconds"] for h in state["history"]),
        "wall_seconds": wall,
        "test_set": test_fingerprint(index),
        "threshold": report["threshold"],
        "dev": {k: report["dev"][k] for k in keys},
        "test": {k: report["test"][k] for k in keys},
    }
    atomic_write_json(run_dir / "result.json", result)
    return result


# ---------------------------------------------------------------------------- schedule


def plan(protocols: list[str], methods: list[str], seeds: list[int]) -> list[Job]:
    """Jobs in priority order: teachers first, then seed by seed, protocol by protocol.

    ``multi_teacher`` runs on lodo protocols only, after the ensemble's teachers;
    the DR students on lodo protocols only.
    """
    lodo = [p for p in protocols if p.startswith("lodo")]
    seeded = [m for m in methods if seed_teachers(m)]
    extra = [*ENSEMBLE] if "multi_teacher" in methods else []  # teachers beside "teacher"
    extra += [n for n in LODO_SEEDS[1:] if seeded and n not in extra]
    full = [m for m in methods if m.endswith("_full")]
    extra += [FULL_SIZE_TEACHER] if full else []
    jobs = [Job(f"{p}/teacher", p, "teacher", 0) for p in protocols]
    jobs += [Job(f"{p}/{name}", p, name, 0) for p in lodo for name in extra]
    for seed in seeds:
        for p in protocols:
            for m in methods:
                if (m in ENSEMBLE_METHODS or m in DR_METHODS) and p not in lodo:
                    continue
                after = [] if m.startswith("scratch") else [f"{p}/teacher"]
                after += [f"{p}/{name}" for name in ENSEMBLE] if m in ENSEMBLE_METHODS else []
                after += [f"{p}/{name}" for name in LODO_SEEDS[1:]] if m in seeded else []
                after += [f"{p}/{FULL_SIZE_TEACHER}"] if m in full else []
                jobs.append(Job(f"{p}/{m}/seed{seed}", p, m, seed, after))
    return jobs


def execute(
    jobs: list[Job], out: Path, indexes: dict[str, Path], budget: Budget, parallel: int
) -> dict[str, dict[str, Any]]:
    """Run jobs ``parallel`` at a time (1 thread each), respecting teacher-first order."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    done: dict[str, dict[str, Any]] = {}
    pending = list(jobs)
    running: dict[Future, Job] = {}
    with ProcessPoolExecutor(parallel, mp_context=get_context("spawn")) as pool:
        while pending or running:
            for job in list(pending):
                if len(running) >= parallel:
                    break
                if all(dep in done for dep in job.after):
                    pending.remove(job)
                    index = indexes[job.protocol]
                    running[pool.submit(run_job, job, out, index, budget, threads)] = job
            if not running:
                raise RuntimeError(f"jobs wait on runs that failed: {[j.name for j in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                done[job.name] = future.result()
                r = done[job.name]
                print(
                    f"{time.strftime('%H:%M:%S')} {job.name}: test ACER "
                    f"{100 * r['test']['acer']:.2f}% AUC {r['test']['auc']:.3f} "
                    f"({r['wall_seconds'] / 60:.1f} min)",
                    flush=True,
                )
    return done


def finished_runs(out: Path, jobs: list[Job]) -> dict[str, dict[str, Any]]:
    """The ``result.json`` of every planned job that finished in ``out``."""
    return {
        job.name: json.loads((out / job.name / "result.json").read_text())
        for job in jobs
        if (out / job.name / "result.json").exists()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/kd_gain"))
    parser.add_argument("--quick", action="store_true", help="intra, scratch + KD, 1 seed")
    parser.add_argument("--protocols", help="default: intra,lodo_phone (or a --results file's)")
    parser.add_argument(  # the DR students are asked for by name (see DR_METHODS)
        "--methods", help="default: every method but the DR students (or a --results file's)"
    )
    parser.add_argument("--seeds", help="default: 0,1,2 (or a --results file's)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (1 thread each)")
    parser.add_argument("--input-size", type=int, default=Budget.input_size)
    parser.add_argument("--teacher-steps", type=int, default=Budget.teacher_steps)
    parser.add_argument("--student-steps", type=int, default=Budget.student_steps)
    parser.add_argument("--subjects", type=int, default=Budget.subjects, help="per domain")
    parser.add_argument(
        "--difficulty", type=float, default=Budget.difficulty, help="SynthSpoof's, 0..1"
    )
    parser.add_argument(
        "--lodo-teacher",
        choices=["teacher_resnet18_xdomain", "teacher_resnet18"],
        default=Budget.lodo_teacher,
        help="teacher recipe on lodo protocols (teacher_resnet18: without domain randomisation)",
    )
    parser.add_argument(
        "--teacher-patience",
        default=Budget.teacher_patience,
        help="teachers' early stopping in epochs without a better dev ACER: 'recipe' "
        "(its early_stop), 'none' (train the whole budget, keep the dev-best epoch) or N",
    )
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="train nothing: tabulate the runs finished in --out (and its kd_gain.json), or "
        "the --results files",
    )
    parser.add_argument(
        "--results",
        type=Path,
        nargs="+",
        help="with --table-only: results files to tabulate, one table each (e.g. the committed "
        "benchmarks/results/kd_gain*.json); they are read, never written",
    )
    parser.add_argument(
        "--replace-results",
        action="store_true",
        help="write OUT/kd_gain.json with this invocation's runs only, even if it held more "
        "(default: merge, so a results file never loses runs)",
    )
    args = parser.parse_args()
    if args.results and not args.table_only:
        parser.error("--results is read by --table-only only")
    if args.teacher_patience not in ("recipe", "none") and not args.teacher_patience.isdigit():
        parser.error(f"--teacher-patience: 'recipe', 'none' or N, got {args.teacher_patience!r}")
    if args.results:
        for path in args.results:
            tabulate_file(path, args)
        return
    protocols = (args.protocols or "intra,lodo_phone").split(",")
    methods = (
        args.methods.split(",") if args.methods else [m for m in ALL_METHODS if m not in DR_METHODS]
    )
    seeds = [int(s) for s in (args.seeds or "0,1,2").split(",")]
    budget = Budget(
        input_size=args.input_size,
        teacher_steps=args.teacher_steps,
        student_steps=args.student_steps,
        subjects=args.subjects,
        lodo_teacher=args.lodo_teacher,
        teacher_patience=args.teacher_patience,
        difficulty=args.difficulty,
    )
    if args.quick:  # a shorter teacher, which dominates the time; one run at a time on all cores
        protocols, methods, seeds = ["intra"], ["scratch", "kd"], [0]
        budget.teacher_steps, budget.student_steps = 360, 270
        args.parallel = 1
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    start = time.perf_counter()
    jobs = plan(protocols, methods, seeds)
    results_path = args.out / "kd_gain.json"
    if args.table_only:
        stored = read_results_file(results_path)["results"] if results_path.exists() else {}
        planned = {job.name for job in jobs}
        results = {k: v for k, v in stored.items() if k in planned}
        results |= finished_runs(args.out, jobs)
        if not results:
            raise SystemExit(
                f"{args.out}: no finished runs of this plan (no result.json, no kd_gain.json "
                "entries); nothing to tabulate. Committed results: --results FILE"
            )
    else:
        indexes = prepare_data(args.out, protocols, budget)
        results = execute(jobs, args.out, indexes, budget, args.parallel)
    markdown = render(results, protocols, methods, budget.difficulty)
    from fasdistill.engine.provenance import git_commit, versions
    from fasdistill.utils.atomic import atomic_write_json, atomic_write_text

    payload = {
        "budget": vars(budget),
        "protocols": protocols,
        "methods": methods,
        "seeds": seeds,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "versions": versions(),
        "git_commit": git_commit(),
        "results": results,
    }
    merged, kept = merge_results(results_path, payload, args.replace_results)
    atomic_write_json(results_path, merged)
    atomic_write_text(args.out / "kd_gain.md", markdown + "\n")
    print(markdown)
    if kept:
        print(f"{results_path}: kept {len(kept)} earlier runs outside this plan")
    print(f"total {math.ceil((time.perf_counter() - start) / 60)} min; wrote {args.out}/kd_gain.md")


def render(
    results: dict[str, dict[str, Any]],
    protocols: list[str],
    methods: list[str],
    difficulty: float | None,
) -> str:
    """The Markdown tables of these runs, with this benchmark's teachers and DR students."""
    return table(
        results,
        protocols,
        methods,
        ENSEMBLE,
        LODO_SEEDS,
        DR_METHODS,
        FULL_SIZE_TEACHER,
        difficulty,
    )


def tabulate_file(path: Path, args: argparse.Namespace) -> None:
    """Print the table of a results file: its protocols, methods and seeds unless narrowed."""
    data = read_results_file(path)
    protocols = args.protocols.split(",") if args.protocols else data["protocols"]
    methods = args.methods.split(",") if args.methods else data["methods"]
    seeds = {int(s) for s in args.seeds.split(",")} if args.seeds else set(data["seeds"])
    results = {
        k: r
        for k, r in data["results"].items()
        if k.split("/")[0] in protocols and (k.count("/") == 1 or r["seed"] in seeds)
    }
    print(f"<!-- python benchmarks/kd_gain.py --table-only --results {path} -->")
    print(render(results, protocols, methods, data["budget"].get("difficulty")))


if __name__ == "__main__":
    main()
