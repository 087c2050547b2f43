"""Renderer: exact depth and labels on an analytic box room, textures, dynamic mesh, lighting.

Also holds the tiny box-room world and trajectory the other ``test/sim`` tests import
(``from test_sim_render import ...``: pytest's default import mode puts this folder on
``sys.path``; the unique basename avoids a clash with ``test/eval/test_render.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.sim.render import RenderConfig, Renderer, lighting_gain_offset
from metric_semantic_slam.sim.textures import TEXTURES, evaluate_texture
from metric_semantic_slam.sim.world import Material, Relation, SceneObject, TriangleMesh, World

WALL, FLOOR, CEILING, TABLE, BOX, PERSON = 2, 1, 3, 6, 16, 19
ROOM_MIN = np.array([-2.0, -1.5, 0.0])
ROOM_MAX = np.array([2.0, 1.5, 2.5])


def box_mesh(lo, hi, face_class, instance: int, material, inward: bool = False) -> TriangleMesh:
    """Axis-aligned box as 12 triangles; ``face_class``/``material`` per side (-x,+x,-y,+y,-z,+z) or scalar."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    fc = np.broadcast_to(np.asarray(face_class), (6,))
    fm = np.broadcast_to(np.asarray(material), (6,))
    verts, tris, cls, mats = [], [], [], []
    for side in range(6):
        axis, positive = side // 2, side % 2 == 1
        a, b = [i for i in range(3) if i != axis]
        c = hi[axis] if positive else lo[axis]
        quad = []
        for ua, ub in ((0, 0), (1, 0), (1, 1), (0, 1)):
            p = np.zeros(3)
            p[axis] = c
            p[a] = hi[a] if ua else lo[a]
            p[b] = hi[b] if ub else lo[b]
            quad.append(p)
        base = len(verts)
        verts += quad
        tris += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
        cls += [fc[side]] * 2
        mats += [fm[side]] * 2
    tris = np.array(tris, np.int32)
    return TriangleMesh(np.array(verts), tris, np.array(cls, np.uint16), np.full(12, instance, np.uint16),
                        np.array(mats, np.int32))


def box_room_world(with_person: bool = False) -> World:
    """4 x 3 x 2.5 m room, a table box (instance 1) and a dark box (instance 2, low IR albedo)."""
    materials = [
        Material((0.55, 0.5, 0.45), "wood", 0.3, (0.35, 0.25, 0.15)),      # 0 floor
        Material((0.8, 0.78, 0.72), "plain", 0.5),                          # 1 walls
        Material((0.9, 0.9, 0.9), "noise", 0.4, (0.7, 0.7, 0.75)),         # 2 ceiling
        Material((0.6, 0.4, 0.2), "checker", 0.1, (0.9, 0.85, 0.7)),       # 3 table
        Material((0.15, 0.15, 0.18), "fabric", 0.05, (0.3, 0.3, 0.35), ir_albedo=0.05),  # 4 dark box
        Material((0.8, 0.3, 0.3), "stripes", 0.08, (0.2, 0.2, 0.6)),       # 5 person
    ]
    room = box_mesh(ROOM_MIN, ROOM_MAX, [WALL, WALL, WALL, WALL, FLOOR, CEILING], 0, [1, 1, 1, 1, 0, 2])
    table = box_mesh([0.6, -0.4, 0.0], [1.4, 0.4, 0.8], TABLE, 1, 3)
    dark = box_mesh([-1.2, 0.6, 0.0], [-0.6, 1.2, 0.6], BOX, 2, 4)
    objects = [
        SceneObject(1, TABLE, "table", np.array([1.0, 0.0, 0.4]), 0.0, np.array([0.8, 0.8, 0.8])),
        SceneObject(2, BOX, "box", np.array([-0.9, 0.9, 0.3]), 0.0, np.array([0.6, 0.6, 0.6])),
    ]
    person_obj = SceneObject(99, PERSON, "person", np.array([0.0, -0.8, 0.9]), 0.0, np.array([0.4, 0.3, 1.8]),
                             is_dynamic=True)

    def person_at(t_s: float) -> TriangleMesh:
        y = -0.45 + 0.5 * t_s  # walks along +y, between the camera and the table
        return box_mesh([0.1, y - 0.15, 0.0], [0.5, y + 0.15, 1.8], PERSON, 99, 5)

    return World(
        seed=0,
        static_mesh=TriangleMesh.concatenate([room, table, dark]),
        materials=materials,
        objects=objects,
        relations=[Relation(2, "near", 1)],
        room_min_m=ROOM_MIN,
        room_max_m=ROOM_MAX,
        light_positions_m=np.array([[0.0, 0.0, 2.3], [-1.2, 0.8, 2.3]]),
        dynamic_mesh_at=person_at if with_person else None,
        dynamic_objects_at=(lambda t: [person_obj]) if with_person else None,
    )


