"""panoptic_node as a real process over DDS (ROS_DOMAIN_ID 74): the oracle backend republishes ground-truth
labels with the color stamp, blacks out private classes in the overlay, drops bad messages on every input
and keeps working; the geometric backend runs on color + depth + camera_info."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.ros.camera_info import camera_to_camera_info  # noqa: E402
from metric_semantic_slam.ros.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402
from metric_semantic_slam.ros.node_runtime import NodeProcess  # noqa: E402
from metric_semantic_slam.ros.qos import qos_profile  # noqa: E402
from metric_semantic_slam.ros.stamps import stamp_to_seconds  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]

DOMAIN = 74
SEM, INST, OVER, STATUS = "/t/panoptic/semantic", "/t/panoptic/instance", "/t/panoptic/overlay", "/t/panoptic/status"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("sim") / "seq"
    simulate(root, seed=1, frames=6, width=160, height=120, write_bag=False, verbose=False)
    return list(open_sequence(root))


def _publishers(col):
    q = qos_profile("reliable", depth=20)
    names = {"color": "color/image_raw", "sem": "ground_truth/semantic", "inst": "ground_truth/instance",
             "depth": "depth/fused"}
    pubs = {k: col.node.create_publisher(Image, f"/t/{v}", q) for k, v in names.items()}
    pubs["info"] = col.node.create_publisher(CameraInfo, "/t/color/camera_info", q)
    return pubs


def _status(col):
    t0 = time.monotonic()
    col.spin_until(lambda: bool(col.messages[STATUS]) and col.messages[STATUS][-1][0] > t0, 5)
    return json.loads(col.messages[STATUS][-1][1].data)


def _start(tmp_path, **params):
    return NodeProcess("metric_semantic_slam.nodes.panoptic_node", "panoptic", ros_env(DOMAIN), namespace="t",
                       parameters={"status_period_s": 0.3, "drop_log_period_s": 0.0, **params},
                       log_path=tmp_path / "panoptic.log")


def test_oracle_labels_private_overlay_and_bad_input(frames, tmp_path):
    space = load_label_space()
    person = space.id_of("person")
    assert space.private_mask[person]
    node = _start(tmp_path, backend="oracle", queue_size=10)
    try:
        with TopicCollector(DOMAIN, {SEM: Image, INST: Image, OVER: Image, STATUS: String}) as col:
            pubs = _publishers(col)
            assert node.wait_for_log("ready", 90), node.log()
            assert col.spin_until(lambda: all(pubs[k].get_subscription_count() > 0 for k in ("color", "sem", "inst")),
                                  20), node.log()
            col.spin_until(lambda: False, 0.5)  # let the node see our overlay subscription

            def send(f, sem=None, inst=None, stamp=None, sem_encoding="mono16"):
                t = f.stamp_s if stamp is None else stamp
                pubs["color"].publish(numpy_to_image(f.color, "rgb8", t, "camera_color_optical_frame"))
                pubs["sem"].publish(numpy_to_image(f.gt.semantic if sem is None else sem, sem_encoding, t, "c"))
                pubs["inst"].publish(numpy_to_image(f.gt.instance if inst is None else inst, "mono16", t, "c"))

            sem0, inst0 = frames[0].gt.semantic.copy(), frames[0].gt.instance.copy()
            sem0[40:80, 60:100], inst0[40:80, 60:100] = person, 77  # a private thing in view
            send(frames[0], sem0, inst0)
            for f in frames[1:3]:
                send(f)
            assert col.spin_until(lambda: min(col.count(SEM), col.count(INST), col.count(OVER)) >= 3, 20), node.log()
            for i, f in enumerate(frames[:3]):
                s, n, o = (col.messages[k][i][1] for k in (SEM, INST, OVER))
                assert (s.encoding, n.encoding, o.encoding) == ("mono16", "mono16", "rgb8")
                assert abs(stamp_to_seconds(s.header.stamp) - f.stamp_s) < 1e-6
                assert s.header.frame_id == "camera_color_optical_frame"
                want = sem0 if i == 0 else f.gt.semantic
                np.testing.assert_array_equal(image_to_numpy(s), want)
                thing = space.thing_mask[want.astype(int)]
                np.testing.assert_array_equal(image_to_numpy(n)[thing], (inst0 if i == 0 else f.gt.instance)[thing])
            over0 = image_to_numpy(col.messages[OVER][0][1])
            assert np.all(over0[40:80, 60:100] == 0)                    # private pixels blacked out
            assert over0[sem0 != person].mean() > 10                     # the rest is not
            # bad input: wrong label encoding, size mismatch, color not an image encoding, stamps backwards
            f = frames[3]
            t = f.stamp_s - 0.01
            send(f, sem=f.gt.semantic.astype(np.uint8), stamp=t, sem_encoding="mono8")  # 8-bit labels
            col.spin_until(lambda: False, 0.2)
            pubs["color"].publish(numpy_to_image(f.color[:60], "rgb8", t + 0.001, "c"))  # 60 rows vs 120
            pubs["sem"].publish(numpy_to_image(f.gt.semantic, "mono16", t + 0.001, "c"))
            pubs["inst"].publish(numpy_to_image(f.gt.instance, "mono16", t + 0.001, "c"))
            col.spin_until(lambda: False, 0.2)
            pubs["color"].publish(numpy_to_image(f.depth_m.astype(np.float32), "32FC1", t + 0.002, "c"))
            pubs["sem"].publish(numpy_to_image(f.gt.semantic, "mono16", t + 0.002, "c"))
            pubs["inst"].publish(numpy_to_image(f.gt.instance, "mono16", t + 0.002, "c"))
            col.spin_until(lambda: False, 0.2)
            send(frames[1])                                                           # stamp in the past
            col.spin_until(lambda: False, 0.3)
            drops = _status(col)["drops"]
            for reason in ("bad_input", "size_mismatch", "bad_color", "stamp_backwards"):
                assert drops.get(reason, 0) >= 1, (reason, drops)
            assert node.alive() and col.count(SEM) == 3
            send(frames[4])
            assert col.spin_until(lambda: col.count(SEM) >= 4, 20), node.log()
            np.testing.assert_array_equal(image_to_numpy(col.messages[SEM][-1][1]), frames[4].gt.semantic)
        assert node.stop() == 0, node.log()
    finally:
        node.stop()


def test_geometric_backend_needs_camera_info_then_labels_depth_frames(frames, tmp_path):
    node = _start(tmp_path, backend="geometric", depth_input="fused")
    try:
        with TopicCollector(DOMAIN, {SEM: Image, INST: Image, STATUS: String}) as col:
            pubs = _publishers(col)
            assert node.wait_for_log("ready", 90), node.log()
            assert col.spin_until(lambda: all(pubs[k].get_subscription_count() > 0 for k in ("color", "depth", "info")),
                                  20), node.log()

            def send(f):
                pubs["color"].publish(numpy_to_image(f.color, "rgb8", f.stamp_s, "camera_color_optical_frame"))
                pubs["depth"].publish(numpy_to_image(f.depth_m.astype(np.float32), "32FC1", f.stamp_s, "c"))

            send(frames[0])
            assert col.spin_until(lambda: _status(col)["drops"].get("no_camera_info", 0) >= 1, 10), node.log()
            pubs["info"].publish(camera_to_camera_info(frames[0].camera, frames[0].stamp_s, "camera_color_optical_frame"))
            col.spin_until(lambda: False, 0.3)
            send(frames[1])
            assert col.spin_until(lambda: col.count(SEM) >= 1 and col.count(INST) >= 1, 30), node.log()
            sem = image_to_numpy(col.messages[SEM][-1][1])
            assert sem.shape == frames[1].depth_m.shape and (sem > 0).mean() > 0.3  # planes/objects found
        assert node.stop() == 0, node.log()
    finally:
        node.stop()
