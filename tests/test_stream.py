"""Real-time prediction: face tracking, decision windows, frame sources and the live CLI.

No camera is attached here: streams are generators of frames and video files
made from the public-domain astronaut photo.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fasdistill.cli import main
from fasdistill.data.detect import BlazeFaceDetector, Detection, get_detector
from fasdistill.errors import InputError
from fasdistill.infer.predict import PredictOptions, Predictor
from fasdistill.infer.stream import (
    FrameReader,
    StreamOptions,
    StreamPredictor,
    draw_faces,
    frames_of,
    open_source,
    parse_source,
)
from fasdistill.infer.track import FaceTracker, TrackOptions, iou, match

W, H = 640, 480


def face() -> np.ndarray:
    return cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (400, 400))


def two_faces(shift: int = 0) -> np.ndarray:
    """Two astronaut heads (faces about 105 px) side by side, ``shift`` px towards each other."""
    head = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)[20:260, 110:330]
    frame = np.full((H, W, 3), 90, np.uint8)
    frame[120:360, 40 + shift : 260 + shift] = head
    frame[120:360, 380 - shift : 600 - shift] = head[:, ::-1]
    return frame


def panning(n: int, step: int = 2, start: int = 60) -> list[np.ndarray]:
    """The astronaut (face about 80 px) moving ``step`` px right per frame on grey."""
    photo, frames = face(), []
    for i in range(n):
        frame = np.full((H, W, 3), 90, np.uint8)
        x = start + i * step
        frame[40:440, x : x + 400] = photo
        frames.append(frame)
    return frames


class Counting(BlazeFaceDetector):
    """BlazeFace, counting its network runs."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _detect(self, image: np.ndarray, model: object, min_face: float | None) -> list[Detection]:
        self.calls += 1
        return super()._detect(image, model, min_face)


@pytest.fixture(scope="module")
def predictor(smoke_onnx: Path) -> Predictor:
    return Predictor.from_file(smoke_onnx, PredictOptions(detector="blazeface"))


# ---------------------------------------------------------------------- tracking


def test_iou_and_greedy_matching() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    boxes = [(0, 0, 10, 10), (100, 0, 10, 10)]
    found = [(101, 0, 10, 10), (1, 0, 10, 10), (300, 0, 10, 10)]
    assert match(boxes, found, 0.3) == {0: 1, 1: 0}


def test_tracking_follows_the_face_and_detects_only_every_n_frames() -> None:
    frames = panning(30)
    detector = Counting()
    tracker = FaceTracker(detector, min_face=96, options=TrackOptions(detect_every=10))
    reference = get_detector("blazeface")
    ids, last = set(), None
    for i, frame in enumerate(frames):
        (track,) = tracker.update(frame)
        ids.add(track.id)
        assert track.detected == (i % 10 == 0)
        if not track.detected:  # the face moves 2 px right a frame: so must the box
            assert track.box[0] - last[0] == pytest.approx(2, abs=0.3)
            assert track.box[1:] == pytest.approx(last[1:], abs=0.3)
        truth = reference.best(frame, 96)
        assert truth is not None and iou(track.box, truth.box) > 0.7  # detections jitter
        last = track.box
    # frame 0: a search and the refinement of its face; frames 10 and 20: re-detections
    assert (tracker.searches, tracker.redetections, detector.calls) == (1, 2, 4)
    assert ids == {0}  # one face, one track, kept across detections


def test_a_scene_cut_or_a_lost_face_triggers_a_search_at_once() -> None:
    frames = panning(4)
    tracker = FaceTracker(Counting(), min_face=96, options=TrackOptions(detect_every=100))
    for frame in frames:
        tracker.update(frame)
    assert tracker.searches == 1
    blank = np.full((H, W, 3), 90, np.uint8)
    assert tracker.update(blank) == []  # the face vanished: flow fails, the search finds none
    assert tracker.searches == 2
    first = tracker.update(frames[0])[0]  # no track: search
    assert tracker.searches == 3 and first.id == 1  # the old track ended with its face
    tracker.update(frames[1])
    assert tracker.searches == 3  # followed
    tracker.update(255 - frames[2])  # a cut (the same place, other light): searched, not followed
    assert tracker.searches == 4


