"""A study declared as data: its schema, the packaged studies, and the plan of its runs.

A study file (YAML) names the data (SynthSpoof settings, a dataset adapter and its
root, or prepared indexes), the protocols, the budget, the teachers (recipe,
overrides, seeds), the students (recipe, teachers, overrides, seeds) and the table.
:func:`plan` turns it into jobs: every teacher run a planned student needs, then the
students seed by seed; a job's name (``intra/teacher``, ``intra/kd/seed0``) is its
folder under the study's output and its key in the results file.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from fasdistill.config import _set_path, parse_overrides
from fasdistill.errors import InputError
from fasdistill.schema import Section
from fasdistill.utils.packaged import packaged_names, resolve_packaged

# The studies shipped inside the package (``fasdistill study --list`` lists them).
BUILTIN_STUDIES = Path(__file__).resolve().parent.parent / "studies"


class SynthData(Section):
    """SynthSpoof generated inside the study's folder (same settings -> same bytes)."""

    subjects: int = 60  # per domain
    size: int = 128
    difficulty: float = 0.5
    seed: int = 0
    # Face boxes for the crops: SynthSpoof's own (auto), or a detector's, so that
    # training crops are cut as prediction on camera frames will cut them.
    boxes: str = "auto"
    detector: str = "blazeface"
    # Sensors to render and crop: [rgb] or [rgb, depth, ir] (registered depth and NIR).
    modalities: list[str] = Field(default_factory=lambda: ["rgb"])


class DatasetData(Section):
    """A public dataset through its adapter; the root is the user's (``--root``)."""

    name: str  # the adapter: oulu-npu, cross-domain, replay-attack, ... (`fasdistill prepare`)
    root: str | None = None  # None: given on the command line with --root
    frames: int | None = 10  # frames per video
    detector: str = "blazeface"
    boxes: str = "auto"
    scales: list[float] = Field(default_factory=lambda: [1.5])
    modalities: list[str] = Field(default_factory=lambda: ["rgb"])  # multi-modal sets: + depth, ir


class DataSpec(Section):
    """Where the crops come from, the protocols, and the table's groups of protocols."""

    synthspoof: SynthData | None = None
    dataset: DatasetData | None = None
    indexes: dict[str, str] | None = None  # protocol -> prepared index.csv
    # Protocol names as the study and its table call them; a mapping gives each the
    # adapter's own protocol name (OULU-NPU's "3_1" -> the study's "P3_1").
    protocols: list[str] | dict[str, str]
    crop_size: int = 96  # the prepared crops' side
    # Table rows over several protocols: mean ± std over the members (OULU-NPU P3, P4).
    groups: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        given = [k for k in ("synthspoof", "dataset", "indexes") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of synthspoof, dataset, indexes (got {given or 'none'})"
            )
        if not self.protocols:
            raise ValueError("protocols: name at least one")
        names = self.protocol_names()
        for group, members in self.groups.items():
            unknown = [m for m in members if m not in names]
            if unknown or not members:
                raise ValueError(f"groups.{group}: {unknown or 'no'} members among the protocols")
        if self.indexes is not None:
            missing = [p for p in names if p not in self.indexes]
            if missing:
                raise ValueError(f"indexes: no index for protocols {missing}")
        return self

    def protocol_names(self) -> list[str]:
        return list(self.protocols)

    def adapter_protocol(self, name: str) -> str:
        return self.protocols[name] if isinstance(self.protocols, dict) else name


class Budget(Section):
    """Input side and optimiser steps (steps mean the same on any dataset size)."""

    input_size: int = 64
    teacher_steps: int = 810
    student_steps: int = 405
    # teachers' early stopping: "recipe" (its early_stop), "none" (train the whole
    # budget, keep the dev-best epoch) or N epochs without a better dev ACER
    teacher_patience: str | int = "recipe"

    @model_validator(mode="after")
    def _valid(self) -> Budget:
        if self.input_size < 16 or self.teacher_steps < 1 or self.student_steps < 1:
            raise ValueError("input_size >= 16 and steps >= 1")
        patience = self.teacher_patience
        if not (patience in ("recipe", "none") or (isinstance(patience, int) and patience > 0)):
            raise ValueError(f"teacher_patience: 'recipe', 'none' or N > 0, got {patience!r}")
        return self


