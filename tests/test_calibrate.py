"""Calibration: a deployment's own operating point, written into a copy of any model file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fasdistill.cli import main
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.errors import InputError
from fasdistill.export.onnx import read_onnx_metadata
from fasdistill.export.pte import write_sidecar
from fasdistill.infer.calibrate import calibrate, out_of_bag
from fasdistill.infer.model_file import open_model, write_with_threshold
from fasdistill.metrics import EvalOptions, evaluate
from fasdistill.metrics.pad import Criterion
from fasdistill.metrics.scores import ScoreSet, write_scores


@pytest.fixture(scope="module")
def checkpoint(smoke_checkpoint: Path) -> Path:
    return smoke_checkpoint


@pytest.fixture(scope="module")
def onnx_model(smoke_onnx: Path) -> Path:
    return smoke_onnx


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_checkpoint_and_an_onnx_model_get_a_calibrated_copy(
    checkpoint: Path, onnx_model: Path, index: Path, tmp_path: Path
) -> None:
    for source in (checkpoint, onnx_model):
        before = digest(source)
        out = tmp_path / f"calibrated{source.suffix}"
        report = calibrate(source, index, "apcer@bpcer=0.1", out=out, bootstrap=50)
        assert digest(source) == before  # the original is untouched
        copy = open_model(out)
        assert copy.threshold == pytest.approx(report["threshold"])
        assert copy.meta["threshold_criterion"].startswith("apcer@bpcer=0.1 on 24 frame-level")
        assert copy.meta["input_size"] == open_model(source).meta["input_size"]
        # The threshold is the one the metrics stage picks on the same dev scores.
        scores = _dev_scores(source, index)
        expected = evaluate(scores, None, EvalOptions("apcer@bpcer=0.1", bootstrap=0)).threshold
        assert report["threshold"] == pytest.approx(expected)
        assert report["on_calibration_data"]["bpcer"] <= 0.1 + 1e-9
        assert report["samples"] == {"bonafide": 8, "attack": 16}
    assert read_onnx_metadata(tmp_path / "calibrated.onnx")["threshold"] == pytest.approx(
        open_model(tmp_path / "calibrated.onnx").threshold
    )
    model, _ = load_deployable(tmp_path / "calibrated.pt")  # still a loadable best.pt
    assert sum(p.numel() for p in model.parameters()) > 0


def _dev_scores(model: Path, index: Path) -> ScoreSet:
    from fasdistill.infer.calibrate import load_scores

    return load_scores(open_model(model), index, "dev", threads=1)


def test_a_score_file_calibrates_without_the_runtime(
    onnx_model: Path, index: Path, tmp_path: Path
) -> None:
    scores = write_scores(tmp_path / "dev.csv", _dev_scores(onnx_model, index))
    from_file = calibrate(onnx_model, scores, "eer", out=tmp_path / "a.onnx", bootstrap=0)
    from_index = calibrate(onnx_model, index, "eer", out=tmp_path / "b.onnx", bootstrap=0)
    assert from_file["threshold"] == pytest.approx(from_index["threshold"])
    assert from_file["split"] is None and from_index["split"] == "dev"


def test_program_files_are_copied_with_a_new_sidecar(checkpoint: Path, tmp_path: Path) -> None:
    _, meta = load_deployable(checkpoint)
    for name in ("model.pte", "model.tflite", "model.ncnn.param"):
        program = tmp_path / "src" / name
        program.parent.mkdir(exist_ok=True)
        program.write_bytes(b"program bytes")
        kind = {"pte": "pte", "tflite": "tflite", "param": "ncnn"}[name.rsplit(".", 1)[1]]
        if kind == "ncnn":
            program.with_suffix(".bin").write_bytes(b"weights")
        write_sidecar(program, meta, 0.5, "eer on dev", f"fasdistill-{kind}/1")
        out = tmp_path / "dst" / name.replace("model", "cal")
        write_with_threshold(open_model(program), out, 0.75, "eer on my data")
        assert out.read_bytes() == b"program bytes"
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        assert sidecar["threshold"] == 0.75 and sidecar["program"] == out.name
        assert sidecar["threshold_criterion"] == "eer on my data"
        assert json.loads(program.with_name(name + ".json").read_text())["threshold"] == 0.5
        if kind == "ncnn":
            assert out.with_suffix(".bin").read_bytes() == b"weights"
    (tmp_path / "src" / "model.pte.json").unlink()
    with pytest.raises(InputError, match=r"metadata sidecar model\.pte\.json is missing"):
        open_model(tmp_path / "src" / "model.pte")


def test_out_of_bag_rates_estimate_new_subjects() -> None:
    rng = np.random.default_rng(0)
    n = 4000  # 200 subjects, 10 bona fide and 10 attack samples each
    subjects = [f"s{i // 20}" for i in range(n)]
    live = np.tile(np.r_[np.ones(10, bool), np.zeros(10, bool)], n // 20)
    scores = np.where(live, rng.normal(1, 1, n), rng.normal(-1, 1, n))
    data = ScoreSet.from_arrays(scores, live, subjects=subjects)
    oob = out_of_bag(data, Criterion.parse("eer"), resamples=100, confidence=0.95)
    # Two unit-variance normals 2 apart: the EER threshold is 0, both error rates Phi(-1).
    assert oob["valid_resamples"] == 100
    assert oob["apcer"] == pytest.approx(0.1587, abs=0.02)
    assert oob["bpcer"] == pytest.approx(0.1587, abs=0.02)
    lo, hi = oob["bpcer_ci"]
    assert lo < 0.1587 < hi and hi - lo < 0.1


def test_bad_calibration_input_is_one_line_and_writes_nothing(
    onnx_model: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["calibrate", "--model", str(onnx_model), "--data", str(index)]
    cases = [
        (["--criterion", "best"], "unknown threshold criterion 'best'"),
        (["--out", str(tmp_path / "x.pt")], "keep the model's suffix '.onnx'"),
        (["--out", str(onnx_model)], "is the input model; calibration never overwrites it"),
        (["--split", "holdout"], "no 'holdout' crops"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    missing = ["calibrate", "--model", str(tmp_path / "none.onnx"), "--data", str(index)]
    assert main(missing) == 2 and "none.onnx: model file not found" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.onnx")) and not list(onnx_model.parent.glob("*.calibrated*"))


def test_cli_prints_the_expected_rates_and_the_new_file(
    onnx_model: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deployed.onnx"
    args = ["calibrate", "--model", str(onnx_model), "--data", str(index), "--out", str(out)]
    assert main([*args, "--criterion", "bpcer@apcer=0.05", "--bootstrap", "40"]) == 0
    printed = capsys.readouterr().out
    assert "by bpcer@apcer=0.05" in printed and f"wrote {out}" in printed
    assert "on this data:" in printed and "at the old threshold here:" in printed
    assert main([*args, "--json", "--bootstrap", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["criterion"] == "eer" and report["out_of_bag"] is None
