"""SemanticCloud <-> PointCloud2: round trips, the RViz rgb packing, foreign layouts, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.core.mapping import SemanticCloud
from metric_semantic_slam.ros.pointcloud import (POINT_STEP, cloud_to_pointcloud2, pack_rgb,
                                                 pointcloud2_to_cloud, unpack_rgb)


def _cloud(n: int, seed: int = 0) -> SemanticCloud:
    rng = np.random.default_rng(seed)
    return SemanticCloud(points=rng.normal(size=(n, 3)).astype(np.float32),
                         colors=rng.integers(0, 256, (n, 3), dtype=np.uint8),
                         classes=rng.integers(0, 21, n), instances=rng.integers(0, 2**31, n))


def test_round_trip_keeps_every_attribute_and_layout_is_rviz_compatible():
    c = _cloud(1000)
    msg = cloud_to_pointcloud2(c, frame_id="map", stamp_s=12.5)
    assert msg.header.frame_id == "map" and msg.header.stamp.sec == 12 and msg.header.stamp.nanosec == 500_000_000
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "label", "instance"]
    assert msg.point_step == POINT_STEP and msg.width == 1000 and msg.height == 1 and len(msg.data) == 24000
    back = pointcloud2_to_cloud(msg)
    np.testing.assert_array_equal(back.points, c.points)
    np.testing.assert_array_equal(back.colors, c.colors)
    np.testing.assert_array_equal(back.classes, c.classes)
    np.testing.assert_array_equal(back.instances, c.instances)
    # RViz reads rgb as the float32 whose bits are 0x00RRGGBB (little endian bytes B, G, R, 0)
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(1000, 24)
    np.testing.assert_array_equal(raw[:, 12:16], np.c_[c.colors[:, 2], c.colors[:, 1], c.colors[:, 0],
                                                       np.zeros(1000, np.uint8)])


def test_rgb_packing():
    rgb = np.array([[255, 0, 0], [0, 255, 0], [1, 2, 3]], np.uint8)
    np.testing.assert_array_equal(pack_rgb(rgb), [0xFF0000, 0x00FF00, 0x010203])
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb).view(np.float32)), rgb)


def test_empty_cloud_round_trips():
    c = SemanticCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.int64),
                      np.zeros(0, np.int64))
    back = pointcloud2_to_cloud(cloud_to_pointcloud2(c))
    assert back.points.shape == (0, 3) and back.classes.shape == (0,)


def test_reads_foreign_layouts_big_endian_padded_rows_uint16_labels_and_nan_holes():
    from sensor_msgs.msg import PointCloud2, PointField

    # an organised 2x3 cloud, big endian, label uint16 at an odd place, 4 bytes of row padding, one NaN hole
    dt = np.dtype({"names": ["label", "x", "y", "z"], "formats": [">u2", ">f4", ">f4", ">f4"],
                   "offsets": [0, 4, 8, 12], "itemsize": 16})
    arr = np.zeros(6, dt)
    arr["x"], arr["y"], arr["z"], arr["label"] = np.arange(6), 1.0, 2.0, np.arange(6) + 10
    arr["x"][4] = np.nan
    rows = arr.reshape(2, 3)
    data = b"".join(r.tobytes() + b"\0\0\0\0" for r in rows)
    msg = PointCloud2(height=2, width=3, is_bigendian=True, point_step=16, row_step=52, is_dense=False)
    msg.fields = [PointField(name="label", offset=0, datatype=PointField.UINT16, count=1),
                  PointField(name="x", offset=4, datatype=PointField.FLOAT32, count=1),
                  PointField(name="y", offset=8, datatype=PointField.FLOAT32, count=1),
                  PointField(name="z", offset=12, datatype=PointField.FLOAT32, count=1)]
    msg.data = data
    c = pointcloud2_to_cloud(msg)
    np.testing.assert_array_equal(c.points[:, 0], [0, 1, 2, 3, 5])
    np.testing.assert_array_equal(c.classes, [10, 11, 12, 13, 15])
    assert (c.colors == 0).all() and (c.instances == 0).all()
    assert len(pointcloud2_to_cloud(msg, drop_invalid=False).points) == 6


def test_bad_clouds_raise_value_errors():
    c = _cloud(10)
    with pytest.raises(ValueError, match="rows"):
        cloud_to_pointcloud2(SemanticCloud(c.points, c.colors[:5], c.classes, c.instances))
    with pytest.raises(ValueError, match="finite"):
        pts = c.points.copy()
        pts[0, 0] = np.inf
        cloud_to_pointcloud2(SemanticCloud(pts, c.colors, c.classes, c.instances))
    with pytest.raises(ValueError, match="uint32"):
        cloud_to_pointcloud2(SemanticCloud(c.points, c.colors, -c.classes - 1, c.instances))
    msg = cloud_to_pointcloud2(c)
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ValueError, match="bytes"):
        pointcloud2_to_cloud(msg)
    msg = cloud_to_pointcloud2(c)
    msg.fields = [f for f in msg.fields if f.name != "z"]
    with pytest.raises(ValueError, match="'z'"):
        pointcloud2_to_cloud(msg)
