"""CASIA-SURF CeFA (Liu et al., WACV 2021): cross-ethnicity face PAD, colour / depth / IR.

Layout of the 2020 ChaLearn challenge release (one folder of frames per video)::

    ROOT/train/E_SSS_D_S_P/{profile,depth,ir}/0001.jpg ...
    ROOT/dev/003000/{profile,depth,ir}/...          (anonymised video folders)
    ROOT/test/000001/{profile,depth,ir}/...
    ROOT/4@K_train.txt      frame lines 'train/1_000_1_1_1/profile/0001.jpg 1'
    ROOT/4@K_dev_ref.txt    video lines 'dev/003000 1'   (4@K_dev_res.txt: no labels)
    ROOT/4@K_test_ref.txt   video lines 'test/000001 0'  (see below)

Labels in the lists: 1 bona fide, 0 attack. A video code ``E_SSS_D_S_P`` is the
ethnicity E (1 AF, 2 CA, 3 EA: ``domain``), subject SSS (000-499 within each
ethnicity: ``subject`` is ``AF-120``), capture device D, session S and PAI P
(1 bona fide, 2 print on cloth, 3 printed photo, 4 screen replay; species
``print`` for 2 and 3, ``replay`` for 4), as the authors' dataset repository
describes it (github.com/liuajian/CASIA-FAS-Dataset, CASIA_CeFA/readme.md).
``profile`` (or ``color`` in the authors' later copies) is the RGB stream; a sample
is one video folder (``media`` "video", ``path`` the RGB folder) and its frames
are the sorted image files, the same file names being read from depth/ and ir/.

Protocols, as the authors' video lists there define them: ``1@k`` cross-ethnicity
(train and dev on ethnicity k, test on the other two, print and replay throughout),
``2@1``/``2@2`` cross-PAI (print -> replay, replay -> print, all ethnicities),
``4@k`` both (train and dev: ethnicity k, replay; test: the other two, print); k is
1 AF, 2 CA, 3 EA; subjects 000-199 train, 200-299 dev, 300-499 test. With
``<name>_train.txt`` in the root the official lists are read; otherwise the rule
is applied to video folders named by their code (the authors' full release). The
authors' test lists also hold 1,123 mask videos, stored outside the ethnicity
naming: the rule leaves them out. Protocol 3 (cross-modality) chooses modalities,
not samples, and its definition could not be established: it is not offered.

The challenge shipped lists for protocol 4 only, and dev/test folders without names,
so the species of an anonymised attack is taken from the protocol (4@k: dev replay,
test print) and its subject is unknown (empty). Dev labels came with phase 2
(``_dev_ref``); test labels were not part of the public release: ``4@K_test_ref.txt``
is read in the dev list's format once the organisers' labels are at hand.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np

from fasdistill.data.formats.base import IMAGE_EXTENSIONS, DatasetAdapter, ProtocolError, Sample
from fasdistill.errors import InputError

ETHNICITIES = {"1": "AF", "2": "CA", "3": "EA"}
SPECIES = {"1": "", "2": "print", "3": "print", "4": "replay"}
RGB_FOLDERS = ("profile", "color")
SUBJECTS = {"train": range(0, 200), "dev": range(200, 300), "test": range(300, 500)}
LIST_SUFFIXES = {"train": "_train.txt", "dev": "_dev_ref.txt", "test": "_test_ref.txt"}
LABELS = {"1": "bonafide", "0": "attack"}
_CODE = re.compile(r"^([123])_(\d{3})_(\d)_(\d)_([1-4])$")
_ANONYMOUS = re.compile(r"^\d{6}$")
_DIGITS = re.compile(r"(\d+)")


class _Video(NamedTuple):
    """A video folder: its RGB frame folder and the (modality, folder) pairs beside it."""

    rgb: str
    extras: tuple[tuple[str, str], ...]


class _Side(NamedTuple):
    """What one side of a protocol (train + dev, or test) holds."""

    ethnicities: frozenset[str]
    species: frozenset[str]


def definition(protocol: str) -> tuple[_Side, _Side]:
    """(train and dev side, test side) of a CeFA protocol, as the authors' lists define it."""
    family, k = protocol.split("@")
    every = frozenset(ETHNICITIES.values())
    both = frozenset({"print", "replay"})
    if family == "2":
        train, test = ("print", "replay") if k == "1" else ("replay", "print")
        return _Side(every, frozenset({train})), _Side(every, frozenset({test}))
    own = frozenset({ETHNICITIES[k]})
    if family == "1":
        return _Side(own, both), _Side(every - own, both)
    return _Side(own, frozenset({"replay"})), _Side(every - own, frozenset({"print"}))


