"""Export: ONNX and INT8 artifacts checked against PyTorch, metadata inside, clean failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from fasdistill.cli import main
from fasdistill.data.loader import read_crop_index
from fasdistill.engine.checkpoint import load_deployable
from fasdistill.errors import InputError
from fasdistill.export import litert, ncnn, pipeline, pte
from fasdistill.export import onnx as onnx_export
from fasdistill.export.checks import describe_resolution, score_resolution
from fasdistill.export.onnx import read_onnx_metadata
from fasdistill.export.pipeline import ExportOptions, export_checkpoint, load_images
from fasdistill.export.quantize import head_nodes
from fasdistill.models import bonafide_score
from fasdistill.utils.latency import Latency, interleaved_latency
from fasdistill.utils.machine import cpu_info
from fasdistill.utils.ort import open_session
from support import make_index, trained

FAST = {"latency_runs": 3, "latency_seconds": 0.0}


@pytest.fixture(scope="module")
def checkpoint(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained swapnet: scores that separate the classes, a dev EER threshold."""
    return trained(index, tmp_path_factory.mktemp("run"), "swapnet", epochs=3)


@pytest.fixture(scope="module")
def exported(checkpoint: Path, index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    export_checkpoint(checkpoint, index, out, ExportOptions(**FAST), log=lambda _: None)
    return out


def test_onnx_matches_pytorch_with_dynamic_batch_and_carries_its_preprocessing(
    exported: Path, checkpoint: Path, index: Path
) -> None:
    model, meta = load_deployable(checkpoint)
    onnx_meta = read_onnx_metadata(exported / "model.onnx")
    for key in ("model", "input_size", "crop_scale", "colour_order", "mean", "std", "classes"):
        assert onnx_meta[key] == meta[key], key
    assert onnx_meta["threshold"] == pytest.approx(meta["threshold"])
    assert onnx_meta["threshold_criterion"] == meta["threshold_criterion"]
    proto = onnx.load(str(exported / "model.onnx"))
    assert proto.opset_import[0].version >= 17
    session = open_session(exported / "model.onnx", threads=1)
    images = load_images(read_crop_index(index), "test", meta["input_size"], 5)
    with torch.no_grad():
        expected = bonafide_score(model(torch.from_numpy(images))).numpy()
    for batch in (1, 5):  # the batch axis is dynamic
        got = np.concatenate(
            [
                session.run(["score"], {"image": images[i : i + batch]})[0]
                for i in range(0, 5, batch)
            ]
        )
        np.testing.assert_allclose(got, expected, atol=1e-5)
    report = json.loads((exported / "export.json").read_text())
    assert report["formats"]["onnx"]["parity"]["max_abs_score_diff"] <= 1e-4
    assert report["formats"]["onnx"]["bytes"] == (exported / "model.onnx").stat().st_size
    assert report["accuracy"]["onnx"]["test"]["acer"] == pytest.approx(
        report["accuracy"]["pytorch"]["test"]["acer"]
    )
    assert set(report["latency"]["runtimes"]) == {"pytorch", "onnx", "onnx-int8"}
    assert {"model", "isa", "int8_dot_product"} <= set(report["machine"]["cpu"])
    assert not list(exported.glob(".*"))  # no temporary files left


def test_int8_is_calibrated_on_train_keeps_the_stem_fp32_and_carries_its_own_threshold(
    exported: Path,
) -> None:
    report = json.loads((exported / "export.json").read_text())
    int8 = report["formats"]["onnx-int8"]
    assert int8["calibration"]["split"] == "train"
    meta = read_onnx_metadata(exported / "model.int8.onnx")
    assert meta["threshold"] == pytest.approx(int8["threshold"])
    assert "int8" in meta["threshold_criterion"]
    graph = onnx.load(str(exported / "model.int8.onnx")).graph
    assert any(n.op_type == "QuantizeLinear" for n in graph.node)
    producers = {out: n.op_type for n in graph.node for out in n.output}
    stem = next(n for n in graph.node if n.op_type == "Conv")
    assert producers.get(stem.input[1]) != "DequantizeLinear"  # stem weights stay fp32
    second = [n for n in graph.node if n.op_type == "Conv"][1]
    assert producers.get(second.input[1]) == "DequantizeLinear"
    assert int8["bytes"] < report["formats"]["onnx"]["bytes"]
    assert int8["calibration"]["stem"] == "fp32"
    assert "stem fp32" in json.loads(
        next(
            p.value
            for p in onnx.load(str(exported / "model.int8.onnx")).metadata_props
            if p.key == "quantization"
        )
    )


def test_int8_stem_flag_quantizes_the_first_convolution(
    checkpoint: Path, index: Path, tmp_path: Path
) -> None:
    options = ExportOptions(formats=("onnx-int8",), int8_stem=True, int8_min_agreement=0, **FAST)
    export_checkpoint(checkpoint, index, tmp_path, options, log=lambda _: None)
    graph = onnx.load(str(tmp_path / "model.int8.onnx")).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    stem = next(n for n in graph.node if n.op_type == "Conv")
    assert producers.get(stem.input[1]) == "DequantizeLinear"


def test_int8_keeps_the_head_and_the_score_in_fp32(
    exported: Path, checkpoint: Path, index: Path
) -> None:
    graph = onnx.load(str(exported / "model.int8.onnx")).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    for op in ("Gemm", "Softmax", "Gather"):
        node = next(n for n in graph.node if n.op_type == op)
        assert all(producers.get(name) != "DequantizeLinear" for name in node.input), op
    assert producers["score"] == "Gather"  # not a DequantizeLinear of a uint8 score
    model, meta = load_deployable(checkpoint)
    images = load_images(read_crop_index(index), "dev", meta["input_size"], 256)
    scores = open_session(exported / "model.int8.onnx", 1).run(["score"], {"image": images})[0]
    with torch.no_grad():
        reference = bonafide_score(model(torch.from_numpy(images))).numpy()
    assert not np.allclose(scores * 255, np.round(scores * 255), rtol=0, atol=1e-4)
    # a uint8 score gave 2 distinct values on these 24 crops; fp32 gives one per crop
    assert len(np.unique(scores)) == len(np.unique(reference)) == len(images)
    report = json.loads((exported / "export.json").read_text())
    assert report["formats"]["onnx-int8"]["calibration"]["head"] == "fp32"
    resolution = report["score_resolution"]
    assert resolution["onnx-int8"]["distinct"] == resolution["pytorch"]["distinct"] == len(images)
    assert resolution["onnx-int8"]["grid"] is None
    assert 0 < resolution["onnx-int8"]["smallest_step"] < 1 / 255


def test_the_head_is_found_by_walking_back_from_the_score(exported: Path) -> None:
    graph = onnx.load(str(exported / "model.onnx")).graph
    head = set(head_nodes(graph))
    ops = sorted(n.op_type for n in graph.node if n.name in head)
    assert ops == ["Constant", "Flatten", "Gather", "Gemm", "GlobalAveragePool", "Softmax"]
    # no convolution or pooling before the score: nothing tells head from backbone
    h = onnx.helper
    weights = [
        h.make_tensor("w", onnx.TensorProto.FLOAT, [2, 4], [0.0] * 8),
        h.make_tensor("i", onnx.TensorProto.INT64, [], [0]),
    ]
    nodes = [
        h.make_node("Gemm", ["image", "w"], ["logits"], name="fc", transB=1),
        h.make_node("Softmax", ["logits"], ["p"], name="softmax"),
        h.make_node("Gather", ["p", "i"], ["score"], name="gather", axis=1),
    ]
    flat = h.make_graph(
        nodes,
        "flat",
        [h.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 4])],
        [h.make_tensor_value_info("score", onnx.TensorProto.FLOAT, [1])],
        weights,
    )
    with pytest.raises(InputError, match="has no convolution or pooling"):
        head_nodes(flat)


