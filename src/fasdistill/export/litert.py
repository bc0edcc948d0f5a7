"""LiteRT (formerly TensorFlow Lite) ``.tflite`` models: fp32, and int8 through PT2E.

The ``litert`` extra installs ``litert-torch`` (the converter) and ``ai-edge-litert``
(the runtime, with its XNNPACK delegate). As for ExecuTorch, preprocessing and the
threshold travel in a ``<file>.json`` sidecar with the keys of an exported ONNX
model's ``metadata_props``. Models take batch 1 (a phone scores one face at a
time); the scorer loops over larger batches.
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
from fasdistill.export import pt2e
from fasdistill.export.onnx import ScoredModel

EXTRA = "pip install 'fasdistill[litert]'"
SIDECAR_FORMAT = "fasdistill-tflite/1"


def available() -> bool:
    """Whether litert-torch (converter) and ai-edge-litert (runtime) can be imported."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def export_tflite(
    model: nn.Module,
    meta: dict[str, Any],
    path: str | os.PathLike[str],
    calibration: np.ndarray | None = None,
) -> Path:
    """Write ``model`` as a batch-1 ``.tflite``; static int8 (PT2E) if ``calibration``.

    ``calibration``: preprocessed train crops (N, 3, S, S) that set the int8 ranges
    (per-channel symmetric int8 weights, int8 activations); the classifier head and
    the score stay fp32 (:mod:`fasdistill.export.pt2e`).
    """
    if not available():
        raise InputError(f"{path}: LiteRT is not installed ({EXTRA})")
    import litert_torch

    size = int(meta["input_size"])
    scored = ScoredModel(model).eval()
    example = (torch.zeros(1, 3, size, size),)
    # The converter reports its progress on stdout: the CLI sends that to third_party.log.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if calibration is None:
            converted = litert_torch.convert(scored, example)
        else:
            from litert_torch.quantize import pt2e_quantizer, quant_config

            quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
                pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
            )
            converted = litert_torch.convert(
                pt2e.quantize(scored, example, quantizer, calibration, fold_quantize=False),
                example,
                # The config only tells the converter static from dynamic quantization.
                quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer),
            )
        path = Path(path)
        converted.export(str(path))
    return path


def tflite_scorer(path: str | os.PathLike[str], threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """Scores P(bona fide) from a ``.tflite`` (its second output), one image per call."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{path}: LiteRT cannot load the model ({exc})") from None
    runner = interpreter.get_signature_runner()
    inputs = list(runner.get_input_details())
    if len(inputs) != 1:
        raise InputError(f"{path}: expected one input, the model has {inputs}")
    name = inputs[0]
    detail = runner.get_input_details()[name]
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]

    def prepare(image: np.ndarray) -> np.ndarray:
        if dtype == np.float32:
            return image[None]
        # A fully int8 model takes quantized pixels; its own scale and zero point say how.
        info = np.iinfo(dtype)
        q = np.round(image / scale) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)[None]

    def score(x: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(x, dtype=np.float32)
        return np.array([float(runner(**{name: prepare(i)})["output_1"][0]) for i in images])

    return score
