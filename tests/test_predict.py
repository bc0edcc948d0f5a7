"""Prediction: real faces found and scored, bad files and bad faces fail closed, threads agree."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.crops import square_crop
from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.engine.trainer import train
from fasdistill.export.pipeline import ExportOptions, export_checkpoint
from fasdistill.infer.predict import FAILURES, PredictOptions, Predictor, QualityGate
from fasdistill.infer.video import VideoOptions, decide, predict_video
from test_train import make_index, smoke


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_index(tmp_path_factory.mktemp("toy"), {"train": 12, "dev": 8, "test": 8})


@pytest.fixture(scope="module")
def model(index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    config = smoke(**{"model.name": "smoke-cnn", "train.epochs": 1, "data.input_size": 16})
    train(config, index, run, show_progress=False)
    out = tmp_path_factory.mktemp("export")
    options = ExportOptions(formats=("onnx",), latency_runs=0)
    export_checkpoint(run / "checkpoints" / "best.pt", index, out, options, log=lambda _: None)
    return out / "model.onnx"


@pytest.fixture(scope="module")
def predictor(model: Path) -> Predictor:
    return Predictor.from_file(model)


def astronaut() -> np.ndarray:
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)


def hopper() -> np.ndarray:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` grey pixels, in a few kilobytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    rows = zlib.compress((b"\x00" * (width + 1)) * 64, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_real_faces_are_found_and_scored(predictor: Predictor) -> None:
    for image in (astronaut(), hopper()):
        result = predictor.predict(image)
        assert result.status in ("bonafide", "attack"), result
        assert 0.0 <= result.score <= 1.0 and result.faces == 1
        assert (result.status == "bonafide") == (result.score >= predictor.threshold)
        _, _, w, h = result.box
        assert 40 <= w <= 300 and 40 <= h <= 300  # a face, not the whole picture
    rocket = cv2.cvtColor(skdata.rocket(), cv2.COLOR_RGB2BGR)
    assert predictor.predict(rocket).status == "no_face"


def test_prediction_preprocesses_exactly_like_the_training_loader(
    predictor: Predictor, tmp_path: Path, index: Path
) -> None:
    """A crop cut by prediction becomes the same tensor the loader makes of the stored crop."""
    box = (178.0, 63.0, 89.0, 112.0)
    crop = square_crop(astronaut(), box, predictor.crop_scale, 40)  # stored larger than input
    fake = make_index(tmp_path, {"train": 1, "dev": 1})
    rows = read_crop_index(fake)
    assert cv2.imwrite(str(rows.root / rows.split("dev")[0]["crop_path"]), crop)
    loader_tensor = CropDataset(rows, "dev", predictor.input_size)[0][0].numpy()
    np.testing.assert_array_equal(predictor.preprocess(crop), loader_tensor)


def test_bad_files_get_a_status_and_never_bonafide(predictor: Predictor, tmp_path: Path) -> None:
    face = astronaut()
    _, png = cv2.imencode(".png", face)
    files = {
        "zero.png": (b"", "unreadable"),
        "corrupt.jpg": (b"\xff\xd8\xff\xe0" + b"garbage" * 100, "unreadable"),
        "truncated.png": (png.tobytes()[:2000], "unreadable"),
        "text.png": (b"this is a text file named like an image", "unreadable"),
        "bomb.png": (png_bomb(40000, 40000), "image_too_large"),
    }
    for name, (content, status) in files.items():
        (tmp_path / name).write_bytes(content)
        result = predictor.predict(tmp_path / name)
        assert result.status == status and result.detail, (name, result)
    assert predictor.predict(tmp_path / "missing.png").status == "unreadable"
    # Other pixel formats of a real face are converted and scored like the original.
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)
    deep = face.astype(np.uint16) * 257
    for name, image in (("grey.png", grey), ("rgba.png", rgba), ("16bit.png", deep)):
        cv2.imwrite(str(tmp_path / name), image)
        assert predictor.predict(tmp_path / name).status in ("bonafide", "attack"), name
    jpg = tmp_path / "photo.png.jpg"  # a PNG named .jpg: the bytes decide
    jpg.write_bytes(png.tobytes())
    assert predictor.predict(jpg).status in ("bonafide", "attack")


def test_bad_faces_fail_closed(predictor: Predictor) -> None:
    face = astronaut()
    box = (178.0, 63.0, 89.0, 112.0)
    assert predictor.predict(face, (178.0, 63.0, 2.0, 3.0)).status == "face_too_small"
    outside = predictor.predict(face, (900.0, 900.0, 50.0, 50.0))  # a stale boxes.csv entry
    assert outside.status == "no_face" and "outside" in outside.detail
    dark = (face * 0.1).astype(np.uint8)
    result = predictor.predict(dark, box)
    assert result.status == "low_quality" and result.quality["brightness"] < 40
    blurred = cv2.GaussianBlur(face, (0, 0), 6)
    assert predictor.predict(blurred, box).status == "low_quality"
    two = np.hstack([face, cv2.resize(hopper(), (512, 512))])
    assert predictor.predict(two).faces == 2  # default policy: score the largest
    strict = Predictor(predictor.model, PredictOptions(multiple_faces="reject"))
    assert strict.predict(two).status == "multiple_faces"
    lenient = Predictor(predictor.model, PredictOptions(quality=QualityGate(0, 0)))
    assert lenient.predict(dark, box).status in ("bonafide", "attack")
    assert set(FAILURES).isdisjoint({"bonafide"})


def test_decompression_bomb_stays_within_memory(model: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(40000, 40000))
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of this big
    # pytest process would report the parent's size.
    code = (
        "import re, sys\n"
        "from fasdistill.cli import main\n"
        f"rc = main(['predict', {str(bomb)!r}, '--model', {str(model)!r}, '--json'])\n"
        "status = open('/proc/self/status').read()\n"
        "peak = int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) / 2**20\n"
        "print('PEAK_GIB', peak, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "image_too_large"
    peak = float(done.stderr.split("PEAK_GIB")[1].split()[0])
    assert peak < 1.0


def test_concurrent_calls_agree_with_sequential_ones(predictor: Predictor) -> None:
    images = [astronaut(), hopper(), cv2.flip(astronaut(), 1), cv2.flip(hopper(), 1)] * 3
    expected = [predictor.predict(image).score for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = [r.score for r in pool.map(predictor.predict, images)]
    assert got == pytest.approx(expected, abs=1e-6)
    batch = [r.score for r in predictor.predict_batch(images)]
    assert batch == pytest.approx(expected, abs=1e-5)


def test_video_decision_rules() -> None:
    options = VideoOptions(window=2)
    scores = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.9])
    assert decide(scores, 0.5, options) == (pytest.approx(0.7667, abs=1e-3), True)
    strict = VideoOptions(window=2, rule="all-windows")
    assert decide(scores, 0.5, strict) == (pytest.approx(0.5), True)
    assert decide(scores, 0.6, strict)[1] is False  # one bad stretch rejects the video
    assert decide(scores, 0.6, VideoOptions(window=2, rule="majority"))[1] is True


def test_videos_get_one_decision_and_truncated_ones_do_not_crash(
    predictor: Predictor, tmp_path: Path
) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(12):
        writer.write(np.roll(astronaut(), i, axis=1))
    writer.release()
    result = predict_video(predictor, path, VideoOptions(frames=6))
    assert result.status in ("bonafide", "attack") and result.frames == 6 == result.scored
    assert result.score == pytest.approx(np.mean(result.frame_scores), abs=1e-6)
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    cut = predict_video(predictor, truncated, VideoOptions(frames=6))
    assert cut.status in ("bonafide", "attack", "unreadable")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert predict_video(predictor, empty).status == "unreadable"
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for _ in range(4):
        writer.write(np.full((64, 64, 3), 128, np.uint8))
    writer.release()
    assert predict_video(predictor, blank).status == "no_face"


def test_cli_predicts_folders_as_json_lines_and_reports_errors_by_exit_status(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "face.jpg"), astronaut())
    (folder / "sub" / "broken.png").write_bytes(b"\x89PNG broken")
    (folder / "notes.txt").write_text("not media")
    assert main(["predict", str(folder), "--model", str(model), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in lines] == ["face.jpg", "broken.png"]
    assert lines[0]["status"] in ("bonafide", "attack") and lines[1]["status"] == "unreadable"
    assert main(["predict", str(tmp_path / "nope.jpg"), "--model", str(model)]) == 2
    assert "nope.jpg: no such file or directory" in capsys.readouterr().err
    assert main(["predict", str(folder), "--model", str(tmp_path / "m.onnx")]) == 2
