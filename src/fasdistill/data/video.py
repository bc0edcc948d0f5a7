"""Frame sampling from videos with OpenCV, honouring rotation metadata.

Phones store many videos rotated with a metadata flag (MSU-MFSD's Android clips,
for one); OpenCV's FFmpeg backend applies it when asked, so frames come out
upright. Frame counts reported by containers can be wrong, so reading is
sequential and a short (truncated) video yields what it has.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import cv2
import numpy as np

from fasdistill.data.imageio import MAX_PIXELS, not_regular
from fasdistill.errors import InputError

MAX_FRAME_PIXELS = MAX_PIXELS  # the still-image memory bound applies to frames too


class FramesTooLarge(InputError):
    """A video whose frames declare more pixels than the memory bound allows."""


def open_video(path: str | os.PathLike[str]) -> cv2.VideoCapture:
    """Open a video file for reading with automatic rotation; InputError if unreadable.

    Only a regular file is handed to OpenCV: a named pipe would block it (see
    :func:`~fasdistill.data.imageio.not_regular`).
    """
    problem = not_regular(path)
    if problem:
        raise InputError(f"{path}: {problem}")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"{path}: cannot open the video (missing, unreadable or unknown codec)")
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def frame_count(capture: cv2.VideoCapture) -> int:
    """The container's frame count (may be 0 or wrong; used only to plan sampling)."""
    return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))


def sample_indices(
    n_frames: int, count: int | None = None, every: int | None = None, limit: int | None = None
) -> list[int]:
    """Frame indices to keep: ``count`` spread uniformly, or every ``every``-th frame.

    ``limit`` restricts sampling to the first ``limit`` frames (e.g. SiW protocol 1).
    With neither ``count`` nor ``every`` every frame is kept.
    """
    if count is not None and every is not None:
        raise InputError("give a frame count or a frame step, not both")
    if count is not None and count < 1:
        raise InputError(f"frame count must be >= 1, got {count}")
    if every is not None and every < 1:
        raise InputError(f"frame step must be >= 1, got {every}")
    n = min(n_frames, limit) if limit is not None else n_frames
    if n <= 0:
        return []
    if every is not None:
        return list(range(0, n, every))
    if count is None or count >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, count).round().astype(int).tolist()))


def iter_frames(
    path: str | os.PathLike[str],
    count: int | None = None,
    every: int | None = None,
    limit: int | None = None,
    max_pixels: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Decode the sampled frames of a video one at a time, in order.

    Yields ``(index, BGR frame)`` for every planned index; the frame is None where
    the file could not deliver it (a truncated or damaged video). Only one decoded
    frame is held at a time, so a long video costs no more memory than a short one.
    Frames larger than ``max_pixels`` (default :data:`MAX_FRAME_PIXELS`) raise
    :class:`FramesTooLarge` before any is decoded.
    """
    bound = MAX_FRAME_PIXELS if max_pixels is None else max_pixels
    capture = open_video(path)
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > bound:  # checked before any frame is decoded
            raise FramesTooLarge(f"{path}: frames of {width} x {height} pixels")
        total = frame_count(capture)
        if total == 0:  # container without a usable count: count by decoding
            while capture.grab():
                total += 1
            capture.release()
            capture = open_video(path)
        wanted = sample_indices(total, count, every, limit)
        targets = set(wanted)
        index = 0
        while wanted and index <= wanted[-1]:
            if not capture.grab():
                break
            if index in targets:
                ok, frame = capture.retrieve()
                yield index, frame if ok and frame is not None else None
            index += 1
        for missing in wanted:
            if missing >= index:
                yield missing, None
    finally:
        capture.release()


def read_frames(
    path: str | os.PathLike[str],
    count: int | None = None,
    every: int | None = None,
    limit: int | None = None,
    max_pixels: int | None = None,
) -> tuple[list[tuple[int, np.ndarray]], list[int]]:
    """Decode the sampled frames of a video (:func:`iter_frames`), all at once.

    Returns ``(frames, missing)``: ``(index, BGR frame)`` pairs read, and the
    planned indices the file could not deliver (a truncated or damaged video).
    """
    frames: list[tuple[int, np.ndarray]] = []
    missing: list[int] = []
    for index, frame in iter_frames(path, count, every, limit, max_pixels):
        if frame is None:
            missing.append(index)
        else:
            frames.append((index, frame))
    return frames, missing
