"""The whole mission in one command, on built-in synthetic data.

``fasdistill quickstart`` generates SynthSpoof, prepares face crops, trains a
ResNet-18 teacher, trains the swapnet student from scratch and distils it with the
best method of ``fasdistill study kd_gain`` (chosen there on dev and recorded in the
package, ``recipes/quickstart_method.json``), exports the distilled student to every
installed runtime (each file parity-checked), measures SWAP for teacher, distilled
and scratch students side by side and writes the report. Every stage records its
result in ``OUT/stages/<stage>.json``: a rerun skips finished stages, and a killed
training resumes from its ``last.pt``. It needs nothing but the installed package.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from fasdistill.config import BUILTIN_RECIPES, resolve_recipe
from fasdistill.errors import InputError
from fasdistill.utils.atomic import atomic_write_json

# The distillation method, chosen once from the kd_gain study's results
# (``python benchmarks/quickstart_method.py`` writes it); shipped with the recipes.
METHOD_FILE = BUILTIN_RECIPES / "quickstart_method.json"
STAGES = ("synth", "prepare", "teacher", "students", "export", "swap")


@dataclass(frozen=True)
class Budget:
    """Data size, optimiser steps and SWAP timing; ``seconds``: each stage's time on a
    2-vCPU VM (for ETAs)."""

    name: str
    subjects: int  # SynthSpoof subjects per domain
    teacher_steps: int  # batch 64
    student_steps: int  # batch 128
    seconds: tuple[float, ...]  # per stage, in STAGES order
    input_size: int = 64
    crop_size: int = 96
    image_size: int = 128
    latency_runs: int = 200  # SWAP timing (SwapOptions): runs, at least this many seconds,
    latency_seconds: float = 3.0
    bootstrap: int = 1000  # and resamples of the retention interval


BUDGETS = {
    # Every stage of the others in a few minutes on 2 cores: a check that it all runs, not a
    # result (its near-random models may fail INT8 decision parity; the run says so).
    "smoke": Budget(
        "smoke",
        subjects=4,
        teacher_steps=10,
        student_steps=20,
        seconds=(5, 2, 40, 20, 5, 15),
        input_size=32,
        crop_size=48,
        image_size=64,
        latency_runs=20,
        latency_seconds=0.2,
        bootstrap=200,
    ),
    "small": Budget("small", 40, 400, 300, (25, 5, 430, 225, 35, 75)),
    "full": Budget("full", 60, 810, 405, (40, 5, 1200, 330, 40, 80)),
}


def packaged_method(path: Path = METHOD_FILE) -> tuple[str, str]:
    """The distillation method the quick start uses, and why (data shipped in the package)."""
    try:
        choice = json.loads(path.read_text(encoding="utf-8"))
        method, dev_acer = str(choice["method"]), float(choice["dev_acer"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path}: unreadable method choice ({exc}); reinstall fasdistill"
        ) from None
    resolve_recipe(f"distill_{method}")  # a broken install fails here, before any work
    why = f"best mean dev ACER ({100 * dev_acer:.1f} %) of the kd_gain study on intra"
    return method, why


def train_run(
    recipe: str, overrides: list[str], index: Path, run: Path, threads: int, progress: bool
) -> dict[str, Any]:
    """Train (or resume) one run and evaluate its dev-selected checkpoint on dev and test."""
    import torch

    torch.set_num_threads(threads)
    from fasdistill.config import load_recipe
    from fasdistill.data.loader import read_crop_index
    from fasdistill.distill import fit
    from fasdistill.engine.evaluation import evaluate_checkpoint

    result_path = run / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    last = run / "checkpoints" / "last.pt"
    start = time.perf_counter()
    fit(
        load_recipe(recipe, overrides),
        index,
        run,
        resume=last.exists(),
        show_progress=progress,
    )
    report = evaluate_checkpoint(run / "checkpoints" / "best.pt", read_crop_index(index))
    keys = ("acer", "hter", "auc", "apcer", "bpcer")
    result = {
        "recipe": recipe,
        "overrides": overrides,
        "seconds": time.perf_counter() - start,
        "checkpoint": str(run / "checkpoints" / "best.pt"),
        "dev": {k: report["dev"][k] for k in keys},
        "test": {k: report["test"][k] for k in keys},
    }
    atomic_write_json(result_path, result)
    return result


class Quickstart:
    """The stages, their markers and the progress lines."""

    def __init__(
        self,
        out: Path,
        budget: Budget,
        log: Callable[[str], None] = print,
        formats: tuple[str, ...] | None = None,
        swap_options: Any = None,
        third_party_log: bool = False,
    ) -> None:
        self.out, self.budget, self.log = Path(out), budget, log
        self.formats = formats  # None: every format (those not installed are skipped)
        self.swap_options = swap_options  # None: SwapOptions() with the budget's timing
        self.third_party_log = third_party_log
        self.index = self.out / "crops" / "index.csv"
        self.started = time.perf_counter()
        self.spent: dict[str, float] = {}

    def check_out(self) -> None:
        settings = self.out / "quickstart.json"
        mine = json.loads(json.dumps({"budget": asdict(self.budget)}))  # tuples as lists
        if settings.exists():
            previous = json.loads(settings.read_text()).get("settings")
            if previous != mine:
                raise InputError(
                    f"{self.out} holds a quickstart with other settings "
                    f"({previous['budget']['name']} budget); use a new --out, or the same "
                    "--budget to resume"
                )
        elif self.out.exists() and any(self.out.iterdir()):
            raise InputError(f"--out {self.out}: directory is not empty and holds no quickstart")
        atomic_write_json(settings, {"settings": mine})

    def eta(self, stage: int) -> str:
        """Minutes left: the nominal time of the remaining stages, scaled by the pace so far."""
        nominal = self.budget.seconds
        done = [i for i, s in enumerate(STAGES) if s in self.spent]
        pace = 1.0
        if done:
            pace = sum(self.spent.values()) / max(1.0, sum(nominal[i] for i in done))
            pace = min(max(pace, 0.5), 3.0)
        left = sum(nominal[stage:]) * pace
        return f"about {left / 60:.0f} min left" if left >= 60 else "under a minute left"

    def stage(self, number: int, name: str, what: str, work: Callable[[], dict[str, Any]]) -> dict:
        marker = self.out / "stages" / f"{name}.json"
        head = f"[{number + 1}/{len(STAGES)}] {name}: {what}"
        if marker.exists():
            self.log(f"{head} (done before, skipped)")
            result = json.loads(marker.read_text())
            self.spent[name] = result.get("_seconds", 0.0)
            return result
        self.log(f"{head} ({self.eta(number)})")
        start = time.perf_counter()
        result = work()
        result["_seconds"] = time.perf_counter() - start
        self.spent[name] = result["_seconds"]
        atomic_write_json(marker, result)
        self.log(f"      {name} done in {result['_seconds']:.0f} s")
        return result

    def quietly(self, work: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        """``work`` with converters' and runtimes' noise sent to OUT/third_party.log.

        Only for the export and swap stages, and only from the command line (it redirects
        the process's file descriptors): training's progress bars stay on the terminal.
        """
        if not self.third_party_log:
            return work

        def run() -> dict[str, Any]:
            from fasdistill.utils.quiet import third_party_to_log

            with third_party_to_log(self.out / "third_party.log") as say:
                outer = self.log
                self.log = say if outer is print else outer
                try:
                    return work()
                finally:
                    self.log = outer

        return run

    # ------------------------------------------------------------------ the stages

    def synth(self) -> dict[str, Any]:
        from fasdistill.data.synth import SynthConfig, generate
        from fasdistill.data.synth.preview import contact_sheet

        config = SynthConfig(subjects=self.budget.subjects, size=self.budget.image_size)
        generate(self.out / "synth", config, workers=os.cpu_count())
        sheet = contact_sheet(config, self.out / "synthspoof-preview.png")
        return {"root": str(self.out / "synth"), "preview": str(sheet)}

    def prepare(self) -> dict[str, Any]:
        from fasdistill.data.prepare import PrepareConfig, prepare

        config = PrepareConfig(
            dataset="synthspoof",
            root=str(self.out / "synth"),
            protocol="intra",
            boxes="annotation",  # SynthSpoof's boxes are exact: no face detector, no [detect]
            size=self.budget.crop_size,
        )
        summary = prepare(config, self.index.parent, workers=os.cpu_count() or 1)
        return {"index": str(self.index), "crops": summary.get("rows")}

    def common(self, steps: int) -> list[str]:
        return [
            f"data.input_size={self.budget.input_size}",
            "train.epochs=1",
            f"train.min_steps={steps}",
        ]

    def teacher(self) -> dict[str, Any]:
        overrides = [*self.common(self.budget.teacher_steps), "data.workers=1"]
        threads = os.cpu_count() or 1
        return train_run(
            "teacher_resnet18", overrides, self.index, self.out / "teacher", threads, progress=True
        )

    def students(self, method: str) -> dict[str, Any]:
        """Scratch and distilled students side by side, one thread each (same budget and seed)."""
        teacher = self.out / "teacher" / "checkpoints" / "best.pt"
        base = [
            *self.common(self.budget.student_steps),
            "data.workers=0",
            "train.seed=0",
            "train.early_stop=null",
            "data.augment.resized_crop=[1.0,1.0]",
        ]
        jobs = {
            "scratch": ("student_swapnet", base),
            method: (
                f"distill_{method}",
                [*base, f"distill.teacher=[{teacher}]", "distill.cache=true"],
            ),
        }
        workers = min(len(jobs), os.cpu_count() or 1)
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {
                name: pool.submit(
                    train_run,
                    recipe,
                    overrides,
                    self.index,
                    self.out / "students" / name,
                    threads,
                    False,
                )
                for name, (recipe, overrides) in jobs.items()
            }
            return {name: future.result() for name, future in futures.items()}

    def export(self, checkpoint: str) -> dict[str, Any]:
        from fasdistill.export.pipeline import FORMATS, ExportOptions, export_checkpoint

        formats = self.formats or FORMATS
        options = ExportOptions(formats=formats, skip_unavailable=True, latency_runs=0)
        report = export_checkpoint(
            checkpoint,
            self.index,
            self.out / "export",
            options,
            log=lambda line: self.log(f"      {line}"),
        )
        return {
            "formats": sorted(report["formats"]),
            "skipped": report["skipped"],
            "failed": report.get("failed", {}),
        }

    def swap(self, checkpoints: list[str]) -> dict[str, Any]:
        from fasdistill.swap.measure import SwapOptions, run_swap
        from fasdistill.swap.report import write_reports

        out = self.out / "swap"
        b = self.budget
        timing = SwapOptions(
            latency_runs=b.latency_runs, latency_seconds=b.latency_seconds, bootstrap=b.bootstrap
        )
        swap = run_swap(
            [Path(c) for c in checkpoints],
            self.index,
            out,
            self.swap_options or timing,
            log=lambda line: self.log(f"      {line}"),
        )
        write_reports(swap, out)
        return {"report": str(out / "report.html"), "swap": str(out / "swap.json")}


def run_quickstart(
    out: str | os.PathLike[str],
    budget: str | Budget = "small",
    log: Callable[[str], None] = print,
    formats: tuple[str, ...] | None = None,
    swap_options: Any = None,
    third_party_log: bool = False,
) -> dict[str, Any]:
    """Run (or resume) every stage; returns the headline (also in OUT/headline.json).

    ``formats`` and ``swap_options`` narrow the export and the timing (tests use them).
    ``third_party_log`` sends the export and swap stages' third-party output to
    OUT/third_party.log (the command line sets it; it redirects file descriptors).
    """
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise InputError(f"unknown budget {budget!r}; choose one of {', '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    method, why = packaged_method()
    for recipe in ("teacher_resnet18", "student_swapnet"):
        resolve_recipe(recipe)
    quick = Quickstart(Path(out), budget, log, formats, swap_options, third_party_log)
    quick.check_out()
    b = quick.budget
    quick.stage(0, "synth", f"SynthSpoof, {b.subjects} subjects x 4 domains", quick.synth)
    quick.stage(1, "prepare", f"{b.crop_size} px face crops, protocol intra", quick.prepare)
    teacher = quick.stage(2, "teacher", f"ResNet-18, {b.teacher_steps} steps", quick.teacher)
    what = f"swapnet from scratch and with {method} ({why}), {b.student_steps} steps each"
    students = quick.stage(3, "students", what, lambda: quick.students(method))
    distilled, scratch = students[method], students["scratch"]
    exported = quick.stage(
        4,
        "export",
        "the distilled student to every installed runtime",
        quick.quietly(lambda: quick.export(distilled["checkpoint"])),
    )
    checkpoints = [teacher["checkpoint"], distilled["checkpoint"], scratch["checkpoint"]]
    report = quick.stage(
        5,
        "swap",
        "teacher vs students, measured side by side",
        quick.quietly(lambda: quick.swap(checkpoints)),
    )
    swap = json.loads(Path(report["swap"]).read_text())
    headline = summarise(swap, method, why)
    # What failed is told, not hidden in the log: the rest of the run is still complete.
    headline["failed"] = [
        f"export {fmt}: {reason}" for fmt, reason in exported.get("failed", {}).items()
    ] + [f"swap {c['model']} in {c['runtime']}: {c['reason']}" for c in swap.get("left_out", [])]
    headline["report"] = report["report"]
    headline["minutes"] = sum(quick.spent.values()) / 60
    atomic_write_json(quick.out / "headline.json", headline)
    return headline


def summarise(swap: dict[str, Any], method: str, why: str) -> dict[str, Any]:
    """The numbers the quick start prints, from its swap.json (None: a cell not measured)."""
    teacher, distilled, scratch = swap["models"]
    # The report's headline runtime: every model was measured in it, if any runtime qualifies.
    runtime = swap.get("headline_runtime", swap["options"]["runtimes"][0])
    vs = distilled["vs_reference"]
    versus = vs.get(runtime) or {}
    return {
        "method": method,
        "method_reason": why,
        "runtime": runtime,
        "teacher_params": teacher["weight"]["params"],
        "student_params": distilled["weight"]["params"],
        "teacher_ms": _batch1_ms(teacher, runtime),
        "student_ms": _batch1_ms(distilled, runtime),
        "scratch_ms": _batch1_ms(scratch, runtime),
        "speedup": versus.get("speedup"),
        "energy_ratio": versus.get("energy_ratio"),
        "energy_source": (distilled["power"].get(runtime) or {}).get("energy_source"),
        "retention": vs["accuracy"]["retention"],
        "retention_ci": vs["accuracy"]["retention_ci"],
        "acer": {
            "teacher": teacher["test"]["acer"],
            "distilled": distilled["test"]["acer"],
            "scratch": scratch["test"]["acer"],
        },
        "auc": {
            "teacher": teacher["test"]["auc"],
            "distilled": distilled["test"]["auc"],
            "scratch": scratch["test"]["auc"],
        },
    }


def _batch1_ms(model: dict[str, Any], runtime: str) -> float | None:
    cell = model["latency"].get(runtime)
    return cell["batch1"]["median_ms"] if cell else None


def _num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def headline_lines(h: dict[str, Any]) -> list[str]:
    """The table and verdict the command prints; the last lines say what failed, if anything."""
    acer, auc = h["acer"], h["auc"]
    lo, hi = h["retention_ci"] if h["retention_ci"] else (float("nan"), float("nan"))
    lines = [
        "",
        f"| model | params | {h['runtime']} ms (batch 1, 1 thread) | test ACER | test AUC |",
        "|---|---|---|---|---|",
        f"| teacher (ResNet-18) | {h['teacher_params'] / 1e6:.2f} M | "
        f"{_num(h['teacher_ms'], '.3f')} | {100 * acer['teacher']:.1f} % | {auc['teacher']:.3f} |",
        f"| student, {h['method']} | {h['student_params'] / 1e6:.3f} M | "
        f"{_num(h['student_ms'], '.3f')} | {100 * acer['distilled']:.1f} % | "
        f"{auc['distilled']:.3f} |",
        f"| student, scratch | {h['student_params'] / 1e6:.3f} M | "
        f"{_num(h['scratch_ms'], '.3f')} | {100 * acer['scratch']:.1f} % | {auc['scratch']:.3f} |",
        "",
        f"speed-up {_num(h['speedup'], '.1f')}x, "
        f"parameters {h['teacher_params'] / h['student_params']:.0f}x fewer, "
        f"retention (1 - ACER_s) / (1 - ACER_t) {100 * h['retention']:.1f} % "
        f"[{100 * lo:.1f}, {100 * hi:.1f}], energy per inference "
        f"{_num(h['energy_ratio'], '.2f')}x the teacher's ({h['energy_source'] or 'n/a'})",
    ]
    if acer["distilled"] < acer["scratch"]:
        lines.append(
            f"distillation helped: test ACER {100 * acer['distilled']:.1f} % vs "
            f"{100 * acer['scratch']:.1f} % for the same student trained alone (one seed)"
        )
    else:
        lines.append(
            f"distillation did NOT help here: test ACER {100 * acer['distilled']:.1f} % vs "
            f"{100 * acer['scratch']:.1f} % for the same student trained alone (one seed; "
            "the kd_gain study measures it over seeds)"
        )
    lines.append(f"report: {h['report']}  ({h['minutes']:.1f} min)")
    failed = h.get("failed", [])
    if failed:
        lines.append(f"{len(failed)} part(s) failed; everything else is complete:")
        lines += [f"  - {reason}" for reason in failed]
    return lines
