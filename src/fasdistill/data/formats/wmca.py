"""Idiap WMCA (George et al., IEEE TIFS 2020): colour, depth, near-infrared and thermal.

Layout of the preprocessed release (faces cropped and aligned, 128 x 128)::

    ROOT/preprocessed-face-station_RGB/<DD.MM.YY>/<CCC>_<SS>_<PPP>_<T>_<II>.hdf5
    ROOT/preprocessed-face-station_CDIT/<DD.MM.YY>/<same name>.hdf5
    ROOT/wmca-protocols-csv/PROTOCOL-grandtest.csv
    ROOT/wmca-protocols-csv/PROTOCOL-LOO_<attack>.csv          (optional, see below)

Each HDF5 file holds groups ``Frame_0``, ``Frame_1``, ... with a dataset ``array``:
(3, H, W) RGB in the RGB station's file, (4, H, W) grey, depth, infrared and thermal
in the CDIT station's. The name is client CCC (``subject`` ``client<CCC>``), session
SS, presenter PPP, type T (0 bona fide, 1 facial disguise, 2 fake face or mask,
3 photo, 4 video) and PAI id II. One sample per recording: ``path`` the RGB file,
depth and IR both registered to the CDIT file (channels 1 and 2; thermal is not read).
Frame indices are the ``n`` of ``Frame_n``, listed from the RGB file.

Protocols come from Idiap's protocol files (rows ``face-station/<date>/<name>,
<label>,<attack type>,<group>``: label 0 bona fide, 1 attack; groups train, dev and
eval = test), as the public code that reads them uses the columns; a header row is
skipped and a label contradicting the name's type is an error. ``pai`` is the attack
type, lower case: fakehead, flexiblemask, glasses, papermask, print (``prints`` in
the protocol names), replay, rigidmask. ``grandtest`` holds every attack; ``LOO_<attack>``
is read from its file when present, otherwise built by its published rule (Idiap's
bob.pad.face BATL interface): grandtest's partition, the attack removed from train
and dev, and test holding only bona fide and that attack. The split sizes could not
be checked against public numbers: the protocol files themselves were not at hand.

Depth and IR come back as 3-channel BGR uint8. The release stores uint8; other
types are scaled to 8 bits by their full range (uint16 / 257; floats taken as 0-1).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fasdistill.data.formats.base import Box, DatasetAdapter, ProtocolError, Sample, list_files
from fasdistill.errors import InputError

RGB_STATION = "preprocessed-face-station_RGB"
CDIT_STATION = "preprocessed-face-station_CDIT"
PROTOCOL_DIR = "wmca-protocols-csv"
LOO = ("fakehead", "flexiblemask", "glasses", "papermask", "prints", "replay", "rigidmask")
ALIASES = {"prints": "print", "photo": "print", "video": "replay", "mannequin": "fakehead"}
BY_TYPE = {"1": "glasses", "3": "print", "4": "replay"}  # type 2 holds four species
GROUPS = {"train": "train", "dev": "dev", "eval": "test", "test": "test"}
CHANNELS = {"depth": 1, "ir": 2}  # in the CDIT array
_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{3})_(\d)_(\d{2})$")
_FRAME = re.compile(r"^Frame_(\d+)$")


class _Row(NamedTuple):
    """One recording of a protocol file."""

    rel: str  # <date>/<name>
    label: str
    pai: str
    split: str
    client: str
    session: str


def species(loo: str) -> str:
    """The ``pai`` value of the attack a ``LOO_<attack>`` protocol leaves out."""
    return ALIASES.get(loo, loo)


class WMCA(DatasetAdapter):
    """WMCA recordings with the grandtest and leave-one-attack-out protocols."""

    name: ClassVar[str] = "wmca"
    protocols: ClassVar[tuple[str, ...]] = ("grandtest", *(f"LOO_{a}" for a in LOO))
    default_protocol: ClassVar[str] = "grandtest"
    description: ClassVar[str] = "Idiap WMCA: 72 identities, colour/depth/IR/thermal, 7 PAI types"
    modalities: ClassVar[tuple[str, ...]] = ("rgb", "depth", "ir")

    def samples(self) -> list[Sample]:
        """Every recording of the grandtest file, without a split."""
        return [s.with_split("") for s in self.protocol("grandtest")]

    def protocol(self, name: str) -> list[Sample]:
        """``grandtest`` or ``LOO_<attack>`` from its protocol file (LOO: else by the rule)."""
        self.check_protocol_name(name)
        _h5py(str(self.root))  # fail here, not once per recording during preparation
        own = self.root / PROTOCOL_DIR / f"PROTOCOL-{name}.csv"
        grandtest = self.root / PROTOCOL_DIR / "PROTOCOL-grandtest.csv"
        self.require(name, [self.root / RGB_STATION, own if own.is_file() else grandtest])
        rows = _read_protocol(own if own.is_file() else grandtest)
        if name != "grandtest" and not own.is_file():
            left_out = species(name[len("LOO_") :])
            rows = [r for r in rows if (r.pai == left_out) == (r.split == "test") or r.pai == ""]
        self.skipped = [
            "/".join(parts)
            for parts, _ in list_files(self.root, RGB_STATION)
            if not (parts[-1].endswith(".hdf5") and _NAME.match(parts[-1][: -len(".hdf5")]))
        ]
        missing = [
            f"{RGB_STATION}/{r.rel}.hdf5"
            for r in rows
            if not (self.root / RGB_STATION / f"{r.rel}.hdf5").is_file()
        ]
        if missing:
            raise ProtocolError(self.name, name, self.root, missing)
        return [self._sample(r) for r in rows]

    def _sample(self, row: _Row) -> Sample:
        root = self.root.absolute()
        cdit = root / CDIT_STATION / f"{row.rel}.hdf5"
        return Sample(
            sample_id=row.rel,
            path=str(root / RGB_STATION / f"{row.rel}.hdf5"),
            media="video",
            label=row.label,
            pai=row.pai,
            subject=f"client{row.client}",
            session=f"session{row.session}",
            domain=self.name,
            split=row.split,
            modalities=tuple((m, str(cdit)) for m in CHANNELS) if cdit.is_file() else (),
        )

    def read_frames(
        self, sample: Sample, modality: str, count: int | None, every: int | None
    ) -> tuple[list[tuple[int, np.ndarray]], list[int]]:
        """Sampled frames of one channel as BGR uint8, by the RGB file's ``Frame_n`` list."""
        from fasdistill.data.video import sample_indices

        path = sample.modality_path(modality)
        if path is None:
            raise InputError(f"{sample.sample_id}: no {modality} recording (CDIT file missing)")
        numbers = self._frame_numbers(sample.path)
        frames, missing = [], []
        with _open(path) as recording:
            for position in sample_indices(len(numbers), count, every, sample.frame_limit):
                n = numbers[position]
                try:
                    array = np.asarray(recording[f"Frame_{n}"]["array"][()])
                except (KeyError, OSError):
                    missing.append(n)
                    continue
                frames.append((n, to_bgr(array, CHANNELS.get(modality), path)))
        return frames, missing

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """Every frame whole: the release ships faces already cropped and aligned."""
        with _open(sample.path) as recording:
            boxes = {}
            for key in recording:
                m = _FRAME.match(key)
                if m is not None:
                    height, width = recording[key]["array"].shape[-2:]
                    boxes[int(m.group(1))] = (0.0, 0.0, float(width), float(height))
        return boxes

    @staticmethod
    def _frame_numbers(path: str) -> list[int]:
        with _open(path) as recording:
            return sorted(int(m.group(1)) for k in recording if (m := _FRAME.match(k)))


