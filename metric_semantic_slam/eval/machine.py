"""What machine a benchmark ran on (benchmarks print it beside every timing), which optional packages it has, and
how much memory a process holds (node statuses and the suite benchmark report it)."""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path

__all__ = ["cpu_name", "has_module", "process_memory_mb"]


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


def process_memory_mb(pid: int | str = "self") -> dict[str, float] | None:
    """Resident memory of process ``pid`` now (``rss``) and at its peak (``peak``, the high-water mark), MiB, from
    ``/proc/PID/status``; None where that is missing (not Linux, or the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss" if key == "VmRSS" else "peak"] = round(int(value.split()[0]) / 1024.0, 1)  # kB
    return out if len(out) == 2 else None
