"""YuNet without yuface's leak: the same detections as its binding, and memory that stays flat."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data as skdata

from fasdistill.data.detect import YuNetDetector
from fasdistill.errors import InputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("yuface") is None, reason="the yunet detector needs yuface"
)


def _images() -> list[np.ndarray]:
    """Real faces (one, two, turned, grey, cut, small), a non-face and noise."""
    grace = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    astronaut = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    base = [
        astronaut,
        grace,
        cv2.cvtColor(skdata.camera(), cv2.COLOR_GRAY2BGR),
        cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR),
        np.hstack([astronaut, cv2.resize(grace, (512, 512))]),
        np.ascontiguousarray(astronaut[:, 200:]),  # a face the edge cuts
        np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8),
    ]
    return base + [cv2.resize(image, (160, 120)) for image in base[:2]]


def _rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        line = next(row for row in status if row.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_detections_are_the_bindings_number_for_number() -> None:
    import yuface

    ours, binding = YuNetDetector(), YuNetDetector()
    binding._model = yuface.yuface.detect  # what 6329bf7 called, through the same wrapper
    faces = 0
    for image in _images():
        contiguous = np.ascontiguousarray(image)
        raw = ours.model(contiguous)
        expected = yuface.yuface.detect(contiguous)
        # Column 15 is never written by the library: the binding returns what its fresh
        # malloc held there, and nothing reads it.
        assert raw.dtype == expected.dtype and np.array_equal(raw[:, :15], expected[:, :15])
        found = ours.detect(image)
        assert found == binding.detect(image)
        faces += len(found)
    assert faces >= 6  # the comparison covered real detections, not only empty results
    with pytest.raises(InputError, match="contiguous"):  # never hand the library a strided view
        ours.model(np.zeros((8, 8, 3), np.uint8)[:, ::2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_stays_flat_over_many_detections() -> None:
    """yuface's binding keeps 36 KB per call: 1,000 calls would add about 36 MB."""
    detector = YuNetDetector(min_side=64, max_side=64)  # small input: fast calls, same leak
    image = cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (64, 64))
    for _ in range(100):
        detector.detect(image)
    before = _rss_mb()
    for _ in range(1000):
        detector.detect(image)
    grown = _rss_mb() - before
    assert grown < 8, f"RSS grew {grown:.1f} MB over 1,000 detections"


def test_other_yuface_releases_fall_back_to_the_binding_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fasdistill.data import detect

    image = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    expected = YuNetDetector().detect(image)
    monkeypatch.setattr(detect, "_DIRECT_YUFACE_VERSIONS", ())
    with pytest.warns(RuntimeWarning, match="36 KB per detection"):
        fallback = YuNetDetector()
        assert fallback.detect(image) == expected
