"""Face detectors for crop preparation (when a dataset ships no face boxes) and prediction.

Three back-ends behind one interface, :class:`FaceDetector` (in
:mod:`fasdistill.data.detection`; BlazeFace in :mod:`fasdistill.data.blazeface`):

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

import ctypes
import importlib
import importlib.metadata
import os
import sys
import warnings
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from fasdistill.data.blazeface import BlazeFaceDetector, weighted_nms
from fasdistill.data.detection import (
    Detection,
    FaceDetector,
    Point,
    iou,
    resize_for_detection,
)
from fasdistill.errors import InputError

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "BlazeFaceDetector",
    "Detection",
    "FaceDetector",
    "HaarDetector",
    "Point",
    "YuNetDetector",
    "get_detector",
    "iou",
    "resize_for_detection",
    "weighted_nms",
]


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
