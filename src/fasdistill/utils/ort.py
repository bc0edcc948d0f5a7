"""ONNX Runtime sessions opened one way everywhere: CPU provider, quiet, a set thread count."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fasdistill.errors import InputError


def open_session(path: str | os.PathLike[str], threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU; ``threads`` None lets ORT choose.

    A missing onnxruntime or a file ORT cannot load is an :class:`InputError` naming
    the file and the fix.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            f"{path}: running ONNX models needs onnxruntime: pip install 'fasdistill[onnx]'"
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(Path(path)), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
        raise InputError(f"{path}: ONNX Runtime cannot load the model ({exc})") from None
