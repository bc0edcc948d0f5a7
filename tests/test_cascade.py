"""Cascaded inference: the band chosen on dev, the score mapping, the deployable folder, and
the cascade in predict, calibrate and swap."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.engine.checkpoint import load_deployable_state, save_checkpoint
from fasdistill.errors import InputError
from fasdistill.export.pipeline import ExportOptions, export_checkpoint
from fasdistill.infer.calibrate import calibrate
from fasdistill.infer.cascade import CASCADE_FILE, CascadeModel, build_cascade
from fasdistill.infer.cascade_band import (
    candidate_edges,
    cascade_scores,
    choose_band,
    in_band,
    map_small_scores,
)
from fasdistill.infer.model_file import open_model, write_with_threshold
from fasdistill.infer.predict import Predictor
from fasdistill.infer.video import VideoOptions, predict_video
from fasdistill.metrics.scores import ScoreSet
from fasdistill.swap.measure import labels_for
from support import trained

# ---------------------------------------------------------------- band choice on synthetic scores


def iso_acer(labels: list[str], scores: np.ndarray, threshold: float) -> float:
    """ACER written out independently: APCER of the worst PAI species, BPCER of bona fide."""
    labels_arr = np.asarray(labels)
    accepted = np.asarray(scores) >= threshold
    bona = labels_arr == "bonafide"
    bpcer = float(np.mean(~accepted[bona]))
    apcer = max(float(np.mean(accepted[labels_arr == pai])) for pai in set(labels) - {"bonafide"})
    return (apcer + bpcer) / 2


def dev_set(labels: list[str], small: np.ndarray) -> ScoreSet:
    return ScoreSet.from_arrays(
        small,
        ["bonafide" if label == "bonafide" else "attack" for label in labels],
        pai=[label if label != "bonafide" else "" for label in labels],
    )


def brute_force(labels: list[str], small: np.ndarray, large: np.ndarray, ts: float, tl: float):
    """The fewest faces passed on over every candidate band with cascade ACER <= large's."""
    lows, highs = candidate_edges(small, ts)
    target = iso_acer(labels, large, tl)
    best = None
    for lo in lows:
        for hi in highs:
            passed = (small >= lo) & (small <= hi)
            decisions = np.where(passed, large >= tl, small >= ts)
            acer = iso_acer(labels, decisions.astype(float), 0.5)
            if acer <= target + 1e-12 and (best is None or passed.sum() < best):
                best = int(passed.sum())
    return best, target


def test_the_band_passes_on_the_fewest_faces_keeping_the_large_models_acer() -> None:
    rng = np.random.default_rng(1)
    labels = ["bonafide"] * 60 + ["print"] * 40 + ["replay"] * 20
    truth = np.array([label == "bonafide" for label in labels])
    # small: sure and right far from 0.5, unsure and often wrong near it
    small = np.clip(np.where(truth, 0.75, 0.25) + rng.normal(0, 0.18, truth.size), 0, 1)
    # large: right on all but two faces (one bona fide rejected, one replay accepted)
    large = np.where(truth, 0.8, 0.2)
    large[0], large[-1] = 0.3, 0.7
    choice = choose_band(dev_set(labels, small), large, 0.5, 0.5)
    fewest, target = brute_force(labels, small, large, 0.5, 0.5)
    assert choice.passed_on == fewest and 0 < fewest < truth.size
    assert choice.large_acer == pytest.approx(target)
    scores = cascade_scores(small, large, (choice.lo, choice.hi), 0.5, 0.5)
    assert choice.cascade_acer == pytest.approx(iso_acer(labels, scores, 0.5))
    assert choice.cascade_acer <= choice.large_acer
    assert choice.lo <= 0.5 <= choice.hi
    assert choice.small_acer == pytest.approx(iso_acer(labels, small, 0.5))
    assert choice.share == pytest.approx(fewest / truth.size)


