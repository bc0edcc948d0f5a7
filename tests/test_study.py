"""fasdistill study: declared studies plan, run, resume, isolate failures and tabulate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fasdistill.cli import main
from fasdistill.errors import InputError
from fasdistill.study.spec import builtin_study_names, load_study, plan, run_config
from support import make_index

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
KD_GAIN = [n for n in builtin_study_names() if n.startswith("kd_gain")]
FAST = [  # the smoke recipe's tiny model, a few steps, no timing to speak of
    "budget.input_size=16",
    "budget.teacher_steps=3",
    "budget.student_steps=3",
    "swap.runtimes=[pytorch]",
    "swap.latency_runs=2",
    "swap.latency_seconds=0",
    "swap.bootstrap=0",
]


def write_study(folder: Path, indexes: dict[str, Path], **changes: str) -> Path:
    """A study over prepared indexes with smoke-sized teachers and students."""
    listed = ", ".join(f"{p}: {path}" for p, path in indexes.items())
    text = f"""
description: a test study
data: {{indexes: {{{listed}}}, protocols: [{", ".join(indexes)}]}}
seeds: [0, 1]
student_overrides: ["data.augment.resized_crop=[1.0,1.0]"]
teachers:
  teacher: {{recipe: smoke, seeds: [0, 1], overrides: [data.workers=0]}}
students:
  scratch: {{recipe: smoke, baseline: null}}
  kd: {{recipe: distill_kd, teachers: [teacher], overrides: [model.name=smoke-cnn]}}
  kd_best:
    recipe: distill_kd
    teachers: [teacher, teacher_seed1]
    choose: dev_best
    overrides: [model.name=smoke-cnn]
