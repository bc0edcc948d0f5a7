"""CelebA-Spoof (Zhang et al., ECCV 2020): 625k images, labels in JSON, boxes per image.

Layout::

    ROOT/Data/train|test/<id>/live|spoof/<name>.jpg|png
    ROOT/Data/train|test/<id>/live|spoof/<name>_BB.txt      x y w h score (224x224 frame)
    ROOT/metas/intra_test/train_label.json | test_label.json

A label file maps each image's path relative to ROOT to 44 integers: 0-39 face
attributes, 40 the spoof type (0 live, 1..10 the species in :data:`SPECIES`),
41 illumination, 42 environment, 43 live (0) or spoof (1). The labels are the
source of truth, checked against each other and against the live/spoof folder.

The published boxes are for the image resized to 224x224; :meth:`face_boxes`
scales them to the real size, which it reads from the JPEG or PNG header (no
decoding), as the dataset's own loader does after ``cv2.imread``.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import BinaryIO, ClassVar

from fasdistill.data.formats.base import (
    Box,
    DatasetAdapter,
    ProtocolError,
    Sample,
    carve_dev,
    media_kind,
)
from fasdistill.errors import InputError

SPECIES = (
    "photo",
    "poster",
    "A4",
    "face_mask",
    "upper_body_mask",
    "region_mask",
    "pc",
    "pad",
    "phone",
    "3d_mask",
)  # spoof type k (1..10) is SPECIES[k - 1]
LABEL_FILES = {
    "train": "metas/intra_test/train_label.json",
    "test": "metas/intra_test/test_label.json",
}
SPOOF_TYPE, LIVENESS = 40, 43  # indices in a label list
BOX_FRAME = 224.0  # the published boxes are in a 224x224 frame
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # JPEG start-of-frame


class CelebASpoof(DatasetAdapter):
    """CelebA-Spoof images with the official intra-dataset train/test lists."""

    name: ClassVar[str] = "celeba-spoof"
    protocols: ClassVar[tuple[str, ...]] = ("intra",)
    default_protocol: ClassVar[str] = "intra"
    description: ClassVar[str] = "CelebA-Spoof: 10,177 subjects, 625k images, 10 attack species"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._parts: dict[str, list[Sample]] | None = None

    def samples(self) -> list[Sample]:
        """Every image listed in the two label files (ProtocolError if any is missing)."""
        parts = self._load()
        return sorted(parts["train"] + parts["test"], key=lambda s: s.sample_id)

    def protocol(self, name: str) -> list[Sample]:
        """``intra``: train list (dev = carved subjects of it) and test list."""
        self.check_protocol_name(name)
        parts = self._load(name)
        dev_subjects = carve_dev(s.subject for s in parts["train"])
        out = [
            s.with_split("dev" if s.subject in dev_subjects else "train") for s in parts["train"]
        ]
        return out + [s.with_split("test") for s in parts["test"]]

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """The ``<name>_BB.txt`` box scaled from 224x224 to the image's size; None if absent."""
        image = Path(sample.path)
        bb_path = image.with_name(image.stem + "_BB.txt")
        if not bb_path.is_file():
            return None
        fields = bb_path.read_text().split("\n", 1)[0].split()
        problem = f"{bb_path}: first line must be 'x y w h score' with w, h > 0, got {fields}"
        try:
            x, y, w, h = (float(v) for v in fields[:4])
        except ValueError:
            raise InputError(problem) from None
        if w <= 0 or h <= 0:
            raise InputError(problem)
        width, height = image_size(image)
        sx, sy = width / BOX_FRAME, height / BOX_FRAME
        return {0: (x * sx, y * sy, w * sx, h * sy)}

    # ------------------------------------------------------------------ loading

    def _load(self, protocol: str = "intra") -> dict[str, list[Sample]]:
        """Samples per label file, checked against each other and against the disk."""
        if self._parts is not None:
            return self._parts
        self.require(protocol, [self.root / rel for rel in (*LABEL_FILES.values(), "Data")])
        parts: dict[str, list[Sample]] = {}
        seen: set[str] = set()
        for part, rel in LABEL_FILES.items():
            labels = _read_labels(self.root / rel)
            parts[part] = [self._sample(key, value, rel) for key, value in sorted(labels.items())]
            twice = seen.intersection(labels)
            if twice:
                raise InputError(
                    f"{self.name}: {rel} lists {min(twice)!r} (and {len(twice) - 1} more), "
                    "already in another label file"
                )
            seen.update(labels)
        on_disk = self._scan()
        missing = sorted(seen - on_disk)
        if missing:
            raise ProtocolError(
                self.name, protocol, self.root, [str(self.root / k) for k in missing]
            )
        annotations = {k.rsplit(".", 1)[0] + "_BB.txt" for k in seen}
        self.skipped = sorted(on_disk - seen - annotations)
        self._parts = parts
        return parts

    def _scan(self) -> set[str]:
        """Every file under Data/, as a path relative to the root."""
        found = set()
        for dirpath, _, filenames in os.walk(self.root / "Data"):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            found.update(f"{rel_dir}/{name}" for name in filenames)
        return found

    def _sample(self, key: str, value: object, label_file: str) -> Sample:
        """The sample of one label entry; InputError naming the key when it is inconsistent."""
        parts = key.split("/")
        if len(parts) != 5 or parts[0] != "Data" or media_kind(key) != "image":
            raise InputError(
                f"{self.name}: {label_file}: key {key!r} is not Data/<part>/<id>/live|spoof/<image>"
            )
        if (
            not isinstance(value, list)
            or len(value) <= LIVENESS
            or not all(isinstance(v, int) for v in (value[SPOOF_TYPE], value[LIVENESS]))
        ):
            raise InputError(
                f"{self.name}: {label_file}: {key!r} must map to a list of 44 integers"
            )
        spoof_type, liveness = value[SPOOF_TYPE], value[LIVENESS]
        folder = parts[3]
        if (
            not 0 <= spoof_type <= len(SPECIES)
            or liveness not in (0, 1)
            or (spoof_type == 0) != (liveness == 0)
            or folder != ("live" if liveness == 0 else "spoof")
        ):
            raise InputError(
                f"{self.name}: {label_file}: {key!r} contradicts itself: spoof type "
                f"{spoof_type} (index 40), live/spoof label {liveness} (index 43), "
                f"folder {folder!r}"
            )
        return Sample(
            sample_id=key.rsplit(".", 1)[0],
            path=str((self.root / key).absolute()),
            media="image",
            label="bonafide" if liveness == 0 else "attack",
            pai="" if spoof_type == 0 else SPECIES[spoof_type - 1],
            subject=parts[2],
            domain=self.name,
        )


def _read_labels(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable label file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping image paths to label lists")
    return data


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of a JPEG or PNG from its header; other formats via OpenCV."""
    try:
        with path.open("rb") as handle:
            size = _png_size(handle) or _jpeg_size(handle)
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image header ({exc})") from None
    if size is not None:
        return size
    from fasdistill.data.imageio import declared_size  # other formats: header only, no decode

    try:
        size = declared_size(path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image ({exc})") from None
    if size is None:
        raise InputError(f"{path}: not a readable image (needed to scale its face box)")
    return size


def _png_size(handle: BinaryIO) -> tuple[int, int] | None:
    handle.seek(0)
    head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def _jpeg_size(handle: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG segments up to the first start-of-frame marker."""
    handle.seek(0)
    if handle.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = handle.read(1)
        while byte and byte != b"\xff":  # tolerate junk between segments
            byte = handle.read(1)
        while byte == b"\xff":  # fill bytes
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker in (0xD9, 0xDA):  # end of image or scan data before any frame header
            return None
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if marker in _SOF_MARKERS:
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            _, height, width = struct.unpack(">BHH", frame)
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)
