"""Training data from a prepared crop index: a torch Dataset with FAS-safe augmentation.

Reads ``index.csv`` written by ``fasdistill prepare`` and serves the ``ok``
crops of one split as normalised RGB tensors with class labels: class 0 is
``bonafide``, then one class per PAI species seen in the training split (sorted),
so the liveness score is P(class 0) everywhere.

Randomness comes from torch's generator, which DataLoader seeds per worker from
the global torch state: restoring that state on resume replays the same
augmentations.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fasdistill.config import AugmentConfig
from fasdistill.data.imageio import read_image
from fasdistill.errors import InputError

MEAN = (0.5, 0.5, 0.5)  # RGB, applied after scaling pixels to [0, 1]
STD = (0.5, 0.5, 0.5)
COLOUR_ORDER = "RGB"


@dataclass(frozen=True)
class CropIndex:
    """The usable rows of a prepared index, and the classes they define."""

    root: Path
    rows: list[dict[str, str]]
    classes: tuple[str, ...]
    scale: float

    def split(self, name: str) -> list[dict[str, str]]:
        return [r for r in self.rows if r["split"] == name]

    def label_of(self, row: dict[str, str]) -> int:
        if row["label"] == "bonafide":
            return 0
        return self.classes.index(row["pai"]) if row["pai"] in self.classes else -1


def read_crop_index(path: str | os.PathLike[str], scale: float | None = None) -> CropIndex:
    """Load ``index.csv`` (or a directory holding one); keep ``ok`` crops at ``scale``."""
    index_path = Path(path)
    if index_path.is_dir():
        index_path = index_path / "index.csv"
    if not index_path.is_file():
        raise InputError(f"{index_path}: no prepared index (run `fasdistill prepare` first)")
    with index_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        needed = {"split", "label", "pai", "crop_path", "status", "scale", "video_id", "subject"}
        missing = needed - set(reader.fieldnames or ())
        if missing:
            raise InputError(f"{index_path}: missing column(s) {', '.join(sorted(missing))}")
        rows = [r for r in reader if r["status"] == "ok"]
    if not rows:
        raise InputError(f"{index_path}: no usable crops (no row with status ok)")
    scales = sorted({float(r["scale"]) for r in rows})
    if scale is None:
        if len(scales) > 1:
            raise InputError(
                f"{index_path}: crops at several scales {scales}; choose one with data.scale"
            )
        scale = scales[0]
    chosen = [r for r in rows if math.isclose(float(r["scale"]), scale)]
    if not chosen:
        raise InputError(f"{index_path}: no crops at scale {scale}; the index has {scales}")
    train = [r for r in chosen if r["split"] == "train"]
    if not train:
        raise InputError(f"{index_path}: no training crops")
    species = sorted({r["pai"] for r in train if r["label"] == "attack"})
    for split in ("train", "dev"):
        labels = {r["label"] for r in chosen if r["split"] == split}
        if labels != {"bonafide", "attack"}:
            raise InputError(
                f"{index_path}: the {split} split needs bona fide and attack crops "
                f"(it has: {', '.join(sorted(labels)) or 'none'})"
            )
    return CropIndex(index_path.parent, chosen, ("bonafide", *species), scale)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Square resize as crops are cut: area averaging to shrink, bicubic to enlarge."""
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _augment(image: np.ndarray, size: int, augment: AugmentConfig) -> tuple[np.ndarray, int]:
    """Random square crop, flip, optional mild colour jitter and blur (uint8 RGB in/out).

    Also returns the view, the crop's geometry: 0 (the whole crop) or 1 (its mirror
    image) when it was not cropped (colour jitter and blur may still have changed its
    pixels), else -1. Cached teacher outputs key on it.
    """
    h, w = image.shape[:2]
    lo, hi = augment.resized_crop
    area = lo + (hi - lo) * float(torch.rand(()))
    side = max(8, round(math.sqrt(area) * min(h, w)))
    top = int(torch.randint(0, h - side + 1, ()))
    left = int(torch.randint(0, w - side + 1, ()))
    image = image[top : top + side, left : left + side]
    flipped = augment.flip and float(torch.rand(())) < 0.5
    if flipped:
        image = image[:, ::-1]
    view = int(flipped) if keeps_geometry(augment) and side == h == w else -1
    image = _by_four(image, lambda part: resize_square(part, size))
    if augment.colour_jitter > 0:
        j = augment.colour_jitter
        brightness, contrast = (1 + j * (2 * torch.rand(2) - 1)).tolist()
        mean = image.mean()
        image = np.clip((image.astype(np.float32) - mean) * contrast + mean * brightness, 0, 255)
        image = image.astype(np.uint8)
    if augment.blur > 0 and float(torch.rand(())) < augment.blur:
        sigma = 0.5 + 0.5 * float(torch.rand(()))
        image = _by_four(image, lambda part: cv2.GaussianBlur(part, (0, 0), sigma))
    return image, view


