"""Panoptic backends: registry, bad input, oracle noise, label remaps, the geometric segmenter (issue #6)."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.labels import LabelRemap, load_label_space, load_remap
from metric_semantic_slam.core.panoptic import BACKENDS, PanopticInput, make_backend, validate_result


@pytest.fixture(scope="module")
def space():
    return load_label_space()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def box_room(width=160, height=120, pitch_deg=20.0):
    """Ray-cast a floor (z = 0), a back wall (y = 4 m), a right wall (x = 1.5 m) and a 0.5 m box on the
    floor, seen from 1.4 m height, pitched down. World z-up. Returns depth, semantic, instance, camera,
    gravity in the camera frame."""
    cam = PinholeCamera(width, height, fx=0.8 * width, fy=0.8 * width, cx=(width - 1) / 2, cy=(height - 1) / 2)
    p = np.deg2rad(pitch_deg)
    # camera axes in world: x right, y down, z forward (looking along +y, pitched down by p)
    R = np.array([[1.0, 0.0, 0.0],
                  [0.0, -np.sin(p), np.cos(p)],
                  [0.0, -np.cos(p), -np.sin(p)]])
    c = np.array([0.0, 0.0, 1.4])
    rays_c = cam.ray_directions()                       # z = 1
    rays_w = rays_c @ R.T
    t = np.full(rays_w.shape[:2], np.inf)
    sem = np.zeros(rays_w.shape[:2], np.uint16)
    inst = np.zeros_like(sem)

    def hit(tt, cls, iid=0):
        nonlocal t
        ok = (tt > 0) & (tt < t)
        t = np.where(ok, tt, t)
        sem[ok] = cls
        inst[ok] = iid

    with np.errstate(divide="ignore", invalid="ignore"):
        hit(np.where(rays_w[..., 2] < 0, -c[2] / rays_w[..., 2], np.inf), 1)                # floor
        hit(np.where(rays_w[..., 1] > 0, (4.0 - c[1]) / rays_w[..., 1], np.inf), 2)         # back wall
        hit(np.where(rays_w[..., 0] > 0, (1.5 - c[0]) / rays_w[..., 0], np.inf), 2)         # right wall
        lo, hi = np.array([-0.6, 2.2, 0.0]), np.array([-0.1, 2.7, 0.5])                     # the box
        t0 = (lo - c) / rays_w
        t1 = (hi - c) / rays_w
        tn = np.nanmax(np.minimum(t0, t1), axis=-1)
        tf = np.nanmin(np.maximum(t0, t1), axis=-1)
        hit(np.where(tn <= tf, tn, np.inf), 16, 7)
    box_room.last_points_world = c + t[..., None] * rays_w  # for tests that paint the walls
    depth = (t * rays_c[..., 2]).astype(np.float32)      # z in the camera frame = t (rays have z = 1)
    depth[~np.isfinite(depth)] = 0.0
    gravity_c = R.T @ np.array([0.0, 0.0, -1.0])
    return depth, sem, inst, cam, gravity_c


def test_registry_and_unknown_backend(space):
    assert BACKENDS == ("oracle", "geometric", "builtin", "torchscript", "onnx", "person")
    with pytest.raises(ValueError, match="unknown panoptic backend"):
        make_backend("nope", space)
    with pytest.raises(ValueError, match="unknown geometric options"):
        make_backend("geometric", space, bogus=1)
    for bad in ({"thin_min_px": -1}, {"strip_saturated_fraction": 1.5}, {"strip_min_height_m": 0.5}):
        with pytest.raises(ValueError, match="thin_min_px|strip"):
            make_backend("geometric", space, **bad)
    for bad in ({"island_min_size_m": 2.0}, {"island_max_rest_above": 1.5}, {"island_max_convex_ratio": 0}):
        with pytest.raises(ValueError, match="island"):
            make_backend("geometric", space, **bad)
    with pytest.raises(ValueError, match="wall_front"):
        make_backend("geometric", space, wall_front_min_px=0)
    for bad in ({"colour_growth_delta": -1.0}, {"colour_growth_max_ratio": -0.5}):
        with pytest.raises(ValueError, match="colour_growth"):
            make_backend("geometric", space, **bad)
    with pytest.raises(ValueError, match="lab_island"):
        make_backend("geometric", space, lab_island_distance=-1.0)
    be = make_backend("oracle", space)
    assert be.name == "oracle" and be.label_space is space


@pytest.mark.parametrize("name", ["oracle", "geometric"])
def test_bad_input_gives_value_error(space, name):
    be = make_backend(name, space)
    depth, sem, inst, cam, g = box_room(32, 24)
    good = dict(color=np.zeros((24, 32, 3), np.uint8), depth_m=depth, camera=cam, gt_semantic=sem, gt_instance=inst)
    be.predict(PanopticInput(**good))
    bad_cases = [
        dict(good, color=np.zeros((24, 32), np.uint8)),              # no channels
        dict(good, color=np.zeros((24, 32, 4), np.uint8)),           # RGBA
        dict(good, color=np.zeros((24, 32, 3), np.float32)),         # dtype
        dict(good, color=np.zeros((0, 0, 3), np.uint8)),             # empty
        dict(good, depth_m=np.zeros((12, 16), np.float32)),          # size mismatch
        dict(good, depth_m=np.zeros((24, 32), np.uint16)),           # depth not in meters
        dict(good, gt_semantic=sem[:10]),
        dict(good, gravity_camera=np.zeros(3)),
    ]
    if name == "oracle":
        bad_cases.append(dict(good, gt_semantic=None))
    else:
        bad_cases += [dict(good, depth_m=None), dict(good, camera=None)]
    for case in bad_cases:
        with pytest.raises(ValueError):
            be.predict(PanopticInput(**case))
    with pytest.raises(ValueError):
        be.predict("not an input")


def test_oracle_exact_and_noise_levels(space):
    rng = np.random.default_rng(3)
    sem = np.zeros((60, 80), np.uint16)
    inst = np.zeros_like(sem)
    sem[:30] = space.id_of("wall")
    sem[30:] = space.id_of("floor")
    for k in range(20):                                # 20 chair/box instances on a grid
        y, x = 5 + 12 * (k // 5), 4 + 15 * (k % 5)
        sem[y:y + 8, x:x + 10] = space.id_of("chair") if k % 2 else space.id_of("box")
        inst[y:y + 8, x:x + 10] = 100 + k
    inp = PanopticInput(color=np.zeros((60, 80, 3), np.uint8), gt_semantic=sem, gt_instance=inst)
    exact = make_backend("oracle", space).predict(inp)
    assert np.array_equal(exact.semantic, sem) and np.array_equal(exact.instance, inst)
    validate_result(exact, (60, 80))
    noisy = make_backend("oracle", space, noise_fraction=0.25, seed=1)
    res = noisy.predict(inp)
    validate_result(res, (60, 80))
    seg_keys = {(int(s), int(i)) for s, i in zip(sem.ravel(), inst.ravel())}
    changed = sum(1 for s, i in seg_keys if (res.semantic[(sem == s) & (inst == i)] != s).all())
    assert changed == round(0.25 * len(seg_keys))      # 22 segments -> 6 relabelled, as a whole
    # same seed, same noise; the generator advances from frame to frame
    again = make_backend("oracle", space, noise_fraction=0.25, seed=1).predict(inp)
    assert np.array_equal(again.semantic, res.semantic)
    assert not np.array_equal(noisy.predict(inp).semantic, res.semantic)
    pix = make_backend("oracle", space, pixel_noise_fraction=0.1, seed=2).predict(inp)
    frac = np.mean(pix.semantic != sem)
    assert frac == pytest.approx(0.1, abs=0.002)
    with pytest.raises(ValueError):
        make_backend("oracle", space, noise_fraction=1.5)


def test_remaps(space):
    coco = load_remap("coco_panoptic", space)
    cases = {1: "person", 62: "chair", 63: "sofa", 67: "table", 72: "tv", 84: "book", 3: "object",
             199: "wall", 190: "floor", 186: "ceiling", 187: "unknown", 0: "unknown"}
    for src, name in cases.items():
        assert coco(np.array([src]))[0] == space.id_of(name), (src, name)
    assert coco(np.array([5000, -3])).tolist() == [0, 0]
    nyu = load_remap("nyu40", space)
    assert nyu(np.array([1, 2, 22, 5, 14, 39, 38])).tolist() == [space.id_of(n) for n in
                                                                ("wall", "floor", "ceiling", "chair", "table",
                                                                 "object", "unknown")]
    voc = load_remap("voc21", space)
    assert voc(np.array([0, 9, 15, 20])).tolist() == [0, space.id_of("chair"), space.id_of("person"),
                                                     space.id_of("monitor")]
    with pytest.raises(ValueError, match="not found"):
        load_remap("no_such_remap", space)
    with pytest.raises(ValueError, match="unknown class"):
        LabelRemap.from_dict({"classes": [{"id": 1, "target": "spaceship"}]}, space)
    with pytest.raises(ValueError, match="unique"):
        LabelRemap.from_dict({"classes": [{"id": 1, "target": "wall"}, {"id": 1, "target": "floor"}]}, space)


@pytest.mark.parametrize("use_gravity", [True, False])
def test_geometric_box_room(space, use_gravity):
    depth, sem, inst, cam, g = box_room()
    noise = np.random.default_rng(0).normal(0.0, 0.003, depth.shape).astype(np.float32)
    depth_noisy = np.where(depth > 0, depth + noise * depth * depth, 0.0).astype(np.float32)
    be = make_backend("geometric", space)
    res = be.predict(PanopticInput(color=np.zeros(depth.shape + (3,), np.uint8), depth_m=depth_noisy, camera=cam,
                                   gravity_camera=g if use_gravity else None))
    validate_result(res, depth.shape)
    assert _iou(res.semantic == 1, sem == 1) > 0.9
    assert _iou(res.semantic == 2, sem == 2) > 0.9
    box = inst == 7
    ids, counts = np.unique(res.instance[box], return_counts=True)
    best = ids[np.argmax(counts)]
    assert best != 0 and res.instance_classes[int(best)] == space.id_of("object")
    assert _iou(res.instance == best, box) > 0.7
    if not use_gravity:   # estimated from the normals: within a few degrees of the truth
        assert np.degrees(np.arccos(np.clip(be.last_up @ -g, -1, 1))) < 3.0


def test_geometric_on_a_simulated_frame(space):
    from metric_semantic_slam.sim.render import RenderConfig, Renderer
    from metric_semantic_slam.sim.scene import generate_world
    from metric_semantic_slam.sim.simulate import default_camera
    from metric_semantic_slam.sim.trajectory import make_trajectory

    world = generate_world(7, with_person=False)
    traj = make_trajectory(world, preset="handheld", duration_s=60.0, seed=7)
    cam = default_camera(160, 120)
    T = np.asarray(traj.T_world_camera(4.5), np.float64)
    r = Renderer(world, RenderConfig(raycast_threads=1)).render(cam, T, 4.5, None, None)
    g = T[:3, :3].T @ np.array([0.0, 0.0, -1.0])
    res = make_backend("geometric", space).predict(
        PanopticInput(color=r.color, depth_m=r.depth_m, camera=cam, gravity_camera=g))
    validate_result(res, (120, 160))
    floor, wall = space.id_of("floor"), space.id_of("wall")
    assert (r.semantic == floor).mean() > 0.1 and (r.semantic == wall).mean() > 0.1   # the view shows both
    assert _iou(res.semantic == floor, r.semantic == floor) > 0.8   # 160x120: blurred normals at object feet
    assert _iou(res.semantic == wall, r.semantic == wall) > 0.6   # doors / windows in the wall read as wall
    assert len(res.instance_classes) >= 1


def test_geometric_finds_a_door_and_a_window_by_color(space):
    depth, sem, inst, cam, g = box_room()
    pw = box_room.last_points_world
    color = np.full(depth.shape + (3,), 200, np.uint8)             # a light gray room
    back = (sem == 2) & (np.abs(pw[..., 1] - 4.0) < 1e-6)
    door = back & (pw[..., 0] > 0.3) & (pw[..., 0] < 1.2) & (pw[..., 2] < 2.0)
    window = back & (pw[..., 0] > -1.6) & (pw[..., 0] < -0.9) & (pw[..., 2] > 0.9) & (pw[..., 2] < 1.5)
    color[door] = (120, 70, 40)                                    # brown wood
    color[window] = (150, 200, 240)                                # pale blue glass
    assert door.sum() > 100 and window.sum() > 50
    res = make_backend("geometric", space).predict(
        PanopticInput(color=color, depth_m=depth, camera=cam, gravity_camera=g))
    assert _iou(res.semantic == space.id_of("door"), door) > 0.8
    assert _iou(res.semantic == space.id_of("window"), window) > 0.8
    assert _iou(res.semantic == space.id_of("wall"), (sem == 2) & ~door & ~window) > 0.9
    plain = make_backend("geometric", space, doors_windows=False).predict(
        PanopticInput(color=color, depth_m=depth, camera=cam, gravity_camera=g))
    assert not np.isin(plain.semantic, [space.id_of("door"), space.id_of("window")]).any()


def test_fill_depth_speckles_fills_inside_a_surface_but_does_not_bridge_depths():
    from metric_semantic_slam.core.panoptic.geometric import fill_depth_speckles

    z = np.full((40, 40), 2.0, np.float32)
    z[:, 20:] = 3.0                                   # two surfaces 1 m apart
    valid = np.ones(z.shape, bool)
    rng = np.random.default_rng(0)
    speckle = rng.random(z.shape) < 0.2
    valid &= ~speckle
    valid[:, 19:21] = False                           # a dropout line between the two surfaces
    zin = np.where(valid, z, 0.0).astype(np.float32)
    zf, vf = fill_depth_speckles(zin, valid, 5, 0.04)
    inside = speckle.copy()
    inside[:, 17:23] = False
    assert vf[inside].mean() > 0.95                   # speckle inside each surface is filled ...
    assert np.allclose(zf[inside & vf], z[inside & vf], atol=1e-4)   # ... with that surface's depth
    assert not vf[:, 19:21].any()                     # the gap between the surfaces stays open
    assert np.array_equal(zf[valid], zin[valid])      # measured depth is untouched


def test_geometric_depthless_screen_is_an_object_and_wall_holes_are_wall(space):
    depth, sem, inst, cam, g = box_room()
    pw = box_room.last_points_world
    color = np.full(depth.shape + (3,), 200, np.uint8)
    back = (sem == 2) & (np.abs(pw[..., 1] - 4.0) < 1e-6)
    screen = back & (pw[..., 0] > 0.2) & (pw[..., 0] < 1.2) & (pw[..., 2] > 1.0) & (pw[..., 2] < 1.6)
    hole = back & (pw[..., 0] > -0.7) & (pw[..., 0] < -0.3) & (pw[..., 2] > 1.2) & (pw[..., 2] < 1.5)
    assert screen.sum() > 150 and hole.sum() > 40
    color[screen] = 20                                # a dark screen returns no depth
    d = depth.copy()
    d[screen | hole] = 0.0                            # the bright hole: a dropout in the plain wall
    res = make_backend("geometric", space).predict(
        PanopticInput(color=color, depth_m=d, camera=cam, gravity_camera=g))
    ids, counts = np.unique(res.instance[screen], return_counts=True)
    best = ids[np.argmax(counts)]
    assert best != 0 and res.instance_classes[int(best)] == space.id_of("object")
    assert _iou(res.instance == best, screen) > 0.8
    assert np.mean(res.semantic[hole] == space.id_of("wall")) > 0.9
    off = make_backend("geometric", space, screen_objects=False, wall_hole_frame=2.0).predict(
        PanopticInput(color=color, depth_m=d, camera=cam, gravity_camera=g))
    assert np.mean(off.instance[screen] > 0) < 0.5 and np.mean(off.semantic[hole] == 0) > 0.9


def test_geometric_light_gradient_on_a_wall_is_not_a_window(space):
    depth, sem, inst, cam, g = box_room()
    pw = box_room.last_points_world
    back = (sem == 2) & (np.abs(pw[..., 1] - 4.0) < 1e-6)
    # a warm lamp glow fading smoothly over the back wall: far from the walls' median color in its
    # middle, but without an edge
    r2 = (pw[..., 0] + 0.8) ** 2 + (pw[..., 2] - 1.8) ** 2
    glow = np.exp(-r2 / 0.3)
    color = np.full(depth.shape + (3,), 200.0)
    color[..., 0] += 55 * glow * back
    color[..., 2] -= 90 * glow * back
    color = np.clip(color, 0, 255).astype(np.uint8)
    res = make_backend("geometric", space).predict(
        PanopticInput(color=color, depth_m=depth, camera=cam, gravity_camera=g))
    assert not np.isin(res.semantic, [space.id_of("door"), space.id_of("window")]).any()
    assert _iou(res.semantic == space.id_of("wall"), sem == 2) > 0.9
    no_edge_test = make_backend("geometric", space, door_edge_contrast=0.0).predict(
        PanopticInput(color=color, depth_m=depth, camera=cam, gravity_camera=g))
    assert np.isin(no_edge_test.semantic, [space.id_of("door"), space.id_of("window")]).any()
