"""A study's tables: per protocol (or group of protocols), teacher and students.

Pure functions of the runs' ``result.json`` records (job name -> record), so a table
rebuilds from finished runs without training anything. Per protocol: dev ACER,
test ACER / HTER / AUC as mean ± std over seeds, the retention
(1 - ACER_student) / (1 - ACER_teacher), the paired gain over the student's
baseline seed by seed, and minutes per run. Per group (OULU-NPU's P3 and P4): the
same figures per member protocol (mean over seeds), then mean ± std over members,
as the literature reports them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from fasdistill.study.spec import Study

Results = dict[str, dict[str, Any]]
HEADER = (
    "| student | {count} | dev ACER % | test ACER % | test HTER % | test AUC | retention % "
    "| ACER gain, paired (pts) | min / run |"
)
RULE = "|---|---|---|---|---|---|---|---|---|"


def dev_key(record: dict[str, Any]) -> tuple[float, float]:
    """How dev ranks runs: the lower dev ACER, then the higher dev AUC (test never ranks)."""
    return record["dev"]["acer"], -record["dev"]["auc"]


def dev_best(teachers: Results) -> str:
    """The teacher (name -> result) with the lowest dev ACER, then the highest dev AUC."""
    return min(teachers, key=lambda n: dev_key(teachers[n]))


def recipe_name(record: dict[str, Any]) -> str:
    """A run's recipe as ``--recipe`` takes it (older records: ``recipes/<name>.yaml``)."""
    return record["recipe"].rsplit("/", 1)[-1].removesuffix(".yaml")


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def student_runs(results: Results, protocol: str, student: str) -> list[dict[str, Any]]:
    return [r for k, r in results.items() if k.startswith(f"{protocol}/{student}/")]


def chosen_teacher(study: Study, results: Results, protocol: str, student: str) -> str | None:
    """The teacher run a ``dev_best`` student learned from (None: not all finished)."""
    spec = study.students[student]
    found = {t: results.get(f"{protocol}/{t}") for t in spec.teachers}
    if spec.choose != "dev_best" or any(r is None for r in found.values()):
        return None
    return dev_best({t: r for t, r in found.items() if r is not None})


def reference_acer(study: Study, results: Results, protocol: str, student: str) -> float:
    """The test ACER a student's retention is of: its chosen or named teacher, else the study's."""
    spec = study.students[student]
    chosen = chosen_teacher(study, results, protocol, student)
    single = spec.teachers[0] if len(spec.teachers) == 1 else None
    own = chosen or spec.retention_of or single or study.table.teacher
    record = results.get(f"{protocol}/{own}") or results[f"{protocol}/{study.table.teacher}"]
    return record["test"]["acer"]


def gains(study: Study, results: Results, protocol: str, student: str) -> list[float] | None:
    """Test ACER of the baseline minus this student's, seed by seed (None: no baseline)."""
    baseline = study.students[student].baseline
    if baseline is None or baseline == student:
        return None
    out = []
    for run in student_runs(results, protocol, student):
        other = results.get(f"{protocol}/{baseline}/seed{run['seed']}")
        if other is not None:
            out.append(other["test"]["acer"] - run["test"]["acer"])
    return out


def gain_text(values: list[float] | None) -> str:
    if not values:
        return "-"
    wins = sum(g > 0 for g in values)
    return f"{mean_std(values)} ({wins}/{len(values)} seeds better)"


def student_figures(
    study: Study, results: Results, protocol: str, student: str
) -> dict[str, list[float]] | None:
    """Per-seed figures of one student on one protocol (None: no finished run)."""
    runs = student_runs(results, protocol, student)
    if not runs:
        return None
    own = reference_acer(study, results, protocol, student)
    return {
        "dev_acer": [r["dev"]["acer"] for r in runs],
        "acer": [r["test"]["acer"] for r in runs],
        "hter": [r["test"]["hter"] for r in runs],
        "auc": [r["test"]["auc"] for r in runs],
        "retention": [(1 - r["test"]["acer"]) / (1 - own) for r in runs],
        "minutes": [r["train_seconds"] / 60 for r in runs],
    }


def row(name: str, count: int | str, f: dict[str, list[float]], gain: str) -> str:
    return (
        f"| {name} | {count} | {mean_std(f['dev_acer'])} | {mean_std(f['acer'])} "
        f"| {mean_std(f['hter'])} | {mean_std(f['auc'], 1.0, 3)} "
        f"| {mean_std(f['retention'])} | {gain} | {statistics.fmean(f['minutes']):.1f} |"
    )


