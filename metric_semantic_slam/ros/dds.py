"""The DDS transport of every suite process: one Fast DDS profiles file, chosen through the environment.

``config/dds/fastdds_profiles.xml`` gives each participant shared memory with 8 MiB segments (same host:
640x480 images at 30 Hz in ~5 ms, none lost) and UDPv4 (discovery, other hosts). It replaced
``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA``, whose TCP transport deadlocked in Fast DDS 3.2 on a loaded
2-core machine: a participant that never received from one peer, and participant teardown stuck in the
TCP channel's disconnect (seen in CI and reproduced here, ~1 run in 10 of a five-node start-up test).

The environment decides, in this order: ``FASTDDS_BUILTIN_TRANSPORTS`` set by the user (e.g. LARGE_DATA
for a lossy network) wins and no profiles file is added; a profiles file the user set that exists is kept;
otherwise ``FASTDDS_DEFAULT_PROFILES_FILE`` points at the bundled file. Every process that creates a
participant (``msslam launch`` children, play, record, the test collector, launch files) goes through
:func:`dds_environment`, so they all speak the same transport.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

__all__ = ["PROFILES_ENV_KEYS", "profiles_file", "dds_environment", "use_dds_environment", "profiles_xml"]

#: Variables Fast DDS reads a profiles file from (the second is the Fast-RTPS 2.x name).
PROFILES_ENV_KEYS: tuple[str, ...] = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
_RELATIVE = Path("dds") / "fastdds_profiles.xml"


def profiles_file() -> Path:
    """The bundled profiles file (source tree, else the installed share/ directory)."""
    from ..core.labels import config_candidates

    candidates = config_candidates(str(_RELATIVE))
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"bundled Fast DDS profiles not found; looked in {[str(c) for c in candidates]}")


def dds_environment(env: Mapping[str, str] | None = None, force: bool = False) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) with the suite's transport (rules: module docstring).

    A profiles variable naming a file that is gone is dropped (Fast DDS would fail every participant).
    ``force`` (tests, benchmarks: a known transport whatever the shell exports) removes
    ``FASTDDS_BUILTIN_TRANSPORTS`` and any other profiles file first.
    """
    out = dict(os.environ if env is None else env)
    for key in PROFILES_ENV_KEYS:
        if out.get(key) and (force or not os.path.isfile(out[key])):
            out.pop(key)
    if force:
        out.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    if out.get("FASTDDS_BUILTIN_TRANSPORTS") or any(out.get(k) for k in PROFILES_ENV_KEYS):
        return out
    try:
        out["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profiles_file())
    except FileNotFoundError as exc:  # an install without the config files: Fast DDS's defaults (UDP + SHM)
        warnings.warn(f"{exc}; using Fast DDS's default transports", RuntimeWarning, stacklevel=2)
    return out


def use_dds_environment() -> dict[str, str | None]:
    """Apply :func:`dds_environment` to ``os.environ`` (before this process creates a participant).

    Returns the previous values of the variables it may change, for a caller that restores them.
    """
    keys = ("FASTDDS_BUILTIN_TRANSPORTS", *PROFILES_ENV_KEYS)
    saved = {k: os.environ.get(k) for k in keys}
    new = dds_environment()
    for k in keys:
        if k in new:
            os.environ[k] = new[k]
        else:
            os.environ.pop(k, None)
    return saved


def profiles_xml(writer_heartbeat_ms: int | None = None, transports: bool = True) -> str:
    """Profiles file text: the bundled transports (``transports``) and, with ``writer_heartbeat_ms``, a
    default data_writer profile with that heartbeat period."""
    text = profiles_file().read_text() if transports else (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<dds xmlns="http://www.eprosima.com">\n  <profiles>\n'
        '  </profiles>\n</dds>\n')
    if writer_heartbeat_ms is None:
        return text
    sec, nanosec = divmod(int(writer_heartbeat_ms) * 1_000_000, 1_000_000_000)
    writer = ("    <data_writer profile_name=\"msslam_writer\" is_default_profile=\"true\">\n"
              f"      <times><heartbeat_period><sec>{sec}</sec><nanosec>{nanosec}</nanosec></heartbeat_period></times>\n"
              "    </data_writer>\n")
    if text.count("</profiles>") != 1:
        raise ValueError("the bundled profiles file must hold exactly one <profiles> element")
    return text.replace("  </profiles>", writer + "  </profiles>")
