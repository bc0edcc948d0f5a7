"""The quick start: every stage runs, the headline adds up, a rerun resumes instead of redoing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fasdistill.errors import InputError
from fasdistill.quickstart import STAGES, Budget, best_method, headline_lines, run_quickstart
from fasdistill.swap.measure import SwapOptions

TINY = Budget("tiny", subjects=3, teacher_steps=2, student_steps=2, seconds=(1,) * 6,
              input_size=16, crop_size=32, image_size=64)  # fmt: skip
# Two optimiser steps give near-random models: INT8 would fail its decision parity check.
FAST = SwapOptions(("onnx", "pytorch"), latency_runs=2, latency_seconds=0.0, bootstrap=20, batch=2)


def test_quickstart_runs_every_stage_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    lines: list[str] = []
    headline = run_quickstart(out, TINY, lines.append, ("onnx",), FAST)
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
    assert headline == json.loads((out / "headline.json").read_text())
    assert any("[3/6] teacher: ResNet-18, 2 steps" in line for line in lines)
    text = "\n".join(headline_lines(headline))
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


def test_the_method_is_the_benchmark_s_best_on_dev(tmp_path: Path) -> None:
    results = tmp_path / "kd_gain.json"
    runs = {
        "intra/kd/seed0": {"method": "kd", "dev": {"acer": 0.10}, "test": {"acer": 0.01}},
        "intra/kd/seed1": {"method": "kd", "dev": {"acer": 0.06}, "test": {"acer": 0.01}},
        "intra/at/seed0": {"method": "at", "dev": {"acer": 0.07}, "test": {"acer": 0.30}},
        "intra/scratch/seed0": {"method": "scratch", "dev": {"acer": 0.01}, "test": {}},
        "lodo_phone/dkd/seed0": {"method": "dkd", "dev": {"acer": 0.0}, "test": {}},
    }
    results.write_text(json.dumps({"results": runs}))
    assert best_method(results)[0] == "at"  # dev decides (0.07 < mean 0.08), never test
    assert best_method(tmp_path / "missing.json")[0] == "kd"
