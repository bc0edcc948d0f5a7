"""The quick start: every stage runs, the headline adds up, a rerun resumes instead of redoing."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fasdistill.errors import InputError
from fasdistill.quickstart import (
    BUDGETS,
    METHOD_FILE,
    STAGES,
    Budget,
    headline_lines,
    packaged_method,
    run_quickstart,
)
from fasdistill.swap.measure import SwapOptions

REPO = Path(__file__).resolve().parents[1]

TINY = Budget("tiny", subjects=3, teacher_steps=2, student_steps=2, seconds=(1,) * 6,
              input_size=16, crop_size=32, image_size=64)  # fmt: skip
# Two optimiser steps give near-random models: INT8 would fail its decision parity check.
FAST = SwapOptions(("onnx", "pytorch"), latency_runs=2, latency_seconds=0.0, bootstrap=40, batch=2)
_OPENED: list[list[str]] = []  # files opened while a `files_opened` block runs


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _OPENED and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # records only inside `files_opened`


@contextmanager
def files_opened() -> Iterator[list[str]]:
    """Every file this process opens inside the block (the students' processes are not seen)."""
    _OPENED.append([])
    try:
        yield _OPENED[-1]
    finally:
        _OPENED.pop()


def test_quickstart_runs_every_stage_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_detector(name: str) -> None:
        raise AssertionError(f"the quick start needs no face detector, asked for {name}")

    monkeypatch.setattr("fasdistill.data.detect.get_detector", no_detector)  # no [detect] extra
    out = tmp_path / "qs"
    lines: list[str] = []
    with files_opened() as opened:
        headline = run_quickstart(out, TINY, lines.append, ("onnx",), FAST)
    benchmarks = str((REPO / "benchmarks").resolve())
    assert opened and not [f for f in opened if Path(f).resolve().is_relative_to(benchmarks)]
    for stage in STAGES:
        assert (out / "stages" / f"{stage}.json").exists(), stage
    assert (out / "swap" / "report.html").exists() and (out / "synthspoof-preview.png").exists()
    assert (out / "export" / "model.onnx").exists()
    assert headline["student_params"] < 1_000_000 < headline["teacher_params"]
    swap = json.loads((out / "swap" / "swap.json").read_text())
    assert [m["model"] for m in swap["models"]] == ["resnet18", "swapnet", "swapnet"]
    assert headline["speedup"] == pytest.approx(
        swap["models"][1]["vs_reference"]["onnx"]["speedup"]
    )
    # Every model has a latency on the headline runtime, the scratch student too.
    scratch_ms = swap["models"][2]["latency"]["onnx"]["batch1"]["median_ms"]
    assert headline["scratch_ms"] == scratch_ms
    assert headline == json.loads((out / "headline.json").read_text())
    assert headline["failed"] == []  # nothing failed, so the closing lines name nothing
    assert any("[3/6] teacher: ResNet-18, 2 steps" in line for line in lines)
    text = "\n".join(headline_lines(headline))
    scratch_row = next(line for line in text.splitlines() if line.startswith("| student, scratch"))
    cells = [cell.strip() for cell in scratch_row.strip("|").split("|")]
    assert cells[2] == f"{scratch_ms:.3f}", scratch_row
    assert "speed-up" in text and "retention" in text and "report:" in text
    assert ("distillation helped" in text) != ("distillation did NOT help" in text)
    # A rerun skips every finished stage; a removed stage marker is redone alone.
    (out / "stages" / "swap.json").unlink()
    again: list[str] = []
    second = run_quickstart(out, TINY, again.append, ("onnx",), FAST)
    skipped = [line for line in again if "done before, skipped" in line]
    assert len(skipped) == len(STAGES) - 1 and any("[6/6] swap" in line for line in again)
    assert second["acer"] == headline["acer"]
    with pytest.raises(InputError, match="other settings"):
        run_quickstart(out, Budget("other", 4, 2, 2, (1,) * 6, 16, 32, 64), again.append)


def _method_script() -> Any:
    """benchmarks/quickstart_method.py as a module (it holds the choosing rule)."""
    path = REPO / "benchmarks" / "quickstart_method.py"
    spec = importlib.util.spec_from_file_location("quickstart_method", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_method_is_the_benchmark_s_best_on_dev() -> None:
    runs = {
        "intra/kd/seed0": {"method": "kd", "dev": {"acer": 0.10}, "test": {"acer": 0.01}},
        "intra/kd/seed1": {"method": "kd", "dev": {"acer": 0.06}, "test": {"acer": 0.01}},
        "intra/at/seed0": {"method": "at", "dev": {"acer": 0.07}, "test": {"acer": 0.30}},
        "intra/scratch/seed0": {"method": "scratch", "dev": {"acer": 0.01}, "test": {}},
        "lodo_phone/dkd/seed0": {"method": "dkd", "dev": {"acer": 0.0}, "test": {}},
    }
    choice = _method_script().choose({"results": runs}, "kd_gain.json")
    assert choice["method"] == "at"  # dev decides (0.07 < mean 0.08), never test
    assert choice["dev_acer"] == 0.07 and choice["recipe"] == "distill_at"


def test_the_packaged_method_is_what_the_committed_results_choose() -> None:
    results = REPO / "benchmarks" / "results" / "kd_gain.json"
    recomputed = _method_script().choose(
        json.loads(results.read_text()), str(results.relative_to(REPO))
    )
    assert json.loads(METHOD_FILE.read_text()) == recomputed
    method, why = packaged_method()
    assert method == recomputed["method"] and f"{100 * recomputed['dev_acer']:.1f} %" in why


def test_a_damaged_method_file_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "quickstart_method.json"
    broken.write_text('{"method": "kd"}')
    with pytest.raises(InputError, match=r"quickstart_method\.json: unreadable method choice"):
        packaged_method(broken)
    broken.write_text('{"method": "nonesuch", "dev_acer": 0.1}')
    with pytest.raises(InputError, match="distill_nonesuch"):
        packaged_method(broken)


def test_the_smoke_budget_is_small_and_times_swap_briefly() -> None:
    from fasdistill.cli import build_parser

    args = build_parser().parse_args(["quickstart", "--budget", "smoke"])
    smoke, small = BUDGETS[args.budget], BUDGETS["small"]
    assert smoke.subjects >= 3 and len(smoke.seconds) == len(STAGES)  # intra needs 3 subjects
    for field in ("subjects", "teacher_steps", "student_steps", "input_size", "image_size"):
        assert getattr(smoke, field) < getattr(small, field), field
    assert smoke.latency_runs < small.latency_runs and smoke.bootstrap < small.bootstrap
    assert sum(smoke.seconds) <= 180  # "a couple of minutes" on 2 cores, by its own ETA


@pytest.mark.slow
def test_the_smoke_budget_writes_every_file_of_a_real_run(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    headline = run_quickstart(out, "smoke", lambda line: None)
    for stage in STAGES:
        assert (out / "stages" / f"{stage}.json").exists(), stage
    for name in ("headline.json", "swap/report.html", "swap/swap.json", "export/model.onnx"):
        assert (out / name).exists(), name
    assert headline["scratch_ms"] > 0 and headline["method"] == packaged_method()[0]


def _model(params: float, ms: float | None, acer: float) -> dict[str, Any]:
    latency = {"onnx": {"batch1": {"median_ms": ms}}} if ms is not None else {}
    return {
        "weight": {"params": params},
        "latency": latency,
        "vs_reference": {},
        "power": {},
        "test": {"acer": acer, "auc": 1 - acer},
    }


def test_a_part_that_failed_is_named_last_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fasdistill.quickstart as quickstart
    from fasdistill.cli import main

    teacher, distilled, scratch = (
        _model(11e6, 7.0, 0.1),
        _model(4e5, 0.5, 0.12),
        _model(4e5, None, 0.2),  # its onnx cell was left out
    )
    distilled["vs_reference"] = {
        "onnx": {"speedup": 14.0, "energy_ratio": 0.07},
        "accuracy": {"retention": 0.98, "retention_ci": [0.9, 1.05]},
    }
    distilled["power"] = {"onnx": {"energy_source": "modelled"}}
    swap = {"options": {"runtimes": ["onnx"]}, "models": [teacher, distilled, scratch]}
    headline = quickstart.summarise(swap, "kd", "a reason")
    assert headline["scratch_ms"] is None and headline["student_ms"] == 0.5
    failed = ["swap scratch in onnx: parity failed"]
    headline |= {"report": "r.html", "minutes": 1.0, "failed": failed}
    lines = headline_lines(headline)
    scratch_row = next(line for line in lines if line.startswith("| student, scratch"))
    assert "| n/a |" in scratch_row
    assert lines[-2:] == ["1 part(s) failed; everything else is complete:", f"  - {failed[0]}"]
    monkeypatch.setattr(quickstart, "run_quickstart", lambda out, budget, **_: headline)
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 1
    assert capsys.readouterr().out.rstrip().endswith(failed[0])
    monkeypatch.setattr(
        quickstart, "run_quickstart", lambda out, budget, **_: headline | {"failed": []}
    )
    assert main(["quickstart", "--out", str(tmp_path / "qs")]) == 0


def test_the_command_line_sends_export_and_swap_noise_to_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from fasdistill.quickstart import Quickstart

    quick = Quickstart(tmp_path, TINY, print, third_party_log=True)

    def noisy_export() -> dict[str, Any]:
        os.write(2, b"pnnx: 50 lines of converter output\n")
        print("LiteRT: converted in training mode")
        quick.log("      ncnn: model.ncnn.param written")  # our own progress line
        return {"formats": ["ncnn"]}

    assert quick.stage(4, "export", "every runtime", quick.quietly(noisy_export))["formats"]
    terminal = capfd.readouterr().out
    log = (tmp_path / "third_party.log").read_text()
    assert "pnnx" in log and "LiteRT" in log and "pnnx" not in terminal
    assert "model.ncnn.param written" in terminal and "export done in" in terminal
    assert "ncnn: model" not in log
    assert quick.log is print  # the terminal printer is restored after the stage
    # A library call (the default) leaves file descriptors alone: nothing is logged.
    library = Quickstart(tmp_path / "lib", TINY, print)
    assert library.quietly(noisy_export) is noisy_export
