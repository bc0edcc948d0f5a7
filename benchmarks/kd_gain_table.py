"""The tables of ``kd_gain.py``: per protocol, teacher and students, mean ± std over seeds.

Pure functions of the runs' ``result.json`` records (job name -> record), so a table
can be rebuilt from finished runs without training anything; and the results file
that holds those records (``kd_gain.json``), read with checks and merged so that it
never loses runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Collection
from pathlib import Path
from typing import Any

RESULT_KEYS = ("budget", "protocols", "methods", "seeds", "results")


def read_results_file(path: Path) -> dict[str, Any]:
    """A ``kd_gain.json`` (ours or a committed one), checked: it names what it holds."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path}: results file not found") from None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable kd_gain results file ({exc})") from None
    missing = [k for k in RESULT_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise SystemExit(f"{path}: not a kd_gain results file (no {', '.join(missing)})")
    return data


def merge_results(
    path: Path, payload: dict[str, Any], replace: bool
) -> tuple[dict[str, Any], list[str]]:
    """``payload`` merged with the results already in ``path``: a file never loses runs.

    Runs in ``payload`` win over the stored ones; the stored runs it lacks are kept,
    and protocols, methods and seeds become the union, so the file still tabulates
    everything it holds. ``replace`` writes ``payload`` alone (asked for by name).
    Returns the content to write and the job names only the stored file had.
    """
    if not path.exists() or replace:
        return payload, []
    stored = read_results_file(path)
    if stored["budget"] != payload["budget"]:
        raise SystemExit(
            f"{path} holds runs of another budget ({stored['budget']}, now "
            f"{payload['budget']}); use another --out"
        )
    kept = sorted(set(stored["results"]) - set(payload["results"]))
    merged = dict(payload)
    merged["results"] = {k: stored["results"][k] for k in kept} | payload["results"]
    for key in ("protocols", "methods"):
        merged[key] = [*stored[key], *(v for v in payload[key] if v not in stored[key])]
    merged["seeds"] = sorted(set(stored["seeds"]) | set(payload["seeds"]))
    return merged, kept


def dev_best(teachers: dict[str, dict[str, Any]]) -> str:
    """The teacher (name -> result) with the lowest dev ACER, then the highest dev AUC."""
    return min(teachers, key=lambda n: (teachers[n]["dev"]["acer"], -teachers[n]["dev"]["auc"]))


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean = statistics.fmean(values) * scale
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


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

    target = params(held_out)
    sources = [params(d) for d in DOMAINS if d != held_out]
    outside = [
        k
        for k, v in target.items()
        if not min(s[k] for s in sources) <= v <= max(s[k] for s in sources)
    ]
    return outside, len(target)


def paired_gain(
    results: dict[str, dict[str, Any]], protocol: str, method: str, dr_methods: Collection[str]
) -> str:
    """Test ACER of the scratch student minus this one's, seed by seed: mean ± std, wins.

    A DR student is paired with ``scratch_dr`` (the same augmentation), others
    with ``scratch``; a seed fixes initialisation and batch order in both runs.
    """
    baseline = "scratch_dr" if method in dr_methods else "scratch"
    if method == baseline:
        return "-"
    gains = []
    for key, run in results.items():
        if key.startswith(f"{protocol}/{method}/"):
            other = results.get(f"{protocol}/{baseline}/seed{run['seed']}")
            if other is not None:
                gains.append(other["test"]["acer"] - run["test"]["acer"])
    if not gains:
        return "-"
    wins = sum(g > 0 for g in gains)
    return f"{_mean_std(gains)} ({wins}/{len(gains)} seeds better)"


def table(
    results: dict[str, dict[str, Any]],
    protocols: list[str],
    methods: list[str],
    ensemble: Collection[str],
    lodo_seeds: Collection[str],
    dr_methods: Collection[str],
    full_teacher: str,
    difficulty: float | None = None,
) -> str:
    """A Markdown table per protocol: teacher, scratch and each method.

    ``ensemble``: multi_teacher's other teachers; ``lodo_seeds``: the lodo teacher
    recipe's seeds (a ``*_devbest`` student chooses among them on dev, a DR
    multi_teacher student learns from all); ``dr_methods``: students paired with
    scratch_dr; ``full_teacher``: the teacher of the ``*_full`` students;
    ``difficulty``: SynthSpoof's, named in the title when not the default 0.5.
    """
    lines = []
    # The seed teachers' line belongs to the students that choose among them or learn from all.
    seeded = any(
        m.endswith("_devbest") or (m in dr_methods and m.startswith("multi_teacher"))
        for m in methods
    )
    title_suffix = "" if difficulty in (None, 0.5) else f", difficulty {difficulty:g}"
    for p in protocols:
        teacher = results.get(f"{p}/teacher")
        if teacher is None:
            continue
        t_acer = teacher["test"]["acer"]
        choice = {n: results[f"{p}/{n}"] for n in lodo_seeds if f"{p}/{n}" in results}
        chosen = dev_best(choice) if len(choice) == len(lodo_seeds) and seeded else None
        full = results.get(f"{p}/{full_teacher}")
        crops = teacher.get("test_set", {}).get("crops")
        lines += [
            f"**{p}{title_suffix}** (teacher: `{Path(teacher['recipe']).stem}`, "
            f"test ACER {100 * t_acer:.1f} %, "
            f"AUC {teacher['test']['auc']:.3f}, dev ACER {100 * teacher['dev']['acer']:.1f} %, "
            f"{teacher['train_seconds'] / 60:.1f} min"
            + (f"; test set: {crops} crops)" if crops else ")"),
            "",
            "| student | seeds | dev ACER % | test ACER % | test HTER % | test AUC | retention % "
            "| ACER gain, paired (pts) | min / run |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for m in methods:
            runs = [r for k, r in results.items() if k.startswith(f"{p}/{m}/")]
            if not runs:
                continue
            acer = [r["test"]["acer"] for r in runs]
            own = t_acer  # a *_devbest or *_full student's retention is of its own teacher
            if m.endswith("_devbest") and chosen is not None:
                own = choice[chosen]["test"]["acer"]
            if m.endswith("_full") and full is not None:
                own = full["test"]["acer"]
            retention = [(1 - a) / (1 - own) for a in acer]
            lines.append(
                f"| {m} | {len(runs)} | {_mean_std([r['dev']['acer'] for r in runs])} "
                f"| {_mean_std(acer)} "
                f"| {_mean_std([r['test']['hter'] for r in runs])} "
                f"| {_mean_std([r['test']['auc'] for r in runs], 1.0, 3)} "
                f"| {_mean_std(retention)} | {paired_gain(results, p, m, dr_methods)} "
                f"| {statistics.fmean(r['train_seconds'] for r in runs) / 60:.1f} |"
            )
        members = [(n, results[f"{p}/{n}"]) for n in ensemble if f"{p}/{n}" in results]
        if members and "multi_teacher" in methods:
            listed = ", ".join(
                f"`{n}` {100 * r['test']['acer']:.1f} % / {r['test']['auc']:.3f}"
                for n, r in members
            )
            lines += ["", f"multi_teacher's other teachers (test ACER / AUC): {listed}."]
        if chosen is not None:  # a student chose among the seed teachers or learns from all
            listed = ", ".join(
                f"`{n}` {100 * r['dev']['acer']:.1f} % / {100 * r['test']['acer']:.1f} % / "
                f"{r['test']['auc']:.3f}"
                for n, r in choice.items()
            )
            lines += [
                "",
                f"The lodo teacher recipe's seeds (dev ACER / test ACER / AUC): {listed}; "
                f"dev chose `{chosen}` for `*_devbest`.",
            ]
        if full is not None and any(m.endswith("_full") for m in methods):
            size = [o for o in full["overrides"] if o.startswith("data.input_size=")][-1]
            lines += [
                "",
                f"The `*_full` students' teacher `{full_teacher}` (the lodo recipe at "
                f"`{size}`): dev ACER {100 * full['dev']['acer']:.1f} %, "
                f"test ACER {100 * full['test']['acer']:.1f} %, AUC {full['test']['auc']:.3f}, "
                f"{full['train_seconds'] / 60:.1f} min.",
            ]
        if p.startswith("lodo_"):
            outside, n = capture_outside_sources(p.removeprefix("lodo_"))
            names = ", ".join(f"`{k}`" for k in outside) or "none"
            lines += [
                "",
                f"Capture parameters of `{p.removeprefix('lodo_')}` outside the source "
                f"domains' range ({len(outside)} of {n}): {names}.",
            ]
        lines.append("")
    return "\n".join(lines)
