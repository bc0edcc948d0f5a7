"""CASIA-SURF (Zhang et al., CVPR 2019): face images in colour, depth and near-infrared.

Layout of the CVPR 2019 challenge release::

    ROOT/Training/real_part/<subject>/real.rssdk/{color,depth,ir}/<n>.jpg
    ROOT/Training/fake_part/<subject>/<NN>_<cuts>_<shape>.rssdk/{color,depth,ir}/<n>.jpg
    ROOT/Val/<NNNN>/<NNNNNN>-{color,depth,ir}.jpg
    ROOT/Testing/<NNNN>/<NNNNNN>-{color,depth,ir}.jpg
    ROOT/train_list.txt            'Training/.../color/31.jpg Training/.../depth/31.jpg
                                    Training/.../ir/31.jpg 1'   (1 bona fide, 0 attack)
    ROOT/val_private_list.txt      the same for Val/ (older copies: val_label.txt)
    ROOT/test_private_list.txt     the same for Testing/

The release ships the faces already cut out of the frames (background removed), as
images sampled from the videos; each list line is one colour/depth/IR triple and
one :class:`Sample` (``media`` "image", the colour image as ``path``, depth and IR
registered to it). The sample id is the colour path without extension, and as
with every image set it is also the video id: the challenge scores each listed
image on its own. A training id still names its recording (``<subject>/<NN>_...
.rssdk``); Val/ and Testing/ names carry no subject, so ``subject`` is empty there.

All six CASIA-SURF attacks are printed photos with eyes, nose or mouth cut out,
held flat or bent (the ``NN`` of a training folder, 01-06), so ``pai`` is
``print`` for every attack. The split is the list file: 29,266 / 9,608 / 57,710
images in train / val (= dev) / test (the authors' protocol table, and Idiap's
bob.db.casiasurf 1.0.3 tests: 8,942 + 20,324, 2,994 + 6,614, 17,458 + 40,252
bona fide + attack). Two-column lines (``colour label``) are also read, the
depth and IR paths then follow the colour path's naming.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import (
    Box,
    DatasetAdapter,
    ProtocolError,
    Sample,
    list_files,
)
from fasdistill.data.formats.celeba_spoof import image_size
from fasdistill.errors import InputError

FOLDERS = {"train": "Training", "dev": "Val", "test": "Testing"}
# Per split, the list files the releases name, first found wins.
LISTS = {
    "train": ("train_list.txt",),
    "dev": ("val_private_list.txt", "val_label.txt"),
    "test": ("test_private_list.txt",),
}
LABELS = {"1": "bonafide", "0": "attack"}
PROTOCOL = "official"


class CasiaSurf(DatasetAdapter):
    """CASIA-SURF image triples with the official train / val / test lists."""

    name: ClassVar[str] = "casia-surf"
    protocols: ClassVar[tuple[str, ...]] = (PROTOCOL,)
    default_protocol: ClassVar[str] = PROTOCOL
    description: ClassVar[str] = "CASIA-SURF: 1,000 subjects, colour/depth/IR, print attacks"
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "depth", "ir")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._parts: dict[str, list[Sample]] | None = None

    def samples(self) -> list[Sample]:
        """Every triple the three lists name (ProtocolError if a list or a file is missing)."""
        parts = self._load()
        return sorted((s for part in parts.values() for s in part), key=lambda s: s.sample_id)

    def protocol(self, name: str) -> list[Sample]:
        """``official``: train_list, val (dev) and test lists, as listed."""
        self.check_protocol_name(name)
        parts = self._load(name)
        return [s.with_split(split) for split, part in parts.items() for s in part]

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """The whole image: the release ships faces already cropped."""
        width, height = image_size(Path(sample.path))
        return {0: (0.0, 0.0, float(width), float(height))}

    def list_path(self, split: str) -> Path:
        """The list file of ``split`` (the first of its known names that exists)."""
        names = LISTS[split]
        return next(
            (self.root / n for n in names if (self.root / n).is_file()), self.root / names[0]
        )

    # ------------------------------------------------------------------ loading

    def _load(self, protocol: str = PROTOCOL) -> dict[str, list[Sample]]:
        if self._parts is not None:
            return self._parts
        lists = {split: self.list_path(split) for split in FOLDERS}
        self.require(protocol, lists.values())
        on_disk = {
            "/".join(parts)
            for folder in FOLDERS.values()
            if (self.root / folder).is_dir()
            for parts, _ in list_files(self.root, folder)
        }
        parts: dict[str, list[Sample]] = {}
        missing: list[str] = []
        listed: dict[str, str] = {}  # relative file -> "list:line" that names it
        for split, list_path in lists.items():
            parts[split] = []
            for where, paths, label in _read_list(list_path):
                for rel in paths:
                    if rel in listed:
                        raise InputError(
                            f"{self.name}: {where}: {rel} is already listed at {listed[rel]}"
                        )
                    listed[rel] = where
                    if rel not in on_disk:
                        missing.append(f"{rel} (listed in {list_path.name})")
                parts[split].append(self._sample(where, paths, label))
        if missing:
            raise ProtocolError(self.name, protocol, self.root, missing)
        self.skipped = sorted(on_disk - set(listed))
        self._parts = parts
        return parts

    def _sample(self, where: str, paths: tuple[str, str, str], label: str) -> Sample:
        """The sample of one list line; InputError when folder and label disagree."""
        color, depth, ir = paths
        parts = color.split("/")
        subject = ""
        if parts[0] == FOLDERS["train"]:
            kind = parts[1] if len(parts) == 6 else ""
            if kind not in ("real_part", "fake_part"):
                raise InputError(
                    f"{self.name}: {where}: expected Training/real_part|fake_part/<subject>/"
                    f"<recording>/color/<n>.jpg, got {color!r}"
                )
            if (kind == "real_part") != (label == "bonafide"):
                raise InputError(
                    f"{self.name}: {where}: label says {label} but {color!r} is in {kind}/"
                )
            subject = parts[2]
        elif parts[0] not in (FOLDERS["dev"], FOLDERS["test"]):
            raise InputError(
                f"{self.name}: {where}: {color!r} is outside Training/, Val/ and Testing/"
            )
        root = self.root.absolute()
        return Sample(
            sample_id=color.rsplit(".", 1)[0],
            path=str(root / color),
            media="image",
            label=label,
            pai="" if label == "bonafide" else "print",
            subject=subject,
            domain=self.name,
            modalities=(("depth", str(root / depth)), ("ir", str(root / ir))),
        )


def _read_list(path: Path) -> list[tuple[str, tuple[str, str, str], str]]:
    """('file:line', (colour, depth, IR) relative paths, label) for each line of a list."""
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path.name}:{line_no}"
        if len(tokens) not in (2, 4) or tokens[-1] not in LABELS or "color" not in tokens[0]:
            raise InputError(
                f"casia-surf: {path}:{line_no}: expected '<color> <depth> <ir> <1|0>' or "
                f"'<color> <1|0>', got {line.strip()!r}"
            )
        color = tokens[0]
        if len(tokens) == 4:
            paths = (color, tokens[1], tokens[2])
        else:
            paths = (color, _sibling(color, "depth"), _sibling(color, "ir"))
        out.append((where, paths, LABELS[tokens[-1]]))
    return out


def _sibling(color: str, modality: str) -> str:
    """The ``modality`` file of a colour image: ``.../color/n.jpg`` or ``n-color.jpg``."""
    if "/color/" in color:
        return color.replace("/color/", f"/{modality}/")
    return color.replace("-color.", f"-{modality}.")