def test_the_head_of_a_gdc_model_starts_at_its_mean_in_onnx_and_pt2e() -> None:
    """MiniFASNet's head (GDC conv, mean, linear, BN, linear) differs from the pooled ones."""
    import io

    from fasdistill.export import pt2e
    from fasdistill.export.onnx import ScoredModel
    from fasdistill.models.registry import build_model

    scored = ScoredModel(build_model("minifasnet", num_classes=3).deployable()).eval()
    example = (torch.zeros(1, 3, 32, 32),)
    buffer = io.BytesIO()
    torch.onnx.export(scored, example, buffer, output_names=["logits", "score"], dynamo=False)
    graph = onnx.load_from_string(buffer.getvalue()).graph
    head = set(head_nodes(graph))
    ops = {n.op_type for n in graph.node if n.name in head}
    assert {"ReduceMean", "Gemm", "Softmax", "Gather"} <= ops and "Conv" not in ops
    captured = torch.export.export(scored, example).module()
    fx_ops = sorted(pt2e._op(n) for n in pt2e.head_nodes(captured))
    assert fx_ops == ["batch_norm", "dropout", "linear", "linear", "mean", "select", "softmax"]


def test_pt2e_int8_leaves_the_head_unannotated(checkpoint: Path) -> None:
    """ExecuTorch and LiteRT int8 (PT2E): the backend's quantizer skips the head."""
    from fasdistill.export import pt2e
    from fasdistill.export.onnx import ScoredModel

    model, meta = load_deployable(checkpoint)
    size = meta["input_size"]
    example = (torch.zeros(1, 3, size, size),)
    captured = torch.export.export(ScoredModel(model).eval(), example).module()

    class AnnotateAll:  # stands in for XNNPACK's / LiteRT's quantizer
        def transform_for_annotation(self, m):
            return m

        def annotate(self, m):
            for node in m.graph.nodes:
                if node.op == "call_function":
                    node.meta[pt2e.ANNOTATION] = "int8"
            return m

        def validate(self, m) -> None:
            return None

    quantizer = pt2e.FloatHead(AnnotateAll())
    quantizer.transform_for_annotation(captured)
    quantizer.annotate(captured)
    nodes = {n.name: n for n in captured.graph.nodes}
    head = {str(nodes[name].target) for name in quantizer.head}
    assert head == {
        "aten.adaptive_avg_pool2d.default",
        "aten.flatten.using_ints",
        "aten.dropout.default",
        "aten.linear.default",
        "aten.softmax.int",
        "aten.select.int",
    }
    for node in captured.graph.nodes:
        if node.op == "call_function":
            assert (pt2e.ANNOTATION in node.meta) == (node.name not in quantizer.head), node


