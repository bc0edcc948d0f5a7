"""SynthSpoof sets written by ``fasdistill synth`` (layout in docs/synthspoof.md).

Layout::

    ROOT/samples.csv                         one row per sample
    ROOT/media/<domain>/<subject>/<id>.png|.avi
    ROOT/media/<domain>/<subject>/<id>.boxes.csv   frame,x,y,w,h
    ROOT/media/<domain>/<subject>/<id>.depth.png|.avi, <id>.ir.png|.avi
                                             (sets made with --modalities rgb,depth,ir)
    ROOT/protocols/<name>.csv                sample_id,split

Records come from ``samples.csv`` and protocols from the manifests the
generator wrote: ``intra`` always, ``lodo_<domain>`` when the set has two or
more domains. ``device`` is the attack instrument (``photo_paper``, ``phone``,
...; ``mask`` for masks, empty for bona fide) and ``domain`` the capture domain.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import SPLITS, Box, DatasetAdapter, ProtocolError, Sample
from fasdistill.errors import InputError

INDEX = "samples.csv"
PROTOCOL_DIR = "protocols"
REQUIRED_COLUMNS = (
    "sample_id",
    "path",
    "media",
    "label",
    "pai",
    "instrument",
    "subject",
    "domain",
    "boxes_path",
)


class SynthSpoofDataset(DatasetAdapter):
    """A generated SynthSpoof set; its protocols are the manifests under ``protocols/``.

    Which protocols exist depends on the set (``lodo_<domain>`` per generated
    domain), so the class-level ``protocols`` names only the one every set has,
    ``intra``, and each instance replaces it with the names found on disk (sorted,
    ``intra`` first). ``check_protocol_name`` and ``protocol`` use the instance's.
    """

    name: ClassVar[str] = "synthspoof"
    protocols: ClassVar[tuple[str, ...]] = ("intra",)
    default_protocol: ClassVar[str] = "intra"
    description: ClassVar[str] = "SynthSpoof: procedural faces, print/replay/mask, 4 domains"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self.protocols = self._discover_protocols()  # per instance: what this set holds
        self._samples: list[Sample] | None = None
        self._boxes: dict[str, str] = {}

    def _discover_protocols(self) -> tuple[str, ...]:
        folder = self.root / PROTOCOL_DIR
        names = sorted(p.stem for p in folder.glob("*.csv")) if folder.is_dir() else []
        rest = [n for n in names if n != self.default_protocol]
        return (self.default_protocol, *rest)

    def check_protocol_name(self, name: str) -> str:
        if name not in self.protocols:
            raise InputError(
                f"{self.name}: unknown protocol {name!r}; {self.root / PROTOCOL_DIR} holds "
                f"{', '.join(self.protocols)}"
            )
        return name

    def samples(self) -> list[Sample]:
        """Every row of ``samples.csv`` (ProtocolError if it or a media file is missing)."""
        if self._samples is None:
            self._samples = self._read_index()
        return list(self._samples)

    def protocol(self, name: str) -> list[Sample]:
        """The samples listed in ``protocols/<name>.csv``, with the split given there."""
        self.check_protocol_name(name)
        path = self.root / PROTOCOL_DIR / f"{name}.csv"
        self.require(name, [path])
        records = {s.sample_id: s for s in self.samples()}
        out = []
        seen: set[str] = set()
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"sample_id", "split"} <= set(reader.fieldnames or []):
                raise InputError(f"{path}: header must be 'sample_id,split'")
            for line, row in enumerate(reader, start=2):
                sample_id, split = row["sample_id"], row["split"]
                if sample_id not in records:
                    raise InputError(f"{path}:{line}: sample_id {sample_id!r} not in {INDEX}")
                if split not in SPLITS:
                    raise InputError(f"{path}:{line}: split {split!r} is not one of {SPLITS}")
                if sample_id in seen:
                    raise InputError(f"{path}:{line}: sample_id {sample_id!r} listed twice")
                seen.add(sample_id)
                out.append(records[sample_id].with_split(split))
        return out

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Per-frame boxes from the sample's ``boxes_path`` CSV; None when it is absent."""
        self.samples()
        rel = self._boxes.get(sample.sample_id)
        media = Path(sample.path)
        path = self.root / rel if rel else media.with_name(media.stem + ".boxes.csv")
        if not path.is_file():
            return None
        boxes: dict[int, Box] = {}
        for line, row in enumerate(csv.DictReader(io.StringIO(path.read_text())), start=2):
            try:
                frame = int(row["frame"])
                boxes[frame] = (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{path}:{line}: expected frame,x,y,w,h, got {row}") from None
        return boxes or None

    def _read_index(self) -> list[Sample]:
        path = self.root / INDEX
        if not path.is_file():
            raise ProtocolError(self.name, self.default_protocol, self.root, [str(path)])
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            absent = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if absent:
                raise InputError(f"{path}: missing column(s) {', '.join(absent)}")
            rows = list(enumerate(reader, start=2))
            sensors = [m for m in ("depth", "ir") if f"{m}_path" in (reader.fieldnames or [])]
        self.modalities = ("rgb", *sensors)  # per instance: what this set recorded
        out = []
        boxes: dict[str, str] = {}
        referenced: set[str] = set()
        for line, row in rows:
            if row["label"] not in ("bonafide", "attack") or (row["label"] == "bonafide") != (
                row["pai"] == ""
            ):
                raise InputError(
                    f"{path}:{line}: label {row['label']!r} does not match pai {row['pai']!r}"
                )
            if row["media"] not in ("image", "video"):
                raise InputError(f"{path}:{line}: media {row['media']!r} is not image or video")
            if row["sample_id"] in boxes:
                raise InputError(f"{path}:{line}: sample_id {row['sample_id']!r} repeated")
            boxes[row["sample_id"]] = row["boxes_path"]
            referenced.update((row["path"], row["boxes_path"]))
            referenced.update(row[f"{m}_path"] for m in sensors)
            out.append(
                Sample(
                    sample_id=row["sample_id"],
                    path=str((self.root / row["path"]).absolute()),
                    media=row["media"],
                    label=row["label"],
                    pai=row["pai"],
                    subject=row["subject"],
                    device=row["instrument"],
                    domain=row["domain"],
                    modalities=tuple(
                        (m, str((self.root / row[f"{m}_path"]).absolute())) for m in sensors
                    ),
                )
            )
        missing = [
            path
            for s in out
            for path in (s.path, *dict(s.modalities).values())
            if not Path(path).exists()
        ]
        if missing:
            raise ProtocolError(self.name, self.default_protocol, self.root, missing)
        self.skipped = sorted(
            rel for rel in _files_under(self.root, "media") if rel not in referenced
        )
        self._boxes = boxes
        return out


def _files_under(root: Path, folder: str) -> list[str]:
    """Paths relative to ``root`` of every file below ``root/folder``."""
    out = []
    for dirpath, _, filenames in os.walk(root / folder):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        out.extend(f"{rel_dir}/{name}" for name in filenames)
    return out
