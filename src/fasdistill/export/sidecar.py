"""The JSON sidecar ``<file>.json`` of programs that have no metadata field of their own.

ExecuTorch ``.pte``, LiteRT ``.tflite`` and ncnn ``.param`` files carry their
preprocessing, classes and threshold beside them, with the keys of an exported
ONNX model's ``metadata_props`` (decoded), plus ``fasdistill_format`` (which
format wrote it) and ``program`` (the file it describes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError
from fasdistill.export.onnx import META_KEYS, OPTIONAL_META_KEYS, onnx_metadata
from fasdistill.utils.atomic import atomic_write_json


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write(path: Path, meta: dict[str, Any], kind: str) -> Path:
    """``<file>.json`` from ``meta`` (threshold and criterion included), atomically."""
    encoded = onnx_metadata(meta)
    del encoded["fasdistill_format"]  # the only value not JSON-encoded
    props = {"fasdistill_format": kind, "program": path.name}
    props |= {key: json.loads(value) for key, value in encoded.items()}
    return atomic_write_json(sidecar_path(path), props)


def read(path: Path, kind: str) -> dict[str, Any] | None:
    """The metadata in ``path``'s sidecar; None when it has none (a model from elsewhere)."""
    sidecar = sidecar_path(path)
    try:
        data = json.loads(sidecar.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{sidecar}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(data, dict) or data.get("fasdistill_format") != kind:
        found = data.get("fasdistill_format") if isinstance(data, dict) else None
        raise InputError(f"{sidecar}: fasdistill_format is {found!r}, expected {kind!r}")
    missing = [k for k in META_KEYS if k not in data]
    if missing:
        raise InputError(f"{sidecar}: missing keys {missing}")
    keys = META_KEYS + tuple(k for k in OPTIONAL_META_KEYS if k in data)
    return {k: data[k] for k in keys}
