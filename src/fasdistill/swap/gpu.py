"""The ``pytorch-cuda`` runtime and GPU energy from NVML.

A GPU model is timed like every other runtime (batch 1 and a batch, interleaved),
each call including the host-to-device copy of the input and the device-to-host
copy of the score, which also waits for the kernels: the latency a serving process
sees. Energy comes from NVML's total-energy counter (millijoules since the driver
loaded; Volta and later), read before and after a run through ``libnvidia-ml``,
which every NVIDIA driver installs: no Python package is needed. The counter
covers the whole board, so other work on the GPU meanwhile is counted too, and it
advances in steps of tens of milliseconds, so a run lasts at least a second.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fasdistill.errors import InputError
from fasdistill.models import bonafide_score

NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_SUCCESS = 0
MIN_SECONDS = 1.0  # the energy counter updates every few tens of milliseconds


def require_cuda() -> torch.device:
    """The current CUDA device, or an error that says why there is none."""
    if not torch.cuda.is_available():
        raise InputError(
            "pytorch-cuda: torch sees no CUDA device (a CPU build of torch, no NVIDIA "
            "driver, or CUDA_VISIBLE_DEVICES empty); time on CPU runtimes instead"
        )
    return torch.device("cuda", torch.cuda.current_device())


def cuda_scorer(model: torch.nn.Module, device: torch.device) -> Callable[[np.ndarray], Any]:
    """Scores P(bona fide) on ``device`` from a copy of ``model`` (the CPU model is untouched)."""
    import copy

    gpu_model = copy.deepcopy(model).to(device).eval()

    @torch.inference_mode()
    def score(x: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        return bonafide_score(gpu_model(images)).float().cpu().numpy()  # .cpu() synchronises

    return score


class Nvml:
    """The few NVML calls energy needs, through ctypes (``library`` is injectable for tests)."""

    def __init__(self, library: Any = None) -> None:
        if library is None:
            try:
                library = ctypes.CDLL(NVML_LIBRARY)
            except OSError as exc:
                raise InputError(f"NVML: cannot load {NVML_LIBRARY} ({exc})") from None
        self.lib = library
        self._check(self.lib.nvmlInit_v2(), "nvmlInit_v2")

    def _check(self, status: int, call: str) -> None:
        if status != NVML_SUCCESS:
            raise InputError(f"NVML: {call} failed with status {status}")

    def handle(self, device: torch.device) -> ctypes.c_void_p:
        """The NVML handle of a torch device, matched by PCI bus id (CUDA and NVML
        number devices differently when CUDA_VISIBLE_DEVICES reorders them)."""
        handle = ctypes.c_void_p()
        props = torch.cuda.get_device_properties(device)
        bus = getattr(props, "pci_bus_id", None)
        if bus is not None:
            pci = f"{props.pci_domain_id:08x}:{bus:02x}:{props.pci_device_id:02x}.0"
            status = self.lib.nvmlDeviceGetHandleByPciBusId_v2(pci.encode(), ctypes.byref(handle))
            self._check(status, f"nvmlDeviceGetHandleByPciBusId_v2({pci})")
        else:
            index = device.index or 0
            status = self.lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle))
            self._check(status, f"nvmlDeviceGetHandleByIndex_v2({index})")
        return handle

    def energy_mj(self, handle: ctypes.c_void_p) -> int:
        """Total energy the board used since the driver loaded, in millijoules."""
        value = ctypes.c_ulonglong()
        status = self.lib.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(value))
        self._check(status, "nvmlDeviceGetTotalEnergyConsumption")
        return int(value.value)


def measure_nvml_j(
    call: Callable[[], object], device: torch.device, runs: int, nvml: Nvml | None = None
) -> dict[str, Any] | None:
    """Measured board energy per call, over at least ``runs`` calls and one second.

    None where NVML or its energy counter is not readable (no driver library, a GPU
    older than Volta, a container without access).
    """
    try:
        nvml = nvml or Nvml()
        handle = nvml.handle(device)
        before = nvml.energy_mj(handle)
    except InputError:
        return None
    torch.cuda.synchronize(device)
    count = 0
    start = time.perf_counter()
    while count < runs or time.perf_counter() - start < MIN_SECONDS:
        call()
        count += 1
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    used_mj = nvml.energy_mj(handle) - before
    return {
        "energy_j": used_mj * 1e-3 / count,
        "label": "measured (NVML board energy counter; includes other work on the GPU)",
        "runs": count,
        "seconds": seconds,
        "watts": used_mj * 1e-3 / seconds,
    }
