"""Face detectors for crop preparation (when a dataset ships no face boxes) and prediction.

Three back-ends behind one interface, :class:`FaceDetector`:

* ``blazeface`` (default): MediaPipe's BlazeFace short-range CNN, converted to
  ONNX and shipped inside fasdistill (Apache-2.0, ``fasdistill/data/weights/NOTICE``),
  run by ONNX Runtime when it is installed and by OpenCV's own DNN module
  otherwise: nothing more to install, so it works wherever OpenCV's wheels do
  (Linux, macOS, Windows; x86-64 and ARM; CPython 3.10-3.13). Six landmarks;
  finds faces of about 20 px and more at the network's input, which is scaled
  from the smallest face wanted (:meth:`FaceDetector.detect`'s ``min_face``).
* ``yunet``: the libfacedetection YuNet CNN from the ``yuface`` wheel
  (BSD-3, weights compiled into the wheel, nothing downloaded at run time).
  Gives scores in [0, 1] and five landmarks, and finds turned, tilted and
  small faces (about 12 px at its input). Install with
  ``pip install 'fasdistill[detect]'``; yuface 2023.5.1 has wheels only for
  CPython <= 3.11 on Linux x86-64 and Windows x64 (no macOS, no ARM, no
  source distribution).
* ``haar``: OpenCV's frontal-face Haar cascade, always available with
  ``opencv-python-headless<5``. Upright frontal faces only; a fallback.

Detectors are cheap to construct and picklable: the underlying model is built
on first use and dropped when pickled, so each worker process rebuilds its own.
yuface runs on GNU OpenMP and is loaded with one thread (see
:func:`_import_yuface`); with more, a child ``fork``-ed after YuNet ran in the
parent hangs on its first detection, so worker pools should use ``spawn``.

yuface 2023.5.1's ``detect`` leaks: its binding allocates libfacedetection's
36,864-byte result buffer on every call and never frees it (about 36 MB per
1,000 detections). YuNet therefore calls the library's own entry point,
``facedetect_cnn``, with a result buffer that Python owns and frees; the
detections are the binding's, number for number (:class:`_YuNetCall`).
"""

from __future__ import annotations

import abc
import ctypes
import functools
import importlib
import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
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
    all the way, at a fraction of its cost when the factor is not whole (a 504 px
    square to 128 px: 1.2 ms -> 0.25 ms). The few pixels past the last whole block
    (fewer than ``factor``) are replaced by the edge's, so every pixel keeps its
    place: (x, y) maps to (x, y) times size / shape either way. Enlarging is bilinear.
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