class CeFA(DatasetAdapter):
    """CeFA video folders: protocols 1@1-1@3, 2@1, 2@2 and 4@1-4@3 (lists or rule)."""

    name: ClassVar[str] = "cefa"
    protocols: ClassVar[tuple[str, ...]] = ("1@1", "1@2", "1@3", "2@1", "2@2", "4@1", "4@2", "4@3")
    default_protocol: ClassVar[str] = "4@1"
    description: ClassVar[str] = "CASIA-SURF CeFA: 3 ethnicities, colour/depth/IR, print+replay"
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "depth", "ir")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(root)
        self._videos: dict[str, _Video] | None = None

    def samples(self) -> list[Sample]:
        """Every video folder named by its code (anonymised ones need a protocol's lists)."""
        return [self._sample(rel, video) for rel, video in self._scan().items() if _code(rel)]

    def protocol(self, name: str) -> list[Sample]:
        """Protocol ``name`` from its lists when ``<name>_train.txt`` exists, else by the rule."""
        self.check_protocol_name(name)
        lists = {split: self.root / f"{name}{suffix}" for split, suffix in LIST_SUFFIXES.items()}
        if lists["train"].is_file():
            return self._from_lists(name, lists)
        sides = dict(zip(("train", "test"), definition(name), strict=True))
        out = []
        for rel, video in self._scan().items():
            code = _code(rel)
            if code is None:
                continue
            split = next((s for s, r in SUBJECTS.items() if int(code[1]) in r), "")
            side = sides["test" if split == "test" else "train"]
            ethnicity, species = ETHNICITIES[code[0]], SPECIES[code[4]]
            if split and ethnicity in side.ethnicities and species in side.species | {""}:
                out.append(self._sample(rel, video, split))
        absent = [s for s in LIST_SUFFIXES if s not in {x.split for x in out}]
        if absent:
            why = f"(or {'/'.join(absent)} video folders named by code, for the published rule)"
            raise ProtocolError(self.name, name, self.root, [f"{p} {why}" for p in lists.values()])
        return out

    def read_frames(
        self, sample: Sample, modality: str, count: int | None, every: int | None
    ) -> tuple[list[tuple[int, np.ndarray]], list[int]]:
        """The sampled frames of one modality folder, by the RGB folder's sorted file names."""
        from fasdistill.data.imageio import read_image
        from fasdistill.data.video import FramesTooLarge, sample_indices

        folder = sample.modality_path(modality)
        if folder is None or not Path(folder).is_dir():
            raise InputError(f"{sample.sample_id}: no {modality} folder")
        names = frame_names(Path(sample.path))
        frames, missing = [], []
        for index in sample_indices(len(names), count, every, sample.frame_limit):
            read = read_image(Path(folder) / names[index])
            if read.status == "image_too_large":
                raise FramesTooLarge(read.detail)
            if read.image is None:
                missing.append(index)
            else:
                frames.append((index, read.image))
        return frames, missing

    # ------------------------------------------------------------------ helpers

    def _scan(self) -> dict[str, _Video]:
        """{relative path: video} of every video folder (one holding an RGB folder), cached.

        Frame folders are never listed, so a scan costs one listing per video.
        """
        if self._videos is not None:
            return self._videos
        found: dict[str, _Video] = {}
        skipped = []
        top = self.root.absolute()
        for dirpath, dirnames, _ in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rgb = next((d for d in RGB_FOLDERS if d in dirnames), None)
            if rgb is None:
                continue
            rel = Path(dirpath).relative_to(top).as_posix()
            extras = tuple((m, f"{dirpath}{os.sep}{m}") for m in ("depth", "ir") if m in dirnames)
            found[rel] = _Video(f"{dirpath}{os.sep}{rgb}", extras)
            if _code(rel) is None and not _ANONYMOUS.match(rel.rsplit("/", 1)[-1]):
                skipped.append(rel)
            dirnames.clear()
        self.skipped = skipped
        self._videos = found
        return found

    def _sample(
        self,
        rel: str,
        video: _Video,
        split: str = "",
        label: str = "",
        pai: str = "",
        domain: str = "",
    ) -> Sample:
        """The sample of a video folder: fields from its code, or as given (anonymised)."""
        code = _code(rel)
        subject = session = device = ""
        if code is not None:
            ethnicity, number, device_code, session_code, pai_code = code
            domain = ETHNICITIES[ethnicity]
            subject, session = f"{domain}-{number}", f"session{session_code}"
            device = f"device{device_code}"
            label, pai = ("bonafide" if pai_code == "1" else "attack"), SPECIES[pai_code]
        return Sample(
            sample_id=rel,
            path=video.rgb,
            media="video",
            label=label,
            pai=pai,
            subject=subject,
            session=session,
            device=device,
            domain=domain,
            split=split,
            modalities=video.extras,
        )

    def _from_lists(self, name: str, lists: dict[str, Path]) -> list[Sample]:
        """The videos the official lists name, each with its list's split and label."""
        missing_lists = [
            f"{p} (the labelled {s} list; {p.name.replace('_ref', '_res')} has no labels)"
            for s, p in lists.items()
            if not p.is_file()
        ]
        if missing_lists:
            raise ProtocolError(self.name, name, self.root, missing_lists)
        videos = self._scan()
        sides = dict(zip(("train", "test"), definition(name), strict=True))
        out: list[Sample] = []
        missing: list[str] = []
        listed_in: dict[str, str] = {}
        for split, list_path in lists.items():
            side = sides["test" if split == "test" else "train"]
            for rel, label, where in _read_list(list_path):
                if rel in listed_in:
                    raise InputError(
                        f"{self.name}: {where}: video {rel} is also listed in {listed_in[rel]}"
                    )
                listed_in[rel] = list_path.name
                if rel not in videos:
                    missing.append(f"{rel}/ (listed in {list_path.name})")
                    continue
                out.append(self._listed(rel, videos[rel], split, label, side, where))
        if missing:
            raise ProtocolError(self.name, name, self.root, missing)
        return out

    def _listed(
        self, rel: str, video: _Video, split: str, label: str, side: _Side, where: str
    ) -> Sample:
        """A listed video: named ones checked against the label, anonymised ones completed."""
        if _code(rel) is not None:
            sample = self._sample(rel, video, split)
            if sample.label != label:
                raise InputError(
                    f"{self.name}: {where}: the list says {label} but video {rel} is "
                    f"{sample.label} by its name"
                )
            return sample
        pai = ""
        if label == "attack":
            if len(side.species) != 1:
                raise InputError(
                    f"{self.name}: {where}: cannot tell the attack species of anonymised "
                    f"video {rel} (the protocol has {', '.join(sorted(side.species))})"
                )
            pai = next(iter(side.species))
        domain = next(iter(side.ethnicities)) if len(side.ethnicities) == 1 else ""
        return self._sample(rel, video, split, label, pai, domain)


