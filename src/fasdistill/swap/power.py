"""Energy per inference: measured from hardware counters where they exist, else modelled.

Measured: Linux RAPL (``/sys/class/powercap/*/energy_uj``, package energy of the
CPU) read before and after a run of inferences. Where there are no counters (VMs,
most CI machines), two models, each always labelled ``modelled``:

- ``compute``: MACs x energy per MAC + bytes moved x energy per DRAM byte, with
  constants from a :class:`DeviceProfile` (defaults: Horowitz, "Computing's energy
  problem", ISSCC 2014, 45 nm: fp32 MAC 4.6 pJ (3.7 pJ multiply + 0.9 pJ add), int8
  MAC 0.23 pJ (0.2 + 0.03), DRAM 640 pJ per 32-bit word);
- ``active power``: a core's active power x the measured latency (default: a phone
  big core at 1.5 W).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BATTERY_MAH = 4000.0
BATTERY_VOLTS = 3.85
POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class DeviceProfile:
    """Energy constants of the device a model is modelled on (override any of them)."""

    name: str = "45 nm CMOS (Horowitz, ISSCC 2014) + phone big core"
    fp32_mac_pj: float = 4.6
    int8_mac_pj: float = 0.23
    dram_pj_per_byte: float = 640.0 / 4  # 640 pJ per 32-bit word
    active_watts: float = 1.5  # one phone big core under load, about 1-2 W

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_energy_j(macs: int, bytes_moved: int, int8: bool, profile: DeviceProfile) -> float:
    """Modelled energy of one inference: arithmetic plus DRAM traffic, in joules."""
    mac_pj = profile.int8_mac_pj if int8 else profile.fp32_mac_pj
    return (macs * mac_pj + bytes_moved * profile.dram_pj_per_byte) * 1e-12


def active_power_energy_j(latency_s: float, profile: DeviceProfile) -> float:
    """Modelled energy of one inference: active power x latency, in joules."""
    return profile.active_watts * latency_s


def inferences_per_battery_percent(
    energy_j: float, mah: float = BATTERY_MAH, volts: float = BATTERY_VOLTS
) -> float:
    """How many inferences 1 % of a phone battery pays for (default 4,000 mAh at 3.85 V)."""
    one_percent_j = mah / 1000 * volts * 3600 / 100
    return one_percent_j / energy_j


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """Readable RAPL package-energy counters (empty without counters or permission)."""
    if not root.is_dir():
        return []
    found = []
    for zone in sorted(root.glob("intel-rapl:*")):
        counter = zone / "energy_uj"
        if ":" in zone.name.split("intel-rapl:", 1)[1]:  # sub-zones (core, dram) are inside
            continue
        try:
            int(counter.read_text())
        except (OSError, ValueError):
            continue
        found.append(counter)
    return found


def measure_rapl_j(
    call: Callable[[], object], runs: int, root: Path = POWERCAP
) -> dict[str, Any] | None:
    """Measured package energy per call over ``runs`` calls, or None without counters.

    The package counter includes everything else the CPU did meanwhile, so the
    figure is an upper bound on a busy machine; the label says so.
    """
    counters = rapl_domains(root)
    if not counters:
        return None
    before = [int(c.read_text()) for c in counters]
    start = time.perf_counter()
    for _ in range(runs):
        call()
    seconds = time.perf_counter() - start
    after = [int(c.read_text()) for c in counters]
    ranges = []
    for counter in counters:
        limit = counter.parent / "max_energy_range_uj"
        ranges.append(int(limit.read_text()) if limit.exists() else 2**32)
    used_uj = sum((a - b) % r for a, b, r in zip(after, before, ranges, strict=True))
    return {
        "energy_j": used_uj * 1e-6 / runs,
        "label": "measured (RAPL package counter; includes the rest of the package)",
        "runs": runs,
        "seconds": seconds,
    }
