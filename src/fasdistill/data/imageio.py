"""Reading untrusted images: a status instead of a crash, and memory bounded by the header.

A PNG can declare 40000 x 40000 pixels in a few megabytes; decoding it would take
4.8 GB, and OpenCV refuses it with an exception. The header is read first (with
Pillow, which does not decode pixels to get the size) and an image declaring more
than ``max_pixels`` is refused as ``image_too_large`` before any pixel is decoded.
Whatever OpenCV can decode becomes an 8-bit BGR image, turned upright by its
EXIF orientation (phone photos): grayscale is expanded, alpha dropped, 16-bit
scaled down. Zero-byte, corrupt, truncated and unknown files
are ``unreadable``. The format is sniffed from the bytes, never from the name.
Only regular files are opened: a named pipe called ``x.jpg`` would block the
reader until something writes to it, and a device may never end, so paths of any
other kind (and broken symbolic links) are ``unreadable`` by their mode alone.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fasdistill.errors import InputError

MAX_PIXELS = 50_000_000  # 50 MP: 150 MB as 8-bit BGR; a 200 MP phone photo must be resized first
MAX_FILE_BYTES = 256 * 2**20  # no still image of 50 MP needs more
VIDEO_SUFFIXES = frozenset({".avi", ".mov", ".mp4", ".m4v", ".mkv", ".webm", ".3gp", ".mpg"})


@dataclass(frozen=True)
class ImageRead:
    """An image (BGR uint8) or the reason there is none."""

    image: np.ndarray | None
    status: str  # "ok" | "unreadable" | "image_too_large"
    detail: str = ""


def not_regular(path: str | os.PathLike[str]) -> str:
    """Why ``path`` must not be opened as a file ('' for a regular file or a missing path).

    Judged by ``os.stat`` alone: a FIFO, socket, device or directory is named for what
    it is, a symbolic link whose target is gone as such.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return "a broken symbolic link" if path.is_symlink() else ""
    if stat.S_ISREG(mode):
        return ""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"{kind}, not a regular file"


class TooManyPixels(InputError):
    """An image whose header declares more pixels than Pillow itself will open."""


def declared_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image header, without decoding pixels; None if unknown.

    Pillow refuses headers above twice its own bound (about 179 M pixels, well
    above ``MAX_PIXELS``): that is :class:`TooManyPixels`.
    """
    import io

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: ours follows
            with Image.open(io.BytesIO(data)) as img:
                return int(img.size[0]), int(img.size[1])
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for unknown data
        return None


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> ImageRead:
    """Decode image bytes to BGR uint8, refusing what would not fit the memory bound."""
    if not data:
        return ImageRead(None, "unreadable", f"{name}: empty file")
    try:
        size = declared_size(data)
    except TooManyPixels as exc:
        return ImageRead(None, "image_too_large", f"{name}: {exc}")
    if size is not None and size[0] * size[1] > max_pixels:
        return ImageRead(
            None,
            "image_too_large",
            f"{name}: declares {size[0]} x {size[1]} pixels (> {max_pixels:,})",
        )
    buffer = np.frombuffer(data, np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)  # 8-bit BGR, EXIF orientation applied
    except cv2.error as exc:  # e.g. a header OpenCV reads and Pillow does not
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "decoder error"
        status = "image_too_large" if "CV_IO_MAX_IMAGE_PIXELS" in str(exc) else "unreadable"
        return ImageRead(None, status, f"{name}: {first}")
    if image is None or image.size == 0:
        return ImageRead(None, "unreadable", f"{name}: not a decodable image")
    if image.shape[0] * image.shape[1] > max_pixels:
        return ImageRead(None, "image_too_large", f"{name}: {image.shape[1]} x {image.shape[0]}")
    return ImageRead(image, "ok")


def read_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> ImageRead:
    """Read an image file safely (see the module docstring); never raises for bad data."""
    path = Path(path)
    problem = not_regular(path)
    if problem:
        return ImageRead(None, "unreadable", f"{path}: {problem}")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return ImageRead(None, "image_too_large", f"{path}: {size:,} bytes on disk")
        data = path.read_bytes()
    except OSError as exc:
        return ImageRead(None, "unreadable", f"{path}: {exc.strerror or exc}")
    return decode_image(data, str(path), max_pixels)


def is_video(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES
