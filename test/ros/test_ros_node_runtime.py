"""StageNode / run_node: parameters, queues, worker errors, drops, stamps, status JSON (in-process, domain 70)
and a real process that answers, survives a failing message and runs on_shutdown on SIGINT (domain 71)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from metric_semantic_slam.ros.node_runtime import (RUNTIME_PARAMS, StageNode, TopicSpec,  # noqa: E402
                                                   with_runtime_params)
from metric_semantic_slam.ros.params import ParamSpec  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402

pytestmark = pytest.mark.ros

SPECS = (ParamSpec("gain", 2, "multiplier"), ParamSpec("status_period_s", 0.2, "fast status for the test"))


@pytest.fixture
def ctx():
    c = Context()
    rclpy.init(context=c, domain_id=70)
    yield c
    c.try_shutdown()


def test_runtime_params_are_added_once_and_resolved(ctx):
    full = with_runtime_params(SPECS)
    names = [s.name for s in full]
    assert names.count("status_period_s") == 1 and names[:2] == ["gain", "status_period_s"]
    assert set(names) == {"gain"} | {s.name for s in RUNTIME_PARAMS}
    node = StageNode("rt_params", SPECS, context=ctx)
    try:
        assert node.params.gain == 2 and node.params.status_period_s == 0.2
        assert node.params.input_qos == "reliable"
    finally:
        node.shutdown()
        node.destroy_node()


def test_bad_input_qos_is_refused(ctx):
    from rclpy.parameter import Parameter

    with pytest.raises(ValueError, match="input_qos"):
        StageNode("rt_badqos", SPECS, context=ctx,
                  parameter_overrides=[Parameter("input_qos", Parameter.Type.STRING, "fast")])


def test_status_reports_the_process_resident_memory(ctx):
    import numpy as np

    node = StageNode("rt_memory", SPECS, context=ctx)
    try:
        before = node.status()["memory_mb"]
        block = np.ones(96 * 2**20, np.uint8)  # 96 MiB, every page touched
        after = node.status()["memory_mb"]
        assert after["rss"] - before["rss"] >= 80, (before, after)
        assert after["peak"] >= after["rss"] > 0
        del block
    finally:
        node.shutdown()
        node.destroy_node()


def test_worker_survives_exceptions_and_status_counts_everything(ctx):
    node = StageNode("rt_worker", SPECS, context=ctx)
    q = node.make_queue("frames", 3)
    done = []

    def work():
        item = q.get(timeout=0.05)
        if item is None:
            return
        with node.timed("square"):
            if item < 0:
                raise RuntimeError("negative frame")
            done.append(item * item)
        node.record_latency(node.now_s() - 0.010)

    try:
        for i in [1, -1, 2, 3]:
            q.put(i)
            time.sleep(0.05)
        node.start_worker(work)
        deadline = time.monotonic() + 5
        while len(done) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        # the queue held 3: item 1 was evicted by the 4th put; -1 raised and the worker went on
        assert done == [4, 9]
        for i in range(5):
            q.put(10 + i)
            deadline = time.monotonic() + 5
            while len(q) and time.monotonic() < deadline:  # one at a time: no evictions
                time.sleep(0.005)
        deadline = time.monotonic() + 5
        while len(done) < 7 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done[-1] == 14 ** 2
        node.drop("nan_depth", "all depth NaN")
        node.drop("nan_depth", "again")
        st = node.status()
        assert st["drops"]["nan_depth"] == 2 and st["drops"]["exception:RuntimeError"] == 1
        assert st["errors"] == 1
        assert st["queues"]["frames"]["dropped"] == 1 and st["queues"]["frames"]["high_water"] == 3
        assert st["queues"]["frames"]["maxsize"] == 3 and st["queues"]["frames"]["received"] == 9
        # the rate counts input since the previous status, which the status thread may have just taken
        assert st["queues"]["frames"]["rate_hz"] >= 0 and node.status()["queues"]["frames"]["rate_hz"] == 0
        # timed() also records the block that raised
        assert st["stages"]["square"]["count"] == 8
        assert st["stages"]["square"]["p95_ms"] >= 0
        lat = st["latency"]["output"]
        assert lat["count"] == 7 and 9.0 <= lat["p50_ms"] < 500.0
        # a stamp of another clock (sensor time 100 s against wall time) is counted, not averaged in
        node.record_latency(100.0)
        st = node.status()
        assert st["latency"]["output"]["count"] == 8 and st["latency_clock_mismatch"] == {"output": 1}
        assert st["latency"]["output"]["p50_ms"] == lat["p50_ms"]
        node.record_latency(100.0, "only_other_clock")
        assert node.status()["latency"]["only_other_clock"] == {"count": 1, "p50_ms": None, "p95_ms": None,
                                                                "max_ms": None}
        json.dumps(st)  # publishable
    finally:
        node.shutdown()
        node.destroy_node()
    assert not any(t.is_alive() for t in node._workers)


def test_accept_stamp_drops_backwards_and_treats_big_jumps_as_reset(ctx):
    resets = []

    class N(StageNode):
        def on_time_reset(self):
            resets.append(True)

    node = N("rt_stamps", SPECS, context=ctx)
    try:
        assert node.accept_stamp("color", 100.0)
        assert node.accept_stamp("color", 100.1)
        assert not node.accept_stamp("color", 100.1)   # duplicate
        assert not node.accept_stamp("color", 100.05)  # backwards
        assert node.accept_stamp("depth", 100.05)      # streams are independent
        assert not node.accept_stamp("color", float("nan"))
        assert node.accept_stamp("color", 10.0)        # a bag loop: reset
        assert resets == [True]
        assert node.accept_stamp("depth", 10.0)        # every stream was reset
        st = node.status()
        assert st["drops"] == {"stamp_backwards": 2, "bad_stamp": 1}
    finally:
        node.shutdown()
        node.destroy_node()


def test_status_is_published_on_the_private_topic():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=70)
    node = StageNode("rt_status", SPECS, context=ctx, namespace="ns")
    node.make_queue("q", 2)
    try:
        with TopicCollector(70, {"/ns/rt_status/status": String}) as col:
            assert col.spin_until(lambda: col.count("/ns/rt_status/status") >= 2, timeout_s=10)
            st = json.loads(col.messages["/ns/rt_status/status"][-1][1].data)
            assert st["node"] == "/ns/rt_status" and st["queues"]["q"]["maxsize"] == 2
    finally:
        node.shutdown()
        node.destroy_node()
        ctx.try_shutdown()


def test_topic_spec_is_plain_data():
    t = TopicSpec("depth/fused", "sensor_msgs/msg/Image", "reliable", "fused depth")
    assert t.msg_type.count("/") == 2


NODE_MODULE = textwrap.dedent('''
    """A StageNode for the runtime test: echoes `in` to `out` in its worker, fails on 'boom'."""
    import sys
    from pathlib import Path
    from std_msgs.msg import String
    from metric_semantic_slam.ros.node_runtime import StageNode, run_node
    from metric_semantic_slam.ros.params import ParamSpec

    PARAMS = (ParamSpec("marker_path", "", "file written at shutdown"),
              ParamSpec("status_period_s", 0.3, "status period"))

    class Echo(StageNode):
        def __init__(self, **kw):
            super().__init__("echo", PARAMS, **kw)
            self.q = self.make_queue("in", 4)
            self.pub = self.create_publisher(String, "out", 10)
            self.create_subscription(String, "in", self.q.put, 10)
            self.n = 0
            self.start_worker(self.work)

        def work(self):
            msg = self.q.get(timeout=0.1)
            if msg is None:
                return
            if msg.data == "boom":
                raise ValueError("boom message")
            self.n += 1
            self.pub.publish(String(data=msg.data.upper()))

        def on_shutdown(self):
            Path(self.params.marker_path).write_text(f"processed {self.n}")

    def main(argv=None):
        return run_node(Echo, argv)
''')


def test_run_node_process_survives_errors_and_saves_on_sigint(tmp_path):
    (tmp_path / "echo_node.py").write_text(NODE_MODULE)
    marker = tmp_path / "marker.txt"
    env = ros_env(71, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", ""), os.getcwd()]))
    log = tmp_path / "log.txt"
    with open(log, "wb") as f:
        proc = subprocess.Popen([sys.executable, "-c", "import sys, echo_node; sys.exit(echo_node.main())",
                                 "--ros-args", "-r", "__node:=echo", "-p", f"marker_path:={marker}"],
                                env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with TopicCollector(71, {"/out": String, "/echo/status": String}) as col:
            pub = col.node.create_publisher(String, "/in", 10)
            deadline = time.monotonic() + 20
            sent = 0
            while col.count("/out") < 3 and time.monotonic() < deadline:
                pub.publish(String(data="boom" if sent % 2 else f"m{sent}"))
                sent += 1
                col.spin_until(lambda: False, 0.1)
            assert col.count("/out") >= 3, log.read_text()
            assert col.spin_until(lambda: any("ValueError" in m.data for _, m in col.messages["/echo/status"]), 5)
            st = json.loads(col.messages["/echo/status"][-1][1].data)
            assert st["drops"]["exception:ValueError"] >= 1 and proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "boom message" in text and "Traceback" in text  # logged with its traceback
    assert "final status" in text
    assert marker.read_text().startswith("processed ") and int(marker.read_text().split()[1]) >= 3


def test_run_node_reports_a_node_that_cannot_start(tmp_path):
    (tmp_path / "bad_node.py").write_text(textwrap.dedent('''
        from metric_semantic_slam.ros.node_runtime import StageNode, run_node
        class Bad(StageNode):
            def __init__(self, **kw):
                super().__init__("bad", (), **kw)
                raise ValueError("no camera model configured")
        def main(argv=None):
            return run_node(Bad, argv)
    '''))
    env = ros_env(71, PYTHONPATH=os.pathsep.join([str(tmp_path), os.getcwd()]))
    proc = subprocess.run([sys.executable, "-c", "import sys, bad_node; sys.exit(bad_node.main())"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "no camera model configured" in proc.stderr
