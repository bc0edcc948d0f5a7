"""Models from elsewhere in every registered format: several outputs, lower-is-live, maps and
the user's own score function, through predict, calibrate, a teacher probe and a SWAP row.

The vendor model has two outputs: 0 is P(spoof) (lower is live), 1 is the red channel
(a map whose mean is higher for live faces). The ONNX tests run in CI; the LiteRT,
ExecuTorch and ncnn ones run where those runtimes (and converters) are installed, on
the same model converted, and skip elsewhere.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fasdistill.cli import main
from fasdistill.config import TeacherSpec
from fasdistill.data.loader import read_crop_index
from fasdistill.distill.teachers import ForeignTeacher, load_teacher
from fasdistill.errors import InputError
from fasdistill.export.formats import REGISTRY
from fasdistill.infer.calibrate import load_scores
from fasdistill.infer.model_file import open_model, write_with_threshold
from fasdistill.swap.foreign import ForeignModel
from support import make_index
from test_foreign_model import write_face

BASE = "colour_order: BGR\nmean: [0, 0, 0]\nstd: [1, 1, 1]\ncrop_scale: 1.5\ninput_size: 32\n"
SPOOF = BASE + "output: probability\noutput_index: 0\nlower_is_live: true\n"
MAP = BASE + "output: map\noutput_index: 1\n"
COMBINED = BASE + "score: vendor_scores:live\n"
SCORES_MODULE = '''
import numpy as np


def live(outputs):
    """Half 1 - P(spoof), half the red map's mean: P(bona fide) per image."""
    spoof, red = outputs
    return 0.5 * (1.0 - spoof.reshape(len(spoof))) + 0.5 * red.reshape(len(red), -1).mean(1)


def wrong_shape(outputs):
    return np.zeros((len(outputs[0]), 2))


def too_big(outputs):
    return np.full(len(outputs[0]), 3.0)


