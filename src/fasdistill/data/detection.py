"""What every face detector shares: a :class:`Detection`, the :class:`FaceDetector`
interface with its two-step search-then-refine, and the resizing detectors use.

The detectors themselves are in :mod:`fasdistill.data.detect` (Haar, YuNet, the
registry) and :mod:`fasdistill.data.blazeface`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from fasdistill.data.formats.base import Box
from fasdistill.errors import InputError

Point = tuple[float, float]


@dataclass(frozen=True)
class Detection:
    """One face: box (x, y, w, h in pixels), confidence in (0, 1], optional landmarks.

    ``landmarks`` are (x, y) points when the detector gives them, always starting
    with the face's right eye (on the image's left when the face is upright) and
    its left eye, then the nose tip. YuNet: then the right and the left mouth
    corner (five); BlazeFace: the mouth centre and the right and left ear tragion (six).
    """

    box: Box
    score: float
    landmarks: tuple[Point, ...] | None = None

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def center(self) -> Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)


def _rank(detection: Detection) -> tuple[float, float]:
    """Sort key, larger is better: confidence, then area to break ties."""
    return (detection.score, detection.area)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _scaled(box: Box, scale: float, left: float, top: float) -> Box:
    """A frame box in the coordinates of a square cut at (left, top) and scaled by ``scale``."""
    x, y, w, h = box
    return ((x - left) * scale, (y - top) * scale, w * scale, h * scale)


def resize_for_detection(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height) for a detector's input.

    Shrinking by 2x or more first averages whole blocks of ``factor`` x ``factor``
    pixels (OpenCV's fast path for area averaging by a whole factor), then
    interpolates the rest bilinearly: nearly as free of aliasing as area averaging
    all the way, at a fraction of its cost when the factor is not whole. The few
    pixels past the last whole block (fewer than ``factor``) are replaced by the
    edge's, so every pixel keeps its place: (x, y) maps to (x, y) times size /
    shape either way. Enlarging is bilinear.
    """
    height, width = image.shape[:2]
    factor = int(min(width / size[0], height / size[1]))
    if factor >= 2:
        blocks_w, blocks_h = width // factor, height // factor
        whole = image[: blocks_h * factor, : blocks_w * factor]
        image = cv2.resize(whole, (blocks_w, blocks_h), interpolation=cv2.INTER_AREA)
        shown = (
            min(size[0], round(blocks_w * factor * size[0] / width)),
            min(size[1], round(blocks_h * factor * size[1] / height)),
        )
        image = cv2.resize(image, shown, interpolation=cv2.INTER_LINEAR)
        right, bottom = size[0] - shown[0], size[1] - shown[1]
        if right or bottom:
            image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
        return image
    if (width, height) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _check_image(image: np.ndarray) -> np.ndarray:
    """The image as given if it is a non-empty uint8 grey or BGR array, else InputError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InputError("face detection needs a uint8 numpy image (as cv2.imread returns)")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise InputError(
            f"face detection needs a grey (H, W) or BGR (H, W, 3) image, got shape {image.shape}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"face detection got an empty image of shape {image.shape}")
    return image


class FaceDetector(abc.ABC):
    """A face detector: :meth:`detect` lists faces best first, :meth:`best` picks one.

    Detectors with a ``refine_side`` find faces in two steps: a search of the
    whole frame (at the resolution ``min_face`` allows), then :meth:`refine` of
    each face found, on a square of ``refine_context`` times its side scaled to
    ``refine_side`` pixels. The final box is thus always measured with the face
    at the same size in the detector's input, whatever the frame's resolution or
    the search's: crops cut in ``prepare``, from a still image and from a tracked
    video face come out alike.

    Subclasses build their model in :meth:`_build_model`; it is cached on first
    use and left out of the pickled state, so detectors cross process borders.
    """

    name: ClassVar[str]
    smallest_face: ClassVar[float] = 24.0  # face side (px at the detector's input) it finds
    refine_side: ClassVar[int | None] = None  # None: boxes come from the search alone
    refine_context: ClassVar[float] = 2.0  # refinement square's side over the face box's

    def __init__(self) -> None:
        self._model: Any = None

    @abc.abstractmethod
    def _build_model(self) -> Any:
        """Load the underlying model; called once per process, on first use."""

    @abc.abstractmethod
    def _detect(self, image: np.ndarray, model: Any, min_face: float | None) -> list[Detection]:
        """All faces in a checked grey or BGR uint8 image, in any order.

        ``min_face``: the smallest face side (pixels of ``image``) the caller needs
        found, or None for the detector's default; a detector that can runs at
        the lowest resolution that still shows such a face, and may find smaller ones.
        """

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._build_model()
        return self._model

    def detect(self, image_bgr: np.ndarray, min_face: float | None = None) -> list[Detection]:
        """All faces in a BGR (or grey) uint8 image, most confident first (ties: larger).

        ``min_face``: the smallest face side in pixels that must be found (None:
        the detector's default). Detection then runs on a frame scaled down as
        far as that allows; boxes are in the input's pixels.
        """
        image = _check_image(image_bgr)
        if min_face is not None and not min_face > 0:
            raise InputError(f"min_face must be > 0 pixels, got {min_face}")
        found = self._detect(image, self.model, min_face)
        if self.refine_side is not None:
            refined: list[Detection] = []
            for detection in sorted(found, key=_rank, reverse=True):
                better = self._refine(image, detection.box)
                # a face the closer look does not confirm is dropped; two searches'
                # boxes that refine to one face count once
                if better is not None and all(iou(better.box, r.box) < 0.5 for r in refined):
                    refined.append(better)
            found = refined
        return sorted(found, key=_rank, reverse=True)

    def refine(self, image_bgr: np.ndarray, box: Box) -> Detection | None:
        """The face near ``box`` detected again at the reference size, or None if it is gone.

        Detectors without a ``refine_side`` return None.
        """
        return None if self.refine_side is None else self._refine(_check_image(image_bgr), box)

    def _refine(self, image: np.ndarray, box: Box) -> Detection | None:
        side_wanted = self.refine_side
        assert side_wanted is not None
        x, y, w, h = box
        if not (w > 0 and h > 0):
            return None
        height, width = image.shape[:2]
        side = max(8, round(self.refine_context * max(w, h)))
        left = round(x + w / 2 - side / 2)
        top = round(y + h / 2 - side / 2)
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + side, width), min(top + side, height)
        if x1 <= x0 or y1 <= y0:
            return None
        region = image[y0:y1, x0:x1]
        pad = (y0 - top, top + side - y1, x0 - left, left + side - x1)
        if any(pad):
            region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_CONSTANT, value=0)
        scale = side_wanted / side
        region = resize_for_detection(region, (side_wanted, side_wanted))
        found = self._detect(np.ascontiguousarray(region), self.model, self.smallest_face)
        if not found:
            return None
        # the face the box pointed at: the one nearest the square's centre
        centre = side_wanted / 2
        chosen = min(found, key=lambda d: (d.center[0] - centre) ** 2 + (d.center[1] - centre) ** 2)
        if iou(chosen.box, _scaled(box, scale, left, top)) < 0.2:
            return None
        bx, by, bw, bh = chosen.box
        landmarks = None
        if chosen.landmarks is not None:
            landmarks = tuple((px / scale + left, py / scale + top) for px, py in chosen.landmarks)
        return Detection(
            box=(bx / scale + left, by / scale + top, bw / scale, bh / scale),
            score=chosen.score,
            landmarks=landmarks,
        )

    def best(self, image_bgr: np.ndarray, min_face: float | None = None) -> Detection | None:
        """The most confident face (ties: the largest), or None when there is none."""
        found = self.detect(image_bgr, min_face)
        return found[0] if found else None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = None  # OpenCV and extension objects do not pickle: rebuild per process
        return state

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"
