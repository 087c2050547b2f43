"""panoptic_node as a real process over DDS (ROS_DOMAIN_ID 74): the oracle backend republishes ground-truth
labels with the color stamp, blacks out private classes in the overlay, drops bad messages on every input
and keeps working; the geometric backend runs on color + depth + camera_info. (Rig: ``node_rig`` in
conftest.py.)"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.ros.camera_info import camera_to_camera_info  # noqa: E402
from metric_semantic_slam.ros.image_conversion import image_to_numpy, numpy_to_image  # noqa: E402
from metric_semantic_slam.ros.stamps import stamp_to_seconds  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(150)]

DOMAIN = 74
MODULE = "metric_semantic_slam.nodes.panoptic_node"
SEM, INST, OVER = "/t/panoptic/semantic", "/t/panoptic/instance", "/t/panoptic/overlay"
INPUTS = {"color": "color/image_raw", "sem": "ground_truth/semantic", "inst": "ground_truth/instance",
          "depth": "depth/fused"}


def start_panoptic(node_rig, domain: int, outputs: dict, env: dict | None = None, **params):
    """The node plus publishers for every input it may read (shared with test_ros_extras_nodes.py)."""
    rig = node_rig(MODULE, "panoptic", domain, outputs, parameters=params, env=env)
    for key, topic in INPUTS.items():
        rig.publisher(key, Image, f"/t/{topic}")
    rig.publisher("info", CameraInfo, "/t/color/camera_info")
    return rig


def send_oracle(rig, f, sem=None, inst=None, stamp=None, sem_encoding="mono16"):
    t = f.stamp_s if stamp is None else stamp
    rig.pubs["color"].publish(numpy_to_image(f.color, "rgb8", t, "camera_color_optical_frame"))
    rig.pubs["sem"].publish(numpy_to_image(f.gt.semantic if sem is None else sem, sem_encoding, t, "c"))
    rig.pubs["inst"].publish(numpy_to_image(f.gt.instance if inst is None else inst, "mono16", t, "c"))


def check_oracle_outputs(rig, frames, sem0, inst0, space) -> None:
    """Each output is the ground truth of its frame, with the color stamp and frame."""
    for i, f in enumerate(frames):
        s, n, o = (rig.messages(k)[i] for k in (SEM, INST, OVER))
        assert (s.encoding, n.encoding, o.encoding) == ("mono16", "mono16", "rgb8")
        assert abs(stamp_to_seconds(s.header.stamp) - f.stamp_s) < 1e-6
        assert s.header.frame_id == "camera_color_optical_frame"
        want = sem0 if i == 0 else f.gt.semantic
        np.testing.assert_array_equal(image_to_numpy(s), want)
        thing = space.thing_mask[want.astype(int)]
        np.testing.assert_array_equal(image_to_numpy(n)[thing], (inst0 if i == 0 else f.gt.instance)[thing])


def with_private_person(f, space):
    sem0, inst0 = f.gt.semantic.copy(), f.gt.instance.copy()
    sem0[40:80, 60:100], inst0[40:80, 60:100] = space.id_of("person"), 77  # a private thing in view
    return sem0, inst0


def exchange_oracle_frames(rig, frames, space):
    """Three frames through an oracle panoptic node, the first with a private person in view: every output is
    checked and the person is blacked out in the overlay. Returns the first frame's (semantic, instance)."""
    rig.wait_ready(("color", "sem", "inst"))
    rig.spin(0.5)  # let the node see our overlay subscription
    sem0, inst0 = with_private_person(frames[0], space)
    send_oracle(rig, frames[0], sem0, inst0)
    for f in frames[1:3]:
        send_oracle(rig, f)
    assert rig.wait(lambda: min(rig.count(SEM), rig.count(INST), rig.count(OVER)) >= 3, 20), rig.log()
    check_oracle_outputs(rig, frames[:3], sem0, inst0, space)
    assert np.all(image_to_numpy(rig.messages(OVER)[0])[40:80, 60:100] == 0)  # private pixels blacked out
    return sem0, inst0