class HaarDetector(FaceDetector):
    """OpenCV's Viola-Jones frontal-face cascade on the histogram-equalised grey image.

    The score is a proxy, not a probability: the number of overlapping raw
    windows merged into the face (``numDetections`` of ``detectMultiScale2``),
    squashed as ``n / (n + 10)``, so 10 neighbours score 0.5. It ranks faces
    within an image; it is not comparable with YuNet's scores.
    """

    name: ClassVar[str] = "haar"
    cascade_file: ClassVar[str] = "haarcascade_frontalface_default.xml"
    half_score_neighbours: ClassVar[float] = 10.0

    def __init__(
        self,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_fraction: float = 0.1,
    ) -> None:
        """``min_face_fraction``: smallest face side, as a fraction of the image's shorter side."""
        super().__init__()
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        self.cascade_path = self._find_cascade()

    @classmethod
    def _find_cascade(cls) -> str:
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder) / cls.cascade_file if folder else None
        if path is None or not path.is_file():
            raise InputError(
                f"the haar detector needs OpenCV's {cls.cascade_file}, which this OpenCV "
                f"({cv2.__version__}) does not ship (OpenCV 5 dropped the cascades): "
                "pip install 'opencv-python-headless<5', or use --detector yunet"
            )
        return str(path)

    def _build_model(self) -> cv2.CascadeClassifier:
        cascade = cv2.CascadeClassifier(self.cascade_path)
        if cascade.empty():
            raise InputError(f"OpenCV could not load the Haar cascade {self.cascade_path}")
        return cascade

    def _detect(self, image: np.ndarray, model: Any, min_face: float | None) -> list[Detection]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        grey = cv2.equalizeHist(grey)
        wanted = min(grey.shape) * self.min_face_fraction if min_face is None else min_face
        side = max(24, round(wanted))  # 24: the cascade's window
        boxes, neighbours = model.detectMultiScale2(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        k = self.half_score_neighbours
        return [
            Detection(box=(float(x), float(y), float(w), float(h)), score=float(n) / (float(n) + k))
            for (x, y, w, h), n in zip(boxes, neighbours, strict=True)
        ]


def _import_yuface() -> Any:
    """The ``yuface`` module, loaded with one OpenMP thread unless OMP_NUM_THREADS is set.

    yuface's bundled GNU OpenMP reads OMP_NUM_THREADS once, when it loads. Its
    default, one thread per core, is slower for the small images YuNet sees
    (measured on 2 cores, 224 px: 13 ms with one thread, 23 ms with two, over
    300 ms when OpenCV work runs between detections, as in preparation), and a pool of
    OpenMP threads hangs a child ``fork``-ed after YuNet ran. The variable is
    set only for the import, so nothing else in the process sees it.
    """
    module = sys.modules.get("yuface")
    if module is not None:
        return module
    unset = "OMP_NUM_THREADS" not in os.environ
    if unset:
        os.environ["OMP_NUM_THREADS"] = "1"
    try:
        return importlib.import_module("yuface")
    except ImportError as error:
        raise InputError(
            "the yunet detector needs the yuface package: pip install 'fasdistill[detect]' "
            "(yuface ships wheels for CPython <= 3.11 on Linux x86-64 and Windows only; "
            f"elsewhere use --detector haar); import failed: {error}"
        ) from error
    finally:
        if unset:
            os.environ.pop("OMP_NUM_THREADS", None)


# What fasdistill calls directly: libfacedetection's C++ entry point in the yuface
# wheels it was checked against (ABI, buffer size and result layout are the library's).
_DIRECT_YUFACE_VERSIONS = ("2023.5.1",)
_FACEDETECT_LIBRARY = "libfacedetection.so.v0.0.3"  # the file yuface's extension links
_FACEDETECT_SYMBOL = "_Z14facedetect_cnnPhS_iii"  # int* facedetect_cnn(uchar*, uchar*, int x3)
_RESULT_BUFFER_BYTES = 0x9000  # libfacedetection's DETECT_BUFFER_SIZE, as yuface allocates it
_RESULT_COLUMNS = 16  # int16 per face: confidence %, x, y, w, h, 10 landmark coordinates, unused


class _YuNetCall:
    """``facedetect_cnn`` with a result buffer owned by Python: yuface's result, without its leak.

    yuface 2023.5.1's binding mallocs the 36,864-byte result buffer on every call
    and never frees it. Here each call gets a NumPy buffer that is freed with it
    (one per call, so threads sharing a detector never share a buffer), and the
    rows are copied out exactly as the binding copies them. The library is loaded
    as a ``PyDLL``, so the call holds the GIL as the binding's did.
    """

    def __init__(self, function: Any) -> None:
        self._function = function

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Raw rows (N, 16) int16 of a contiguous BGR uint8 image, as ``yuface.yuface.detect``."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"YuNet needs a BGR uint8 (H, W, 3) image, got {image.shape}")
        if not image.flags.c_contiguous:  # the library reads rows of 3 * width bytes
            raise InputError("YuNet needs a C-contiguous image (np.ascontiguousarray)")
        height, width = image.shape[:2]
        buffer = np.zeros(_RESULT_BUFFER_BYTES, np.uint8)
        self._function(buffer.ctypes.data, image.ctypes.data, width, height, 3 * width)
        count = int(buffer[:4].view(np.int32)[0])
        if not 0 <= count <= (_RESULT_BUFFER_BYTES - 4) // (2 * _RESULT_COLUMNS):
            raise RuntimeError(f"libfacedetection reported {count} faces: not a result buffer")
        rows = np.frombuffer(buffer, np.int16, count * _RESULT_COLUMNS, offset=4)
        return rows.reshape(count, _RESULT_COLUMNS).copy()


def _yunet_call() -> Any:
    """A function image -> raw YuNet rows that does not leak, or yuface's binding if it must.

    The direct call needs the yuface release it was checked against and its
    separate libfacedetection library (Linux wheels); anywhere else yuface's own
    binding runs, with a warning that it leaks about 36 KB per detection.
    """
    module = _import_yuface()
    try:
        version = importlib.metadata.version("yuface")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    library = Path(module.__file__).parent / _FACEDETECT_LIBRARY
    if version in _DIRECT_YUFACE_VERSIONS and library.is_file():
        try:
            function = getattr(ctypes.PyDLL(str(library)), _FACEDETECT_SYMBOL)
        except (OSError, AttributeError):
            function = None
        if function is not None:
            function.restype = ctypes.c_void_p
            function.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3
            return _YuNetCall(function)
    warnings.warn(
        f"yuface {version or '(unknown version)'}: calling its own binding, which in 2023.5.1 "
        "leaked about 36 KB per detection; long runs may grow in memory",
        RuntimeWarning,
        stacklevel=2,
    )
    return module.yuface.detect


class YuNetDetector(FaceDetector):
    """libfacedetection's YuNet CNN via ``yuface``: boxes, scores in [0, 1], five landmarks.

    YuNet's anchors cover faces of about 10 to 300 pixels, so the image is
    resized before detection: down so its longer side is at most ``max_side``
    (large faces otherwise split into many weak boxes), up so its shorter side
    is at least ``min_side`` (small faces otherwise score low or vanish); boxes
    and landmarks are mapped back to the input's pixels. Boxes may reach past
    the image edge for faces the border cuts.
    """

    name: ClassVar[str] = "yunet"
    # Face side (px at YuNet's input) it finds reliably: the astronaut's face is found
    # from 12 px, not at 10 (`benchmarks/detect_photos.py --sizes`); 16 leaves a margin.
    smallest_face: ClassVar[float] = 16.0
    refine_side: ClassVar[int | None] = 160  # faces refined at 80 px

    def __init__(
        self, score_threshold: float = 0.5, min_side: int = 224, max_side: int = 640
    ) -> None:
        super().__init__()
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score_threshold must lie in [0, 1], got {score_threshold}")
        if not 0 < min_side <= max_side:
            raise InputError(f"need 0 < min_side <= max_side, got {min_side} and {max_side}")
        _import_yuface()  # fail at construction, not in the first worker to detect
        self.score_threshold = score_threshold
        self.min_side = min_side
        self.max_side = max_side

    def _build_model(self) -> Any:
        return _yunet_call()  # the weights are compiled in: nothing to load

    def _scale(self, height: int, width: int, min_face: float | None = None) -> float:
        """Resize factor that brings the image into YuNet's comfortable range.

        With ``min_face`` the image is shrunk until such a face is
        :attr:`smallest_face` pixels (never enlarged, never below 32 px a side).
        """
        longer, shorter = max(height, width), min(height, width)
        if min_face is not None:
            wanted = min(1.0, self.smallest_face / min_face, self.max_side / longer)
            return max(wanted, min(1.0, 32 / shorter))
        if longer > self.max_side:
            return self.max_side / longer
        if shorter < self.min_side:
            return min(self.min_side / shorter, self.max_side / longer)
        return 1.0

    def _detect(self, image: np.ndarray, model: Any, min_face: float | None) -> list[Detection]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        scale = self._scale(height, width, min_face)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = resize_for_detection(image, size)
        # yuface reads the raw buffer as if contiguous: a strided view (a crop) is misread.
        image = np.ascontiguousarray(image)
        raw = model(image)  # one row per face: confidence %, x, y, w, h, 5 landmarks, unused
        raw = raw[raw[:, 0] > self.score_threshold * 100]  # as yuface.detect filters them
        detections = []
        for conf, box, marks in zip(raw[:, 0], raw[:, 1:5], raw[:, 5:15], strict=True):
            x, y, w, h = (float(v) / scale for v in box)
            points = tuple(
                (float(marks[i]) / scale, float(marks[i + 1]) / scale) for i in range(0, 10, 2)
            )
            score = min(1.0, float(conf) / 100.0)  # yuface reports an integer percentage
            if w > 0 and h > 0:
                detections.append(Detection(box=(x, y, w, h), score=score, landmarks=points))
        return detections


_WEIGHTS = Path(__file__).parent / "weights"


@functools.lru_cache(maxsize=16)  # one per input size seen: computed once, not per frame
def _anchor_centres(height: int, width: int) -> np.ndarray:
    """BlazeFace short-range anchor centres (N, 2) in input pixels, in its output order.

    MediaPipe's SSD anchors for this model: a stride-8 grid with 2 anchors per
    cell, then a stride-16 grid with 6, row by row; all are of unit size
    ("fixed_anchor_size"), so only their centres matter. The network is fully
    convolutional: an input of any multiple of 16 gives grids of matching size.
    """
    parts = []
    for stride, per_cell in ((8, 2), (16, 6)):
        xs = (np.arange(width // stride) + 0.5) * stride
        ys = (np.arange(height // stride) + 0.5) * stride
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        parts.append(np.repeat(grid, per_cell, axis=0))
    centres = np.concatenate(parts).astype(np.float32)
    centres.setflags(write=False)  # shared by every call with this size
    return centres


class _OnnxNet:
    """An ONNX detector on ONNX Runtime (one thread) if installed, else OpenCV's DNN module.

    Called with an NCHW float32 blob; returns (logits (N,), regressors (N, 16)).
    """

    def __init__(self, path: str) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            self.runtime = "onnxruntime"
            self._run = lambda blob: session.run(["classificators", "regressors"], {"input": blob})
        else:
            net = cv2.dnn.readNetFromONNX(path)
            names = net.getUnconnectedOutLayersNames()
            order = [names.index("classificators"), names.index("regressors")]

            def run(blob: np.ndarray) -> list[np.ndarray]:
                net.setInput(blob)
                outputs = net.forward(names)
                return [outputs[i] for i in order]

            self.runtime = "opencv"
            self._run = run

    def __call__(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, regressors = self._run(blob)
        return logits.reshape(-1), regressors.reshape(-1, 16)


def weighted_nms(
    boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float
) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression: each face is the score-weighted
    mean of the boxes (x, y, w, h) and points overlapping its best box by more than
    ``iou``, with the best box's score. Returns (box, score, points), best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, points = boxes[order], scores[order], points[order]
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    left = np.ones(len(scores), bool)
    faces = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        inter = np.clip(np.minimum(x1[i], x1) - np.maximum(x0[i], x0), 0, None) * np.clip(
            np.minimum(y1[i], y1) - np.maximum(y0[i], y0), 0, None
        )
        group = left & (inter / (areas[i] + areas - inter) > iou)
        group[i] = True
        left &= ~group
        weights = scores[group] / scores[group].sum()
        box = (boxes[group] * weights[:, None]).sum(axis=0)
        marks = (points[group] * weights[:, None, None]).sum(axis=0)
        faces.append((box, float(scores[i]), marks))
    return faces


class BlazeFaceDetector(FaceDetector):
    """MediaPipe BlazeFace (short range): boxes, scores, six landmarks.

    The weights ship inside fasdistill (``weights/blazeface_short_range.onnx``,
    Apache-2.0, see ``weights/NOTICE``). ONNX Runtime runs them at one thread
    when it is installed (about 1.5x faster here), OpenCV's ONNX reader otherwise
    (its threads are process-wide: ``cv2.setNumThreads``); both give the TFLite
    model's outputs to 1e-4 (``tools/blazeface_onnx.py``). The network is fully
    convolutional: the frame is scaled so the smallest face wanted is
    :attr:`smallest_face` pixels (default: a tenth of the shorter side), within
    [``min_input``, ``max_input``] on its longer side, padded with black to a
    multiple of 16, and boxes are mapped back to the input's pixels. Decoding and
    the weighted non-maximum suppression are MediaPipe's.

    ``landmarks`` are six points: the face's right eye, left eye, nose tip, mouth
    centre, right ear tragion, left ear tragion. BlazeFace's box runs from the
    brows to the chin: tighter than YuNet's, so crops cut around it differ, and
    a model is best used with the detector its crops were cut with.
    """

    name: ClassVar[str] = "blazeface"
    weights_file: ClassVar[str] = "blazeface_short_range.onnx"
    # Face side (px at the network's input) it finds reliably: the astronaut's face is
    # found from 16 px, not at 14 (`benchmarks/detect_photos.py --sizes`); 20 leaves a margin.
    smallest_face: ClassVar[float] = 20.0
    refine_side: ClassVar[int | None] = 128  # faces refined at 64 px, as in a selfie
    default_face_fraction: ClassVar[float] = 0.1  # of the shorter side, when min_face is None

    def __init__(
        self,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        min_input: int = 64,
        max_input: int = 640,
    ) -> None:
        super().__init__()
        if not 0.0 < score_threshold < 1.0:
            raise InputError(f"score_threshold must lie in (0, 1), got {score_threshold}")
        if not 0.0 < nms_iou < 1.0:
            raise InputError(f"nms_iou must lie in (0, 1), got {nms_iou}")
        if not 16 <= min_input <= max_input:
            raise InputError(f"need 16 <= min_input <= max_input, got {min_input}, {max_input}")
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.min_input = min_input
        self.max_input = max_input
        self.weights = self._find_weights()

    @classmethod
    def _find_weights(cls) -> str:
        path = _WEIGHTS / cls.weights_file
        if not path.is_file():
            raise InputError(f"the blazeface detector's weights are missing: {path}")
        return str(path)

    def _build_model(self) -> Any:
        return _OnnxNet(self.weights)

    def input_scale(self, height: int, width: int, min_face: float | None) -> float:
        """Resize factor from the frame to the network's input (before padding)."""
        if min_face is None:
            min_face = self.default_face_fraction * min(height, width)
        longer = max(height, width)
        scale = self.smallest_face / min_face
        return min(max(scale, self.min_input / longer), self.max_input / longer)

    def _detect(self, image: np.ndarray, model: Any, min_face: float | None) -> list[Detection]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        scale = self.input_scale(height, width, min_face)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = resize_for_detection(image, size) if scale != 1 else image
        pad_w, pad_h = -size[0] % 16, -size[1] % 16
        if pad_w or pad_h:
            small = cv2.copyMakeBorder(small, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
        blob = cv2.dnn.blobFromImage(small, 1 / 127.5, None, (127.5,) * 3, swapRB=True)
        logits, raw = model(blob)
        keep = logits > np.log(self.score_threshold / (1 - self.score_threshold))
        if not keep.any():
            return []
        centres = _anchor_centres(*small.shape[:2])[keep]
        raw = raw[keep].astype(np.float64)
        scores = 1 / (1 + np.exp(-np.clip(logits[keep].astype(np.float64), -100, 100)))
        # offsets are in input pixels: centre (dx, dy) from the anchor, then w, h, 6 points
        wh = raw[:, 2:4]
        boxes = np.concatenate([centres + raw[:, 0:2] - wh / 2, wh], axis=1) / scale
        points = (raw[:, 4:].reshape(-1, 6, 2) + centres[:, None, :]) / scale
        detections = []
        for box, score, marks in weighted_nms(boxes, scores, points, self.nms_iou):
            if box[2] > 0 and box[3] > 0:
                landmarks = tuple((float(x), float(y)) for x, y in marks)
                detections.append(
                    Detection(box=tuple(float(v) for v in box), score=score, landmarks=landmarks)
                )
        return detections


DETECTORS: dict[str, type[FaceDetector]] = {
    "blazeface": BlazeFaceDetector,
    "haar": HaarDetector,
    "yunet": YuNetDetector,
}
DEFAULT_DETECTOR = "blazeface"


def get_detector(name: str) -> FaceDetector:
    """A detector by name (``blazeface``, ``yunet`` or ``haar``) with default settings.

    Raises InputError for an unknown name, and at once if the detector cannot
    work here (``yuface`` missing, an OpenCV without the Haar cascades or without
    the weights), so a pipeline fails before its workers start.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        choices = ", ".join(sorted(DETECTORS))
        raise InputError(f"unknown face detector {name!r}; choose one of: {choices}") from None
    return cls()
