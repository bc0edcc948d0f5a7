"""OULU-NPU: mobile-phone face PAD videos, four protocols over phones, sessions and PAIs.

Layout (as shipped)::

    ROOT/Train_files/P_S_UU_F.avi   (+ P_S_UU_F.txt, eye positions per frame)
    ROOT/Dev_files/...
    ROOT/Test_files/...
    ROOT/Protocols/Protocol_1/{Train,Dev,Test}.txt              (optional)
    ROOT/Protocols/Protocol_3/{Train,Dev,Test}_1.txt ... _6.txt (optional)

P is the phone (1-6), S the session (1-3), UU the user, F the file: 1 bona fide,
2/3 print attack 1/2, 4/5 replay attack 1/2. The split is the folder; the
protocol decides which videos of each folder take part (Boulkenafet et al., FG 2017).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, NamedTuple

from fasdistill.data.formats.base import (
    Box,
    DatasetAdapter,
    ProtocolError,
    Sample,
    box_from_eyes,
    list_files,
    split_ext,
)
from fasdistill.errors import InputError

SPLIT_FOLDERS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
LIST_NAMES = {"train": "Train", "dev": "Dev", "test": "Test"}
DOMAIN = "oulu-npu"
_NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
_SPECIES = {1: "", 2: "print", 3: "print", 4: "replay", 5: "replay"}
_TRAIN_FILES = frozenset({1, 2, 4})  # bona fide, print 1, replay 1 (protocols 2 and 4)
_TEST_FILES = frozenset({1, 3, 5})  # bona fide, print 2, replay 2 (unseen instruments)


class _Code(NamedTuple):
    """The four fields of a video name ``P_S_UU_F``."""

    phone: int
    session: int
    user: str
    file: int


def _parse(stem: str) -> _Code | None:
    m = _NAME.match(stem)
    if m is None:
        return None
    return _Code(int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4)))


class _Video(NamedTuple):
    """A video found where the layout puts one: enough to build its sample for any split."""

    folder_split: str
    code: _Code
    stem: str
    sample_id: str
    path: str

    def sample(self, split: str = "") -> Sample:
        c = self.code
        return Sample(
            sample_id=self.sample_id,
            path=self.path,
            media="video",
            label="bonafide" if c.file == 1 else "attack",
            pai=_SPECIES[c.file],
            subject=f"user{c.user}",
            session=f"session{c.session}",
            device=f"phone{c.phone}",
            domain=DOMAIN,
            split=split,
        )


def _in_protocol(protocol: str, split: str, code: _Code) -> bool:
    """The published OULU-NPU rule: does a video of ``split`` take part in ``protocol``?"""
    train = split in ("train", "dev")
    if protocol == "1":
        return code.session in (1, 2) if train else code.session == 3
    if protocol == "2":
        return code.file in (_TRAIN_FILES if train else _TEST_FILES)
    k = int(protocol.split("_")[1])
    if protocol.startswith("3_"):
        return code.phone != k if train else code.phone == k
    if train:
        return code.session in (1, 2) and code.file in _TRAIN_FILES and code.phone != k
    return code.session == 3 and code.file in _TEST_FILES and code.phone == k


class OuluNPU(DatasetAdapter):
    """OULU-NPU adapter: protocols 1, 2, 3_1..3_6 and 4_1..4_6.

    Samples: ``pai`` is ``print`` (files 2, 3) or ``replay`` (files 4, 5), ``device``
    is ``phone{P}``, ``session`` is ``session{S}``, ``subject`` is ``user{UU}``. The
    official list files under ``Protocols/`` are used when present; otherwise the
    published rule selects sessions, phones and files per split (see the module doc).
    Face boxes come from the eye positions in each video's sibling ``.txt``.
    """

    name: ClassVar[str] = DOMAIN
    protocols: ClassVar[tuple[str, ...]] = (
        "1",
        "2",
        *(f"3_{k}" for k in range(1, 7)),
        *(f"4_{k}" for k in range(1, 7)),
    )
    default_protocol: ClassVar[str] = "1"
    description: ClassVar[str] = "OULU-NPU (6 phones, 3 sessions, print and replay attacks)"

    def samples(self) -> list[Sample]:
        """Every ``P_S_UU_F.avi`` of the three split folders (other files go to ``skipped``)."""
        return [video.sample() for video in self._scan()]

    def _scan(self) -> list[_Video]:
        """Every video with a valid name where the layout puts videos; sets ``skipped``."""
        found: list[_Video] = []
        skipped: list[str] = []
        seen: set[str] = set()
        for split, folder in SPLIT_FOLDERS.items():
            for parts, path in list_files(self.root, folder):
                rel = "/".join(parts)
                stem, ext = split_ext(parts[-1])
                code = _parse(stem) if len(parts) == 2 else None
                if code is not None and ext.lower() == ".txt":
                    continue  # eye-position annotation of a video
                sample_id = rel[: len(rel) - len(ext)]
                if code is None or ext.lower() != ".avi" or sample_id in seen:
                    skipped.append(rel)
                    continue
                seen.add(sample_id)
                found.append(_Video(split, code, stem, sample_id, path))
        self.skipped = skipped
        return found

    def protocol(self, name: str) -> list[Sample]:
        """Protocol ``name`` from the official lists if present, else from the published rule."""
        self.check_protocol_name(name)
        self.require(name, (self.root / folder for folder in SPLIT_FOLDERS.values()))
        videos = self._scan()
        lists = self._listlist_files(name)
        if any(p.exists() for p in lists.values()):
            self.require(name, lists.values())
            return self._from_lists(name, videos, lists)
        return [
            v.sample(v.folder_split) for v in videos if _in_protocol(name, v.folder_split, v.code)
        ]

    def _listlist_files(self, name: str) -> dict[str, Path]:
        number, _, k = name.partition("_")
        folder = self.root / "Protocols" / f"Protocol_{number}"
        suffix = f"_{k}" if k else ""
        return {split: folder / f"{stem}{suffix}.txt" for split, stem in LIST_NAMES.items()}

    def _from_lists(self, name: str, videos: list[_Video], lists: dict[str, Path]) -> list[Sample]:
        """The samples the official list files name, each with its list's split."""
        by_stem: dict[str, list[_Video]] = {}
        for video in videos:
            by_stem.setdefault(video.stem, []).append(video)
        out: list[Sample] = []
        missing: list[str] = []
        listed_in: dict[str, Path] = {}
        for split, list_path in lists.items():
            for stem, is_bonafide, line_no in _read_list(list_path):
                where = f"{list_path}:{line_no}"
                if stem in listed_in:
                    if listed_in[stem] != list_path:
                        raise InputError(
                            f"{self.name}: {where}: video {stem} is also listed in "
                            f"{listed_in[stem]}; a video belongs to one split only"
                        )
                    continue
                listed_in[stem] = list_path
                candidates = by_stem.get(stem)
                if not candidates:
                    missing.append(f"{stem}.avi (listed in {list_path.relative_to(self.root)})")
                    continue
                own = [v for v in candidates if v.folder_split == split]
                video = (own or candidates)[0]
                if is_bonafide != (video.code.file == 1):
                    raise InputError(
                        f"{self.name}: {where}: label code says "
                        f"{'bona fide' if is_bonafide else 'attack'} but file {stem} is "
                        f"{'bona fide' if video.code.file == 1 else 'an attack'}"
                    )
                out.append(video.sample(split))
        if missing:
            raise ProtocolError(self.name, name, self.root, missing)
        return out

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Boxes from the sibling ``.txt`` of eye centres; None when it is absent.

        Frames whose eye coordinates are all zero (no face found) are left out.
        """
        video = Path(sample.path)
        txt = next(
            (p for p in (video.with_suffix(".txt"), video.with_suffix(".TXT")) if p.is_file()),
            None,
        )
        if txt is None:
            return None
        boxes: dict[int, Box] = {}
        for line_no, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), 1):
            fields = [f.strip() for f in line.strip().rstrip(",").split(",")]
            if fields == [""]:
                continue
            try:
                frame = int(float(fields[0]))
                xr, yr, xl, yl = (float(v) for v in fields[1:5])
            except (ValueError, IndexError):
                if line_no == 1 and not fields[0].lstrip("+-").replace(".", "").isdigit():
                    continue  # a header line
                raise InputError(
                    f"{self.name}: {txt}:{line_no}: expected 'frame,x_reye,y_reye,x_leye,"
                    f"y_leye', got {line.strip()!r}"
                ) from None
            if len(fields) > 5:
                raise InputError(
                    f"{self.name}: {txt}:{line_no}: expected 5 comma-separated values, "
                    f"got {len(fields)}"
                )
            if xr == yr == xl == yl == 0.0:
                continue
            boxes[frame] = box_from_eyes((xr, yr), (xl, yl))
        return boxes


def _read_list(path: Path) -> list[tuple[str, bool, int]]:
    """(video stem, is bona fide, line number) for each line ``+1,1_1_01_1`` of a list file."""
    entries = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        code, _, stem = (part.strip() for part in text.partition(","))
        stem = stem.rstrip(",").strip()
        if code not in ("+1", "1", "-1", "-2") or _parse(stem) is None:
            raise InputError(
                f"oulu-npu: {path}:{line_no}: expected '<+1|-1|-2>,P_S_UU_F', got {text!r}"
            )
        entries.append((stem, not code.startswith("-"), line_no))
    return entries