def frame_names(folder: Path) -> list[str]:
    """The image files of a frame folder in natural order (``2.jpg`` before ``10.jpg``)."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries]
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the frames ({exc.strerror or exc})") from None
    images = [n for n in names if n[0] != "." and Path(n).suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda n: [int(t) if t.isdigit() else t for t in _DIGITS.split(n)])


def _code(rel: str) -> tuple[str, ...] | None:
    """(ethnicity, subject, device, session, PAI) of a video folder name, None if anonymised."""
    m = _CODE.match(rel.rsplit("/", 1)[-1])
    return m.groups() if m else None


def _read_list(path: Path) -> list[tuple[str, str, str]]:
    """(video folder, label, 'file:line') per line; frame lines name their video's folder.

    A video listed by several frame lines appears once; its lines must agree.
    """
    out: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{path.name}:{line_no}"
        if len(tokens) != 2 or tokens[1] not in LABELS:
            raise InputError(
                f"cefa: {path}:{line_no}: expected '<video folder or frame> <1|0>', got "
                f"{line.strip()!r}"
            )
        rel = re.split(r"/(?:profile|color)/", tokens[0].strip("/"), maxsplit=1)[0]
        label = LABELS[tokens[1]]
        if rel in seen:
            if seen[rel] != label:
                raise InputError(f"cefa: {where}: frames of {rel} carry different labels")
            continue
        seen[rel] = label
        out.append((rel, label, where))
    return out