def test_the_worst_species_counts_not_the_pooled_attacks() -> None:
    # 20 print attacks, 4 replay; the small model accepts 1 replay at 0.55: pooled APCER would
    # be 1/24, the replay species' 1/4; the large model accepts none
    labels = ["bonafide"] * 20 + ["print"] * 20 + ["replay"] * 4
    small = np.array([0.9] * 20 + [0.1] * 20 + [0.55, 0.1, 0.1, 0.1])
    large = np.array([0.9] * 20 + [0.1] * 24)
    choice = choose_band(dev_set(labels, small), large, 0.5, 0.5)
    assert choice.small_acer == pytest.approx(0.125)  # (1/4 + 0) / 2, not (1/24) / 2
    assert choice.lo <= 0.5 <= 0.55 <= choice.hi and choice.passed_on == 1
    assert choice.cascade_acer == 0.0


def test_edge_cases_every_face_easy_and_none_easy() -> None:
    labels = ["bonafide"] * 10 + ["print"] * 10
    truth = np.array([label == "bonafide" for label in labels])
    perfect = np.where(truth, 0.9, 0.1)
    wrong = np.where(truth, 0.1, 0.9)  # the small model gets every face wrong
    easy = choose_band(dev_set(labels, perfect), wrong, 0.5, 0.5)
    assert easy.passed_on == 0 and easy.cascade_acer == 0.0 and easy.large_acer == 1.0
    none = choose_band(dev_set(labels, wrong), perfect, 0.5, 0.5)
    assert (none.lo, none.hi, none.passed_on) == (0.0, 1.0, 20)  # the large model alone
    assert none.cascade_acer == none.large_acer == 0.0 and none.small_acer == 1.0
    # both equally good: nothing needs passing on
    same = choose_band(dev_set(labels, perfect), perfect, 0.5, 0.5)
    assert same.passed_on == 0
    # video level: frames of a video averaged first
    video = choose_band(dev_set(labels, perfect), wrong, 0.5, 0.5, level="video")
    assert video.level == "video" and video.passed_on == 0


def test_band_choice_refuses_what_it_cannot_use() -> None:
    labels = ["bonafide", "print"]
    good = np.array([0.9, 0.1])
    with pytest.raises(InputError, match="small member: threshold 1 must lie strictly inside"):
        choose_band(dev_set(labels, good), good, 1.0, 0.5)
    with pytest.raises(InputError, match="leave \\[0, 1\\]"):
        choose_band(dev_set(labels, good), np.array([3.0, -2.0]), 0.5, 0.5)
    with pytest.raises(InputError, match="2 small-member scores, 3 large"):
        choose_band(dev_set(labels, good), np.array([0.1, 0.2, 0.3]), 0.5, 0.5)


def test_the_score_mapping_keeps_every_decision_and_the_order() -> None:
    rng = np.random.default_rng(0)
    for ts, tl in [(0.5, 0.5), (0.2, 0.9), (0.97, 0.03), (1e-9, 0.5), (0.3655811846, 0.367671)]:
        near = np.array([ts, np.nextafter(ts, 0), np.nextafter(ts, 1), 0.0, 1.0, 1e-12])
        s = np.clip(np.r_[rng.random(500), near, rng.normal(ts, 1e-6, 100)], 0, 1)
        mapped = map_small_scores(s, ts, tl)
        np.testing.assert_array_equal(mapped >= tl, s >= ts)
        order = np.argsort(s, kind="stable")
        assert np.all(np.diff(mapped[order]) >= 0)  # monotone
        assert mapped.min() >= 0 and mapped.max() <= 1
        large = rng.random(s.size)
        band = (min(ts, 0.1), max(ts, 0.6))
        out = cascade_scores(s, large, band, ts, tl)
        passed = in_band(s, *band)
        np.testing.assert_array_equal(out >= tl, np.where(passed, large >= tl, s >= ts))
        np.testing.assert_array_equal(out[passed], large[passed])


# ---------------------------------------------------------------- real members


