"""``msslam reconstruct INPUT --output DIR``: offline pipeline over a folder or a bag."""
from __future__ import annotations

import argparse
import logging

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "reconstruct",
        help="run the pipeline offline on a TUM/simulator/dataset folder or a bag",
        description="Reconstruct a sequence offline: writes mesh.ply, trajectory.txt, mesh.png and "
                    "metrics.json (mesh F-score / ATE when the input has ground truth).",
    )
    p.add_argument("input", help="TUM-style or simulator folder, 3DMatch/ICL folder, rosbag2 dir/.mcap/.db3, ROS 1 .bag")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument("--voxel-size", type=float, default=0.04, help="TSDF voxel size in meters (default 0.04)")
    p.add_argument("--truncation-voxels", type=float, default=4.0, help="truncation in voxels (default 4)")
    p.add_argument("--depth-max", type=float, default=5.0, help="ignore depth beyond this, meters (default 5)")
    p.add_argument("--odometry", default="ground_truth",
                   help="pose source: ground_truth, or vio (dense RGB-D + gyro tracking); default ground_truth")
    p.add_argument("--mapper", default="semantic", choices=["semantic", "open3d"],
                   help="mapping backend: semantic (torch voxel mapper, classes + instances) or open3d "
                        "(VoxelBlockGrid, geometry + color); default semantic")
    p.add_argument("--labels", default="none",
                   choices=["none", "ground_truth", "oracle", "geometric", "builtin", "torchscript", "onnx"],
                   help="per-pixel labels fused into the map: none; ground_truth (the input's labels, "
                        "simulator only); oracle (ground truth + --oracle-noise); geometric (model-free planes + "
                        "objects from depth); builtin (the bundled network); torchscript / onnx (your model: "
                        "--panoptic-model + --panoptic-adapter)")
    p.add_argument("--panoptic-model", default=None, help="model file for --labels torchscript / onnx")
    p.add_argument("--panoptic-adapter", default=None,
                   help="adapter YAML describing the model's input and outputs (core/panoptic/model.py)")
    p.add_argument("--oracle-noise", type=float, default=0.0,
                   help="fraction of segments --labels oracle relabels wrongly (default 0)")
    p.add_argument("--device", default="auto", help="torch device for the semantic mapper (auto, cpu, cuda)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on 2 shared cores more threads contend and run slower)")
    p.add_argument("--max-frames", type=int, default=None, help="use at most this many frames")
    p.add_argument("--stride", type=int, default=1, help="use every k-th frame")
    p.add_argument("--threshold", type=float, default=0.05, help="F-score distance threshold in meters")
    p.add_argument("--no-picture", action="store_true", help="skip the PNG render")
    p.add_argument("--view", choices=["oblique", "top", "principal", "trajectory"], default=None,
                   help="picture viewpoint (default: oblique for simulator worlds, else from the first camera)")
    return p


def run(args: argparse.Namespace) -> int:
    from ..pipeline.mapping_open3d import TsdfMapperConfig
    from ..pipeline.pipeline import PipelineConfig
    from ..pipeline.reconstruct import reconstruct

    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(name)s: %(message)s")
    import torch

    torch.set_num_threads(max(1, args.threads))
    config = PipelineConfig(
        odometry=args.odometry,
        mapper=args.mapper,
        labels=args.labels,
        panoptic_model=args.panoptic_model,
        panoptic_adapter=args.panoptic_adapter,
        oracle_noise=args.oracle_noise,
        device=args.device,
        mapping=TsdfMapperConfig(voxel_size_m=args.voxel_size, truncation_voxels=args.truncation_voxels,
                                 depth_max_m=args.depth_max),
    )
    try:
        config.validate()
    except ValueError as e:
        print(f"msslam reconstruct: {e}")
        return 2
    if config.labels in ("builtin", "torchscript", "onnx"):
        from ..core.panoptic import make_backend

        options = {"device": config.device}
        if config.labels != "builtin":
            options.update(model_path=config.panoptic_model, adapter_path=config.panoptic_adapter)
        try:  # fail early with a message: missing weights, a model file that does not load
            make_backend(config.labels, **options)
        except (ValueError, ImportError, FileNotFoundError) as e:
            print(f"msslam reconstruct: labels {config.labels}: {e}")
            return 2
    res = reconstruct(args.input, args.output, config, max_frames=args.max_frames, stride=args.stride,
                      picture=not args.no_picture, f_score_threshold_m=args.threshold, view=args.view)
    m = res.metrics
    print(f"frames: {res.frames_mapped}/{res.frames_total} mapped, {1000 * res.seconds_per_frame:.1f} ms/frame")
    print(f"mesh: {res.mesh_vertices} vertices -> {res.mesh_path}")
    print(f"trajectory -> {res.trajectory_path}")
    if res.picture_path:
        print(f"picture -> {res.picture_path}")
    if "mesh" in m:
        mm = m["mesh"]
        print(f"mesh vs ground truth @ {args.threshold * 100:.0f} cm: F-score {mm['fscore']:.3f} "
              f"(precision {mm['precision']:.3f}, recall {mm['recall']:.3f}), "
              f"accuracy {100 * mm['accuracy_m']:.2f} cm, completeness {100 * mm['completeness_m']:.2f} cm")
    if "semantic_3d" in m:
        print(f"3D mIoU of the mesh labels vs ground truth: {m['semantic_3d']['miou']:.3f}")
    if "ate_rmse_m" in m:
        print(f"ATE RMSE (SE3-aligned) vs ground truth: {100 * m['ate_rmse_m']:.3f} cm")
    print(f"metrics -> {res.metrics_path}")
    return 0
