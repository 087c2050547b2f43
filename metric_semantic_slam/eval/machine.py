"""What machine a benchmark ran on (benchmarks print it beside every timing), and which optional packages it has."""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path

__all__ = ["cpu_name", "has_module"]


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


def has_module(name: str) -> bool:
    """Whether the top-level package ``name`` imports here (Open3D is missing on the GPU machine and on platforms
    without its wheels), found without importing it (Open3D takes a second)."""
    if name in sys.modules:
        return sys.modules[name] is not None   # None: import blocked (tests hide a package this way)
    return importlib.util.find_spec(name) is not None
