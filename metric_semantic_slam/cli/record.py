"""``msslam record --output DIR --topics ...``: write ROS 2 topics to a rosbag2 (mcap or sqlite3).

Subscribes to each topic as raw CDR bytes once a publisher shows its type (topics may appear late),
with a QoS that matches every publisher (best effort if any is, transient local only if all are), and
logs each message at its receive time on the node clock (bag time under ``--use-sim-time``), like
``ros2 bag record``. Stops on Ctrl-C/SIGTERM, ``--duration`` or ``--max-messages``; the bag is always
closed so it stays readable.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "RecordStats", "record"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``record`` verb."""
    p = subparsers.add_parser("record", help="record ROS 2 topics into a rosbag2 (mcap/sqlite3)",
                              description="Record TOPICS into a new rosbag2 folder OUTPUT.")
    p.add_argument("--output", "-o", required=True, help="new bag folder (must not exist)")
    p.add_argument("--topics", nargs="+", required=True, help="topics to record (absolute names)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage (default mcap)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds of wall time")
    p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages in total")
    p.add_argument("--use-sim-time", action="store_true", help="log messages at /clock time")
    p.add_argument("--qos-depth", type=int, default=100, help="subscription history depth")
    p.set_defaults(func=run)
    return p


@dataclass
class RecordStats:
    """What a recording wrote."""

    path: Path
    messages: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    missing_topics: list[str] = field(default_factory=list)  # never published while recording


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def record(output: str | Path, topics: list[str], storage: str = "mcap", duration_s: float | None = None,
           max_messages: int | None = None, use_sim_time: bool = False, qos_depth: int = 100) -> RecordStats:
    """Record until interrupted (KeyboardInterrupt / SIGTERM), ``duration_s`` or ``max_messages``."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from ..ros.qos import qos_matching_publishers
    from .play import import_msg_type

    out = Path(output)
    if out.exists():
        raise ValueError(f"output {out} already exists; choose a new folder")
    bad = [t for t in topics if not t.startswith("/")]
    if bad:
        raise ValueError(f"record needs absolute topic names, got {bad}")
    store = get_typestore(Stores.ROS2_HUMBLE)
    stats = RecordStats(path=out)
    # our own SIGINT/SIGTERM handling: rclpy's would shut the context down under the open writer
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("msslam_record",
                             parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)])
    log = node.get_logger()
    writer = Writer(out, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    writer.open()
    conns: dict[str, Any] = {}
    subs = []
    pending = list(dict.fromkeys(topics))

    def on_message(topic: str, data: bytes) -> None:
        writer.write(conns[topic], node.get_clock().now().nanoseconds, data)
        stats.messages += 1
        stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1

    def subscribe_new() -> None:
        known = dict(node.get_topic_names_and_types())
        for topic in list(pending):
            types = known.get(topic)
            if not types:
                continue
            msgtype = types[0]
            if msgtype not in store.types:
                log.error(f"cannot record {topic}: no message definition of {msgtype} for the bag")
                pending.remove(topic)
                continue
            cls = import_msg_type(msgtype)
            qos = qos_matching_publishers(node.get_publishers_info_by_topic(topic), depth=qos_depth)
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
            subs.append(node.create_subscription(cls, topic, lambda data, t=topic: on_message(t, data), qos, raw=True))
            pending.remove(topic)
            log.info(f"recording {topic} ({msgtype})")
            print(f"subscribed {topic}", flush=True)

    t0 = time.monotonic()
    next_scan = 0.0
    try:
        while True:
            now = time.monotonic()
            if pending and now >= next_scan:
                subscribe_new()
                next_scan = now + 0.1
            if duration_s is not None and now - t0 >= duration_s:
                break
            if max_messages is not None and stats.messages >= max_messages:
                break
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass  # Ctrl-C / SIGTERM end a recording normally
    finally:
        stats.missing_topics = list(pending)
        writer.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return stats


def run(args: argparse.Namespace) -> int:
    """Record; prints what was written. Returns 0 on success (Ctrl-C included), 1 on bad input."""
    from ..ros.dds import use_dds_environment

    use_dds_environment()  # the suite's transport (shared memory for large images), unless the user chose one
    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        s = record(args.output, args.topics, args.storage, args.duration, args.max_messages,
                   args.use_sim_time, args.qos_depth)
    except ValueError as exc:
        print(f"msslam record: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for t in s.missing_topics:
        print(f"warning: no publisher of {t} appeared", file=sys.stderr)
    print(f"wrote {s.messages} messages on {len(s.per_topic)} topics to {s.path}", flush=True)
    return 0
