"""Square face crops with context: the one preprocessing shared by training and prediction.

FAS models look at the face *and* its surroundings (paper edges, screen bezels,
moiré on the background), so crops take a context ``scale`` times the face box.
The same function cuts crops in ``fasdistill prepare`` and at prediction time,
so a model never sees differently prepared faces in deployment.
"""

from __future__ import annotations

import cv2
import numpy as np

from fasdistill.data.formats.base import Box
from fasdistill.errors import InputError


def square_region(box: Box, scale: float, width: int, height: int) -> tuple[int, int, int]:
    """Top-left corner and side of the square crop around ``box``.

    The side is ``scale`` times the box's longer edge. When the square fits in
    the image it is shifted inside rather than padded (as MiniFASNet-style
    pipelines do), so context comes from real pixels; a square larger than the
    image is centred and padded.
    """
    if scale <= 0:
        raise InputError(f"crop scale must be > 0, got {scale}")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise InputError(f"face box {box} has no area")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"face box {box} lies outside the {width}x{height} image")
    side = max(1, round(scale * max(w, h)))
    cx, cy = x + w / 2.0, y + h / 2.0
    left, top = round(cx - side / 2.0), round(cy - side / 2.0)
    if side <= width:
        left = min(max(left, 0), width - side)
    if side <= height:
        top = min(max(top, 0), height - side)
    return left, top, side


def square_crop(image: np.ndarray, box: Box, scale: float, size: int) -> np.ndarray:
    """Cut the square context crop around ``box`` and resize it to ``size`` x ``size``.

    Pixels outside the image are black. Shrinking uses area averaging (no
    aliasing of moiré or halftone into new patterns); enlarging uses bicubic.
    """
    if size < 8:
        raise InputError(f"crop size must be >= 8 pixels, got {size}")
    height, width = image.shape[:2]
    left, top, side = square_region(box, scale, width, height)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"face box {box} lies outside the {width}x{height} image")
    region = image[y0:y1, x0:x1]
    pad = (y0 - top, top + side - y1, x0 - left, left + side - x1)
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_CONSTANT, value=0)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(region, (size, size), interpolation=interpolation)
