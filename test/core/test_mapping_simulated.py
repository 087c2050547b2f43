"""The mapper on a small simulated sequence: geometry, 30%-noise label fusion, instances."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.mapping import MapperConfig, SemanticVoxelMapper
from metric_semantic_slam.eval.mesh_metrics import evaluate_mesh
from metric_semantic_slam.eval.semantic_metrics import compute_miou, miou_3d
from metric_semantic_slam.io.ply import read_ply
from metric_semantic_slam.io.sequence import open_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_mapper import corrupt_labels, instance_recall  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from metric_semantic_slam.sim.simulate import simulate

    sim = simulate(tmp_path_factory.mktemp("sim") / "seq", seed=2, frames=16, width=240, height=180,
                   write_bag=False, verbose=False)
    seq = open_sequence(sim)
    frames = list(seq)
    labels = load_label_space(seq.label_space_path)
    allowed = np.array([lab.id for lab in labels.labels if lab.id > 0 and not lab.is_private and not lab.is_dynamic])
    rng = np.random.default_rng(0)
    noisy = [corrupt_labels(f.gt.semantic, 0.3, allowed, rng) for f in frames]
    m = SemanticVoxelMapper(MapperConfig(device="cpu"))
    for f, s in zip(frames, noisy):
        m.integrate(f.depth_m, f.color, f.camera, f.gt.T_world_camera, semantic=s, instance=f.gt.instance)
    return sim, frames, noisy, labels, m


def test_corrupt_labels_rate():
    rng = np.random.default_rng(1)
    sem = np.full((100, 100), 2, np.uint16)
    out = corrupt_labels(sem, 0.3, np.array([1, 2, 3, 4]), rng)
    assert abs(np.mean(out != sem) - 0.3) < 0.02 and set(np.unique(out)) <= {1, 2, 3, 4}


def test_geometry_with_noisy_depth(run):
    sim, _, _, _, m = run
    mesh = m.extract_mesh()
    gt = read_ply(sim / "scene" / "mesh.ply")
    obs = read_ply(sim / "scene" / "observed_points.ply")
    r = evaluate_mesh(mesh.vertices, mesh.triangles, gt.vertices, gt.faces, gt_points=obs.vertices,
                      threshold_m=0.05, distance="points", density=2000.0)
    assert r.accuracy_m < 0.015 and r.precision > 0.95


def test_fused_labels_beat_the_noisy_input_by_15_points(run):
    sim, frames, noisy, labels, m = run
    c = labels.max_id + 1
    miou_2d = compute_miou(np.stack([f.gt.semantic for f in frames]), np.stack(noisy), num_classes=c).miou
    obs = read_ply(sim / "scene" / "observed_points.ply")
    cloud = m.extract_point_cloud()
    miou3 = miou_3d(cloud.points, cloud.classes, obs.vertices, obs.vertex_props["class"].astype(np.int64),
                    max_dist_m=0.06, num_classes=c).miou
    assert miou3 - miou_2d >= 0.15, (miou3, miou_2d)


def test_most_objects_become_one_instance_of_the_right_class(run):
    sim, _, _, _, m = run
    obs = read_ply(sim / "scene" / "observed_points.ply")
    objects = json.loads((sim / "scene" / "objects.json").read_text())["objects"]
    rate, n = instance_recall(m, objects, {"points": obs.vertices,
                                           "instance": obs.vertex_props["instance"].astype(np.int64)})
    assert n >= 3 and rate >= 0.7, (rate, n)
