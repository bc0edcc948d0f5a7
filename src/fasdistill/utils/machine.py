"""What a latency figure was measured on: CPU model, ISA flags, cores, runtime versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

# ISA extensions that decide how fast fp32 and int8 kernels can be
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp")
RUNTIMES = ("torch", "onnxruntime", "executorch", "ai-edge-litert", "ncnn")


def cpu_info(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model name, the ISA flags of :data:`ISA_FLAGS` it has, and logical cores."""
    model, flags = platform.processor() or platform.machine(), set()
    path = Path(cpuinfo)
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features"):
                flags |= set(value.split())
    return {
        "model": model,
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
        "int8_dot_product": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}),
        "logical_cores": os.cpu_count(),
    }


def runtime_versions() -> dict[str, str]:
    """Installed versions of the inference runtimes (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in RUNTIMES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    """Everything :func:`cpu_info` and :func:`runtime_versions` report, plus the OS."""
    return {"cpu": cpu_info(), "os": platform.platform(), "versions": runtime_versions()}
