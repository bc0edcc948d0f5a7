"""ncnn models (``.param`` + ``.bin``) converted by pnnx, fp32, with a metadata sidecar.

The ``ncnn`` extra installs ``pnnx`` (the converter) and ``ncnn`` (the runtime).
ncnn stores weights in fp16 on x86 unless told otherwise, which moves scores by
about 3e-4; the conversion keeps fp32 (``fp16=False``) and the scorer turns fp16
storage and arithmetic off, so parity is checked on what was exported. Programs
take one image at a time; the scorer loops over larger batches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fasdistill.errors import InputError
from fasdistill.export.formats import Conversion

EXTRA = "pip install 'fasdistill[ncnn]'"
SIDECAR_FORMAT = "fasdistill-ncnn/1"


def available() -> bool:
    """Whether pnnx (converter) and ncnn (runtime) can be imported."""
    try:
        import ncnn  # noqa: F401
        import pnnx  # noqa: F401
    except ImportError:
        return False
    return True


def export_ncnn(model: nn.Module, meta: dict[str, Any], param: str | os.PathLike[str]) -> Path:
    """Write ``param`` and its ``.bin`` beside it (``model.ncnn.param`` -> ``model.ncnn.bin``).

    The graph returns logits (input ``in0``, output ``out0``); the scorer applies
    the softmax that gives P(bona fide).
    """
    if not available():
        raise InputError(f"{param}: pnnx/ncnn are not installed ({EXTRA})")
    import pnnx

    param = Path(param)
    size = int(meta["input_size"])
    channels = int(meta.get("input_channels", 3))  # 3 (RGB) but for latency probes
    with tempfile.TemporaryDirectory(dir=param.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        pnnx.export(
            model.eval(),
            str(work / "model.pt"),
            inputs=(torch.zeros(1, channels, size, size),),
            ncnnparam=str(work / "model.param"),
            ncnnbin=str(work / "model.bin"),
            fp16=False,
        )
        if not (work / "model.param").exists():
            raise InputError(f"{param}: pnnx did not write an ncnn model (see its output above)")
        shutil.move(str(work / "model.bin"), bin_path(param))
        shutil.move(str(work / "model.param"), param)
    return param


def bin_path(param: Path) -> Path:
    return param.with_suffix(".bin")


def companion_files(param: Path) -> list[Path]:
    """The files an exported ``.param`` needs beside it: its weights."""
    return [bin_path(param)]


def convert(conversion: Conversion, param: Path) -> None:
    """The registry's converter (fp32 only: the pip packages bring no int8 calibration)."""
    export_ncnn(conversion.model, conversion.meta, param)


class NcnnRunner:
    """Every output blob of an ncnn model, one image per extractor (the registry's runner).

    A ``.param`` file does not fix the input size: the sidecar states ``input_size``.
    """

    def __init__(self, param: Path, threads: int | None) -> None:
        import ncnn

        self._ncnn = ncnn
        self.net = net = open_net(Path(param), threads or 1)
        self._inputs = list(net.input_names())
        self.input_count = len(self._inputs)
        self.input_shape: list[Any] = [1, 3, "height", "width"]
        self.output_names = list(net.output_names())

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        if x.shape[0] != 1:
            raise ValueError(f"ncnn runs one image at a time, got a batch of {x.shape[0]}")
        image = np.ascontiguousarray(x[0], np.float32)  # ncnn.Mat borrows it: keep it alive
        extractor = self.net.create_extractor()
        extractor.input(self._inputs[0], self._ncnn.Mat(image))
        out = []
        for name in self.output_names:
            _, mat = extractor.extract(name)
            out.append(np.array(mat, dtype=np.float32)[None])  # ncnn drops the batch axis
        return out


def open_net(param: Path, threads: int) -> Any:
    """An ncnn net of ``param`` and its ``.bin``, fp32 throughout (fp16 storage off)."""
    import ncnn

    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    if net.load_param(str(param)) != 0 or net.load_model(str(bin_path(param))) != 0:
        raise InputError(f"{param}: ncnn cannot load the model (and {bin_path(param).name})")
    return net


def open_runner(param: Path, threads: int | None = None) -> NcnnRunner:
    return NcnnRunner(param, threads)


def ncnn_scorer(param: str | os.PathLike[str], threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """Scores P(bona fide) from an ncnn model, one image per extractor run."""
    import ncnn

    net = open_net(Path(param), threads)

    def score(x: np.ndarray) -> np.ndarray:
        out = []
        for image in np.ascontiguousarray(x, dtype=np.float32):
            extractor = net.create_extractor()
            extractor.input("in0", ncnn.Mat(image))
            _, logits = extractor.extract("out0")
            z = np.asarray(logits, dtype=np.float64).reshape(-1)
            z = np.exp(z - z.max())
            out.append(z[0] / z.sum())
        return np.asarray(out)

    return score
