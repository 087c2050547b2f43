"""TF conversions and fallbacks and the parameter descriptor table (the synchronizer on real rclpy topics, with
both backends, is in test_ros_extras_sync.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from metric_semantic_slam.core.geometry import make_transform, so3_exp  # noqa: E402
from metric_semantic_slam.ros import tf as rtf  # noqa: E402
from metric_semantic_slam.ros.params import (ParamSpec, check_params_file, declare_parameters,  # noqa: E402
                                             specs_to_params_yaml, validate_specs)

pytestmark = pytest.mark.ros  # rclpy nodes (in-process, own context and ROS_DOMAIN_ID 65)

T = make_transform(so3_exp(np.array([0.3, -0.2, 1.1])), np.array([1.0, -2.0, 0.5]))


@pytest.fixture
def node():
    ctx = Context()
    rclpy.init(context=ctx, domain_id=65)
    nodes = []

    def make(name="n", **kw):
        n = rclpy.create_node(name, context=ctx, **kw)
        nodes.append(n)
        return n

    yield make
    for n in nodes:
        n.destroy_node()
    ctx.try_shutdown()


def test_transform_and_pose_roundtrip():
    msg = rtf.matrix_to_transform_stamped(T, "map", "camera", stamp_s=2.0)
    assert (msg.header.frame_id, msg.child_frame_id, msg.header.stamp.sec) == ("map", "camera", 2)
    np.testing.assert_allclose(rtf.transform_to_matrix(msg), T, atol=1e-12)
    np.testing.assert_allclose(rtf.pose_to_matrix(rtf.matrix_to_pose(T)), T, atol=1e-12)
    # a point in the child frame maps into the parent frame (T_parent_child)
    p = np.array([0.1, 0.2, 1.0])
    np.testing.assert_allclose(rtf.transform_to_matrix(msg)[:3] @ np.append(p, 1), T[:3, :3] @ p + T[:3, 3])


def test_bad_transforms_raise():
    msg = rtf.matrix_to_transform_stamped(T, "a", "b")
    msg.transform.rotation.x = msg.transform.rotation.y = msg.transform.rotation.z = msg.transform.rotation.w = 0.0
    with pytest.raises(ValueError, match="quaternion"):
        rtf.transform_to_matrix(msg)
    with pytest.raises(ValueError):
        rtf.matrix_to_pose(np.eye(3))


@pytest.mark.skipif(rtf.HAVE_TF2_ROS or rtf.HAVE_TF2_MSGS, reason="TF types are installed here")
def test_without_tf_packages_publisher_warns_once_and_reader_uses_parameters(node):
    n = node()
    pub = rtf.TfPublisher(n)
    assert pub.backend == "none" and not pub.available
    assert pub.publish([rtf.matrix_to_transform_stamped(T, "map", "odom")]) is False
    assert pub.publish([]) is False and pub.published == 0
    reader = rtf.TfReader(n, fallbacks={("camera_link", "camera_color_optical_frame"): T})
    assert reader.backend == "parameters"
    np.testing.assert_allclose(reader.lookup("camera_link", "camera_color_optical_frame"), T)
    np.testing.assert_allclose(reader.lookup("camera_color_optical_frame", "camera_link"), np.linalg.inv(T))
    with pytest.raises(ValueError, match="no transform"):
        reader.lookup("map", "odom")


SPECS = (
    ParamSpec("max_depth_m", 4.0, "ignore depth beyond this"),
    ParamSpec("queue_size", 5, "input queue length (frames)"),
    ParamSpec("input_qos", "sensor", "QoS profile name of the inputs"),
    ParamSpec("publish_overlay", True, "publish the colour overlay"),
    ParamSpec("weights", (0.5, 0.5), "cost weights", dimensionless=True),
)


def test_declare_parameters_resolves_overrides_and_logs(node):
    n = node("depth_fusion", parameter_overrides=[Parameter("max_depth_m", value=3.0)])
    p = declare_parameters(n, SPECS)
    assert p.max_depth_m == 3.0 and p.queue_size == 5 and p["input_qos"] == "sensor" and list(p.weights) == [0.5, 0.5]
    desc = n.describe_parameter("max_depth_m")
    assert desc.description == "ignore depth beyond this [m]"
    assert set(p) == {s.name for s in SPECS}


@pytest.mark.parametrize("spec, message", [
    (ParamSpec("MaxDepth", 1, "x"), "snake_case"),
    (ParamSpec("max_depth", 4.0, "x"), "unit suffix"),
    (ParamSpec("items", [], "x"), "empty list"),
    (ParamSpec("thing", None, "x"), "unsupported default"),
    (ParamSpec("rate_hz", 1.0, " "), "description"),
])
def test_validate_specs_rejects(spec, message):
    with pytest.raises(ValueError, match=message):
        validate_specs([spec])
    with pytest.raises(ValueError, match="twice"):
        validate_specs([SPECS[0], SPECS[0]])


def test_params_yaml_roundtrip_and_check(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(specs_to_params_yaml("depth_fusion", SPECS))
    assert check_params_file(f, "depth_fusion", SPECS) == []
    f.write_text("depth_fusion:\n  ros__parameters:\n    max_depht_m: 3.0\n    queue_size: fast\n    max_depth_m: 3\n")
    problems = check_params_file(f, "depth_fusion", SPECS)
    assert len(problems) == 2
    assert "unknown parameter depth_fusion.max_depht_m" in problems[0] and "queue_size" in problems[1]
    assert check_params_file(f, "mapper", SPECS) == [f"{f}: no section for node 'mapper'"]
