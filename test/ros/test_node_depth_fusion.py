"""depth_fusion_node as a real process over DDS (ROS_DOMAIN_ID 72): fused depth + confidence per frame,
pass-through without IR, stereo-only output only once the depth has been silent for the timeout (an IR pair ahead of
its depth frame is fused once, with it), and bad messages on every input logged and dropped while the node keeps
working."""
from __future__ import annotations

import json
import time
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from metric_semantic_slam.ros.camera_info import camera_to_camera_info  # noqa: E402
from metric_semantic_slam.ros.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402
from metric_semantic_slam.ros.node_runtime import NodeProcess  # noqa: E402
from metric_semantic_slam.ros.qos import qos_profile  # noqa: E402
from metric_semantic_slam.ros.stamps import stamp_to_seconds  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]

DOMAIN = 72
NS = "/t"
OUT, CONF, STATUS = f"{NS}/depth/fused", f"{NS}/depth/confidence", f"{NS}/depth_fusion/status"
INPUTS = {"depth": ("depth/image_raw", Image), "left": ("ir_left/image_raw", Image),
          "right": ("ir_right/image_raw", Image), "color_info": ("color/camera_info", CameraInfo),
          "left_info": ("ir_left/camera_info", CameraInfo), "right_info": ("ir_right/camera_info", CameraInfo)}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("sim") / "seq"
    simulate(root, seed=1, frames=8, width=160, height=120, write_bag=False, verbose=False)
    return list(open_sequence(root))


@pytest.fixture(scope="module")
def rig(frames, tmp_path_factory):
    """The node process and a collector with publishers for every input."""
    log = tmp_path_factory.mktemp("log") / "depth_fusion.log"
    node = NodeProcess("metric_semantic_slam.nodes.depth_fusion_node", "depth_fusion", ros_env(DOMAIN), namespace="t",
                       # a queue longer than the default 1: the bad-message test sends bursts and checks every
                       # message's drop reason (with 1, a newer message would evict an older one first)
                       parameters={"status_period_s": 0.3, "source_timeout_s": 0.6, "drop_log_period_s": 0.0,
                                   "queue_size": 8},
                       log_path=log)
    col = TopicCollector(DOMAIN, {OUT: Image, CONF: Image, STATUS: String})
    pubs = {k: col.node.create_publisher(t, f"{NS}/{name}", qos_profile("reliable")) for k, (name, t) in INPUTS.items()}
    assert node.wait_for_log("ready", 90), node.log()
    # wait until the node's subscriptions match ours
    assert col.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20), node.log()
    yield node, col, pubs
    col.close()
    code = node.stop()
    assert code == 0, node.log()


def _send_info(pubs, frame):
    s = frame.stereo
    pubs["color_info"].publish(camera_to_camera_info(frame.camera, frame.stamp_s, "camera_color_optical_frame"))
    pubs["left_info"].publish(camera_to_camera_info(s.camera, frame.stamp_s, "camera_infra1_optical_frame"))
    pubs["right_info"].publish(camera_to_camera_info(s.camera, frame.stamp_s, "camera_infra2_optical_frame",
                                                     baseline_m=s.baseline_m))


def _send(pubs, frame, stereo=True, depth=True):
    if stereo:
        pubs["left"].publish(numpy_to_image(frame.stereo.left, "mono8", frame.stamp_s, "camera_infra1_optical_frame"))
        pubs["right"].publish(numpy_to_image(frame.stereo.right, "mono8", frame.stamp_s, "camera_infra2_optical_frame"))
    if depth:
        mm = np.round(frame.depth_m * 1000).astype(np.uint16)
        pubs["depth"].publish(numpy_to_image(mm, "16UC1", frame.stamp_s, "camera_color_optical_frame"))


@contextmanager
def _own_node(ns: str, parameters: dict, log_path, topics: dict, frame):
    """A depth_fusion node of its own in namespace ``ns`` and a collector of ``topics`` (names under ``ns``), once
    the node is ready, its subscriptions match the publishers of every input and ``frame``'s camera infos are sent:
    yields (node, collector, publishers); closes the collector and stops the node (exit code 0) after."""
    node = NodeProcess("metric_semantic_slam.nodes.depth_fusion_node", "depth_fusion", ros_env(DOMAIN),
                       namespace=ns.strip("/"), parameters=parameters, log_path=log_path)
    col = TopicCollector(DOMAIN, topics)
    try:
        pubs = {k: col.node.create_publisher(t, f"{ns}/{name}", qos_profile("reliable"))
                for k, (name, t) in INPUTS.items()}
        assert node.wait_for_log("ready", 90), node.log()
        assert col.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs.values()), 20), node.log()
        _send_info(pubs, frame)
        col.spin_until(lambda: False, 0.3)
        yield node, col, pubs
    finally:
        col.close()
        assert node.stop() == 0, node.log()


