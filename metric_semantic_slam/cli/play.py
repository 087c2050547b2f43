"""``msslam play BAG``: publish a bag over ROS 2 at its recorded rate (or a multiple, or as fast as
subscribers acknowledge), with ``/clock`` for ``use_sim_time``, topic remaps and looping.

Reads rosbag2 folders (sqlite3/mcap), lone ``.mcap``/``.db3`` files and ROS 1 ``.bag`` files with
``rosbags``. rosbag2 messages go out as their raw CDR bytes (no decoding); ROS 1 messages are
deserialized and rebuilt field by field as ROS 2 messages (``Header.seq`` disappears, ``CameraInfo.D``
becomes ``d``). A topic whose type has no Python module here (e.g. ``tf2_msgs`` on a PyPI-only install)
is skipped with a warning.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

__all__ = ["add_parser", "run", "BagSource", "PlayStats", "parse_remaps", "parse_subscriber_counts",
           "subscribers_arguments", "import_msg_type"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``play`` verb."""
    p = subparsers.add_parser(
        "play", help="publish a rosbag2 (sqlite3/mcap) or ROS 1 bag over ROS 2, with /clock",
        description="Publish BAG's messages at their recorded timing (scaled by --rate) or as fast as "
        "subscribers acknowledge them.")
    p.add_argument("bag", help="rosbag2 folder, .mcap/.db3 file or ROS 1 .bag file")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--rate", type=float, default=1.0, help="playback speed factor (2 = twice as fast)")
    speed.add_argument("--as-fast-as-possible", action="store_true",
                       help="no pauses; a topic waits only when its publisher history (--qos-depth) would overwrite a "
                       "message reliable subscribers have not acknowledged")
    p.add_argument("--loop", action="store_true", help="play again from the start until interrupted")
    p.add_argument("--clock", nargs="?", type=float, const=100.0, default=None, metavar="HZ",
                   help="publish bag time on /clock (rosgraph_msgs/Clock), HZ times per second (default 100) "
                   "and before every message")
    p.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="rename topics, e.g. /a:=/b")
    p.add_argument("--topics", nargs="+", default=None, help="publish only these bag topics (before remapping)")
    p.add_argument("--qos-depth", type=int, default=100, help="publisher history depth (reliable QoS)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds to wait after creating publishers")
    p.add_argument("--wait-for-subscribers", action="store_true",
                   help="start only once every published topic has a subscriber (bounded by --wait-timeout)")
    p.add_argument("--wait-timeout", type=float, default=20.0, help="seconds --wait-for-subscribers waits at most")
    p.add_argument("--subscribers", nargs="+", default=[], metavar="TOPIC=N",
                   help="with --wait-for-subscribers: wait for N subscribers on TOPIC (as published, after remapping) "
                   "instead of one, e.g. when several nodes read it and one of them may be discovered late")
    p.add_argument("--max-loops", type=int, default=None, metavar="N", help="with --loop: stop after N passes")
    p.set_defaults(func=run)
    return p


@dataclass
class PlayStats:
    """What a playback did."""

    messages: int
    per_topic: dict[str, int]
    skipped_topics: dict[str, str]  # topic -> reason
    wall_s: float  # first to last message, scaled bag time when paced
    bag_s: float
    loops: int


def parse_remaps(items: list[str]) -> dict[str, str]:
    """``["/a:=/b", ...]`` -> ``{"/a": "/b"}``; raises ValueError on a malformed item."""
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"bad remap {item!r}: expected FROM:=TO")
        out[src] = dst
    return out


def parse_subscriber_counts(items: list[str]) -> dict[str, int]:
    """``["/a=2", "b=1"]`` -> ``{"/a": 2, "/b": 1}`` (topics made absolute); raises ValueError on a malformed
    item or a count below 1."""
    out = {}
    for item in items:
        topic, sep, count = item.rpartition("=")
        try:
            n = int(count)
        except ValueError:
            n = 0
        if not sep or not topic or n < 1:
            raise ValueError(f"bad subscriber count {item!r}: expected TOPIC=N with N >= 1")
        out[topic if topic.startswith("/") else "/" + topic] = n
    return out


