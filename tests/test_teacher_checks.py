"""Teachers are probed on a dummy batch before a run directory exists; each mistake in
their description is one error line naming the field, never a traceback."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from fasdistill.cli import main
from fasdistill.config import TeacherSpec
from fasdistill.distill.batches import probe_batch
from fasdistill.distill.teachers import OnnxTeacher
from fasdistill.errors import InputError
from support import make_index
from test_distill import make_teacher

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

CLASSES = ("bonafide", "print", "replay")


class Fixed32(nn.Module):
    """Two logits from a 32x32 input, clearly outside [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 2)
        nn.init.zeros_(self.fc.weight)
        with torch.no_grad():
            self.fc.bias.copy_(torch.tensor([3.0, -3.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class PairOnly(Fixed32):
    """Runs on batches of two only (the probe's size): fails at the first training step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.reshape(2, -1))


def export(net: nn.Module, path: Path, batch: int = 1) -> Path:
    """TorchScript export (no onnxscript needed): input fixed at 32x32, dynamic batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            net,
            (torch.zeros(batch, 3, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )
    return path


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 4, "dev": 2, "test": 2})


@pytest.fixture(scope="module")
def fixed32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A third-party-like model whose input is fixed at 32x32 (dynamic batch), two columns."""
    return export(Fixed32(), tmp_path_factory.mktemp("onnx") / "fixed32.onnx")


def distill(tmp_path: Path, index: Path, teacher: dict | Path) -> tuple[int, Path]:
    """``fasdistill distill`` with a one-term KD recipe; returns the exit status and run dir."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: probe\nmodel: {name: smoke-cnn}\n"
        "data: {input_size: 16, batch_size: 8, workers: 0}\ntrain: {epochs: 1}\n"
        "distill:\n  teacher: unused.pt\n  terms: [{kind: kd}]\n"
    )
    teachers = json.dumps([teacher if isinstance(teacher, dict) else str(teacher)])
    run = tmp_path / "run"
    args = ["distill", "--recipe", str(recipe), "--data", str(index), "--out", str(run)]
    return main([*args, "--no-progress", f"distill.teacher={teachers}"]), run


@pytest.mark.parametrize(
    ("stated", "message"),
    [
        (
            {"live_index": 2},
            "distill.teacher[0]: live_index: 2, but fixed32.onnx's output 'logits' has 2 "
            "columns (0..1)",
        ),
        (
            {"classes": ["bonafide", "print", "replay", "mask"]},
            "distill.teacher[0]: classes: 4 names",
        ),
        (
            {"input_size": 64},
            "distill.teacher[0]: input_size: 64, but fixed32.onnx takes 32x32 inputs",
        ),
        (
            {"output": "probability", "live_index": 0},
            "distill.teacher[0]: output: probability, but fixed32.onnx's output 'logits' ranges "
            "from -3 to 3",
        ),
        ({"output": "map"}, "distill.teacher[0]: output: map, but"),
        ({"output_name": "depth"}, "distill.teacher[0]: output_name: fixed32.onnx has no output"),
    ],
)
def test_onnx_teacher_mistakes_are_one_line_and_write_nothing(
    index: Path,
    fixed32: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    stated: dict,
    message: str,
) -> None:
    status, run = distill(tmp_path, index, {"path": str(fixed32), "crop_scale": 1.5, **stated})
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not run.exists()


def test_a_correct_onnx_teacher_trains(
    index: Path, fixed32: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, run = distill(tmp_path, index, {"path": str(fixed32), "crop_scale": 1.5})
    assert status == 0, capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()


def test_checkpoint_teachers_with_other_classes_or_broken_weights_write_nothing(
    index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = make_index(tmp_path / "two", {"train": 2, "dev": 2, "test": 2})
    two.write_text("\n".join(r for r in two.read_text().splitlines() if ",replay," not in r))
    other = make_teacher(tmp_path / "other.pt", two)
    status, run = distill(tmp_path, index, other)
    assert status == 2 and not run.exists()
    assert "was trained on classes ['bonafide', 'print']" in capsys.readouterr().err

    broken = make_teacher(tmp_path / "broken.pt", index)
    state = torch.load(broken, weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, broken)
    status, run = distill(tmp_path, index, broken)
    err = capsys.readouterr().err
    assert status == 2 and not run.exists()
    assert "distill.teacher[0]: broken.pt gives non-finite logits" in err
    assert len(err.strip().splitlines()) == 1


def test_an_onnx_runtime_failure_during_training_names_the_teacher_file(
    index: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = export(PairOnly(), tmp_path / "pair.onnx", batch=2)
    status, run = distill(tmp_path, index, {"path": str(path), "crop_scale": 1.5})
    lines = capfd.readouterr().err.strip().splitlines()  # fd level: ORT's own log included
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("fasdistill distill: error: distill.teacher[0]: ONNX Runtime ")
    assert f"cannot run {path} on 8 images" in lines[0]
    assert not (run / "checkpoints" / "last.pt").exists()


def test_the_probe_names_the_source_it_is_given_and_leaves_the_global_rng_alone(
    fixed32: Path,
) -> None:
    spec = TeacherSpec(path=str(fixed32), crop_scale=1.5, output="probability", live_index=5)
    with pytest.raises(InputError, match=r"^fixed32\.onnx\.yaml: live_index: 5, but fixed32"):
        OnnxTeacher(spec, fixed32, CLASSES, where="fixed32.onnx.yaml")
    torch.manual_seed(3)
    before = torch.get_rng_state()
    batch = probe_batch(16)
    assert torch.equal(torch.get_rng_state(), before)
    assert batch.shape == (2, 3, 16, 16) and torch.equal(batch, probe_batch(16))
    assert float(batch.min()) >= -1.0 and float(batch.max()) <= 1.0  # the loader's range


def test_foreign_models_with_a_wrong_sidecar_fail_when_constructed(
    index: Path, fixed32: Path, tmp_path: Path
) -> None:
    from fasdistill.data.loader import read_crop_index
    from fasdistill.swap.foreign import ForeignModel

    model = tmp_path / "vendor.onnx"
    model.write_bytes(fixed32.read_bytes())
    (tmp_path / "vendor.onnx.yaml").write_text("crop_scale: 1.5\noutput: logits\nlive_index: 5\n")
    with pytest.raises(InputError, match=r"live_index: 5, but vendor\.onnx.s output"):
        ForeignModel(model, read_crop_index(index))