def _wait_outputs(col, n, timeout_s=20):
    return col.spin_until(lambda: col.count(OUT) >= n and col.count(CONF) >= n, timeout_s)


def _status(col, after_s=0.0):
    t0 = time.monotonic()
    col.spin_until(lambda: bool(col.messages[STATUS]) and col.messages[STATUS][-1][0] > t0 + after_s, 5)
    return json.loads(col.messages[STATUS][-1][1].data)


def test_fuses_every_frame_and_passes_depth_through_without_ir(rig, frames):
    node, col, pubs = rig
    # no camera_info yet: the frame is dropped with a reason, nothing is published
    _send(pubs, frames[0])
    assert col.spin_until(lambda: _status(col).get("drops", {}).get("no_camera_info", 0) >= 1, 10), node.log()
    assert col.count(OUT) == 0
    _send_info(pubs, frames[0])
    col.spin_until(lambda: False, 0.3)
    for i, f in enumerate(frames[1:5], start=1):
        _send(pubs, f)
        assert _wait_outputs(col, i), node.log()
    for (_, out), (_, conf), f in zip(col.messages[OUT][:4], col.messages[CONF][:4], frames[1:5]):
        assert out.encoding == "32FC1" and conf.encoding == "32FC1"
        assert out.header.frame_id == "camera_color_optical_frame"
        assert abs(stamp_to_seconds(out.header.stamp) - f.stamp_s) < 1e-6
        d, c = image_to_numpy(out), image_to_numpy(conf)
        assert d.shape == f.depth_m.shape and np.all((c >= 0) & (c <= 1))
        gt = f.gt.depth_m
        both = (d > 0) & (gt > 0)
        assert both.mean() > 0.5
        assert np.median(np.abs(d[both] - gt[both])) < 0.03  # fused depth is metric
    # stereo goes silent: after source_timeout_s the depth alone passes through unchanged
    col.spin_until(lambda: False, 0.8)
    n = col.count(OUT)
    _send(pubs, frames[5], stereo=False)
    assert _wait_outputs(col, n + 1), node.log()
    d = image_to_numpy(col.messages[OUT][-1][1])
    raw = np.round(frames[5].depth_m * 1000).astype(np.uint16).astype(np.float32) * np.float32(1e-3)
    np.testing.assert_allclose(d, raw, atol=1e-6)


