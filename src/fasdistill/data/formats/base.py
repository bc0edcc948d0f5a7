"""The dataset-adapter contract: sample records, protocols and face annotations.

An adapter turns a dataset root, laid out as the dataset's publishers ship it,
into :class:`Sample` records (one per video or image) and splits them by a named
protocol into train/dev/test. Protocols are data: an adapter reads the official
list files when the dataset ships them, and otherwise applies the published
rule (documented per adapter). Everything downstream (``fasdistill prepare``,
training, evaluation) sees only samples, never dataset-specific code.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from fasdistill.errors import InputError

Box = tuple[float, float, float, float]  # x, y, w, h in pixels of the decoded frame
SPLITS = ("train", "dev", "test")
VIDEO_EXTENSIONS = frozenset({".avi", ".mov", ".mp4", ".mkv", ".m4v", ".wmv", ".webm"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Sensor modalities a sample may carry. "rgb" is the colour camera (``Sample.path``);
# the others are registered to it, frame for frame, and stored as 8-bit single-channel
# images: "depth" (nearer = brighter, 0 = no measurement), "ir" (near-infrared).
MODALITIES = ("rgb", "depth", "ir")


class ProtocolError(InputError):
    """A protocol cannot be built: files or folders it needs are missing."""

    def __init__(self, dataset: str, protocol: str, root: Path, missing: Iterable[str]) -> None:
        self.missing = sorted(set(missing))
        shown = "\n  ".join(self.missing[:20])
        more = f"\n  ... and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        super().__init__(
            f"{dataset} protocol {protocol!r} under {root}: {len(self.missing)} required "
            f"file(s) or folder(s) missing:\n  {shown}{more}"
        )


@dataclass(frozen=True)
class Sample:
    """One video or image of a dataset, with everything a protocol or a crop needs."""

    sample_id: str  # unique within the dataset (also the video id of its frames)
    path: str  # absolute path of the video or image file
    media: str  # "video" | "image"
    label: str  # "bonafide" | "attack"
    pai: str  # attack species ("" for bona fide)
    subject: str
    session: str = ""
    device: str = ""
    domain: str = ""  # dataset or capture domain
    split: str = ""  # train | dev | test, set by a protocol
    frame_limit: int | None = None  # use only the first N frames (e.g. SiW protocol 1 training)
    # Extra modalities registered to ``path``: (name, absolute path) pairs, names from
    # MODALITIES other than "rgb"; each file holds the same frames as ``path``.
    modalities: tuple[tuple[str, str], ...] = ()

    def with_split(self, split: str) -> Sample:
        return replace(self, split=split)

    def modality_path(self, name: str) -> str | None:
        """The file of modality ``name`` ("rgb" is ``path``), None if the sample lacks it."""
        if name == "rgb":
            return self.path
        return dict(self.modalities).get(name)


def media_kind(path: str | os.PathLike[str]) -> str | None:
    """'video', 'image' or None from a file name's extension."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def carve_dev(subjects: Iterable[str], every: int = 5) -> set[str]:
    """Deterministic dev subjects for datasets without an official dev split.

    Every ``every``-th subject of the sorted training subjects (the 1st, 6th,
    11th, ...) becomes dev, so dev is about 20 % of train and never overlaps it.
    """
    ordered = sorted(set(subjects), key=_natural_key)
    return {s for i, s in enumerate(ordered) if i % every == 0}


def _natural_key(text: str) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def box_from_eyes(right_eye: tuple[float, float], left_eye: tuple[float, float]) -> Box:
    """A face box from the two eye centres (image coordinates).

    Uses the usual proportions of a frontal face: width 2.2 and height 2.6 times
    the inter-ocular distance, the eyes 40 % down from the box top.
    """
    (rx, ry), (lx, ly) = right_eye, left_eye
    d = max(((lx - rx) ** 2 + (ly - ry) ** 2) ** 0.5, 1.0)
    cx, cy = (rx + lx) / 2.0, (ry + ly) / 2.0
    w, h = 2.2 * d, 2.6 * d
    return cx - w / 2.0, cy - 0.4 * h, w, h


