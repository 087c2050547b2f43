"""Mesh accuracy / completeness / F-score on analytic scenes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.eval.mesh_metrics import (
    compute_mesh_metrics,
    evaluate_mesh,
    evaluate_mesh_ply,
    nearest_distances,
    point_to_mesh_distances,
    sample_mesh_points,
    triangle_areas,
)
from metric_semantic_slam.io.ply import write_ply


def _plane(size: float = 1.0, n: int = 10, z: float = 0.0, x0: float = 0.0):
    """A size x size grid of 2 n^2 triangles in the plane z, starting at x = x0."""
    g = np.linspace(0.0, size, n + 1)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    v = np.stack([xx.ravel() + x0, yy.ravel(), np.full(xx.size, z)], axis=1)
    idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return v, f


def test_sampling_is_area_weighted_and_on_surface():
    v1, f1 = _plane(1.0, 2)
    v2, f2 = _plane(2.0, 2, x0=5.0)  # 4x the area
    v = np.concatenate([v1, v2])
    f = np.concatenate([f1, f2 + len(v1)])
    labels = np.r_[np.full(len(f1), 1), np.full(len(f2), 2)]
    s = sample_mesh_points(v, f, n=20000, rng=0, face_labels=labels)
    assert s.points.shape == (20000, 3) and np.allclose(s.points[:, 2], 0.0)
    frac_big = np.mean(s.labels == 2)
    assert frac_big == pytest.approx(0.8, abs=0.02)
    np.testing.assert_array_equal(s.labels, labels[s.face_index])
    # Density gives total area * density points.
    assert len(sample_mesh_points(v, f, density=1000, rng=0).points) == 5000
    assert triangle_areas(v, f).sum() == pytest.approx(5.0)


def test_sampling_rejects_bad_input():
    v, f = _plane()
    with pytest.raises(ValueError, match="exactly one"):
        sample_mesh_points(v, f)
    with pytest.raises(ValueError, match="out of range"):
        sample_mesh_points(v, f + 1000, n=10)


def test_plane_shifted_by_2cm():
    v, f = _plane(1.0, 10)
    gt = sample_mesh_points(v, f, density=20000, rng=0).points
    pred = gt[:5000] + np.array([0.0, 0.0, 0.02])
    m5 = compute_mesh_metrics(pred, gt, threshold_m=0.05)
    # KD-tree distances to a ~7 mm sampling are a little above the true 2 cm.
    assert m5.accuracy_m == pytest.approx(0.02, abs=0.002)
    assert m5.completeness_m == pytest.approx(0.02, abs=0.004)
    assert m5.fscore == 1.0 and m5.precision == 1.0 and m5.recall == 1.0
    m1 = compute_mesh_metrics(pred, gt, threshold_m=0.01)
    assert m1.precision == 0.0 and m1.recall == 0.0 and m1.fscore == 0.0


def test_plane_shifted_exact_surface_distance():
    v, f = _plane(1.0, 4)
    vs = v + np.array([0.0, 0.0, 0.02])
    m = evaluate_mesh(vs, f, v, f, threshold_m=0.05, density=2000, distance="surface")
    assert m.accuracy_m == pytest.approx(0.02, abs=1e-6)
    assert m.completeness_m == pytest.approx(0.02, abs=1e-6)
    assert m.fscore == 1.0
    assert evaluate_mesh(vs, f, v, f, threshold_m=0.01, density=2000).fscore == 0.0
    # Far from the origin float32 would lose precision without re-centring.
    far = np.array([1000.0, -2000.0, 50.0])
    d = point_to_mesh_distances(v[:5] + far + [0, 0, 0.003], v + far, f)
    np.testing.assert_allclose(d, 0.003, atol=2e-5)


def test_quarter_plane_prediction_completeness_and_observed_points():
    v, f = _plane(2.0, 8)
    part_v, part_f = _plane(1.0, 4)  # the [0, 1]^2 quarter only
    m = evaluate_mesh(part_v, part_f, v, f, threshold_m=0.05, density=4000, seed=1)
    assert m.precision == 1.0 and m.accuracy_m < 1e-6
    # A 5 cm band past the two inner edges (and a quarter disc at the corner) counts too.
    expected = (1.0 + 2 * 0.05 + np.pi * 0.05**2 / 4) / 4.0
    assert m.recall == pytest.approx(expected, abs=0.01)
    assert m.completeness_m > 0.1
    # When only the quarter that was predicted was observed, completeness is perfect.
    rng = np.random.default_rng(2)
    observed = np.c_[rng.random((3000, 2)) * [1.0, 2.0], np.zeros(3000)]
    observed = observed[observed[:, 1] <= 1.0]  # x already in [0, 1]
    m_obs = evaluate_mesh(part_v, part_f, v, f, gt_points=observed, threshold_m=0.05, density=4000)
    assert m_obs.recall == 1.0 and m_obs.fscore == 1.0 and m_obs.completeness_m < 1e-6


def test_points_mode_and_ply_round_trip(tmp_path: Path):
    v, f = _plane(1.0, 4)
    pred = write_ply(tmp_path / "pred.ply", v + [0, 0, 0.02], f)
    gt = write_ply(tmp_path / "gt.ply", v, f)
    obs = write_ply(tmp_path / "obs.ply", sample_mesh_points(v, f, n=500, rng=0).points)
    m = evaluate_mesh_ply(pred, gt, obs, threshold_m=0.05, density=5000, distance="points")
    assert m.fscore == 1.0 and 0.019 < m.accuracy_m < 0.025
    assert m.n_gt == 500
    with pytest.raises(ValueError, match="has no faces"):
        evaluate_mesh_ply(obs, gt)


def test_nearest_distances_exact():
    ref = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    q = np.array([[0.2, 0, 0], [0.9, 0.1, 0]])
    np.testing.assert_allclose(nearest_distances(q, ref), [0.2, np.hypot(0.1, 0.1)])
    with pytest.raises(ValueError, match="threshold"):
        compute_mesh_metrics(q, ref, threshold_m=0.0)


def test_vertex_labels_go_to_nearest_corner():
    # Equilateral: the largest-barycentric-weight regions are exactly the nearest-corner regions.
    v = np.array([[0.0, 0, 0], [1.0, 0, 0], [0.5, np.sqrt(3) / 2, 0]])
    f = np.array([[0, 1, 2]])
    s = sample_mesh_points(v, f, n=3000, rng=0, vertex_labels=np.array([5, 6, 7]))
    nearest = np.argmin(np.linalg.norm(s.points[:, None, :] - v[None], axis=2), axis=1)
    assert np.mean(s.labels == np.array([5, 6, 7])[nearest]) > 0.999
    assert set(np.unique(s.labels)) == {5, 6, 7}
    with pytest.raises(ValueError, match="not both"):
        sample_mesh_points(v, f, n=3, face_labels=np.array([1]), vertex_labels=np.array([1, 2, 3]))
