"""MarkerArray builders: byte-exact splicing, per-block mesh markers, scene-graph markers, speed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping import SemanticMesh
from metric_semantic_slam.ros.markers import (ADD, CUBE, DELETE, DELETEALL, LINE_LIST, TEXT_VIEW_FACING,
                                              TRIANGLE_LIST, MarkerSpec, block_marker_keys, marker_array_message,
                                              mesh_block_markers, scene_graph_markers, serialize_marker_array)


def _slow_message(specs, frame_id="map"):
    """The same MarkerArray built the ordinary (per-point object) way."""
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    out = []
    for s in specs:
        m = Marker(ns=s.ns, id=s.id, type=s.type, action=s.action, text=s.text)
        m.header.frame_id = frame_id
        m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in s.position)
        m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = (
            float(v) for v in s.quaternion_xyzw)
        m.scale.x, m.scale.y, m.scale.z = (float(v) for v in s.scale)
        m.color.r, m.color.g, m.color.b, m.color.a = (float(v) for v in s.color)
        if s.points is not None:
            m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in s.points]
        if s.colors is not None:
            m.colors = [ColorRGBA(r=float(c[0]), g=float(c[1]), b=float(c[2]), a=float(c[3])) for c in s.colors]
        out.append(m)
    return MarkerArray(markers=out)


def _mixed_specs(seed=0):
    rng = np.random.default_rng(seed)
    specs = []
    for i in range(6):  # odd-length names shift the alignment of what follows: cover both paddings
        n = 3 * (i + 1)
        specs.append(MarkerSpec(ns="m" * (i + 1), id=i, points=rng.normal(size=(n, 3)),
                                colors=rng.random((n, 4)).astype(np.float32)))
        specs.append(MarkerSpec(ns="d", id=100 + i, action=DELETE))
        specs.append(MarkerSpec(ns="l" * i, id=200 + i, type=LINE_LIST, points=rng.normal(size=(2 * i + 2, 3)),
                                scale=(0.01, 0, 0), text="t" * i))
    return specs


@pytest.mark.parametrize("frame_id", ["map", "odom_frame"])
def test_written_bytes_match_rclpys_serialization_of_objects(frame_id):
    from builtin_interfaces.msg import Time
    from rclpy.serialization import serialize_message

    specs = _mixed_specs()
    stamp = Time(sec=1234, nanosec=567)
    slow = _slow_message(specs, frame_id)
    for m in slow.markers:
        m.header.stamp = stamp
    ours, theirs = serialize_marker_array(specs, frame_id, stamp), serialize_message(slow)
    assert len(ours) == len(theirs)
    # rclpy leaves CDR padding bytes undefined (we write zeros): any difference is a short run of our zeros
    diff = np.flatnonzero(np.frombuffer(ours, np.uint8) != np.frombuffer(theirs, np.uint8))
    assert all(ours[i] == 0 for i in diff)
    runs = np.split(diff, np.flatnonzero(np.diff(diff) > 1) + 1) if len(diff) else []
    assert all(len(r) <= 7 for r in runs), [len(r) for r in runs]
    assert serialize_marker_array([]) == serialize_message(_slow_message([]))


def test_written_bytes_decode_to_what_rclpy_builds_from_objects():
    specs = _mixed_specs()
    slow = _slow_message(specs)
    msg = marker_array_message(specs)
    assert msg == slow
    for s, m in zip(specs, msg.markers):
        assert (m.ns, m.id, m.action, m.text) == (s.ns, s.id, s.action, s.text)
        if s.points is not None:
            np.testing.assert_array_equal([[p.x, p.y, p.z] for p in m.points], s.points)


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="points"):
        serialize_marker_array([MarkerSpec(ns="a", id=0, points=np.zeros((4, 2)))])
    with pytest.raises(ValueError, match="colors"):
        serialize_marker_array([MarkerSpec(ns="a", id=0, points=np.zeros((3, 3)), colors=np.zeros((2, 4)))])


def test_block_keys_are_unique_and_stable():
    g = np.stack(np.meshgrid(*[np.arange(-20, 20)] * 3, indexing="ij"), -1).reshape(-1, 3)
    far = np.array([[511, 0, 0], [512, 0, 0], [-512, 0, 0], [-513, 0, 0], [0, 5000, -7000], [1536, 0, 0]])
    coords = np.concatenate([g, far])
    names, ids = block_marker_keys(coords)
    keys = set(zip(names, ids.tolist()))
    assert len(keys) == len(coords)
    assert names[0] == "mesh" and names[-1] != "mesh"
    n2, i2 = block_marker_keys(coords[::-1])
    assert list(zip(n2, i2.tolist()))[::-1] == list(zip(names, ids.tolist()))


def _mesh():
    # block (0,0,0): 2 triangles; block (1,0,0): none now; block (-1,2,600): 1 triangle
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [5, 5, 5], [6, 5, 5], [5, 6, 5]], np.float32)
    return SemanticMesh(vertices=v, triangles=np.array([[4, 5, 6], [0, 1, 2], [1, 3, 2]]),
                        colors=np.arange(21, dtype=np.uint8).reshape(7, 3),
                        classes=np.array([7, 7, 7, 7, 19, 19, 19]), instances=np.array([1, 1, 1, 1, 0, 0, 0]),
                        triangle_block=np.array([2, 0, 0]), block_coords=np.array([[0, 0, 0], [1, 0, 0], [-1, 2, 600]]))


def test_mesh_block_markers_add_delete_and_colors():
    labels = load_label_space()
    mesh = _mesh()
    specs = mesh_block_markers(mesh, removed_blocks=np.array([[9, 9, 9]]), color_mode="class", label_space=labels)
    names, ids = block_marker_keys(np.array([[0, 0, 0], [1, 0, 0], [-1, 2, 600], [9, 9, 9]]))
    by_key = {(s.ns, s.id): s for s in specs}
    assert len(by_key) == len(specs) == 4
    a, b, c, r = (by_key[(n, int(i))] for n, i in zip(names, ids))
    assert a.action == ADD and a.type == TRIANGLE_LIST and b.action == DELETE and r.action == DELETE
    np.testing.assert_array_equal(a.points, mesh.vertices[[0, 1, 2, 1, 3, 2]])
    np.testing.assert_array_equal(c.points, mesh.vertices[[4, 5, 6]])
    lut = labels.color_table() / 255.0
    np.testing.assert_allclose(a.colors[:, :3], np.repeat(lut[[7]], 6, 0), atol=1e-6)
    np.testing.assert_allclose(c.colors[:, :3], np.repeat(lut[[19]], 3, 0), atol=1e-6)
    rgb = mesh_block_markers(mesh, color_mode="rgb")
    np.testing.assert_allclose(rgb[0].colors[:, :3] * 255, mesh.colors[[0, 1, 2, 1, 3, 2]], atol=1e-4)
    full = mesh_block_markers(mesh, removed_blocks=np.array([[9, 9, 9]]), full=True)
    assert full[0].action == DELETEALL and all(s.action == ADD for s in full[1:]) and len(full) == 3
    with pytest.raises(ValueError, match="color mode"):
        mesh_block_markers(mesh, color_mode="nope")
    # the whole thing serializes and decodes
    msg = marker_array_message(specs)
    assert sum(len(m.points) for m in msg.markers) == 9


def test_mesh_markers_of_200k_vertices_are_fast():
    rng = np.random.default_rng(1)
    n_blocks, tri_per_block = 400, 170  # ~200k TRIANGLE_LIST points, a realistic changed-block count
    n_tri = n_blocks * tri_per_block
    mesh = SemanticMesh(vertices=rng.random((n_tri, 3)).astype(np.float32),
                        triangles=rng.integers(0, n_tri, (n_tri, 3)),
                        colors=rng.integers(0, 256, (n_tri, 3), dtype=np.uint8),
                        classes=rng.integers(0, 21, n_tri), instances=rng.integers(0, 9, n_tri),
                        triangle_block=np.repeat(np.arange(n_blocks), tri_per_block),
                        block_coords=np.stack([np.arange(n_blocks), np.zeros(n_blocks, int),
                                               np.zeros(n_blocks, int)], 1))
    serialize_marker_array(mesh_block_markers(mesh))  # warm up imports
    t0 = time.process_time()
    raw = serialize_marker_array(mesh_block_markers(mesh, color_mode="rgb"))
    cpu_s = time.process_time() - t0
    assert len(raw) > 3 * n_tri * (24 + 16)
    # the per-point object path takes ~1.2 s for 200k points here; the splice must be far below it
    assert cpu_s < 0.4, f"{3 * n_tri} mesh points took {cpu_s:.3f} s CPU"


def test_scene_graph_markers():
    labels = load_label_space()
    box = {"center_m": [1.0, 2.0, 0.5], "extents_m": [1.0, 0.5, 1.0], "yaw_rad": 0.0,
           "quaternion_xyzw": [0.0, 0.0, 0.0, 1.0]}
    graph = {"objects": [
        {"id": 3, "class_id": 6, "class_name": "table", "centroid_m": [1.0, 2.0, 0.5], "box": box},
        {"id": 8, "class_id": 17, "class_name": "cup", "centroid_m": [1.0, 2.0, 1.05],
         "box": dict(box, center_m=[1.0, 2.0, 1.05], extents_m=[0.1, 0.1, 0.1])}],
        "relations": [{"subject_id": 8, "predicate": "on", "object_id": 3, "score": 0.9},
                      {"subject_id": 3, "predicate": "supports", "object_id": 8, "score": 0.9},
                      {"subject_id": 8, "predicate": "near", "object_id": 99, "score": 0.9}],
        "structure": {"support_surfaces": [{"id": 1, "box": dict(box, extents_m=[1.0, 0.5, 0.0])}]}}
    specs = scene_graph_markers(graph, labels)
    assert specs[0].action == DELETEALL
    cubes = [s for s in specs if s.ns == "objects"]
    assert [c.id for c in cubes] == [3, 8] and all(c.type == CUBE for c in cubes)
    np.testing.assert_allclose(cubes[0].color[:3], labels.color_table()[6] / 255.0)
    texts = [s for s in specs if s.type == TEXT_VIEW_FACING]
    assert [t.text for t in texts] == ["table #3", "cup #8"]
    lines = [s for s in specs if s.type == LINE_LIST]
    assert [s.ns for s in lines] == ["relation/on"]  # inverse duplicate and dangling edge left out
    np.testing.assert_allclose(lines[0].points, [[1.0, 2.0, 1.05], [1.0, 2.0, 0.5]])
    assert any(s.ns == "support_surfaces" for s in specs)
    msg = marker_array_message(specs)
    assert len(msg.markers) == len(specs)
