"""Headless renderer: colors, shading, view conventions, framing, error colors, PNG output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import invert_transform, so3_exp, transform_points
from metric_semantic_slam.eval.render import (
    add_colorbar,
    auto_view,
    error_colored_mesh,
    look_at,
    render_mesh,
    save_mesh_png,
)
from metric_semantic_slam.io.ply import write_ply

CAM = PinholeCamera(160, 120, 100.0, 100.0, 79.5, 59.5)
WHITE = np.array([255, 255, 255])


def _box(size=(1.0, 1.0, 1.0), centre=(0.0, 0.0, 0.0)):
    s = np.asarray(size) / 2.0
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float) * s
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return corners + np.asarray(centre), faces


def _is_bg(img: np.ndarray) -> np.ndarray:
    return np.all(img == 255, axis=-1)


def test_box_renders_coloured_blob_at_centre():
    v, f = _box()
    colors = np.tile([200, 30, 30], (len(v), 1)).astype(np.uint8)
    T = np.eye(4)
    T[2, 3] = -3.0  # camera 3 m in front of the box, looking along +z at it
    img = render_mesh(v, f, colors, CAM, T)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    centre = img[60, 80].astype(int)
    # Face-on headlight: full Lambert, so the exact vertex color comes back.
    np.testing.assert_allclose(centre, [200, 30, 30], atol=2)
    assert _is_bg(img[:5, :5]).all() and _is_bg(img[-5:, -5:]).all()
    # The front face spans +-0.5 m at 2.5 m depth: 20 px either side of the centre.
    row = ~_is_bg(img[60])
    assert abs(row.sum() - 41) <= 2


def test_barycentric_colours_follow_vertices():
    v = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    f = np.array([[0, 1, 2]])
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    T = np.eye(4)
    T[2, 3] = -2.0
    img = render_mesh(v, f, colors, CAM, T)
    uv, _ = CAM.project(transform_points(invert_transform(T), v * 0.9))  # just inside each corner
    for k in range(3):
        u, vv = np.round(uv[k]).astype(int)
        assert int(np.argmax(img[vv, u])) == k


def test_shading_darkens_oblique_faces_and_face_colours():
    v, f = _box()
    face_colors = np.tile([100, 200, 100], (len(f), 1)).astype(np.uint8)
    # Far away with a long lens: nearly parallel rays, so every face is seen at one angle.
    tele = PinholeCamera(160, 120, 2000.0, 2000.0, 79.5, 59.5)
    T = look_at([30.0, 30.0, 30.0], [0, 0, 0], [0, 0, 1])
    img = render_mesh(v, f, None, tele, T, face_colors=face_colors)
    fg = img[~_is_bg(img)].astype(float)
    assert len(fg) > 100
    # Three faces seen at ~55 deg: cos ~ 0.577, so 0.35 + 0.65 * 0.577 ~ 0.72 of the color.
    assert np.median(fg[:, 1]) == pytest.approx(200 * (0.35 + 0.65 / np.sqrt(3)), abs=2)
    gray = render_mesh(v, f, None, tele, T)
    g = gray[~_is_bg(gray)]
    assert np.all(g[:, 0] == g[:, 1])  # no colors -> gray


def test_look_at_convention_image_up_is_world_up():
    T = look_at([0.0, -5.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    p_cam = transform_points(invert_transform(T), np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    uv, z = CAM.project(p_cam)
    assert np.all(z > 0)
    assert uv[0, 1] < CAM.cy  # world up appears above the centre (v grows downwards)
    assert uv[1, 0] > CAM.cx  # world +x is to the right when looking along +y
    np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("view", ["oblique", "top", "principal"])
def test_auto_view_frames_whole_mesh(view: str):
    v, f = _box(size=(4.0, 3.0, 0.5), centre=(10.0, -5.0, 1.0))
    T = auto_view(v, CAM, view=view)
    img = render_mesh(v, f, None, CAM, T)
    fg = ~_is_bg(img)
    assert fg[60, 80]  # centred
    assert fg.mean() > 0.1  # fills a good part of the picture
    border = np.r_[fg[0], fg[-1], fg[:, 0], fg[:, -1]]
    assert not border.any()  # nothing cut off
    if view == "top":
        assert np.allclose(T[:3, 2], [0, 0, -1])


def test_principal_view_finds_up_of_tilted_slab():
    v, f = _box(size=(4.0, 3.0, 0.2))
    R = so3_exp(np.array([0.9, 0.3, 0.0]))  # a slab that is not gravity-aligned
    vt = v @ R.T
    T = auto_view(vt, CAM, view="principal", elevation_deg=90.0)
    normal = R[:, 2]
    assert abs(abs(T[:3, 2] @ normal) - 1.0) < 1e-6  # looks along the slab's normal


def test_trajectory_view_and_bad_view():
    v, f = _box()
    T0 = look_at([0.0, -2.0, 0.3], [0, 0, 0], [0, 0, 1])
    T = auto_view(v, CAM, view="trajectory", T_world_start=T0)
    assert np.linalg.norm(T[:3, 3]) > 2.0  # backed off
    assert not _is_bg(render_mesh(v, f, None, CAM, T)[60, 80]).any()
    with pytest.raises(ValueError, match="T_world_start"):
        auto_view(v, CAM, view="trajectory")
    with pytest.raises(ValueError, match="unknown view"):
        auto_view(v, CAM, view="side")


def test_error_colors_saturate_at_threshold():
    gt_v, gt_f = _box(size=(2.0, 2.0, 0.0))  # a flat square (degenerate box) as ground truth
    pts = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.05], [0.0, 0.0, 0.5]])
    e = error_colored_mesh(pts, gt_vertices=gt_v, gt_triangles=gt_f, threshold_m=0.05, colormap="viridis")
    np.testing.assert_allclose(e.distances_m, [0.0, 0.05, 0.5], atol=1e-6)
    np.testing.assert_array_equal(e.colors[1], e.colors[2])  # saturated
    assert not np.array_equal(e.colors[0], e.colors[1])
    e2 = error_colored_mesh(pts, gt_points=np.zeros((1, 3)), threshold_m=0.05)
    np.testing.assert_allclose(e2.distances_m, [0.0, 0.05, 0.5])
    with pytest.raises(ValueError, match="either gt_points"):
        error_colored_mesh(pts)


def test_save_mesh_png_from_ply(tmp_path: Path):
    v, f = _box()
    ply = write_ply(tmp_path / "box.ply", v, f, vertex_colors=np.tile([0, 0, 220], (len(v), 1)).astype(np.uint8))
    out = save_mesh_png(ply, tmp_path / "pic" / "box.png", width=160, height=120)
    img = np.asarray(Image.open(out))
    assert img.shape == (120, 160, 3)
    fg = img[~_is_bg(img)]
    assert len(fg) > 500 and np.all(fg[:, 2] > fg[:, 0])  # blue box
    with pytest.raises(ValueError, match="no faces"):
        save_mesh_png(write_ply(tmp_path / "pts.ply", v), tmp_path / "x.png")


def test_colorbar_strip_added_under_picture(tmp_path: Path):
    img = np.full((120, 160, 3), 255, dtype=np.uint8)
    out = add_colorbar(img, 0.05, "viridis")
    assert out.shape == (160, 160, 3)
    np.testing.assert_array_equal(out[:120], img)
    bar = out[130, 20:140].astype(int)
    assert np.abs(np.diff(bar, axis=0)).sum() > 100  # a color ramp, not a flat line
    v, f = _box()
    e = error_colored_mesh(v, gt_points=v, threshold_m=0.05)
    png = save_mesh_png((v, f), tmp_path / "err.png", width=160, height=120, vertex_colors=e.colors, colorbar=e)
    assert np.asarray(Image.open(png)).shape == (160, 160, 3)


@pytest.fixture
def no_open3d(monkeypatch):
    """``import open3d`` fails, as on the GPU machine: render_mesh rasterizes instead of ray casting."""
    import sys

    monkeypatch.setitem(sys.modules, "open3d", None)


def test_without_open3d_the_rasterizer_draws_the_same_box(no_open3d):
    v, f = _box()
    colors = np.tile([200, 30, 30], (len(v), 1)).astype(np.uint8)
    T = np.eye(4)
    T[2, 3] = -3.0
    img = render_mesh(v, f, colors, CAM, T)
    np.testing.assert_allclose(img[60, 80].astype(int), [200, 30, 30], atol=2)
    assert _is_bg(img[:5, :5]).all() and _is_bg(img[-5:, -5:]).all()
    assert abs((~_is_bg(img[60])).sum() - 41) <= 2
    face_colors = np.tile([100, 200, 100], (len(f), 1)).astype(np.uint8)
    tele = PinholeCamera(160, 120, 2000.0, 2000.0, 79.5, 59.5)
    shaded = render_mesh(v, f, None, tele, look_at([30.0, 30.0, 30.0], [0, 0, 0], [0, 0, 1]), face_colors=face_colors)
    fg = shaded[~_is_bg(shaded)].astype(float)
    assert np.median(fg[:, 1]) == pytest.approx(200 * (0.35 + 0.65 / np.sqrt(3)), abs=2)


def test_rasterized_picture_matches_the_ray_cast_one(monkeypatch):
    """Two boxes, one behind the other and partly hidden, seen from above at an angle: the rasterizer (painter's
    order) covers the same pixels as Open3D's ray casting and hides the far box the same way."""
    import sys

    pytest.importorskip("open3d")
    v1, f1 = _box((1.0, 1.0, 1.0), (0.0, 0.0, 0.5))
    v2, f2 = _box((2.0, 0.5, 2.0), (0.0, 1.5, 1.0))
    v, f = np.vstack([v1, v2]), np.vstack([f1, f2 + len(v1)])
    face_colors = np.vstack([np.tile([220, 40, 40], (len(f1), 1)), np.tile([40, 40, 220], (len(f2), 1))])
    T = look_at([0.5, -4.0, 3.0], [0.0, 0.5, 0.5], [0, 0, 1])
    ray_cast = render_mesh(v, f, None, CAM, T, face_colors=face_colors.astype(np.uint8))
    monkeypatch.setitem(sys.modules, "open3d", None)
    raster = render_mesh(v, f, None, CAM, T, face_colors=face_colors.astype(np.uint8))
    import cv2

    def near_edge(mask: np.ndarray) -> np.ndarray:  # within a pixel of the mask's outline
        m = mask.astype(np.uint8)
        k = np.ones((3, 3), np.uint8)
        return cv2.dilate(m, k).astype(bool) & ~cv2.erode(m, k).astype(bool)

    # the two differ only by how a pixel on a triangle's edge is counted
    fg_a, fg_b = ~_is_bg(ray_cast), ~_is_bg(raster)
    assert fg_a.sum() > 1000 and not np.any((fg_a ^ fg_b) & ~near_edge(fg_a))
    red_a, red_b = (ray_cast[..., 0] > ray_cast[..., 2]) & fg_a, (raster[..., 0] > raster[..., 2]) & fg_b
    assert red_a.sum() > 300 and not np.any((red_a ^ red_b) & ~near_edge(red_a))