def keeps_geometry(augment: AugmentConfig) -> bool:
    """True when augmentation at most mirrors the whole crop (it may change colours)."""
    return augment.resized_crop == (1.0, 1.0)


def is_view_only(augment: AugmentConfig) -> bool:
    """True when augmentation at most mirrors the crop (two views per crop, cacheable)."""
    return keeps_geometry(augment) and augment.colour_jitter == 0 and augment.blur == 0


def to_tensor(image_rgb: np.ndarray) -> torch.Tensor:
    """uint8 HWC RGB -> normalised float CHW (the preprocessing every model is trained with).

    Extra channels (depth, NIR stacked after RGB) are normalised like the colour ones.
    """
    x = torch.from_numpy(np.ascontiguousarray(image_rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    if x.shape[0] != 3:
        mean, std = mean[:1], std[:1]  # the same value for every channel
    return (x - mean) / std


def model_input(crop_bgr: np.ndarray, size: int) -> torch.Tensor:
    """A stored BGR crop as the tensor a model sees: RGB, square resize, normalisation.

    The one evaluation preprocessing: the loader, prediction and the SWAP video
    benchmark all call it, so a deployed model sees crops exactly as in training.
    """
    image = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB)
    if image.shape[0] != size or image.shape[1] != size:
        image = resize_square(image, size)
    return to_tensor(image)


class CropDataset(Dataset):
    """Crops of one split: (image tensor, class label, row number, view).

    ``view`` is 0 for the whole crop, 1 for its mirror image, -1 for a cropped one
    (see :func:`_augment`).
    """

    def __init__(
        self,
        index: CropIndex,
        split: str,
        input_size: int,
        train: bool = False,
        augment: AugmentConfig | None = None,
        modalities: tuple[str, ...] = ("rgb",),
    ) -> None:
        self.index = index
        # Channels stacked in this order: RGB, then one per extra modality (depth, ir),
        # each read from the registered crop ``prepare`` cut with the same box.
        self.modalities = tuple(modalities)
        self.extra = [m for m in self.modalities if m != "rgb"]
        self.split = split
        self.rows = index.split(split)
        self.input_size = input_size
        self.train = train
        self.augment = augment or AugmentConfig()
        self.labels = [index.label_of(r) for r in self.rows]
        if not self.rows:
            raise InputError(f"{index.root / 'index.csv'}: no {split!r} crops")
        if self.modalities[:1] != ("rgb",):
            raise InputError(f"modalities must start with rgb, got {self.modalities}")
        for m in self.extra:
            if not all(r.get(f"{m}_path") for r in self.rows):
                raise InputError(
                    f"{index.root / 'index.csv'}: {split} crops without {m} (prepare the set "
                    f"with --modalities rgb,{','.join(self.extra)} from a dataset that records it)"
                )

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, relative: str) -> np.ndarray:
        path = self.index.root / relative
        read = read_image(path)  # header first: a replaced crop cannot blow up memory
        if read.image is None:
            raise InputError(
                f"{path}: cannot read crop, {read.status} (listed in "
                f"{self.index.root / 'index.csv'})"
            )
        return read.image

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int, int]:
        row = self.rows[i]
        image = self._read(row["crop_path"])
        if not self.train and not self.extra:
            return model_input(image, self.input_size), self.labels[i], i, 0
        planes = [cv2.cvtColor(image, cv2.COLOR_BGR2RGB)]
        for m in self.extra:
            planes.append(cv2.cvtColor(self._read(row[f"{m}_path"]), cv2.COLOR_BGR2GRAY)[..., None])
        stacked = np.concatenate(planes, axis=2) if self.extra else planes[0]
        if not self.train:  # model_input's resize for every modality alike
            if stacked.shape[0] != self.input_size or stacked.shape[1] != self.input_size:
                stacked = _by_four(stacked, lambda part: resize_square(part, self.input_size))
            return to_tensor(stacked), self.labels[i], i, 0
        stacked, view = _augment(stacked, self.input_size, self.augment)  # all modalities alike
        return to_tensor(stacked), self.labels[i], i, view


def _by_four(image: np.ndarray, op: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply an OpenCV ``op`` (resize, blur: at most 4 channels at once) to any channel count."""
    if image.shape[2] <= 4:
        return op(np.ascontiguousarray(image))
    parts = [op(np.ascontiguousarray(image[..., k : k + 4])) for k in range(0, image.shape[2], 4)]
    return np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2)