def subscribers_arguments(node: Any, topics: list[str]) -> list[str]:
    """``--subscribers`` and its ``TOPIC=N`` items asking playback to wait for every subscriber of ``topics`` (and
    of ``/clock``) that ``node``, an rclpy node on the same domain, sees now; empty when it sees none. A caller
    that has waited for the nodes to come up passes this so that a node whose subscriptions the player discovers
    late does not miss the first messages."""
    items = [f"{t}={n}" for t in dict.fromkeys([*topics, "/clock"])
             if (n := len(node.get_subscriptions_info_by_topic(t))) > 0]
    return ["--subscribers", *items] if items else []


def import_msg_type(msgtype: str) -> type:
    """The rclpy message class of ``"pkg/msg/Type"``; ImportError when the package is not installed."""
    pkg, kind, name = _split_type(msgtype)
    module = importlib.import_module(f"{pkg}.{kind}")
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"{pkg}.{kind} has no type {name}") from None


def _split_type(msgtype: str) -> tuple[str, str, str]:
    parts = msgtype.split("/")
    if len(parts) == 2:  # ROS 1 style "pkg/Type"
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"bad message type name {msgtype!r}")
    return parts[0], parts[1], parts[2]


class BagSource:
    """Time-ordered ``(topic, msgtype, log time ns, CDR bytes)`` of a bag, ROS 1 converted to ROS 2 CDR."""

    def __init__(self, path: str | Path, topics: list[str] | None = None) -> None:
        from ..io.bag import open_bag_reader

        self._reader, self.path, self.ros1 = open_bag_reader(path)
        conns = list(self._reader.connections)
        if topics is not None:
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise ValueError(f"topics not in bag {self.path}: {missing}")
            conns = [c for c in conns if c.topic in topics]
        self.connections = conns
        self.topic_types: dict[str, str] = {c.topic: c.msgtype for c in conns}
        self._ros2_store = None

    def close(self) -> None:
        self._reader.close()

    def messages(self) -> Iterator[tuple[str, str, int, bytes]]:
        if not self.connections:
            return
        for conn, t_ns, raw in self._reader.messages(connections=self.connections):
            data = self._ros1_to_ros2_cdr(raw, conn.msgtype) if self.ros1 else bytes(raw)
            yield conn.topic, conn.msgtype, int(t_ns), data

    def _ros1_to_ros2_cdr(self, raw: bytes, msgtype: str) -> bytes:
        from rosbags.typesys import Stores, get_typestore

        if self._ros2_store is None:
            self._ros2_store = get_typestore(Stores.ROS2_HUMBLE)
        msg1 = self._reader.deserialize(raw, msgtype)
        msg2 = _to_ros2(msg1, msgtype, self._ros2_store)
        return bytes(self._ros2_store.serialize_cdr(msg2, msgtype))