class TeacherRun(Section):
    """A teacher: its recipe (or one per protocol pattern), overrides and seeds.

    The first seed's run is called by the teacher's name, the others ``NAME_seedK``.
    ``recipe`` None: the study's reference teacher's recipe on that protocol.
    """

    recipe: str | dict[str, str] | None = None
    overrides: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])


class StudentRun(Section):
    """A student: scratch (no teachers) or distilled from named teacher runs."""

    recipe: str
    teachers: list[str] = Field(default_factory=list)  # teacher run names
    # "all": learn from every listed teacher; "dev_best": from the one with the
    # lowest dev ACER (then the highest dev AUC), chosen when they have finished
    choose: Literal["all", "dev_best"] = "all"
    cache: bool = True  # cache the teacher's outputs (False: score every augmented view)
    teacher_view: Literal["same", "clean"] = "same"
    # the distillation terms instead of the recipe's, e.g. [{kind: dkd, weight: 1.0}]
    terms: list[dict[str, Any]] | None = None
    overrides: list[str] = Field(default_factory=list)
    seeds: list[int] | None = None  # None: the study's seeds
    protocols: list[str] = Field(default_factory=lambda: ["*"])  # fnmatch patterns
    baseline: str | None = "scratch"  # the student it is paired with, seed by seed
    # the teacher run its retention is of; None: its one teacher (a dev_best one: the
    # chosen), else the study's reference teacher
    retention_of: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> StudentRun:
        if self.choose == "dev_best" and len(self.teachers) < 2:
            raise ValueError("choose: dev_best needs two or more teachers")
        if self.terms is not None and not self.teachers:
            raise ValueError("terms: distillation terms need teachers")
        return self


class SwapSpec(Section):
    """The SWAP report of the reference teacher against the dev-chosen student."""

    enabled: bool = True
    protocols: list[str] | None = None  # None: the first protocol
    runtimes: list[str] = Field(default_factory=lambda: ["pytorch", "onnx"])
    latency_runs: int = 200
    latency_seconds: float = 3.0
    bootstrap: int = 1000


class TableSpec(Section):
    teacher: str = "teacher"  # the reference teacher run: its row heads each table
    students: list[str] | None = None  # the rows in order; None: every student
    summary: bool = False  # a student x protocol test-ACER table first
    hide_grouped: bool = False  # only the groups' tables for grouped protocols


class Launch(Section):
    """How one run is started: in-process, or as a torchrun DDP job of N processes."""

    nproc_per_node: int = Field(default=1, ge=1)


