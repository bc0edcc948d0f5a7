"""SiW (Spoof in the Wild, Liu et al., CVPR 2018): videos named by a five-field code.

Layout::

    ROOT/Train|Test/live|spoof/SSS/SSS-S-T-M-N.mov   (16 live test videos: SSS-S-T-M-N.m.mov)

``SSS`` subject (three digits), ``S`` sensor (1-2), ``T`` type (1 live, 2 print,
3 replay), ``M`` medium (print: 1-2 printer/paper; replay: 1-4 iPad, iPhone, PC
screen, Android), ``N`` session. The ``.face`` box files SiW ships beside the
videos are not read (a detector crops instead) and are not reported as skipped.

The medium is not a :class:`Sample` field: ``device`` is ``sensor{S}`` as for
every other dataset, and :func:`parse_code` recovers the medium (and the rest
of the code) from ``sample_id``, whose last component is the file stem.

SiW has no official dev split: dev is :func:`carve_dev` over the training
subjects, applied identically in every protocol.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import DatasetAdapter, Sample, carve_dev, media_kind
from fasdistill.errors import InputError

PARTS = ("Train", "Test")
TYPES = {1: "bonafide", 2: "print", 3: "replay"}
MEDIA_COUNT = {2: 2, 3: 4}  # type -> number of media (print: 2, replay: 4)
REPLAY_MEDIA = ("iPad", "iPhone", "PC screen", "Android")  # replay medium m is REPLAY_MEDIA[m - 1]
FRAME_LIMIT = 60  # protocol 1 trains on the first 60 frames of each video
# 16 sensor-2 live test videos (subjects 153, 154, 158, 161) carry an extra ".m" before
# the extension, e.g. 153-2-1-1-1.m.mov; the official lists name them 153-2-1-1-1.m.
_CODE = re.compile(r"^(\d{3})-([12])-([123])-(\d+)-(\d+)(?:\.m)?$")


@dataclass(frozen=True)
class SiWCode:
    """The five fields of a SiW file name."""

    subject: str
    sensor: int
    type: int
    medium: int
    session: int


def parse_code(name: str) -> SiWCode | None:
    """The code of a SiW file stem or sample id (``.../003-1-3-2-1``); None if it has none."""
    match = _CODE.match(name.rsplit("/", 1)[-1])
    if match is None:
        return None
    subject, sensor, kind, medium, session = match.groups()
    return SiWCode(subject, int(sensor), int(kind), int(medium), int(session))


class SiW(DatasetAdapter):
    """SiW videos and the three protocols of the SiW paper (four and two sub-protocols)."""

    name: ClassVar[str] = "siw"
    protocols: ClassVar[tuple[str, ...]] = ("1", "2_1", "2_2", "2_3", "2_4", "3_1", "3_2")
    default_protocol: ClassVar[str] = "1"
    description: ClassVar[str] = "SiW: 165 subjects, live/print/replay videos, 2 sensors"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._samples: list[Sample] | None = None

    def samples(self) -> list[Sample]:
        """Every SiW video under Train/ and Test/ (files that break the naming are skipped)."""
        if self._samples is None:
            if not any((self.root / part).is_dir() for part in PARTS):
                raise InputError(
                    f"{self.name}: {self.root} holds neither Train/ nor Test/; "
                    "expected ROOT/Train|Test/live|spoof/SSS/SSS-S-T-M-N.mov"
                )
            self.skipped = []
            found: list[Sample] = []
            for part in PARTS:
                if (self.root / part).is_dir():
                    found.extend(self._scan(part))
            self._samples = sorted(found, key=lambda s: s.sample_id)
        return list(self._samples)

    def _scan(self, part: str) -> list[Sample]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root / part):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                rel = path.relative_to(self.root).as_posix()
                if path.suffix == ".face":
                    continue
                sample = self._sample(path, rel)
                if sample is None:
                    self.skipped.append(rel)
                else:
                    out.append(sample)
        return out

    def _sample(self, path: Path, rel: str) -> Sample | None:
        """The sample of one file, or None when it does not follow the SiW scheme.

        The sample id is the path without its extension, as in the official lists
        (``Test/live/153/153-2-1-1-1.m`` for ``153-2-1-1-1.m.mov``).
        """
        parts = rel.split("/")
        code = parse_code(path.stem)
        if len(parts) != 4 or media_kind(path) != "video" or code is None:
            return None
        _, folder, subject_dir, _ = parts
        live = code.type == 1
        if folder != ("live" if live else "spoof") or subject_dir != code.subject:
            return None
        if not live and not 1 <= code.medium <= MEDIA_COUNT[code.type]:
            return None
        return Sample(
            sample_id=rel.rsplit(".", 1)[0],
            path=str(path.absolute()),
            media="video",
            label="bonafide" if live else "attack",
            pai="" if live else TYPES[code.type],
            subject=code.subject,
            session=f"session{code.session}",
            device=f"sensor{code.sensor}",
            domain=self.name,
        )

    def protocol(self, name: str) -> list[Sample]:
        """Train/dev from Train/ (dev = carved subjects), test from Test/, per the SiW paper."""
        self.check_protocol_name(name)
        self.require(name, [self.root / part for part in PARTS])
        records = self.samples()
        train = [
            s for s in records if s.sample_id.startswith("Train/") and _member(name, s, "train")
        ]
        dev_subjects = carve_dev(s.subject for s in train)
        limit = FRAME_LIMIT if name == "1" else None
        out = [
            replace(s, split="dev" if s.subject in dev_subjects else "train", frame_limit=limit)
            for s in train
        ]
        out += [
            s.with_split("test")
            for s in records
            if s.sample_id.startswith("Test/") and _member(name, s, "test")
        ]
        return out


def _member(name: str, sample: Sample, side: str) -> bool:
    """Whether ``sample`` is in the train/dev side (``"train"``) or test side of protocol ``name``.

    1: everything. 2_k: live and replay, replay medium k held out for test, print
    unused. 3_1: print to replay. 3_2: replay to print. Bona fide is always in.
    """
    if sample.pai == "" or name == "1":
        return True
    if name.startswith("2_"):
        code = parse_code(sample.sample_id)
        held_out = code is not None and code.medium == int(name[2:])
        return sample.pai == "replay" and held_out == (side == "test")
    trained_on = "print" if name == "3_1" else "replay"
    return (sample.pai == trained_on) == (side == "train")
