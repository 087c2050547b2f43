"""Helpers for tests that talk to nodes over real DDS: an isolated rclpy context that collects messages.

Each :class:`TopicCollector` owns its own rclpy ``Context`` on a chosen ``ROS_DOMAIN_ID``, so tests can
run side by side (and beside other rclpy users in the process) without hearing each other.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

__all__ = ["TopicCollector", "ros_env"]


def ros_env(domain_id: int, **extra: str) -> dict[str, str]:
    """Environment for a child process on ``domain_id`` with the large-image DDS transport (DESIGN.md §6)."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
           "PYTHONUNBUFFERED": "1"}
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)  # LOCALHOST would cancel LARGE_DATA
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        if env.get(key) and not os.path.isfile(env[key]):  # a profiles file that is gone breaks participants
            env.pop(key)
    env.update(extra)
    return env


class TopicCollector:
    """Subscribes to topics on its own context and keeps every message with its receive time.

    ``messages[topic]`` is a list of ``(receive monotonic s, msg)``. Use as a context manager.
    """

    def __init__(self, domain_id: int, topics: dict[str, type], qos: Any = None, name: str = "collector") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from .qos import qos_profile

        # the transport is chosen when the participant is created, from the process environment
        os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[tuple[float, Any]]] = {t: [] for t in topics}
        qos = qos or qos_profile("reliable", depth=200)
        self._subs = [
            self.node.create_subscription(cls, topic, lambda m, t=topic: self.messages[t].append((time.monotonic(), m)),
                                          qos)
            for topic, cls in topics.items()
        ]

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Process callbacks until ``done()`` is true or ``timeout_s`` passes; returns ``done()``."""
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return done()

    def count(self, topic: str) -> int:
        return len(self.messages[topic])

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()

    def __enter__(self) -> "TopicCollector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
