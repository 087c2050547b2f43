"""Benchmark: our dense RGB-D(+IMU, +semantic) odometry vs Open3D's ``rgbd_odometry_multi_scale``.

1. Real TUM slices: ATE RMSE (SE(3)-aligned) and ms/frame (wall and this thread's CPU time) per sequence
   and method. Open3D runs frame-to-frame (its API is pairwise) in this process on the same frames; it
   is optional (its rows are skipped when ``import open3d`` fails; then there is no ratio, exit code 2).
2. Simulator ablation (``--sim-frames`` > 0): sequences are simulated into ``--sim-dir`` (default: a
   temporary folder): constant lighting; lighting changes with low-contrast textures; the latter
   degraded (3 of every 20 frames dropped, their IMU samples delivered with the next frame, and a 3-frame
   sensor blackout, black image and no depth, every 30 frames: where only the gyro and the motion model
   carry the pose); a sequence with a walking person in view (seed 2); and fast rotations like TUM
   fr1_rpy (``msslam simulate --motion fast_rotation``: shakes about yaw, pitch and roll at up to
   1.5-3 rad/s), clean and degraded the same way. The tracker runs depth-only, +photometric, +IMU (gyro
   prior and bias filter) and +semantic (the simulator's ground-truth labels, and the same labels with
   noise; on the person sequence also without dynamic-class masking). Targets: the full system
   (+semantic) has the lowest ATE on every simulated sequence (``FULL_TOLERANCE``: strictly or within
   it; each row says by how much), and the semantic term lowers ATE by >= 10% on the changing-lighting /
   low-texture one. Every setting of the ablation's tracker was chosen on seed 5, which is not in the
   table (see ``sim_vio_config``).

Ends with ``ratio: X`` = our ATE / the best Open3D ATE on ``tum_fr1_rpy_90``; exits 1 when X > 0.7 or a
simulator target is missed.

Usage: python benchmarks/bench_odometry.py [--data ../shared/data] [--output DIR] [--max-frames N]
       [--sim-frames 300] [--sim-dir DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(REPO))

from metric_semantic_slam.eval.machine import cpu_name as cpu_model  # noqa: E402
from metric_semantic_slam.core.odometry.rgbd_tracker import TrackerConfig  # noqa: E402
from metric_semantic_slam.core.odometry.semantic_term import SemanticConfig  # noqa: E402
from metric_semantic_slam.core.odometry.vio import VioConfig, VisualInertialOdometry  # noqa: E402
from metric_semantic_slam.eval.trajectory_metrics import compute_ate  # noqa: E402
from metric_semantic_slam.io.sequence import open_sequence  # noqa: E402
from metric_semantic_slam.io.trajectory import Trajectory  # noqa: E402

SEQUENCES = ("tum_fr1_rpy_90", "tum_fr1_desk_9", "tum_fr3_cabinet_keyframes58")
TARGET_SEQUENCE = "tum_fr1_rpy_90"
TARGET_RATIO = 0.7
O3D_METHODS = ("PointToPlane", "Hybrid", "Intensity")




def run_ours(frames: list, device: str, config: VioConfig | None = None) -> tuple[Trajectory, float, float, dict]:
    """Track ``frames``; returns (trajectory, wall ms/frame, thread CPU ms/frame, status counts)."""
    vio = VisualInertialOdometry(config or VioConfig(device=device))
    times, cpu = [], []
    for f in frames:
        t, c = time.perf_counter(), time.thread_time()
        vio.track(f)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
    statuses: dict[str, int] = {}
    for r in vio.results:
        statuses[r.status.value] = statuses.get(r.status.value, 0) + 1
    # The first frame only builds a keyframe: leave it out of the per-frame time like Open3D's pairs.
    return vio.trajectory(), 1e3 * float(np.mean(times[1:])), 1e3 * float(np.mean(cpu[1:])), statuses


def run_open3d(frames: list, method: str) -> tuple[Trajectory, float]:
    import open3d as o3d
    import open3d.core as o3c

    odo = o3d.t.pipelines.odometry
    K = o3c.Tensor(frames[0].camera.K, o3c.float64)

    def rgbd(f):
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(f.color.astype(np.float32) / 255.0)))
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(f.depth_m.astype(np.float32))))
        return o3d.t.geometry.RGBDImage(color, depth)

    poses = [np.eye(4)]
    prev = rgbd(frames[0])
    times = []
    for f in frames[1:]:
        cur = rgbd(f)
        t = time.perf_counter()
        # Open3D's defaults (depth_max 3 m, 10/5/3 iterations) gave its best ATE here (2.20 cm on
        # tum_fr1_rpy_90 vs 3.26 cm with depth_max 4 m and 3.38 cm with 20/10/5 iterations).
        res = odo.rgbd_odometry_multi_scale(cur, prev, K, o3c.Tensor(np.eye(4)), 1.0, 3.0,
                                            method=getattr(odo.Method, method))
        times.append(time.perf_counter() - t)
        T_prev_cur = res.transformation.numpy()
        if not np.all(np.isfinite(T_prev_cur)):
            T_prev_cur = np.eye(4)
        poses.append(poses[-1] @ T_prev_cur)
        prev = cur
    return Trajectory(np.array([f.stamp_s for f in frames]), np.stack(poses)), 1e3 * float(np.mean(times))


def save_plot(path: Path, curves: dict[str, np.ndarray], gt: np.ndarray, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (a, b) in enumerate(((0, 1), (0, 2))):
        ax[i].plot(gt[:, a], gt[:, b], "k-", lw=2, label="ground truth")
        for name, p in curves.items():
            ax[i].plot(p[:, a], p[:, b], lw=1, label=name)
        ax[i].set_xlabel("xyz"[a] + " [m]")
        ax[i].set_ylabel("xyz"[b] + " [m]")
        ax[i].axis("equal")
    ax[0].legend(fontsize=7)
    fig.suptitle(title + " (SE(3)-aligned)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---------------------------------------------------------------- simulator ablation
SIM_SEQUENCES = {
    # name: (lighting_variation, texture_contrast, seed, with_person, degraded, motion)
    "sim_constant_light": (0.0, 1.0, 3, False, False, "smooth"),
    "sim_light_change_low_texture": (1.0, 0.25, 3, False, False, "smooth"),
    "sim_light_change_low_texture_drops_blackouts": (1.0, 0.25, 3, False, True, "smooth"),
    "sim_constant_light_person": (0.0, 1.0, 2, True, False, "smooth"),
    "sim_fast_rotation": (0.0, 1.0, 3, False, False, "fast_rotation"),
    "sim_fast_rotation_drops_blackouts": (0.0, 1.0, 3, False, True, "fast_rotation"),
}
SEMANTIC_GAIN_TARGET = 0.10
#: The full system counts as lowest when its ATE is at most this much (relative) above the best variant.
#: 0: the issue asks for the lowest drift, and the tracker is deterministic, so no noise allowance.
FULL_TOLERANCE = 0.0


def sim_vio_config(variant: str) -> VioConfig:
    """The ablation's configurations for 320x240 simulator frames.

    Chosen on seed 5 (smooth, fast-rotation and lighting-change sequences; not in the table):
    - Track from level 1 (160x120) for every term, as the default config does for 640x480 frames: the
      simulated sensor's full-resolution normals are so noisy that a third of the correct ICP pairs fail
      the normal-angle test, the inlier ratio then reads as low overlap and renews the keyframe at every
      frame (frame-to-frame drift: +photometric 2.5 cm on seed 5, 0.19 cm from level 1), and the
      full-resolution photometric term added noise under lighting changes (0.42 vs 1.73 cm).
    - Photometric residuals against an affine brightness fit (lighting changes are not motion).
    - The gyro's bias prior from the simulated IMU's specification (no turn-on bias, random walk
      2.2e-5 rad/s^2/sqrt(Hz)), as a user sets it from the sensor's calibration.
    - Semantic term at 160x120 with weight 1 (ATE 0.232 / 0.347 / 0.285 cm on seed 5 smooth / lighting
      change / fast rotation, vs 0.256 / 0.355 / 0.296 cm with the default weight 4).
    """
    tracker = TrackerConfig(iterations=(4, 6, 8), finest_level=1, max_points=8000, w_rgb=0.3, huber_k=0.7,
                            min_update=1e-3, rgb_affine_compensation=True)
    sem = SemanticConfig(level=1, weight=1.0)
    imu = dict(gyro_bias_init_std_rad_s=1e-4, gyro_bias_random_walk=2.2e-5)
    if variant == "depth only":
        return VioConfig(tracker=replace(tracker, use_rgb=False), use_gyro=False, use_semantic=False, semantic=sem)
    if variant == "+photometric":
        return VioConfig(tracker=tracker, use_gyro=False, use_semantic=False, semantic=sem)
    if variant == "+IMU":
        return VioConfig(tracker=tracker, use_semantic=False, semantic=sem, **imu)
    return VioConfig(tracker=tracker, use_semantic=True, semantic=sem, **imu)


def noisy_labels(labels: np.ndarray, rng: np.random.Generator, flip_fraction: float = 0.02) -> np.ndarray:
    """Ground-truth labels made segmenter-like: each class's region grows or shrinks by a pixel at random
    (independent boundary errors), and 2% of 8x8 blocks get a wrong class from the image.
    Shape: (H, W) -> (H, W)."""
    import cv2
    out = labels.copy()
    classes = np.unique(labels)
    kernel = np.ones((3, 3), np.uint8)
    for c in classes:
        if rng.random() < 0.5:
            mask = (labels == c).astype(np.uint8)
            out[(cv2.dilate(mask, kernel) > 0) & (mask == 0)] = c
    h, w = out.shape
    flip = rng.random((h // 8, w // 8)) < flip_fraction
    for i, j in zip(*np.nonzero(flip)):
        out[i * 8:(i + 1) * 8, j * 8:(j + 1) * 8] = rng.choice(classes)
    return out


def degrade(frames: list, drop_every: int = 20, drop: int = 3, blackout_every: int = 30, blackout: int = 3
            ) -> list:
    """Drop the last ``drop`` of every ``drop_every`` frames (their IMU samples join the next frame, as a
    driver's IMU stream would deliver them), then black out (black image, no depth) the last ``blackout``
    of every ``blackout_every`` remaining frames."""
    from metric_semantic_slam.io.frame import ImuSamples
    kept, pending = [], []
    for i, f in enumerate(frames):
        if i > 0 and i % drop_every >= drop_every - drop:
            if f.imu is not None:
                pending.append(f.imu)
            continue
        if pending:
            parts = pending + ([f.imu] if f.imu is not None else [])
            f = replace(f, imu=ImuSamples(np.concatenate([p.stamps_s for p in parts]),
                                          np.concatenate([p.gyro_rad_s for p in parts]),
                                          np.concatenate([p.accel_m_s2 for p in parts])))
            pending = []
        kept.append(f)
    out = []
    for i, f in enumerate(kept):
        if i % blackout_every >= blackout_every - blackout:
            f = replace(f, color=np.zeros_like(f.color), depth_m=np.zeros_like(f.depth_m))
        out.append(f)
    return out


def simulate_for_ablation(folder: Path, frames: int, size: tuple[int, int]) -> dict[str, tuple[Path, bool]]:
    """Simulate (or reuse) the ablation's sequences; returns name -> (folder, degraded)."""
    from metric_semantic_slam.sim.simulate import SimConfig, simulate_sequence
    out = {}
    for name, (light, contrast, seed, person, degraded, motion) in SIM_SEQUENCES.items():
        base = name.replace("_drops_blackouts", "").replace("_person", "")
        suffix = f"seed{seed}_person" if person else f"seed{seed}_noperson"
        path = folder / f"{base}_{frames}_{size[0]}x{size[1]}_{suffix}"
        if not (path / "groundtruth.txt").exists():
            cfg = SimConfig(seed=seed, frames=frames, width=size[0], height=size[1], lighting_variation=light,
                            texture_contrast=contrast, with_person=person, motion=motion)
            t = time.perf_counter()
            simulate_sequence(path, cfg, write_bag=False, verbose=False)
            print(f"simulated {name}: {frames} frames {size[0]}x{size[1]} in {time.perf_counter() - t:.0f} s")
        out[name] = (path, degraded)
    return out


def run_ablation(folder: Path, args: argparse.Namespace) -> bool:
    """Print the ablation table; returns whether both simulator targets are met."""
    from tqdm import tqdm
    folder.mkdir(parents=True, exist_ok=True)
    seqs = simulate_for_ablation(folder, args.sim_frames, tuple(args.sim_size))
    variants = ["depth only", "+photometric", "+IMU", "+semantic", "+semantic (noisy labels)"]
    print(f"\nsimulator ablation ({args.sim_frames} frames, {args.sim_size[0]}x{args.sim_size[1]}, noisy depth, "
          "IMU with noise and bias; +semantic uses ground-truth labels as frame.semantic)")
    print(f"{'sequence':46s} {'variant':30s} {'ATE [cm]':>9s} {'ms/frame':>9s} {'CPU ms':>7s}  statuses")
    ates: dict[tuple[str, str], float] = {}
    all_lowest = True
    for name, (path, degraded) in seqs.items():
        seq = open_sequence(path)
        base = [seq[i] for i in tqdm(range(len(seq)), desc=f"load {name}", leave=False, disable=None)]
        if degraded:
            base = degrade(base)
        gt = seq.gt_trajectory()
        rng = np.random.default_rng(0)
        noisy = [noisy_labels(f.gt.semantic, rng) for f in base]
        curves = {}
        seq_variants = variants + (["+semantic (no dynamic mask)"] if SIM_SEQUENCES[name][3] else [])
        for variant in seq_variants:
            frames = []
            for f, nl in zip(base, noisy):
                g = replace(f)
                if variant in ("+semantic", "+semantic (no dynamic mask)"):
                    g.semantic = f.gt.semantic
                elif variant.startswith("+semantic"):
                    g.semantic = nl
                else:
                    g.semantic = None
                frames.append(g)
            cfg = sim_vio_config(variant)
            if variant == "+semantic (no dynamic mask)":
                cfg = replace(cfg, mask_dynamic=False)
            traj, ms, cpu_ms, st = run_ours(frames, args.device, cfg)
            ate = compute_ate(gt, traj)
            ates[(name, variant)] = ate.rmse
            curves[variant] = ate.est_positions_aligned
            note = ", ".join(f"{k} {v}" for k, v in sorted(st.items()))
            print(f"{name:46s} {variant:30s} {ate.rmse * 100:9.3f} {ms:9.1f} {cpu_ms:7.1f}  {note}", flush=True)
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
            save_plot(args.output / f"odometry_ablation_{name}.png", curves, ate.gt_positions, name)
        full = ates[(name, "+semantic")]
        best_other = min(ates[(name, v)] for v in variants[:3])
        ok = full <= best_other * (1 + FULL_TOLERANCE)
        all_lowest &= ok
        imu_gain = 1.0 - ates[(name, "+IMU")] / ates[(name, "+photometric")]
        print(f"  {name}: full system {full * 100:.3f} cm vs best of the others {best_other * 100:.3f} cm "
              f"({full / best_other - 1:+.1%}): "
              f"{'strictly lowest' if full < best_other else f'within {FULL_TOLERANCE:.0%}' if ok else 'NOT lowest'}"
              f"; the IMU changes ATE by {-imu_gain:+.1%} vs +photometric")
    names = list(seqs)
    gain = 1.0 - ates[(names[1], "+semantic")] / ates[(names[1], "+IMU")]
    gain_noisy = 1.0 - ates[(names[1], "+semantic (noisy labels)")] / ates[(names[1], "+IMU")]
    print(f"target: full system lowest ATE (within {FULL_TOLERANCE:.0%}) on every simulated sequence: "
          f"{'met' if all_lowest else 'MISSED'}")
    print(f"target: semantic term lowers ATE on {names[1]} by >= {SEMANTIC_GAIN_TARGET:.0%}: "
          f"{gain:.1%} ({'met' if gain >= SEMANTIC_GAIN_TARGET else 'MISSED'}; noisy labels {gain_noisy:.1%})")
    return all_lowest and gain >= SEMANTIC_GAIN_TARGET


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--output", type=Path, default=None, help="folder for trajectory plots (PNG)")
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sequences", nargs="*", default=list(SEQUENCES))
    ap.add_argument("--sim-frames", type=int, default=300, help="frames per simulated sequence (0: no ablation)")
    ap.add_argument("--sim-size", type=int, nargs=2, default=(320, 240), metavar=("W", "H"))
    ap.add_argument("--sim-dir", type=Path, default=None,
                    help="folder for the simulated sequences (reused when they exist; default: a temp folder)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a loaded 2-core machine more threads ran ~10x slower)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        import open3d  # noqa: F401
        have_o3d = True
    except ImportError:
        have_o3d = False
    cpu = cpu_model()
    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU {cpu}"
    print(f"device: {card}; cpu model: {cpu}; torch threads {torch.get_num_threads()}; "
          f"open3d {'yes' if have_o3d else 'missing'}; load {_load()}")
    print(f"{'sequence':30s} {'method':22s} {'frames':>6s} {'ATE [cm]':>9s} {'ms/frame':>9s}  notes")
    ours_target = best_target = None
    for name in args.sequences:
        folder = args.data / name
        if not folder.exists():
            print(f"{name:30s} missing at {folder}")
            continue
        seq = open_sequence(folder)
        n = len(seq) if args.max_frames is None else min(len(seq), args.max_frames)
        frames = [seq[i] for i in range(n)]
        gt = seq.gt_trajectory()
        curves = {}
        run_ours(frames[:3], args.device)  # warm-up (allocator, lazy init) outside the timing
        traj, ms, cpu_ms, statuses = run_ours(frames, args.device)
        ate = compute_ate(gt, traj)
        curves["ours"] = ate.est_positions_aligned
        note = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())) + f"; CPU {cpu_ms:.1f} ms/frame"
        print(f"{name:30s} {'ours (ICP+rgb[+IMU])':22s} {n:6d} {ate.rmse * 100:9.2f} {ms:9.1f}  {note}")
        best = None
        if have_o3d:
            for m in O3D_METHODS:
                traj_o, ms_o = run_open3d(frames, m)
                ate_o = compute_ate(gt, traj_o)
                curves[f"open3d {m}"] = ate_o.est_positions_aligned
                print(f"{name:30s} {'open3d ' + m:22s} {n:6d} {ate_o.rmse * 100:9.2f} {ms_o:9.1f}")
                best = ate_o.rmse if best is None else min(best, ate_o.rmse)
        if best is not None:
            print(f"{name:30s} {'ours / best open3d':22s} {'':6s} {ate.rmse / best:9.3f}")
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
            png = args.output / f"odometry_{name}.png"
            save_plot(png, curves, ate.gt_positions, name)
            print(f"wrote {png}")
        if name == TARGET_SEQUENCE:
            ours_target, best_target = ate.rmse, best
    sim_ok = True
    if args.sim_frames > 0:
        if args.sim_dir is None:
            with tempfile.TemporaryDirectory(prefix="bench_odometry_sim_") as tmp:
                sim_ok = run_ablation(Path(tmp), args)
        else:
            sim_ok = run_ablation(args.sim_dir, args)
    print(f"load after: {_load()}")
    if ours_target is None or best_target is None:
        print("ratio: nan (target sequence or Open3D unavailable)")
        return 2
    ratio = ours_target / best_target
    print(f"target: ATE ratio on {TARGET_SEQUENCE} <= {TARGET_RATIO}")
    print(f"ratio: {ratio:.3f}")
    return 0 if ratio <= TARGET_RATIO and sim_ok else 1


if __name__ == "__main__":
    sys.exit(main())
