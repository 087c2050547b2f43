"""``ros/sync.py`` through ``message_filters`` (the Kilted stand-in of ``fake_ros_extras``): the same sets as our
approximate-time synchronizer on live-like streams; both backends of ``SyncedSubscriptions`` over real rclpy
subscriptions (ROS_DOMAIN_ID 84)."""
from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
import rclpy.executors  # noqa: E402
from rclpy.context import Context  # noqa: E402

import fake_ros_extras as fx  # noqa: E402
from metric_semantic_slam.ros.sync import ApproximateSynchronizer  # noqa: E402

pytestmark = pytest.mark.ros
DOMAIN = 84


class FakeNode:
    """A node as far as ``message_filters.Subscriber`` and our builtin subscriptions need one: the callbacks."""

    def __init__(self):
        self.callbacks = {}

    def create_subscription(self, msg_type, topic, callback, qos_profile):
        self.callbacks[topic] = callback
        return SimpleNamespace(topic_name=topic)


def _msg(stream: int, stamp_ns: int):
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec)),
                           key=(stream, stamp_ns))


def _streams(seed: int, n_inputs: int, frames: int = 60):
    """Arrivals of ``n_inputs`` 30 Hz streams (±3 ms stamp jitter, a few frames missing on one input), each
    stream in stamp order, the streams interleaved by random transport delays."""
    rng = np.random.default_rng(seed)
    arrivals = []
    for i in range(n_inputs):
        last_arrival = 0
        for k in range(frames):
            stamp_ns = int(1e9 + k * 33_333_333 + rng.integers(-3_000_000, 3_000_000))
            last_arrival = max(last_arrival, stamp_ns + int(rng.integers(0, 60_000_000)))  # one stream keeps order
            if i == n_inputs - 1 and k % 11 == 5:
                continue  # a frame lost on the last input
            arrivals.append((last_arrival, i, stamp_ns))
    arrivals.sort()
    return [(i, s) for _t, i, s in arrivals]


@pytest.mark.parametrize("seed, n_inputs", [(0, 2), (1, 2), (2, 3), (3, 3)])
def test_message_filters_and_builtin_emit_the_same_sets(seed, n_inputs):
    arrivals = _streams(seed, n_inputs)
    ours, theirs = [], []
    sync = ApproximateSynchronizer(n_inputs, 10, 0.010, lambda *m: ours.append(tuple(x.key for x in m)))
    filters = [fx.SimpleFilter() for _ in range(n_inputs)]
    mf = fx.ApproximateTimeSynchronizer(filters, 10, 0.010)
    mf.registerCallback(lambda *m: theirs.append(tuple(x.key for x in m)))
    for i, s in arrivals:
        m = _msg(i, s)
        sync.add(i, s * 1e-9, m)
        filters[i].signalMessage(m)
    assert len(ours) > 40  # most frames make a set; the lost ones cannot
    assert theirs == ours


def test_message_filters_stand_in_keeps_upstream_semantics():
    # strict slop, nearest partner first, only the emitted messages leave the queues
    f0, f1 = fx.SimpleFilter(), fx.SimpleFilter()
    out = []
    mf = fx.ApproximateTimeSynchronizer([f0, f1], 3, 0.010)
    mf.registerCallback(lambda a, b: out.append((a.key, b.key)))
    f1.signalMessage(_msg(1, 990_000_000))
    f1.signalMessage(_msg(1, 1_004_000_000))
    f0.signalMessage(_msg(0, 1_000_000_000))
    assert out == [((0, 1_000_000_000), (1, 1_004_000_000))]
    assert list(mf.queues[1]) == [990_000_000]  # still queued (our builtin would drop it)
    f0.signalMessage(_msg(0, 2_000_000_000))
    f1.signalMessage(_msg(1, 2_010_000_000))  # exactly the slop apart: not a set upstream
    assert len(out) == 1


@pytest.fixture
def nodes():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    made = []

    def make(name):
        n = rclpy.create_node(name, context=ctx)
        made.append(n)
        return n

    yield make
    for n in made:
        n.destroy_node()
    ctx.try_shutdown()