"""
    for key, value in changes.items():
        text += f"{key}: {value}\n"
    path = folder / "study.yaml"
    path.write_text(text)
    return path


def study_cli(study: Path | str, out: Path, *args: str) -> int:
    sets = [x for item in FAST for x in ("--set", item)]
    return main(["study", str(study), "--out", str(out), *sets, *args])


# ---------------------------------------------------------------------------- declared


@pytest.mark.parametrize("name", builtin_study_names())
def test_every_packaged_study_loads_and_plans(name: str) -> None:
    study = load_study(name)
    jobs = plan(study)
    assert jobs and study.description
    names = [job.name for job in jobs]
    assert len(names) == len(set(names))
    for job in jobs:  # teachers before the students that need them
        assert all(names.index(dep) < names.index(job.name) for dep in job.after)


@pytest.mark.parametrize("name", KD_GAIN)
def test_kd_gain_studies_plan_exactly_the_committed_runs(name: str) -> None:
    """The packaged study is the grid that made the committed results: no more, no fewer."""
    committed = json.loads((RESULTS / f"{name}.json").read_text())
    study = load_study(name)
    assert {job.name for job in plan(study)} == set(committed["results"])
    for job in plan(study):  # and each run's recipe and overrides are the ones recorded
        record = committed["results"][job.name]
        recipe, overrides = run_config(study, job, [])
        assert Path(record["recipe"]).stem == recipe
        recorded = [o for o in record["overrides"] if not o.startswith("distill.")]
        epochs = [int(o.split("=")[1]) for o in recorded if o.startswith("train.epochs=")]
        if not any(o.startswith("train.min_steps=") for o in recorded):
            # made when the budget was in epochs: the same number of optimiser steps
            per_epoch = record["steps"] // record["epochs"]
            assert epochs[0] * per_epoch == study.budget.teacher_steps, job.name
            continue
        assert [o for o in overrides if not o.startswith("distill.")] == recorded


def test_committed_kd_gain_tables_rebuild_in_the_generated_docs(capsys) -> None:
    """Every table of the record comes from the committed results, number for number."""
    for name in KD_GAIN:
        path = RESULTS / f"{name}.json"
        assert main(["study", name, "--table-only", "--results", str(path)]) == 0
        table = capsys.readouterr().out
        docs = (REPO / "docs" / "results" / f"{name}.md").read_text()
        rows = [line for line in table.splitlines() if line.startswith(("|", "**"))]
        assert len(rows) >= 4
        missing = [line for line in rows if line not in docs]
        assert not missing, f"docs/results/{name}.md differs from {path}: {missing[:2]}"
        assert f"fasdistill study {name} --table-only --results benchmarks/results/" in docs
    check = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "study_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_table_is_never_made_from_fewer_runs(tmp_path: Path, capsys) -> None:
    data = json.loads((RESULTS / "kd_gain_quick.json").read_text())
    del data["results"]["intra/kd/seed0"]
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(data))
    assert main(["study", "kd_gain_quick", "--table-only", "--results", str(fewer)]) == 2
    err = capsys.readouterr().err
    assert "intra/kd/seed0" in err and "1 of the 3 runs" in err and str(fewer) in err
    # narrowed by name, the table is of what is asked for
    args = ["--table-only", "--results", str(fewer), "--students", "scratch"]
    assert main(["study", "kd_gain_quick", *args]) == 0
    assert "| scratch | 1 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("students.kd.teachers=[nobody]", "students.kd.teachers: unknown teacher runs ['nobody']"),
        ("students.kd.colour=red", "unknown key 'students.kd.colour'"),
        ("students.kd_best.teachers=[teacher]", "dev_best needs two or more teachers"),
        ("table.teacher=teacher_seed5", "table.teacher: 'teacher_seed5' is not a teacher run"),
        ("data.groups={P3: [x]}", "groups.P3: ['x'] members among the protocols"),
        ("budget.teacher_patience=soon", "teacher_patience: 'recipe', 'none' or N > 0"),
    ],
)
def test_a_bad_study_is_named_before_anything_is_written(
    tmp_path: Path, index: Path, change: str, message: str, capsys
) -> None:
    study = write_study(tmp_path, {"a": index})
    assert study_cli(study, tmp_path / "out", "--set", change) == 2
    err = capsys.readouterr().err
    assert message in err and str(study) in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("students.kd.overrides=[optim.lrr=1]", r"run a/kd/seed0: .*optim.lrr"),
        ("student_overrides=[]", r"run a/kd/seed0: distill.cache: .*whole crop"),
    ],
)
def test_a_bad_run_recipe_is_refused_before_any_data_or_run(
    tmp_path: Path, index: Path, change: str, message: str
) -> None:
    from fasdistill.study.run import run_study

    study = write_study(tmp_path, {"a": index})
    with pytest.raises(InputError, match=message):
        run_study(load_study(study, [*FAST, change]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_base_studies_merge_and_cannot_include_themselves(tmp_path: Path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("base: kd_gain\ndata: {protocols: [intra]}\nseeds: [4]\n")
    study = load_study(child)
    assert study.data.protocol_names() == ["intra"] and study.seeds == [4]
    assert study.data.synthspoof is not None and study.data.synthspoof.subjects == 60
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(InputError, match="includes itself"):
        load_study(loop)


# ---------------------------------------------------------------------------- running


def test_a_study_runs_resumes_and_reports(tmp_path: Path, index: Path, capsys) -> None:
    study = write_study(tmp_path, {"a": index})
    out = tmp_path / "out"
    assert study_cli(study, out) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    expected = {"a/teacher", "a/teacher_seed1"}
    expected |= {f"a/{s}/seed{k}" for s in ("scratch", "kd", "kd_best") for k in (0, 1)}
    assert set(results["results"]) == expected
    for name, record in results["results"].items():  # selected on dev, threshold from dev
        assert record["job"] == name and 0.0 <= record["threshold"] <= 1.0
        assert set(record["dev"]) >= {"acer", "auc"} and set(record["test"]) >= {"acer", "hter"}
    table = (out / "study.md").read_text()
    assert "| kd | 2 |" in table and "| kd_best | 2 |" in table and "seeds better" in table
    assert "Dev chose `teacher" in table and "`teacher_seed1`" in table
    assert table.strip() in printed
    swap = json.loads((out / "swap" / "a" / "swap.json").read_text())
    assert swap["models"][0]["label"] == "teacher"
    assert swap["models"][1]["label"].split("/")[0] in ("scratch", "kd", "kd_best")
    assert (out / "swap" / "a" / "report.html").is_file()
    assert json.loads((out / "failed.json").read_text()) == {}
    # the dev-chosen student: the lowest mean dev ACER, then its best seed (dev only)
    from fasdistill.study.run import chosen_student

    chosen = chosen_student(load_study(study), results["results"], "a")
    assert chosen is not None and chosen.startswith(("a/scratch/", "a/kd/", "a/kd_best/"))
    # resumed: nothing trains again, the same table comes out
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert study_cli(study, out, "--no-swap") == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamps
    assert (out / "study.md").read_text() == table
    # and the table rebuilds from the folder alone
    capsys.readouterr()
    assert study_cli(study, out, "--table-only") == 0
    assert capsys.readouterr().out.strip() == table.strip()


def test_a_failing_run_skips_what_needs_it_and_the_rest_finishes(
    tmp_path: Path, index: Path, capsys
) -> None:
    no_dev = make_index(tmp_path / "no_dev", {"train": 6, "test": 4})  # training needs dev
    study = write_study(tmp_path, {"a": index, "b": no_dev})
    out = tmp_path / "out"
    assert study_cli(study, out, "--seeds", "0", "--students", "scratch,kd", "--no-swap") == 1
    failed = json.loads((out / "failed.json").read_text())
    assert set(failed) == {"b/teacher", "b/scratch/seed0", "b/kd/seed0"}
    assert failed["b/kd/seed0"] == "not run: b/teacher failed"
    assert "dev" in failed["b/teacher"]
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"a/teacher", "a/scratch/seed0", "a/kd/seed0"}
    assert "3 parts failed" in capsys.readouterr().out
    table = (out / "study.md").read_text()
    assert (
        "**Not in these tables**" in table and "- `b/kd/seed0`: not run: b/teacher failed" in table
    )


def test_runs_go_to_submitit_and_a_run_can_be_a_torchrun_job(tmp_path: Path, index: Path) -> None:
    """submitit's local executor runs each job; each job is a 2-process torchrun DDP run."""
    pytest.importorskip("submitit")
    study = write_study(tmp_path, {"a": index}, launch="{nproc_per_node: 2}")
    out = tmp_path / "out"
    args = ["--executor", "submitit-local", "--seeds", "0", "--students", "scratch", "--no-swap"]
    assert study_cli(study, out, *args) == 0
    results = json.loads((out / "results.json").read_text())["results"]
    assert set(results) == {"a/teacher", "a/scratch/seed0"}
    assert len(list((out / "submitit").glob("*_result.pkl"))) == 2  # two submitted jobs
    for run in ("teacher", "scratch/seed0"):
        assert json.loads((out / "a" / run / "meta.json").read_text())["world_size"] == 2
        assert (out / "a" / f"{run}.torchrun.log").is_file()


