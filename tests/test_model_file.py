"""A model file that is not what it should be: one plain line saying what it is, everywhere."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from fasdistill.cli import main
from fasdistill.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from fasdistill.errors import InputError
from fasdistill.utils.sniff import model_format
from fasdistill.utils.text import first_line, strip_ansi
from test_foreign_model import write_vendor_model

Maker = Callable[[Path], Path]


def empty(folder: Path, name: str) -> Path:
    (folder / name).write_bytes(b"")
    return folder / name


def onnx_bytes(folder: Path) -> bytes:
    return write_vendor_model(folder / "src", sidecar=None).read_bytes()


BAD_FILES: dict[str, tuple[Maker, str]] = {
    "empty onnx": (lambda d: empty(d, "m.onnx"), "m.onnx: is empty (0 bytes)"),
    "truncated onnx": (
        lambda d: _write(d / "m.onnx", onnx_bytes(d)[:-40]),
        "m.onnx: is not a valid ONNX file",
    ),
    "checkpoint named onnx": (
        lambda d: _save(d / "m.onnx", {"format": CHECKPOINT_FORMAT}),
        "m.onnx: is not a valid ONNX file: it looks like a PyTorch checkpoint; rename it to .pt",
    ),
    "directory": (lambda d: _mkdir(d / "m.onnx"), "m.onnx: is a directory, expected a model file"),
    "empty pt": (lambda d: empty(d, "m.pt"), "m.pt: is empty (0 bytes)"),
    "onnx named pt": (
        lambda d: _write(d / "m.pt", onnx_bytes(d)),
        "m.pt: looks like an ONNX model, not a fasdistill checkpoint; rename it to .onnx",
    ),
    "text named pt": (
        lambda d: _write(d / "m.pt", b"hello, not a model"),
        "m.pt: not a readable fasdistill checkpoint (neither a PyTorch nor an ONNX file)",
    ),
    "python objects": (
        lambda d: _save(d / "m.pt", {"args": argparse.Namespace(lr=0.1)}),
        "m.pt: not a fasdistill checkpoint: it holds Python objects (argparse.Namespace)",
    ),
    "truncated pt": (
        lambda d: _write(d / "m.pt", _saved_bytes(d)[:200]),
        "m.pt: not a readable fasdistill checkpoint (truncated or corrupt",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _save(path: Path, state: object) -> Path:
    torch.save(state, path)
    return path


def _saved_bytes(folder: Path) -> bytes:
    return _save(
        folder / "full.pt", {"format": CHECKPOINT_FORMAT, "w": torch.ones(64)}
    ).read_bytes()


def _command(stage: str, model: Path, folder: Path) -> list[str]:
    if stage == "predict":
        image = folder / "face.png"
        image.write_bytes(b"\x89PNG not really")
        return ["predict", "--model", str(model), str(image)]
    if stage == "calibrate":
        scores = folder / "dev.csv"
        scores.write_text("sample_id,label,score\na,bonafide,0.9\nb,attack,0.1\n")
        return ["calibrate", "--model", str(model), "--data", str(scores), "--bootstrap", "0"]
    return ["export", str(model), "--data", str(folder / "index.csv"), "--out", str(folder / "x")]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
@pytest.mark.parametrize("stage", ["predict", "calibrate", "export"])
def test_a_bad_model_file_is_named_for_what_it_is(
    case: str, stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, message = BAD_FILES[case]
    model = make(tmp_path)
    if stage == "export" and model.suffix == ".onnx" and not model.is_dir():
        pytest.skip("export takes checkpoints; an .onnx file is not one")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(_command(stage, model, tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1, err
    assert "weights_only" not in err and "\x1b" not in err, err  # never unsafe advice, no colours
    assert "no fasdistill metadata" not in err and "not found" not in err, err
    written = sorted(p.name for p in tmp_path.iterdir())
    assert set(written) - set(before) <= {"face.png", "dev.csv"}, written  # nothing else written


def test_load_checkpoint_never_suggests_unsafe_loading(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.pt", {"args": argparse.Namespace(lr=0.1)})
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    text = str(caught.value)
    assert "weights_only" not in text and "\x1b" not in text and "\n" not in text


def test_file_kind_comes_from_the_bytes(tmp_path: Path) -> None:
    assert model_format(_write(tmp_path / "a.pt", onnx_bytes(tmp_path))) == "onnx"
    assert model_format(_save(tmp_path / "b.onnx", {"x": 1})) == "pytorch"
    assert model_format(_write(tmp_path / "c.pt", b"hello")) is None
    assert model_format(tmp_path / "missing") is None


def test_third_party_text_is_one_plain_line() -> None:
    coloured = "Weights only load failed, \x1b[1mdo those steps only if you trust it\x1b[0m.\nmore"
    assert strip_ansi(coloured).startswith("Weights only load failed, do those steps")
    assert first_line(ValueError(coloured)) == (
        "Weights only load failed, do those steps only if you trust it."
    )
    assert first_line(EOFError()) == "EOFError"


def test_a_failure_reason_is_one_line_with_its_type_unless_it_is_ours() -> None:
    from fasdistill.errors import InputError
    from fasdistill.utils.text import failure_reason

    cpp = RuntimeError("\n[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION :\n  bad alloc\n")
    assert (
        failure_reason(cpp)
        == "RuntimeError: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : bad alloc"
    )
    assert failure_reason(InputError("model.pt: not a fasdistill checkpoint\nhint")) == (
        "model.pt: not a fasdistill checkpoint"
    )
    assert failure_reason(MemoryError()) == "MemoryError"
    long = failure_reason(ValueError("\x1b[1m" + "x" * 500), limit=50)
    assert long == "ValueError: " + "x" * 47 + "..."
