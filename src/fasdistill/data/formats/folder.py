"""A user's own data: bona fide and attack media sorted into folders.

Layout::

    ROOT/bonafide/...                   images or videos, at any depth
    ROOT/attack/<species>/...           one folder per attack species
    ROOT/splits.csv                     optional: path,split or subject,split
    <media dir>/<stem>.box              optional face box beside a media file

The subject of a file is the first folder below ``bonafide/`` or
``attack/<species>/`` (``bonafide/alice/img1.jpg`` -> ``alice``), or the file's
stem when it lies directly in one of them. A sample's id is its path relative to
the root, extension included, so ``a.jpg`` and ``a.png`` never collide.

Without ``splits.csv`` each subject is assigned by a hash of its name (CRC-32
mod 10: 0-5 train, 6-7 dev, 8-9 test): subjects stay disjoint across splits and
adding or removing one never moves another.
"""

from __future__ import annotations

import csv
import math
import os
import zlib
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import (
    SPLITS,
    Box,
    DatasetAdapter,
    ProtocolError,
    Sample,
    media_kind,
)
from fasdistill.errors import InputError

SPLITS_FILE = "splits.csv"
BOX_SUFFIX = ".box"
CLASS_DIRS = ("bonafide", "attack")


def hash_split(subject: str) -> str:
    """The split of ``subject`` without a splits file: CRC-32 of the name, mod 10."""
    bucket = zlib.crc32(subject.encode("utf-8")) % 10
    return "train" if bucket < 6 else "dev" if bucket < 8 else "test"


