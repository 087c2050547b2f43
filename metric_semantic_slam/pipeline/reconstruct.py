"""Offline reconstruction: any input sequence -> mesh PLY, trajectory, picture, metrics."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..io.ply import write_ply
from .pipeline import Pipeline, PipelineConfig

__all__ = ["ReconstructionResult", "reconstruct"]

log = logging.getLogger(__name__)


@dataclass
class ReconstructionResult:
    """Paths written and numbers measured by :func:`reconstruct`."""

    output_dir: Path
    mesh_path: Path
    trajectory_path: Path
    picture_path: Path | None
    metrics_path: Path
    frames_total: int
    frames_mapped: int
    seconds_per_frame: float
    mesh_vertices: int
    metrics: dict = field(default_factory=dict)


def _evaluate_against_ground_truth(sequence_path: Path, mesh, stamps: np.ndarray, poses: np.ndarray,
                                   gt_trajectory, threshold_m: float) -> dict:
    """Mesh F-score (and 3D mIoU of a labeled mesh) when the input has a ground-truth scene (the
    simulator), and ATE when it has GT poses."""
    metrics: dict = {}
    scene = sequence_path / "scene"
    if (scene / "mesh.ply").is_file():
        from ..eval.mesh_metrics import evaluate_mesh, labeled_mesh_miou
        from ..io.ply import read_ply

        gt_mesh = read_ply(scene / "mesh.ply")
        obs = read_ply(scene / "observed_points.ply") if (scene / "observed_points.ply").is_file() else None
        # Vertices as stored in mesh.ply (float32), so `msslam eval` on the files gives the same numbers.
        vertices = mesh.vertices.astype(np.float32)
        mm = evaluate_mesh(vertices, mesh.triangles, gt_mesh.vertices, gt_mesh.faces,
                           gt_points=None if obs is None else obs.vertices, threshold_m=threshold_m)
        metrics["mesh"] = mm.to_dict()
        if mesh.classes is not None and np.any(mesh.classes > 0) and obs is not None and "class" in obs.vertex_props:
            res = labeled_mesh_miou(vertices, mesh.triangles, mesh.classes, obs.vertices, obs.vertex_props["class"],
                                    max_dist_m=threshold_m)
            metrics["semantic_3d"] = res.to_dict()
    if gt_trajectory is not None and len(stamps):
        from ..eval.trajectory_metrics import compute_ate
        from ..io.trajectory import Trajectory

        ate = compute_ate(gt_trajectory, Trajectory(stamps_s=stamps, T_world_camera=poses), align="se3")
        metrics["ate_rmse_m"] = float(ate.rmse)
    return metrics


def reconstruct(input_path: str | Path, output_dir: str | Path, config: PipelineConfig = PipelineConfig(),
                max_frames: int | None = None, stride: int = 1, picture: bool = True,
                f_score_threshold_m: float = 0.05, progress: bool = True,
                view: str | None = None) -> ReconstructionResult:
    """Run the pipeline over a TUM/simulator/dataset folder or a bag and write the results.

    Writes into ``output_dir``: ``mesh.ply`` (vertex colors, plus ``class``/``instance`` vertex
    properties when the mapper keeps labels), ``trajectory.txt`` (TUM format,
    ``T_world_camera``), ``mesh.png`` (a render of the mesh), ``mesh_semantic.png`` (colored by
    class, when the map has labels) and ``metrics.json``.
    """
    from tqdm import tqdm

    from ..io.sequence import open_sequence
    from ..io.trajectory import write_tum_trajectory

    input_path = Path(input_path)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    seq = open_sequence(input_path, max_frames=max_frames, stride=stride)
    pipeline = Pipeline(config)
    t0 = time.perf_counter()
    n = 0
    for frame in tqdm(seq, total=len(seq), desc=f"reconstruct {seq.name}", unit="frame", disable=not progress):
        pipeline.step(frame)
        n += 1
    elapsed = time.perf_counter() - t0
    stamps, poses = pipeline.trajectory()
    mesh = pipeline.mesh()

    labels = {} if mesh.classes is None else {"class": mesh.classes.astype(np.uint16),
                                              "instance": mesh.instances.astype(np.uint32)}
    mesh_path = write_ply(out / "mesh.ply", mesh.vertices, mesh.triangles, vertex_colors=mesh.colors,
                          vertex_props=labels)
    traj_path = out / "trajectory.txt"
    write_tum_trajectory(traj_path, stamps, poses)

    pic_path = None
    if picture and len(mesh.triangles):
        from ..eval.render import save_mesh_png

        # Simulator worlds are z-up; real datasets are not gravity-aligned, so frame them from the
        # first camera pose instead.
        if view is None:
            view = "oblique" if (input_path / "sim_config.json").is_file() else "trajectory"
        start = poses[0] if len(poses) else None
        pic_path = save_mesh_png((mesh.vertices, mesh.triangles, mesh.colors), out / "mesh.png", view=view,
                                 T_world_start=start)
        if mesh.classes is not None and np.any(mesh.classes > 0):
            from ..core.labels import load_label_space

            class_colors = load_label_space(seq.label_space_path).colorize(mesh.classes[None])[0]
            save_mesh_png((mesh.vertices, mesh.triangles, class_colors), out / "mesh_semantic.png", view=view,
                          T_world_start=start)

    metrics = {
        "input": str(input_path),
        "frames_total": n,
        "frames_mapped": pipeline.counts["ok"],
        "frames_skipped": {k: v for k, v in pipeline.counts.items() if k != "ok"},
        "seconds_per_frame": elapsed / max(n, 1),
        "mesh_vertices": int(len(mesh.vertices)),
        "mesh_triangles": int(len(mesh.triangles)),
        "config": {"odometry": config.odometry, "mapper": config.mapper, "labels": config.labels,
                   **asdict(config.mapping)},
    }
    metrics.update(_evaluate_against_ground_truth(input_path if input_path.is_dir() else input_path.parent,
                                                  mesh, stamps, poses, seq.gt_trajectory(),
                                                  f_score_threshold_m))
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2))
    return ReconstructionResult(
        output_dir=out, mesh_path=mesh_path, trajectory_path=traj_path, picture_path=pic_path,
        metrics_path=metrics_path, frames_total=n, frames_mapped=pipeline.counts["ok"],
        seconds_per_frame=elapsed / max(n, 1), mesh_vertices=int(len(mesh.vertices)), metrics=metrics,
    )
