"""What `msslam play` reads: every bag flavour yields the same time-ordered ROS 2 CDR messages."""
from __future__ import annotations

import shutil

import pytest

from metric_semantic_slam.cli.play import BagSource, import_msg_type
from metric_semantic_slam.io.bag import sequence_to_bag
from metric_semantic_slam.io.sequence import open_sequence


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    from metric_semantic_slam.sim.simulate import simulate

    root = tmp_path_factory.mktemp("bags")
    simulate(root / "sim", seed=1, frames=4, width=64, height=48, write_bag=True)
    seq = open_sequence(root / "sim")
    out = {fmt: sequence_to_bag(seq, root / name, storage=fmt)
           for fmt, name in (("mcap", "m"), ("sqlite3", "s"), ("ros1", "r.bag"))}
    lone = root / "lone.mcap"
    shutil.copy(next((root / "m").glob("*.mcap")), lone)
    out["lone_mcap"] = lone
    return out


def _read(path, topics=None):
    src = BagSource(path, topics)
    try:
        return list(src.messages()), dict(src.topic_types)
    finally:
        src.close()


def test_all_bag_flavours_give_identical_ros2_cdr(bags):
    ref, ref_types = _read(bags["mcap"])
    assert len(ref) > 20
    assert [m[2] for m in ref] == sorted(m[2] for m in ref)  # time-ordered across topics
    for fmt in ("sqlite3", "ros1", "lone_mcap"):
        got, types = _read(bags[fmt])
        assert types == ref_types, fmt
        # ROS 1 messages are rebuilt as ROS 2 (Header.seq dropped, CameraInfo D -> d): byte-identical CDR
        assert sorted(got) == sorted(ref), fmt


def test_cdr_decodes_with_rclpy_types(bags):
    from rclpy.serialization import deserialize_message

    from metric_semantic_slam.ros.camera_info import camera_info_to_camera

    msgs, types = _read(bags["ros1"], ["/camera/color/camera_info"])
    info = deserialize_message(msgs[0][3], import_msg_type(types["/camera/color/camera_info"]))
    assert camera_info_to_camera(info) == open_sequence(bags["mcap"]).camera


def test_bad_inputs(tmp_path, bags):
    with pytest.raises(ValueError, match="does not exist"):
        BagSource(tmp_path / "none")
    broken = tmp_path / "broken.bag"
    broken.write_bytes(b"not a bag at all")
    with pytest.raises(ValueError, match="cannot read bag"):
        BagSource(broken)
    with pytest.raises(ValueError, match="topics not in bag"):
        BagSource(bags["mcap"], ["/nope"])
    with pytest.raises(ImportError):
        import_msg_type("no_such_pkg/msg/Thing")
    with pytest.raises(ValueError):
        import_msg_type("justaname")
