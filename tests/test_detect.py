"""Face detectors on real public-domain photos shipped inside scikit-image and matplotlib."""

from __future__ import annotations

import importlib.util
import os
import pickle
import platform
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data as skdata

from fasdistill.data.detect import (
    DEFAULT_DETECTOR,
    DETECTORS,
    BlazeFaceDetector,
    Detection,
    FaceDetector,
    HaarDetector,
    YuNetDetector,
    get_detector,
    weighted_nms,
)
from fasdistill.errors import InputError

# Face regions (x0, y0, x1, y1) in pixels, hand-checked by drawing them on the photos:
# hairline or hat brim to chin, ear to ear (or ear to nose tip for the turned cameraman).
FACES = {
    "astronaut": (170, 70, 275, 185),  # skimage astronaut (Eileen Collins), 512 x 512
    "camera": (170, 95, 260, 200),  # skimage cameraman, head turned three-quarters, 512 x 512
    "grace_hopper": (150, 130, 375, 335),  # matplotlib sample, 512 x 600
}
ROTATION_DEG = 30.0  # the astronaut turned 30 degrees counter-clockwise: Haar loses her face

# yuface ships wheels for these platforms only (the `detect` extra installs it there):
# elsewhere the YuNet tests skip; where a wheel exists a missing install fails them.
YUFACE_PLATFORM = sys.version_info < (3, 12) and (platform.system(), platform.machine()) in {
    ("Linux", "x86_64"),
    ("Windows", "AMD64"),
}
needs_yuface = pytest.mark.skipif(not YUFACE_PLATFORM, reason="yuface has no wheel here")


def _photos() -> dict[str, np.ndarray]:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    grace = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert grace is not None, path
    return {
        "astronaut": cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR),
        "camera": cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2BGR),
        "grace_hopper": grace,
    }


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return _photos()


def _rotation(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = _rotation(image, degrees)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def _inside(point: tuple[float, float], region: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = region
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1


def _inside_rotated(point: tuple[float, float], region, matrix: np.ndarray) -> bool:
    """Whether a point lies in the quadrilateral a region becomes under an affine map."""
    x0, y0, x1, y1 = region
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], dtype=np.float64)
    quad = (corners @ matrix.T).astype(np.float32)
    return cv2.pointPolygonTest(quad, (float(point[0]), float(point[1])), False) >= 0


def _detector(name: str) -> FaceDetector:
    if name == "yunet" and not YUFACE_PLATFORM:
        pytest.skip("yuface has no wheel here")
    return get_detector(name)


# Haar's frontal cascade does not fire on the cameraman's three-quarter profile:
# that case is tested below as one YuNet finds and Haar misses.
CASES = [
    ("blazeface", "astronaut"),
    ("blazeface", "camera"),
    ("blazeface", "grace_hopper"),
    ("haar", "astronaut"),
    ("haar", "grace_hopper"),
    ("yunet", "astronaut"),
    ("yunet", "camera"),
    ("yunet", "grace_hopper"),
]


@pytest.mark.parametrize(("name", "photo"), CASES)
def test_finds_the_face(name: str, photo: str, photos: dict[str, np.ndarray]) -> None:
    found = _detector(name).best(photos[photo])
    assert found is not None
    assert _inside(found.center, FACES[photo]), found
    assert 0.0 < found.score <= 1.0


