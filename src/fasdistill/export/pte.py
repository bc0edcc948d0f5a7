"""ExecuTorch ``.pte`` programs with the XNNPACK delegate: fp32, and int8 through PT2E.

The ``mobile`` extra installs ExecuTorch. A ``.pte`` has no metadata field, so its
preprocessing and threshold travel in a ``<file>.json`` sidecar with the same keys
as an exported ONNX model's ``metadata_props``. Programs take batch 1 (a phone
scores one face at a time); the scorer here loops over larger batches.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fasdistill.errors import InputError
from fasdistill.export import pt2e, sidecar
from fasdistill.export.formats import Conversion
from fasdistill.export.onnx import ScoredModel

EXTRA = "pip install 'fasdistill[mobile]'"
SIDECAR_FORMAT = "fasdistill-pte/1"


def available() -> bool:
    """Whether ExecuTorch (with its XNNPACK backend) can be imported."""
    try:
        import executorch.backends.xnnpack.partition.xnnpack_partitioner
        import executorch.runtime  # noqa: F401
    except ImportError:
        return False
    return True


def _lower(program: torch.export.ExportedProgram) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return edge.to_executorch().buffer


def export_pte(
    model: nn.Module,
    meta: dict[str, Any],
    path: str | os.PathLike[str],
    calibration: np.ndarray | None = None,
) -> Path:
    """Write ``model`` as a batch-1 ``.pte``; int8 (PT2E, XNNPACK quantizer) if ``calibration``.

    ``calibration``: preprocessed train crops (N, 3, S, S) that set the int8 ranges.
    In int8 the classifier head and the score stay fp32 (:mod:`fasdistill.export.pt2e`).
    """
    if not available():
        raise InputError(f"{path}: ExecuTorch is not installed ({EXTRA})")
    size = int(meta["input_size"])
    channels = int(meta.get("input_channels", 3))  # 3 (RGB) but for latency probes
    scored = ScoredModel(model).eval()
    example = (torch.zeros(1, channels, size, size),)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if calibration is None:
            program = torch.export.export(scored, example)
        else:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )

            quantizer = XNNPACKQuantizer().set_global(
                get_symmetric_quantization_config(is_per_channel=True)
            )
            program = torch.export.export(
                pt2e.quantize(scored, example, quantizer, calibration), example
            )
        buffer = _lower(program)
    path = Path(path)
    path.write_bytes(buffer)
    return path


def write_sidecar(
    path: Path,
    meta: dict[str, Any],
    threshold: float,
    criterion: str,
    kind: str = SIDECAR_FORMAT,
) -> Path:
    """``<file>.json``: the metadata an ONNX export carries, decoded, with its threshold."""
    return sidecar.write(
        path, meta | {"threshold": threshold, "threshold_criterion": criterion}, kind
    )


def convert(conversion: Conversion, path: Path) -> None:
    """The registry's converter: fp32, or int8 when the conversion carries calibration crops."""
    export_pte(conversion.model, conversion.meta, path, conversion.calibration)


class PteRunner:
    """Every output of a ``.pte`` program's ``forward`` (the registry's runner)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime

        if threads:
            _unsafe_reset_threadpool(threads)
        try:
            self.method = Runtime.get().load_program(Path(path)).load_method("forward")
        except (RuntimeError, ValueError) as exc:
            raise InputError(f"{path}: ExecuTorch cannot load the program ({exc})") from None
        metadata = self.method.metadata
        self.input_count = metadata.num_inputs()
        self.input_shape = list(metadata.input_tensor_meta(0).sizes())
        self.output_names = [f"output_{i}" for i in range(metadata.num_outputs())]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return [np.asarray(o) for o in self.method.execute([images])]


def open_runner(path: Path, threads: int | None = None) -> PteRunner:
    return PteRunner(path, threads)


def pte_scorer(path: str | os.PathLike[str], threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """Scores P(bona fide) from a ``.pte``, one image per call of the batch-1 program."""
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    _unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(Path(path)).load_method("forward")

    def score(x: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return np.array([float(method.execute([image[None]])[1][0]) for image in images])

    return score