def protocol_table(study: Study, results: Results, p: str, students: list[str]) -> list[str]:
    """The table of one protocol, its teachers' line and notes (empty: no teacher result)."""
    teacher = results.get(f"{p}/{study.table.teacher}")
    if teacher is None:
        return []
    synth = study.data.synthspoof
    hard = synth is not None and synth.difficulty != 0.5  # the title names a non-default one
    suffix = f", difficulty {synth.difficulty:g}" if hard and synth is not None else ""
    crops = teacher.get("test_set", {}).get("crops")
    test_set = f"; test set: {crops} crops)" if crops else ")"
    lines = [
        f"**{p}{suffix}** (teacher: `{recipe_name(teacher)}`"
        f", test ACER {100 * teacher['test']['acer']:.1f} %, "
        f"AUC {teacher['test']['auc']:.3f}, dev ACER {100 * teacher['dev']['acer']:.1f} %, "
        f"{teacher['train_seconds'] / 60:.1f} min" + test_set,
        "",
        HEADER.format(count="seeds"),
        RULE,
    ]
    for s in students:
        figures = student_figures(study, results, p, s)
        if figures is not None:
            count = len(figures["acer"])
            lines.append(row(s, count, figures, gain_text(gains(study, results, p, s))))
    lines += teacher_notes(study, results, p, students)
    if synth is not None and p.startswith("lodo_"):
        outside, n = capture_outside_sources(p.removeprefix("lodo_"))
        names = ", ".join(f"`{k}`" for k in outside) or "none"
        lines += [
            "",
            f"Capture parameters of `{p.removeprefix('lodo_')}` outside the source "
            f"domains' range ({len(outside)} of {n}): {names}.",
        ]
    return [*lines, ""]


def teacher_notes(study: Study, results: Results, p: str, students: list[str]) -> list[str]:
    """The other teachers' figures, and which one dev chose for each ``dev_best`` student."""
    others = [
        (t, results[f"{p}/{t}"])
        for t in study.teacher_runs()
        if t != study.table.teacher and f"{p}/{t}" in results
    ]
    lines = []
    if others:
        listed = ", ".join(
            f"`{t}` ({_recipe_text(study, t, r)}) {100 * r['dev']['acer']:.1f} % / "
            f"{100 * r['test']['acer']:.1f} % / {r['test']['auc']:.3f} / "
            f"{r['train_seconds'] / 60:.1f} min"
            for t, r in others
        )
        lines += ["", f"Other teachers (dev ACER / test ACER / test AUC / time): {listed}."]
    choices: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for s in students:
        chosen = chosen_teacher(study, results, p, s)
        if chosen is not None and student_runs(results, p, s):
            choices.setdefault((chosen, tuple(study.students[s].teachers)), []).append(s)
    for (chosen, among), names in choices.items():
        lines += [
            "",
            f"Dev chose `{chosen}` among {', '.join(f'`{t}`' for t in among)} for "
            f"{', '.join(f'`{n}`' for n in names)} (lower dev ACER, then higher dev AUC).",
        ]
    return lines


def _recipe_text(study: Study, run: str, record: dict[str, Any]) -> str:
    """A teacher run's recipe name and its own overrides (beyond the budget's)."""
    name = recipe_name(record)
    teacher, seed = study.teacher_runs()[run]
    own = list(study.teachers[teacher].overrides)
    own += [f"train.seed={seed}"] if seed != study.teachers[teacher].seeds[0] else []
    return ", ".join([f"`{name}`", *(f"`{o}`" for o in own)])