@needs_yuface
@pytest.mark.parametrize("photo", sorted(FACES))
def test_yunet_landmarks_sit_on_the_face(photo: str, photos: dict[str, np.ndarray]) -> None:
    found = YuNetDetector().best(photos[photo])
    assert found is not None and found.landmarks is not None
    assert len(found.landmarks) == 5
    assert all(_inside(p, FACES[photo]) for p in found.landmarks), found.landmarks
    eye_left, eye_right, nose, mouth_left, mouth_right = found.landmarks
    assert eye_left[0] < eye_right[0] and mouth_left[0] < mouth_right[0]
    assert max(eye_left[1], eye_right[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


@pytest.mark.parametrize("photo", sorted(FACES))
def test_blazeface_landmarks_sit_on_the_face(photo: str, photos: dict[str, np.ndarray]) -> None:
    found = BlazeFaceDetector().best(photos[photo])
    assert found is not None and found.landmarks is not None
    assert len(found.landmarks) == 6
    eye_right, eye_left, nose, mouth, ear_right, ear_left = found.landmarks
    assert all(_inside(p, FACES[photo]) for p in (eye_right, eye_left, nose, mouth))
    assert eye_right[0] < eye_left[0] and ear_right[0] < ear_left[0]
    assert max(eye_left[1], eye_right[1]) < nose[1] < mouth[1]


def test_blazeface_is_the_default_and_needs_nothing_but_opencv() -> None:
    assert DEFAULT_DETECTOR == "blazeface"
    detector = get_detector(DEFAULT_DETECTOR)
    assert detector.weights.endswith("blazeface_short_range.onnx")
    assert (Path(detector.weights).parent / "NOTICE").is_file()


def test_blazeface_runs_without_onnxruntime_alike(
    photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_ort = BlazeFaceDetector()
    assert with_ort.model.runtime == "onnxruntime"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    without = BlazeFaceDetector()
    assert without.model.runtime == "opencv"
    for photo in photos.values():
        a, b = with_ort.best(photo), without.best(photo)
        assert a is not None and b is not None
        assert a.box == pytest.approx(b.box, abs=0.05) and a.score == pytest.approx(
            b.score, abs=1e-4
        )


@pytest.mark.parametrize("name", ["blazeface", "yunet"])
def test_min_face_shrinks_the_detection_input_and_still_finds_the_face(
    name: str, photos: dict[str, np.ndarray]
) -> None:
    # the astronaut's 105 px face in a 1280 x 960 frame: asking for faces from 100 px
    # lets the detector run on a fifth (BlazeFace) or a sixth (YuNet) of the frame's side
    frame = cv2.copyMakeBorder(photos["astronaut"], 224, 224, 384, 384, cv2.BORDER_REPLICATE)
    detector = _detector(name)
    found = detector.best(frame, min_face=100)
    region = tuple(v + o for v, o in zip(FACES["astronaut"], (384, 224, 384, 224), strict=True))
    assert found is not None and _inside(found.center, region), found
    if name == "blazeface":
        assert detector.input_scale(960, 1280, 100) == pytest.approx(0.2)
    else:
        assert detector._scale(960, 1280, 100) == pytest.approx(0.16)
    with pytest.raises(InputError, match="min_face"):
        detector.detect(frame, min_face=0)


def test_blazeface_input_is_bounded() -> None:
    detector = BlazeFaceDetector(min_input=64, max_input=320)
    assert detector.input_scale(480, 640, 1) == pytest.approx(0.5)  # max_input / longer
    assert detector.input_scale(480, 640, 10_000) == pytest.approx(0.1)  # min_input / longer
    assert detector.input_scale(480, 640, None) == pytest.approx(20 / 48)  # a tenth of 480


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10]], np.float64)
    scores = np.array([0.9, 0.6, 0.7])
    points = np.zeros((3, 6, 2))
    points[1] += 10
    faces = weighted_nms(boxes, scores, points, iou=0.3)
    assert [round(score, 2) for _, score, _ in faces] == [0.9, 0.7]
    assert faces[0][0] == pytest.approx([0.4, 0.4, 10, 10])  # 0.6 / 1.5 of the way to (1, 1)
    assert faces[0][2][0] == pytest.approx([4.0, 4.0])
    assert faces[1][0] == pytest.approx([50, 50, 10, 10])


def test_haar_has_no_landmarks_and_a_bounded_score(photos: dict[str, np.ndarray]) -> None:
    found = HaarDetector().best(photos["astronaut"])
    assert found is not None
    assert found.landmarks is None
    assert isinstance(found.score, float) and 0.0 < found.score < 1.0


@needs_yuface
@pytest.mark.parametrize("case", ["camera profile", "astronaut rotated"])
def test_yunet_finds_a_face_haar_misses(case: str, photos: dict[str, np.ndarray]) -> None:
    astronaut = photos["astronaut"]
    if case == "camera profile":
        image, matrix, region = photos["camera"], np.eye(2, 3), FACES["camera"]
    else:
        image, matrix = _rotate(astronaut, ROTATION_DEG), _rotation(astronaut, ROTATION_DEG)
        region = FACES["astronaut"]
    assert HaarDetector().best(image) is None
    found = YuNetDetector().best(image)
    assert found is not None and _inside_rotated(found.center, region, matrix), found


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_blank_and_noise_give_no_face(name: str) -> None:
    detector = _detector(name)
    rng = np.random.default_rng(0)
    images = [
        np.zeros((240, 320, 3), np.uint8),
        np.full((240, 320, 3), 128, np.uint8),
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 64), dtype=np.uint8),
    ]
    for image in images:
        assert detector.best(image) is None


@needs_yuface
def test_yunet_upscales_small_images(photos: dict[str, np.ndarray]) -> None:
    small = cv2.resize(photos["camera"], (51, 51), interpolation=cv2.INTER_AREA)
    factor = 51 / 512
    region = tuple(v * factor for v in FACES["camera"])
    assert YuNetDetector(min_side=1).best(small) is None  # YuNet alone misses this 8 px face
    found = YuNetDetector().best(small)
    assert found is not None and _inside(found.center, region), found


