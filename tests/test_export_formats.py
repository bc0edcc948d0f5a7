"""The export-format registry: one entry per runtime, read by export, predict and swap."""

from __future__ import annotations

from pathlib import Path

from fasdistill.export import formats, pipeline, scoring
from fasdistill.export.formats import FILE_NAMES, FORMATS, REGISTRY, SIDECAR_SUFFIXES
from fasdistill.infer import model_file
from fasdistill.swap.options import RUNTIMES


def test_every_format_is_one_entry_that_every_reader_uses() -> None:
    assert FORMATS == ("onnx", "onnx-int8", "pte", "pte-int8", "tflite", "tflite-int8", "ncnn")
    assert len(set(FILE_NAMES.values())) == len(FORMATS)
    assert pipeline.FORMATS is FORMATS and pipeline.FILE_NAMES is FILE_NAMES
    assert set(FORMATS) < set(RUNTIMES)  # swap measures every export format
    assert model_file.SIDECAR_KINDS == {".pte": "pte", ".tflite": "tflite", ".param": "ncnn"}
    assert SIDECAR_SUFFIXES is model_file.SIDECAR_KINDS
    for name, entry in REGISTRY.items():
        assert entry.quantized == name.endswith("-int8")
        assert entry.sidecar == (not name.startswith("onnx"))
        reader = entry.reader or formats.SIDECAR_READ  # None: the JSON sidecar's
        writer = entry.writer or formats.SIDECAR_WRITE
        for function in (entry.converter, entry.scorer_of, reader, writer):
            assert callable(formats._resolve(function)), function  # names a real function
        assert (entry.source is not None) == (name == "onnx-int8")  # INT8 of the checked fp32
        if entry.sidecar:
            assert entry.sidecar_format().startswith("fasdistill-")


def test_an_artifact_is_all_its_files(tmp_path: Path) -> None:
    assert REGISTRY["onnx"].files(tmp_path) == [tmp_path / "model.onnx"]
    assert REGISTRY["pte-int8"].files(tmp_path) == [
        tmp_path / "model.int8.pte",
        tmp_path / "model.int8.pte.json",
    ]
    assert REGISTRY["ncnn"].files(tmp_path) == [
        tmp_path / "model.ncnn.param",
        tmp_path / "model.ncnn.param.json",
        tmp_path / "model.ncnn.bin",
    ]


def test_a_missing_runtime_names_its_extra(monkeypatch) -> None:
    from fasdistill.export import litert

    monkeypatch.setattr(litert, "available", lambda: False)
    missing = formats.missing_runtimes()
    assert (
        missing["tflite"]
        == missing["tflite-int8"]
        == ("LiteRT is not installed (pip install 'fasdistill[litert]')")
    )
    assert "onnx" not in missing


def test_scoring_goes_through_the_registry(monkeypatch, tmp_path: Path) -> None:
    from fasdistill.export import ncnn

    seen = []
    monkeypatch.setattr(ncnn, "ncnn_scorer", lambda path, threads: seen.append((path, threads)))
    scoring.runtime_scorer("ncnn", tmp_path / "m.param", 3)
    assert seen == [(tmp_path / "m.param", 3)]


def test_no_module_outside_the_registry_decides_by_a_format_name() -> None:
    """Format names appear in export/formats.py only: every decision reads an entry."""
    import re

    src = Path(formats.__file__).resolve().parents[1]
    names = "|".join(re.escape(name) for name in FORMATS)
    compared = re.compile(
        rf"""(==|!=|\bin)\s*\(?["'](?:{names})["']|["'](?:{names})["']\s*(==|in\b)"""
    )
    found = [
        f"{path.relative_to(src)}:{number}: {line.strip()}"
        for path in sorted(src.rglob("*.py"))
        # checkpoint.py compares what a file's bytes are (utils.sniff), not a format
        if path.name not in ("formats.py", "checkpoint.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if compared.search(line)
    ]
    assert found == []