def look_at(eye, target) -> np.ndarray:
    """``T_world_camera`` of an optical-frame camera at ``eye`` looking at ``target`` (world z up)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], axis=1)
    T[:3, 3] = eye
    return T


@dataclass
class WobbleTrajectory:
    """Smooth test motion: the camera sways and yaws in the room centre, looking roughly along +x."""

    duration_s: float = 3.0

    def T_world_camera(self, t_s: float) -> np.ndarray:
        t = float(t_s)
        eye = np.array([-0.6 + 0.15 * np.sin(1.3 * t), 0.2 * np.sin(0.9 * t + 0.3), 1.3 + 0.05 * np.sin(2.1 * t)])
        yaw = 0.35 * np.sin(0.8 * t)
        pitch = -0.15 + 0.08 * np.sin(1.7 * t)
        target = eye + np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
        return look_at(eye, target)


def small_camera(w: int = 160, h: int = 120) -> PinholeCamera:
    f = 525.0 * w / 640.0
    return PinholeCamera(w, h, f, f, (w - 1) / 2, (h - 1) / 2)


def _has_open3d() -> bool:
    try:
        import open3d  # noqa: F401
    except ImportError:
        return False
    return True


# The geometry tests run on both ray casters (sim.raycast); Open3D's only where it is installed.
RAYCASTERS = [pytest.param("open3d", marks=pytest.mark.skipif(not _has_open3d(), reason="open3d not installed")),
              "torch"]


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raycaster", RAYCASTERS)
def test_exact_depth_and_labels_at_centre_pixel(raycaster):
    r = Renderer(box_room_world(), raycaster=raycaster)
    cam = small_camera()
    # Facing the +x wall (x = 2) from x = 0.3, above the table (top at 0.8 m): depth is exactly 1.7 m
    # on the whole wall, since depth is z and the wall is fronto-parallel.
    out = r.render(cam, look_at([0.3, 0.0, 1.8], [5.0, 0.0, 1.8]))
    v, u = cam.height // 2, cam.width // 2
    assert out.depth_m[v, u] == pytest.approx(1.7, abs=1e-4)
    assert out.semantic[v, u] == WALL and out.instance[v, u] == 0
    # Facing the table's -x face (x = 0.6) from x = -1.0 at 0.4 m height: depth 1.6, table ids.
    out = r.render(cam, look_at([-1.0, 0.0, 0.4], [5.0, 0.0, 0.4]))
    assert out.depth_m[v, u] == pytest.approx(1.6, abs=1e-4)
    assert out.semantic[v, u] == TABLE and out.instance[v, u] == 1
    assert out.material[v, u] == 3
    # Hit point and normal of that pixel.
    np.testing.assert_allclose(out.points_world[v, u, 0], 0.6, atol=1e-4)
    np.testing.assert_allclose(out.normals_world[v, u], [-1.0, 0.0, 0.0], atol=1e-5)
    assert out.cos_incidence[v, u] == pytest.approx(1.0, abs=2e-3)
    # A closed room: every pixel hits something.
    assert out.hit.all() and (out.depth_m > 0).all()


@pytest.mark.parametrize("raycaster", RAYCASTERS)
def test_depth_matches_backprojected_points(raycaster):
    r = Renderer(box_room_world(), raycaster=raycaster)
    cam = small_camera()
    T = WobbleTrajectory().T_world_camera(0.7)
    out = r.render(cam, T)
    pts_cam = cam.backproject(out.depth_m).reshape(-1, 3)
    pts_world = pts_cam @ T[:3, :3].T + T[:3, 3]
    np.testing.assert_allclose(pts_world, out.points_world.reshape(-1, 3), atol=2e-4)
    # Every hit lies on the room boundary or on an object box: the room's points are inside the room.
    assert (out.points_world >= ROOM_MIN - 1e-3).all() and (out.points_world <= ROOM_MAX + 1e-3).all()


def test_color_has_gradients_on_every_surface():
    r = Renderer(box_room_world(), RenderConfig(noise_sigma_dn=0.0))
    cam = small_camera(320, 240)
    T = look_at([-1.6, -1.2, 1.6], [1.0, 0.5, 0.4])
    out = r.render(cam, T)
    gray = cv2.cvtColor(out.color, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    # Interior of each material region (edges between surfaces excluded): texture alone gives gradients.
    seen = 0
    for m in np.unique(out.material):
        region = cv2.erode((out.material == m).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if region.sum() < 200:
            continue
        seen += 1
        assert np.median(mag[region]) > 2.0, f"material {m} is too flat for photometric tracking"
    assert seen >= 4


@pytest.mark.parametrize("texture", TEXTURES)
def test_textures_are_deterministic_and_in_range(texture):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 2, (5000, 3))
    nrm = np.tile([0.0, 0.0, 1.0], (5000, 1))
    a = evaluate_texture(texture, pts, nrm, 0.2, (0.8, 0.5, 0.3), (0.1, 0.2, 0.3))
    b = evaluate_texture(texture, pts, nrm, 0.2, (0.8, 0.5, 0.3), (0.1, 0.2, 0.3))
    assert a.shape == (5000, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert a.std(axis=0).max() > 0.02  # not a flat color


def test_unknown_texture_raises():
    with pytest.raises(ValueError, match="unknown texture"):
        evaluate_texture("marble", np.zeros((1, 3)), np.zeros((1, 3)), 0.2, (1, 1, 1), (0, 0, 0))


@pytest.mark.parametrize("raycaster", RAYCASTERS)
def test_dynamic_mesh_occludes_and_carries_its_labels(raycaster):
    cam = small_camera()
    T = look_at([0.3, 0.8, 1.0], [0.3, -3.0, 1.0])  # looking along -y at the person (y = -0.1..0.2 at t = 1)
    static = Renderer(box_room_world(with_person=False), raycaster=raycaster).render(cam, T, t_s=1.0)
    dyn = Renderer(box_room_world(with_person=True), raycaster=raycaster).render(cam, T, t_s=1.0)
    person = dyn.semantic == PERSON
    assert person.any()
    assert (dyn.instance[person] == 99).all() and dyn.dynamic[person].all()
    assert (dyn.depth_m[person] < static.depth_m[person] - 0.3).all()
    np.testing.assert_array_equal(dyn.depth_m[~person], static.depth_m[~person])
    # The person moves: at another time it covers other pixels.
    later = Renderer(box_room_world(with_person=True), raycaster=raycaster).render(cam, T, t_s=3.0)
    assert not np.array_equal(later.semantic == PERSON, person)


def test_lighting_variation_changes_brightness_over_time():
    cam = small_camera()
    T = look_at([0.0, 0.0, 1.3], [2.0, 0.0, 1.0])
    const = Renderer(box_room_world(), RenderConfig(noise_sigma_dn=0.0))
    var = Renderer(box_room_world(), RenderConfig(noise_sigma_dn=0.0, lighting_variation=0.8))
    np.testing.assert_array_equal(const.render(cam, T, 0.0).color, const.render(cam, T, 1.5).color)
    means = [var.render(cam, T, t).color.mean() for t in (0.0, 1.5, 3.0, 4.5)]
    assert max(means) - min(means) > 10.0
    assert lighting_gain_offset(2.0, 0.0) == (1.0, 0.0)
    with pytest.raises(ValueError):
        RenderConfig(lighting_variation=1.5)


def test_sensor_noise_is_seeded():
    r = Renderer(box_room_world())
    cam = small_camera()
    T = look_at([0.0, 0.0, 1.3], [2.0, 0.0, 1.0])
    a = r.render(cam, T, rng=np.random.default_rng(5)).color
    b = r.render(cam, T, rng=np.random.default_rng(5)).color
    c = r.render(cam, T, rng=np.random.default_rng(6)).color
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_pose_raises():
    with pytest.raises(ValueError, match="4x4"):
        Renderer(box_room_world()).cast(small_camera(), np.eye(3))