def group_table(
    study: Study,
    results: Results,
    group: str,
    members: list[str],
    protocols: list[str],
    students: list[str],
) -> list[str]:
    """A group's table: each member's mean over seeds, then mean ± std over the members.

    Only the members among ``protocols`` with a finished teacher count; the title says
    how many of the group's members that is.
    """
    present = [m for m in members if m in protocols and f"{m}/{study.table.teacher}" in results]
    if not present:
        return []
    teachers = [results[f"{m}/{study.table.teacher}"] for m in present]
    of = "" if len(present) == len(members) else f" (of {len(members)})"
    lines = [
        f"**{group}** (mean ± std over {len(present)} protocol{'s' * (len(present) != 1)}{of}: "
        f"{', '.join(present)}; teacher test ACER "
        f"{mean_std([t['test']['acer'] for t in teachers])} %, "
        f"AUC {mean_std([t['test']['auc'] for t in teachers], 1.0, 3)}, dev ACER "
        f"{mean_std([t['dev']['acer'] for t in teachers])} %)",
        "",
        HEADER.format(count="protocols x seeds"),
        RULE,
    ]
    for s in students:
        per = {m: student_figures(study, results, m, s) for m in present}
        found = {m: f for m, f in per.items() if f is not None}
        if not found:
            continue
        means = {
            key: [statistics.fmean(f[key]) for f in found.values()]
            for key in next(iter(found.values()))
        }
        member_gains = [gains(study, results, m, s) for m in found]
        gain = "-"
        if all(g for g in member_gains):
            per_member = [statistics.fmean(g) for g in member_gains if g]
            wins = sum(g > 0 for g in per_member)
            gain = f"{mean_std(per_member)} ({wins}/{len(per_member)} protocols better)"
        count = f"{len(found)} x {max(len(f['acer']) for f in found.values())}"
        lines.append(row(s, count, means, gain))
    return [*lines, ""]


def summary_table(
    study: Study, results: Results, columns: list[str], protocols: list[str], students: list[str]
) -> str:
    """Test ACER % of the teacher and every student, one column per protocol or group."""
    groups = study.data.groups
    shown = set(protocols)

    def cell(prefix_runs: Callable[[str], list[float]], column: str) -> str:
        members = [m for m in groups.get(column, [column]) if m in shown]
        per = [v for v in map(prefix_runs, members) if v]  # the members with runs
        if not per:
            return "-"
        if column in groups:  # mean over seeds per member, then over members
            return mean_std([statistics.fmean(v) for v in per])
        return mean_std(per[0])

    def teacher(m: str) -> list[float]:
        record = results.get(f"{m}/{study.table.teacher}")
        return [] if record is None else [record["test"]["acer"]]

    lines = [
        "| test ACER % | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        "| teacher | " + " | ".join(cell(teacher, c) for c in columns) + " |",
    ]
    for s in students:

        def runs(m: str, s: str = s) -> list[float]:
            return [r["test"]["acer"] for r in student_runs(results, m, s)]

        lines.append(f"| {s} | " + " | ".join(cell(runs, c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def table(
    study: Study,
    results: Results,
    protocols: list[str] | None = None,
    students: list[str] | None = None,
) -> str:
    """The study's Markdown: summary (if asked), then a table per protocol and per group."""
    protocols = protocols or study.data.protocol_names()
    students = students or study.student_order()
    groups = {g: ms for g, ms in study.data.groups.items() if set(ms) & set(protocols)}
    grouped = {m for ms in groups.values() for m in ms}
    shown = [p for p in protocols if not (study.table.hide_grouped and p in grouped)]
    parts: list[str] = []
    if study.table.summary:
        columns = shown + list(groups)
        parts += [summary_table(study, results, columns, protocols, students)]
    for p in shown:
        parts += ["\n".join(protocol_table(study, results, p, students))]
    for g, members in groups.items():
        parts += ["\n".join(group_table(study, results, g, members, protocols, students))]
    return "\n".join(x for x in parts if x)


def capture_outside_sources(held_out: str) -> tuple[list[str], int]:
    """Capture parameters of SynthSpoof domain ``held_out`` outside the other domains' range.

    Returns (names outside, number of parameters): camera fields (white balance per
    channel), colour temperature and light intensity. Outside = extrapolation.
    """
    from dataclasses import fields

    from fasdistill.data.synth.domains import DOMAINS

    def params(name: str) -> dict[str, float]:
        domain = DOMAINS[name]
        out = {"colour_temperature": domain.colour_temperature, "light": domain.light_intensity}
        for f in fields(domain.camera):
            value = getattr(domain.camera, f.name)
            if isinstance(value, tuple):
                out |= {f"{f.name}[{c}]": v for c, v in zip("RGB", value, strict=True)}
            else:
                out[f.name] = float(value)
        return out

    if held_out not in DOMAINS:
        return [], 0
    target = params(held_out)
    sources = [params(d) for d in DOMAINS if d != held_out]
    outside = [
        k
        for k, v in target.items()
        if not min(s[k] for s in sources) <= v <= max(s[k] for s in sources)
    ]
    return outside, len(target)
