"""Distillation: the objective in the loop, frozen teachers, taps, adapters, ONNX teachers."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fasdistill.cli import main
from fasdistill.config import BUILTIN_RECIPES, RunConfig, load_recipe
from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.distill import Distilled, FeatureTaps, distilled, load_teacher, losses
from fasdistill.distill import fit as train
from fasdistill.engine import optim as optim_module
from fasdistill.engine.checkpoint import load_checkpoint, save_deployable
from fasdistill.engine.objective import Batch, Supervised
from fasdistill.engine.rundir import RunLogger
from fasdistill.errors import InputError
from fasdistill.models import build_model, count_macs, count_params
from support import assert_ddp_matches_single, make_index

SIZE = 16


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 16, "dev": 8, "test": 8})


def make_teacher(
    path: Path, index_path: Path, name: str = "swapnet", seed: int = 1, size: int = SIZE
) -> Path:
    """A deployable checkpoint of ours with non-trivial BN statistics and a pixel head."""
    torch.manual_seed(seed)
    index = read_crop_index(index_path)
    model = build_model(name, num_classes=len(index.classes), aux=("pixel",))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    best = {"threshold": 0.5, "dev": {}, "epoch": 1}
    save_deployable(path, model, load_recipe(None, [f"model.name={name}"]), index, size, best)
    return path


@pytest.fixture(scope="module")
def teacher(toy_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("teacher") / "best.pt", toy_index)


def recipe(teacher: Path | list[Path] | dict, terms: str, *extra: str) -> RunConfig:
    """The smoke recipe distilled from ``teacher`` (paths, or one ONNX teacher's mapping)."""
    if isinstance(teacher, dict):
        teachers = f"[{json.dumps(teacher)}]"
    else:
        paths = teacher if isinstance(teacher, list) else [teacher]
        teachers = f"[{','.join(str(t) for t in paths)}]"
    return load_recipe(
        BUILTIN_RECIPES / "smoke.yaml",
        [
            f"data.input_size={SIZE}",
            "model.aux=[pixel]",
            f"distill.teacher={teachers}",
            f"distill.terms={terms}",
            "train.log_every=1",
            *extra,
        ],
    )


def objective_for(config: RunConfig, index_path: Path) -> Distilled:
    index = read_crop_index(index_path)
    model = build_model(config.model.name, num_classes=len(index.classes), aux=("pixel",))
    return Distilled(model, config, index, SIZE, torch.device("cpu"))


def test_supervised_terms_equal_cross_entropy_plus_aux_losses() -> None:
    config = load_recipe(None, ["model.aux=[pixel,fourier]", "train.label_smoothing=0.1"])
    model = build_model("smoke-cnn", num_classes=3, aux=("pixel", "fourier"))
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    objective = Supervised(model, config)
    out = objective.module(images)
    terms = objective.losses(out, Batch(images, labels, torch.arange(6), torch.zeros(6)), 0.0)
    # The pre-objective trainer's loss, written out independently.
    expected = F.cross_entropy(out["logits"], labels, label_smoothing=0.1)
    live = (labels == 0).float().view(-1, 1, 1, 1).expand_as(out["pixel"])
    expected = expected + 0.5 * F.binary_cross_entropy_with_logits(out["pixel"], live)
    spectrum = torch.log1p(torch.fft.fftshift(torch.fft.fft2(images.mean(1)), dim=(-2, -1)).abs())
    size = out["fourier"].shape[-1]
    target = F.adaptive_avg_pool2d(spectrum.unsqueeze(1), size)
    target = (target - target.amin(dim=(2, 3), keepdim=True)) / (
        target.amax(dim=(2, 3), keepdim=True) - target.amin(dim=(2, 3), keepdim=True) + 1e-6
    )
    assert set(terms) == {"ce", "pixel", "fourier"}
    partial = terms["ce"] + terms["pixel"]
    torch.testing.assert_close(partial, expected)
    assert terms["fourier"] >= 0


def test_teacher_stays_frozen_through_a_distillation_epoch(
    toy_index: Path, teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fasdistill.engine.trainer import train as loop

    built: list[Distilled] = []

    def capture(*args: object) -> Distilled:
        objective = distilled(*args)  # type: ignore[arg-type]
        built.append(objective)
        return objective

    config = recipe(teacher, "[{kind: kd}, {kind: at}]", "train.epochs=1")
    loop(config, toy_index, tmp_path / "run", show_progress=False, objective=capture)
    net = built[0].teachers[0].module
    saved = load_checkpoint(teacher)
    state = net.state_dict()
    for key, value in saved["model"].items():
        assert torch.equal(state[key], value), key  # weights and BN buffers untouched
    assert not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    built[0].teachers[0].frozen.train()  # a generic .train() cannot unfreeze it
    assert not any(m.training for m in net.modules())
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["objective"]["teachers"][0]["sha256"] == built[0].teachers[0].describe()["sha256"]
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert not any(k.startswith("teacher") for k in last["model"])
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    step = next(r for r in records if r["type"] == "step")
    assert set(step["terms"]) == {"ce", "pixel", "kd", "at"}


def test_bn_train_flag_uses_batch_statistics_without_touching_buffers(
    toy_index: Path, teacher: Path
) -> None:
    index = read_crop_index(toy_index)
    spec = load_recipe(
        None,
        [f"distill.teacher=[{{path: {teacher}, bn_train: true}}]", "distill.terms=[{kind: kd}]"],
    ).distill
    assert spec is not None
    frozen = load_teacher(spec.teacher[0], "t", index.classes, index.scale, torch.device("cpu"))
    plain = load_teacher(
        spec.teacher[0].model_copy(update={"bn_train": False}),
        "t",
        index.classes,
        index.scale,
        torch.device("cpu"),
    )
    before = {k: v.clone() for k, v in frozen.module.state_dict().items()}
    x = torch.randn(8, 3, SIZE, SIZE)
    assert not torch.allclose(frozen.outputs(x)["logits"], plain.outputs(x)["logits"])
    after = frozen.module.state_dict()
    for key in before:
        if "num_batches_tracked" not in key:
            assert torch.equal(before[key], after[key]), key


def test_adapters_are_training_only(toy_index: Path, teacher: Path, tmp_path: Path) -> None:
    config = recipe(teacher, "[{kind: fitnet, student: backbone.features.3}]", "train.epochs=1")
    objective = objective_for(config, toy_index)
    adapters = objective.module.adapters
    assert list(adapters) == ["fitnet"] and count_params(adapters) > 0
    train(config, toy_index, tmp_path / "run", show_progress=False)
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    plain = build_model("smoke-cnn", num_classes=3).deployable()
    assert set(best["model"]) == set(plain.state_dict())  # no adapter, no aux head
    student = build_model("smoke-cnn", num_classes=3)
    student.deployable().load_state_dict(best["model"])
    assert count_params(student.deployable()) == count_params(plain)
    assert count_macs(student.deployable(), SIZE) == count_macs(plain, SIZE)
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert set(last["objective"]["adapters"]) == set(adapters.state_dict())
    onnx = pytest.importorskip("onnx")
    export_onnx(student.deployable().eval(), tmp_path / "student.onnx", SIZE)
    graph = onnx.load(str(tmp_path / "student.onnx")).graph
    exported = sum(int(np.prod(t.dims)) for t in graph.initializer)
    assert exported <= count_params(plain)  # BN folded or kept: never more, no adapter


def test_a_teacher_with_another_input_size_gets_its_own_resize(
    toy_index: Path, tmp_path: Path
) -> None:
    path = make_teacher(tmp_path / "t32.pt", toy_index, size=2 * SIZE)
    objective = objective_for(recipe(path, "[{kind: kd}]"), toy_index)
    teacher = objective.teachers[0]
    assert teacher.input_size == 2 * SIZE
    x = torch.randn(4, 3, SIZE, SIZE)
    big = F.interpolate(x, size=2 * SIZE, mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(teacher.outputs(x)["logits"], teacher.module(big))


def test_cached_teachers_read_the_stored_crops_at_their_own_input_size(
    toy_index: Path, tmp_path: Path
) -> None:
    """A student at half the crops' size, a teacher at their full size: the cache holds
    the teacher's outputs on the stored crops, not on the student's input upsampled."""
    root = shutil.copytree(toy_index.parent, tmp_path / "big")
    rng = np.random.default_rng(0)
    for png in sorted(root.rglob("*.png")):  # 32-px crops with detail finer than 16 px
        image = cv2.resize(cv2.imread(str(png)), (2 * SIZE, 2 * SIZE))
        noise = rng.normal(0, 30, image.shape)
        cv2.imwrite(str(png), np.clip(image + noise, 0, 255).astype(np.uint8))
    index_path = root / "index.csv"
    path = make_teacher(tmp_path / "t32.pt", index_path, size=2 * SIZE)
    config = recipe(
        path, "[{kind: kd}]", "data.augment.resized_crop=[1.0,1.0]", "distill.cache=true"
    )
    objective = objective_for(config, index_path)
    index = read_crop_index(index_path)
    objective.prepare(CropDataset(index, "train", SIZE), torch.device("cpu"))
    net = objective.teachers[0]
    full = torch.stack([x[0] for x in CropDataset(index, "train", 2 * SIZE)])
    small = torch.stack([x[0] for x in CropDataset(index, "train", SIZE)])
    rows = torch.arange(len(full))
    for view, images in enumerate((full, full.flip(3))):
        batch = Batch(small, torch.zeros(len(rows)), rows, torch.full_like(rows, view))
        (targets,) = objective._teacher_outputs(batch)
        torch.testing.assert_close(targets["logits"], net.module(images), rtol=1e-4, atol=1e-5)
    upsampled = net.outputs(small)["logits"]  # what an uncached run's teacher sees
    assert not torch.allclose(upsampled, net.module(full), atol=1e-3)


def test_distilled_run_resumes_bit_for_bit(
    toy_index: Path, teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = recipe(teacher, "[{kind: kd}, {kind: fitnet}]", "train.epochs=3")
    train(config, toy_index, tmp_path / "whole", show_progress=False)

    class Interrupt(Exception):
        pass

    original = RunLogger.record

    def record(self: RunLogger, kind: str, step: int, values: dict) -> None:
        if kind == "step" and values["epoch"] == 2:
            raise Interrupt
        original(self, kind, step, values)

    monkeypatch.setattr(RunLogger, "record", record)
    with pytest.raises(Interrupt):
        train(config, toy_index, tmp_path / "split", show_progress=False)
    monkeypatch.setattr(RunLogger, "record", original)
    train(config, toy_index, tmp_path / "split", resume=True, show_progress=False)
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["objective"]["adapters"].items():
        assert torch.equal(value, b["objective"]["adapters"][key]), key


def test_resume_refuses_a_changed_teacher(toy_index: Path, tmp_path: Path) -> None:
    path = make_teacher(tmp_path / "t.pt", toy_index)
    config = recipe(path, "[{kind: kd}]", "train.epochs=1")
    train(config, toy_index, tmp_path / "run", show_progress=False)
    make_teacher(path, toy_index, seed=7)  # same path, other weights
    with pytest.raises(InputError, match="teacher file that changed"):
        train(config, toy_index, tmp_path / "run", resume=True, show_progress=False)


def test_cached_teacher_outputs_train_like_live_ones(
    toy_index: Path, teacher: Path, tmp_path: Path
) -> None:
    flips_only = ["data.augment.resized_crop=[1.0,1.0]", "train.epochs=2"]
    terms = "[{kind: kd}, {kind: dkd}, {kind: pixel}, {kind: at}, {kind: fitnet}]"
    live = recipe(teacher, terms, *flips_only)
    cached = recipe(teacher, terms, "distill.cache=true", *flips_only)
    a = train(live, toy_index, tmp_path / "live", show_progress=False)
    b = train(cached, toy_index, tmp_path / "cached", show_progress=False)
    for x, y in zip(a.history, b.history, strict=True):
        assert set(x["terms"]) == {"ce", "pixel", "kd", "dkd", "pixel_kd", "at", "fitnet"}
        for key in x["terms"]:
            assert x["terms"][key] == pytest.approx(y["terms"][key], rel=1e-4, abs=1e-6), key
    with pytest.raises(InputError, match="need the whole crop"):
        objective_for(recipe(teacher, "[{kind: kd}]", "distill.cache=true"), toy_index)
    jitter = [*flips_only, "data.augment.colour_jitter=0.2", "distill.cache=true"]
    with pytest.raises(InputError, match=r"augmentation limited to flips.*teacher_view: clean"):
        objective_for(recipe(teacher, "[{kind: kd}]", *jitter), toy_index)


def test_clean_teacher_view_scores_the_crops_before_colour_jitter_and_blur(
    toy_index: Path, teacher: Path
) -> None:
    """teacher_view: clean: augmented student batches get the un-jittered crops' outputs."""
    photometric = [
        "data.augment.resized_crop=[1.0,1.0]",
        "data.augment.colour_jitter=0.4",
        "data.augment.blur=0.5",
    ]
    with pytest.raises(InputError, match="from the cache; set cache: true"):
        recipe(teacher, "[{kind: kd}]", *photometric, "distill.teacher_view=clean")
    config = recipe(
        teacher, "[{kind: kd}]", *photometric, "distill.cache=true", "distill.teacher_view=clean"
    )
    objective = objective_for(config, toy_index)
    index = read_crop_index(toy_index)
    train_set = CropDataset(index, "train", SIZE, train=True, augment=config.data.augment)
    objective.prepare(train_set, torch.device("cpu"))
    plain = CropDataset(index, "train", SIZE)
    torch.manual_seed(3)
    items = [train_set[i] for i in range(len(train_set))]
    images = torch.stack([x[0] for x in items])
    rows, views = torch.tensor([x[2] for x in items]), torch.tensor([x[3] for x in items])
    assert set(views.tolist()) == {0, 1}  # jittered and blurred, but whole crops
    clean = torch.stack([plain[i][0] for i in range(len(plain))])
    clean = torch.where(views.view(-1, 1, 1, 1) == 1, clean.flip(3), clean)
    assert not torch.allclose(images, clean, atol=0.05)  # the student's views differ
    batch = Batch(images, torch.tensor([x[1] for x in items]), rows, views)
    (targets,) = objective._teacher_outputs(batch)
    expected = objective.teachers[0].outputs(clean)["logits"]
    torch.testing.assert_close(targets["logits"], expected, rtol=1e-4, atol=1e-5)


def test_two_process_ddp_distillation_with_an_adapter_matches_one_process(
    toy_index: Path, teacher: Path, tmp_path: Path
) -> None:
    overrides = [
        f"data.input_size={SIZE}",
        "model.aux=[pixel]",
        "train.epochs=2",
        "data.augment.flip=false",
        "data.augment.resized_crop=[1.0,1.0]",
        f"distill.teacher=[{teacher}]",
        "distill.terms=[{kind: kd}, {kind: fitnet, student: backbone.features.3}]",
        # SGD: Adam turns the ~1e-9 gradients of the adapter's bias on channels where the
        # random teacher's ReLU is dead into full-size steps of either sign.
        "optim.name=sgd",
        "optim.lr=0.05",
    ]
    assert_ddp_matches_single(
        "distill",
        overrides,
        toy_index,
        tmp_path,
        {"model": lambda state: state["model"], "adapters": lambda s: s["objective"]["adapters"]},
        skip=("num_batches_tracked",),
    )


def test_taps_copy_outputs_before_in_place_activations_and_keep_every_call() -> None:
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    net = torch.nn.Sequential(conv, torch.nn.ReLU(inplace=True))
    taps = FeatureTaps(net, [("t", "0")], "student")
    x = torch.randn(2, 3, 8, 8)
    net(x)
    captured = taps.get("t", "0", -1)
    torch.testing.assert_close(captured, conv(x))  # pre-ReLU: negatives kept
    assert (captured < 0).any()

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = torch.nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(self.block(x))

    twice = Twice()
    taps = FeatureTaps(twice, [("t", "block")], "student")
    twice(x)
    first, second = taps.get("t", "block", 0), taps.get("t", "block", 1)
    with pytest.raises(InputError, match="ran 2 time"):
        taps.get("t", "block", 2)
    torch.testing.assert_close(second, twice.block(first))
    with pytest.raises(InputError, match="has no module 'blok'"):
        FeatureTaps(twice, [("t", "blok")], "student")


@pytest.mark.parametrize(
    ("terms", "extra", "message"),
    [
        ("[{kind: kdd}]", [], "distill.terms.0"),
        ("[{kind: at, student: backbone.nope}]", [], "student has no module 'backbone.nope'"),
        ("[{kind: at, teacher: backbone.layer9}]", [], "teacher has no module 'backbone.layer9'"),
        ("[{kind: fitnet, student: head.classifier.1}]", [], "cannot adapt"),
        ("[{kind: pixel}]", ["model.aux=[]"], "student's pixel head"),
        ("[{kind: multi_teacher, weights: [1, 2]}]", [], "2 weights for 1 teachers"),
    ],
)
def test_bad_terms_are_named(
    toy_index: Path, teacher: Path, terms: str, extra: list[str], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[")):
        objective_for(recipe(teacher, terms, *extra), toy_index)


def test_teachers_that_do_not_fit_the_data_are_refused(toy_index: Path, tmp_path: Path) -> None:
    other = make_index(tmp_path / "other", {"train": 4, "dev": 2, "test": 2})
    rows = other.read_text().replace(",1.5,", ",2.0,")  # crops at another scale
    other.write_text(rows)
    wrong_scale = make_teacher(tmp_path / "scale.pt", other)
    with pytest.raises(InputError, match=r"crops at scale 2\.0, the data's are at 1\.5"):
        objective_for(recipe(wrong_scale, "[{kind: kd}]"), toy_index)
    with pytest.raises(InputError, match="not found"):
        objective_for(recipe(tmp_path / "missing.pt", "[{kind: kd}]"), toy_index)


def test_min_steps_raises_epochs_to_a_fixed_budget() -> None:
    config = load_recipe(None, ["train.epochs=2", "train.min_steps=7"])
    assert optim_module.planned_epochs(config, 3) == 3  # 9 steps >= 7
    assert optim_module.planned_epochs(config, 10) == 2  # epochs already give 20
    assert optim_module.planned_epochs(load_recipe(None, ["train.epochs=2"]), 3) == 2


def test_dkd_warns_with_two_classes(tmp_path: Path) -> None:
    index = make_index(tmp_path, {"train": 4, "dev": 2, "test": 2})
    rows = [r for r in index.read_text().splitlines() if ",replay," not in r]
    index.write_text("\n".join(rows) + "\n")
    path = make_teacher(tmp_path / "t.pt", index)
    with pytest.warns(UserWarning, match="NCKD is 0"):
        objective_for(recipe(path, "[{kind: dkd}]"), index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        objective_for(recipe(path, "[{kind: kd}]"), index)


def export_onnx(net: torch.nn.Module, path: Path, size: int) -> None:
    """The TorchScript exporter (no onnxscript needed), dynamic batch, its warnings muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            str(path),
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )


def test_onnx_teacher_gives_the_same_kd_loss_as_the_torch_teacher(
    toy_index: Path, teacher: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    index = read_crop_index(toy_index)
    torch_teacher = load_teacher(
        load_recipe(
            None, [f"distill.teacher={teacher}", "distill.terms=[{kind: kd}]"]
        ).distill.teacher[0],  # type: ignore[union-attr]
        "t",
        index.classes,
        index.scale,
        torch.device("cpu"),
    )
    net = torch_teacher.module.deployable().eval()
    path = tmp_path / "teacher.onnx"
    export_onnx(net, path, SIZE)
    spec = {"path": str(path), "crop_scale": 1.5, "classes": ["bonafide", "print", "replay"]}
    config = load_recipe(
        None, [f"distill.teacher=[{json.dumps(spec)}]", "distill.terms=[{kind: kd}]"]
    )
    onnx_teacher = load_teacher(
        config.distill.teacher[0],
        "t",
        index.classes,
        index.scale,  # type: ignore[union-attr]
        torch.device("cpu"),
    )
    student = torch.randn(8, 3)
    x = torch.randn(8, 3, SIZE, SIZE)
    a = losses.kd_kl(student, torch_teacher.outputs(x)["logits"], 4.0)
    b = losses.kd_kl(student, onnx_teacher.outputs(x)["logits"], 4.0)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    # Reordered class names are mapped back to the data's order.
    spec["classes"] = ["replay", "bonafide", "print"]
    reordered = load_recipe(
        None, [f"distill.teacher=[{json.dumps(spec)}]", "distill.terms=[{kind: kd}]"]
    ).distill.teacher[0]  # type: ignore[union-attr]
    permuted = load_teacher(reordered, "t", index.classes, index.scale, torch.device("cpu"))
    expected = torch_teacher.outputs(x)["logits"][:, [1, 2, 0]]
    torch.testing.assert_close(permuted.outputs(x)["logits"], expected, rtol=1e-4, atol=1e-5)
    # Feature methods cannot use it, and say so; a missing crop scale is named.
    with pytest.raises(InputError, match="ONNX model that gives only its outputs"):
        objective_for(recipe(spec, "[{kind: at}]"), toy_index)
    distilled = objective_for(recipe(spec, "[{kind: kd}, {kind: dist}]"), toy_index)
    assert distilled.describe()["teachers"][0]["kind"] == "onnx"
    no_scale = load_recipe(None, [f"distill.teacher={path}", "distill.terms=[{kind: kd}]"])
    with pytest.raises(InputError, match="state the crop scale"):
        load_teacher(
            no_scale.distill.teacher[0],
            "t",
            index.classes,
            index.scale,  # type: ignore[union-attr]
            torch.device("cpu"),
        )


def test_onnx_map_and_probability_outputs_become_live_logits(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")

    class DepthNet(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(F.avg_pool2d(x[:, :1], 4))  # (N, 1, 8, 8) "depth map"

    path = tmp_path / "depth.onnx"
    export_onnx(DepthNet(), path, 32)
    spec = load_recipe(
        None,
        [
            f"distill.teacher=[{{path: {path}, crop_scale: 1.5, output: map, mean: [0, 0, 0], "
            "std: [1, 1, 1]}]",
            "distill.terms=[{kind: kd}]",
        ],
    ).distill.teacher[0]  # type: ignore[union-attr]
    t = load_teacher(spec, "t", ("bonafide", "print", "replay"), 1.5, torch.device("cpu"))
    assert t.classes == ("bonafide", "attack") and t.input_size == 32 and t.has_pixel
    x = torch.randn(4, 3, 32, 32)
    out = t.outputs(x)
    pixels = x * 0.5 + 0.5  # back to [0, 1] (the data's mean/std), then the model's own
    expected_map = torch.sigmoid(F.avg_pool2d(pixels[:, :1], 4))
    torch.testing.assert_close(out["pixel"], expected_map, rtol=1e-5, atol=1e-6)
    live = torch.softmax(out["logits"], 1)[:, 0]
    torch.testing.assert_close(live, expected_map.mean(dim=(1, 2, 3)), rtol=1e-4, atol=1e-5)


def test_cli_distill_runs_and_names_a_missing_section(
    toy_index: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "distill",
        "--recipe",
        str(BUILTIN_RECIPES / "distill_kd.yaml"),
        "--teacher",
        str(teacher),
        "--data",
        str(toy_index),
        "--out",
        str(tmp_path / "run"),
        "--no-progress",
        "model.name=smoke-cnn",
        f"data.input_size={SIZE}",
        "train.epochs=1",
        "train.min_steps=2",
        "data.workers=0",
    ]
    assert main(args) == 0
    assert "best dev acer" in capsys.readouterr().out
    config = load_recipe(tmp_path / "run" / "config.yaml")
    assert config.distill is not None and config.distill.teacher[0].path == str(teacher)
    assert (
        main(
            [
                "distill",
                "--recipe",
                str(BUILTIN_RECIPES / "smoke.yaml"),
                "--data",
                str(toy_index),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "no distill: section" in capsys.readouterr().err


def test_overrides_index_into_term_lists() -> None:
    config = load_recipe(BUILTIN_RECIPES / "distill_at.yaml", ["distill.terms.1.weight=500"])
    assert config.distill is not None and config.distill.terms[1].weight == 500
    with pytest.raises(InputError, match="is a list of 2; '5' is not an index"):
        load_recipe(BUILTIN_RECIPES / "distill_at.yaml", ["distill.terms.5.weight=1"])
    with pytest.raises(InputError, match="give fixed weights or adaptive"):
        load_recipe(
            None,
            [
                "distill.teacher=[a.pt, b.pt]",
                "distill.terms=[{kind: multi_teacher, weights: [1, 1], adaptive: true}]",
            ],
        )