def _run_pairs(sync_module, sub_node, pub_node, **kw):
    from sensor_msgs.msg import CameraInfo, Image

    from metric_semantic_slam.ros.qos import qos_profile
    from metric_semantic_slam.ros.stamps import seconds_to_stamp

    got = []
    sync = sync_module.SyncedSubscriptions(sub_node, [(Image, "img"), (CameraInfo, "info")],
                                           lambda a, b: got.append((a.header.frame_id, b.header.frame_id)),
                                           qos_profile("reliable"), queue_size=5, slop_s=0.01, **kw)
    pi, pc = pub_node.create_publisher(Image, "img", 10), pub_node.create_publisher(CameraInfo, "info", 10)
    ex = rclpy.executors.SingleThreadedExecutor(context=sub_node.context)
    ex.add_node(sub_node)
    for _ in range(300):
        if pi.get_subscription_count() and pc.get_subscription_count():
            break
        ex.spin_once(timeout_sec=0.01)
    for k, (ti, tc) in enumerate([(1.0, 1.005), (2.0, 2.5), (3.0, 2.995)]):
        img, info = Image(), CameraInfo()
        img.header.stamp, info.header.stamp = seconds_to_stamp(ti), seconds_to_stamp(tc)
        img.header.frame_id = info.header.frame_id = str(k)
        pi.publish(img)
        pc.publish(info)
    for _ in range(400):
        if len(got) == 2 and sum(sync.stats.received) == 6:
            break
        ex.spin_once(timeout_sec=0.01)
    ex.shutdown()
    return sync, got


def test_synced_subscriptions_take_message_filters_over_real_topics(ros_extras, nodes):
    ros_extras("message_filters")
    sync_module = importlib.import_module("metric_semantic_slam.ros.sync")
    assert sync_module.HAVE_MESSAGE_FILTERS
    before = fx.USED.copy()
    sync, got = _run_pairs(sync_module, nodes("sub"), nodes("pub"))
    assert sync.backend == "message_filters"
    assert (fx.USED - before)["message_filters.Subscriber"] == 2
    builtin, got_builtin = _run_pairs(sync_module, nodes("sub2"), nodes("pub2"), force_builtin=True)
    assert builtin.backend == "builtin"
    assert got == got_builtin == [("0", "0"), ("2", "2")]
    st = sync.stats  # counted around message_filters: frame 1's pair (0.5 s apart) is still queued there
    assert (st.emitted, st.received, st.dropped) == (2, [3, 3], [0, 0])
    assert (builtin.stats.emitted, builtin.stats.dropped) == (2, [1, 1])  # ours drops what cannot be emitted in order


def test_message_filters_stats_count_evictions(ros_extras):
    ros_extras("message_filters")
    sync_module = importlib.import_module("metric_semantic_slam.ros.sync")

    node, got = FakeNode(), []
    sync = sync_module.SyncedSubscriptions(node, [(object, "a"), (object, "b")], lambda *m: got.append(m), qos=10,
                                           queue_size=2, slop_s=0.01)
    for k in range(5):  # input a runs ahead: its queue of 2 evicts 3 messages
        node.callbacks["a"](_msg(0, 1_000_000_000 * (k + 1)))
    node.callbacks["b"](_msg(1, 5_000_000_000))
    assert len(got) == 1
    st = sync.stats
    assert (st.emitted, st.received, st.dropped) == (1, [5, 1], [3, 0])


def _looped_arrivals(loops: int = 3, depth_delay_s: float = 0.115):
    """A mapper's five inputs over a bag played ``loops`` times (30 Hz color + pose; a fused depth every 15th
    frame arriving ``depth_delay_s`` late, its two label images 20 ms late): (arrival, input, stamp_ns)."""
    events = []
    for loop in range(loops):
        t0 = loop * 10.5
        for k in range(300):
            stamp_ns = 1_000_000_000 + k * 33_333_333
            t = t0 + k / 30
            events += [(t + 0.002, 1, stamp_ns), (t + 0.003, 4, stamp_ns)]
            if k % 15 == 0:
                events += [(t + depth_delay_s, 0, stamp_ns), (t + 0.020, 2, stamp_ns), (t + 0.021, 3, stamp_ns)]
    return sorted(events)


@pytest.mark.parametrize("backend", ["builtin", "message_filters"])
def test_sets_keep_forming_after_the_bag_loops_back(ros_extras, backend):
    ros_extras("message_filters")
    sync_module = importlib.import_module("metric_semantic_slam.ros.sync")

    def run(time_reset_s: float) -> int:
        node, got = FakeNode(), []
        names = ["depth", "color", "semantic", "instance", "pose"]
        sync_module.SyncedSubscriptions(node, [(object, n) for n in names], lambda *m: got.append(m), qos=10,
                                        queue_size=30, slop_s=0.02, force_builtin=backend == "builtin",
                                        time_reset_s=time_reset_s)
        for _t, i, stamp_ns in _looped_arrivals():
            node.callbacks[names[i]](_msg(i, stamp_ns))
        return len(got)

    assert run(5.0) == 60  # every slot frame of every pass makes its set
    assert run(1e6) < 60  # without the reset the previous pass's messages crowd out the new ones


