"""How many worker processes to start by default."""

from __future__ import annotations

import os


def default_workers() -> int:
    """The number of CPU cores this process may use (cgroup/affinity aware on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
