"""Prediction: real faces found and scored, bad files and bad faces fail closed, threads agree."""

from __future__ import annotations

import gc
import json
import struct
import subprocess
import sys
import weakref
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import torch
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.crops import square_crop
from fasdistill.data.loader import CropDataset, read_crop_index
from fasdistill.errors import InputError
from fasdistill.infer.model_file import ModelFile
from fasdistill.infer.predict import FAILURES, PredictOptions, Predictor, QualityGate
from fasdistill.infer.video import VideoOptions, decide, predict_video
from support import make_index


@pytest.fixture(scope="module")
def model(smoke_onnx: Path) -> Path:
    return smoke_onnx


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


# ---------------------------------------------------------------- long-running use


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI in a child process, killed after ``timeout`` seconds (a hang fails the test)."""
    command = [sys.executable, "-m", "fasdistill.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def test_output_closed_early_ends_quietly(model: Path, tmp_path: Path) -> None:
    """`fasdistill predict ... | head -1`: no traceback, the exit status of a SIGPIPE-ed tool."""
    blank = np.full((48, 48, 3), 128, np.uint8)
    for i in range(200):  # enough that the child is still writing when the reader leaves
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), blank)
    command = [sys.executable, "-m", "fasdistill.cli", "predict", str(tmp_path), "--model"]
    child = subprocess.Popen(
        [*command, str(model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    first = child.stdout.readline()
    child.stdout.close()
    error = child.stderr.read()
    assert child.wait(timeout=120) == 141, error
    assert first.startswith("no_face") and "000.png" in first
    assert "Traceback" not in error and "BrokenPipe" not in error, error


def test_special_files_get_a_status_without_being_opened(model: Path, tmp_path: Path) -> None:
    """A FIFO named x.jpg would block a reader forever; it, a socket, a device and a broken
    link are named for what they are, and the real image is still judged."""
    import os
    import socket

    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "face.jpg"), astronaut())
    os.mkfifo(folder / "x.jpg")
    os.mkfifo(folder / "clip.avi")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.png"))
    (folder / "null.png").symlink_to("/dev/null")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    try:
        done = _cli("predict", str(folder), str(folder / "x.jpg"), "--model", str(model), "--json")
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    results = {Path(r["path"]).name: r for r in map(json.loads, done.stdout.splitlines())}
    expected = {
        "x.jpg": "named pipe",
        "clip.avi": "named pipe",
        "sock.png": "socket",
        "null.png": "character device",
        "gone.png": "broken symbolic link",
    }
    for name, kind in expected.items():
        assert results[name]["status"] == "unreadable" and kind in results[name]["detail"], name
    assert results["face.jpg"]["status"] in ("bonafide", "attack")
    assert len(done.stdout.splitlines()) == 7  # x.jpg twice: in the folder and named


def test_a_folder_without_media_is_an_error_that_says_what_was_looked_for(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty, text_only = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    text_only.mkdir()
    (text_only / "readme.txt").write_text("no pictures here")
    for folder in (empty, text_only):
        assert main(["predict", str(folder), "--model", str(model)]) == 2
        error = capsys.readouterr().err
        assert f"{folder}: no image or video files" in error
        assert ".jpg" in error and ".mp4" in error and len(error.splitlines()) == 1


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_threads_below_one_are_an_argument_error(
    model: Path, threads: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["predict", "x.jpg", "--model", str(model), "--threads", threads])
    assert stop.value.code == 2
    assert "argument --threads" in capsys.readouterr().err
    with pytest.raises(InputError, match="threads"):
        PredictOptions(threads=0).validate()


def test_a_face_cut_by_the_frame_edge_is_never_scored(predictor: Predictor) -> None:
    face = astronaut()  # face box (178, 63, 89, 112)
    lenient = ModelFile(predictor.model.path, "onnx", predictor.model.meta | {"threshold": 0.0})
    accept_all = Predictor(lenient)  # every scored face would be bona fide
    assert accept_all.predict(face).status == "bonafide"
    for cut in (178, 187, 200):  # the face starts at the edge, loses a tenth, a quarter
        result = accept_all.predict(np.ascontiguousarray(face[:, cut:]))
        assert result.status == "face_not_in_frame" and result.score is None, (cut, result)
        assert "left edge" in result.detail and "crop at scale" in result.detail
    touching = accept_all.predict(face, (0.0, 63.0, 89.0, 112.0))  # a given box at x = 0
    assert touching.status == "face_not_in_frame" and "touches the left edge" in touching.detail
    bottom = face[: 63 + 112 + 2]  # two pixels below the chin: closer than 5 % of 112 px
    assert accept_all.predict(bottom, (178.0, 63.0, 89.0, 112.0)).status == "face_not_in_frame"
    inside = accept_all.predict(face[:, 160:], (18.0, 63.0, 89.0, 112.0))  # 18 px >= 5.6 px
    assert inside.status == "bonafide"
    loose = Predictor(lenient, PredictOptions(min_edge_margin=0.0))
    assert loose.predict(face, (0.0, 63.0, 89.0, 112.0)).status == "face_not_in_frame"
    assert loose.predict(face, (1.0, 63.0, 89.0, 112.0)).status == "bonafide"


def test_a_predictor_leaves_torch_threads_alone(model: Path) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        predictor = Predictor.from_file(model, PredictOptions(threads=1))
        assert predictor.predict(astronaut()).status in ("bonafide", "attack")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_videos_are_judged_frame_by_frame_without_keeping_frames(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory must not grow with --frames: a frame is dropped once it is judged."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(8):
        writer.write(np.roll(astronaut(), i, axis=1))
    writer.release()
    expected = predict_video(predictor, path, VideoOptions(frames=8))
    seen: list[weakref.ref[np.ndarray]] = []
    alive_before: list[int] = []
    judge = Predictor.predict

    def recording(self: Predictor, image: np.ndarray, box: object = None) -> object:
        gc.collect()
        alive_before.append(sum(ref() is not None for ref in seen))
        seen.append(weakref.ref(image))
        return judge(self, image, box)

    monkeypatch.setattr(Predictor, "predict", recording)
    got = predict_video(predictor, path, VideoOptions(frames=8))
    assert got.as_dict() == expected.as_dict() and got.frames == 8
    assert max(alive_before) <= 1, alive_before  # at most the frame just before
