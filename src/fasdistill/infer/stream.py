"""Real-time prediction on a stream of frames: a camera, a stream URL, a video or a generator.

Each frame goes through one pipeline:

1. **decode**, in its own thread (:class:`FrameReader`), so the next frame is
   read while this one is judged; a live source keeps only the newest frame
   (a slow consumer skips frames instead of falling behind), a file keeps all;
2. **find faces**: :class:`~fasdistill.infer.track.FaceTracker` searches a
   frame scaled down to what the smallest wanted face needs, re-detects each
   face on a small square around it and follows the faces in between;
3. **crop and gate** each face from the full-resolution frame, exactly as for
   an image (:meth:`~fasdistill.infer.predict.Predictor.face`: edge, size and
   quality checks, the training crop);
4. **score** every face that passed in one runtime call;
5. **decide** per face track over windows of ``window`` frames: a window is
   ``bonafide`` only when at least ``min_scored`` of its frames had a scored
   face and their mean score passes the model's threshold; otherwise it is
   ``attack`` or the most common reason its frames failed. Frames without any
   face make ``no_face`` windows. One :class:`WindowDecision` per window.

Nothing is kept beyond the current windows, so memory does not grow with the
stream's length.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from fasdistill.errors import InputError
from fasdistill.infer.predict import Prediction, Predictor
from fasdistill.infer.track import FaceTracker, Track, TrackOptions

Frame = tuple[int, float, np.ndarray]  # index, seconds since the stream started, BGR image


@dataclass
class StreamOptions:
    """How often to detect and how frames become decisions."""

    detect_every: int = 10  # frames between re-detections of each face (1: every frame)
    search_every: int = 30  # frames between searches of the whole frame for new faces
    window: int = 15  # frames per decision
    min_scored: float = 0.5  # share of a window's frames that must have a scored face
    track: TrackOptions = field(default_factory=TrackOptions)

    def validate(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise InputError(f"window must be an integer >= 1, got {self.window!r}")
        if not 0 < self.min_scored <= 1:
            raise InputError(f"min scored share must lie in (0, 1], got {self.min_scored}")
        self.track.detect_every = self.detect_every
        self.track.search_every = self.search_every
        self.track.validate()


@dataclass
class FaceResult:
    """One face in one frame: its track and what the predictor made of it."""

    track: int
    detected: bool  # the box came from the detector on this frame (else from tracking)
    prediction: Prediction


@dataclass
class WindowDecision:
    """One decision: a face track's window of frames (or a window without any face)."""

    track: int | None  # None: a window in which no face was seen
    status: str
    score: float | None
    threshold: float
    first_frame: int
    last_frame: int
    time_s: float  # stream time of the last frame
    frames: int
    scored: int
    frame_statuses: dict[str, int]
    box: list[float] | None = None  # the face's box in the last frame
    partial: bool = False  # the track or the stream ended before the window filled

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        if self.score is not None:
            out["score"] = round(self.score, 6)
        out["time_s"] = round(self.time_s, 3)
        return out


@dataclass
class _Window:
    first: int
    statuses: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    frames: int = 0
    last: int = 0
    time_s: float = 0.0
    box: list[float] | None = None


