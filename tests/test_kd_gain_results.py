"""kd_gain.py: the published tables rebuild from the committed results; results never shrink."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "kd_gain.py"
RESULTS = REPO / "benchmarks" / "results"
DOCS = REPO / "docs" / "distillation.md"
TABLE_FILES = sorted(RESULTS.glob("kd_gain*.json"))


def kd_gain(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=check
    )


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.startswith("<!--")]


def test_every_committed_table_rebuilds_number_for_number_in_the_docs() -> None:
    assert len(TABLE_FILES) >= 6
    docs = DOCS.read_text()
    run = kd_gain("--table-only", "--results", *map(str, TABLE_FILES))
    lines = table_lines(run.stdout)
    assert sum(line.startswith("| ") for line in lines) >= 40  # every student row
    missing = [line for line in lines if line not in docs]
    assert not missing, f"tables in docs/distillation.md differ from the results: {missing[:3]}"
    for path in TABLE_FILES:  # each file is named beside its table, with the command
        assert f"--results {path}" in run.stdout


def test_table_only_on_a_folder_holding_only_the_results_file_keeps_every_run(tmp_path) -> None:
    committed = RESULTS / "kd_gain_lodo_office_hard.json"
    shutil.copy(committed, tmp_path / "kd_gain.json")
    before = json.loads(committed.read_text())
    run = kd_gain(
        "--table-only",
        "--out",
        str(tmp_path),
        "--protocols",
        "lodo_office",
        "--methods",
        ",".join(before["methods"]),
        "--seeds",
        ",".join(map(str, before["seeds"])),
        "--teacher-patience",
        "none",
        "--difficulty",
        "0.75",
    )
    assert "| kd_dr_clean | 10 |" in run.stdout
    after = json.loads((tmp_path / "kd_gain.json").read_text())
    assert after["results"] == before["results"]


def test_a_narrower_run_merges_into_the_results_file_instead_of_replacing_it(tmp_path) -> None:
    committed = json.loads((RESULTS / "kd_gain_lodo_office_hard.json").read_text())
    shutil.copy(RESULTS / "kd_gain_lodo_office_hard.json", tmp_path / "kd_gain.json")
    narrow = [
        "--table-only",
        "--out",
        str(tmp_path),
        "--protocols",
        "lodo_office",
        "--methods",
        "scratch_dr",
        "--seeds",
        "0",
        "--teacher-patience",
        "none",
        "--difficulty",
        "0.75",
    ]
    kd_gain(*narrow)
    merged = json.loads((tmp_path / "kd_gain.json").read_text())
    assert merged["results"] == committed["results"]
    assert merged["methods"] == committed["methods"]
    kd_gain(*narrow, "--replace-results")  # asked for by name: only this plan's runs
    replaced = json.loads((tmp_path / "kd_gain.json").read_text())
    assert set(replaced["results"]) == {"lodo_office/teacher", "lodo_office/scratch_dr/seed0"}


def test_results_of_another_budget_are_not_merged(tmp_path) -> None:
    shutil.copy(RESULTS / "kd_gain_lodo_office_hard.json", tmp_path / "kd_gain.json")
    run = kd_gain(
        "--table-only",
        "--out",
        str(tmp_path),
        "--protocols",
        "lodo_office",
        "--methods",
        "scratch_dr",
        "--teacher-patience",
        "none",
        check=False,
    )  # default difficulty 0.5, the file holds 0.75
    assert run.returncode != 0
    assert "another budget" in run.stderr
    assert json.loads((tmp_path / "kd_gain.json").read_text())["budget"]["difficulty"] == 0.75


def test_nothing_to_tabulate_is_an_error_and_writes_nothing(tmp_path) -> None:
    run = kd_gain("--table-only", "--out", str(tmp_path), check=False)
    assert run.returncode != 0
    assert "nothing to tabulate" in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["missing.json", "not_results.json"])
def test_a_bad_results_file_is_named(tmp_path, bad) -> None:
    (tmp_path / "not_results.json").write_text('{"teachers": []}')
    run = kd_gain("--table-only", "--results", str(tmp_path / bad), check=False)
    assert run.returncode != 0
    assert bad in run.stderr


def test_records_the_docs_cite_are_in_the_committed_results() -> None:
    docs = DOCS.read_text()
    office = json.loads((RESULTS / "kd_gain_lodo_office.json").read_text())
    assert "teacher_with_recipe_patience" in docs
    record = office["teacher_with_recipe_patience"]
    assert (record["steps"], round(100 * record["test"]["acer"], 1)) == (403, 43.8)
    assert f"{100 * record['test']['acer']:.1f} %, AUC {record['test']['auc']:.3f}" in docs