def test_bad_messages_on_every_input_are_dropped_and_the_node_keeps_working(rig, frames):
    node, col, pubs = rig
    f = frames[6]
    _send_info(pubs, f)
    col.spin_until(lambda: False, 0.2)
    before = _status(col)["drops"]
    n = col.count(OUT)
    t = f.stamp_s
    # depth: wrong encoding, wrong size, all NaN, empty, truncated data
    pubs["depth"].publish(numpy_to_image(f.color, "rgb8", t - 0.020, "c"))
    pubs["depth"].publish(numpy_to_image(np.ones((60, 80), np.float32), "32FC1", t - 0.019, "c"))
    pubs["depth"].publish(numpy_to_image(np.full((120, 160), np.nan, np.float32), "32FC1", t - 0.018, "c"))
    pubs["depth"].publish(Image(height=0, width=0, encoding="32FC1", step=0))
    short = numpy_to_image(np.ones((120, 160), np.float32), "32FC1", t - 0.017, "c")
    short.data = bytes(short.data)[:100]
    pubs["depth"].publish(short)
    # IR: wrong encoding and mismatched pair sizes
    pubs["left"].publish(numpy_to_image(f.stereo.left.astype(np.uint16), "mono16", t - 0.016, "l"))
    pubs["right"].publish(numpy_to_image(f.stereo.right.astype(np.uint16), "mono16", t - 0.016, "r"))
    # camera_info: uncalibrated (zero focal length)
    bad_info = CameraInfo(width=160, height=120)
    pubs["color_info"].publish(bad_info)
    pubs["left_info"].publish(bad_info)
    # depth stamp going backwards after a good one
    _send(pubs, f, stereo=False)
    assert _wait_outputs(col, n + 1), node.log()
    back = np.round(f.depth_m * 1000).astype(np.uint16)
    pubs["depth"].publish(numpy_to_image(back, "16UC1", t - 0.5, "c"))
    col.spin_until(lambda: False, 0.5)
    drops = _status(col, after_s=0.3)["drops"]
    grew = {k: drops.get(k, 0) - before.get(k, 0) for k in drops}
    assert grew.get("bad_depth", 0) >= 2, drops          # rgb8 as depth, truncated data
    # the 80x60 depth is dropped too: size_mismatch against the 160x120 camera, or another reason when the
    # uncalibrated camera_info (another topic, so no ordering guarantee) arrived first
    depth_reasons = ("bad_depth", "size_mismatch", "no_valid_depth", "empty_depth", "no_camera_info")
    assert sum(grew.get(k, 0) for k in depth_reasons) >= 5, drops
    assert grew.get("no_valid_depth", 0) >= 1, drops     # all NaN
    assert grew.get("empty_depth", 0) >= 1, drops
    assert grew.get("bad_ir", 0) >= 1, drops             # mono16 IR
    assert grew.get("bad_camera_info", 0) >= 2, drops    # both uncalibrated infos
    assert grew.get("stamp_backwards", 0) >= 1, drops
    assert node.alive()
    # the same process still fuses a good frame (later stamp) with both sources
    f2 = frames[7]
    n = col.count(OUT)
    _send(pubs, f2)
    assert _wait_outputs(col, n + 1), node.log()
    out = col.messages[OUT][-1][1]
    assert abs(stamp_to_seconds(out.header.stamp) - f2.stamp_s) < 1e-6
    assert (image_to_numpy(out) > 0).mean() > 0.5
    assert "dropped input (bad_depth" in node.log()


def test_process_rate_hz_fuses_the_first_frame_of_each_slot_of_sensor_time(frames, tmp_path):
    """A CPU budget that keeps nodes aligned: with process_rate_hz 2, of twelve depth frames (with their IR pairs)
    stamped 50 ms apart from t = 100 s exactly the first of each 0.5 s slot (100.0 and 100.5) is fused, with its
    pair; the ten frames and ten IR pairs between them are counted as skipped, not as dropped."""
    ns = "/t2"
    status, out = f"{ns}/depth_fusion/status", f"{ns}/depth/fused"
    with _own_node(ns, {"status_period_s": 0.3, "process_rate_hz": 2.0}, tmp_path / "rate.log",
                   {out: Image, status: String}, frames[0]) as (node, col, pubs):
        for i in range(12):
            f = frames[i % len(frames)]
            t = 100.0 + 0.05 * i
            pubs["left"].publish(numpy_to_image(f.stereo.left, "mono8", t, "camera_infra1_optical_frame"))
            pubs["right"].publish(numpy_to_image(f.stereo.right, "mono8", t, "camera_infra2_optical_frame"))
            pubs["depth"].publish(numpy_to_image(np.round(f.depth_m * 1000).astype(np.uint16), "16UC1", t, "cam"))
            col.spin_until(lambda: False, 0.05)

        def last_status():
            msgs = col.messages[status]
            return json.loads(msgs[-1][1].data) if msgs else {}

        assert col.spin_until(lambda: last_status().get("rate_skipped", 0) >= 20 and col.count(out) >= 2
                              and sum(last_status().get("frames_fused", {}).values()) >= 2, 10), \
            (last_status(), node.log())
        col.spin_until(lambda: False, 0.5)
        st = last_status()
        assert st["rate_skipped"] == 20 and st["stages"]["fuse"]["count"] == 2, st
        assert st["frames_fused"] == {"with_pair": 2, "without_pair": 0}, st
        assert all(q["dropped"] == 0 for q in st["queues"].values()), st["queues"]
        stamps = [stamp_to_seconds(m.header.stamp) for _t, m in col.messages[out]]
        np.testing.assert_allclose(stamps, [100.0, 100.5], atol=1e-6)


