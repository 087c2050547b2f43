"""Geometric quality of a reconstructed mesh against ground truth.

Definitions (Knapitsch et al., "Tanks and Temples: benchmarking large-scale scene reconstruction",
SIGGRAPH 2017, F-score at a distance threshold ``tau``; accuracy/completeness as in
Mescheder/Peng-style mesh evaluation):

- ``d(p, S)``: distance from a point ``p`` to a reference set ``S`` (nearest point of a point
  set via ``scipy.spatial.cKDTree``, or the exact nearest point of a triangle surface).
- **accuracy** = mean over predicted samples ``p`` of ``d(p, GT)`` (meters; lower is better).
- **completeness** = mean over ground-truth samples ``g`` of ``d(g, prediction)`` (meters).
- **precision** = fraction of predicted samples with ``d(p, GT) < tau``.
- **recall** = fraction of ground-truth samples with ``d(g, prediction) < tau``.
- **F-score** = ``2 P R / (P + R)`` (0 when both are 0).

Which ground truth: the simulator writes ``scene/mesh.ply`` (the whole static scene) and
``scene/observed_points.ply`` (points of that surface seen by at least one frame). Accuracy and
precision use the full mesh (a predicted surface is right if it lies on any true surface);
completeness and recall use the observed points (surfaces no frame saw cannot be reconstructed
and must not count against the map).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "labeled_mesh_miou",
    "MeshSamples",
    "MeshMetrics",
    "triangle_areas",
    "sample_mesh_points",
    "nearest_distances",
    "point_to_mesh_distances",
    "compute_mesh_metrics",
    "evaluate_mesh",
    "evaluate_mesh_ply",
]

DEFAULT_DENSITY_PER_M2 = 10000.0  # ~1 cm sample spacing


@dataclass(frozen=True)
class MeshSamples:
    """Points sampled on a mesh surface.

    Shape: points (N, 3) float64; face_index (N,) int64 (the triangle each point lies on);
    labels (N,) (the sampled face's label) or None when no face labels were given.
    """

    points: np.ndarray
    face_index: np.ndarray
    labels: np.ndarray | None = None


@dataclass
class MeshMetrics:
    """Accuracy / completeness (meters), precision / recall / F-score (fractions) at ``threshold_m``.

    Shape: pred_to_gt_m (N_pred,), gt_to_pred_m (N_gt,) per-sample distances.
    """

    accuracy_m: float
    completeness_m: float
    precision: float
    recall: float
    fscore: float
    threshold_m: float
    accuracy_median_m: float
    completeness_median_m: float
    n_pred: int
    n_gt: int
    pred_to_gt_m: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    gt_to_pred_m: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def to_dict(self) -> dict:
        return dict(accuracy_m=self.accuracy_m, completeness_m=self.completeness_m,
                    precision=self.precision, recall=self.recall, fscore=self.fscore,
                    threshold_m=self.threshold_m, accuracy_median_m=self.accuracy_median_m,
                    completeness_median_m=self.completeness_median_m, n_pred=self.n_pred, n_gt=self.n_gt)


def _check_mesh(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"triangles must be (F, 3), got {f.shape}")
    if len(f) == 0:
        raise ValueError("mesh has no triangles")
    if f.min() < 0 or f.max() >= len(v):
        raise ValueError("triangle indices out of range")
    return v, f.astype(np.int64)


def _check_points(points: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3), got {p.shape}")
    if len(p) == 0:
        raise ValueError(f"{name} is empty")
    return p


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area of each triangle (m^2). Shape: vertices (V, 3), triangles (F, 3) -> (F,)."""
    v, f = _check_mesh(vertices, triangles)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def sample_mesh_points(
    vertices: np.ndarray,
    triangles: np.ndarray,
    n: int | None = None,
    density: float | None = None,
    rng: np.random.Generator | int | None = None,
    face_labels: np.ndarray | None = None,
    vertex_labels: np.ndarray | None = None,
) -> MeshSamples:
    """Sample points uniformly on the surface (triangles chosen with probability ~ area).

    Give exactly one of ``n`` (point count) or ``density`` (points per m^2). Labels: a sample
    takes its face's label (``face_labels``) or the label of the face corner with the largest
    barycentric weight (``vertex_labels``; the nearest corner on a well-shaped triangle); at most
    one of the two.
    Shape: vertices (V, 3), triangles (F, 3), face_labels (F,), vertex_labels (V,) ->
    MeshSamples (N, 3), (N,), (N,).
    """
    v, f = _check_mesh(vertices, triangles)
    if (n is None) == (density is None):
        raise ValueError("give exactly one of n or density")
    areas = triangle_areas(v, f)
    total = float(areas.sum())
    if total <= 0:
        raise ValueError("mesh has zero surface area")
    if density is not None:
        if density <= 0:
            raise ValueError(f"density must be positive, got {density}")
        n = max(1, int(round(total * density)))
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if face_labels is not None and vertex_labels is not None:
        raise ValueError("give face_labels or vertex_labels, not both")
    if vertex_labels is not None:
        vertex_labels = np.asarray(vertex_labels)
        if vertex_labels.shape != (len(v),):
            raise ValueError(f"vertex_labels must be ({len(v)},), got {vertex_labels.shape}")
    if face_labels is not None:
        face_labels = np.asarray(face_labels)
        if face_labels.shape != (len(f),):
            raise ValueError(f"face_labels must be ({len(f)},), got {face_labels.shape}")
    rng = np.random.default_rng(rng)
    face = rng.choice(len(f), size=int(n), p=areas / total)
    # Uniform barycentric sampling: fold the unit square onto the triangle.
    r1, r2 = rng.random(int(n)), rng.random(int(n))
    flip = r1 + r2 > 1.0
    r1[flip], r2[flip] = 1.0 - r1[flip], 1.0 - r2[flip]
    a, b, c = v[f[face, 0]], v[f[face, 1]], v[f[face, 2]]
    pts = a + r1[:, None] * (b - a) + r2[:, None] * (c - a)
    labels = None
    if face_labels is not None:
        labels = face_labels[face]
    elif vertex_labels is not None:
        corner = np.argmax(np.stack([1.0 - r1 - r2, r1, r2], axis=1), axis=1)
        labels = vertex_labels[f[face, corner]]
    return MeshSamples(points=pts, face_index=face.astype(np.int64), labels=labels)


def nearest_distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance from each query point to its nearest reference point (cKDTree).

    Shape: query (N, 3), reference (M, 3) -> (N,).
    """
    q = _check_points(query, "query points")
    r = _check_points(reference, "reference points")
    d, _ = cKDTree(r).query(q, k=1, workers=-1)
    return np.asarray(d, dtype=np.float64)


def point_to_mesh_distances(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Exact unsigned distance from each point to the nearest point of a triangle surface (Open3D).

    Shape: points (N, 3), vertices (V, 3), triangles (F, 3) -> (N,).
    """
    import open3d as o3d  # lazy: heavy, and absent on the GPU machine

    p = _check_points(points, "points")
    v, f = _check_mesh(vertices, triangles)
    # Open3D works in float32: subtract the mesh centre so far-from-origin scenes keep precision.
    centre = v.mean(axis=0)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor((v - centre).astype(np.float32)),
                        o3d.core.Tensor(f.astype(np.uint32)))
    d = scene.compute_distance(o3d.core.Tensor((p - centre).astype(np.float32)))
    return d.numpy().astype(np.float64)


