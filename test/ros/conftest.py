"""Fixtures shared by the ROS tests: the optional-package stand-ins and the per-node DDS rig."""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest

# the modules whose `try: import cv_bridge/message_filters/tf2_ros` decides their path at import time
EXTRAS_MODULES = ("metric_semantic_slam.ros.image_conversion", "metric_semantic_slam.ros.sync",
                  "metric_semantic_slam.ros.tf")


@pytest.fixture
def ros_extras():
    """``use(*packages)`` installs the stand-ins of ``fake_ros_extras`` (``"cv_bridge"``, ``"message_filters"``,
    ``"tf2_ros"``, ``"launch"``) and reloads the project's modules so they take those paths; at teardown the
    stand-ins go and the modules are reloaded onto their fallbacks again."""
    import fake_ros_extras

    mp = pytest.MonkeyPatch()

    def use(*packages: str) -> dict[str, Any]:
        mods = fake_ros_extras.install(mp, *packages)
        for name in EXTRAS_MODULES:
            importlib.reload(importlib.import_module(name))
        return mods

    try:
        yield use
    finally:
        mp.undo()
        for name in EXTRAS_MODULES:
            importlib.reload(importlib.import_module(name))


# ------------------------------------------------------------------------------------- per-node DDS rig
@pytest.fixture(scope="session")
def sim_frames(tmp_path_factory):
    """Ten frames of the simulated sequence (seed 1, 160x120, no bag) with ground truth, shared by the node tests."""
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("node_sim") / "seq"
    simulate(root, seed=1, frames=10, width=160, height=120, write_bag=False, verbose=False)
    return list(open_sequence(root))


@dataclass
class NodeRig:
    """One suite node as its own process and an rclpy participant on the same ``ROS_DOMAIN_ID`` that publishes
    its inputs and collects its outputs (and its JSON status on ``/<namespace>/<name>/status``).

    Build it with the ``node_rig`` fixture; ``stop()`` returns the node's exit code (0 = clean SIGINT).
    """

    node: Any
    col: Any
    status_topic: str
    pubs: dict[str, Any] = field(default_factory=dict)
    _closed: bool = False

    def publisher(self, key: str, msg_type: type, topic: str, depth: int = 20) -> Any:
        from metric_semantic_slam.ros.qos import qos_profile

        self.pubs[key] = self.col.node.create_publisher(msg_type, topic, qos_profile("reliable", depth=depth))
        return self.pubs[key]

    def wait_ready(self, inputs: tuple[str, ...], timeout_s: float = 90.0) -> None:
        """The node logged "ready" and subscribed to the publishers named in ``inputs``."""
        assert self.node.wait_for_log("ready", timeout_s), self.node.log()
        assert self.col.spin_until(lambda: all(self.pubs[k].get_subscription_count() > 0 for k in inputs), 20), \
            self.node.log()

    def spin(self, seconds: float) -> None:
        """Let messages flow both ways for ``seconds``."""
        self.col.spin_until(lambda: False, seconds)

    def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        return self.col.spin_until(done, timeout_s)

    def count(self, topic: str) -> int:
        return self.col.count(topic)

    def messages(self, topic: str) -> list[Any]:
        return [m for _t, m in self.col.messages[topic]]

    def status(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """The node's next status (published after this call), parsed."""
        t0 = time.monotonic()
        msgs = self.col.messages[self.status_topic]
        self.col.spin_until(lambda: bool(msgs) and msgs[-1][0] > t0, timeout_s)
        return json.loads(msgs[-1][1].data)

    def log(self) -> str:
        return self.node.log()

    def stop(self) -> int:
        if not self._closed:
            self._closed = True
            self.col.close()
        return self.node.stop()


@pytest.fixture
def node_rig(tmp_path):
    """``start(module, name, domain, outputs, parameters=None, namespace="t", env=None) -> NodeRig``: the node
    runs with a 0.3 s status period and unthrottled drop logs (plus ``parameters``), its log in ``tmp_path``;
    ``outputs`` maps topics to collect to their types. Every rig is stopped at teardown."""
    from std_msgs.msg import String

    from metric_semantic_slam.ros.node_runtime import NodeProcess
    from metric_semantic_slam.ros.testing import TopicCollector, ros_env

    rigs: list[NodeRig] = []

    def start(module: str, name: str, domain: int, outputs: dict[str, type], parameters: dict | None = None,
              namespace: str = "t", env: dict[str, str] | None = None) -> NodeRig:
        status_topic = f"/{namespace}/{name}/status"
        node = NodeProcess(module, name, ros_env(domain, **(env or {})), namespace=namespace,
                           parameters={"status_period_s": 0.3, "drop_log_period_s": 0.0, **(parameters or {})},
                           log_path=tmp_path / f"{name}-{len(rigs)}.log")
        try:
            col = TopicCollector(domain, {**outputs, status_topic: String})
        except BaseException:
            node.stop()
            raise
        rigs.append(NodeRig(node, col, status_topic))
        return rigs[-1]

    yield start
    for rig in rigs:
        rig.stop()
