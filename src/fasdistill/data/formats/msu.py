"""MSU-MFSD: face PAD videos from a laptop webcam and an Android phone.

Layout (as shipped)::

    ROOT/real/real_client002_android_SD_scene01.mp4
    ROOT/real/real_client002_laptop_SD_scene01.mov
    ROOT/attack/attack_client002_<android|laptop>_SD_<printed_photo|ipad_video|iphone_video>_
        scene01.<mp4|mov>
    ROOT/train_sub_list.txt, ROOT/test_sub_list.txt   (official client lists)

Each client has 2 bona fide and 6 attack videos (Wen et al., TIFS 2015).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats.base import (
    DatasetAdapter,
    ProtocolError,
    Sample,
    carve_dev,
    list_files,
    split_ext,
)
from fasdistill.errors import InputError

SPECIES = ("printed_photo", "ipad_video", "iphone_video")
LIST_FILES = {"train": "train_sub_list.txt", "test": "test_sub_list.txt"}
_EXTENSIONS = frozenset({".mp4", ".mov"})
_NAME = re.compile(
    r"^(real|attack)_client(\d+)_(android|laptop)_[a-z0-9]+_"
    r"(?:(printed_photo|ipad_video|iphone_video)_)?(scene\d+)$",
    flags=re.IGNORECASE,
)
_CLIENT_LINE = re.compile(r"^(?:client)?(\d+)$", flags=re.IGNORECASE)


def _client(number: int) -> str:
    return f"client{number:03d}"


class MsuMFSD(DatasetAdapter):
    """MSU-MFSD adapter: protocol grandtest over the official train/test client lists.

    Samples: ``pai`` is ``printed_photo``, ``ipad_video`` or ``iphone_video``;
    ``device`` the capture device (``android`` or ``laptop``), ``session`` the scene,
    ``subject`` ``clientNNN``. Dev is carved from the training clients with
    :func:`carve_dev` (MSU-MFSD has no dev split). Many Android videos are stored
    rotated: adapters never decode media, and frame reading honours the rotation
    metadata (the video reader handles it), so boxes and crops are upright.
    """

    name: ClassVar[str] = "msu-mfsd"
    protocols: ClassVar[tuple[str, ...]] = ("grandtest",)
    default_protocol: ClassVar[str] = "grandtest"
    description: ClassVar[str] = "MSU-MFSD (35 clients, laptop and Android captures)"

    def samples(self) -> list[Sample]:
        """Every named video of ``real/`` and ``attack/`` (other files go to ``skipped``)."""
        found: list[Sample] = []
        skipped: list[str] = []
        seen: set[str] = set()  # ids: "x.mp4" next to "x.mov" would clash
        for kind in ("real", "attack"):
            for parts, path in list_files(self.root, kind):
                rel = "/".join(parts)
                stem, ext = split_ext(parts[-1])
                m = _NAME.match(stem) if ext.lower() in _EXTENSIONS else None
                sample_id = rel[: len(rel) - len(ext)]
                if (
                    m is None
                    or len(parts) != 2
                    or m.group(1).lower() != kind
                    or (m.group(4) is None) != (kind == "real")
                    or sample_id in seen
                ):
                    skipped.append(rel)
                    continue
                seen.add(sample_id)
                species = (m.group(4) or "").lower()
                found.append(
                    Sample(
                        sample_id=sample_id,
                        path=path,
                        media="video",
                        label="attack" if species else "bonafide",
                        pai=species,
                        subject=_client(int(m.group(2))),
                        session=m.group(5).lower(),
                        device=m.group(3).lower(),
                        domain=self.name,
                    )
                )
        self.skipped = skipped
        return found

    def protocol(self, name: str) -> list[Sample]:
        """grandtest: train-list clients (dev carved from them) and test-list clients."""
        self.check_protocol_name(name)
        lists = {split: self.root / file for split, file in LIST_FILES.items()}
        self.require(name, [self.root / "real", self.root / "attack", *lists.values()])
        train = _read_clients(lists["train"])
        test = _read_clients(lists["test"])
        both = sorted(train.keys() & test.keys())
        if both:
            raise InputError(
                f"{self.name}: clients {', '.join(both)} are listed in both {lists['train']} "
                f"and {lists['test']}; a client belongs to one split only"
            )
        samples = self.samples()
        present = {s.subject for s in samples}
        missing = [
            f"videos of {client} (listed in {LIST_FILES[split]} line {line_no})"
            for split, clients in (("train", train), ("test", test))
            for client, line_no in clients.items()
            if client not in present
        ]
        if missing:
            raise ProtocolError(self.name, name, self.root, missing)
        dev = carve_dev(train)
        out = []
        for s in samples:
            if s.subject in test:
                out.append(s.with_split("test"))
            elif s.subject in train:
                out.append(s.with_split("dev" if s.subject in dev else "train"))
        return out


def _read_clients(path: Path) -> dict[str, int]:
    """{``clientNNN``: line number} from a list of client numbers (``2``, ``002``), one a line."""
    clients: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        m = _CLIENT_LINE.match(text)
        if m is None:
            raise InputError(f"msu-mfsd: {path}:{line_no}: expected a client number, got {text!r}")
        clients.setdefault(_client(int(m.group(1))), line_no)
    return clients