def _metrics_from_distances(d_pred: np.ndarray, d_gt: np.ndarray, threshold_m: float) -> MeshMetrics:
    precision = float(np.mean(d_pred < threshold_m))
    recall = float(np.mean(d_gt < threshold_m))
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return MeshMetrics(
        accuracy_m=float(np.mean(d_pred)), completeness_m=float(np.mean(d_gt)),
        precision=precision, recall=recall, fscore=float(fscore), threshold_m=float(threshold_m),
        accuracy_median_m=float(np.median(d_pred)), completeness_median_m=float(np.median(d_gt)),
        n_pred=len(d_pred), n_gt=len(d_gt), pred_to_gt_m=d_pred, gt_to_pred_m=d_gt,
    )


def compute_mesh_metrics(
    pred_points: np.ndarray,
    gt_points: np.ndarray,
    threshold_m: float = 0.05,
    gt_points_completeness: np.ndarray | None = None,
) -> MeshMetrics:
    """Accuracy, completeness, precision, recall and F-score between point sets (module docstring).

    ``gt_points`` is the reference for accuracy/precision; completeness/recall use
    ``gt_points_completeness`` when given (e.g. the observed points), else ``gt_points``.
    Shape: pred_points (N, 3), gt_points (M, 3), gt_points_completeness (K, 3).
    """
    if not threshold_m > 0:
        raise ValueError(f"threshold_m must be positive, got {threshold_m}")
    pred = _check_points(pred_points, "pred_points")
    gt = _check_points(gt_points, "gt_points")
    gt_c = gt if gt_points_completeness is None else _check_points(gt_points_completeness,
                                                                  "gt_points_completeness")
    return _metrics_from_distances(nearest_distances(pred, gt), nearest_distances(gt_c, pred), threshold_m)