@needs_yuface
def test_yunet_downscales_large_images(photos: dict[str, np.ndarray]) -> None:
    large = cv2.resize(photos["grace_hopper"], None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    found = YuNetDetector().detect(large)
    assert len(found) == 1  # at full size the 700 px face splits into many weak boxes
    assert _inside(found[0].center, tuple(3 * v for v in FACES["grace_hopper"]))


@needs_yuface
def test_yunet_reads_strided_views_correctly(photos: dict[str, np.ndarray]) -> None:
    # yuface reads the raw buffer as if C-contiguous: on a cropped view it finds nothing.
    crop = photos["astronaut"][:, 100:400]
    flipped = skdata.astronaut()[..., ::-1]  # BGR as a negative-stride view of the RGB photo
    detector = YuNetDetector()
    for view in (crop, flipped):
        assert not view.flags.c_contiguous
        assert detector.detect(view) == detector.detect(np.ascontiguousarray(view))
    found = detector.best(crop)
    assert found is not None and _inside(
        (found.center[0] + 100, found.center[1]), FACES["astronaut"]
    )


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_grey_input_matches_bgr(name: str, photos: dict[str, np.ndarray]) -> None:
    detector = _detector(name)
    grey = skdata.camera()
    assert detector.detect(grey) == detector.detect(photos["camera"])


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((32, 32, 3), np.float32),
        np.zeros((32, 32, 4), np.uint8),
        np.zeros((0, 32, 3), np.uint8),
        [[0, 0], [0, 0]],
    ],
)
def test_bad_images_are_input_errors(image) -> None:
    with pytest.raises(InputError):
        HaarDetector().detect(image)


def test_unknown_detector_lists_choices() -> None:
    with pytest.raises(InputError, match=r"unknown face detector 'mtcnn'.*blazeface, haar, yunet"):
        get_detector("mtcnn")


def test_missing_yuface_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yuface", None)  # makes `import yuface` fail
    with pytest.raises(InputError, match=r"pip install 'fasdistill\[detect\]'"):
        get_detector("yunet")


@needs_yuface
def test_yunet_leaves_omp_num_threads_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delitem(sys.modules, "yuface", raising=False)  # import afresh (the .so stays)
    get_detector("yunet")
    assert "OMP_NUM_THREADS" not in os.environ


def test_missing_cascade_says_to_pin_opencv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(InputError, match=r"opencv-python-headless<5"):
        get_detector("haar")


class _Fixed(FaceDetector):
    """A detector that returns fixed detections, to test the ranking."""

    name = "fixed"

    def __init__(self, found: list[Detection]) -> None:
        super().__init__()
        self.found = found

    def _build_model(self) -> object:
        return object()

    def _detect(self, image: np.ndarray, model: object, min_face: float | None) -> list[Detection]:
        return list(self.found)


def test_best_prefers_confidence_then_area() -> None:
    small = Detection(box=(0, 0, 10, 10), score=0.9)
    large = Detection(box=(0, 0, 20, 20), score=0.9)
    weak = Detection(box=(0, 0, 50, 50), score=0.5)
    image = np.zeros((8, 8, 3), np.uint8)
    detector = _Fixed([weak, small, large])
    assert detector.detect(image) == [large, small, weak]
    assert detector.best(image) == large
    assert _Fixed([]).best(image) is None


def _best_boxes(detector: FaceDetector, images: list[np.ndarray]) -> list[tuple | None]:
    return [None if (d := detector.best(image)) is None else d.box for image in images]


def test_detectors_pickle_and_work_in_worker_processes(photos: dict[str, np.ndarray]) -> None:
    detectors = [_detector("haar"), _detector("blazeface")]
    if importlib.util.find_spec("yuface") is not None:
        detectors.append(_detector("yunet"))
    images = [photos["astronaut"], photos["grace_hopper"]]
    expected = []
    for detector in detectors:
        expected.append(_best_boxes(detector, images))  # builds the model: pickling must drop it
        assert detector._model is not None
        clone = pickle.loads(pickle.dumps(detector))
        assert clone._model is None
        assert _best_boxes(clone, images) == expected[-1]
    # spawn, as fasdistill's pools use: yuface's OpenMP runtime hangs in a fork-ed child
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_best_boxes, detector, images) for detector in detectors]
        assert [f.result(timeout=120) for f in futures] == expected


def test_registry_names_match() -> None:
    assert all(cls.name == name for name, cls in DETECTORS.items())
