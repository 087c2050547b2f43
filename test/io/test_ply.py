import numpy as np
import pytest

from metric_semantic_slam.io.ply import read_ply, write_ply


def test_round_trip_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 3))
    f = rng.integers(0, 50, size=(30, 3))
    cls = rng.integers(0, 20, size=50).astype(np.uint16)
    fcls = rng.integers(0, 20, size=30).astype(np.uint16)
    colors = rng.integers(0, 256, size=(50, 3)).astype(np.uint8)
    p = write_ply(tmp_path / "m.ply", v, f, vertex_props={"class": cls}, face_props={"class": fcls},
                  vertex_colors=colors)
    d = read_ply(p)
    np.testing.assert_allclose(d.vertices, v.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(d.faces, f)
    np.testing.assert_array_equal(d.vertex_props["class"], cls)
    np.testing.assert_array_equal(d.face_props["class"], fcls)
    np.testing.assert_array_equal(d.vertex_colors, colors)
    assert d.vertex_props["class"].dtype == np.uint16


def test_open3d_reads_our_colors(tmp_path):
    o3d = pytest.importorskip("open3d")
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    write_ply(tmp_path / "t.ply", v, np.array([[0, 1, 2]]), vertex_colors=colors,
              vertex_props={"class": np.array([1, 2, 3], np.uint16)})
    m = o3d.io.read_triangle_mesh(str(tmp_path / "t.ply"))
    assert len(m.triangles) == 1
    np.testing.assert_allclose(np.asarray(m.vertex_colors), colors / 255.0)


def test_reads_ascii(tmp_path):
    p = tmp_path / "a.ply"
    p.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                 "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                 "0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    d = read_ply(p)
    assert d.vertices.shape == (3, 3) and d.faces.tolist() == [[0, 1, 2]]


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((3, 2)))
    with pytest.raises(ValueError):
        write_ply(tmp_path / "x.ply", np.zeros((3, 3)), np.array([[0, 1, 5]]))
    (tmp_path / "bad.ply").write_bytes(b"not a ply")
    with pytest.raises(ValueError):
        read_ply(tmp_path / "bad.ply")
