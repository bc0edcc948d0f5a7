"""Leave-one-dataset-out protocols over OULU-NPU, CASIA-FASD, Replay-Attack and MSU-MFSD.

The four O&C&I->M style protocols of domain-generalisation papers (Shao et al.,
CVPR 2019): train and select on three datasets, test on the fourth. The root is
a mapping of dataset names to their roots, given as one string::

    oulu-npu=/data/oulu,casia-fasd=/data/casia,replay-attack=/data/idiap,msu-mfsd=/data/msu

Only the datasets a protocol uses must be given. Each source contributes the
train and dev splits of its broadest protocol (OULU-NPU: every video of
``Train_files`` and ``Dev_files``; CASIA-FASD ``overall``; Replay-Attack and
MSU-MFSD ``grandtest``), the target the test split of the same (OULU-NPU: every
video of ``Test_files``). Sample and subject ids get the dataset name as a
prefix (``msu-mfsd/real/real_client002_...``) and ``domain`` is the dataset name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from fasdistill.data.formats import get_adapter
from fasdistill.data.formats.base import Box, DatasetAdapter, Sample
from fasdistill.errors import InputError

LETTERS = {"O": "oulu-npu", "C": "casia-fasd", "I": "replay-attack", "M": "msu-mfsd"}
DATASETS = tuple(LETTERS.values())
BROADEST = {"casia-fasd": "overall", "replay-attack": "grandtest", "msu-mfsd": "grandtest"}
OULU_FOLDERS = {"Train_files": "train", "Dev_files": "dev", "Test_files": "test"}
PROTOCOLS = ("OCI-M", "OMI-C", "OCM-I", "ICM-O")


def parse_roots(
    root: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]],
) -> dict[str, Path]:
    """{dataset: root} from ``name=PATH,name=PATH`` (or from a mapping), checked."""
    if isinstance(root, Mapping):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in root.items()]
    else:
        text = os.fspath(root)
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, path = item.partition("=")
            if not sep or not path.strip():
                raise InputError(
                    f"cross-domain: root entry {item!r} is not name=PATH; give e.g. "
                    "oulu-npu=/data/oulu,casia-fasd=/data/casia,replay-attack=/data/idiap,"
                    "msu-mfsd=/data/msu"
                )
            pairs.append((name.strip(), path.strip()))
    if not pairs:
        raise InputError(
            "cross-domain: empty root; give name=PATH entries for "
            f"{', '.join(DATASETS)}, separated by commas"
        )
    roots: dict[str, Path] = {}
    for name, path in pairs:
        if name not in DATASETS:
            raise InputError(
                f"cross-domain: unknown dataset {name!r} in the root; choose from "
                f"{', '.join(DATASETS)}"
            )
        if name in roots:
            raise InputError(f"cross-domain: {name} is given twice in the root")
        if not Path(path).is_dir():
            raise InputError(f"cross-domain: {name}={path}: not a directory")
        roots[name] = Path(path)
    return roots


def protocol_datasets(name: str) -> tuple[tuple[str, ...], str]:
    """(source datasets, target dataset) of a protocol name such as ``OCI-M``."""
    sources, target = name.split("-")
    return tuple(LETTERS[c] for c in sources), LETTERS[target]


class CrossDomain(DatasetAdapter):
    """Leave-one-out protocols OCI-M, OMI-C, OCM-I and ICM-O built from four adapters.

    ``root`` is the ``name=PATH,...`` string (or a mapping); ``self.roots`` holds
    the parsed mapping and ``self.root`` the deepest folder containing every given
    root (for messages). Source adapters are created on first use, and
    :meth:`face_boxes` hands a sample back to the adapter that owns it.
    """

    name: ClassVar[str] = "cross-domain"
    protocols: ClassVar[tuple[str, ...]] = PROTOCOLS
    default_protocol: ClassVar[str] = "OCI-M"
    description: ClassVar[str] = "leave-one-dataset-out over OULU-NPU, CASIA, Replay-Attack, MSU"

    def __init__(self, root: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]) -> None:
        self.roots = parse_roots(root)
        self.root = Path(os.path.commonpath([p.absolute() for p in self.roots.values()]))
        self._adapters: dict[str, DatasetAdapter] = {}
        self._origin: dict[str, Sample] = {}

    def data_roots(self) -> list[Path]:
        """Every source dataset's root."""
        return [Path(p) for p in self.roots.values()]

    @property
    def skipped(self) -> list[str]:
        """Files the source adapters ignored, as ``<dataset>/<path relative to its root>``."""
        return [
            f"{name}/{rel}"
            for name, adapter in sorted(self._adapters.items())
            for rel in getattr(adapter, "skipped", [])
        ]

    def adapter(self, dataset: str) -> DatasetAdapter:
        """The adapter of ``dataset`` (which must be in the root mapping)."""
        if dataset not in self._adapters:
            if dataset not in self.roots:
                raise InputError(f"cross-domain: no root for {dataset}; add {dataset}=PATH")
            self._adapters[dataset] = get_adapter(dataset, self.roots[dataset])
        return self._adapters[dataset]

    def samples(self) -> list[Sample]:
        """Every sample of every dataset in the root mapping, ids prefixed with the dataset."""
        return [
            self._prefixed(dataset, s)
            for dataset in DATASETS
            if dataset in self.roots
            for s in self.adapter(dataset).samples()
        ]

    def protocol(self, name: str) -> list[Sample]:
        """Sources' train and dev splits, then the target's test split."""
        self.check_protocol_name(name)
        sources, target = protocol_datasets(name)
        absent = [d for d in (*sources, target) if d not in self.roots]
        if absent:
            raise InputError(
                f"cross-domain protocol {name!r} needs {', '.join(absent)}: add "
                f"{','.join(f'{d}=PATH' for d in absent)} to the root mapping"
            )
        out = []
        for dataset in sources:
            out += [s for s in self._broadest(dataset, name) if s.split in ("train", "dev")]
        out += [s for s in self._broadest(target, name) if s.split == "test"]
        return out

    def face_boxes(self, sample: Sample) -> dict[int, Box] | None:
        """The owning adapter's boxes for the sample (ids carry the dataset prefix)."""
        dataset = sample.sample_id.split("/", 1)[0]
        if sample.sample_id not in self._origin and dataset in self.roots:
            for s in self.adapter(dataset).samples():
                self._prefixed(dataset, s)
        original = self._origin.get(sample.sample_id)
        if original is None:
            raise InputError(f"cross-domain: sample {sample.sample_id!r} belongs to no dataset")
        return self.adapter(dataset).face_boxes(original)

    def _broadest(self, dataset: str, protocol: str) -> list[Sample]:
        """The dataset's samples with splits from its broadest protocol, prefixed."""
        adapter = self.adapter(dataset)
        if dataset == "oulu-npu":  # no OULU protocol uses every video: split by folder
            adapter.require(protocol, (adapter.root / folder for folder in OULU_FOLDERS))
            split = [
                s.with_split(OULU_FOLDERS[s.sample_id.split("/", 1)[0]])
                for s in adapter.samples()
                if s.sample_id.split("/", 1)[0] in OULU_FOLDERS
            ]
        else:
            split = adapter.protocol(BROADEST[dataset])
        return [self._prefixed(dataset, s) for s in split]

    def _prefixed(self, dataset: str, sample: Sample) -> Sample:
        """``sample`` with dataset-prefixed ids and domain; remembers the original."""
        out = replace(
            sample,
            sample_id=f"{dataset}/{sample.sample_id}",
            subject=f"{dataset}/{sample.subject}",
            domain=dataset,
        )
        self._origin.setdefault(out.sample_id, replace(sample, split=""))
        return out
