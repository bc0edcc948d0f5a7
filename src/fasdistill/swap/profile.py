"""Where an ONNX model spends its time: ONNX Runtime's profiler, per operator type.

With the MACs of every Conv/Gemm/MatMul node this gives the arithmetic rate each
operator type reaches, to set against the core's nominal peak (fp32 FMA lanes x
2 FLOPs x FMA units x clock): how far the model is from being compute-bound.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from fasdistill.swap.foreign import onnx_weight

# fp32 FLOPs per cycle and core: vector lanes x 2 (multiply + add) x FMA units
FLOPS_PER_CYCLE = {"avx512f": 16 * 2 * 2, "avx2": 8 * 2 * 2, "asimd": 4 * 2 * 2}


def nominal_peak_gflops(cpu: dict[str, Any], threads: int, cpuinfo: str = "/proc/cpuinfo") -> dict:
    """Nominal fp32 peak of ``threads`` cores from the ISA and the clock /proc/cpuinfo reports."""
    isa = next((k for k in FLOPS_PER_CYCLE if k in cpu["isa"] or k == "asimd"), "asimd")
    mhz = []
    if Path(cpuinfo).exists():
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "cpu MHz":
                mhz.append(float(value))
    ghz = max(mhz) / 1e3 if mhz else float("nan")
    return {
        "gflops": FLOPS_PER_CYCLE[isa] * ghz * threads,
        "isa": isa,
        "ghz": ghz,
        "method": f"{FLOPS_PER_CYCLE[isa]} fp32 FLOPs/cycle ({isa} FMA, 2 units) x clock x threads",
    }


def profile_onnx(path: Path, input_size: int, threads: int = 1, runs: int = 200) -> dict[str, Any]:
    """Mean time per inference of each operator type, its MACs and achieved GFLOP/s."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        x = np.zeros((1, 3, input_size, input_size), np.float32)
        for _ in range(runs):
            session.run(None, {name: x})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node = onnx_weight(path, input_size)["per_node"]
    op_of_node = {node: op for node, (op, _) in per_node.items()}
    time_us: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name") or op_of_node.get(event["name"][:-12], "?")
        time_us[op] += event["dur"]
    macs: dict[str, int] = defaultdict(int)
    for op, node_macs in per_node.values():
        macs[op] += node_macs
    total = sum(time_us.values())
    rows = []
    for op, us in sorted(time_us.items(), key=lambda kv: -kv[1]):
        ms = us / runs / 1e3
        rows.append(
            {
                "op": op,
                "ms": ms,
                "share": us / total if total else 0.0,
                "macs": macs.get(op, 0),
                "gflops": 2 * macs.get(op, 0) / (ms * 1e6) if ms > 0 and macs.get(op) else None,
            }
        )
    total_ms = total / runs / 1e3
    all_macs = sum(macs.values())
    return {
        "runs": runs,
        "threads": threads,
        "kernel_ms": total_ms,
        "macs": all_macs,
        "gflops": 2 * all_macs / (total_ms * 1e6) if total_ms > 0 else None,
        "ops": rows,
    }