class StreamPredictor:
    """A predictor, a face tracker and the open decision windows of one stream.

    :meth:`frame` judges one frame (faces, their statuses and scores);
    :meth:`run` turns a whole stream into decisions. The detector, the
    preprocessing and the quality gate are the predictor's, so a stream and an
    image of the same face get the same crop.
    """

    def __init__(self, predictor: Predictor, options: StreamOptions | None = None) -> None:
        self.predictor = predictor
        self.options = options or StreamOptions()
        self.options.validate()
        self.tracker: FaceTracker | None = None
        self._shape: tuple[int, int] | None = None
        self._windows: dict[int | None, _Window] = {}
        self.timings = {"track": 0.0, "crop_gate": 0.0, "infer": 0.0}

    # ------------------------------------------------------------------ one frame

    def _tracker_for(self, frame: np.ndarray) -> FaceTracker:
        shape = frame.shape[:2]
        if self.tracker is None or shape != self._shape:  # new stream, or its size changed
            min_face = self.predictor.min_face(*shape)
            self.tracker = FaceTracker(self.predictor.detector, min_face, self.options.track)
            self._shape = shape
        return self.tracker

    def frame(self, frame: np.ndarray) -> list[FaceResult]:
        """Find, follow, check and score the faces of the next frame of the stream."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"stream frames must be BGR uint8 (H, W, 3), got {frame.shape}")
        t0 = time.perf_counter()
        tracks: list[Track] = self._tracker_for(frame).update(frame)
        t1 = time.perf_counter()
        results, tensors, scored = [], [], []
        reject = len(tracks) > 1 and self.predictor.options.multiple_faces == "reject"
        for track in tracks:
            if reject:
                prediction = Prediction("multiple_faces", box=track.box, faces=len(tracks))
                tensor = None
            else:
                prediction, tensor = self.predictor.face(frame, track.box)
                prediction.faces = len(tracks)
            results.append(FaceResult(track.id, track.detected, prediction))
            if tensor is not None:
                tensors.append(tensor)
                scored.append(prediction)
        t2 = time.perf_counter()
        self.predictor.decide(scored, tensors)  # every face of the frame in one runtime call
        t3 = time.perf_counter()
        self.timings["track"] += t1 - t0
        self.timings["crop_gate"] += t2 - t1
        self.timings["infer"] += t3 - t2
        return results

    # ------------------------------------------------------------------ decisions

    def _close(self, key: int | None, window: _Window, partial: bool) -> WindowDecision:
        threshold = self.predictor.threshold
        decision = WindowDecision(
            track=key,
            status="attack",
            score=None,
            threshold=threshold,
            first_frame=window.first,
            last_frame=window.last,
            time_s=window.time_s,
            frames=window.frames,
            scored=len(window.scores),
            frame_statuses=dict(window.statuses),
            box=window.box,
            partial=partial,
        )
        if len(window.scores) < self.options.min_scored * window.frames:
            failures = Counter(
                {k: v for k, v in window.statuses.items() if k not in ("bonafide", "attack")}
            )
            decision.status = failures.most_common(1)[0][0] if failures else "no_face"
            return decision
        decision.score = float(np.mean(window.scores))
        decision.status = "bonafide" if decision.score >= threshold else "attack"
        return decision

    def decide(self, index: int, time_s: float, faces: list[FaceResult]) -> list[WindowDecision]:
        """Add one judged frame to the windows; the windows it completes or ends."""
        done: list[WindowDecision] = []
        seen: dict[int | None, tuple[str, float | None, list[float] | None]] = {
            face.track: (
                face.prediction.status,
                face.prediction.score,
                None if face.prediction.box is None else [round(v, 1) for v in face.prediction.box],
            )
            for face in faces
        }
        if not faces:
            seen[None] = ("no_face", None, None)
        for key in [k for k in self._windows if k not in seen]:  # tracks that ended
            done.append(self._close(key, self._windows.pop(key), partial=True))
        for key, (status, score, box) in seen.items():
            window = self._windows.setdefault(key, _Window(first=index))
            window.statuses[status] += 1
            if score is not None:
                window.scores.append(score)
            window.frames += 1
            window.last, window.time_s, window.box = index, time_s, box
            if window.frames >= self.options.window:
                done.append(self._close(key, self._windows.pop(key), partial=False))
        return done

    def finish(self) -> list[WindowDecision]:
        """The windows still open when the stream ends (marked partial)."""
        done = [self._close(k, w, partial=True) for k, w in self._windows.items()]
        self._windows.clear()
        return done

    def run(self, frames: Iterable[Frame]) -> Iterator[WindowDecision]:
        """Decisions of a whole stream of (index, seconds, BGR frame), as they are made."""
        for index, time_s, image in frames:
            yield from self.decide(index, time_s, self.frame(image))
        yield from self.finish()


# ---------------------------------------------------------------------- sources


def parse_source(text: str) -> int | str:
    """A camera index ('0'), or a device path, a stream URL or a video file as given."""
    return int(text) if re.fullmatch(r"\d+", text.strip()) else text


def open_source(source: int | str, max_pixels: int) -> cv2.VideoCapture:
    """An opened OpenCV capture of a camera index, device, URL or file; InputError if not."""
    if isinstance(source, str) and "://" not in source and not Path(source).exists():
        raise InputError(f"{source}: no such file or device (and not a stream URL)")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        what = f"camera {source}" if isinstance(source, int) else source
        raise InputError(f"{what}: OpenCV cannot open it (no such camera, stream or codec)")
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_pixels:
        capture.release()
        raise InputError(f"{source}: frames of {width} x {height} pixels exceed the memory bound")
    return capture


_END = object()


class FrameReader:
    """Frames of an OpenCV source, decoded in a background thread.

    ``live``: keep only the newest decoded frame (a camera: the consumer always
    gets the latest view and ``dropped`` counts the frames it never saw);
    otherwise every frame is delivered in order through a short queue (a file).
    ``threaded=False`` decodes in the caller's thread instead (one core).
    ``max_frames`` stops after that many frames. Iterate to get
    (index, seconds, frame); :meth:`close` stops the thread and releases the source.
    """

    def __init__(
        self,
        capture: cv2.VideoCapture,
        live: bool = False,
        threaded: bool = True,
        max_frames: int | None = None,
        queue_size: int = 4,
    ) -> None:
        self.capture = capture
        self.live = live
        self.threaded = threaded
        self.max_frames = max_frames
        self.dropped = 0
        self.decode_s = 0.0  # seconds spent decoding (in whichever thread)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1 if live else queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.perf_counter()
        fps = capture.get(cv2.CAP_PROP_FPS)
        self._fps = fps if not live and fps and fps > 0 else None

    def _read(self, index: int) -> Frame | None:
        t0 = time.perf_counter()
        ok, image = self.capture.read()
        self.decode_s += time.perf_counter() - t0
        if not ok or image is None:
            return None
        seconds = index / self._fps if self._fps else time.perf_counter() - self._start
        return index, seconds, image

    def _put(self, item: Any) -> bool:
        """Queue an item; False when asked to stop. A live source replaces a stale frame."""
        while not self._stop.is_set():
            if self.live and item is not _END:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        index = 0
        try:
            while not self._stop.is_set() and (self.max_frames is None or index < self.max_frames):
                frame = self._read(index)
                if frame is None:
                    break
                if not self._put(frame):
                    return
                index += 1
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[Frame]:
        if not self.threaded:
            index = 0
            while self.max_frames is None or index < self.max_frames:
                frame = self._read(index)
                if frame is None:
                    return
                yield frame
                index += 1
            return
        self._thread = threading.Thread(target=self._produce, name="fasdistill-decode", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            while True:  # unblock a producer waiting on a full queue
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
        self.capture.release()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frames_of(images: Iterable[np.ndarray], fps: float = 30.0) -> Iterator[Frame]:
    """(index, seconds, frame) for frames from any iterable (a generator, a list)."""
    for index, image in enumerate(images):
        yield index, index / fps, image


# ---------------------------------------------------------------------- preview


class Preview:
    """An OpenCV window that draws each face's box, score and status (``--preview``)."""

    COLOURS: ClassVar[dict[str, tuple[int, int, int]]] = {
        "bonafide": (80, 200, 80),  # BGR; other statuses amber
        "attack": (60, 60, 230),
    }

    def __init__(self, title: str = "fasdistill") -> None:
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise InputError(
                "--preview needs an OpenCV built with a GUI (pip install opencv-python); "
                f"this one ({cv2.__version__}) is headless: {exc.err}"
            ) from None
        self.last: dict[int | None, WindowDecision] = {}

    def show(self, image: np.ndarray, faces: list[FaceResult]) -> bool:
        """Draw and show one frame; False when the user pressed q or Esc."""
        canvas = draw_faces(image, faces, self.last)
        cv2.imshow(self.title, canvas)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def draw_faces(
    image: np.ndarray, faces: list[FaceResult], decisions: dict[int | None, WindowDecision]
) -> np.ndarray:
    """A copy of the frame with each face's box, its track, frame score and last decision."""
    canvas = image.copy()
    for face in faces:
        p = face.prediction
        if p.box is None:
            continue
        decided = decisions.get(face.track)
        status = decided.status if decided else p.status
        colour = Preview.COLOURS.get(status, (0, 190, 255))
        x, y, w, h = (round(v) for v in p.box)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, 2)
        score = "" if p.score is None else f" {p.score:.2f}"
        label = f"#{face.track} {status}{score}"
        font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.5
        (tw, th), base = cv2.getTextSize(label, font, scale, 1)
        top = max(0, y - th - base - 4)  # a filled tag above the box (inside it at the top)
        cv2.rectangle(canvas, (x - 1, top), (x + tw + 6, top + th + base + 4), colour, cv2.FILLED)
        origin = (x + 3, top + th + 2)
        cv2.putText(canvas, label, origin, font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