class FolderDataset(DatasetAdapter):
    """Images and videos in ``bonafide/`` and ``attack/<species>/`` folders."""

    name: ClassVar[str] = "folder"
    protocols: ClassVar[tuple[str, ...]] = ("default",)
    default_protocol: ClassVar[str] = "default"
    description: ClassVar[str] = "your own data: bonafide/ and attack/<species>/ folders"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._samples: list[Sample] | None = None

    def samples(self) -> list[Sample]:
        """Every image and video under ``bonafide/`` and ``attack/<species>/``."""
        if self._samples is None:
            self._samples = self._scan()
        return list(self._samples)

    def protocol(self, name: str) -> list[Sample]:
        """``default``: splits from ``splits.csv`` when present, else by subject hash."""
        self.check_protocol_name(name)
        records = self.samples()
        if (self.root / SPLITS_FILE).is_file():
            splits = self._splits_from_file(name, records)
            return [s.with_split(splits[s.sample_id]) for s in records]
        out = [s.with_split(hash_split(s.subject)) for s in records]
        empty = [split for split in SPLITS if not any(s.split == split for s in out)]
        if empty:
            raise InputError(
                f"{self.name}: {self.root}: no subject falls in split(s) {', '.join(empty)} "
                f"by subject hash ({len({s.subject for s in out})} subjects); add "
                f"{self.root / SPLITS_FILE} with columns subject,split or path,split"
            )
        return out

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Boxes from ``<stem>.box`` beside the media file; None when there is none."""
        media = Path(sample.path)
        box_path = media.with_name(media.stem + BOX_SUFFIX)
        if not box_path.is_file():
            return None
        return read_box_file(box_path, video=sample.media == "video")

    # ------------------------------------------------------------------ scanning

    def _scan(self) -> list[Sample]:
        entries = sorted(p.name for p in self.root.iterdir())
        if not entries:
            raise InputError(
                f"{self.name}: {self.root} is empty; put media in bonafide/ and attack/<species>/"
            )
        absent = [d for d in CLASS_DIRS if not (self.root / d).is_dir()]
        if absent:
            raise InputError(
                f"{self.name}: {self.root} has no {' and no '.join(f'{d}/' for d in absent)} "
                "folder; expected bonafide/... and attack/<species>/..."
            )
        skipped = [e for e in entries if e not in (*CLASS_DIRS, SPLITS_FILE)]
        found: list[Sample] = []
        for rel_dir, files in self._walk():
            media_stems = {Path(f).stem for f in files if media_kind(f) is not None}
            for filename in files:
                rel = f"{rel_dir}/{filename}"
                if Path(filename).suffix == BOX_SUFFIX and Path(filename).stem in media_stems:
                    continue
                sample = self._sample(rel)
                if sample is None:
                    skipped.append(rel)
                else:
                    found.append(sample)
        self.skipped = sorted(skipped)
        if not found:
            raise InputError(
                f"{self.name}: no images or videos under {self.root}/bonafide or "
                f"{self.root}/attack/<species>"
            )
        return sorted(found, key=lambda s: s.sample_id)

    def _walk(self) -> list[tuple[str, list[str]]]:
        """(directory relative to the root, its file names) below bonafide/ and attack/."""
        out = []
        for top in CLASS_DIRS:
            for dirpath, dirnames, filenames in os.walk(self.root / top):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                out.append((rel_dir, sorted(filenames)))
        return out

    def _sample(self, rel: str) -> Sample | None:
        """The sample of a file, or None if it is no media file or lies outside the scheme."""
        kind = media_kind(rel)
        parts = rel.split("/")
        if kind is None:
            return None
        if parts[0] == "bonafide":
            label, pai, below = "bonafide", "", parts[1:]
        elif len(parts) >= 3:  # attack/<species>/...
            label, pai, below = "attack", parts[1], parts[2:]
        else:  # a file directly in attack/ has no species
            return None
        subject = below[0] if len(below) > 1 else Path(below[0]).stem
        return Sample(
            sample_id=rel,
            path=str((self.root / rel).absolute()),
            media=kind,
            label=label,
            pai=pai,
            subject=subject,
            domain=self.name,
        )

    # ------------------------------------------------------------------ splits file

    def _splits_from_file(self, protocol: str, records: list[Sample]) -> dict[str, str]:
        """sample_id -> split from ``splits.csv`` (by path or by subject), fully checked."""
        path = self.root / SPLITS_FILE
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            keys = [c for c in ("path", "subject") if c in columns]
            if "split" not in columns or len(keys) != 1:
                raise InputError(
                    f"{path}: header must be 'path,split' or 'subject,split', got {columns}"
                )
            key = keys[0]
            assigned: dict[str, str] = {}
            for line, row in enumerate(reader, start=2):
                cells = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                value, split = cells.get(key, ""), cells.get("split", "")
                if key == "path":
                    value = value.replace("\\", "/").removeprefix("./")
                if not value:
                    raise InputError(f"{path}:{line}: empty {key}")
                if split not in SPLITS:
                    raise InputError(
                        f"{path}:{line}: split {split!r} is not one of {', '.join(SPLITS)}"
                    )
                if assigned.get(value, split) != split:
                    raise InputError(
                        f"{path}:{line}: {key} {value!r} is assigned to both "
                        f"{assigned[value]} and {split}"
                    )
                assigned[value] = split
        by_id = {s.sample_id: s for s in records}
        if key == "path":
            missing = [str(self.root / p) for p in assigned if not (self.root / p).exists()]
            if missing:
                raise ProtocolError(self.name, protocol, self.root, missing)
            not_media = sorted(p for p in assigned if p not in by_id)
            if not_media:
                raise InputError(
                    f"{path}: {len(not_media)} listed path(s) are not media files of this "
                    f"layout: {', '.join(not_media[:10])}"
                )
            splits = {sid: assigned[sid] for sid in by_id if sid in assigned}
        else:
            subjects = {s.subject for s in records}
            unknown = sorted(set(assigned) - subjects)
            if unknown:
                raise InputError(
                    f"{path}: {len(unknown)} listed subject(s) have no media: "
                    f"{', '.join(unknown[:10])}"
                )
            splits = {s.sample_id: assigned[s.subject] for s in records if s.subject in assigned}
        unassigned = sorted(set(by_id) - set(splits))
        if unassigned:
            what = "path" if key == "path" else "subject"
            raise InputError(
                f"{path}: {len(unassigned)} media file(s) have no split (add a row for each "
                f"{what}): {', '.join(unassigned[:10])}"
            )
        return splits


def read_box_file(path: Path, video: bool) -> dict[int, Box]:
    """Boxes of a ``.box`` file: one line ``x y w h`` (image) or ``frame x y w h`` lines."""
    boxes: dict[int, Box] = {}
    width = 5 if video else 4
    form = "frame x y w h" if video else "x y w h"
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if not all(math.isfinite(v) for v in values):
            values = []  # nan/inf: reported as malformed below
        frame = int(values[0]) if video and values else 0
        if (
            len(values) != width
            or values[-1] <= 0
            or values[-2] <= 0
            or (video and (values[0] != frame or frame < 0))
        ):
            raise InputError(f"{path}:{number}: expected '{form}' with w, h > 0, got {line!r}")
        if frame in boxes:
            what = f"frame {frame}" if video else "a second box for an image"
            raise InputError(f"{path}:{number}: {what} is given twice")
        x, y, w, h = values[-4:]
        boxes[frame] = (x, y, w, h)
    if not boxes:
        raise InputError(f"{path}: no box; expected lines of '{form}'")
    return boxes
