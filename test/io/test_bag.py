"""Folders -> bags (rosbag2 mcap/sqlite3, ROS 1) -> BagSequence, and damaged bags."""
from __future__ import annotations

import argparse
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_tum import SIM_H, SIM_W, make_sim_folder

from metric_semantic_slam.cli import convert
from metric_semantic_slam.io.bag import DEFAULT_TOPICS, BagSequence, folder_to_bag
from metric_semantic_slam.io.sequence import detect_sequence_type, open_sequence


def _assert_same_frames(a, b, gt_images: bool = True) -> None:
    assert len(a) == len(b) > 0
    for fa, fb in zip(a, b):
        assert fa.index == fb.index
        assert fb.stamp_s == pytest.approx(fa.stamp_s, abs=1e-6)
        np.testing.assert_array_equal(fa.color, fb.color)
        assert np.abs(fa.depth_m - fb.depth_m).max() <= 0.0005 + 1e-6  # mm quantisation
        np.testing.assert_array_equal(fa.depth_m == 0, fb.depth_m == 0)
        assert (fa.imu is None) == (fb.imu is None)
        if fa.imu is not None:
            assert len(fa.imu) == len(fb.imu)
            np.testing.assert_allclose(fb.imu.stamps_s, fa.imu.stamps_s, atol=1e-6)
            np.testing.assert_allclose(fb.imu.accel_m_s2, fa.imu.accel_m_s2, atol=1e-9)
            np.testing.assert_allclose(fb.imu.gyro_rad_s, fa.imu.gyro_rad_s, atol=1e-9)  # NaN == NaN here
        if fa.gt.T_world_camera is None:
            assert fb.gt.T_world_camera is None
        else:
            np.testing.assert_allclose(fb.gt.T_world_camera, fa.gt.T_world_camera, atol=1e-9)
        if gt_images and fa.gt.semantic is not None:
            np.testing.assert_array_equal(fa.gt.semantic, fb.gt.semantic)
            np.testing.assert_array_equal(fa.gt.instance, fb.gt.instance)
            np.testing.assert_allclose(fa.gt.depth_m, fb.gt.depth_m, atol=1e-7)
        if fa.stereo is not None:
            np.testing.assert_array_equal(fa.stereo.left, fb.stereo.left)
            np.testing.assert_array_equal(fa.stereo.right, fb.stereo.right)
            assert fb.stereo.baseline_m == pytest.approx(fa.stereo.baseline_m)
            assert fb.stereo.camera == fa.stereo.camera
            np.testing.assert_allclose(fb.stereo.T_color_left, fa.stereo.T_color_left, atol=1e-12)


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sim_folder(tmp_path_factory.mktemp("sim") / "seq", n_frames=5)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sim_folder_round_trip(sim_folder: Path, tmp_path: Path, storage: str) -> None:
    bag = folder_to_bag(sim_folder, tmp_path / "bag", storage=storage)
    assert (bag / "metadata.yaml").is_file()
    assert detect_sequence_type(bag) == "rosbag2"
    folder_seq, bag_seq = open_sequence(sim_folder), open_sequence(bag)
    assert isinstance(bag_seq, BagSequence)
    assert bag_seq.camera == folder_seq.camera
    assert bag_seq.label_space_path is None  # the bag is not inside the simulator folder here
    np.testing.assert_allclose(bag_seq.T_camera_imu, folder_seq.T_camera_imu, atol=1e-12)
    assert len(bag_seq.imu()) == len(folder_seq.imu())
    _assert_same_frames(folder_seq, bag_seq)
    # Random access gives the same frame as streaming.
    f3 = bag_seq[3]
    np.testing.assert_array_equal(f3.color, list(bag_seq)[3].color)
    assert bag_seq[-1].index == len(bag_seq) - 1


def test_bag_inside_sim_folder_finds_labels(tmp_path: Path) -> None:
    root = make_sim_folder(tmp_path / "sim", n_frames=2)
    bag = folder_to_bag(root, root / "bag")  # what `msslam simulate` does
    assert open_sequence(root).label_space_path == root / "labels.yaml"  # still the folder, not the bag
    assert open_sequence(bag).label_space_path == root / "labels.yaml"


