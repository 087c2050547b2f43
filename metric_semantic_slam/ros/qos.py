"""Named QoS profiles, so nodes and configs pick one by a string parameter.

- ``sensor``: best effort, keep last 5. A best-effort subscriber matches reliable and best-effort
  publishers alike, so it is the safe choice for driver inputs.
- ``reliable``: reliable, keep last 10, volatile: large images across processes (with
  the shared-memory transport of ``config/dds/fastdds_profiles.xml``), where best effort loses fragments
  of every frame.
- ``latched``: reliable, keep last 1, transient local: outputs a late joiner must still get
  (scene graph, full mesh, static TF).
- ``default``: rclpy's default (reliable, keep last 10).
"""
from __future__ import annotations

__all__ = ["PROFILE_NAMES", "qos_profile", "qos_matching_publishers"]

PROFILE_NAMES: tuple[str, ...] = ("sensor", "reliable", "latched", "default")


def qos_profile(name: str, depth: int | None = None):
    """The ``rclpy.qos.QoSProfile`` called ``name`` (one of :data:`PROFILE_NAMES`), with an optional depth."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    table = {
        "sensor": (ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE, 5),
        "reliable": (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 10),
        "latched": (ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL, 1),
        "default": (ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, 10),
    }
    if name not in table:
        raise ValueError(f"unknown QoS profile {name!r}; choose one of {list(PROFILE_NAMES)}")
    reliability, durability, default_depth = table[name]
    if depth is not None and int(depth) < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth or default_depth),
                      reliability=reliability, durability=durability)


def qos_matching_publishers(publisher_infos: list, depth: int = 10):
    """A subscription QoS that matches every publisher in ``publisher_infos`` (``node.get_publishers_info_by_topic``).

    Reliable only when all publishers are reliable, transient local only when all are (as ``ros2 bag record``
    does), so a recorder never silently fails to match a best-effort driver.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    profiles = [info.qos_profile for info in publisher_infos]
    reliable = bool(profiles) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = bool(profiles) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