@pytest.fixture(scope="module")
def large_onnx(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second smoke-cnn at 24 px (the small one is at 16), exported to ONNX."""
    checkpoint = trained(index, tmp_path_factory.mktemp("large"), "smoke-cnn", epochs=2, size=24)
    out = tmp_path_factory.mktemp("large_export")
    export_checkpoint(checkpoint, index, out, ExportOptions(formats=("onnx",), latency_runs=0))
    return out / "model.onnx"


@pytest.fixture(scope="module")
def unsure_small(smoke_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small model with a threshold of 0.999: alone it rejects every bona fide face, so
    a cascade must pass faces on to keep the large model's ACER."""
    out = tmp_path_factory.mktemp("unsure") / "model.onnx"
    return write_with_threshold(open_model(smoke_onnx), out, 0.999, "fixed=0.999")


@pytest.fixture(scope="module")
def cascade(
    unsure_small: Path, large_onnx: Path, index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("cascade") / "unit"
    build_cascade(unsure_small, large_onnx, index, out)
    return out / CASCADE_FILE


def dev_crops(index: Path, size: int) -> np.ndarray:
    dataset = CropDataset(read_crop_index(index), "dev", size)
    return torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy()


def test_the_folder_round_trips_and_reproduces_its_dev_figures(
    cascade: Path, unsure_small: Path, large_onnx: Path, index: Path
) -> None:
    folder = cascade.parent
    assert sorted(p.name for p in folder.iterdir()) == ["large.onnx", CASCADE_FILE, "small.onnx"]
    manifest = json.loads(cascade.read_text())
    small, large = open_model(unsure_small), open_model(large_onnx)
    assert manifest["members"]["small"]["threshold"] == 0.999
    assert manifest["members"]["large"]["threshold"] == large.threshold
    assert manifest["preprocessing"]["input_size"] == 24  # the larger member's
    dev = manifest["dev"]
    assert 0 < dev["passed_on"] < dev["faces"] == 24
    assert dev["small_acer"] > dev["large_acer"] >= 0 and dev["cascade_acer"] <= dev["large_acer"]
    for given in (cascade, folder):  # the manifest or its folder
        model = open_model(given)
        assert isinstance(model, CascadeModel) and model.kind == "cascade"
        assert model.meta["input_size"] == 24 and model.threshold == large.threshold
        assert model.meta["crop_scale"] == 1.5 and model.meta["classes"] == large.meta["classes"]
    # the folder's scorer gives what the members give, routed by the band, small crops resized
    crops = dev_crops(index, 24)
    scorer = model.scorer()
    scores = scorer(crops)
    small_scores = small.scorer(1)(dev_crops(index, 16)).astype(np.float64)
    large_scores = large.scorer(1)(crops).astype(np.float64)
    passed = in_band(small_scores, model.band[0], model.band[1])
    assert int(passed.sum()) == dev["passed_on"] == scorer.stats()["passed_on"]
    np.testing.assert_allclose(scores[passed], large_scores[passed], atol=1e-6)
    decisions = np.where(passed, large_scores >= large.threshold, small_scores >= 0.999)
    np.testing.assert_array_equal(scores >= model.threshold, decisions)
    rows = read_crop_index(index).split("dev")
    labels = [r["pai"] or "bonafide" for r in rows]
    assert iso_acer(labels, scores, model.threshold) == pytest.approx(dev["cascade_acer"])


def test_any_member_kind_and_every_companion_file_is_copied(
    smoke_checkpoint: Path, smoke_onnx: Path, large_onnx: Path, index: Path, tmp_path: Path
) -> None:
    import onnx

    # a model from elsewhere: our ONNX without its metadata, described by a YAML sidecar
    proto = onnx.load(str(smoke_onnx))
    del proto.metadata_props[:]
    vendor = tmp_path / "vendor" / "vendor.onnx"
    vendor.parent.mkdir()
    onnx.save(proto, str(vendor))
    sidecar = {
        "input_size": 16, "crop_scale": 1.5, "output": "logits", "output_name": "logits",
        "classes": ["bonafide", "print", "replay"], "threshold": 0.4,
    }  # fmt: skip
    (vendor.parent / "vendor.yaml").write_text(yaml.safe_dump(sidecar))
    out = tmp_path / "unit"
    manifest = build_cascade(vendor, large_onnx, index, out)
    assert manifest["members"]["small"]["files"] == ["small.onnx", "small.onnx.yaml"]
    assert manifest["members"]["small"]["kind"] == "foreign"
    assert open_model(out).small.kind == "foreign"
    # rebuilt in place from a best.pt: the new files, the manifest last, the stale one gone
    manifest = build_cascade(smoke_checkpoint, large_onnx, index, out)
    assert manifest["members"]["small"]["runtime"] == "pytorch"
    assert sorted(p.name for p in out.iterdir()) == ["large.onnx", CASCADE_FILE, "small.pt"]
    assert open_model(out / CASCADE_FILE).small.kind == "pytorch"


def with_meta(checkpoint: Path, path: Path, **changes: object) -> Path:
    state = load_deployable_state(checkpoint)
    state["meta"] = state["meta"] | changes
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, state)
    return path


def test_mismatched_members_are_refused_and_nothing_is_written(
    smoke_checkpoint: Path,
    large_onnx: Path,
    index: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "unit"
    cases = [
        ({"classes": ["bonafide", "print", "mask"]}, "classes: ['bonafide', 'print', 'replay']"),
        ({"crop_scale": 2.0}, "crop_scale: 1.5 differs from the small member"),
        ({"mean": [0.4, 0.4, 0.4]}, "mean: [0.5, 0.5, 0.5] differs"),
        ({"threshold": None}, "no threshold: run fasdistill calibrate"),
        ({"threshold_level": "video"}, "threshold_level: 'frame' differs"),
    ]
    for i, (changes, message) in enumerate(cases):
        small = with_meta(smoke_checkpoint, tmp_path / f"m{i}" / "best.pt", **changes)
        with pytest.raises(InputError) as caught:
            build_cascade(small, large_onnx, index, out)
        text = str(caught.value)
        assert message in text and str(small) in text  # the field and the file at fault
        argv = ["cascade", "--small", str(small), "--large", str(large_onnx)]
        assert main([*argv, "--data", str(index), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists() and not list(tmp_path.glob(".unit*"))
    # a folder that is not a cascade is never written into
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not a cascade folder"):
        build_cascade(smoke_checkpoint, large_onnx, index, other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_a_changed_member_or_manifest_is_refused(cascade: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "unit"
    shutil.copytree(cascade.parent, copy)
    manifest = json.loads((copy / CASCADE_FILE).read_text())
    bad = manifest | {"band": {"lo": 0.0, "hi": 0.5}}  # no longer holds the small threshold
    (copy / CASCADE_FILE).write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"must lie in \[0, 1\] and hold the small member"):
        open_model(copy)
    members = manifest["members"] | {"large": manifest["members"]["large"] | {"threshold": 0.5}}
    (copy / CASCADE_FILE).write_text(json.dumps(manifest | {"members": members}))
    with pytest.raises(InputError, match="the band was chosen for"):
        open_model(copy / CASCADE_FILE)
    (copy / CASCADE_FILE).write_text(json.dumps(manifest))
    with (copy / "large.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match=r"large\.onnx: \d+ bytes, the manifest says"):
        open_model(copy)
    (copy / CASCADE_FILE).write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        open_model(copy)


def test_the_cli_prints_the_band_and_the_dev_figures(
    unsure_small: Path, large_onnx: Path, index: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "unit"
    argv = ["cascade", "--small", str(unsure_small), "--large", str(large_onnx)]
    assert main([*argv, "--data", str(index), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    dev = json.loads((out / CASCADE_FILE).read_text())["dev"]
    assert "band: small score in [" in printed and f"{dev['passed_on']} of 24 faces" in printed
    assert f"cascade {100 * dev['cascade_acer']:.2f} %" in printed


# ---------------------------------------------------------------- predict, calibrate, swap


def astronaut() -> np.ndarray:
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)


def test_predict_runs_the_cascade_on_images_and_videos(
    cascade: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "face.png"  # lossless: the same pixels as the array below
    cv2.imwrite(str(image), astronaut())
    assert main(["predict", str(image), "--model", str(cascade), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = open_model(cascade)
    assert result["status"] in ("bonafide", "attack") and result["threshold"] == model.threshold
    assert (result["status"] == "bonafide") == (result["score"] >= model.threshold)
    # the score is the cascade's: the small member on the face resized to 16 px, then the band
    predictor = Predictor(model)
    _, tensor = predictor.face(astronaut())
    assert tensor is not None and tensor.shape == (3, 24, 24)
    x = tensor[None]
    small = model.small.scorer(1)(
        torch.nn.functional.interpolate(
            torch.from_numpy(x), size=(16, 16), mode="bilinear", antialias=True
        ).numpy()
    )
    large = model.large.scorer(1)(x)
    expected = cascade_scores(small, large, model.band, model.small.threshold, model.threshold)
    assert result["score"] == pytest.approx(float(expected[0]), abs=1e-6)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(4):
        writer.write(np.roll(astronaut(), i, axis=1))
    writer.release()
    judged = predict_video(predictor, video, VideoOptions(frames=4, window=2))
    assert judged.status in ("bonafide", "attack") and judged.scored == 4


def test_calibrate_refuses_a_cascade(
    cascade: Path, index: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match="a cascade is not calibrated as one model"):
        calibrate(cascade, index, "eer")
    assert main(["calibrate", "--model", str(cascade), "--data", str(index)]) == 2
    assert "calibrate each member, then rebuild it" in capsys.readouterr().err


def test_swap_gives_a_cascade_a_row_timed_on_real_faces(
    cascade: Path, large_onnx: Path, index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    fast = ["--latency-runs", "5", "--latency-seconds", "0", "--bootstrap", "40", "--batch", "2"]
    argv = ["swap", "--models", str(large_onnx), str(cascade), "--data", str(index)]
    assert main([*argv, "--out", str(out), "--runtimes", "onnx", *fast]) == 0
    swap = json.loads((out / "swap.json").read_text())
    ref, row = swap["models"]
    assert row["label"] == "unit" and row["role"] == "cascade"
    assert row["latency_statistic"] == "mean" and set(row["latency"]) == {"onnx"}
    one = row["latency"]["onnx"]["batch1"]
    assert one["cascade"]["faces"] == one["cascade"]["calls"] >= one["runs"] == 5
    assert 0 <= one["cascade"]["share_passed_on"] <= 1
    assert row["latency"]["onnx"]["batch2"]["cascade"]["faces"] >= 10
    # the speed-up and the energy come from the mean, the reference's from its median
    speedup = ref["latency"]["onnx"]["batch1"]["median_ms"] / one["mean_ms"]
    assert row["vs_reference"]["onnx"]["speedup"] == pytest.approx(speedup)
    mean_to_mean = ref["latency"]["onnx"]["batch1"]["mean_ms"] / one["mean_ms"]
    assert row["vs_reference"]["onnx"]["speedup_mean_to_mean"] == pytest.approx(mean_to_mean)
    assert "speedup_mean_to_mean" not in ref["vs_reference"]["onnx"]
    power = row["power"]["onnx"]
    if power["measured_j"] is None:
        assert power["energy_j"] == pytest.approx(1.5 * one["mean_ms"] / 1e3)
    assert row["best_runtime"]["fp32"] == {"runtime": "onnx", "mean_ms": one["mean_ms"]}
    # accuracy at the stored threshold; the share of test faces passed on is stated
    model = open_model(cascade)
    assert row["threshold"] == model.threshold
    test = row["cascade"]["scored"]["test"]
    manifest = json.loads(cascade.read_text())
    assert test["faces"] == 24 and 0 < test["passed_on"] < 24  # like dev: the same toy faces
    assert manifest["dev"]["passed_on"] == row["cascade"]["scored"]["dev"]["passed_on"]
    scores = (out / row["test_scores"]).read_text().splitlines()[1:]
    assert len(scores) == 24
    assert row["weight"]["params"] == sum(m["params"] for m in row["weight"]["members"].values())
    md = (out / "swap.md").read_text()
    assert f"{one['mean_ms']:.3f} mean ({100 * test['passed_on'] / 24:.1f} % went on)" in md
    assert f"{test['passed_on']} of 24) went on to the large member" in md
    page = (out / "report.html").read_text()
    assert "went on to the large member" in page and " mean (" in page
    # a cascade whose runtime is not asked for is refused before any work
    bad = tmp_path / "bad"
    code = main([*argv, "--out", str(bad), "--runtimes", "pytorch", *fast])
    assert code == 2 and not (bad / "swap.json").exists()


def test_a_cascade_is_labelled_by_its_folder() -> None:
    paths = [Path("runs/a/unit/model.cascade.json"), Path("runs/kd/seed0/checkpoints/best.pt")]
    assert labels_for(paths) == ["unit", "seed0"]
