"""A third-party ONNX model with a YAML sidecar: calibrated, then used by predict."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fasdistill.cli import main
from fasdistill.infer.model_file import open_model
from support import make_index

SIDECAR = "colour_order: BGR\nmean: [0, 0, 0]\nstd: [1, 1, 1]\ncrop_scale: 1.5\noutput: logits\n"


class ColourNet(nn.Module):
    """A vendor's model: BGR pixels in [0, 1] at 32 px; column 1 is live (red faces)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blue, green, red = x.mean(dim=(2, 3)).unbind(1)
        live = 10 * (red - (blue + green) / 2)
        return torch.stack([-live, live], dim=1)


def write_vendor_model(folder: Path, sidecar: str | None = SIDECAR + "live_index: 1\n") -> Path:
    """A fixed-32-px ONNX model without fasdistill metadata, and its sidecar when given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vendor.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            ColourNet(),
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )
    if sidecar is not None:
        (folder / "vendor.onnx.yaml").write_text(sidecar)
    return path


def write_face(folder: Path, name: str, rgb: tuple[int, int, int]) -> Path:
    """A noisy 96-px image of one colour with its face box beside it (``<name>.boxes.csv``)."""
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(rgb, 25, (96, 96, 3)), 0, 255).astype(np.uint8)
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), image[..., ::-1])
    (folder / f"{name}.boxes.csv").write_text("frame,x,y,w,h\n0,30,30,36,36\n")
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 4, "dev": 8})


def test_a_foreign_model_is_calibrated_then_predicts(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_vendor_model(tmp_path / "vendor")
    live = write_face(tmp_path, "live", (200, 60, 60))
    photo = write_face(tmp_path, "photo", (60, 60, 200))
    # No threshold yet: predict says how to get one.
    assert main(["predict", "--model", str(model), str(live)]) == 2
    err = capsys.readouterr().err
    assert f"no threshold: run fasdistill calibrate --model {model}" in err
    assert err.count("\n") == 1
    args = ["calibrate", "--model", str(model), "--data", str(index), "--bootstrap", "0"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    calibrated = model.with_name("vendor.calibrated.onnx")
    assert report["calibrated_model"] == str(calibrated) and report["previous_threshold"] is None
    assert (
        report["on_calibration_data"]["apcer"] == 0 and report["on_calibration_data"]["bpcer"] == 0
    )
    # The copy is the same program; its sidecar adds the threshold and how it was chosen.
    assert calibrated.read_bytes() == model.read_bytes()
    copy = open_model(calibrated)
    assert copy.kind == "foreign" and copy.threshold == pytest.approx(report["threshold"])
    assert copy.meta["threshold_criterion"].startswith("eer on 24 frame-level samples")
    assert "threshold" not in (model.parent / "vendor.onnx.yaml").read_text()
    assert main(["predict", "--json", "--model", str(calibrated), str(live), str(photo)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in rows] == ["bonafide", "attack"]
    assert rows[0]["score"] > 0.99 > 0.01 > rows[1]["score"]


def test_the_sidecar_states_the_live_column(index: Path, tmp_path: Path) -> None:
    """live_index 0 on this model reads attacks as live: the same crops score inverted."""
    from fasdistill.infer.calibrate import load_scores

    right = open_model(write_vendor_model(tmp_path / "right"))
    wrong = open_model(write_vendor_model(tmp_path / "wrong", SIDECAR + "live_index: 0\n"))
    a, b = (load_scores(m, index, "dev", threads=1) for m in (right, wrong))
    assert np.allclose(a.scores, 1.0 - b.scores, atol=1e-5)
    assert a.scores[a.bonafide].min() > a.scores[~a.bonafide].max()


@pytest.mark.parametrize(
    ("sidecar", "named"),
    [
        (SIDECAR + "inptu_size: 32\n", "unknown key 'inptu_size'"),
        (SIDECAR.replace("crop_scale: 1.5\n", ""), "crop_scale: missing"),
        (SIDECAR + "threshold: high\n", "threshold: Input should be a valid number"),
        (SIDECAR.replace("logits", "logit"), "output: Input should be 'logits', 'probability'"),
        (SIDECAR + "classes: [live, print]\n", "classes: ['live', 'print'] has no 'bonafide'"),
        ("- a list\n", "expected a mapping of keys, got list"),
        (SIDECAR + "live_index: 5\nthreshold: 0.5\n", "live_index: 5, but vendor.onnx"),
    ],
)
def test_a_sidecar_mistake_is_one_line_naming_the_key(
    sidecar: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_vendor_model(tmp_path, sidecar)
    face = write_face(tmp_path, "face", (200, 60, 60))
    assert main(["predict", "--model", str(model), str(face)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'vendor.onnx.yaml'}: " in err and named in err, err
    assert err.count("\n") == 1, err


def test_without_a_sidecar_the_error_asks_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_vendor_model(tmp_path, sidecar=None)
    face = write_face(tmp_path, "face", (200, 60, 60))
    assert main(["predict", "--model", str(model), str(face)]) == 2
    err = capsys.readouterr().err
    assert "needs a sidecar vendor.onnx.yaml" in err and err.count("\n") == 1


def test_swap_reads_sidecars_with_the_same_code(tmp_path: Path) -> None:
    from fasdistill.infer import foreign
    from fasdistill.swap import foreign as swap_foreign

    assert swap_foreign.foreign_spec is foreign.foreign_spec
    assert swap_foreign.sidecar_for is foreign.sidecar_for
    model = write_vendor_model(tmp_path, SIDECAR + "threshold: 0.4\nthreshold_level: frame\n")
    spec, source = swap_foreign.foreign_spec(model)  # a calibrated sidecar is still valid
    assert source == str(tmp_path / "vendor.onnx.yaml") and spec.crop_scale == 1.5


def test_a_foreign_model_runs_on_the_threads_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fasdistill.utils.ort as ort
    from fasdistill.utils.ort import open_session

    asked: list[int | None] = []

    def recording(path: Path, threads: int | None = None) -> object:
        asked.append(threads)
        return open_session(path, threads)

    monkeypatch.setattr(ort, "open_session", recording)
    model = open_model(write_vendor_model(tmp_path))
    score = model.scorer(threads=3)
    assert asked == [3]
    assert score(np.zeros((2, 3, 32, 32), np.float32)).shape == (2,)