class DatasetAdapter(abc.ABC):
    """Base class of every dataset adapter (one per public layout)."""

    name: ClassVar[str]
    protocols: ClassVar[tuple[str, ...]]
    default_protocol: ClassVar[str]
    description: ClassVar[str] = ""
    # The modalities its samples can carry (multi-modal sets list depth and ir too).
    modalities: ClassVar[tuple[str, ...]] = ("rgb",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Files under the root that follow none of the dataset's naming rules, relative
        # to the root; filled by samples() so preparation can report them.
        self.skipped: list[str] = []
        if not self.root.is_dir():
            raise InputError(f"{self.name}: dataset root {self.root} is not a directory")

    @abc.abstractmethod
    def samples(self) -> list[Sample]:
        """Every usable sample under the root, without a split (enrolment videos excluded)."""

    @abc.abstractmethod
    def protocol(self, name: str) -> list[Sample]:
        """The samples of protocol ``name``, each with its split set; raises ProtocolError."""

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Face boxes the dataset ships for ``sample``, by frame index (0 for images).

        None when the dataset has no annotation for it, so a detector must run.
        """
        return None

    def annotation_frame_size(self, sample: Sample) -> tuple[int, int] | None:
        """(width, height) of the frames :meth:`face_boxes` refers to, where the dataset fixes it.

        ``prepare`` uses a shipped box only on a decoded frame of this size (None: any).
        """
        return None

    def read_frames(
        self, sample: Sample, modality: str, count: int | None, every: int | None
    ) -> tuple[list[tuple[int, np.ndarray]], list[int]]:
        """Decoded frames of ``sample``'s ``modality`` as (frame index, BGR image) pairs,
        plus the indices that could not be decoded.

        The default reads the modality's file as an image (index 0) or a video sampled
        by ``count``/``every`` (see :func:`fasdistill.data.video.read_frames`).
        Adapters whose media are not plain files (a folder of frames, an HDF5
        recording) override it. Raises InputError (FramesTooLarge for media over the
        memory bound) when the media cannot be read at all; a single-channel modality comes back as
        3-channel BGR like any image.
        """
        from fasdistill.data.imageio import read_image
        from fasdistill.data.video import FramesTooLarge, read_frames

        path = sample.modality_path(modality)
        if path is None:
            raise InputError(f"{sample.sample_id}: no {modality} file")
        if sample.media == "image":
            # Header first: a decompression bomb is refused before any pixel is decoded.
            read = read_image(path)
            if read.status == "image_too_large":
                raise FramesTooLarge(read.detail or str(path))
            if read.image is None:
                raise InputError(f"{path}: cannot read the image ({read.status})")
            return [(0, read.image)], []
        return read_frames(path, count=count, every=every, limit=sample.frame_limit)

    def data_roots(self) -> list[Path]:
        """The folders this adapter reads (one, except for composite adapters)."""
        return [self.root]

    def check_protocol_name(self, name: str) -> str:
        if name not in self.protocols:
            raise InputError(
                f"{self.name}: unknown protocol {name!r}; choose one of {', '.join(self.protocols)}"
            )
        return name

    def require(self, protocol: str, paths: Iterable[Path]) -> None:
        """Raise ProtocolError listing every path in ``paths`` that does not exist."""
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ProtocolError(self.name, protocol, self.root, missing)


def split_counts(samples: Iterable[Sample]) -> dict[str, dict[str, int]]:
    """{split: {'bonafide': n, '<species>': n, ...}}: the numbers docs and tests compare."""
    counts: dict[str, dict[str, int]] = {}
    for s in samples:
        per = counts.setdefault(s.split, {})
        key = s.pai or "bonafide"
        per[key] = per.get(key, 0) + 1
    return counts


def list_files(root: Path, folder: str) -> list[tuple[tuple[str, ...], str]]:
    """(path parts from ``root``, absolute path) of each non-hidden file under ``root/folder``.

    Sorted by parts. Follows symlinked folders (datasets are often assembled from
    links) but visits each real folder once. Plain ``os.walk`` strings, not Path
    objects: protocols rescan thousands of files.
    """
    out: list[tuple[tuple[str, ...], str]] = []
    top = root.absolute()
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(top / folder, followlinks=True):
        st = Path(dirpath).stat()
        if (st.st_dev, st.st_ino) in visited:
            dirnames.clear()  # a symlink loop or a second link to a folder already listed
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        prefix = Path(dirpath).relative_to(top).parts
        out.extend(((*prefix, f), f"{dirpath}{os.sep}{f}") for f in filenames if f[0] != ".")
    return sorted(out)


def split_ext(name: str) -> tuple[str, str]:
    """(stem, extension) of a file name, like ``Path.stem`` and ``Path.suffix``."""
    dot = name.rfind(".")
    return (name[:dot], name[dot:]) if dot > 0 else (name, "")
