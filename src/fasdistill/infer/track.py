"""Face tracking between detections: one track per face, detection only where it is needed.

A detector search of the whole frame costs milliseconds; looking again at a
face that is already found costs less (the detector runs once on a small
square around it, :meth:`~fasdistill.data.detection.FaceDetector.refine`), and
following it between looks costs a fraction of a millisecond.
:class:`FaceTracker` therefore

* **searches** the whole frame on the first frame, every ``search_every``
  frames (new faces), and at once when there is no face, a track is lost or
  the scene cuts;
* **re-detects** each tracked face every ``detect_every`` frames on the square
  around its last box (``detect_every=1``: every frame's box comes from the
  detector, at the same face size as in ``prepare``);
* **follows** each face in between by sparse optical flow (median flow:
  pyramidal Lucas-Kanade on a grid of points inside the box, forward and
  backward, keeping the points that come back to where they started; the box
  moves by their median shift and scales by the median change of their
  distances from their median).

A track is lost when too few points survive the forward-backward check, when
its box jumps more than ``max_jump`` of its side in one frame or changes size
by more than ``max_zoom``, when it leaves the frame, or when re-detection no
longer finds its face. A scene cut is a mean absolute difference of more than
``scene_cut`` grey levels between successive 32 x 24 thumbnails. At a search,
faces continue the track they overlap most (IoU >= ``match_iou``), new faces
start new tracks and tracks without a face end.

Flow runs on a grey copy of the frame shrunk by the whole factor that brings
the smallest face wanted nearest above ``flow_face`` pixels: the cost hardly
grows with the camera's resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import count

import cv2
import numpy as np

from fasdistill.data.detect import Detection, FaceDetector, iou
from fasdistill.errors import InputError

Box = tuple[float, float, float, float]

_LK = {
    "winSize": (9, 9),
    "maxLevel": 2,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}


@dataclass
class TrackOptions:
    """When to detect and when a followed face counts as lost."""

    detect_every: int = 10  # frames between re-detections of a tracked face; 1: every frame
    search_every: int = 30  # frames between searches of the whole frame for new faces
    grid: int = 8  # flow points per box side (grid x grid points)
    max_fb_error: float = 1.0  # forward-backward error (px at flow scale) a kept point may have
    min_points: float = 0.4  # share of the grid that must survive the checks, else lost
    max_jump: float = 0.3  # box centre shift per frame, as a share of the box side, else lost
    max_zoom: float = 1.2  # box size change per frame (and its inverse), else lost
    scene_cut: float = 30.0  # mean |difference| of grey thumbnails (0-255) that forces detection
    match_iou: float = 0.3  # a detection continues the track it overlaps this much
    flow_face: float = 40.0  # the smallest face wanted, in pixels of the flow image

    def validate(self) -> None:
        for name in ("detect_every", "search_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        if self.grid < 3:
            raise InputError(f"the flow grid needs >= 3 points a side, got {self.grid}")
        if not 0 < self.min_points <= 1:
            raise InputError(f"min_points must lie in (0, 1], got {self.min_points}")
        if self.max_zoom <= 1 or self.max_jump <= 0 or self.max_fb_error <= 0:
            raise InputError("max_zoom must be > 1, max_jump and max_fb_error > 0")
        if not 0 < self.match_iou < 1:
            raise InputError(f"match_iou must lie in (0, 1), got {self.match_iou}")


@dataclass
class Track:
    """One face followed over frames."""

    id: int
    box: Box
    score: float  # the detector's score at the last detection
    detected: bool = True  # whether this frame's box came from the detector
    age: int = 0  # frames since the track started
    since_detection: int = 0  # frames since the detector last saw this face
    landmarks: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)


def match(boxes: list[Box], found: list[Box], threshold: float) -> dict[int, int]:
    """Greedy one-to-one matching by IoU, best pairs first: {box index: found index}."""
    pairs = sorted(
        ((iou(a, b), i, j) for i, a in enumerate(boxes) for j, b in enumerate(found)),
        reverse=True,
    )
    matched: dict[int, int] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched


class FaceTracker:
    """Faces of a stream of frames, detected when needed and followed in between.

    ``min_face``: the smallest face side (pixels of the frame) to find, or a
    callable (height, width) -> pixels; it sets both the detector's and the
    flow's resolution. :meth:`update` takes every frame of one stream in order.
    """

    def __init__(
        self,
        detector: FaceDetector,
        min_face: float,
        options: TrackOptions | None = None,
    ) -> None:
        self.detector = detector
        self.options = options or TrackOptions()
        self.options.validate()
        if not min_face > 0:
            raise InputError(f"min_face must be > 0 pixels, got {min_face}")
        self.min_face = float(min_face)
        self.tracks: list[Track] = []
        self.searches = 0  # whole-frame searches so far (each also refines what it finds)
        self.redetections = 0  # re-detections of tracked faces so far
        self.frames = 0
        self.detect_s = 0.0  # seconds in the detector, and in everything else update() does
        self.follow_s = 0.0
        self._ids = count()
        self._grey: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        # flow runs on the frame shrunk by this whole factor (min_face is fixed per tracker)
        self._step = max(1, int(self.min_face // self.options.flow_face))
        self._unit: np.ndarray | None = None
        self._since_search = 0
        self._since_detect = 0

    def reset(self) -> None:
        """Forget every track (a new stream)."""
        self.tracks = []
        self._grey = self._thumb = None
        self._since_search = self._since_detect = 0

    # ------------------------------------------------------------------ pieces

    def _flow_image(self, frame: np.ndarray) -> np.ndarray:
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        k = self._step
        if k > 1:  # shrink by a whole factor: OpenCV's fast path for area averaging
            size = (grey.shape[1] // k, grey.shape[0] // k)
            grey = cv2.resize(
                grey[: size[1] * k, : size[0] * k], size, interpolation=cv2.INTER_AREA
            )
        return grey

    def _scene_cut(self, grey: np.ndarray) -> bool:
        thumb = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.int16)
        previous, self._thumb = self._thumb, thumb
        if previous is None:
            return False
        return float(np.abs(thumb - previous).mean()) > self.options.scene_cut

    def _grid(self) -> np.ndarray:
        """Flow points over the inner 80 % of a unit box (its edge holds background)."""
        if self._unit is None:
            ticks = np.linspace(0.1, 0.9, self.options.grid)
            self._unit = np.stack(np.meshgrid(ticks, ticks), axis=-1).reshape(-1, 2)
        return self._unit

    def _follow(self, track: Track, previous: np.ndarray, grey: np.ndarray) -> bool:
        """Move ``track`` by median flow from ``previous`` to ``grey``; False when lost."""
        o, s = self.options, 1.0 / self._step
        x, y, w, h = (v * s for v in track.box)
        points = (self._grid() * (w, h) + (x, y)).astype(np.float32).reshape(-1, 1, 2)
        ahead, ok_ahead, _ = cv2.calcOpticalFlowPyrLK(previous, grey, points, None, **_LK)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(grey, previous, ahead, None, **_LK)
        start, end = points.reshape(-1, 2), ahead.reshape(-1, 2)
        error = np.hypot(*(back.reshape(-1, 2) - start).T)
        good = (ok_ahead.ravel() == 1) & (ok_back.ravel() == 1) & (error <= o.max_fb_error)
        if good.sum() < max(3, o.min_points * len(start)):
            return False
        start, end = start[good], end[good]
        shift = np.median(end - start, axis=0)
        # scale: the median ratio of each point's distance from the points' median,
        # after and before (linear in the points, unlike all pairwise distances)
        before = np.hypot(*(start - np.median(start, axis=0)).T)
        after = np.hypot(*(end - np.median(end, axis=0)).T)
        usable = before > 1e-3
        zoom = float(np.median(after[usable] / before[usable])) if usable.any() else 1.0
        if not 1 / o.max_zoom <= zoom <= o.max_zoom:
            return False
        if float(np.hypot(*shift)) > o.max_jump * max(w, h):
            return False
        cx, cy = x + w / 2 + shift[0], y + h / 2 + shift[1]
        w, h = w * zoom, h * zoom
        box = (float((cx - w / 2) / s), float((cy - h / 2) / s), float(w / s), float(h / s))
        height, width = grey.shape[0] / s, grey.shape[1] / s
        if box[0] >= width or box[1] >= height or box[0] + box[2] <= 0 or box[1] + box[3] <= 0:
            return False
        track.box = box
        return True

    def _search(self, frame: np.ndarray) -> None:
        start = time.perf_counter()
        found: list[Detection] = self.detector.detect(frame, self.min_face)
        self.detect_s += time.perf_counter() - start
        self.searches += 1
        self._since_search = self._since_detect = 0
        matched = match(
            [t.box for t in self.tracks], [d.box for d in found], self.options.match_iou
        )
        kept = []
        for i, track in enumerate(self.tracks):
            if i in matched:
                self._found(track, found[matched[i]])
                kept.append(track)
        taken = set(matched.values())
        for j, d in enumerate(found):
            if j not in taken:
                kept.append(Track(next(self._ids), d.box, d.score, landmarks=d.landmarks))
        self.tracks = kept

    @staticmethod
    def _found(track: Track, detection: Detection) -> None:
        track.box, track.score, track.landmarks = (
            detection.box,
            detection.score,
            detection.landmarks,
        )
        track.detected, track.since_detection = True, 0

    def _redetect(self, frame: np.ndarray) -> bool:
        """Each track's face detected again around its box; False when one is gone."""
        start = time.perf_counter()
        try:
            for track in self.tracks:
                found = self.detector.refine(frame, track.box)
                self.redetections += 1
                if found is None:
                    return False
                self._found(track, found)
            self._since_detect = 0
            return True
        finally:
            self.detect_s += time.perf_counter() - start

    # ------------------------------------------------------------------ public API

    def update(self, frame: np.ndarray) -> list[Track]:
        """The faces of the next frame, largest first."""
        start, detect_before = time.perf_counter(), self.detect_s
        grey = self._flow_image(frame)
        previous, self._grey = self._grey, grey
        cut = self._scene_cut(grey)
        self.frames += 1
        self._since_search += 1
        self._since_detect += 1
        o = self.options
        search = (
            not self.tracks
            or cut
            or previous is None
            or previous.shape != grey.shape
            or self._since_search >= o.search_every
        )
        if not search and self._since_detect >= o.detect_every:
            search = not self._redetect(frame)  # a face gone: look for all of them again
        elif not search:
            for track in self.tracks:
                track.detected = False
                if not self._follow(track, previous, grey):
                    search = True  # one face lost: look again for all of them
                    break
        if search:
            self._search(frame)
        for track in self.tracks:
            track.age += 1
            if not track.detected:
                track.since_detection += 1
        self.tracks.sort(key=lambda t: t.box[2] * t.box[3], reverse=True)
        self.follow_s += time.perf_counter() - start - (self.detect_s - detect_before)
        return list(self.tracks)