def _to_ros2(msg1: Any, msgtype: str, store: Any) -> Any:
    """Rebuild a rosbags ROS 1 message as the ROS 2 type of the same name (fields matched ignoring case)."""
    cls = store.types.get(msgtype)
    if cls is None:
        raise ValueError(f"no ROS 2 definition of {msgtype} to convert the ROS 1 message to")
    src = {f.name.lower(): getattr(msg1, f.name) for f in dataclasses.fields(msg1)}
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name.lower() not in src:
            raise ValueError(f"ROS 1 {msgtype} has no field {f.name!r} needed by ROS 2")
        value = src[f.name.lower()]
        if dataclasses.is_dataclass(value):
            value = _to_ros2(value, value.__msgtype__, store)
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            value = [_to_ros2(v, v.__msgtype__, store) for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def play(args: argparse.Namespace) -> PlayStats:
    """Publish the bag described by ``args`` (see :func:`add_parser`); returns what was published."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.signals import SignalHandlerOptions

    from tqdm import tqdm

    from ..ros.qos import qos_profile
    from ..ros.stamps import ns_to_stamp

    if not args.as_fast_as_possible and not args.rate > 0:
        raise ValueError(f"--rate must be > 0, got {args.rate}")
    if args.clock is not None and not args.clock > 0:
        raise ValueError(f"--clock rate must be > 0 Hz, got {args.clock}")
    remaps = parse_remaps(args.remap)
    wanted = parse_subscriber_counts(args.subscribers)
    source = BagSource(args.bag, args.topics)
    stats = PlayStats(0, {}, {}, 0.0, 0.0, 0)
    # args=[]: rclpy would otherwise parse our own command line (FROM:=TO looks like a remap rule to it)
    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C is handled in run()
    node = rclpy.create_node("msslam_play")
    log = node.get_logger()
    pubs: dict[str, Any] = {}
    try:
        for topic, msgtype in sorted(source.topic_types.items()):
            try:
                cls = import_msg_type(msgtype)
            except ImportError as exc:
                stats.skipped_topics[topic] = f"type {msgtype} not importable ({exc})"
                log.warning(f"skipping {topic}: {msgtype} has no Python module here")
                continue
            # static TF must reach late joiners, like tf2_ros's static broadcaster
            qos = qos_profile("latched") if topic.endswith("_static") else qos_profile("reliable", args.qos_depth)
            pubs[topic] = node.create_publisher(cls, remaps.get(topic, topic), qos)
        clock_pub = None
        if args.clock is not None:
            from rosgraph_msgs.msg import Clock

            clock_pub = node.create_publisher(Clock, "/clock", qos_profile("reliable", 10))
        waited = [*pubs.values(), *([clock_pub] if clock_pub else [])]
        unknown = sorted(set(wanted) - {p.topic_name for p in waited})
        if unknown:
            log.warning(f"--subscribers names topics this playback does not publish: {unknown}")
        if args.wait_for_subscribers:
            deadline = time.monotonic() + args.wait_timeout

            def short() -> list[str]:
                return [f"{p.topic_name} ({p.get_subscription_count()} of {wanted.get(p.topic_name, 1)})"
                        for p in waited if p.get_subscription_count() < wanted.get(p.topic_name, 1)]

            while short() and time.monotonic() < deadline:
                time.sleep(0.02)
            lonely = short()
            if lonely:
                log.warning(f"too few subscribers after {args.wait_timeout:.1f} s on {lonely}; playing anyway")
        if args.delay > 0:
            time.sleep(args.delay)

        last_clock_ns: list[int | None] = [None]

        def send_clock(t_ns: int) -> None:
            # once per new time, not once per message: a frame's messages share a stamp, and every node
            # handles each /clock message in its executor (10 topics x 30 Hz would be 300 a second)
            if clock_pub is not None and t_ns != last_clock_ns[0]:
                last_clock_ns[0] = t_ns
                clock_pub.publish(Clock(clock=ns_to_stamp(t_ns)))

        total = sum(getattr(c, "msgcount", 0) for c in source.connections if c.topic in pubs)
        endless = args.loop and args.max_loops is None
        progress = tqdm(total=None if endless else total * (args.max_loops if args.loop else 1),
                        unit="msg", desc="play", disable=not sys.stderr.isatty())
        t_start = time.monotonic()
        first_ns = last_ns = None
        loops = 0
        unacked: dict[str, int] = {}
        while True:
            loop_t0_wall = time.monotonic()
            loop_first = None
            for topic, _msgtype, t_ns, data in source.messages():
                pub = pubs.get(topic)
                if pub is None:
                    continue
                if loop_first is None:
                    loop_first = t_ns
                    first_ns = t_ns if first_ns is None else first_ns
                if not args.as_fast_as_possible:
                    target = loop_t0_wall + (t_ns - loop_first) * 1e-9 / args.rate
                    while True:
                        now = time.monotonic()
                        if now >= target:
                            break
                        if clock_pub is not None:
                            # bag time advances between messages too, so timers on sim time keep ticking
                            send_clock(loop_first + int((now - loop_t0_wall) * args.rate * 1e9))
                            time.sleep(min(target - now, 1.0 / args.clock))
                        else:
                            time.sleep(target - now)
                send_clock(t_ns)
                if args.as_fast_as_possible:
                    # Never let the keep-last history overwrite a message a subscriber has not acknowledged.
                    # Acks ride on DDS heartbeats (20 ms apart, see run()), so waiting per message would crawl.
                    unacked[topic] = unacked.get(topic, 0) + 1
                    if unacked[topic] >= args.qos_depth:
                        if not pub.wait_for_all_acked(Duration(seconds=10.0)):
                            log.warning(f"{topic}: subscribers did not acknowledge within 10 s; going on")
                        unacked[topic] = 1
                pub.publish(data)
                stats.per_topic[topic] = stats.per_topic.get(topic, 0) + 1
                stats.messages += 1
                last_ns = t_ns
                progress.update()
            loops += 1
            if not args.loop or (args.max_loops is not None and loops >= args.max_loops) or loop_first is None:
                break
        stats.wall_s = time.monotonic() - t_start
        progress.close()
        # Reliable messages still being repaired die with the process: give subscribers a bounded moment
        # (3 s in all: one default DDS heartbeat period, should a user profile have restored it).
        deadline = time.monotonic() + 3.0
        for p in waited:
            p.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
        stats.loops = loops
        stats.bag_s = 0.0 if first_ns is None else (last_ns - first_ns) * 1e-9
    finally:
        source.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return stats


# Fast DDS piggybacks acknowledgements on writer heartbeats, 3 s apart by default: a player that waits
# for acks (the end of a bag, --as-fast-as-possible) would stall for seconds each time. Measured on the
# 10-frame simulator bag, as fast as possible: 48 s with the default period, 0.33 s with 20 ms.
_WRITER_HEARTBEAT_MS = 20


def _use_fast_heartbeat(folder: Path) -> None:
    """A 20 ms writer heartbeat on top of the transport :func:`..ros.dds.use_dds_environment` chose, from a
    profiles file written into ``folder``.

    A profiles file the user chose is left alone; with ``FASTDDS_BUILTIN_TRANSPORTS`` set (the user's
    transport) the file holds the writer profile only.
    """
    from ..ros.dds import PROFILES_ENV_KEYS, profiles_file, profiles_xml

    chosen = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if os.environ.get(PROFILES_ENV_KEYS[1]) or (chosen and chosen != str(profiles_file())):
        return
    xml = folder / "msslam_play_fastdds.xml"
    xml.write_text(profiles_xml(_WRITER_HEARTBEAT_MS, transports=chosen is not None))
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(xml)


def run(args: argparse.Namespace) -> int:
    """Play; prints a summary. Returns 0 on success (also when interrupted), 1 on bad input."""
    import tempfile

    from ..ros.dds import use_dds_environment

    # The environment is restored on the way out: run() may be called in-process (tests, other verbs), and a
    # FASTDDS_DEFAULT_PROFILES_FILE pointing into the deleted temporary folder would be inherited by every
    # DDS process started later ("XMLPARSER Error realpath failed").
    saved_env = use_dds_environment()  # the suite's transport unless the user chose one; restored below
    tmp = tempfile.TemporaryDirectory(prefix="msslam_play_")
    _use_fast_heartbeat(Path(tmp.name))
    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = play(args)
    except ValueError as exc:
        print(f"msslam play: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("msslam play: interrupted", file=sys.stderr)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tmp.cleanup()
    for topic, reason in stats.skipped_topics.items():
        print(f"skipped {topic}: {reason}")
    played_s = stats.bag_s * max(1, stats.loops)  # every loop plays the whole span again
    rate = played_s / stats.wall_s if stats.wall_s > 0 else float("inf")
    print(f"published {stats.messages} messages on {len(stats.per_topic)} topics, {stats.bag_s:.2f} s of bag "
          f"in {stats.wall_s:.2f} s ({rate:.2f}x the recorded rate), {stats.loops} loop(s)")
    return 0
