"""Models: registry, shapes at several input sizes, deployable part, aux heads, targets, sizes."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fasdistill.errors import InputError
from fasdistill.models import (
    AUX_HEADS,
    FASModel,
    build_model,
    count_macs,
    count_params,
    fourier_target,
    get_spec,
    model_specs,
    models_table,
    pixel_map_target,
)
from fasdistill.models.registry import register
from fasdistill.models.teachers import CDConv2d

NAMES = [spec.name for spec in model_specs()]
STUDENTS = [spec.name for spec in model_specs() if spec.role == "student"]
# resnet50 is built once (the cached 4-class model with aux heads); it shares every code
# path but the Bottleneck with resnet18/34, which the extra builds below cover.
REBUILDABLE = [name for name in NAMES if name != "resnet50"]


@functools.cache
def cached(name: str) -> FASModel:
    """Each model built once for the whole module: 4 classes, every aux head."""
    torch.manual_seed(0)
    return build_model(name, num_classes=4, aux=AUX_HEADS)


def sizes(name: str) -> tuple[int, int]:
    """Two input sides per model: students at their default and 100, teachers small."""
    spec = get_spec(name)
    return (spec.input_size, 100) if spec.role == "student" else (56, 72)


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(size))


def test_registry_lists_every_model_with_its_role() -> None:
    roles = {spec.name: spec.role for spec in model_specs()}
    assert roles == {
        "resnet18": "teacher",
        "resnet34": "teacher",
        "resnet50": "teacher",
        "cdcnpp": "teacher",
        "minifasnet": "student",
        "mobilenetv3-small-0.5": "student",
        "mobilenetv3-small-0.75": "student",
        "swapnet": "student",
        "smoke-cnn": "student",
        "searchnet": "student",
    }
    assert NAMES[:4] == ["resnet18", "resnet34", "resnet50", "cdcnpp"]  # registration order
    assert get_spec("minifasnet").input_size == 80
    assert all(spec.description for spec in model_specs())


@pytest.mark.parametrize("name", NAMES)
def test_forward_gives_logits_at_two_sizes(name: str) -> None:
    model = cached(name).eval()
    for size in sizes(name):
        logits = model(images(size))
        assert logits.shape == (2, 4)
        assert torch.isfinite(logits).all()
    assert (model.name, model.num_classes, model.input_size) == (name, 4, get_spec(name).input_size)


@pytest.mark.parametrize("name", NAMES)
def test_forward_train_returns_features_and_aux_maps(name: str) -> None:
    model = cached(name).train()
    for size in sizes(name):
        out = model.forward_train(images(size))
        assert set(out) == {"logits", "features", "pixel", "fourier"}
        n, channels, h, w = out["features"].shape
        assert (n, channels) == (2, model.feature_channels)
        assert out["logits"].shape == (2, 4)
        assert out["pixel"].shape == (2, 1, h, w)  # the pixel map follows the input size
        assert out["fourier"].shape == (2, 1, 10, 10)


@pytest.mark.parametrize("name", NAMES)
def test_deployable_shares_weights_excludes_aux_and_matches_forward(name: str) -> None:
    model = cached(name).eval()
    deployable = model.deployable()
    assert count_params(deployable) == count_params(model) - count_params(model.aux) > 0
    aux_ids = {id(p) for p in model.aux.parameters()}
    assert not aux_ids & {id(p) for p in deployable.parameters()}
    assert all(not key.startswith("aux.") for key in deployable.state_dict())
    assert deployable.backbone is model.backbone and deployable.head is model.head
    x = images(sizes(name)[0])
    with torch.no_grad():
        assert torch.equal(deployable(x), model(x))
    assert (deployable.name, deployable.role, deployable.num_classes) == (name, model.role, 4)


@pytest.mark.parametrize("name", REBUILDABLE)
def test_builds_with_two_classes_and_aux_changes_no_deployable_count(name: str) -> None:
    two = build_model(name, num_classes=2).eval()
    with torch.no_grad():
        assert two(images(sizes(name)[1], n=3)).shape == (3, 2)
    plain = build_model(name, num_classes=4)
    assert count_params(plain.deployable()) == count_params(cached(name).deployable())


@pytest.mark.parametrize("name", STUDENTS)
def test_students_stay_under_one_million_deployable_parameters(name: str) -> None:
    assert count_params(cached(name).deployable()) < 1_000_000


def test_minifasnet_matches_silent_face_size() -> None:
    deployable = build_model("minifasnet").deployable()
    assert 400_000 <= count_params(deployable) <= 450_000
    assert 36e6 <= count_macs(deployable, 80) <= 46e6


def test_swapnet_meets_its_design_budget() -> None:
    deployable = build_model("swapnet").deployable()
    assert count_params(deployable) < 500_000
    convs = [m for m in deployable.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.groups == 1 and conv.kernel_size == (3, 3) for conv in convs)


def test_minifasnet_gdc_accepts_maps_smaller_than_its_kernel() -> None:
    model = cached("minifasnet").eval()
    with torch.no_grad():
        assert model.backbone(images(48)).shape[-1] == 3  # GDC kernel is 5: padded
        assert model(images(48)).shape == (2, 4)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_deployable_parameter(name: str) -> None:
    model = cached(name).train()
    model.zero_grad(set_to_none=True)
    deployable = model.deployable()
    logits = deployable(images(sizes(name)[0] if name in STUDENTS else 56, n=4))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    dead = [
        key
        for key, p in deployable.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not dead


def test_cdconv_reduces_to_a_plain_conv_and_ignores_constant_images() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 9)
    plain = CDConv2d(5, 7, theta=0.0)
    assert torch.allclose(plain(x), F.conv2d(x, plain.weight, padding=1), atol=1e-6)
    difference = CDConv2d(5, 7, theta=1.0)
    constant = torch.full((1, 5, 9, 9), 3.0)
    assert difference(constant)[..., 1:-1, 1:-1].abs().max() < 1e-5  # interior: no padding
    for stride in (1, 2):
        cdc = CDConv2d(5, 7, stride=stride, theta=0.7)
        centre = F.conv2d(x, cdc.weight.sum(dim=(2, 3), keepdim=True), stride=stride)
        expected = F.conv2d(x, cdc.weight, stride=stride, padding=1) - 0.7 * centre
        assert torch.allclose(cdc(x), expected, atol=1e-5)


def test_fourier_target_is_a_normalised_centred_spectrum() -> None:
    rgb = torch.rand(3, 3, 80, 80)
    target = fourier_target(rgb)
    assert target.shape == (3, 1, 10, 10) and target.dtype == torch.float32
    assert target.min() >= 0.0 and target.max() <= 1.0
    full = fourier_target(rgb, size=80)  # no resize: the DC term is the centre pixel
    assert (full.flatten(1).argmax(dim=1) == 40 * 80 + 40).all()
    assert torch.allclose(full.amax(dim=(2, 3)), torch.ones(3, 1))
    assert torch.allclose(full.amin(dim=(2, 3)), torch.zeros(3, 1))
    assert fourier_target(rgb[:, :1], size=4).shape == (3, 1, 4, 4)
    assert fourier_target(torch.rand(1, 3, 6, 6), size=10).shape == (1, 1, 10, 10)
    with pytest.raises(InputError, match="images"):
        fourier_target(torch.rand(3, 80, 80))


def test_pixel_map_target_is_one_for_bonafide_zero_for_attacks() -> None:
    like = torch.zeros(3, 1, 4, 5)
    target = pixel_map_target(torch.tensor([True, False, True]), like)
    assert target.shape == like.shape
    assert target[0].eq(1).all() and target[1].eq(0).all() and target[2].eq(1).all()
    with pytest.raises(InputError, match="labels_is_bonafide"):
        pixel_map_target(torch.tensor([1, 0]), like)


def test_bad_arguments_raise_input_errors_that_name_them() -> None:
    with pytest.raises(InputError, match=r"unknown model 'resnet9'.*minifasnet"):
        build_model("resnet9")
    with pytest.raises(InputError, match="num_classes"):
        build_model("smoke-cnn", num_classes=1)
    with pytest.raises(InputError, match=r"unknown aux head 'depth'.*pixel"):
        build_model("smoke-cnn", aux=("depth",))
    with pytest.raises(InputError, match="aux"):
        build_model("smoke-cnn", aux=("pixel", "pixel"))
    with pytest.raises(InputError, match=r"smoke-cnn.*width"):
        build_model("smoke-cnn", width=2)
    with pytest.raises(InputError, match="dropout"):
        build_model("smoke-cnn", dropout=1.0)
    with pytest.raises(InputError, match="already registered"):
        register("smoke-cnn", "student", 64, "duplicate")(lambda **_: None)


def test_build_options_reach_the_model() -> None:
    model = build_model("cdcnpp", theta=0.5, dropout=0.1, input_size=96, aux="pixel")
    assert {m.theta for m in model.modules() if isinstance(m, CDConv2d)} == {0.5}
    assert model.input_size == 96 and list(model.aux) == ["pixel"]


def test_smoke_cnn_output_does_not_depend_on_batch_split() -> None:
    model = cached("smoke-cnn").train()  # with both aux heads
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = images(64, n=4)
    with torch.no_grad():
        whole, first, second = (model.forward_train(part) for part in (x, x[:2], x[2:]))
    for key, value in whole.items():
        assert torch.allclose(value, torch.cat([first[key], second[key]]), atol=1e-6)


def test_count_macs_matches_a_hand_count_and_restores_mode() -> None:
    model = build_model("smoke-cnn").train()
    convs = 3 * 8 * 9 * 32**2 + 8 * 16 * 9 * 16**2 + 16 * 32 * 9 * 8**2
    assert count_macs(model, 64) == convs + 32 * 2
    assert model.training


def test_models_table_rows() -> None:
    rows = models_table(["smoke-cnn", "minifasnet"])
    assert [row["name"] for row in rows] == ["smoke-cnn", "minifasnet"]
    row = rows[1]
    assert row["role"] == "student" and row["input_size"] == 80
    assert row["params"] == count_params(build_model("minifasnet").deployable())
    assert 36e6 <= row["macs"] <= 46e6


def test_onnx_export_holds_only_the_deployable_part(tmp_path: Path) -> None:
    import onnx  # the `onnx` extra, installed by `dev`
    import onnxruntime as ort

    model = cached("smoke-cnn").eval()
    x = images(64, n=1)
    path = tmp_path / "smoke.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model.deployable(), (x,), str(path), input_names=["image"], dynamo=False)
    graph = onnx.load(str(path)).graph
    assert not [i.name for i in graph.initializer if "aux" in i.name]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), model(x), atol=1e-5)