def test_ros1_round_trip(sim_folder: Path, tmp_path: Path) -> None:
    bag = folder_to_bag(sim_folder, tmp_path / "seq.bag", storage="ros1")
    assert bag.is_file() and detect_sequence_type(bag) == "ros1bag"
    folder_seq, bag_seq = open_sequence(sim_folder), open_sequence(bag)
    np.testing.assert_allclose(bag_seq.T_camera_imu, folder_seq.T_camera_imu, atol=1e-12)
    _assert_same_frames(folder_seq, bag_seq)


def test_message_contents(sim_folder: Path, tmp_path: Path) -> None:
    """Raw messages as another ROS 2 tool would see them (deserialized with the Kilted store)."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag = folder_to_bag(sim_folder, tmp_path / "bag")
    seen: dict[str, list] = {}
    last_t = -1
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        for conn, t_ns, raw in reader.messages():
            assert t_ns >= last_t  # written in time order
            last_t = t_ns
            msg = reader.deserialize(raw, conn.msgtype)
            if hasattr(msg, "header"):
                assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t_ns
            seen.setdefault(conn.topic, []).append(msg)
    assert set(seen) == set(DEFAULT_TOPICS.values())
    assert len(seen[DEFAULT_TOPICS["color"]]) == 5
    depth = seen[DEFAULT_TOPICS["depth"]][0]
    assert depth.encoding == "16UC1" and (depth.height, depth.width) == (SIM_H, SIM_W)
    assert seen[DEFAULT_TOPICS["color"]][0].encoding == "rgb8"
    info = seen[DEFAULT_TOPICS["color_info"]][0]
    assert info.header.frame_id == "camera_color_optical_frame" and info.width == SIM_W
    np.testing.assert_allclose(info.k, [50, 0, 31.5, 0, 51, 23.5, 0, 0, 1])
    right = seen[DEFAULT_TOPICS["ir_right_info"]][0]
    assert right.p[3] == pytest.approx(-48.0 * 0.05)
    assert seen[DEFAULT_TOPICS["ir_left_info"]][0].p[3] == 0.0
    imu = seen[DEFAULT_TOPICS["imu"]][0]
    assert imu.orientation_covariance[0] == -1 and imu.angular_velocity_covariance[0] == 0
    assert imu.header.frame_id == "camera_imu_optical_frame"
    assert seen[DEFAULT_TOPICS["gt_pose"]][0].header.frame_id == "map"
    assert seen[DEFAULT_TOPICS["gt_semantic"]][0].encoding == "mono16"


def test_tum_folder_to_bag(shared_data: Path, tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader

    bag = folder_to_bag(shared_data / "tum_fr1_rpy_90", tmp_path / "tum_bag", max_frames=10)
    folder_seq = open_sequence(shared_data / "tum_fr1_rpy_90", max_frames=10)
    bag_seq = open_sequence(bag)
    assert bag_seq.camera == folder_seq.camera  # distortion travels in CameraInfo.d
    _assert_same_frames(folder_seq, bag_seq)
    assert np.all(np.isnan(bag_seq[1].imu.gyro_rad_s)) and len(bag_seq[1].imu) > 5
    with AnyReader([bag]) as reader:
        topics = {c.topic for c in reader.connections}
        conn = next(c for c in reader.connections if c.topic == DEFAULT_TOPICS["imu"])
        _, _, raw = next(reader.messages([conn]))
        imu = reader.deserialize(raw, conn.msgtype)
    assert topics == {DEFAULT_TOPICS[k] for k in ("color", "color_info", "depth", "depth_info", "imu", "gt_pose")}
    assert imu.angular_velocity_covariance[0] == -1 and imu.angular_velocity.x == 0.0
    # GT goes in at the mocap rate (100 Hz) within 0.5 s of the frames, not one pose per frame.
    assert len(bag_seq.gt_trajectory()) > 3 * len(bag_seq)

    # Iterating streams: peak memory for 10 frames stays near that for 2, far below holding 8 more.
    def peak_bytes(n: int) -> int:
        seq = open_sequence(bag, max_frames=n)
        tracemalloc.start()
        for _ in seq:
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    frame_bytes = bag_seq[0].color.nbytes + bag_seq[0].depth_m.nbytes
    assert peak_bytes(10) < peak_bytes(2) + 2 * frame_bytes


def test_rclpy_reads_the_cdr(sim_folder: Path, tmp_path: Path) -> None:
    """The bytes in the bag are what a ROS 2 node receives (checked with rclpy when it is installed)."""
    serialization = pytest.importorskip("rclpy.serialization")
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    geometry_msgs = pytest.importorskip("geometry_msgs.msg")
    from rosbags.highlevel import AnyReader

    bag = folder_to_bag(sim_folder, tmp_path / "bag", topics={"tf_static": None})
    types = {"sensor_msgs/msg/Image": sensor_msgs.Image, "sensor_msgs/msg/CameraInfo": sensor_msgs.CameraInfo,
             "sensor_msgs/msg/Imu": sensor_msgs.Imu, "geometry_msgs/msg/PoseStamped": geometry_msgs.PoseStamped}
    checked = set()
    with AnyReader([bag]) as reader:
        for conn, _, raw in reader.messages():
            if conn.topic in checked:
                continue
            msg = serialization.deserialize_message(bytes(raw), types[conn.msgtype])
            checked.add(conn.topic)
            if conn.topic == DEFAULT_TOPICS["depth"]:
                assert msg.encoding == "16UC1" and len(msg.data) == msg.step * msg.height == SIM_W * SIM_H * 2
            if conn.topic == DEFAULT_TOPICS["ir_right_info"]:
                assert msg.p[3] == pytest.approx(-48.0 * 0.05)
            if conn.topic == DEFAULT_TOPICS["imu"]:
                assert msg.orientation_covariance[0] == -1.0
    assert len(checked) == len(DEFAULT_TOPICS) - 1


def test_topic_options(sim_folder: Path, tmp_path: Path) -> None:
    bag = folder_to_bag(sim_folder, tmp_path / "bag", topics={"color": "/rgb", "color_info": None})
    with pytest.raises(ValueError, match="no color topic"):
        BagSequence(bag)
    with pytest.raises(ValueError, match="no camera_info"):
        BagSequence(bag, topics={"color": "/rgb"})
    seq = BagSequence(bag, topics={"color": "/rgb", "color_info": DEFAULT_TOPICS["depth_info"]}, max_frames=2)
    assert len(seq) == 2 and seq[1].color.shape == (SIM_H, SIM_W, 3)
    with pytest.raises(ValueError, match="exists already"):
        folder_to_bag(sim_folder, bag)
    with pytest.raises(ValueError, match="ROS 1 bags are .bag files"):
        folder_to_bag(sim_folder, tmp_path / "x.bag", storage="mcap")
    with pytest.raises(ValueError, match="storage must be one of"):
        folder_to_bag(sim_folder, tmp_path / "y", storage="zip")
    broken = make_sim_folder(tmp_path / "broken", n_frames=3)
    next((broken / "depth").iterdir()).write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        folder_to_bag(broken, tmp_path / "partial")
    assert not (tmp_path / "partial").exists()  # no half-written bag left behind
    with pytest.raises(ValueError, match="unknown topic keys"):
        folder_to_bag(sim_folder, tmp_path / "other", topics={"rgb": "/x"})


def test_damaged_bags(sim_folder: Path, tmp_path: Path) -> None:
    mcap = folder_to_bag(sim_folder, tmp_path / "mcap_bag")
    data_file = next(mcap.glob("*.mcap"))
    data_file.write_bytes(data_file.read_bytes()[: data_file.stat().st_size // 2])
    with pytest.raises(ValueError, match="mcap_bag"):
        list(open_sequence(mcap))

    db = folder_to_bag(sim_folder, tmp_path / "db_bag", storage="sqlite3")
    db_file = next(db.glob("*.db3"))
    db_file.write_bytes(db_file.read_bytes()[:3000])
    with pytest.raises(ValueError, match="db_bag"):
        list(open_sequence(db))

    ros1 = folder_to_bag(sim_folder, tmp_path / "r.bag", storage="ros1")
    ros1.write_bytes(ros1.read_bytes()[:5000])
    with pytest.raises(ValueError, match="r.bag"):
        list(open_sequence(ros1))

    (tmp_path / "junk.bag").write_bytes(b"#ROSBAG V2.0\n" + bytes(100))
    with pytest.raises(ValueError, match="junk.bag"):
        open_sequence(tmp_path / "junk.bag")

    (tmp_path / "empty.mcap").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mcap"):
        open_sequence(tmp_path / "empty.mcap")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_lone_storage_file(sim_folder: Path, tmp_path: Path, storage: str) -> None:
    """A .mcap/.db3 copied out of its bag folder (no metadata.yaml) still reads."""
    bag = folder_to_bag(sim_folder, tmp_path / "bag", storage=storage)
    inner = next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))
    assert isinstance(open_sequence(inner), BagSequence)  # inside its folder: uses metadata.yaml
    lone = tmp_path / f"lone{inner.suffix}"
    lone.write_bytes(inner.read_bytes())
    _assert_same_frames(open_sequence(sim_folder), open_sequence(lone))


def test_convert_cli(sim_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    convert.add_parser(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["convert", str(sim_folder), str(out), "--storage", "sqlite3", "--max-frames", "3"])
    assert args.func(args) == 0
    assert str(out) in capsys.readouterr().out
    assert next(out.glob("*.db3")).is_file()
    assert len(open_sequence(out)) == 3
    args = parser.parse_args(["convert", str(sim_folder), str(out)])
    assert args.func(args) == 1
    assert "exists already" in capsys.readouterr().err


def test_convert_refuses_to_overwrite_its_input(sim_folder: Path, tmp_path: Path) -> None:
    bag = folder_to_bag(sim_folder, tmp_path / "bag")
    parser = argparse.ArgumentParser()
    convert.add_parser(parser.add_subparsers())
    args = parser.parse_args(["convert", str(bag), str(bag), "--overwrite"])
    assert args.func(args) == 1
    assert len(open_sequence(bag)) == 5


def test_foreign_bag_encodings(tmp_path: Path) -> None:
    """A bag from another driver: bgr8 color with padded rows, 32FC1 depth with NaN, own topic names."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    T = store.types
    rng = np.random.default_rng(3)
    h, w, pad = 6, 8, 5
    colors, depths = [], []

    def header(t_ns: int):
        return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=t_ns // 10**9,
                                        nanosec=t_ns % 10**9), frame_id="cam")

    with Writer(tmp_path / "foreign", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        c_color = writer.add_connection("/rgb", "sensor_msgs/msg/Image", typestore=store)
        c_depth = writer.add_connection("/depth", "sensor_msgs/msg/Image", typestore=store)
        c_info = writer.add_connection("/info", "sensor_msgs/msg/CameraInfo", typestore=store)
        for k in range(3):
            t_ns = 2 * 10**9 + k * 33_000_000
            rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            depth = rng.uniform(0.5, 3.0, (h, w)).astype(np.float32)
            depth[0, 0] = np.nan
            colors.append(rgb)
            depths.append(np.nan_to_num(depth, nan=0.0))
            rows = np.concatenate([rgb[..., ::-1].reshape(h, w * 3), np.zeros((h, pad), np.uint8)], axis=1)
            img = T["sensor_msgs/msg/Image"](header=header(t_ns), height=h, width=w, encoding="bgr8",
                                             is_bigendian=0, step=w * 3 + pad, data=rows.ravel())
            writer.write(c_color, t_ns, store.serialize_cdr(img, "sensor_msgs/msg/Image"))
            d_ns = t_ns + 5_000_000  # depth 5 ms later, big-endian floats
            dimg = T["sensor_msgs/msg/Image"](header=header(d_ns), height=h, width=w, encoding="32FC1",
                                              is_bigendian=1, step=w * 4,
                                              data=np.frombuffer(depth.astype(">f4").tobytes(), np.uint8))
            writer.write(c_depth, d_ns, store.serialize_cdr(dimg, "sensor_msgs/msg/Image"))
            if k == 0:
                roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                            do_rectify=False)
                info = T["sensor_msgs/msg/CameraInfo"](
                    header=header(t_ns), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
                    k=np.array([10.0, 0, 4, 0, 11, 3, 0, 0, 1]), r=np.eye(3).ravel(), p=np.zeros(12),
                    binning_x=0, binning_y=0, roi=roi)
                writer.write(c_info, t_ns, store.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
    seq = BagSequence(tmp_path / "foreign", topics={"color": "/rgb", "depth": "/depth", "color_info": "/info"})
    assert len(seq) == 3 and seq.camera.fy == 11.0 and seq.imu() is None and seq.gt_trajectory() is None
    for k, frame in enumerate(seq):
        np.testing.assert_array_equal(frame.color, colors[k])
        np.testing.assert_array_equal(frame.depth_m, depths[k])
        assert frame.imu is None and frame.gt.T_world_camera is None
    # A stricter pairing window drops every frame (depth is 5 ms late).
    assert len(BagSequence(tmp_path / "foreign", topics={"color": "/rgb", "depth": "/depth", "color_info": "/info"},
                           max_pair_dt_s=0.004)) == 0
