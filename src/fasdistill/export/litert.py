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
from fasdistill.export.formats import Conversion
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
    channels = int(meta.get("input_channels", 3))  # 3 (RGB) but for latency probes
    scored = ScoredModel(model).eval()
    example = (torch.zeros(1, channels, size, size),)
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


def convert(conversion: Conversion, path: Path) -> None:
    """The registry's converter: fp32, or int8 when the conversion carries calibration crops."""
    export_tflite(conversion.model, conversion.meta, path, conversion.calibration)


class TfliteRunner:
    """Every output of a ``.tflite`` model, in its signature's order (the registry's runner).

    Takes NCHW batches whatever the model's layout: an NHWC model (the usual one from
    TensorFlow) gets them transposed. Quantized inputs and outputs are converted with
    the model's own scale and zero point.
    """

    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"{path}: LiteRT cannot load the model ({exc})") from None
        if interpreter.get_signature_list():
            self._runner = interpreter.get_signature_runner()
            inputs = self._runner.get_input_details()
            self._outputs = self._runner.get_output_details()
        else:  # a model without signatures: its tensors, in the file's order
            interpreter.allocate_tensors()
            inputs = {d["name"]: d for d in interpreter.get_input_details()}
            self._outputs = {d["name"]: d for d in interpreter.get_output_details()}
            self._runner = None
        self._interpreter = interpreter
        self.input_count = len(inputs)
        self._input_name, self._input = next(iter(inputs.items()))
        shape = [int(d) for d in self._input["shape"]]
        self._nhwc = len(shape) == 4 and shape[-1] == 3 and shape[1] != 3
        self.input_shape = [shape[0], 3, shape[1], shape[2]] if self._nhwc else shape
        self.output_names = list(self._outputs)

    def _quantized(self, x: np.ndarray) -> np.ndarray:
        dtype = np.dtype(self._input["dtype"])
        if dtype == np.float32:
            return x
        scale, zero_point = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if self._nhwc else x, np.float32)
        x = self._quantized(x)
        if self._runner is not None:
            found = self._runner(**{self._input_name: x})
            raw = [found[name] for name in self.output_names]
        else:
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            raw = [self._interpreter.get_tensor(d["index"]) for d in self._outputs.values()]
        out = []
        for name, value in zip(self.output_names, raw, strict=True):
            scale, zero_point = self._outputs[name]["quantization"]
            value = np.asarray(value)
            if value.dtype != np.float32 and scale:
                value = (value.astype(np.float32) - zero_point) * scale
            out.append(value)
        return out


def open_runner(path: Path, threads: int | None = None) -> TfliteRunner:
    return TfliteRunner(path, threads)


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
