"""Square context crops and video frame sampling."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from fasdistill.data.crops import square_crop, square_region
from fasdistill.data.video import read_frames, sample_indices
from fasdistill.errors import InputError


def gradient_image(h: int = 100, w: int = 120) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return np.stack([xs * 2 % 256, ys * 2 % 256, (xs + ys) % 256], axis=2).astype(np.uint8)


def test_crop_is_the_scaled_square_around_the_box() -> None:
    image = gradient_image()
    # Box 20x10 centred at (60, 50): scale 2 -> a 40-pixel square from (40, 30).
    assert square_region((50, 45, 20, 10), 2.0, 120, 100) == (40, 30, 40)
    crop = square_crop(image, (50, 45, 20, 10), 2.0, 40)
    assert np.array_equal(crop, image[30:70, 40:80])


def test_crop_shifts_inside_the_image_instead_of_padding() -> None:
    image = gradient_image()
    left, top, side = square_region((0, 0, 20, 20), 2.0, 120, 100)
    assert (left, top, side) == (0, 0, 40)
    crop = square_crop(image, (0, 0, 20, 20), 2.0, 40)
    assert np.array_equal(crop, image[0:40, 0:40])


def test_crop_larger_than_the_image_is_centred_and_padded() -> None:
    image = np.full((20, 20, 3), 200, np.uint8)
    crop = square_crop(image, (5, 5, 10, 10), 4.0, 40)  # a 40-pixel square around a 20-pixel image
    assert crop.shape == (40, 40, 3)
    assert crop[0, 0].tolist() == [0, 0, 0]
    assert crop[20, 20].tolist() == [200, 200, 200]


def test_crop_errors() -> None:
    image = gradient_image()
    with pytest.raises(InputError, match="scale"):
        square_crop(image, (10, 10, 10, 10), 0.0, 32)
    with pytest.raises(InputError, match="no area"):
        square_crop(image, (10, 10, 0, 10), 1.0, 32)
    with pytest.raises(InputError, match="outside"):
        square_crop(image, (500, 500, 10, 10), 1.0, 32)


def test_sample_indices() -> None:
    assert sample_indices(10, count=3) == [0, 4, 9]  # 0, 4.5 -> 4 (banker's rounding), 9
    assert sample_indices(10, every=4) == [0, 4, 8]
    assert sample_indices(100, every=10, limit=30) == [0, 10, 20]
    assert sample_indices(5, count=10) == [0, 1, 2, 3, 4]
    assert sample_indices(0, count=3) == []
    with pytest.raises(InputError, match="not both"):
        sample_indices(10, count=2, every=2)


def write_video(path: Path, n: int, size: int = 32) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10.0, (size, size))
    for i in range(n):
        writer.write(np.full((size, size, 3), (i * 20) % 256, np.uint8))
    writer.release()


def test_read_frames_picks_the_planned_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 10)
    frames, missing = read_frames(path, count=3)
    assert [i for i, _ in frames] == [0, 4, 9] and missing == []
    assert [int(f[0, 0, 0]) for _, f in frames] == [0, 80, 180]  # FFV1 is lossless
    frames, _ = read_frames(path, every=3, limit=7)
    assert [i for i, _ in frames] == [0, 3, 6]


def test_unreadable_video(tmp_path: Path) -> None:
    path = tmp_path / "broken.avi"
    path.write_bytes(b"not a video at all")
    with pytest.raises(InputError, match="cannot open"):
        read_frames(path, count=3)


def test_truncated_video_reports_missing_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 40, size=64)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    try:
        frames, missing = read_frames(cut, count=10)
    except InputError:
        return  # some builds refuse to open a cut container at all: also a clean failure
    assert len(frames) + len(missing) == 10
    assert missing, "half a file cannot deliver the last frames"


def write_rotated_mp4(
    path: Path,
    width: int = 64,
    height: int = 32,
    frames: list[np.ndarray] | None = None,
    degrees: int = 90,
) -> None:
    """An MP4 whose track header says 'display rotated by ``degrees``' (90 or 270), as phones write.

    OpenCV cannot write rotation metadata, so the identity matrix of the track
    header box (tkhd) is replaced by the rotation after writing. Without
    ``frames``, three frames with a white left half.
    """
    if frames is None:
        frame = np.zeros((height, width, 3), np.uint8)
        frame[:, : width // 2] = 255  # left half white
        frames = [frame] * 3
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    # version/flags, creation, modification, track id, reserved, duration, 8 reserved,
    # layer, alternate group, volume, reserved: then the 3x3 matrix (version-0 box).
    matrix_at = tkhd + 4 + 4 * 6 + 8 + 2 * 4
    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    assert data[matrix_at : matrix_at + 36] == identity
    one, minus_one = 0x10000, 0xFFFF0000  # 16.16 fixed point
    b, c = {90: (one, minus_one), 270: (minus_one, one)}[degrees]
    data[matrix_at : matrix_at + 36] = struct.pack(">9I", 0, b, 0, c, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def test_rotation_metadata_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    write_rotated_mp4(path)
    plain = cv2.VideoCapture(str(path))
    plain.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    ok, stored = plain.read()
    plain.release()
    assert ok and stored.shape[:2] == (32, 64)  # as stored: landscape
    frames, missing = read_frames(path, count=2)
    assert not missing
    upright = frames[0][1]
    assert upright.shape[:2] == (64, 32)  # as displayed: portrait
    # The white left half is now on top: rows, not columns, carry the split.
    assert upright[:16].mean() > 200 and upright[-16:].mean() < 50