def test_oracle_labels_private_overlay_and_bad_input(sim_frames, node_rig):
    frames = sim_frames
    space = load_label_space()
    person = space.id_of("person")
    assert space.private_mask[person]
    rig = start_panoptic(node_rig, DOMAIN, {SEM: Image, INST: Image, OVER: Image}, backend="oracle", queue_size=10)
    sem0, _ = exchange_oracle_frames(rig, frames, space)
    over0 = image_to_numpy(rig.messages(OVER)[0])
    assert over0[sem0 != person].mean() > 10                     # the rest is not
    # bad input: wrong label encoding, size mismatch, color not an image encoding, stamps backwards
    f = frames[3]
    t = f.stamp_s - 0.01
    send_oracle(rig, f, sem=f.gt.semantic.astype(np.uint8), stamp=t, sem_encoding="mono8")  # 8-bit labels
    rig.spin(0.2)
    rig.pubs["color"].publish(numpy_to_image(f.color[:60], "rgb8", t + 0.001, "c"))  # 60 rows vs 120
    rig.pubs["sem"].publish(numpy_to_image(f.gt.semantic, "mono16", t + 0.001, "c"))
    rig.pubs["inst"].publish(numpy_to_image(f.gt.instance, "mono16", t + 0.001, "c"))
    rig.spin(0.2)
    rig.pubs["color"].publish(numpy_to_image(f.depth_m.astype(np.float32), "32FC1", t + 0.002, "c"))
    rig.pubs["sem"].publish(numpy_to_image(f.gt.semantic, "mono16", t + 0.002, "c"))
    rig.pubs["inst"].publish(numpy_to_image(f.gt.instance, "mono16", t + 0.002, "c"))
    rig.spin(0.2)
    send_oracle(rig, frames[1])                                                        # stamp in the past
    rig.spin(0.3)
    drops = rig.status()["drops"]
    for reason in ("bad_input", "size_mismatch", "bad_color", "stamp_backwards"):
        assert drops.get(reason, 0) >= 1, (reason, drops)
    assert rig.node.alive() and rig.count(SEM) == 3
    send_oracle(rig, frames[4])
    assert rig.wait(lambda: rig.count(SEM) >= 4, 20), rig.log()
    np.testing.assert_array_equal(image_to_numpy(rig.messages(SEM)[-1]), frames[4].gt.semantic)
    assert rig.stop() == 0, rig.log()


def test_geometric_backend_needs_camera_info_then_labels_depth_frames(sim_frames, node_rig):
    frames = sim_frames
    rig = start_panoptic(node_rig, DOMAIN, {SEM: Image, INST: Image}, backend="geometric", depth_input="fused")
    rig.wait_ready(("color", "depth", "info"))

    def send(f):
        rig.pubs["color"].publish(numpy_to_image(f.color, "rgb8", f.stamp_s, "camera_color_optical_frame"))
        rig.pubs["depth"].publish(numpy_to_image(f.depth_m.astype(np.float32), "32FC1", f.stamp_s, "c"))

    send(frames[0])
    assert rig.wait(lambda: rig.status()["drops"].get("no_camera_info", 0) >= 1, 10), rig.log()
    rig.pubs["info"].publish(camera_to_camera_info(frames[0].camera, frames[0].stamp_s, "camera_color_optical_frame"))
    rig.spin(0.3)
    send(frames[1])
    assert rig.wait(lambda: rig.count(SEM) >= 1 and rig.count(INST) >= 1, 30), rig.log()
    sem = image_to_numpy(rig.messages(SEM)[-1])
    assert sem.shape == frames[1].depth_m.shape and (sem > 0).mean() > 0.3  # planes/objects found
    assert rig.stop() == 0, rig.log()
