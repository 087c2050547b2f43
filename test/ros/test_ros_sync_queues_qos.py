"""Approximate-time synchronizer, drop-oldest queues and named QoS profiles."""
from __future__ import annotations

import threading
import time

import pytest

from metric_semantic_slam.ros.queues import DropOldestQueue
from metric_semantic_slam.ros.sync import ApproximateSynchronizer


def _sync(n=2, queue_size=5, slop_s=0.01):
    out = []
    return ApproximateSynchronizer(n, queue_size, slop_s, lambda *m: out.append(m)), out


def test_emits_one_set_per_matching_stamps_in_input_order():
    s, out = _sync()
    assert not s.add(0, 1.000, "c1")
    assert s.add(1, 1.004, "d1")
    assert out == [("c1", "d1")]
    s.add(1, 2.000, "d2")
    s.add(0, 2.009, "c2")
    assert out[-1] == ("c2", "d2")
    assert s.stats.emitted == 2 and s.stats.dropped == [0, 0]


def test_no_set_beyond_slop():
    s, out = _sync(slop_s=0.01)
    s.add(0, 1.0, "c")
    s.add(1, 1.02, "d")
    assert out == []


def test_picks_the_nearest_partner_and_drops_older_messages():
    s, out = _sync(slop_s=0.05)
    s.add(1, 0.90, "d_old")  # too old for the colour image at 1.0
    s.add(1, 0.97, "d_a")
    s.add(1, 0.99, "d_b")
    s.add(0, 1.00, "c")
    assert out == [("c", "d_b")]  # nearest, not first within slop
    assert s.stats.dropped == [0, 2]  # d_old and d_a can never be emitted in time order any more


def test_queue_overflow_evicts_oldest_and_counts():
    s, out = _sync(queue_size=3, slop_s=0.001)
    for k in range(5):
        s.add(0, float(k), k)
    assert out == [] and s.stats.dropped == [2, 0] and s.stats.received == [5, 0]
    s.add(1, 0.0, "gone")  # its partner was evicted
    assert out == []
    s.add(1, 4.0, "d4")
    assert out == [(4, "d4")]


def test_three_inputs_and_bad_arguments():
    s, out = _sync(n=3, slop_s=0.02)
    s.add(0, 5.0, "a")
    s.add(2, 5.01, "c")
    assert out == []
    s.add(1, 4.995, "b")
    assert out == [("a", "b", "c")]
    with pytest.raises(ValueError):
        s.add(3, 1.0, "x")
    for args in [(0, 5, 0.1), (2, 0, 0.1), (2, 5, -1.0)]:
        with pytest.raises(ValueError):
            ApproximateSynchronizer(*args, callback=print)


def test_drop_oldest_queue_counts_drops_and_stays_bounded():
    q = DropOldestQueue[int](3)
    evicted = [q.put(i) for i in range(5)]
    assert evicted == [None, None, None, 0, 1]
    assert len(q) == 3 and q.dropped == 2 and q.received == 5 and q.high_water == 3
    assert [q.get_nowait() for _ in range(4)] == [2, 3, 4, None]
    assert q.get(timeout=0.01) is None
    with pytest.raises(ValueError):
        DropOldestQueue(0)


def test_drop_oldest_queue_get_wakes_on_put():
    q = DropOldestQueue[str](2)
    threading.Timer(0.05, q.put, args=("x",)).start()
    t = time.monotonic()
    assert q.get(timeout=2.0) == "x"
    assert time.monotonic() - t < 1.0


def test_named_qos_profiles():
    pytest.importorskip("rclpy")
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from metric_semantic_slam.ros.qos import PROFILE_NAMES, qos_matching_publishers, qos_profile

    assert qos_profile("sensor").reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos_profile("reliable", depth=3).depth == 3
    latched = qos_profile("latched")
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.depth == 1
    assert set(PROFILE_NAMES) == {"sensor", "reliable", "latched", "default"}
    with pytest.raises(ValueError, match="unknown QoS profile"):
        qos_profile("fast")
    with pytest.raises(ValueError):
        qos_profile("reliable", depth=0)

    class Info:
        def __init__(self, p):
            self.qos_profile = p

    mixed = qos_matching_publishers([Info(qos_profile("reliable")), Info(qos_profile("sensor"))])
    assert mixed.reliability == ReliabilityPolicy.BEST_EFFORT
    latched_only = qos_matching_publishers([Info(qos_profile("latched"))])
    assert latched_only.reliability == ReliabilityPolicy.RELIABLE
    assert latched_only.durability == DurabilityPolicy.TRANSIENT_LOCAL
