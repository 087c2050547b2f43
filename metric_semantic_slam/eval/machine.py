"""What machine a benchmark ran on: benchmarks print it beside every timing."""
from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_name"]


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` and the core count, e.g. ``"AMD EPYC (2 cores)"``."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine() or 'unknown CPU'} ({os.cpu_count()} cores)"