def to_bgr(array: np.ndarray, channel: int | None, source: str = "") -> np.ndarray:
    """An HDF5 frame as BGR uint8: the RGB image (``channel`` None) or one grey channel."""
    if channel is None:
        if array.ndim != 3 or array.shape[0] != 3:
            raise InputError(f"{source}: expected a (3, H, W) RGB frame, got {array.shape}")
        return np.ascontiguousarray(_to_uint8(array).transpose(1, 2, 0)[..., ::-1])
    if array.ndim != 3 or array.shape[0] <= channel:
        raise InputError(f"{source}: expected a (4, H, W) CDIT frame, got {array.shape}")
    grey = _to_uint8(array[channel])
    return np.repeat(grey[..., None], 3, axis=2)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """8 bits by the type's full range: uint8 as is, integers scaled, floats taken as 0-1."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max)
        scaled = np.clip(array.astype(np.float64), 0, top) * (255.0 / top)
    else:
        scaled = np.nan_to_num(array.astype(np.float64)).clip(0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)


def _h5py(path: str) -> Any:
    """The h5py module, imported on first use; InputError naming the extra when missing."""
    try:
        import h5py
    except ImportError:
        raise InputError(
            f'wmca: reading {path} needs h5py: pip install "fasdistill[hdf5]"'
        ) from None
    return h5py


def _open(path: str) -> Any:
    """An HDF5 file opened read-only; InputError when h5py is missing or the file unreadable."""
    h5py = _h5py(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the HDF5 recording ({exc})") from None


def _read_protocol(path: Path) -> list[_Row]:
    """The rows of a protocol file: ``path,label,attack type,group`` (header row skipped)."""
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""] or (line_no == 1 and (len(fields) < 2 or not fields[1].isdigit())):
            continue  # a blank line or the header
        where = f"{path}:{line_no}"
        parts = fields[0].rsplit(".hdf5", 1)[0].split("/")
        code = _NAME.match(parts[-1])
        if len(fields) != 4 or len(parts) < 2 or code is None or fields[3] not in GROUPS:
            raise InputError(
                f"wmca: {where}: expected '<station>/<date>/<CCC_SS_PPP_T_II>,<0|1>,"
                f"<attack type>,<train|dev|eval>', got {line.strip()!r}"
            )
        bonafide = fields[1] == "0"
        if bonafide != (code.group(4) == "0"):
            raise InputError(
                f"wmca: {where}: label {fields[1]} contradicts type {code.group(4)} in the name"
            )
        pai = "" if bonafide else _species(fields[2], code.group(4), where)
        rel = "/".join(parts[-2:])
        if rel in seen:
            raise InputError(f"wmca: {where}: {rel} is already listed on line {seen[rel]}")
        seen[rel] = line_no
        label = "bonafide" if bonafide else "attack"
        rows.append(_Row(rel, label, pai, GROUPS[fields[3]], code.group(1), code.group(2)))
    return rows


def _species(text: str, type_id: str, where: str) -> str:
    """An attack's species from the file's attack type (else the name's type, if it tells)."""
    key = re.sub(r"[^a-z]", "", text.lower())
    key = ALIASES.get(key, key)
    if key in {species(a) for a in LOO}:
        return key
    if type_id in BY_TYPE:
        return BY_TYPE[type_id]
    raise InputError(
        f"wmca: {where}: unknown attack type {text!r} for a type-{type_id} recording; expected "
        f"one of {', '.join(LOO)}"
    )