def test_a_face_that_redetection_misses_ends_its_track() -> None:
    frames = panning(3)
    tracker = FaceTracker(get_detector("blazeface"), 96, TrackOptions(detect_every=1))
    assert len(tracker.update(frames[0])) == 1
    (track,) = tracker.update(frames[1])
    assert track.detected and tracker.redetections == 1
    hidden = frames[2].copy()  # the face covered: too small a change for a cut
    x, y, w, h = (round(v) for v in track.box)
    hidden[y - h // 4 : y + h + h // 4, x - w // 4 : x + w + w // 4] = 90
    assert all(t.id != track.id for t in tracker.update(hidden))
    assert tracker.redetections == 2 and tracker.searches == 2


def test_every_face_gets_its_own_track() -> None:
    frames = [two_faces(i) for i in range(12)]
    tracker = FaceTracker(get_detector("blazeface"), 96, TrackOptions(detect_every=5))
    seen = [[(t.id, t.box) for t in tracker.update(frame)] for frame in frames]
    assert all(len(tracks) == 2 for tracks in seen)
    assert {i for tracks in seen for i, _ in tracks} == {0, 1}
    left = [next((i, box) for i, box in tracks if box[0] < W / 2) for tracks in seen]
    assert len({i for i, _ in left}) == 1
    assert left[-1][1][0] - left[0][1][0] == pytest.approx(11, abs=3)  # moved 11 px right


def test_track_options_are_checked() -> None:
    for bad in (
        TrackOptions(detect_every=0),
        TrackOptions(search_every=0),
        TrackOptions(grid=2),
        TrackOptions(min_points=0),
        TrackOptions(max_zoom=1.0),
        TrackOptions(match_iou=1.0),
    ):
        with pytest.raises(InputError):
            bad.validate()
    with pytest.raises(InputError, match="min_face"):
        FaceTracker(get_detector("blazeface"), min_face=0)


# ---------------------------------------------------------------------- stream decisions


def test_stream_decides_per_window_and_matches_image_prediction(predictor: Predictor) -> None:
    frames = panning(12)
    streamer = StreamPredictor(predictor, StreamOptions(detect_every=1, window=5))
    decisions = list(streamer.run(frames_of(frames)))
    assert [(d.track, d.frames, d.partial) for d in decisions] == [
        (0, 5, False),
        (0, 5, False),
        (0, 2, True),
    ]
    assert all(d.status in ("bonafide", "attack") and d.scored == d.frames for d in decisions)
    # the first frame is searched as an image is: the same box and score; later frames
    # are re-detected around the last box: nearly the same
    streamer = StreamPredictor(predictor, StreamOptions(detect_every=1, window=5))
    for i, frame in enumerate(frames[:4]):
        (result,) = streamer.frame(frame)
        alone = predictor.predict(frame)
        assert result.detected and result.prediction.status == alone.status
        close = 1e-6 if i == 0 else 0.01
        assert result.prediction.score == pytest.approx(alone.score, abs=close)
        assert iou(result.prediction.box, alone.box) > (0.999 if i == 0 else 0.9)


def test_tracked_scores_stay_close_to_detected_ones(predictor: Predictor) -> None:
    frames = panning(20)
    every = StreamPredictor(predictor, StreamOptions(detect_every=1))
    tracked = StreamPredictor(predictor, StreamOptions(detect_every=10))
    for frame in frames:
        (a,), (b,) = every.frame(frame), tracked.frame(frame)
        assert iou(a.prediction.box, b.prediction.box) > 0.8
        assert abs(a.prediction.score - b.prediction.score) < 0.05
    assert (tracked.tracker.searches, tracked.tracker.redetections) == (1, 1)
    assert (every.tracker.searches, every.tracker.redetections) == (1, 19)


def test_windows_without_a_face_fail_closed(predictor: Predictor) -> None:
    blank = [np.full((H, W, 3), 90, np.uint8)] * 7
    decisions = list(StreamPredictor(predictor, StreamOptions(window=3)).run(frames_of(blank)))
    assert [(d.track, d.status, d.frames) for d in decisions] == [
        (None, "no_face", 3),
        (None, "no_face", 3),
        (None, "no_face", 1),
    ]
    assert all(d.score is None for d in decisions)
    # a face whose frames fail the quality gate: its window says why, never bonafide
    dark = [(f // 8).astype(np.uint8) for f in panning(4)]
    decisions = list(StreamPredictor(predictor, StreamOptions(window=4)).run(frames_of(dark)))
    assert {d.status for d in decisions} <= {"low_quality", "no_face"}


def test_multiple_faces_can_be_rejected(smoke_onnx: Path) -> None:
    frame = two_faces()
    strict = Predictor.from_file(smoke_onnx, PredictOptions(multiple_faces="reject"))
    results = StreamPredictor(strict).frame(frame)
    assert [r.prediction.status for r in results] == ["multiple_faces"] * 2
    lenient = StreamPredictor(Predictor.from_file(smoke_onnx)).frame(frame)
    assert all(r.prediction.status in ("bonafide", "attack") for r in lenient)
    assert all(r.prediction.faces == 2 for r in lenient)
    drawn = draw_faces(frame, lenient, {})
    assert drawn.shape == frame.shape and not np.array_equal(drawn, frame)


# ---------------------------------------------------------------------- sources


def _video(path: Path, frames: list[np.ndarray]) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (W, H))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_frame_reader_threaded_equals_inline(tmp_path: Path) -> None:
    video = _video(tmp_path / "v.avi", panning(9))
    with FrameReader(open_source(str(video), 10**8), threaded=True) as reader:
        threaded = list(reader)
    with FrameReader(open_source(str(video), 10**8), threaded=False, max_frames=5) as reader:
        inline = list(reader)
    assert [i for i, _, _ in threaded] == list(range(9))
    assert [t for _, t, _ in threaded[:3]] == pytest.approx([0, 1 / 30, 2 / 30])
    assert len(inline) == 5
    for (_, _, a), (_, _, b) in zip(threaded, inline, strict=False):
        assert np.array_equal(a, b)


def test_a_live_source_skips_stale_frames_and_stops_cleanly(tmp_path: Path) -> None:
    video = _video(tmp_path / "v.avi", panning(40))
    reader = FrameReader(open_source(str(video), 10**8), live=True)
    got = []
    for index, _, _ in reader:
        got.append(index)
        time.sleep(0.01)  # a slow consumer
    reader.close()
    assert got == sorted(got) and len(got) + reader.dropped == 40 and reader.dropped > 0
    # closing mid-stream ends the decode thread
    reader = FrameReader(open_source(str(video), 10**8))
    next(iter(reader))
    reader.close()
    assert not any(t.name == "fasdistill-decode" and t.is_alive() for t in threading.enumerate())


def test_sources_are_parsed_and_bad_ones_named(tmp_path: Path) -> None:
    assert parse_source("0") == 0 and parse_source(" 12 ") == 12
    assert parse_source("rtsp://cam/1") == "rtsp://cam/1"
    with pytest.raises(InputError, match="no such file or device"):
        open_source(str(tmp_path / "nope.avi"), 10**8)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    with pytest.raises(InputError, match="OpenCV cannot open it"):
        open_source(str(junk), 10**8)
    video = _video(tmp_path / "v.avi", panning(2))
    with pytest.raises(InputError, match="exceed the memory bound"):
        open_source(str(video), 1000)


# ---------------------------------------------------------------------- CLI


def test_cli_streams_json_lines(
    smoke_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = _video(tmp_path / "v.avi", panning(20))
    argv = ["predict", "--model", str(smoke_onnx), "--stream", str(video), "--window", "8"]
    assert main([*argv, "--detect-every", "5"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["track"], d["frames"], d["partial"]) for d in lines] == [
        (0, 8, False),
        (0, 8, False),
        (0, 4, True),
    ]
    assert lines[0]["last_frame"] == 7 and lines[0]["time_s"] == pytest.approx(7 / 30, abs=1e-3)
    assert main([*argv, "--max-frames", "8", "--no-decode-thread"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_cli_live_input_errors_exit_2(
    smoke_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(smoke_onnx)]
    assert main(["predict", *model, "--camera", "57"]) == 2
    assert "camera 57: OpenCV cannot open it" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), *model, "--camera", "0"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["predict", *model]) == 2
    assert "nothing to judge" in capsys.readouterr().err
    video = _video(tmp_path / "v.avi", panning(2))
    if "headless" in cv2.getBuildInformation().lower() or not _has_gui():
        assert main(["predict", *model, "--stream", str(video), "--preview"]) == 2
        assert "--preview needs an OpenCV built with a GUI" in capsys.readouterr().err


def _has_gui() -> bool:
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        return True
    except cv2.error:
        return False