@pytest.mark.parametrize("name", builtin_study_names())
def test_every_packaged_study_passes_its_pre_run_checks(name: str, tmp_path: Path) -> None:
    """Each run's recipe and overrides load and its cache settings hold (nothing written)."""
    from fasdistill.study.jobs import check_jobs

    study = load_study(name)
    check_jobs(study, plan(study), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_results_files_never_lose_runs(tmp_path: Path) -> None:
    """A narrower run merges into OUT/results.json; replacing is asked for by name."""
    from fasdistill.study.results import merge_results

    committed = json.loads((RESULTS / "kd_gain_lodo_office_hard.json").read_text())
    path = tmp_path / "results.json"
    path.write_text(json.dumps(committed))
    narrow = {k: committed[k] for k in ("budget", "protocols", "methods", "seeds")}
    narrow |= {"methods": ["scratch_dr"], "seeds": [0]}
    narrow["results"] = {k: committed["results"][k] for k in ("lodo_office/scratch_dr/seed0",)}
    merged, kept = merge_results(path, narrow, replace=False)
    assert merged["results"] == committed["results"] and len(kept) == 41
    assert merged["methods"] == committed["methods"]
    replaced, _ = merge_results(path, narrow, replace=True)
    assert set(replaced["results"]) == {"lodo_office/scratch_dr/seed0"}
    other = dict(narrow, budget={**narrow["budget"], "student_steps": 1})
    with pytest.raises(InputError, match="another budget"):
        merge_results(path, other, replace=False)


@pytest.mark.parametrize("bad", ["missing.json", "not_results.json"])
def test_a_bad_results_file_is_named(tmp_path: Path, bad: str, capsys) -> None:
    (tmp_path / "not_results.json").write_text('{"teachers": []}')
    args = ["study", "kd_gain_quick", "--table-only", "--results", str(tmp_path / bad)]
    assert main(args) == 2
    assert bad in capsys.readouterr().err


def test_records_the_notes_cite_are_in_the_committed_results() -> None:
    docs = (REPO / "docs" / "results" / "kd_gain_lodo_office.md").read_text()
    office = json.loads((RESULTS / "kd_gain_lodo_office.json").read_text())
    assert "teacher_with_recipe_patience" in docs
    record = office["teacher_with_recipe_patience"]
    assert (record["steps"], round(100 * record["test"]["acer"], 1)) == (403, 43.8)
    assert "43.8 %, AUC 0.824" in docs and f"{record['test']['auc']:.3f}" == "0.824"


def test_the_documented_study_file_is_a_valid_study() -> None:
    import yaml

    from fasdistill.study.spec import Study

    text = (REPO / "docs" / "studies.md").read_text()
    block = text.split("## The file")[1].split("```yaml")[1].split("```")[0]
    data = yaml.safe_load(block)
    assert data.pop("base") == "kd_gain"
    study = Study.model_validate({"name": "documented", **data})
    assert list(study.teacher_runs()) == ["teacher", "teacher_seed1"]
    assert study.teacher_recipe("teacher", "lodo_x") == "teacher_resnet18_xdomain"
    assert study.teacher_recipe("teacher", "P1") == "teacher_resnet18"


def test_a_student_declares_its_terms(tmp_path: Path, index: Path) -> None:
    from fasdistill.config import load_recipe
    from fasdistill.study.jobs import check_jobs

    study_file = write_study(tmp_path, {"a": index})
    terms = "students.kd.terms=[{kind: dkd, weight: 1.0, beta: 2.0}]"
    study = load_study(study_file, [*FAST, terms])
    job = next(j for j in plan(study) if j.name == "a/kd/seed0")
    recipe, overrides = run_config(study, job, [tmp_path / "t.pt"])
    config = load_recipe(recipe, overrides)
    assert config.distill is not None and [t.kind for t in config.distill.terms] == ["dkd"]
    assert config.distill.terms[0].beta == 2.0
    check_jobs(study, plan(study), tmp_path / "out")
    bad = load_study(study_file, [*FAST, "students.kd.terms=[{kind: dkd, bogus: 1}]"])
    with pytest.raises(InputError, match=r"run a/kd/seed0: .*bogus"):
        check_jobs(bad, plan(bad), tmp_path / "out")


def test_a_results_file_of_another_budget_is_refused_before_any_run(
    tmp_path: Path, index: Path, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(RESULTS / "kd_gain_quick.json", out / "results.json")
    assert study_cli(write_study(tmp_path, {"a": index}), out) == 2
    assert "another budget" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_synthspoof_study_crops_can_follow_a_detectors_boxes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fasdistill.data.prepare as prepare_module
    import fasdistill.data.synth as synth_module
    from fasdistill.study import jobs

    seen = []
    monkeypatch.setattr(synth_module, "generate", lambda *a, **k: None)
    monkeypatch.setattr(prepare_module, "prepare", lambda config, *a, **k: seen.append(config))
    study = load_study("realtime")
    assert study.data.synthspoof is not None
    assert (study.data.synthspoof.boxes, study.data.synthspoof.detector) == (
        "detector",
        "blazeface",
    )
    jobs.prepare_data(study, tmp_path, ["intra"], None, workers=1)
    (config,) = seen
    assert (config.boxes, config.detector, config.size) == ("detector", "blazeface", 96)
    config.validate()
