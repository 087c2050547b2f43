"""``msslam eval``: trajectory error (ATE/RPE), mesh accuracy/completeness/F-score, 3D semantic mIoU.

Prints a table (ATE/RPE with 9 decimals, so numbers compare with evo to 1e-6) and, with
``--output DIR``, writes ``metrics.json`` plus pictures: ``trajectory.png`` (top view + error per
pose), ``mesh_error.png`` (predicted mesh colored by distance to the ground truth),
``mesh.png`` (the predicted mesh in its own colors) and ``confusion_3d.png`` when labels exist.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..eval.machine import has_module

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``eval`` verb."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate a trajectory (ATE/RPE) and/or a mesh (accuracy, completeness, F-score, 3D mIoU)",
        description="Compare an estimated TUM trajectory with ground truth (evo-compatible ATE/RPE) "
        "and/or a predicted mesh PLY with a ground-truth mesh (and the simulator's observed points).",
    )
    g = p.add_argument_group("trajectory")
    g.add_argument("--gt", type=Path, help="ground-truth TUM trajectory (t tx ty tz qx qy qz qw)")
    g.add_argument("--est", type=Path, help="estimated TUM trajectory")
    g.add_argument("--align", choices=("se3", "sim3", "origin", "none"), default="se3",
                   help="alignment of the estimate before ATE (default: se3, Umeyama)")
    g.add_argument("--max-diff", type=float, default=0.01,
                   help="max. timestamp difference for association, seconds (default 0.01, as evo)")
    g.add_argument("--rpe-delta", type=float, default=1, help="RPE pair distance (default 1)")
    g.add_argument("--rpe-unit", choices=("frames", "meters"), default="frames",
                   help="unit of --rpe-delta (default frames)")
    g.add_argument("--plot-plane", choices=("xy", "xz", "yz", "auto"), default="xy",
                   help="projection of the trajectory plot (auto: principal plane of the GT)")
    m = p.add_argument_group("mesh")
    m.add_argument("--mesh", type=Path, help="predicted mesh PLY (optional vertex 'class' for 3D mIoU)")
    m.add_argument("--gt-mesh", type=Path, help="ground-truth mesh PLY (e.g. scene/mesh.ply)")
    m.add_argument("--gt-points", type=Path,
                   help="ground-truth observed points PLY (scene/observed_points.ply): used for "
                   "completeness/recall and as 3D label ground truth")
    m.add_argument("--threshold", type=float, default=0.05,
                   help="distance threshold for precision/recall/F-score and error colors, meters")
    m.add_argument("--density", type=float, default=10000.0, help="mesh samples per square meter")
    m.add_argument("--mesh-distance", choices=("auto", "surface", "points"), default="auto",
                   help="distance to the other mesh's exact surface (needs Open3D) or to its samples; auto "
                   "(default): surface where Open3D imports, else points")
    m.add_argument("--view", choices=("oblique", "top", "principal", "trajectory"), default="oblique",
                   help="camera of the mesh pictures (trajectory: behind the first GT pose)")
    p.add_argument("--output", type=Path, help="folder for metrics.json and PNGs")
    p.add_argument("--no-pictures", action="store_true",
                   help="write metrics.json only (no PNGs; also without matplotlib, which the plots need)")
    p.add_argument("--title", default=None, help="title for the plots")
    p.set_defaults(func=run)
    return p


def _stats_line(name: str, stats, unit: str, fmt: str = "%.9f") -> str:
    vals = "  ".join(f"{k} {fmt % getattr(stats, k)}" for k in ("rmse", "mean", "median", "std", "min", "max"))
    return f"{name:<28s} [{unit}]  {vals}"


def _eval_trajectory(args: argparse.Namespace, out: dict, lines: list[str]):
    from ..eval.trajectory_metrics import ErrorStats, compute_ate, compute_rpe
    from ..io.trajectory import read_tum_trajectory

    gt = read_tum_trajectory(args.gt)
    est = read_tum_trajectory(args.est)
    for name, traj, path in (("ground truth", gt, args.gt), ("estimate", est, args.est)):
        if len(traj) == 0:
            raise ValueError(f"{name} trajectory {path} has no poses")
    ate = compute_ate(gt, est, align=args.align, max_diff_s=args.max_diff)
    rpe = compute_rpe(gt, est, delta=args.rpe_delta, delta_unit=args.rpe_unit, max_diff_s=args.max_diff)
    out["trajectory"] = {"ate": ate.to_dict(), "rpe": rpe.to_dict(), "gt_poses": len(gt), "est_poses": len(est)}
    lines.append(f"trajectory: {ate.matched} of {len(est)} estimated poses matched to {len(gt)} GT poses "
                 f"(max diff {args.max_diff} s), alignment {args.align}"
                 + (f", scale {ate.alignment.scale:.9f}" if args.align == "sim3" else ""))
    lines.append(_stats_line("ATE translation", ate.stats, "m"))
    lines.append(_stats_line("ATE rotation", ErrorStats.of(ate.rotation_errors_deg), "deg", "%.6f"))
    unit = "frames" if args.rpe_unit == "frames" else "m"
    lines.append(_stats_line(f"RPE translation (d={args.rpe_delta:g} {unit})", rpe.translation, "m"))
    lines.append(_stats_line(f"RPE rotation (d={args.rpe_delta:g} {unit})", rpe.rotation_deg, "deg"))
    return gt, ate


def _eval_mesh(args: argparse.Namespace, out: dict, lines: list[str], gt_traj, written: list[Path],
               pictures: bool) -> None:
    from ..eval.mesh_metrics import evaluate_mesh, labeled_mesh_miou, sample_mesh_points
    from ..eval.render import error_colored_mesh, save_mesh_png
    from ..io.ply import read_ply

    pred = read_ply(args.mesh)
    gt = read_ply(args.gt_mesh)
    for name, ply, path in (("predicted", pred, args.mesh), ("ground-truth", gt, args.gt_mesh)):
        if ply.faces is None or len(ply.faces) == 0:
            raise ValueError(f"{name} mesh {path} has no faces")
    gt_pts = read_ply(args.gt_points) if args.gt_points else None
    distance = args.mesh_distance
    if distance == "auto":
        distance = "surface" if has_module("open3d") else "points"
    mm = evaluate_mesh(pred.vertices, pred.faces, gt.vertices, gt.faces,
                       gt_points=None if gt_pts is None else gt_pts.vertices, threshold_m=args.threshold,
                       density=args.density, distance=distance)
    out["mesh"] = mm.to_dict() | {"distance": distance,
                                  "completeness_reference": "gt_points" if gt_pts is not None else "gt_mesh"}
    lines.append(f"mesh: {len(pred.vertices)} vertices / {len(pred.faces)} faces vs GT "
                 f"{len(gt.faces)} faces; completeness vs {out['mesh']['completeness_reference']}; distances to "
                 + ("the other mesh's surface" if distance == "surface" else
                    f"the other mesh's samples ({args.density:g} per m^2)"
                    + ("" if args.mesh_distance == "points" else ": no Open3D")))
    lines.append(f"{'mesh accuracy':<28s} [m]  mean {mm.accuracy_m:.6f}  median {mm.accuracy_median_m:.6f}")
    lines.append(f"{'mesh completeness':<28s} [m]  mean {mm.completeness_m:.6f}  median {mm.completeness_median_m:.6f}")
    lines.append(f"{'mesh @ %.3f m' % args.threshold:<28s}      precision {mm.precision:.4f}  "
                 f"recall {mm.recall:.4f}  F-score {mm.fscore:.4f}")

    # 3D semantics when the prediction carries labels and the ground truth has them too.
    conf = None
    if "class" in pred.vertex_props:
        if gt_pts is not None and "class" in gt_pts.vertex_props:
            gt_lab_pts, gt_lab = gt_pts.vertices, gt_pts.vertex_props["class"]
        elif "class" in gt.face_props:
            s = sample_mesh_points(gt.vertices, gt.faces, density=args.density, rng=0,
                                   face_labels=gt.face_props["class"])
            gt_lab_pts, gt_lab = s.points, s.labels
        else:
            gt_lab_pts = None
        if gt_lab_pts is not None:
            sem = labeled_mesh_miou(pred.vertices, pred.faces, pred.vertex_props["class"], gt_lab_pts, gt_lab,
                                    max_dist_m=args.threshold, density=args.density)
            out["semantic_3d"] = sem.to_dict() | {"max_dist_m": args.threshold}
            conf = sem.confusion
            lines.append(f"{'3D semantic mIoU':<28s}      mIoU {sem.miou:.4f} over {len(sem.per_class_iou)} classes")

    if pictures:
        T_start = gt_traj.T_world_camera[0] if gt_traj is not None else None
        if args.view == "trajectory" and T_start is None:
            raise ValueError("--view trajectory needs --gt")
        err = error_colored_mesh(pred.vertices, gt_vertices=gt.vertices, gt_triangles=gt.faces,
                                 threshold_m=args.threshold)
        written.append(save_mesh_png((pred.vertices, pred.faces), args.output / "mesh_error.png",
                                     vertex_colors=err.colors, view=args.view, T_world_start=T_start,
                                     colorbar=err))
        written.append(save_mesh_png(pred, args.output / "mesh.png", view=args.view, T_world_start=T_start))
        if conf is not None:
            from ..core.labels import default_label_space_path, load_label_space
            from ..eval.plots import plot_confusion_matrix

            try:
                space = load_label_space(default_label_space_path())
                names = {lab.id: lab.name for lab in space.labels}
            except (OSError, ValueError):
                names = None  # plot ids only when no label space file is installed
            written.append(plot_confusion_matrix(conf, args.output / "confusion_3d.png", class_names=names,
                                                 title="3D semantic confusion (rows: ground truth)"))


def run(args: argparse.Namespace) -> int:
    """Evaluate; prints the table (and where files went). 0 on success, 1 on bad input."""
    have_traj = args.gt is not None or args.est is not None
    have_mesh = args.mesh is not None or args.gt_mesh is not None
    try:
        if have_traj and (args.gt is None or args.est is None):
            raise ValueError("trajectory evaluation needs both --gt and --est")
        if have_mesh and (args.mesh is None or args.gt_mesh is None):
            raise ValueError("mesh evaluation needs both --mesh and --gt-mesh")
        if args.gt_points is not None and not have_mesh:
            raise ValueError("--gt-points needs --mesh and --gt-mesh")
        if not have_traj and not have_mesh:
            raise ValueError("nothing to evaluate: give --gt/--est and/or --mesh/--gt-mesh")
        if not args.threshold > 0:
            raise ValueError(f"--threshold must be positive, got {args.threshold}")
        for path in (args.gt, args.est, args.mesh, args.gt_mesh, args.gt_points):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"file not found: {path}")
        out: dict = {"inputs": {k: (str(v) if v is not None else None) for k, v in
                                (("gt", args.gt), ("est", args.est), ("mesh", args.mesh),
                                 ("gt_mesh", args.gt_mesh), ("gt_points", args.gt_points))}}
        lines: list[str] = []
        written: list[Path] = []
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
        pictures = bool(args.output) and not args.no_pictures
        if pictures and not has_module("matplotlib"):  # the plots and the error colors need it
            lines.append("no matplotlib: metrics.json without pictures")
            pictures = False
        gt_traj, ate = (None, None)
        if have_traj:
            gt_traj, ate = _eval_trajectory(args, out, lines)
            if pictures:
                from ..eval.plots import plot_trajectory

                written.append(plot_trajectory(ate, args.output / "trajectory.png", title=args.title,
                                               plane=args.plot_plane))
        if have_mesh:
            _eval_mesh(args, out, lines, gt_traj, written, pictures)
    except ValueError as exc:
        print(f"msslam eval: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    if args.output:
        metrics_path = args.output / "metrics.json"
        metrics_path.write_text(json.dumps(out, indent=2) + "\n")
        written.insert(0, metrics_path)
        print("wrote " + ", ".join(str(p) for p in written))
    return 0
