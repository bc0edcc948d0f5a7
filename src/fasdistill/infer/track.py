"""Face tracking between detections: one track per face, detection only when it is needed.

A detector costs milliseconds per frame; following a face that is already
found costs a fraction of one. :class:`FaceTracker` runs the detector on the
first frame, every ``detect_every`` frames after, and at once whenever a track
is lost or the scene cuts; in between, each face's box follows the face by
sparse optical flow (median flow: pyramidal Lucas-Kanade on a grid of points
inside the box, forward and backward, keeping the points that come back to
where they started; the box moves by their median shift and scales by the
median change of their pairwise distances).

A track is lost when too few points survive the forward-backward check, when
its box jumps more than ``max_jump`` of its side in one frame or changes size
by more than ``max_zoom``, or when it leaves the frame. A scene cut is a mean
absolute difference of more than ``scene_cut`` grey levels between successive
32 x 24 thumbnails. At each detection, detections continue the track they
overlap most (IoU >= ``match_iou``; the box is replaced by the detection's, so
flow drift never outlives ``detect_every`` frames), new faces start new tracks
and tracks without a detection end.

Flow runs on a grey copy of the frame shrunk by the whole factor that brings
the smallest face wanted nearest above ``flow_face`` pixels: the cost hardly
grows with the camera's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import cv2
import numpy as np

from fasdistill.data.detect import Detection, FaceDetector
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

    detect_every: int = 10  # frames between detections; 1: detect on every frame
    grid: int = 8  # flow points per box side (grid x grid points)
    max_fb_error: float = 1.0  # forward-backward error (px at flow scale) a kept point may have
    min_points: float = 0.4  # share of the grid that must survive the checks, else lost
    max_jump: float = 0.3  # box centre shift per frame, as a share of the box side, else lost
    max_zoom: float = 1.2  # box size change per frame (and its inverse), else lost
    scene_cut: float = 30.0  # mean |difference| of grey thumbnails (0-255) that forces detection
    match_iou: float = 0.3  # a detection continues the track it overlaps this much
    flow_face: float = 40.0  # the smallest face wanted, in pixels of the flow image

    def validate(self) -> None:
        if isinstance(self.detect_every, bool) or not isinstance(self.detect_every, int):
            raise InputError(f"detect_every must be an integer, got {self.detect_every!r}")
        if self.detect_every < 1:
            raise InputError(f"detect_every must be >= 1, got {self.detect_every}")
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


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


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
        self.detections = 0  # detector calls so far
        self.frames = 0
        self._ids = count()
        self._grey: np.ndarray | None = None
        self._thumb: np.ndarray | None = None
        self._scale = 1.0
        self._step = 1
        self._since = 0  # frames since the last detection

    def reset(self) -> None:
        """Forget every track (a new stream)."""
        self.tracks = []
        self._grey = self._thumb = None
        self._since = 0

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

    def _follow(self, track: Track, previous: np.ndarray, grey: np.ndarray) -> bool:
        """Move ``track`` by median flow from ``previous`` to ``grey``; False when lost."""
        o, s = self.options, self._scale
        x, y, w, h = (v * s for v in track.box)
        # a grid over the inner 80 % of the box (its edge holds background)
        xs = x + w * np.linspace(0.1, 0.9, o.grid)
        ys = y + h * np.linspace(0.1, 0.9, o.grid)
        points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 1, 2).astype(np.float32)
        ahead, ok_ahead, _ = cv2.calcOpticalFlowPyrLK(previous, grey, points, None, **_LK)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(grey, previous, ahead, None, **_LK)
        error = np.linalg.norm((back - points).reshape(-1, 2), axis=1)
        good = (ok_ahead.ravel() == 1) & (ok_back.ravel() == 1) & (error <= o.max_fb_error)
        if good.sum() < max(3, o.min_points * len(points)):
            return False
        start, end = points.reshape(-1, 2)[good], ahead.reshape(-1, 2)[good]
        shift = np.median(end - start, axis=0)
        i, j = np.triu_indices(len(start), k=1)
        before = np.linalg.norm(start[i] - start[j], axis=1)
        after = np.linalg.norm(end[i] - end[j], axis=1)
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
        track.detected = False
        return True

    def _detect(self, frame: np.ndarray) -> None:
        found: list[Detection] = self.detector.detect(frame, self.min_face)
        self.detections += 1
        self._since = 0
        matched = match(
            [t.box for t in self.tracks], [d.box for d in found], self.options.match_iou
        )
        kept = []
        for i, track in enumerate(self.tracks):
            if i in matched:
                d = found[matched[i]]
                track.box, track.score, track.landmarks = d.box, d.score, d.landmarks
                track.detected, track.since_detection = True, 0
                kept.append(track)
        taken = set(matched.values())
        for j, d in enumerate(found):
            if j not in taken:
                kept.append(Track(next(self._ids), d.box, d.score, landmarks=d.landmarks))
        self.tracks = kept

    # ------------------------------------------------------------------ public API

    def update(self, frame: np.ndarray) -> list[Track]:
        """The faces of the next frame, largest first."""
        self._step = max(1, int(self.min_face // self.options.flow_face))
        self._scale = 1.0 / self._step
        grey = self._flow_image(frame)
        previous, self._grey = self._grey, grey
        cut = self._scene_cut(grey)
        self.frames += 1
        self._since += 1
        due = (
            not self.tracks
            or cut
            or previous is None
            or previous.shape != grey.shape
            or self._since >= self.options.detect_every
        )
        if not due:
            for track in self.tracks:
                if not self._follow(track, previous, grey):
                    due = True  # one face lost: look again for all of them
                    break
        if due:
            self._detect(frame)
        for track in self.tracks:
            track.age += 1
            if not track.detected:
                track.since_detection += 1
        self.tracks.sort(key=lambda t: t.box[2] * t.box[3], reverse=True)
        return list(self.tracks)
