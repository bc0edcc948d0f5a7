"""Idiap Replay-Attack: webcam face PAD videos with print, mobile and high-definition attacks.

Layout (as shipped)::

    ROOT/{train,devel,test}/real/client001_session01_webcam_authenticate_adverse_1.mov
    ROOT/{train,devel,test}/attack/{fixed,hand}/attack_<print|mobile|highdef>_client001_
        session01_<...>_<adverse|controlled>.mov
    ROOT/face-locations/<same relative path>.face   (lines 'frame x y w h')
    ROOT/enroll/...                                  (enrolment videos: not used)

The split is the top folder (``devel`` is the dev split); protocols only filter
the attacks (Chingovska et al., BIOSIG 2012).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import Box, DatasetAdapter, Sample, list_files, split_ext
from fasdistill.errors import InputError

SPLIT_FOLDERS = {"train": "train", "dev": "devel", "test": "test"}
SPECIES = ("print", "mobile", "highdef")
SUPPORTS = ("fixed", "hand")
_REAL = re.compile(
    r"^(client\d+)_session\d+_.*_(adverse|controlled)(?:_\d+)?$", flags=re.IGNORECASE
)
_ATTACK = re.compile(
    r"^attack_(print|mobile|highdef)_(client\d+)_session\d+_.*_(adverse|controlled)$",
    flags=re.IGNORECASE,
)


class ReplayAttack(DatasetAdapter):
    """Replay-Attack adapter: protocols grandtest, print, mobile, highdef, fixed, hand.

    Samples: ``pai`` is the attack instrument (``print``, ``mobile``, ``highdef``),
    ``device`` the attack support (``fixed`` or ``hand``; ``webcam`` for bona fide),
    ``session`` the lighting (``adverse`` or ``controlled``), ``subject`` ``clientNNN``.
    Every protocol keeps all bona fide videos; ``grandtest`` keeps every attack, the
    others the attacks of one instrument or one support. Enrolment videos are excluded.
    """

    name: ClassVar[str] = "replay-attack"
    protocols: ClassVar[tuple[str, ...]] = ("grandtest", *SPECIES, *SUPPORTS)
    default_protocol: ClassVar[str] = "grandtest"
    description: ClassVar[str] = "Idiap Replay-Attack (50 clients, print/mobile/highdef attacks)"

    def samples(self) -> list[Sample]:
        """Every real and attack ``.mov`` of train/devel/test (other files go to ``skipped``)."""
        found: list[Sample] = []
        skipped: list[str] = []
        seen: set[str] = set()  # ids: "x.mov" next to "x.MOV" would clash
        for folder in SPLIT_FOLDERS.values():
            for parts, path in list_files(self.root, folder):
                if "enroll" in parts:
                    continue
                rel = "/".join(parts)
                stem, ext = split_ext(parts[-1])
                fields = self._fields(parts[1:-1], stem) if ext.lower() == ".mov" else None
                sample_id = rel[: len(rel) - len(ext)]
                if fields is None or sample_id in seen:
                    skipped.append(rel)
                    continue
                seen.add(sample_id)
                label, pai, subject, session, device = fields
                found.append(
                    Sample(
                        sample_id=sample_id,
                        path=path,
                        media="video",
                        label=label,
                        pai=pai,
                        subject=subject,
                        session=session,
                        device=device,
                        domain=self.name,
                    )
                )
        self.skipped = skipped
        return found

    def protocol(self, name: str) -> list[Sample]:
        """All bona fide videos plus the attacks protocol ``name`` selects, split by folder."""
        self.check_protocol_name(name)
        self.require(
            name,
            (
                self.root / folder / kind
                for folder in SPLIT_FOLDERS.values()
                for kind in ("real", "attack")
            ),
        )
        out = []
        for s in self.samples():
            if s.label == "attack" and not self._keeps(name, s):
                continue
            split = next(k for k, v in SPLIT_FOLDERS.items() if s.sample_id.startswith(v + "/"))
            out.append(s.with_split(split))
        return out

    @staticmethod
    def _fields(folders: tuple[str, ...], stem: str) -> tuple[str, str, str, str, str] | None:
        return _fields(folders, stem)

    @staticmethod
    def _keeps(protocol: str, attack: Sample) -> bool:
        """Whether ``protocol`` keeps ``attack``: grandtest all, the others one PAI or support."""
        return protocol == "grandtest" or protocol in (attack.pai, attack.device)

    # Where the face-location files live, and whether lines may omit the frame number.
    face_folder: ClassVar[str] = "face-locations"
    implicit_frames: ClassVar[bool] = False

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Boxes from ``<face_folder>/<sample id>.face``; frames with an all-zero box omitted."""
        path = self.root / self.face_folder / f"{sample.sample_id}.face"
        if not path.is_file():
            return None
        boxes = read_face_file(path, self.name, self.implicit_frames)
        return {frame: self._frame_box(sample, box) for frame, box in boxes.items()}

    @staticmethod
    def _frame_box(sample: Sample, box: Box) -> Box:
        """A shipped box in the frames OpenCV decodes (Replay-Attack: as shipped)."""
        return box


def read_face_file(path: Path, dataset: str, implicit_frames: bool = False) -> dict[int, Box]:
    """Boxes by frame of an Idiap ``.face`` file: lines ``frame x y w h``, all-zero ones omitted.

    With ``implicit_frames``, lines ``x y w h`` are also accepted (line n = frame n,
    blank lines not counted). Anything else is an InputError naming file and line.
    """
    expected = "'x y w h' or 'frame x y w h'" if implicit_frames else "'frame x y w h'"
    boxes: dict[int, Box] = {}
    frame = -1
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        frame += 1
        try:  # a wrong number of fields fails the unpacking
            if implicit_frames and len(fields) == 4:
                index = frame
            else:
                index, fields = int(fields[0]), fields[1:]
            x, y, w, h = (float(v) for v in fields)
        except ValueError:
            raise InputError(
                f"{dataset}: {path}:{line_no}: expected {expected}, got {line.strip()!r}"
            ) from None
        if x == y == w == h == 0.0:
            continue
        boxes[index] = (x, y, w, h)
    return boxes


def _fields(folders: tuple[str, ...], stem: str) -> tuple[str, str, str, str, str] | None:
    """(label, pai, subject, session, device) of a video in ``<split>/<folders>/``, or None."""
    if folders == ("real",):
        m = _REAL.match(stem)
        if m is None:
            return None
        return "bonafide", "", m.group(1).lower(), m.group(2).lower(), "webcam"
    if len(folders) == 2 and folders[0] == "attack" and folders[1] in SUPPORTS:
        m = _ATTACK.match(stem)
        if m is None:
            return None
        return "attack", m.group(1).lower(), m.group(2).lower(), m.group(3).lower(), folders[1]
    return None
