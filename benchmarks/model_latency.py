"""How fast is each student on one CPU core, in eager PyTorch and in ONNX Runtime?

For every student (and resnet18 as the teacher reference) at its default input and
at 80 and 128 (MiniFASNet's and the others' default, so all compare at equal input):
deployable parameters, MACs (FLOPs / 2), eager PyTorch latency and
ONNX Runtime fp32 latency (1 thread, batch 1, sequential execution, median of
``--repeats`` after warm-up), and MACs per ms (effective throughput). Models run
interleaved within each repetition, so machine noise hits all of them alike.

    python benchmarks/model_latency.py [--repeats 50] [--warmup 10] [--sizes 80,128]
                                       [--models a,b]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one core; set before numpy/torch load

import argparse
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table

from fasdistill.models import build_model, count_macs, count_params, model_specs
from fasdistill.models.base import DeployableFAS

TEACHER_REFERENCE = "resnet18"


@dataclass
class Entry:
    """One (model, input size) pair with its eager module, ORT session and timings."""

    name: str
    size: int
    model: DeployableFAS
    session: ort.InferenceSession
    image: torch.Tensor
    params: int
    macs: int
    rel_diff: float
    eager_ms: list[float] = field(default_factory=list)
    ort_ms: list[float] = field(default_factory=list)

    def run_eager(self) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            self.model(self.image)
        return (time.perf_counter() - start) * 1e3

    def run_ort(self) -> float:
        feed = {"image": self.image.numpy()}
        start = time.perf_counter()
        self.session.run(None, feed)
        return (time.perf_counter() - start) * 1e3


def cpu_name() -> str:
    """The CPU model string, for the table title (latency means nothing without it)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def make_entry(name: str, size: int, workdir: Path) -> Entry:
    """Build ``name``'s deployable part, export it at ``size`` and open an ORT session."""
    torch.manual_seed(0)
    model = build_model(name).deployable().eval()
    image = torch.randn(1, 3, size, size)
    path = workdir / f"{name}-{size}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (image,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = model(image).numpy()
    got = session.run(None, {"image": image.numpy()})[0]
    scale = max(float(np.abs(expected).max()), 1e-12)
    return Entry(
        name=name,
        size=size,
        model=model,
        session=session,
        image=image,
        params=count_params(model),
        macs=count_macs(model, size),
        rel_diff=float(np.abs(expected - got).max()) / scale,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sizes", default="80,128", help="input sides besides each default")
    parser.add_argument("--models", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    specs = [s for s in model_specs() if s.role == "student" or s.name == TEACHER_REFERENCE]
    if args.models:
        wanted = args.models.split(",")
        specs = [s for s in specs if s.name in wanted]
    sizes = {int(s) for s in args.sizes.split(",") if s}
    with tempfile.TemporaryDirectory() as tmp:
        entries = [
            make_entry(spec.name, size, Path(tmp))
            for spec in specs
            for size in sorted(sizes | {spec.input_size})
        ]
    for entry in entries:
        for _ in range(args.warmup):
            entry.run_eager()
            entry.run_ort()
    for _ in range(args.repeats):
        for entry in entries:  # interleaved: drift and noise hit every model alike
            entry.eager_ms.append(entry.run_eager())
            entry.ort_ms.append(entry.run_ort())

    table = Table(
        title=(
            f"Deployable models, batch 1, 1 thread, median of {args.repeats} after "
            f"{args.warmup} warm-up runs; PyTorch {torch.__version__} eager, ONNX Runtime "
            f"{ort.__version__} fp32 (CPU EP, sequential); {cpu_name()}"
        ),
        title_justify="left",
    )
    for column in ("model", "input", "params (M)", "MACs (M)", "eager ms", "ORT ms"):
        table.add_column(column, justify="left" if column == "model" else "right")
    table.add_column("eager MMAC/ms", justify="right")
    table.add_column("ORT MMAC/ms", justify="right")
    table.add_column("ORT rel. err", justify="right")
    for entry in entries:
        eager = statistics.median(entry.eager_ms)
        onnx = statistics.median(entry.ort_ms)
        table.add_row(
            entry.name,
            str(entry.size),
            f"{entry.params / 1e6:.3f}",
            f"{entry.macs / 1e6:.1f}",
            f"{eager:.2f}",
            f"{onnx:.2f}",
            f"{entry.macs / 1e6 / eager:.1f}",
            f"{entry.macs / 1e6 / onnx:.1f}",
            f"{entry.rel_diff:.1e}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
