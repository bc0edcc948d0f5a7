"""Face detectors for the crop-preparation stage, when a dataset ships no face boxes.

Two back-ends behind one interface, :class:`FaceDetector`:

* ``yunet`` (default): the libfacedetection YuNet CNN from the ``yuface`` wheel
  (BSD-3, weights compiled into the wheel, nothing downloaded at run time).
  Gives scores in [0, 1] and five landmarks, and finds turned, tilted and
  small faces. Install with ``pip install 'fasdistill[detect]'``; yuface 2023.5.1
  has wheels only for CPython <= 3.11 on Linux x86-64 and Windows x64 (no
  macOS, no ARM, no source distribution).
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

    ``landmarks`` are five (x, y) points when the detector gives them, in
    YuNet's order: the face's right eye (on the image's left when the face is
    upright), its left eye, the nose tip, the right and the left mouth corner.
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

    Subclasses build their model in :meth:`_build_model`; it is cached on first
    use and left out of the pickled state, so detectors cross process borders.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self._model: Any = None

    @abc.abstractmethod
    def _build_model(self) -> Any:
        """Load the underlying model; called once per process, on first use."""

    @abc.abstractmethod
    def _detect(self, image: np.ndarray, model: Any) -> list[Detection]:
        """All faces in a checked grey or BGR uint8 image, in any order."""

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self._build_model()
        return self._model

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """All faces in a BGR (or grey) uint8 image, most confident first (ties: larger)."""
        image = _check_image(image_bgr)
        return sorted(self._detect(image, self.model), key=_rank, reverse=True)

    def best(self, image_bgr: np.ndarray) -> Detection | None:
        """The most confident face (ties: the largest), or None when there is none."""
        found = self.detect(image_bgr)
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

    def _detect(self, image: np.ndarray, model: Any) -> list[Detection]:
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        grey = cv2.equalizeHist(grey)
        side = max(24, round(min(grey.shape) * self.min_face_fraction))  # 24: the cascade's window
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

    def _scale(self, height: int, width: int) -> float:
        """Resize factor that brings the image into YuNet's comfortable range."""
        longer, shorter = max(height, width), min(height, width)
        if longer > self.max_side:
            return self.max_side / longer
        if shorter < self.min_side:
            return min(self.min_side / shorter, self.max_side / longer)
        return 1.0

    def _detect(self, image: np.ndarray, model: Any) -> list[Detection]:
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        height, width = image.shape[:2]
        scale = self._scale(height, width)
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, size, interpolation=interpolation)
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


DETECTORS: dict[str, type[FaceDetector]] = {"haar": HaarDetector, "yunet": YuNetDetector}


def get_detector(name: str) -> FaceDetector:
    """A detector by name (``yunet`` or ``haar``) with default settings; InputError if unknown.

    Raises at once if the detector cannot work here (``yuface`` missing, or an
    OpenCV without the Haar cascades), so a pipeline fails before its workers start.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        choices = ", ".join(sorted(DETECTORS))
        raise InputError(f"unknown face detector {name!r}; choose one of: {choices}") from None
    return cls()