def test_builtin_keeps_the_previous_pass_sets_whose_late_partner_comes_after_the_loop():
    # The GPU profile's case: every frame fused, the fused depth ~80 ms behind color, the bag looping back at
    # once: the last frames of a pass wait for their depth while the next pass has begun. Dropping them at the
    # reset lost 2 frames a loop (4 of 900 here; 5 of 900 in the GPU suite); kept in their own pass, every set
    # forms, and the sets still come out pass after pass.
    events = []
    for loop in range(3):
        for k in range(300):
            stamp = 1000.0 + k / 30
            t = loop * 10.0 + k / 30
            events += [(t + 0.001, 1, stamp), (t + 0.002, 2, stamp), (t + 0.080, 0, stamp)]
    got = []
    sync = ApproximateSynchronizer(3, 30, 0.005, lambda *m: got.append(m))
    for _t, i, stamp in sorted(events):
        sync.add(i, stamp, (i, stamp))
    assert len(got) == 900 and sync.time_resets == 2
    assert all(len({m[1] for m in s}) == 1 for s in got)  # each set from one frame
    stamps = [s[0][1] for s in got]
    assert all(stamps[k] < stamps[k + 1] for k in range(len(stamps) - 1) if (k + 1) % 300)  # in order per pass
    assert sync.stats.dropped == [0, 0, 0]


def test_a_late_message_of_the_previous_pass_never_comes_out_after_the_new_pass_began():
    got = []
    sync = ApproximateSynchronizer(2, 10, 0.005, lambda *m: got.append(m))
    sync.add(0, 100.0, "a100")
    sync.add(1, 100.0, "b100")
    sync.add(0, 100.1, "a100.1")   # waits for its partner
    sync.add(0, 50.0, "a50")       # the loop: a new pass
    sync.add(1, 50.0, "b50")       # its first set: the previous pass is done
    sync.add(1, 100.1, "b100.1")   # too late: a100.1 is gone, nothing comes out
    sync.add(0, 50.1, "a50.1")
    sync.add(1, 50.1, "b50.1")     # the next set of the new pass clears the late message
    assert got == [("a100", "b100"), ("a50", "b50"), ("a50.1", "b50.1")]
    assert sync.stats.dropped == [1, 1]


def test_a_forward_jump_after_a_loop_stays_in_the_current_pass():
    # A gap in a recording (the stream resumes 8 s later) is not a late message of the previous pass.
    got = []
    sync = ApproximateSynchronizer(2, 10, 0.005, lambda *m: got.append(m))
    for t in (100.0, 100.1):
        sync.add(0, t, f"a{t}")
        sync.add(1, t, f"b{t}")
    for t in (50.0, 58.0, 58.1):  # the loop, then a gap of 8 s
        sync.add(0, t, f"a{t}")
        sync.add(1, t, f"b{t}")
    assert [m[0] for m in got] == ["a100.0", "a100.1", "a50.0", "a58.0", "a58.1"]


def test_time_reset_must_be_positive():
    with pytest.raises(ValueError, match="time_reset_s"):
        ApproximateSynchronizer(2, 10, 0.01, print, time_reset_s=0.0)


@pytest.mark.parametrize("lag_s", [0.08, 2.5, 6.0])
def test_a_stream_lagging_by_seconds_across_the_loops_still_pairs_in_order(lag_s):
    # An overloaded depth fusion: its output runs seconds behind color, so around each loop one input is
    # in the new pass while the other is still in the previous one (longer than io.trajectory.LATE_MARGIN_S,
    # even longer than time_reset_s). Each input's passes are told apart from its own stream: every frame
    # pairs, each set from one frame, pass after pass, in order.
    events = []
    for loop in range(3):
        for k in range(300):
            stamp = 1000.0 + k / 30
            t = loop * 10.0 + k / 30
            events += [(t + 0.001, 1, stamp), (t + lag_s, 0, stamp)]
    got = []
    sync = ApproximateSynchronizer(2, 400, 0.005, lambda *m: got.append(m))
    for _t, i, stamp in sorted(events):
        sync.add(i, stamp, (i, stamp))
    assert len(got) == 900
    assert all(s[0][1] == s[1][1] for s in got)
    stamps = [s[0][1] for s in got]
    assert all(stamps[k] < stamps[k + 1] for k in range(len(stamps) - 1) if (k + 1) % 300)
    assert sync.stats.dropped == [0, 0]


def test_an_input_that_starts_after_the_others_looped_joins_their_pass():
    # Color has played a whole pass and 2 s of the next when depth (a node started late) sends its first
    # message: it pairs with the color of the current pass, and keeps pairing through the next loop.
    got = []
    sync = ApproximateSynchronizer(2, 30, 0.005, lambda *m: got.append(m))
    for loop in range(3):
        for k in range(300):
            stamp = 1000.0 + k / 30
            sync.add(1, stamp, (1, loop, stamp))
            if (loop, k) >= (1, 60):
                sync.add(0, stamp, (0, loop, stamp))
    assert len(got) == 240 + 300
    assert all(s[0][1:] == s[1][1:] for s in got)  # same pass, same stamp
