"""Dataset adapters: public layouts -> :class:`Sample` records and protocol splits.

Adapters are looked up by name; each lives in its own module and is imported
only when asked for, so a user of one dataset never pays for the others.
"""

from __future__ import annotations

import importlib
import os

from fasdistill.data.formats.base import (
    Box,
    DatasetAdapter,
    ProtocolError,
    Sample,
    split_counts,
)
from fasdistill.errors import InputError

# name -> "module:Class" (modules under fasdistill.data.formats)
_ADAPTERS = {
    "oulu-npu": "oulu:OuluNPU",
    "replay-attack": "replay_attack:ReplayAttack",
    "replay-mobile": "replay_mobile:ReplayMobile",
    "casia-fasd": "casia:CasiaFASD",
    "msu-mfsd": "msu:MsuMFSD",
    "siw": "siw:SiW",
    "celeba-spoof": "celeba_spoof:CelebASpoof",
    "casia-surf": "casia_surf:CasiaSurf",
    "cefa": "cefa:CeFA",
    "wmca": "wmca:WMCA",
    "folder": "folder:FolderDataset",
    "synthspoof": "synthspoof:SynthSpoofDataset",
    "cross-domain": "cross_domain:CrossDomain",
}
DATASETS = tuple(_ADAPTERS)


def adapter_class(name: str) -> type[DatasetAdapter]:
    """The adapter class registered under ``name``."""
    if name not in _ADAPTERS:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    module_name, class_name = _ADAPTERS[name].split(":")
    module = importlib.import_module(f"fasdistill.data.formats.{module_name}")
    return getattr(module, class_name)


def get_adapter(name: str, root: str | os.PathLike[str]) -> DatasetAdapter:
    """An adapter for dataset ``name`` rooted at ``root``."""
    return adapter_class(name)(root)


__all__ = [
    "DATASETS",
    "Box",
    "DatasetAdapter",
    "ProtocolError",
    "Sample",
    "adapter_class",
    "get_adapter",
    "split_counts",
]