def test_score_resolution_names_a_quantization_grid() -> None:
    uint8 = np.array([0.0, 3 / 255, 3 / 255, 17 / 255, 200 / 255, 1.0], np.float32)
    assert score_resolution(uint8) == {
        "scores": 6,
        "distinct": 5,
        "smallest_step": pytest.approx(3 / 255),
        "grid": "1/255",
    }
    assert describe_resolution(score_resolution(uint8)) == (
        "score resolution: 6 dev scores, 5 distinct, on a 1/255 grid"
    )
    floats = np.array([0.1, 0.1000003, 0.52, 0.9], np.float32)
    assert score_resolution(floats)["grid"] is None
    assert describe_resolution(score_resolution(floats)).endswith(
        "4 distinct, smallest step 3.0e-07"
    )
    saturated = np.array([0.0, 1.0, 1.0])  # a confident fp32 model is not "on a grid"
    assert score_resolution(saturated)["grid"] is None


def test_export_reads_dev_and_train_crops_never_test(
    checkpoint: Path, index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits: list[str] = []
    original = pipeline.load_images

    def spy(idx, split, size, count):
        splits.append(split)
        return original(idx, split, size, count)

    monkeypatch.setattr(pipeline, "load_images", spy)
    options = ExportOptions(formats=("onnx-int8",), **FAST)
    export_checkpoint(checkpoint, index, tmp_path, options, log=lambda _: None)
    assert sorted(splits) == ["dev", "train"]
    # asked only for INT8, the fp32 source is not left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "model.int8.onnx"]


def test_a_refused_format_is_recorded_and_writes_no_file(
    checkpoint: Path, index: Path, tmp_path: Path
) -> None:
    strict = ExportOptions(formats=("onnx",), fp32_tolerance=-1.0, **FAST)
    report = export_checkpoint(checkpoint, index, tmp_path, strict, log=lambda _: None)
    assert report["failed"]["onnx"].startswith(f"{tmp_path / 'model.onnx'}: not written; ONNX")
    assert report["formats"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json"]
    assert json.loads((tmp_path / "export.json").read_text())["failed"] == report["failed"]
    # the INT8 gate refuses its file; the fp32 file before it is still written
    (tmp_path / "model.int8.onnx").write_bytes(b"an earlier run's file")
    picky = ExportOptions(formats=("onnx", "onnx-int8"), int8_min_agreement=1.01, **FAST)
    report = export_checkpoint(checkpoint, index, tmp_path, picky, log=lambda _: None)
    assert "model.int8.onnx: not written; INT8 decisions agree" in report["failed"]["onnx-int8"]
    assert set(report["formats"]) == {"onnx"} and set(report["accuracy"]) == {"pytorch", "onnx"}
    # no stale file of a failed format stays beside an export.json that says it failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.json", "model.onnx"]


def _fake_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """A "pte" format that is really ONNX, so CI (no ExecuTorch) can try a format after ONNX."""
    from fasdistill.export import onnx as onnx_export
    from fasdistill.export import scoring

    real_export = onnx_export.export_onnx

    def export(model, meta, path, calibration=None):
        return real_export(model, meta, path)

    monkeypatch.setattr(pte, "available", lambda: True)
    monkeypatch.setattr(pte, "export_pte", export)  # the registry resolves these when used
    monkeypatch.setattr(pte, "pte_scorer", scoring.onnx_scorer)


def test_a_crashing_converter_fails_its_formats_and_later_ones_are_still_written(
    checkpoint: Path,
    index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _fake_program(monkeypatch)

    def crash(*_args, **_kwargs):
        raise RuntimeError("segment table overflow\nC++ stack trace ...")

    monkeypatch.setattr(onnx_export, "export_onnx", crash)
    out = tmp_path / "out"
    args = ["export", str(checkpoint), "--data", str(index), "--out", str(out)]
    fast = ["--latency-runs", "2", "--latency-seconds", "0"]
    assert main([*args, "--format", "onnx,onnx-int8,pte", *fast]) == 1
    report = json.loads((out / "export.json").read_text())
    assert report["failed"] == {
        "onnx": "onnx: cannot convert swapnet; it failed: segment table overflow",
        "onnx-int8": "not tried: its fp32 ONNX source failed "
        "(onnx: cannot convert swapnet; it failed: segment table overflow)",
    }
    assert set(report["formats"]) == {"pte"} and (out / "model.pte").exists()
    assert set(report["latency"]["runtimes"]) == {"pytorch", "pte"}
    printed = capfd.readouterr()
    assert "onnx: FAILED, onnx: cannot convert swapnet" in printed.out
    assert "Traceback" not in printed.out + printed.err
    last = printed.out.strip().splitlines()[-1]
    assert last == ("export finished with failures: onnx, onnx-int8 failed; 1 artifact written"), (
        last
    )


def test_third_party_output_goes_to_the_log_not_the_terminal(
    checkpoint: Path,
    index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    real_export = onnx_export.export_onnx

    def noisy(model, meta, path):
        os.write(1, b"pnnx-like line on fd 1\n")
        os.write(2, b"absl-like line on fd 2\n")
        print("a converter's Python print")
        return real_export(model, meta, path)

    monkeypatch.setattr(onnx_export, "export_onnx", noisy)
    out = tmp_path / "out"
    args = ["export", str(checkpoint), "--data", str(index), "--out", str(out)]
    assert main([*args, "--format", "onnx", "--latency-runs", "2", "--latency-seconds", "0"]) == 0
    printed = capfd.readouterr()
    for noise in ("pnnx-like", "absl-like", "Python print"):
        assert noise not in printed.out + printed.err
        assert noise in (out / "third_party.log").read_text()
    lines = printed.out.strip().splitlines()
    assert lines[1].startswith("onnx: wrote model.onnx (") and "max |Δscore|" in lines[1]
    assert lines[2].strip().startswith("score resolution: ")
    assert lines[-1] == "export finished: 1 artifact written"
    # bad input stops before anything is written, the log included
    fresh = tmp_path / "fresh"
    assert main(["export", str(checkpoint), "--data", str(tmp_path), "--out", str(fresh)]) == 2
    assert not fresh.exists()


def test_cli_export_and_its_errors(
    checkpoint: Path, index: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    fast = ["--latency-runs", "2", "--latency-seconds", "0"]
    args = ["export", str(checkpoint), "--data", str(index), "--out", str(out)]
    assert main([*args, "--format", "onnx", *fast]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx", "third_party.log"]
    capfd.readouterr()
    assert main([*args, "--format", "onnx,pdf"]) == 2
    assert "unknown export formats ['pdf']" in capfd.readouterr().err
    not_ours = tmp_path / "random.pt"
    not_ours.write_bytes(b"not a checkpoint")
    assert main(["export", str(not_ours), "--data", str(index), "--out", str(out)]) == 2
    assert "random.pt: not a readable fasdistill checkpoint" in capfd.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["export", str(checkpoint), "--data", str(index), "--out", str(blocked / "x")]) == 2
    assert "cannot create the output directory" in capfd.readouterr().err
    no_dev = make_index(tmp_path / "nodev", {"train": 4, "test": 4})
    assert main(["export", str(checkpoint), "--data", str(no_dev), "--out", str(out)]) == 2
    assert "the dev split needs bona fide and attack crops" in capfd.readouterr().err


def test_metadata_is_required_to_read_a_foreign_onnx(exported: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(exported / "model.onnx"))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(InputError, match=r"bare\.onnx: no fasdistill metadata"):
        read_onnx_metadata(bare)


def test_cpu_info_reads_model_and_isa_flags(tmp_path: Path) -> None:
    fake = tmp_path / "cpuinfo"
    fake.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\n"
        "flags\t\t: fpu sse avx2 fma avx512f avx512_vnni\n"
    )
    info = cpu_info(fake)
    assert info["model"] == "Test CPU 9000"
    assert info["isa"] == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert info["int8_dot_product"] is True
    fake.write_text("model name\t: Old CPU\nflags\t\t: sse avx2\n")
    assert cpu_info(fake)["int8_dot_product"] is False


def test_interleaved_latency_alternates_and_runs_enough() -> None:
    order: list[str] = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    timings = interleaved_latency(calls, min_runs=7, min_seconds=0.0, warmup=2)
    assert order == ["a", "b"] * 9  # 2 warm-up rounds, then 7 timed, alternating
    assert timings["a"].runs == timings["b"].runs == 7
    stats = Latency.from_times([0.001] * 99 + [0.1])
    assert stats.median_ms == pytest.approx(1.0)
    assert stats.p99_ms > stats.p95_ms == pytest.approx(1.0)
    assert stats.fps == pytest.approx(1000.0)


def test_a_missing_runtime_is_skipped_by_default_and_an_error_when_named(
    checkpoint: Path,
    index: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(pte, "available", lambda: False)
    monkeypatch.setattr(ncnn, "available", lambda: False)
    monkeypatch.setattr(litert, "available", lambda: False)
    out = tmp_path / "out"
    args = ["export", str(checkpoint), "--data", str(index), "--out", str(out)]
    fast = ["--latency-runs", "2", "--latency-seconds", "0"]
    assert main([*args, *fast]) == 0
    printed = capfd.readouterr().out
    assert "pte: skipped, ExecuTorch is not installed (pip install 'fasdistill[mobile]')" in printed
    report = json.loads((out / "export.json").read_text())
    assert "ncnn: skipped, pnnx/ncnn are not installed (pip install 'fasdistill[ncnn]')" in printed
    assert "tflite: skipped, LiteRT is not installed (pip install 'fasdistill[litert]')" in printed
    assert set(report["skipped"]) == {"pte", "pte-int8", "tflite", "tflite-int8", "ncnn"}
    assert set(report["formats"]) == {"onnx", "onnx-int8"}
    assert main([*args, "--format", "onnx,pte", *fast]) == 2
    assert "pte: ExecuTorch is not installed (pip install 'fasdistill[mobile]')" in (
        capfd.readouterr().err
    )


@pytest.mark.slow
def test_executorch_programs_match_pytorch_and_carry_a_sidecar(
    checkpoint: Path, index: Path, tmp_path: Path
) -> None:
    if not pte.available():
        pytest.skip("ExecuTorch not installed (pip install 'fasdistill[mobile]')")
    options = ExportOptions(formats=("pte", "pte-int8"), **FAST)
    report = export_checkpoint(checkpoint, index, tmp_path, options, log=lambda _: None)
    assert set(report["formats"]) == {"pte", "pte-int8"}  # no ONNX file was asked for
    assert not list(tmp_path.glob("*.onnx"))
    assert report["formats"]["pte"]["parity"]["max_abs_score_diff"] <= 1e-4
    assert report["formats"]["pte-int8"]["parity"]["decision_agreement"] >= 0.95
    resolution = report["score_resolution"]  # the int8 program's head and score stay fp32
    assert resolution["pte-int8"]["distinct"] == resolution["pytorch"]["distinct"]
    assert resolution["pte-int8"]["grid"] is None
    _, meta = load_deployable(checkpoint)
    for name, fmt in (("model.pte", "pte"), ("model.int8.pte", "pte-int8")):
        sidecar = json.loads((tmp_path / f"{name}.json").read_text())
        assert sidecar["fasdistill_format"] == "fasdistill-pte/1"
        assert sidecar["classes"] == meta["classes"] and sidecar["mean"] == meta["mean"]
        assert sidecar["threshold"] == pytest.approx(report["formats"][fmt]["threshold"])
    scorer = pte.pte_scorer(tmp_path / "model.pte", threads=1)
    images = load_images(read_crop_index(index), "test", meta["input_size"], 3)
    model, _ = load_deployable(checkpoint)
    with torch.no_grad():
        expected = bonafide_score(model(torch.from_numpy(images))).numpy()
    np.testing.assert_allclose(scorer(images), expected, atol=1e-5)


@pytest.mark.slow
def test_litert_models_match_pytorch_and_carry_a_sidecar(
    checkpoint: Path, index: Path, tmp_path: Path
) -> None:
    if not litert.available():
        pytest.skip("LiteRT not installed (pip install 'fasdistill[litert]')")
    options = ExportOptions(formats=("tflite", "tflite-int8"), **FAST)
    report = export_checkpoint(checkpoint, index, tmp_path, options, log=lambda _: None)
    assert set(report["formats"]) == {"tflite", "tflite-int8"}
    assert report["formats"]["tflite"]["parity"]["max_abs_score_diff"] <= 1e-4
    assert report["formats"]["tflite-int8"]["parity"]["decision_agreement"] >= 0.95
    resolution = report["score_resolution"]  # the int8 model's head and score stay fp32
    assert resolution["tflite-int8"]["distinct"] == resolution["pytorch"]["distinct"]
    assert resolution["tflite-int8"]["grid"] is None
    model, meta = load_deployable(checkpoint)
    for name, fmt in (("model.tflite", "tflite"), ("model.int8.tflite", "tflite-int8")):
        sidecar = json.loads((tmp_path / f"{name}.json").read_text())
        assert sidecar["fasdistill_format"] == "fasdistill-tflite/1"
        assert sidecar["program"] == name and sidecar["mean"] == meta["mean"]
        assert sidecar["threshold"] == pytest.approx(report["formats"][fmt]["threshold"])
    assert report["accuracy"]["tflite-int8"]["test"]["acer"] >= 0  # scored at its own threshold
    images = load_images(read_crop_index(index), "test", meta["input_size"], 3)
    with torch.no_grad():
        expected = bonafide_score(model(torch.from_numpy(images))).numpy()
    got = litert.tflite_scorer(tmp_path / "model.tflite", threads=1)(images)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_ncnn_model_matches_pytorch_and_carries_a_sidecar(
    checkpoint: Path, index: Path, tmp_path: Path
) -> None:
    if not ncnn.available():
        pytest.skip("pnnx/ncnn not installed (pip install 'fasdistill[ncnn]')")
    options = ExportOptions(formats=("ncnn",), **FAST)
    report = export_checkpoint(checkpoint, index, tmp_path, options, log=lambda _: None)
    assert report["formats"]["ncnn"]["parity"]["max_abs_score_diff"] <= 1e-4
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["export.json", "model.ncnn.bin", "model.ncnn.param", "model.ncnn.param.json"]
    sidecar = json.loads((tmp_path / "model.ncnn.param.json").read_text())
    assert sidecar["fasdistill_format"] == "fasdistill-ncnn/1"
    model, meta = load_deployable(checkpoint)
    assert sidecar["input_size"] == meta["input_size"] and sidecar["std"] == meta["std"]
    images = load_images(read_crop_index(index), "test", meta["input_size"], 3)
    with torch.no_grad():
        expected = bonafide_score(model(torch.from_numpy(images))).numpy()
    got = ncnn.ncnn_scorer(tmp_path / "model.ncnn.param", threads=1)(images)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_conversion_failure_names_the_blocking_operator() -> None:
    from fasdistill.export.checks import conversion

    messages = {
        "Exporting the operator 'aten::grid_sampler' to ONNX opset 17 is not supported": (
            "onnx: cannot convert m; operator 'aten::grid_sampler' blocks it"
        ),
        "Unsupported: op 'MyCustomOp' has no lowering": (
            "pte: cannot convert m; operator 'MyCustomOp' blocks it"
        ),
        "something else broke\nwith a traceback": "ncnn: cannot convert m; it failed: something",
    }
    for (text, expected), fmt in zip(messages.items(), ("onnx", "pte", "ncnn"), strict=True):
        with pytest.raises(InputError) as caught, conversion(fmt, "m"):
            raise RuntimeError(text)
        assert str(caught.value).startswith(expected), str(caught.value)


def test_the_all_extra_installs_every_runtime_with_pins_that_spare_the_resolver() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    everything = extras["all"]
    (own,) = [r for r in everything if r.startswith("fasdistill[")]
    runtimes = set(own.removeprefix("fasdistill[").removesuffix("]").split(","))
    assert runtimes == set(extras) - {"all", "dev"}  # a new runtime extra must join [all]
    pins = {r.split(">")[0].split("<")[0].split("=")[0]: r for r in everything if r != own}
    # litert-converter's xdsl caps typing-extensions below 4.13: without these pins pip
    # backtracks through ~15 releases each of pydantic and pydantic-core
    assert pins["typing-extensions"].endswith("<4.13")
    assert {"pydantic", "typing-inspection", "cattrs", "anyio"} <= set(pins)