class Study(Section):
    name: str
    description: str
    data: DataSpec
    budget: Budget = Field(default_factory=Budget)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    # every student's overrides before its own (the same augmentation for every student)
    student_overrides: list[str] = Field(default_factory=list)
    teachers: dict[str, TeacherRun]
    students: dict[str, StudentRun]
    table: TableSpec = Field(default_factory=TableSpec)
    swap: SwapSpec = Field(default_factory=SwapSpec)
    launch: Launch = Field(default_factory=Launch)
    notes: str = ""  # the record of what was run and why (docs/results/<study>.md)

    @model_validator(mode="after")
    def _references(self) -> Study:
        runs = self.teacher_runs()
        if self.table.teacher not in runs:
            raise ValueError(f"table.teacher: {self.table.teacher!r} is not a teacher run")
        for name, student in self.students.items():
            unknown = [t for t in student.teachers if t not in runs]
            if unknown:
                raise ValueError(
                    f"students.{name}.teachers: unknown teacher runs {unknown}; "
                    f"declared: {', '.join(runs)}"
                )
            if student.baseline is not None and student.baseline not in self.students:
                raise ValueError(f"students.{name}.baseline: no student {student.baseline!r}")
            if student.retention_of is not None and student.retention_of not in runs:
                raise ValueError(f"students.{name}.retention_of: no teacher run")
        order = self.table.students or []
        unknown = [s for s in order if s not in self.students]
        if unknown:
            raise ValueError(f"table.students: unknown students {unknown}")
        return self

    def teacher_runs(self) -> dict[str, tuple[str, int]]:
        """Teacher run name -> (teacher, seed)."""
        runs = {}
        for name, teacher in self.teachers.items():
            for i, seed in enumerate(teacher.seeds):
                runs[name if i == 0 else f"{name}_seed{seed}"] = (name, seed)
        return runs

    def student_order(self) -> list[str]:
        return list(self.table.students or self.students)

    def teacher_recipe(self, run: str, protocol: str) -> str:
        """The recipe of teacher run ``run`` on ``protocol``."""
        teacher = self.teachers[self.teacher_runs()[run][0]]
        recipe = teacher.recipe
        if recipe is None:
            if run == self.table.teacher:
                raise InputError(f"{self.name}: the reference teacher needs a recipe")
            return self.teacher_recipe(self.table.teacher, protocol)
        if isinstance(recipe, str):
            return recipe
        for pattern, name in recipe.items():
            if fnmatch.fnmatchcase(protocol, pattern):
                return name
        raise InputError(
            f"{self.name}: teachers.{self.teacher_runs()[run][0]}.recipe: no pattern matches "
            f"protocol {protocol!r} (patterns: {', '.join(recipe)})"
        )

    def runs_on(self, student: str, protocol: str) -> bool:
        return any(fnmatch.fnmatchcase(protocol, p) for p in self.students[student].protocols)


# ---------------------------------------------------------------------------- loading


def builtin_study_names() -> list[str]:
    return packaged_names(BUILTIN_STUDIES)


