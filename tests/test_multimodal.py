"""Multi-modal data and distillation: SynthSpoof depth and NIR, registered crops,
multi-modal models, and an RGB + depth + NIR teacher taught into an RGB-only student."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fasdistill.cli import main
from fasdistill.data.formats import get_adapter
from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.data.prepare import PrepareConfig, prepare
from fasdistill.data.synth import SynthConfig, generate, plan, render_sample
from fasdistill.data.synth.render import render
from fasdistill.data.synth.sensors import DepthCamera, mask_material
from fasdistill.engine.checkpoint import load_checkpoint
from fasdistill.engine.evaluation import evaluate_checkpoint
from fasdistill.errors import InputError
from fasdistill.models import build_model, count_macs
from fasdistill.models.multimodal import channel_index, select, widen_input
from support import smoke

MODALITIES = ("rgb", "depth", "ir")


def _spec(config: SynthConfig, cls: str, domain: str = "studio"):
    return next(s for s in plan(config) if (s.pai or "bonafide") == cls and s.domain == domain)


# ---------------------------------------------------------------------------- rendering

CONFIG = SynthConfig(subjects=3, samples=1, frames=2, size=64, domains=("studio", "dim"))


def test_depth_and_nir_leave_the_rgb_frames_unchanged_and_repeat_exactly() -> None:
    for spec in plan(CONFIG)[:8]:
        frames, boxes = render_sample(spec, CONFIG)
        first, second = render(spec, CONFIG), render(spec, CONFIG)
        assert all(np.array_equal(a, b) for a, b in zip(frames, first.frames, strict=True))
        assert boxes == first.boxes
        for name in ("depth", "ir"):
            images = getattr(first, name)
            assert len(images) == CONFIG.frames
            assert all(i.shape == (64, 64) and i.dtype == np.uint8 for i in images)
            assert all(
                np.array_equal(a, b) for a, b in zip(images, getattr(second, name), strict=True)
            )


def _relief(config: SynthConfig, cls: str, subject: int) -> float:
    """Depth levels the face box's centre departs from its best plane (RMS)."""
    spec = next(
        s for s in plan(config) if (s.pai or "bonafide") == cls and s.subject_index == subject
    )
    out = render(spec, config)
    x, y, w, h = (round(v) for v in out.boxes[0])
    inner = out.depth[0][y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
    rows, cols = np.nonzero(inner)
    design = np.stack([rows, cols, np.ones_like(rows)], axis=1).astype(np.float64)
    values = inner[rows, cols].astype(np.float64)
    residual = values - design @ np.linalg.lstsq(design, values, rcond=None)[0]
    return float(np.sqrt(np.mean(residual**2)))


def test_live_faces_and_masks_have_relief_prints_and_screens_are_flat() -> None:
    config = SynthConfig(subjects=3, samples=1, size=128, domains=("studio",))
    for subject in range(3):
        faces = [_relief(config, cls, subject) for cls in ("bonafide", "mask")]
        flat = [_relief(config, cls, subject) for cls in ("print", "replay")]
        assert min(faces) > 2 * max(flat), (subject, faces, flat)


def test_a_screen_shows_no_face_in_nir_a_live_face_does() -> None:
    config = SynthConfig(subjects=3, samples=1, size=128, domains=("office",))
    live = render(_spec(config, "bonafide", "office"), config)
    screen = render(_spec(config, "replay", "office"), config)

    def face_median(out) -> float:
        x, y, w, h = (round(v) for v in out.boxes[0])
        return float(np.median(out.ir[0][y : y + h, x : x + w]))

    # Lit skin against the glass that only mirrors the illuminator (a glare blob aside).
    assert face_median(screen) < 0.5 * face_median(live)


def test_depth_camera_quantises_and_leaves_holes_out_of_range() -> None:
    camera = DepthCamera(dropout=0.0)
    depth = np.full((32, 32), 0.4, np.float32)
    depth[:, 16:] = 5.0  # a far wall: no measurement
    image = camera.capture(depth, np.ones_like(depth), np.random.default_rng(0))
    assert (image[:, 20:] == 0).all()
    near = image[:, :12]
    assert (near > 0).all() and len(np.unique(near)) <= 4  # 2 mm steps, 1.5 mm noise


def test_mask_material_is_a_property_of_the_sample() -> None:
    materials = {mask_material(s.seed_words) for s in plan(CONFIG) if s.pai == "mask"}
    assert materials <= {"paper", "resin", "silicone"} and materials


# ---------------------------------------------------------------------------- sets and crops


@pytest.fixture(scope="module")
def mm_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mm") / "synth"
    config = SynthConfig(
        subjects=3, samples=1, size=64, domains=("studio", "office"), modalities=MODALITIES
    )
    generate(root, config, workers=1)
    return root


@pytest.fixture(scope="module")
def mm_crops(mm_set: Path) -> Path:
    out = mm_set.parent / "crops"
    prepare(
        PrepareConfig("synthspoof", str(mm_set), size=32, modalities=MODALITIES), out, workers=1
    )
    return out


def test_generate_stores_registered_depth_and_nir_and_the_adapter_reads_them(
    mm_set: Path,
) -> None:
    manifest = json.loads((mm_set / "synthspoof.json").read_text())
    assert manifest["config"]["modalities"] == list(MODALITIES)
    adapter = get_adapter("synthspoof", mm_set)
    samples = adapter.protocol("intra")
    assert adapter.modalities == MODALITIES
    for sample in samples[:4]:
        for name in ("depth", "ir"):
            frames, missing = adapter.read_frames(sample, name, None, None)
            rgb, _ = adapter.read_frames(sample, "rgb", None, None)
            assert not missing and frames[0][1].shape == rgb[0][1].shape
    assert adapter.skipped == []  # depth and NIR files are part of the set, not strays
    # RGB-only sets keep the manifest they always had.
    assert "modalities" not in SynthConfig().to_json()


def test_prepare_cuts_one_aligned_crop_per_modality(mm_crops: Path) -> None:
    rows = list(csv.DictReader((mm_crops / "index.csv").open()))
    ok = [r for r in rows if r["status"] == "ok"]
    assert ok and all(r["depth_path"] and r["ir_path"] for r in ok)
    for r in ok[:3]:
        for key in ("crop_path", "depth_path", "ir_path"):
            assert (mm_crops / r[key]).is_file()
    settings = json.loads((mm_crops / "prepare.json").read_text())["settings"]
    assert settings["modalities"] == list(MODALITIES)
    assert "modalities" not in PrepareConfig("folder", ".").to_json()


def test_prepare_refuses_modalities_the_set_lacks(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    generate(root, SynthConfig(subjects=3, samples=1, size=64, domains=("studio",)), workers=1)
    with pytest.raises(InputError, match="no depth"):
        prepare(PrepareConfig("synthspoof", str(root), modalities=("rgb", "depth")), tmp_path / "c")


def test_loader_stacks_rgb_then_each_modality(mm_crops: Path) -> None:
    index = read_crop_index(mm_crops)
    rgb = CropDataset(index, "dev", 24)
    stacked = CropDataset(index, "dev", 24, modalities=MODALITIES)
    trained = CropDataset(index, "train", 24, train=True, modalities=("rgb", "ir"))
    assert stacked[0][0].shape == (5, 24, 24) and trained[0][0].shape == (4, 24, 24)
    assert torch.equal(stacked[0][0][:3], rgb[0][0])


def test_loader_names_a_missing_modality(tmp_path: Path) -> None:
    from support import make_index

    index = read_crop_index(make_index(tmp_path, {"train": 2, "dev": 2, "test": 2}))
    with pytest.raises(InputError, match="without depth"):
        CropDataset(index, "train", 16, modalities=("rgb", "depth"))


# ---------------------------------------------------------------------------- models


def test_channels_are_selected_by_name() -> None:
    images = torch.arange(5.0).view(1, 5, 1, 1).expand(2, 5, 4, 4)
    assert channel_index(MODALITIES, ("rgb", "ir")) == [0, 1, 2, 4]
    assert select(images, MODALITIES, ("ir",))[0, :, 0, 0].tolist() == [4.0]
    filled = select(images[:, :3], ("rgb",), MODALITIES, fill=True)
    assert filled.shape[1] == 5 and float(filled[:, 3:].abs().sum()) == 0
    with pytest.raises(InputError, match="needs depth"):
        select(images[:, :3], ("rgb",), ("rgb", "depth"))


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_multimodal_models_fuse_and_drop_modalities(fusion: str) -> None:
    torch.manual_seed(0)
    model = build_model(
        "smoke-cnn", 3, modalities=["ir", "rgb", "depth"], fusion=fusion, modality_dropout=0.5
    )
    assert model.modalities == MODALITIES  # canonical order, whatever the recipe's
    x = torch.randn(6, 5, 16, 16)
    model.eval()
    assert model(x).shape == (6, 3)
    if fusion == "late":
        assert set(model.backbone.branches) == set(MODALITIES)
    # Training mode drops modalities at random: the same batch gives other logits.
    model.train()
    torch.manual_seed(1)
    first = model(x)
    torch.manual_seed(2)
    assert not torch.allclose(first, model(x))
    assert count_macs(model.deployable(), 16) > 0
    with pytest.raises(InputError, match="5 channels"):
        model(torch.randn(2, 3, 16, 16))


def test_modality_dropout_never_drops_every_modality() -> None:
    from fasdistill.models.multimodal import _drop_mask

    torch.manual_seed(0)
    keep = _drop_mask(2000, 3, 0.9, torch.device("cpu"))
    assert bool(keep.any(dim=1).all())
    assert 0.05 < float(keep.float().mean()) < 0.5


def test_early_fusion_widens_only_the_first_convolution() -> None:
    model = build_model("resnet18", 2, modalities=["rgb", "ir"])
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].in_channels == 4 and all(c.in_channels != 4 for c in convs[1:])
    with pytest.raises(InputError, match="first convolution"):
        widen_input(torch.nn.Sequential(torch.nn.Conv2d(5, 3, 1)), 4)


# ---------------------------------------------------------------------------- distillation


def _train(crops: Path, out: Path, recipe: str, *overrides: str) -> Path:
    common = ["train.epochs=1", "train.min_steps=2", "data.input_size=16", "data.batch_size=8"]
    common.append("data.workers=0")
    args = ["train", "--recipe", recipe, "--data", str(crops), "--out", str(out)]
    assert main([*args, "--no-progress", *common, *overrides]) == 0
    return out / "checkpoints" / "best.pt"


@pytest.fixture(scope="module")
def mm_runs(mm_crops: Path) -> dict[str, Path]:
    """A late-fusion RGB + depth + NIR teacher, the RGB student it taught, an RGB + NIR one."""
    root = mm_crops.parent / "runs"
    teacher = _train(
        mm_crops,
        root / "teacher",
        "smoke",
        "model.modalities=[rgb,depth,ir]",
        "model.fusion=late",
        "model.modality_dropout=0.3",
    )
    student = _train(
        mm_crops,
        root / "student",
        "distill_crossmodal",
        f"distill.teacher={teacher}",
        "model.name=smoke-cnn",
        "model.aux=[]",
    )
    rgbir = _train(mm_crops, root / "rgbir", "smoke", "model.modalities=[rgb,ir]")
    return {"teacher": teacher, "student": student, "rgbir": rgbir}


def test_a_multimodal_teacher_teaches_an_rgb_only_student(
    mm_runs: dict[str, Path], mm_crops: Path
) -> None:
    meta = load_checkpoint(mm_runs["teacher"])["meta"]
    assert meta["modalities"] == list(MODALITIES) and meta["fusion"] == "late"
    student = load_checkpoint(mm_runs["student"])["meta"]
    assert "modalities" not in student  # the student's file is RGB-only
    assert str(mm_runs["teacher"]) in student["recipe"]  # taught by the fused teacher
    assert load_checkpoint(mm_runs["rgbir"])["meta"]["modalities"] == ["rgb", "ir"]
    report = evaluate_checkpoint(mm_runs["rgbir"], read_crop_index(mm_crops))
    assert 0.0 <= report["test"]["acer"] <= 1.0


def test_export_and_prediction_refuse_a_multimodal_model(
    mm_runs: dict[str, Path], mm_crops: Path, tmp_path: Path
) -> None:
    from fasdistill.export.pipeline import prepare_export
    from fasdistill.infer.model_file import open_model

    for run in ("teacher", "rgbir"):
        with pytest.raises(InputError, match="export takes RGB frames only"):
            prepare_export(mm_runs[run], mm_crops, tmp_path / run)
        with pytest.raises(InputError, match="prediction takes RGB frames only"):
            open_model(mm_runs[run])
        assert not (tmp_path / run).exists()
    assert open_model(mm_runs["student"]).kind == "pytorch"


def test_swap_gives_the_multimodal_teacher_a_row_with_its_sensors(
    mm_runs: dict[str, Path], mm_crops: Path, tmp_path: Path
) -> None:
    from fasdistill.swap.measure import run_swap
    from fasdistill.swap.options import SwapOptions
    from fasdistill.swap.report import markdown

    options = SwapOptions(
        runtimes=("pytorch", "onnx"),
        latency_runs=2,
        latency_seconds=0.0,
        latency_max_seconds=2.0,
        bootstrap=0,
    )
    models = [mm_runs["teacher"], mm_runs["student"]]
    swap = run_swap(models, mm_crops / "index.csv", tmp_path, options, log=lambda _: None)
    teacher = swap["models"][0]
    assert teacher["modalities"] == list(MODALITIES)
    assert "onnx" in teacher["not_run"] and "pytorch" in teacher["latency"]
    assert {e["modality"] for e in teacher["sensors"]["extra"]} == {"depth", "ir"}
    assert "sensors" not in swap["models"][1]
    text = markdown(swap)
    assert "Sensors beyond the RGB camera" in text and "public figure" in text
    from fasdistill.swap.html import render

    page = render(swap, tmp_path)
    first_row = page[page.index("<tbody>") : page.index("</tr>", page.index("<tbody>"))]
    assert "0.00 MB" not in first_row and "depth sensor" in page  # no file, no size
    with pytest.raises(InputError, match="add pytorch"):
        run_swap(models, mm_crops / "index.csv", tmp_path / "x", SwapOptions(runtimes=("onnx",)))


def test_feature_distillation_from_a_fused_teacher_sizes_its_adapter(mm_crops: Path) -> None:
    from fasdistill.distill import Distilled
    from fasdistill.engine.checkpoint import save_deployable

    index = read_crop_index(mm_crops)
    teacher_model = build_model("smoke-cnn", len(index.classes), modalities=MODALITIES)
    path = mm_crops.parent / "mm_teacher.pt"
    config = smoke(**{"model.modalities": "[rgb,depth,ir]"})
    best = {"threshold": 0.5, "dev": {}, "epoch": 0}
    save_deployable(path, teacher_model, config, index, 16, best)
    recipe = smoke(
        **{
            "distill.teacher": str(path),
            "distill.terms": "[{kind: fitnet, weight: 1.0, student: backbone, teacher: backbone}]",
        }
    )
    student = build_model("smoke-cnn", len(index.classes))
    objective = Distilled(student, recipe, index, 16, torch.device("cpu"))
    assert objective.modalities == MODALITIES
    out = objective.module(torch.randn(2, 5, 16, 16))
    # The student's map, through its training-only adapter, has the fused map's width.
    assert out["feature:fitnet"].shape[1] == teacher_model.backbone.out_channels
    assert not any("adapters" in k for k in student.state_dict())  # training-only
