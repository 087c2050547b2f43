"""``benchmarks/sweep_geometric.py``: the variants it makes, how it counts and ranks them, and one variant run on
a packed view (the same path a sweep on another machine takes)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.panoptic.geometric import GeometricConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("sweep_geometric", REPO / "benchmarks" / "sweep_geometric.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_default_variants(sweep):
    base = {"edge_noise_sigmas": 3.0}
    v = sweep.default_variants(base, None, [0.5, 2.0])
    assert v[0] == base
    assert all(x["edge_noise_sigmas"] == 3.0 for x in v if set(x) != {"edge_noise_sigmas"})
    assert {"edge_noise_sigmas": 1.5} in v and {"edge_noise_sigmas": 6.0} in v
    changed = {k for x in v[1:] for k in x if k != "edge_noise_sigmas"}
    assert not changed & sweep.NOT_SWEPT
    assert "lab_islands" not in changed and "floor_class" not in changed          # no booleans, no names
    ints = [x["min_object_px"] for x in v if "min_object_px" in x]
    assert sorted(ints) == [15, 29, 31, 60] and all(isinstance(i, int) for i in ints)
    only = sweep.default_variants({}, ["fill_px"], [0.5])
    assert only == [{}, {"fill_px": GeometricConfig().fill_px * 0.5}]


def test_counts_and_ranking(sweep, capsys):
    keys = ["5/0/1", "5/0/2", "12/3/4", "7/1/9"]
    base = {"options": {}, "recalled": dict(zip(keys, [True, False, False, True]))}
    better = {"options": {"fill_px": 5.0}, "recalled": dict(zip(keys, [True, True, True, False]))}
    same = {"options": {"fill_px": 3.0}, "recalled": dict(base["recalled"])}
    failed = {"options": {"colour_growth_delta": -1.0}, "error": "colour_growth_delta must be >= 0"}
    assert sweep.group_counts(base["recalled"]) == {"choose_a": (1, 2), "choose_b": (0, 1), "report": (1, 1)}
    table = sweep.summarize([same, failed, better, base], {}, None)
    assert [t[4] for t in table] == [{"fill_px": 5.0}, {"fill_px": 3.0}]
    total, delta, gained, lost, _ = table[0]
    assert (total, delta, gained, lost) == (2, {"choose_a": 1, "choose_b": 1, "report": -1}, 2, 1)
    assert "+2" in capsys.readouterr().out


def test_run_variant_on_a_packed_view(sweep):
    """A box standing on the floor in front of a wall, seen level from 1 m up: counted, and recalled by the
    default configuration; an option out of range is reported, not raised."""
    cam = PinholeCamera(160, 120, 131.25, 131.25, 79.5, 59.5)
    rays = cam.ray_directions()
    up = np.array([0.0, -1.0, 0.0])                       # camera y points down; level camera
    height = 1.0
    t_floor = np.where(rays @ -up > 1e-6, height / np.maximum(rays @ -up, 1e-6), np.inf)
    t_wall = np.full(rays.shape[:2], 3.0)
    depth = np.minimum(t_floor, t_wall)
    # box: x in [-0.25, 0.25], from the floor up 0.5 m, front face at 2.0 m
    p = rays * 2.0
    box = (np.abs(p[..., 0]) < 0.25) & (p[..., 1] > height - 0.5) & (p[..., 1] < height)
    depth = np.where(box, 2.0, depth).astype(np.float32)
    color = np.full(depth.shape + (3,), 180, np.uint8)
    color[box] = (150, 110, 70)
    T_world_camera = np.eye(4)
    T_world_camera[:3, :3] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])   # camera y = -z world
    table, idx = np.unique(depth, return_inverse=True)
    seed = 5
    packed = {f"s{seed}_rgb": color[None], f"s{seed}_depth_index": idx.reshape(depth.shape)[None].astype(np.uint32),
              f"s{seed}_depth_table": table, f"s{seed}_counted": box.astype(np.uint8)[None],
              f"s{seed}_T": T_world_camera[None], f"s{seed}_K": cam.K, f"s{seed}_keys": np.array(["0|1|5/0/3"])}
    try:
        sweep._load_views(packed, [seed])
        r = sweep.run_variant({})
        assert r["recalled"] == {"5/0/3": True}
        assert "error" in sweep.run_variant({"colour_growth_delta": -1.0})
    finally:
        sweep._VIEWS.clear()