not_a_function = 42
'''


class TwoOutputs(nn.Module):
    """BGR pixels in [0, 1]: P(spoof) from the colour, and the red channel as a map."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)  # ops every converter keeps
        red = means[:, 2:3] - (means[:, 0:1] + means[:, 1:2]) / 2
        return torch.sigmoid(-10 * red), x[:, 2:3]


def write_onnx(folder: Path) -> Path:
    path = folder / "vendor.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            TwoOutputs(),
            (torch.zeros(1, 3, 32, 32),),
            str(path),
            input_names=["x"],
            output_names=["spoof", "red"],
            dynamic_axes={"x": {0: "n"}, "spoof": {0: "n"}, "red": {0: "n"}},
            dynamo=False,
        )
    return path


def write_tflite(folder: Path) -> Path:
    """The same model as a batch-1 LiteRT program (the converter export/litert.py uses)."""
    pytest.importorskip("ai_edge_litert")
    litert_torch = pytest.importorskip("litert_torch")
    path = folder / "vendor.tflite"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        litert_torch.convert(TwoOutputs().eval(), (torch.zeros(1, 3, 32, 32),)).export(str(path))
    return path


def write_pte(folder: Path) -> Path:
    """The same model as an ExecuTorch program (XNNPACK-lowered, as export/pte.py does)."""
    pytest.importorskip("executorch.runtime")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = folder / "vendor.pte"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(TwoOutputs().eval(), (torch.zeros(1, 3, 32, 32),))
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        path.write_bytes(edge.to_executorch().buffer)
    return path


def write_ncnn(folder: Path) -> Path:
    """The same model as an ncnn .param + .bin pair (pnnx, fp32, as export/ncnn.py does)."""
    pytest.importorskip("ncnn")
    pnnx = pytest.importorskip("pnnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pnnx.export(
            TwoOutputs().eval(),
            str(folder / "vendor.pt"),
            inputs=(torch.zeros(1, 3, 32, 32),),
            ncnnparam=str(folder / "vendor.param"),
            ncnnbin=str(folder / "vendor.bin"),
            fp16=False,
        )
    return folder / "vendor.param"


WRITERS: dict[str, Callable[[Path], Path]] = {
    "onnx": write_onnx,
    "tflite": write_tflite,
    "pte": write_pte,
    "param": write_ncnn,
}
STATED = "params: 1\nmacs: 3072\n"  # formats whose weight SWAP cannot count: stated
SWAP_WEIGHT = {"onnx": "", "tflite": STATED, "pte": STATED, "param": STATED}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 4, "dev": 8})


@pytest.fixture(scope="module", params=sorted(WRITERS))
def vendor(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two-output model in one format (module-scoped: LiteRT conversion takes seconds)."""
    return WRITERS[request.param](tmp_path_factory.mktemp(request.param))


def with_sidecar(model: Path, folder: Path, sidecar: str) -> Path:
    """A copy of ``model`` (and an ncnn model's .bin) in ``folder`` with ``sidecar`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / model.name
    copy.write_bytes(model.read_bytes())
    if model.suffix == ".param":
        copy.with_suffix(".bin").write_bytes(model.with_suffix(".bin").read_bytes())
    copy.with_name(copy.name + ".yaml").write_text(sidecar)
    return copy


@pytest.fixture
def scores_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own module, importable as ``vendor_scores``."""
    (tmp_path / "vendor_scores.py").write_text(SCORES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))


def check_everywhere(model: Path, index: Path, tmp_path: Path, capsys) -> np.ndarray:
    """Calibrate, predict, probe as a teacher and score as a SWAP row; the dev scores."""
    fmt = REGISTRY[open_model(model).meta["format"]]
    opened = open_model(model)
    assert opened.kind == "foreign" and opened.format is fmt
    dev = load_scores(opened, index, "dev", threads=1)
    assert dev.scores[dev.bonafide].min() > dev.scores[~dev.bonafide].max()  # live scores high
    # calibrate: a copy whose YAML carries the threshold; the program is unchanged
    out = tmp_path / "calibrated" / model.name.replace("vendor", "cal")
    write_with_threshold(opened, out, 0.5, "eer on my data")
    assert out.read_bytes() == model.read_bytes()
    if model.suffix == ".param":  # the weights go with it
        assert out.with_suffix(".bin").read_bytes() == model.with_suffix(".bin").read_bytes()
    assert open_model(out).threshold == 0.5
    # predict, through the CLI
    live = write_face(tmp_path, "live", (200, 60, 60))
    photo = write_face(tmp_path, "photo", (60, 60, 200))
    assert main(["predict", "--json", "--model", str(out), str(live), str(photo)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in rows] == ["bonafide", "attack"], rows
    # a distillation teacher: probed at the student's size, logits for KD
    spec = TeacherSpec(path=str(model), **_sidecar_fields(model))
    teacher = load_teacher(spec, "distill.teacher[0]", ("bonafide", "attack"), 1.5,
                           torch.device("cpu"), input_size=16)  # fmt: skip
    assert isinstance(teacher, ForeignTeacher) and teacher.kind == fmt.name
    crops = torch.from_numpy(np.stack([np.full((3, 16, 16), v, np.float32) for v in (-1, 1)]))
    assert teacher.outputs(crops)["logits"].shape == (2, 2)
    # a SWAP row: scored in its own runtime, timed on raw batches, weighed
    row = ForeignModel(model, read_crop_index(index))
    assert row.format is fmt and row.input_size == 32 and set(row.weight) == {"params", "macs"}
    assert np.allclose(row.score(np.zeros((2, 3, 32, 32), np.float32)).shape, (2,))
    assert len(row.run(np.zeros((1, 3, 32, 32), np.float32))) == 2
    return dev.scores


def _sidecar_fields(model: Path) -> dict:
    import yaml

    data = yaml.safe_load(model.with_name(model.name + ".yaml").read_text())
    return {k: v for k, v in data.items() if k not in ("params", "macs")}


def test_output_zero_is_p_spoof_and_lower_is_live(
    vendor: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fmt = vendor.suffix.lstrip(".")
    model = with_sidecar(vendor, tmp_path / "m", SPOOF + SWAP_WEIGHT[fmt])
    scores = check_everywhere(model, index, tmp_path, capsys)
    # without lower_is_live the same output reads attacks as live: exactly inverted
    flipped = with_sidecar(vendor, tmp_path / "flipped", SPOOF.replace("true", "false"))
    inverted = load_scores(open_model(flipped), index, "dev", threads=1).scores
    assert np.allclose(scores, 1.0 - inverted, atol=1e-5)


def test_a_map_output_chosen_by_index(
    vendor: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fmt = vendor.suffix.lstrip(".")
    model = with_sidecar(vendor, tmp_path / "m", MAP + SWAP_WEIGHT[fmt])
    check_everywhere(model, index, tmp_path, capsys)


def test_the_users_score_function_combines_two_outputs(
    vendor: Path, index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], scores_module
) -> None:
    fmt = vendor.suffix.lstrip(".")
    model = with_sidecar(vendor, tmp_path / "m", COMBINED + SWAP_WEIGHT[fmt])
    combined = check_everywhere(model, index, tmp_path, capsys)
    spoof = load_scores(open_model(with_sidecar(vendor, tmp_path / "s", SPOOF)), index, "dev", 1)
    red = load_scores(open_model(with_sidecar(vendor, tmp_path / "r", MAP)), index, "dev", 1)
    assert np.allclose(combined, 0.5 * spoof.scores + 0.5 * red.scores, atol=1e-4)


def test_the_output_by_name(index: Path, tmp_path: Path) -> None:
    model = with_sidecar(write_onnx(tmp_path), tmp_path / "m", BASE + "output: map\n"
                         "output_name: red\n")  # fmt: skip
    by_name = load_scores(open_model(model), index, "dev", 1).scores
    by_index = load_scores(open_model(with_sidecar(model, tmp_path / "i", MAP)), index, "dev", 1)
    assert np.array_equal(by_name, by_index.scores)


@pytest.mark.parametrize(
    ("sidecar", "named"),
    [
        (SPOOF.replace("output_index: 0", "output_index: 2"), "output_index: 2, but vendor.onnx"),
        (SPOOF + "output_name: red\n", "output_index: give output_name or output_index"),
        (BASE + "lower_is_live: true\nlive_index: 0\n", "lower_is_live: applies to probability"),
        (SPOOF + "format: coreml\n", "format: 'coreml' is not a registered format"),
        (BASE + "score: vendor_scores\n", "score: 'vendor_scores' is not module:function"),
        (BASE + "score: no_such_module:f\n", "score: cannot import module 'no_such_module'"),
        (BASE + "score: vendor_scores:absent\n", "score: module 'vendor_scores' has no 'absent'"),
        (BASE + "score: vendor_scores:not_a_function\n", "is a int, not a function"),
        (BASE + "score: vendor_scores:wrong_shape\n", "returned shape (2, 2) for 2 images"),
        (BASE + "score: vendor_scores:too_big\n", "returned values from 3 to 3, outside [0, 1]"),
        (COMBINED + "output_index: 1\n", "output_index: score: vendor_scores:live takes every"),
    ],
)
def test_a_sidecar_mistake_is_one_line_naming_the_field(
    sidecar: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], scores_module
) -> None:
    (tmp_path / "src").mkdir()
    model = with_sidecar(write_onnx(tmp_path / "src"), tmp_path / "m", sidecar + "threshold: .5\n")
    face = write_face(tmp_path, "face", (200, 60, 60))
    assert main(["predict", "--model", str(model), str(face)]) == 2
    err = capsys.readouterr().err
    assert f"{model}.yaml: " in err and named in err, err
    assert err.count("\n") == 1, err


def test_a_format_whose_runtime_is_missing_names_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fasdistill.export import litert

    monkeypatch.setattr(litert, "available", lambda: False)
    model = tmp_path / "vendor.tflite"
    model.write_bytes(b"TFL3 not read: the runtime is missing")
    model.with_name("vendor.tflite.yaml").write_text(SPOOF)
    with pytest.raises(InputError) as caught:
        open_model(model)
    assert str(caught.value) == (
        f"{model}.yaml: format: tflite runs in LiteRT, which is not installed here "
        "(pip install 'fasdistill[litert]')"
    )


def test_swap_needs_the_weight_of_formats_it_cannot_count(tmp_path: Path, index: Path) -> None:
    model = with_sidecar(write_tflite(tmp_path), tmp_path / "m", SPOOF)
    with pytest.raises(InputError, match=r"params, macs: SWAP cannot count the parameters"):
        ForeignModel(model, read_crop_index(index))