def test_an_ir_pair_is_skipped_only_where_no_frame_of_the_rate_grid_can_use_it():
    from metric_semantic_slam.nodes.depth_fusion_node import pair_outside_grid

    # 2 Hz grid, last depth frame let through at 100.03 (slot 200: [100.0, 100.5)), slop 20 ms
    assert not pair_outside_grid(100.04, 100.03, 2.0, 0.02)   # its own pair, within the slop
    assert pair_outside_grid(100.06, 100.03, 2.0, 0.02)       # after it, in the same slot
    assert pair_outside_grid(100.47, 100.03, 2.0, 0.02)
    assert not pair_outside_grid(100.49, 100.03, 2.0, 0.02)   # may be the pair of the next slot's first frame
    assert not pair_outside_grid(100.51, 100.03, 2.0, 0.02)   # next slot
    assert not pair_outside_grid(99.9, 100.03, 2.0, 0.02)     # older: a queued frame may still want it
    assert not pair_outside_grid(3.0, 100.03, 2.0, 0.02)      # a time reset (looping bag)
    assert not pair_outside_grid(100.06, None, 2.0, 0.02)     # no frame yet
    assert not pair_outside_grid(100.06, 100.03, 0.0, 0.02)   # no grid: every pair may be used


def test_the_ir_pairs_drive_the_output_alone_only_once_the_depth_has_been_silent_for_the_timeout():
    from metric_semantic_slam.nodes.depth_fusion_node import depth_missing

    assert depth_missing(False, None, None, 5.0, 1.0)            # no active depth source at all
    assert not depth_missing(True, None, None, 5.0, 1.0)         # nothing received yet
    # the first IR pair came at 10.0 and no depth frame yet: its depth frame may be on its way
    assert not depth_missing(True, None, 10.0, 10.01, 1.0)
    assert depth_missing(True, None, 10.0, 11.0, 1.0)             # none for a whole timeout: stereo only
    assert not depth_missing(True, 10.5, 10.0, 11.0, 1.0)         # depth streaming
    assert depth_missing(True, 10.5, 10.0, 11.6, 1.0)             # and then silent


def test_an_ir_pair_ahead_of_its_depth_frame_is_fused_once_with_it_and_alone_only_after_the_timeout(frames, tmp_path):
    ns = "/t4"
    out = f"{ns}/depth/fused"
    with _own_node(ns, {"status_period_s": 0.3, "source_timeout_s": 0.6}, tmp_path / "t4.log", {out: Image},
                   frames[0]) as (node, col, pubs):
        # the first message of all is an IR pair; its depth frame follows 0.2 s later (less than the timeout)
        _send(pubs, frames[0], depth=False)
        col.spin_until(lambda: False, 0.2)
        _send(pubs, frames[0], stereo=False)
        assert col.spin_until(lambda: col.count(out) >= 1, 10), node.log()
        col.spin_until(lambda: False, 0.5)
        assert [stamp_to_seconds(m.header.stamp) for _t, m in col.messages[out]] == [frames[0].stamp_s]
        # the depth camera goes silent: after the timeout the IR pairs are fused alone
        col.spin_until(lambda: False, 0.7)
        _send(pubs, frames[1], depth=False)
        assert col.spin_until(lambda: col.count(out) >= 2, 10), node.log()
        assert abs(stamp_to_seconds(col.messages[out][-1][1].header.stamp) - frames[1].stamp_s) < 1e-6


def test_workers_fuse_frames_side_by_side_and_publish_them_in_input_order(frames, tmp_path):
    """workers 3: a burst of frames (IR pairs included) is fused by three fusers at once; every frame comes out,
    in stamp order, as accurate as with one."""
    ns = "/t3"
    status, out = f"{ns}/depth_fusion/status", f"{ns}/depth/fused"
    with _own_node(ns, {"status_period_s": 0.3, "workers": 3, "queue_size": 16}, tmp_path / "workers.log",
                   {out: Image, status: String}, frames[0]) as (node, col, pubs):
        for f in frames:  # IR pair first, so each depth frame finds its pair without waiting
            _send(pubs, f)
        assert col.spin_until(lambda: col.count(out) >= len(frames), 20), node.log()
        col.spin_until(lambda: False, 0.5)
        stamps = [stamp_to_seconds(m.header.stamp) for _t, m in col.messages[out]]
        np.testing.assert_allclose(stamps, [f.stamp_s for f in frames], atol=1e-6)
        for (_t, msg), f in zip(col.messages[out], frames):
            d, gt = image_to_numpy(msg), f.gt.depth_m
            both = (d > 0) & (gt > 0)
            assert both.mean() > 0.5 and np.median(np.abs(d[both] - gt[both])) < 0.03
        st = json.loads(col.messages[status][-1][1].data)
        assert st["stages"]["fuse"]["count"] == len(frames) and st["queues"]["depth"]["dropped"] == 0, st
