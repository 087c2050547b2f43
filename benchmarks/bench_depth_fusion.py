"""Benchmark: active depth + stereo fusion on a simulated sequence (issue #5 acceptance).

Simulates a sequence (or reuses a cached one), runs stereo matching, per-source confidences and both
fusion methods on every frame, and prints RMSE / MAE / completeness per method and input, per range
band and at depth edges, plus timings. Also runs a real single-source frame (TUM fr1 desk depth only)
and checks the pass-through. Saves a PNG, ends with ``ratio: X`` (fused RMSE / better input RMSE,
the worse of the two methods) and exits 1 when a target is missed. Speed targets are checked on the CPU
time of the measuring thread (1 torch/OpenCV thread), each fusion's time per frame being the minimum of
``--repeats`` runs after a warm-up and the reported figure the median over frames; wall time and the load
average are printed next to it. Stereo matches the IR pair at half resolution by default (``--stereo-downsample
2``, what the depth_fusion node runs); ``--stereo-downsample 1`` measures full-resolution matching.

    python benchmarks/bench_depth_fusion.py --frames 30          # 100 for the acceptance run
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import torch  # noqa: E402

from metric_semantic_slam.eval.machine import cpu_name  # noqa: E402
from metric_semantic_slam.core.depth_confidence import active_depth_confidence  # noqa: E402
from metric_semantic_slam.core.depth_fusion import DepthFuser, DepthFusionConfig, fuse_local  # noqa: E402
from metric_semantic_slam.core.stereo import StereoConfig  # noqa: E402

BANDS_M = (0.0, 1.0, 2.0, 3.0, 4.0, np.inf)
METHODS = ("active", "stereo", "local", "variational")
TARGET_RATIO = 0.7
TARGET_LOCAL_MS = 15.0
TARGET_VARIATIONAL_CPU_MS = 60.0
TARGET_VARIATIONAL_GPU_MS = 3.0


@dataclass
class ErrorStats:
    """Running sums for RMSE / MAE / completeness over a pixel subset."""

    sq: float = 0.0
    ab: float = 0.0
    n_valid: int = 0
    n_gt: int = 0

    def add(self, depth: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> None:
        m = mask & (gt > 0)
        v = m & (depth > 0)
        e = (depth[v] - gt[v]).astype(np.float64)
        self.sq += float(np.sum(e * e))
        self.ab += float(np.sum(np.abs(e)))
        self.n_valid += int(v.sum())
        self.n_gt += int(m.sum())

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.sq / self.n_valid)) if self.n_valid else float("nan")

    @property
    def mae(self) -> float:
        return self.ab / self.n_valid if self.n_valid else float("nan")

    @property
    def completeness(self) -> float:
        return self.n_valid / self.n_gt if self.n_gt else float("nan")


@dataclass
class MethodStats:
    all: ErrorStats = field(default_factory=ErrorStats)
    edges: ErrorStats = field(default_factory=ErrorStats)
    bands: list[ErrorStats] = field(default_factory=lambda: [ErrorStats() for _ in range(len(BANDS_M) - 1)])

    def add(self, depth: np.ndarray, gt: np.ndarray, edge_mask: np.ndarray) -> None:
        self.all.add(depth, gt, np.ones_like(edge_mask))
        self.edges.add(depth, gt, edge_mask)
        for i, b in enumerate(self.bands):
            b.add(depth, gt, (gt >= BANDS_M[i]) & (gt < BANDS_M[i + 1]))


def depth_edges(gt: np.ndarray, rel: float = 0.04, radius_px: int = 2) -> np.ndarray:
    """Pixels within ``radius_px`` of a ground-truth depth discontinuity. Shape: (H, W) -> (H, W) bool."""
    k = np.ones((3, 3), np.uint8)
    valid = gt > 0
    spread = cv2.dilate(gt, k) - cv2.erode(np.where(valid, gt, np.float32(1e9)).astype(np.float32), k)
    edge = (spread > rel * gt) & valid
    return cv2.dilate(edge.astype(np.uint8), np.ones((2 * radius_px + 1,) * 2, np.uint8)).astype(bool)


def get_sequence(cache: Path, seed: int, frames: int, width: int, height: int) -> Path:
    """A cached simulator folder for these settings, simulated when absent."""
    folder = cache / f"sim_seed{seed}_frames{frames}_{width}x{height}"
    if (folder / "rgb.txt").is_file() and (folder / "depth_gt").is_dir():
        return folder
    from metric_semantic_slam.sim.simulate import simulate

    tmp = cache / (folder.name + f".tmp{os.getpid()}")
    print(f"simulating {frames} frames at {width}x{height} into {folder} ...", flush=True)
    simulate(tmp, seed=seed, frames=frames, width=width, height=height, write_bag=False, verbose=False)
    tmp.rename(folder)
    return folder




def fmt(x: float, scale: float = 1.0, digits: int = 4) -> str:
    return "   nan" if not np.isfinite(x) else f"{x * scale:.{digits}f}"


def print_tables(stats: dict[str, MethodStats]) -> None:
    print("\n== all pixels with ground truth (each method over its own valid pixels) ==")
    print(f"{'method':<12} {'RMSE m':>8} {'MAE m':>8} {'complete':>9}")
    for name in METHODS:
        s = stats[name].all
        print(f"{name:<12} {fmt(s.rmse):>8} {fmt(s.mae):>8} {fmt(s.completeness):>9}")
    print("\n== at depth edges (within 2 px of a ground-truth discontinuity) ==")
    print(f"{'method':<12} {'RMSE m':>8} {'MAE m':>8} {'complete':>9}")
    for name in METHODS:
        s = stats[name].edges
        print(f"{name:<12} {fmt(s.rmse):>8} {fmt(s.mae):>8} {fmt(s.completeness):>9}")
    print("\n== per range band (RMSE m / MAE m / completeness; n = ground-truth pixels) ==")
    head = "band m".ljust(10) + " n".rjust(9) + "".join(f"{m:>26}" for m in METHODS)
    print(head)
    for i in range(len(BANDS_M) - 1):
        n = stats["active"].bands[i].n_gt
        if n == 0:
            continue
        label = f"{BANDS_M[i]:.0f}-{BANDS_M[i + 1]:.0f}" if np.isfinite(BANDS_M[i + 1]) else f">{BANDS_M[i]:.0f}"
        cells = ""
        for m in METHODS:
            b = stats[m].bands[i]
            cells += f"{fmt(b.rmse, digits=3) + '/' + fmt(b.mae, digits=3) + '/' + fmt(b.completeness, digits=2):>26}"
        print(label.ljust(10) + f"{n:>9}" + cells)


def real_single_source(data: Path, fuser: DepthFuser) -> dict | None:
    """Fuse a real depth frame with no stereo pair; returns the pass-through check and images."""
    folder = data / "tum_fr1_desk_9"
    if not folder.is_dir():
        print(f"(real data not found at {folder}: single-source check skipped)")
        return None
    from metric_semantic_slam.io.sequence import open_sequence

    frame = next(iter(open_sequence(folder, max_frames=1)))
    out = fuser.fuse(frame.camera, depth_m=frame.depth_m, stereo=None)
    valid_in = frame.depth_m > 0
    equal = bool(np.array_equal(out.depth_m[valid_in], frame.depth_m[valid_in].astype(np.float32))
                 and np.array_equal(out.valid, valid_in))
    conf = out.confidence[valid_in]
    # Plausible: confidence falls with range (Kinect noise grows ~z^2) and in [0, 1].
    z = frame.depth_m[valid_in]
    near = conf[z < np.percentile(z, 25)].mean()
    far = conf[z > np.percentile(z, 75)].mean()
    plausible = bool(conf.min() >= 0 and conf.max() <= 1 and near > far)
    print(f"\nreal single-source frame ({folder.name}, depth only): output == input where valid: {equal}; "
          f"confidence mean near/far quartile {near:.2f}/{far:.2f} (plausible: {plausible})")
    return {"equal": equal, "plausible": plausible, "color": frame.color, "depth": frame.depth_m,
            "confidence": out.confidence}


def save_png(path: Path, frame, srcs: dict[str, np.ndarray], confs: dict[str, np.ndarray], real: dict | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gt = frame.gt.depth_m
    vmax = float(np.percentile(gt[gt > 0], 99)) if (gt > 0).any() else 5.0
    rows = 4 if real is not None else 3
    fig, ax = plt.subplots(rows, 5, figsize=(20, 3.4 * rows))
    ax[0, 0].imshow(frame.color)
    ax[0, 0].set_title("color")
    ax[0, 1].imshow(gt, vmin=0, vmax=vmax, cmap="turbo")
    ax[0, 1].set_title("ground truth depth")
    for j, name in enumerate(METHODS):
        if j < 3:
            ax[0, 2 + j].imshow(srcs[name], vmin=0, vmax=vmax, cmap="turbo")
            ax[0, 2 + j].set_title(f"{name} depth")
    ax[1, 0].imshow(srcs["variational"], vmin=0, vmax=vmax, cmap="turbo")
    ax[1, 0].set_title("variational depth")
    for j, name in enumerate(METHODS):
        d = srcs[name]
        err = np.where((d > 0) & (gt > 0), np.abs(d - gt), np.nan)
        ax[1, 1 + j].imshow(err, vmin=0, vmax=0.1, cmap="magma")
        ax[1, 1 + j].set_title(f"|{name} - gt| (0..10 cm)")
    for j, (name, c) in enumerate(confs.items()):
        ax[2, j].imshow(c, vmin=0, vmax=1, cmap="viridis")
        ax[2, j].set_title(f"{name} confidence")
    if real is not None:
        ax[3, 0].imshow(real["color"])
        ax[3, 0].set_title("TUM fr1 desk color")
        ax[3, 1].imshow(real["depth"], cmap="turbo")
        ax[3, 1].set_title("TUM depth (only source)")
        ax[3, 2].imshow(real["confidence"], vmin=0, vmax=1, cmap="viridis")
        ax[3, 2].set_title("its fused confidence")
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sequence", type=Path, default=None, help="use this simulator folder instead of simulating")
    p.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "msslam_bench_cache")
    p.add_argument("--output", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "msslam_bench_depth_fusion")
    p.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and OpenCV CPU threads (1: stable timings on shared cores)")
    p.add_argument("--iterations", type=int, default=None, help="variational iterations (default: config)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each fusion per frame (minimum kept)")
    p.add_argument("--stereo-downsample", type=int, default=2,
                   help="StereoConfig.downsample: match the IR pair shrunk by this factor (default 2, the "
                        "depth_fusion node's stereo_downsample default; 1 = full resolution)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from metric_semantic_slam.io.sequence import open_sequence

    args.cache.mkdir(parents=True, exist_ok=True)
    args.output.mkdir(parents=True, exist_ok=True)
    folder = args.sequence or get_sequence(args.cache, args.seed, args.frames, args.width, args.height)
    seq = open_sequence(folder, max_frames=args.frames)
    base = DepthFusionConfig(stereo=StereoConfig(downsample=args.stereo_downsample))
    if args.iterations is not None:
        base = replace(base, iterations=args.iterations)

    fuser_local = DepthFuser(replace(base, method="local"))
    fuser_var = DepthFuser(replace(base, method="variational"))
    gpu = None
    if torch.cuda.is_available():
        from metric_semantic_slam.core.depth_fusion_variational import VariationalFusion

        gpu = VariationalFusion(replace(base, method="variational", device="cuda"))
    stats = {m: MethodStats() for m in METHODS}
    keys = ("stereo", "confidence", "local", "variational", "variational_gpu")
    times: dict[str, list[float]] = {k: [] for k in keys}
    cpu_times: dict[str, list[float]] = {k: [] for k in keys}  # thread CPU time: what the work costs on a busy machine
    rep_times: dict[str, list[tuple[float, float]]] = {"local": [], "variational": []}
    last = None
    n = 0
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x
    for frame in tqdm(seq, total=min(args.frames, len(seq)), disable=not sys.stderr.isatty()):
        gt = frame.gt.depth_m if frame.gt is not None else None
        if gt is None or frame.stereo is None:
            raise ValueError(f"{folder} frame {frame.index} lacks ground-truth depth or a stereo pair")
        t0, c0 = time.perf_counter(), time.thread_time()
        active = active_depth_confidence(frame.depth_m, frame.camera, base.active_confidence)
        t_conf = time.perf_counter() - t0
        cpu_times["confidence"].append(time.thread_time() - c0)
        c0 = time.thread_time()
        st, t_st = fuser_local.stereo_source(frame.stereo.left, frame.stereo.right, frame.stereo.camera,
                                             frame.stereo.baseline_m, frame.stereo.T_color_left, frame.camera)
        times["stereo"].append(t_st)
        cpu_times["stereo"].append(time.thread_time() - c0)
        if n == 0:  # warm-up (first-call allocations, lazy imports) outside the timings
            fuse_local(active, st, fuser_local.config)
            fuser_var.fuse_sources(active, st)
        # Each fusion runs --repeats times on the frame; its time is the minimum (the run least disturbed
        # by other processes on a shared machine); the table reports the median over frames.
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.thread_time()
            loc = fuse_local(active, st, fuser_local.config)
            rep_times["local"].append((time.perf_counter() - t0, time.thread_time() - c0))
            t0, c0 = time.perf_counter(), time.thread_time()
            var = fuser_var.fuse_sources(active, st)
            rep_times["variational"].append((time.perf_counter() - t0, time.thread_time() - c0))
        for k in ("local", "variational"):
            times[k].append(min(w for w, _ in rep_times[k]))
            cpu_times[k].append(min(c for _, c in rep_times[k]))
            rep_times[k].clear()
        if gpu is not None:
            # Refinement only (the local init runs on the CPU either way), host<->device copies included.
            if n == 0:
                gpu.refine(loc, active, st)  # CUDA warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gpu.refine(loc, active, st)
            torch.cuda.synchronize()
            times["variational_gpu"].append(time.perf_counter() - t0)
        times["confidence"].append(t_conf)  # active; stereo cues are part of the stereo time
        edges = depth_edges(gt)
        for name, d in (("active", active.depth_m), ("stereo", st.depth_m), ("local", loc.depth_m),
                        ("variational", var.depth_m)):
            stats[name].add(d, gt, edges)
        last = (frame, {"active": active.depth_m, "stereo": st.depth_m, "local": loc.depth_m,
                        "variational": var.depth_m},
                {"active": active.confidence, "stereo": st.confidence, "fused (local)": loc.confidence})
        n += 1
    print(f"\nbench_depth_fusion: {n} frames of {folder} at {args.width}x{args.height}")
    print(f"CPU: {cpu_name()}, torch threads {torch.get_num_threads()}; "
          f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    print_tables(stats)

    def med_ms(k: str) -> float:
        return 1e3 * float(np.median(times[k])) if times[k] else float("nan")

    def cpu_ms(k: str) -> float:
        return 1e3 * float(np.median(cpu_times[k])) if cpu_times[k] else float("nan")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n== timings per frame (median over frames, ms; wall / CPU time of the measuring thread, "
          f"{torch.get_num_threads()} torch/OpenCV thread(s); fusions: minimum of {args.repeats} runs per frame "
          f"after a warm-up; load average {load_before:.1f} at start, {load:.1f} at end on {os.cpu_count()} "
          f"cores; targets apply to the CPU time) ==")
    print(f"stereo matching (SGBM x2 + checks + cues, downsample {base.stereo.downsample}): "
          f"{med_ms('stereo'):7.1f} / {cpu_ms('stereo'):7.1f}")
    print(f"active-depth confidence:                   {med_ms('confidence'):7.1f} / {cpu_ms('confidence'):7.1f}")
    print(f"local fusion:                              {med_ms('local'):7.1f} / {cpu_ms('local'):7.1f}"
          f"   (target <= {TARGET_LOCAL_MS}, CPU)")
    print(f"variational fusion, CPU (incl. local):     {med_ms('variational'):7.1f} / {cpu_ms('variational'):7.1f}"
          f"   (target <= {TARGET_VARIATIONAL_CPU_MS}, CPU; {fuser_var.config.iterations} iterations)")
    if times["variational_gpu"]:
        print(f"variational refinement, GPU:               {med_ms('variational_gpu'):7.2f}"
              f"   (target <= {TARGET_VARIATIONAL_GPU_MS})")

    real = real_single_source(args.data.resolve(), fuser_local)
    png = args.output / "depth_fusion.png"
    if last is not None:
        save_png(png, *last, real)
        print(f"picture: {png}")

    failures = []
    best_rmse = min(stats["active"].all.rmse, stats["stereo"].all.rmse)
    best_mae = min(stats["active"].all.mae, stats["stereo"].all.mae)
    best_comp = max(stats["active"].all.completeness, stats["stereo"].all.completeness)
    ratios = []
    for m in ("local", "variational"):
        s = stats[m].all
        r_rmse, r_mae = s.rmse / best_rmse, s.mae / best_mae
        ratios.append(r_rmse)
        print(f"{m}: RMSE ratio {r_rmse:.3f}, MAE ratio {r_mae:.3f} (target <= {TARGET_RATIO}), completeness "
              f"{s.completeness:.4f} vs best input {best_comp:.4f}")
        if not r_rmse <= TARGET_RATIO:
            failures.append(f"{m} RMSE ratio {r_rmse:.3f} > {TARGET_RATIO}")
        if not r_mae <= TARGET_RATIO:
            failures.append(f"{m} MAE ratio {r_mae:.3f} > {TARGET_RATIO}")
        if not s.completeness >= best_comp:
            failures.append(f"{m} completeness {s.completeness:.4f} < {best_comp:.4f}")
    # CPU time of the measuring thread (1 thread): on a machine shared with other work, wall time measures
    # the neighbours as much as this code.
    if not cpu_ms("local") <= TARGET_LOCAL_MS:
        failures.append(f"local fusion {cpu_ms('local'):.1f} ms CPU > {TARGET_LOCAL_MS} ms")
    if not cpu_ms("variational") <= TARGET_VARIATIONAL_CPU_MS:
        failures.append(f"variational {cpu_ms('variational'):.1f} ms CPU > {TARGET_VARIATIONAL_CPU_MS} ms")
    if times["variational_gpu"] and not med_ms("variational_gpu") <= TARGET_VARIATIONAL_GPU_MS:
        failures.append(f"variational GPU {med_ms('variational_gpu'):.2f} ms > {TARGET_VARIATIONAL_GPU_MS} ms")
    if real is not None and not (real["equal"] and real["plausible"]):
        failures.append("real single-source pass-through failed")
    for f in failures:
        print(f"TARGET MISSED: {f}")
    print(f"ratio: {max(ratios):.3f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
