"""SWAP survives a failing cell, checks every model first, bounds its timing, reports honestly."""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fasdistill.cli import main
from fasdistill.metrics.scores import ScoreSet
from fasdistill.swap import measure
from fasdistill.swap.options import SwapOptions
from fasdistill.swap.ratios import compare, headline_runtime, pareto_front, retention
from fasdistill.swap.report import write_reports
from fasdistill.utils.latency import interleaved_latency
from support import make_index
from test_swap import foreign_copy, trained

FAST = ["--latency-runs", "3", "--latency-seconds", "0", "--bootstrap", "40", "--batch", "2"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 12, "dev": 8, "test": 8})


@pytest.fixture(scope="module")
def models(index: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return trained(index, root, "teacher", "swapnet", 2), trained(
        index, root, "student", "smoke-cnn", 2
    )


def refuse_teacher_int8(monkeypatch: pytest.MonkeyPatch) -> None:
    """The teacher's INT8 file refused by export's own parity gate (an agreement of more
    than 100 % asked for); the export also prints converter noise."""
    real = measure.export_checkpoint

    def export(
        checkpoint: Any, index_path: Any, out_dir: Path, options: Any = None, log: Any = print
    ) -> dict:
        os.write(2, b"converter noise on fd 2\n")
        if "teacher" in str(checkpoint):
            options = dataclasses.replace(options, int8_min_agreement=1.01)
        return real(checkpoint, index_path, out_dir, options, log=log)

    monkeypatch.setattr(measure, "export_checkpoint", export)


def test_a_refused_artifact_leaves_one_cell_out_and_the_rest_is_measured(
    models: tuple[Path, Path],
    index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    refuse_teacher_int8(monkeypatch)
    out = tmp_path / "report"
    argv = ["swap", "--models", *map(str, models), "--data", str(index), "--out", str(out)]
    assert main([*argv, "--runtimes", "onnx,onnx-int8,pytorch", *FAST]) == 1
    terminal = capfd.readouterr()
    swap = json.loads((out / "swap.json").read_text())
    teacher, student = swap["models"]
    refused = teacher["missing"]["onnx-int8"]  # export's own reason, passed on as it is
    assert re.fullmatch(
        r".*model\.int8\.onnx: not written; INT8 decisions agree with PyTorch on [\d.]+ % of "
        r"\d+ dev crops \(< 101 %\)",
        refused,
    )
    assert set(teacher["missing"]) == {"onnx-int8"} and student["missing"] == {}
    assert swap["left_out"] == [{"model": "teacher", "runtime": "onnx-int8", "reason": refused}]
    assert set(teacher["latency"]) == {"onnx", "pytorch"}
    assert set(student["latency"]) == {"onnx", "onnx-int8", "pytorch"}  # measured all the same
    assert "onnx-int8" in student["power"] and "onnx-int8" not in teacher["power"]
    vs = student["vs_reference"]
    assert "onnx-int8" not in vs and vs["omitted"]["onnx-int8"] == "teacher x onnx-int8 left out"
    assert vs["onnx"]["speedup"] > 0 and student["swap_score"] is not None
    assert swap["headline_runtime"] == "onnx" and swap["pareto"]
    md = (out / "swap.md").read_text()
    assert f"| teacher | onnx-int8 | missing: {refused} |" in md
    assert f"- teacher x onnx-int8: {refused}" in md
    page = (out / "report.html").read_text()
    assert "Left out (1)" in page and html.escape(refused) in page
    # the terminal: our progress with an ETA, the ratios table, the closing line; no noise
    lines = terminal.out.splitlines()
    assert lines[-1] == f"finished; 1 cell left out: teacher x onnx-int8: {refused}"
    assert any(line.startswith("[2/2] student:") and "s left" in line for line in lines)
    assert any(line.startswith("timing onnx batch 2 (2/6)") for line in lines)
    assert any("best-to-best fp32" in line for line in lines)
    assert "converter noise" not in terminal.out + terminal.err
    assert "converter noise on fd 2" in (out / "third_party.log").read_text()


def test_a_runtime_that_fails_while_timing_is_dropped_and_the_others_finish() -> None:
    calls = {"good": 0, "bad": 0}

    def good() -> None:
        calls["good"] += 1

    def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] > 3:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION :\n  bad\n  alloc")

    failed: dict[str, str] = {}
    timed = interleaved_latency(
        {"good": good, "bad": bad}, min_runs=20, min_seconds=0, warmup=2, failed=failed
    )
    assert set(timed) == {"good"} and timed["good"].runs == 20
    assert failed == {
        "bad": "failed while timing: RuntimeError: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : "
        "bad alloc"
    }
    with pytest.raises(RuntimeError):  # without ``failed`` the caller sees the exception
        interleaved_latency({"bad": bad}, min_runs=2, min_seconds=0)


def test_the_timing_loop_stops_at_its_cap_and_reports_the_runs_it_reached() -> None:
    def slow() -> None:
        time.sleep(0.02)

    start = time.perf_counter()
    timed = interleaved_latency(
        {"slow": slow, "fast": lambda: None}, min_runs=1000, min_seconds=0, max_seconds=0.5
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5  # 1000 runs would take 20 s
    for stats in timed.values():
        assert stats.capped and 5 <= stats.runs < 1000
    assert timed["slow"].runs == timed["fast"].runs  # interleaved: the same rounds
    assert timed["slow"].as_dict()["capped"] is True
    uncapped = interleaved_latency(
        {"fast": lambda: None}, min_runs=50, min_seconds=0, max_seconds=5
    )
    assert uncapped["fast"].runs == 50 and not uncapped["fast"].capped


def test_swap_caps_a_slow_runtime_and_drops_one_that_fails_while_timing(
    models: tuple[Path, Path], index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyTorch made slow for the teacher (capped by --latency-max-seconds) and failing for
    the student's timing scorer: the teacher is still measured, the student's cell says why."""
    real = measure.torch_scorer
    made: dict[int, int] = {}

    def scorer(model: Any) -> Any:
        score = real(model)
        student = sum(p.numel() for p in model.parameters()) < 10_000
        made[id(model)] = made.get(id(model), 0) + 1
        timing = made[id(model)] == 2  # the first scores dev and test, the second is timed
        calls = [0]

        def run(x: np.ndarray) -> Any:
            calls[0] += 1
            if student and timing and calls[0] > 3:
                raise RuntimeError("CUDA-like failure\nwith a second line")
            time.sleep(0.0 if student else 0.03)
            return score(x)

        return run

    monkeypatch.setattr(measure, "torch_scorer", scorer)
    options = SwapOptions(runtimes=("pytorch",), latency_runs=500, latency_seconds=0,
                          latency_max_seconds=0.3, bootstrap=0, batch=2)  # fmt: skip
    lines: list[str] = []
    start = time.perf_counter()
    swap = measure.run_swap(list(models), index, tmp_path, options, log=lines.append)
    assert time.perf_counter() - start < 60  # 500 runs x 2 batches at 30 ms would be 30 s
    teacher, student = swap["models"]
    for batch in ("batch1", "batch2"):
        cell = teacher["latency"]["pytorch"][batch]
        assert cell["capped"] and 1 <= cell["runs"] < 500
    why = "batch 1: failed while timing: RuntimeError: CUDA-like failure with a second line"
    assert student["latency"] == {} and student["missing"] == {"pytorch": why}
    assert swap["left_out"] == [{"model": "student", "runtime": "pytorch", "reason": why}]
    assert student["swap_score"] is None and swap["pareto"] == ["teacher"]
    assert "no runtime was measured for every model" in swap["headline_note"]
    assert any("at most 1 s" in line for line in lines)  # 0.3 s x 2 models
    assert any("runs, capped)" in line and "student left out" in line for line in lines)
    write_reports(swap, tmp_path)  # a model with no runtime at all still renders
    md = (tmp_path / "swap.md").read_text()
    assert f"| student | pytorch | missing: {why} |" in md and "(capped)" in md
    assert "no SWAP score" in md and "no runtime was measured for every model" in md
    assert f"missing: {why}" in (tmp_path / "report.html").read_text()


def test_every_model_and_sidecar_is_checked_before_any_work(
    models: tuple[Path, Path],
    index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teacher = models[0]
    described = {"input_size": 16, "crop_scale": 1.5, "output": "logits", "live_index": 0}
    no_sidecar = foreign_copy(teacher, index, tmp_path / "plain")
    wrong_size = foreign_copy(teacher, index, tmp_path / "size", **{**described, "input_size": 64})
    three = {**described, "classes": ["bonafide", "print", "replay"], "live_index": 5}
    wrong_live = foreign_copy(teacher, index, tmp_path / "live", **three)
    cases = [
        (
            no_sidecar,
            "plain/vendor.onnx: an ONNX model without fasdistill metadata needs a sidecar",
        ),
        (tmp_path / "none.pt", "none.pt: checkpoint not found"),
        (wrong_size, "size/vendor.onnx.yaml: input_size: 64"),
        (wrong_live, "live/vendor.onnx.yaml: live_index: 5"),
    ]
    capsys.readouterr()
    for i, (bad, message) in enumerate(cases):
        out = tmp_path / f"r{i}"
        argv = ["swap", "--models", str(teacher), str(bad), "--data", str(index), "--out", str(out)]
        assert main([*argv, *FAST]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not (out / "artifacts").exists() and not (out / "swap.json").exists()


def scores_of(values: list[float], bona: list[bool], subjects: list[str]) -> ScoreSet:
    n = len(values)
    return ScoreSet.from_arrays(
        np.asarray(values, float),
        ["bonafide" if b else "attack" for b in bona],
        ["" if b else "print" for b in bona],
        [f"v{i}" for i in range(n)],
        subjects,
        [f"p{i}" for i in range(n)],
    )


def test_resamples_where_the_reference_fails_everything_are_counted_not_dropped() -> None:
    """A reference that rejects every bona fide and accepts every attack except on subject
    s0 has an ACER of 100 % in every resample without s0: retention is undefined there."""
    subjects = [f"s{i % 7}" for i in range(70)]
    bona = [i % 2 == 0 for i in range(70)]
    good = [0.9 if b else 0.1 for b in bona]
    inverted = [
        (0.9 if b else 0.1) if s == "s0" else (0.1 if b else 0.9)
        for b, s in zip(bona, subjects, strict=True)
    ]
    ref, student = scores_of(inverted, bona, subjects), scores_of(good, bona, subjects)
    ref_test = {"acer": 6 / 7, "auc": 1 / 7}  # the full-set figures at threshold 0.5
    options = SwapOptions(bootstrap=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning
        out = retention(student, 0.5, {"acer": 0.0, "auc": 1.0}, ref, 0.5, ref_test, options)
    assert out["retention"] == pytest.approx(7.0)  # 1 / (1 - 6/7): defined on the full set
    boot = out["bootstrap"]
    assert boot["resamples"] == 300 and boot["undefined_dropped"] == 0
    assert 50 < boot["reference_acer_100"] < 200  # P(no s0 in 7 draws) = (6/7)^7 = 0.34
    assert out["retention_ci"] is None
    assert f"in {boot['reference_acer_100']} of 300 resamples" in out["retention_ci_note"]
    lo, hi = out["acer_difference_ci"]  # defined everywhere: reported
    assert -1.0 <= lo <= hi < 0
    # a reference that never fails everything: intervals as usual, nothing counted
    fine = retention(
        student, 0.5, {"acer": 0.0, "auc": 1.0}, student, 0.5, {"acer": 0.0, "auc": 1.0}, options
    )
    assert fine["retention_ci"] == [1.0, 1.0] and fine["bootstrap"]["reference_acer_100"] == 0
    # the whole test set at 100 %: the point estimate is undefined too, and says so
    worst = retention(
        student, 0.5, {"acer": 0.0, "auc": 1.0}, ref, 0.5, {"acer": 1.0, "auc": 0.0}, options
    )
    assert worst["retention"] is None and "100 %" in worst["retention_note"]
    assert worst["auc_ratio"] is None


def timed(label: str, ms: dict[str, float], params: int, acer: float = 0.1) -> dict[str, Any]:
    return {
        "label": label,
        "test": {"acer": acer, "auc": 0.9},
        "weight": {"params": params, "macs": params * 10},
        "latency": {r: {"batch1": {"median_ms": v}} for r, v in ms.items()},
        "power": {r: {"energy_j": v * 1e-3} for r, v in ms.items()},
        "missing": {},
    }


def test_best_runtime_and_best_to_best_beside_the_same_runtime_ratio() -> None:
    """The README's case: ncnn runs the teacher far slower than ONNX Runtime does."""
    teacher = timed("teacher", {"onnx": 7.7, "onnx-int8": 3.3, "tflite": 5.9, "ncnn": 15.3,
                                "pytorch-cuda": 0.5}, 11_000_000)  # fmt: skip
    student = timed("student", {"onnx": 1.08, "onnx-int8": 0.71, "tflite": 0.95, "ncnn": 1.29,
                                "pytorch-cuda": 0.4}, 450_000)  # fmt: skip
    runtimes = ("onnx", "onnx-int8", "tflite", "ncnn", "pytorch-cuda")
    scores = scores_of([0.9, 0.1] * 4, [True, False] * 4, [f"s{i}" for i in range(8)])
    models = [teacher, student]
    compare(
        models,
        {m["label"]: (scores, 0.5) for m in models},
        SwapOptions(runtimes, bootstrap=0),
        "onnx",
    )
    vs = student["vs_reference"]
    assert vs["ncnn"]["speedup"] == pytest.approx(15.3 / 1.29)  # the same-runtime 11.9x
    assert student["best_runtime"]["fp32"] == {"runtime": "tflite", "median_ms": 0.95}
    assert teacher["best_runtime"]["fp32"] == {"runtime": "tflite", "median_ms": 5.9}
    assert vs["best_to_best"]["fp32"] == {
        "speedup": pytest.approx(5.9 / 0.95),
        "runtime": "tflite",
        "reference_runtime": "tflite",
    }
    assert vs["best_to_best"]["any"]["speedup"] == pytest.approx(3.3 / 0.71)  # int8 for both
    # the GPU (0.4 ms) is never a "best runtime": a phone has none
    assert student["best_runtime"]["any"] == {"runtime": "onnx-int8", "median_ms": 0.71}


def test_a_reference_missing_the_headline_runtime_moves_the_headline_and_says_why() -> None:
    teacher = timed("teacher", {"onnx-int8": 3.0, "pytorch": 20.0}, 1000)
    teacher["missing"] = {"onnx": "ONNX export failed: Unsupported operator"}
    student = timed("student", {"onnx": 1.0, "onnx-int8": 0.7, "pytorch": 3.0}, 100)
    models = [teacher, student]
    runtimes = ("onnx", "onnx-int8", "pytorch")
    headline, note = headline_runtime(models, runtimes)
    assert headline == "onnx-int8"
    assert note.startswith("onnx is missing for teacher (ONNX export failed: Unsupported operator)")
    scores = scores_of([0.9, 0.1] * 4, [True, False] * 4, [f"s{i}" for i in range(8)])
    options = SwapOptions(runtimes, bootstrap=0)
    compare(models, {m["label"]: (scores, 0.5) for m in models}, options, headline)
    assert student["vs_reference"]["omitted"]["onnx"] == "teacher x onnx left out"
    assert student["swap_score"] == pytest.approx((3.0 / 0.7 * 10 * 1.0 * 3.0 / 0.7) ** 0.25)
    assert pareto_front(models, (headline,)) == ["student"]
    # no runtime common to all: models without the first have no score and no Pareto point
    lonely = timed("vendor", {"onnx": 2.0}, 500)
    headline, note = headline_runtime([teacher, lonely], runtimes)
    assert headline == "onnx" and "no runtime was measured for every model" in note
    compare(
        [teacher, lonely], {m["label"]: (scores, 0.5) for m in (teacher, lonely)}, options, headline
    )
    assert teacher["swap_score"] is None and "teacher x onnx left out" in teacher["swap_score_note"]
    assert pareto_front([teacher, lonely], (headline,)) == ["vendor"]


def test_the_headline_benchmark_prints_best_to_best_beside_each_runtime() -> None:
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "swap_headline.py"
    spec = importlib.util.spec_from_file_location("swap_headline", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # the published table's batch-1 medians (benchmarks/results/swap_headline.md)
    teacher = timed("teacher", {"onnx": 7.686, "onnx-int8": 3.327, "tflite": 5.943,
                                "ncnn": 15.317}, 11_179_000)  # fmt: skip
    student = timed("student", {"onnx": 1.075, "onnx-int8": 0.712, "tflite": 0.946}, 454_000)
    student["missing"] = {"ncnn": "pnnx: conversion failed"}
    runtimes = ("onnx", "onnx-int8", "tflite", "ncnn")
    scores = scores_of([0.9, 0.1] * 4, [True, False] * 4, [f"s{i}" for i in range(8)])
    models = [teacher, student]
    options = SwapOptions(runtimes, bootstrap=0)
    compare(models, {m["label"]: (scores, 0.5) for m in models}, options, "onnx")
    swap = {"options": {"runtimes": runtimes}, "models": models}
    lines = bench.runtime_lines(swap)
    assert "| onnx | 7.686 | 1.075 | 7.1x | 0.140 |" in lines
    assert "| ncnn | student x ncnn left out | | | |" in lines
    assert (
        "Best-to-best (fp32 runtimes): teacher in tflite 5.943 ms, student in tflite 0.946 ms: "
        "**6.3x**." in lines
    )
    assert (
        "Best-to-best (int8 included): teacher in onnx-int8 3.327 ms, student in onnx-int8 "
        "0.712 ms: **4.7x**." in lines
    )


def test_a_slow_model_reports_its_scoring_progress_and_tiny_ratios_keep_their_digits() -> None:
    from fasdistill.swap.summary import times

    lines: list[str] = []

    def slow(images: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return np.zeros(len(images))

    score = measure._scoring_progress(slow, 12, "scoring", lines.append, every=0.05)
    for _ in range(4):
        score(np.zeros((3, 3, 8, 8), np.float32))
    assert lines and all(line.startswith("scoring: ") and "s left" in line for line in lines)
    assert "12/12" not in " ".join(lines)  # nothing said once it is done
    assert [times(v) for v in (7.14, 0.5, 0.05, 0.0000565)] == [
        "7.1x",
        "0.5x",
        "0.050x",
        "0.000056x",
    ]