def evaluate_mesh(
    pred_vertices: np.ndarray,
    pred_triangles: np.ndarray,
    gt_vertices: np.ndarray,
    gt_triangles: np.ndarray,
    gt_points: np.ndarray | None = None,
    threshold_m: float = 0.05,
    density: float = DEFAULT_DENSITY_PER_M2,
    seed: int = 0,
    distance: str = "surface",
) -> MeshMetrics:
    """Evaluate a predicted mesh against a ground-truth mesh (+ optional observed GT points).

    Both meshes are sampled at ``density`` points/m^2. ``distance="surface"`` measures to the
    other mesh's exact surface (no sampling bias; needs Open3D); ``"points"`` measures to the other
    mesh's samples with a k-d tree (bias of about half the sample spacing). ``gt_points`` replaces
    the GT samples for completeness/recall (see module docstring).
    Shape: vertices (V, 3), triangles (F, 3), gt_points (K, 3).
    """
    if distance not in ("surface", "points"):
        raise ValueError(f"distance must be 'surface' or 'points', got {distance!r}")
    if not threshold_m > 0:
        raise ValueError(f"threshold_m must be positive, got {threshold_m}")
    rng = np.random.default_rng(seed)
    pred_s = sample_mesh_points(pred_vertices, pred_triangles, density=density, rng=rng).points
    gt_c = (sample_mesh_points(gt_vertices, gt_triangles, density=density, rng=rng).points
            if gt_points is None else _check_points(gt_points, "gt_points"))
    if distance == "surface":
        d_pred = point_to_mesh_distances(pred_s, gt_vertices, gt_triangles)
        d_gt = point_to_mesh_distances(gt_c, pred_vertices, pred_triangles)
        return _metrics_from_distances(d_pred, d_gt, threshold_m)
    gt_s = sample_mesh_points(gt_vertices, gt_triangles, density=density, rng=rng).points
    return compute_mesh_metrics(pred_s, gt_s, threshold_m, gt_points_completeness=gt_c)


def evaluate_mesh_ply(
    pred_path: str | Path,
    gt_path: str | Path,
    gt_points_path: str | Path | None = None,
    threshold_m: float = 0.05,
    density: float = DEFAULT_DENSITY_PER_M2,
    seed: int = 0,
    distance: str = "surface",
) -> MeshMetrics:
    """:func:`evaluate_mesh` on PLY files (a predicted mesh, a GT mesh, optional GT observed points).

    Shape: files hold (V, 3) vertices and (F, 3) faces; the points file holds (K, 3) vertices.
    """
    from metric_semantic_slam.io.ply import read_ply

    pred = read_ply(pred_path)
    gt = read_ply(gt_path)
    for name, ply in (("predicted", pred), ("ground-truth", gt)):
        if ply.faces is None or len(ply.faces) == 0:
            raise ValueError(f"{name} PLY has no faces: {pred_path if ply is pred else gt_path}")
    gt_points = None if gt_points_path is None else read_ply(gt_points_path).vertices
    return evaluate_mesh(pred.vertices, pred.faces, gt.vertices, gt.faces, gt_points=gt_points,
                         threshold_m=threshold_m, density=density, seed=seed, distance=distance)


def labeled_mesh_miou(vertices: np.ndarray, triangles: np.ndarray, vertex_classes: np.ndarray,
                      gt_points: np.ndarray, gt_labels: np.ndarray, max_dist_m: float = 0.05,
                      density: float = DEFAULT_DENSITY_PER_M2, seed: int = 1):
    """3D mIoU of a mesh's vertex classes against labeled ground-truth points.

    The predicted surface is sampled (each sample takes its nearest corner's class), because the
    vertices alone can be sparser than ``max_dist_m``; then :func:`~.semantic_metrics.miou_3d`.
    Shape: vertices (V, 3), triangles (F, 3), vertex_classes (V,), gt_points (M, 3), gt_labels (M,).
    """
    from .semantic_metrics import miou_3d

    s = sample_mesh_points(vertices, triangles, density=density, rng=seed, vertex_labels=vertex_classes)
    return miou_3d(s.points, s.labels, gt_points, gt_labels, max_dist_m=max_dist_m)
