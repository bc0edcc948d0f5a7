"""What a model file holds, by its first bytes rather than its name.

A user who renames ``model.onnx`` to ``model.pt`` (or the reverse) should hear
"this is an ONNX model", not a loader's advice about unsafe loading. Only the
first few bytes are read, so this is cheap and needs neither onnx nor torch.
"""

from __future__ import annotations

import os
from pathlib import Path

_ZIP = b"PK\x03\x04"  # torch.save's default container
_PICKLE = b"\x80"  # torch.save(..., _use_new_zipfile_serialization=False): a pickle
# An ONNX ModelProto starts with field 1 (ir_version, a small varint), then another
# ModelProto field: producer_name/version, domain, model_version, doc_string, graph, opset.
_ONNX_NEXT_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42})


def model_format(path: str | os.PathLike[str]) -> str | None:
    """``"onnx"``, ``"pytorch"`` (zip or pickle container) or None when the bytes say neither."""
    try:
        with Path(path).open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return None
    if head.startswith(_ZIP) or head.startswith(_PICKLE):
        return "pytorch"
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 64 and head[2] in _ONNX_NEXT_TAGS:
        return "onnx"
    return None