def resolve_study(study: str | os.PathLike[str]) -> Path:
    """A study file from a path or a packaged study's name."""
    return resolve_packaged(study, BUILTIN_STUDIES, "study", "fasdistill study --list")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the study ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: a study is a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def study_data(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A study file's mapping with its ``base:`` (a packaged name or a path) merged under it."""
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = resolve_study(base if Path(str(base)).is_absolute() else str(base))
    if base_path.resolve() in seen:
        raise InputError(f"{path}: base {base!r} includes itself")
    return _merge(study_data(base_path, (*seen, path.resolve())), data)


def load_study(study: str | os.PathLike[str], overrides: list[str] | None = None) -> Study:
    """Read a study (path or packaged name), apply ``key.sub=value`` overrides, validate."""
    path = resolve_study(study)
    data = study_data(path)
    data.setdefault("name", path.stem)
    for key, value in parse_overrides(overrides or []):
        _set_path(data, key, value, "--set")
    try:
        return Study.model_validate(data)
    except ValidationError as error:
        raise InputError(format_errors(error, str(path))) from None


def format_errors(error: ValidationError, source: str) -> str:
    """One line per problem, each naming its key (the study is not echoed back)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key {key!r}")
        elif key:
            problems.append(f"{key}: {message} (got {item.get('input')!r})")
        else:
            problems.append(message)
    return f"{source}: " + "; ".join(problems)


# ---------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Job:
    """One training run: a teacher (``seed`` None) or a student's seed on one protocol."""

    name: str  # "intra/teacher", "intra/kd/seed0": its folder and results key
    protocol: str
    run: str  # the teacher run or student name
    seed: int | None = None
    teachers: tuple[str, ...] = ()  # teacher runs it learns from (students)
    after: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_teacher(self) -> bool:
        return self.seed is None


def plan(
    study: Study,
    protocols: list[str] | None = None,
    students: list[str] | None = None,
    seeds: list[int] | None = None,
) -> list[Job]:
    """Jobs in priority order: teachers first, then seed by seed, protocol by protocol.

    ``protocols``, ``students``, ``seeds`` narrow the study's (None: all). A teacher
    run is planned on a protocol when a planned student there learns from it; the
    reference teacher always is.
    """
    all_protocols = study.data.protocol_names()
    protocols = protocols or all_protocols
    names = students or study.student_order()
    for given, known, what in (
        (protocols, all_protocols, "protocols"),
        (names, list(study.students), "students"),
    ):
        unknown = [x for x in given if x not in known]
        if unknown:
            raise InputError(f"{study.name}: unknown {what} {unknown}; known: {', '.join(known)}")
    runs = study.teacher_runs()
    jobs: list[Job] = []
    for p in protocols:
        needed = [study.table.teacher]
        for s in names:
            if study.runs_on(s, p):
                student = study.students[s]
                extra = [*student.teachers]
                extra += [student.retention_of] if student.retention_of else []
                needed += [t for t in extra if t not in needed]
        jobs += [Job(f"{p}/{t}", p, t) for t in runs if t in needed]
    seed_order = sorted({s for n in names for s in (study.students[n].seeds or study.seeds)})
    for seed in seed_order:
        if seeds is not None and seed not in seeds:
            continue
        for p in protocols:
            for s in names:
                student = study.students[s]
                if seed not in (student.seeds or study.seeds) or not study.runs_on(s, p):
                    continue
                after = tuple(f"{p}/{t}" for t in student.teachers)
                jobs.append(Job(f"{p}/{s}/seed{seed}", p, s, seed, tuple(student.teachers), after))
    return jobs


def plan_names(jobs: list[Job]) -> tuple[list[str], list[str], list[int]]:
    """The protocols, students and seeds a plan covers, in plan order (seeds sorted)."""
    protocols = list(dict.fromkeys(job.protocol for job in jobs))
    students = list(dict.fromkeys(job.run for job in jobs if not job.is_teacher))
    seeds = sorted({job.seed for job in jobs if job.seed is not None})
    return protocols, students, seeds


def run_config(study: Study, job: Job, teachers: list[Path]) -> tuple[str, list[str]]:
    """The recipe and the overrides of one run; the budget is set in steps."""
    b = study.budget
    if job.is_teacher:  # early stopping on dev as in its recipe, unless the budget says
        teacher_name, seed = study.teacher_runs()[job.run]
        teacher = study.teachers[teacher_name]
        overrides = [
            f"data.input_size={b.input_size}",
            "data.workers=1",
            "train.epochs=1",
            f"train.min_steps={b.teacher_steps}",
        ]
        if b.teacher_patience != "recipe":
            value = "null" if b.teacher_patience == "none" else int(b.teacher_patience)
            overrides.append(f"train.early_stop={value}")
        overrides += teacher.overrides
        if seed != teacher.seeds[0]:
            overrides.append(f"train.seed={seed}")
        return study.teacher_recipe(job.run, job.protocol), overrides
    student = study.students[job.run]
    overrides = [
        f"data.input_size={b.input_size}",
        "data.workers=0",
        "train.epochs=1",
        f"train.min_steps={b.student_steps}",
        "train.early_stop=null",
        f"train.seed={job.seed}",
        *study.student_overrides,
        *student.overrides,
    ]
    if teachers:
        listed = ",".join(str(t) for t in teachers)
        overrides += [
            f"distill.teacher=[{listed}]",
            f"distill.cache={'true' if student.cache else 'false'}",
        ]
        if student.teacher_view != "same":
            overrides.append(f"distill.teacher_view={student.teacher_view}")
        if student.terms is not None:  # JSON is YAML: the override parser reads it back
            overrides.append(f"distill.terms={json.dumps(student.terms)}")
    return student.recipe, overrides


def check_overrides(study: Study) -> None:
    """Every override of the study parses (before anything is trained)."""
    for name, teacher in study.teachers.items():
        _parse(teacher.overrides, f"teachers.{name}.overrides")
    for name, student in study.students.items():
        _parse(student.overrides, f"students.{name}.overrides")
    _parse(study.student_overrides, "student_overrides")


def _parse(overrides: list[str], where: str) -> None:
    try:
        parse_overrides(overrides)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
