"""builtin_interfaces/Time <-> float seconds and integer nanoseconds.

Floats lose nanoseconds past ~2^53 ns (104 days of epoch time is fine, 1.7e9 s epochs keep ~0.2 us):
code that compares stamps exactly should use the integer form.
"""
from __future__ import annotations

__all__ = ["stamp_to_ns", "stamp_to_seconds", "ns_to_stamp", "seconds_to_stamp", "fill_header"]

_NS = 1_000_000_000


def stamp_to_ns(stamp: object) -> int:
    """Integer nanoseconds of a ``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``)."""
    return int(stamp.sec) * _NS + int(stamp.nanosec)


def stamp_to_seconds(stamp: object) -> float:
    """Seconds of a ``builtin_interfaces/Time``."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def ns_to_stamp(t_ns: int):
    """A ``builtin_interfaces/msg/Time`` for integer nanoseconds (must be >= 0)."""
    from builtin_interfaces.msg import Time

    t_ns = int(t_ns)
    if t_ns < 0:
        raise ValueError(f"ROS time cannot be negative, got {t_ns} ns")
    return Time(sec=t_ns // _NS, nanosec=t_ns % _NS)


def seconds_to_stamp(t_s: float):
    """A ``builtin_interfaces/msg/Time`` for seconds, rounded to the nearest nanosecond."""
    return ns_to_stamp(round(float(t_s) * _NS))


def fill_header(msg: object, frame_id: str, stamp: object | None = None, stamp_s: float | None = None) -> object:
    """Set ``msg.header``: frame id, and the stamp from a ``builtin_interfaces/Time`` (wins) or from
    seconds; neither leaves the stamp as it is. Returns ``msg``."""
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    elif stamp_s is not None:
        msg.header.stamp = seconds_to_stamp(stamp_s)
    return msg
