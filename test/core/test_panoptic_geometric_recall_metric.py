"""The object-recall definition of ``benchmarks/bench_panoptic.py`` (issue #6): silhouettes of an object on
its own (to tell occluded from visible) and which ground-truth objects count."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.labels import load_label_space

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_panoptic", REPO / "benchmarks" / "bench_panoptic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _square(center_xy: tuple[float, float], half_m: float, z_m: float) -> tuple[np.ndarray, np.ndarray]:
    """A square facing the camera (identity pose: world = camera frame), as two triangles."""
    cx, cy = center_xy
    v = np.array([[cx - half_m, cy - half_m, z_m], [cx + half_m, cy - half_m, z_m],
                  [cx + half_m, cy + half_m, z_m], [cx - half_m, cy + half_m, z_m]])
    return v, np.array([[0, 1, 2], [0, 2, 3]], np.int32)


def test_silhouettes_of_a_square(bench):
    cam = PinholeCamera(320, 240, 262.5, 262.5, 159.5, 119.5)
    v, t = _square((0.0, 0.0), 0.2, 2.0)                 # 0.4 m at 2 m: 52.5 px wide
    expect = (0.4 * 262.5 / 2.0) ** 2
    full, inside = bench.full_silhouette_px(v, t, np.eye(4), cam.K, 320, 240)
    assert full == inside and abs(full - expect) < 0.06 * expect
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(v.astype(np.float32)), o3d.core.Tensor(t.astype(np.uint32)))
    unocc = bench.unoccluded_mask(scene, np.eye(4), cam)
    assert abs(int(unocc.sum()) - expect) < 0.04 * expect
    # half of it beyond the right image border: the canvas still sees all of it, the image half
    x_edge = (319.5 - cam.cx) / cam.fx * 2.0              # the right image border at 2 m
    v2, t2 = _square((x_edge, 0.0), 0.2, 2.0)
    full2, inside2 = bench.full_silhouette_px(v2, t2, np.eye(4), cam.K, 320, 240)
    assert abs(full2 - full) < 0.03 * full and abs(inside2 - full / 2) < 0.06 * full
    # behind the camera: nothing
    v3, t3 = _square((0.0, 0.0), 0.2, -1.0)
    assert bench.full_silhouette_px(v3, t3, np.eye(4), cam.K, 320, 240) == (0, 0)


def test_which_objects_count(bench):
    space = load_label_space()
    sem = np.zeros((60, 80), np.uint16)
    inst = np.zeros((60, 80), np.uint16)
    cases = {  # instance id: (class, visible px, size m, unoccluded px) -> counted?
        1: ("box", 100, 0.30, 120, True),
        2: ("box", 100, 0.15, 100, False),     # smaller than 20 cm
        3: ("box", 40, 0.50, 40, False),       # fewer than 50 pixels in view
        4: ("box", 100, 0.50, 250, False),     # 60 % hidden behind nearer things
        5: ("wall", 100, 3.00, 100, False),    # stuff, not a thing
        6: ("book", 100, 0.25, 180, True),     # 44 % hidden: still counts
    }
    vis = {}
    flat = np.arange(sem.size)
    start = 0
    for iid, (name, px, size_m, unocc, _) in cases.items():
        idx = flat[start:start + px]
        sem.ravel()[idx] = space.id_of(name)
        inst.ravel()[idx] = iid
        vis[(0, iid)] = {"size_m": size_m, "visible_px": px, "unoccluded_px": unocc, "canvas_px": unocc,
                         "canvas_inside_px": unocc}
        start += px
    masks = bench.counted_instances(sem, inst, vis, 0, space.thing_mask)
    counted = sorted(int(np.unique(inst[m])[0]) for m in masks)
    assert counted == sorted(i for i, c in cases.items() if c[4])
    # recall: one prediction with IoU > 0.5 (here the exact mask), none for an empty prediction
    assert bench.recalled(inst == 1, np.where(inst == 1, 9, 0))
    assert not bench.recalled(inst == 1, np.zeros_like(inst))


def test_miss_kinds(bench):
    """Why a counted object was not recalled, on a 10x10 object in a 20x30 image."""
    gt = np.zeros((20, 30), bool)
    gt[5:15, 5:15] = True
    pred = np.zeros((20, 30), np.int32)
    pred[gt] = 4
    assert bench.miss_kind(gt, pred) == "recalled"
    merged = pred.copy()
    merged[:, 5:30] = 4                          # spills far over its neighbours: IoU 100/500
    assert bench.miss_kind(gt, merged) == "merged"
    split = np.zeros_like(pred)
    split[5:15, 5:9], split[5:15, 9:12], split[5:15, 12:15] = 1, 2, 3   # three pieces, none >= 50 %
    assert bench.miss_kind(gt, split) == "split"
    missing = np.zeros_like(pred)
    missing[5:9, 5:15] = 7                       # 40 % labelled, the rest left without an instance
    assert bench.miss_kind(gt, missing) == "missing"
    partial = np.zeros_like(pred)
    partial[7:17, 5:15] = 5                      # 80 / 120: IoU 0.67 -> recalled ...
    assert bench.miss_kind(gt, partial) == "recalled"
    partial[:] = 0
    partial[8:18, 7:17] = 5                      # 56 of 100 each way: IoU 56 / 144 <= 0.5
    assert bench.miss_kind(gt, partial) == "partial"


def test_eval_frames_carry_the_noise_free_depth_next_to_the_sensor_depth(bench, tmp_path):
    data = bench.render_eval_frames(7, 1, width=80, height=60, cache_dir=tmp_path)
    gt, sensor = data["depth_gt_m"][0], data["depth_m"][0]
    assert gt.shape == sensor.shape == (60, 80) and (gt > 0).all()  # a closed room: every ray hits
    ok = sensor > 0
    assert ok.mean() > 0.5 and not np.array_equal(gt[ok], sensor[ok])  # noisy ...
    assert np.median(np.abs(gt[ok] - sensor[ok])) < 0.02              # ... around the true depth
    again = bench.render_eval_frames(7, 1, width=80, height=60, cache_dir=tmp_path)  # from the cache
    assert np.array_equal(again["depth_gt_m"], data["depth_gt_m"])
