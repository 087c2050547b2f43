"""Benchmark of the panoptic backends (issue #6) on simulator scenes and real TUM frames.

Simulator: seeds 7, 8, 9 (never used for training: the built-in network trains on seeds >= 1000),
``--frames`` views each at 320x240, gravity from the ground-truth pose. Per backend: mIoU (2D, classes
present), PQ (``eval/semantic_metrics.py``), stuff IoU of floor / wall / ceiling, instance recall of
objects larger than 20 cm, ms/frame (thread CPU time and wall, 1 torch thread).

**Instance recall** (class-agnostic, because ``geometric`` only knows "object" / "table"): a ground-truth
thing instance counts when its visible 3D extent (largest side of the 5-95 % percentile box of its
back-projected points) exceeds 20 cm and it has >= 50 pixels; it is recalled when one predicted instance
(any thing class, id != 0) covers it with mask IoU > 0.5.

Real data: ``/work/shared/data/tum_fr1_desk_9`` and ``tum_fr3_cabinet_keyframes58`` (read-only) through the
``geometric`` backend with gravity estimated from the normals (no pose used) and, for comparison, the angle
to the gravity of the ground-truth pose (TUM's mocap frame is z-up); overlay PNGs go to ``--output``.

Targets (exit status 1 when one is missed): geometric floor/wall/ceiling IoU >= 0.9 and recall >= 0.8,
< 100 ms CPU per frame; on TUM a floor/desk plane (>= 15 % of the valid pixels) and >= 1 separate object;
builtin mIoU >= 0.70, PQ >= 0.50, CPU <= 60 ms (a missing weights file counts as a miss); oracle (no noise)
mIoU = PQ = 1.

    python benchmarks/bench_panoptic.py [--frames 20] [--output output/bench_panoptic]
        [--backends geometric] [--seeds 7,8,9] [--no-real]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from metric_semantic_slam.eval.machine import cpu_name as cpu_model  # noqa: E402
from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.labels import LabelSpace, load_label_space
from metric_semantic_slam.core.panoptic import PanopticInput, make_backend
from metric_semantic_slam.eval.semantic_metrics import PqAccumulator, confusion_matrix, miou_from_confusion

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data")
EVAL_SEEDS = (7, 8, 9)
MIN_OBJECT_EXTENT_M = 0.20

# --- simulator evaluation frames (rendered in-process, cached under output/) ---------------------
CACHE_DIR = Path(__file__).resolve().parents[1] / "output" / "panoptic_bench"
PITCH_UP_DEG = 35.0


def render_eval_frames(seed: int, frames: int, width: int = 320, height: int = 240,
                       cache_dir: Path = CACHE_DIR) -> dict[str, np.ndarray]:
    """``frames`` views of the room of ``seed`` at evenly spread times of a 60 s handheld trajectory;
    every third view is pitched up by ``PITCH_UP_DEG`` so the ceiling is seen too (the handheld camera
    looks about level and rarely sees it).

    Returns arrays with a leading frame axis: rgb (N, H, W, 3) uint8, depth_m (N, H, W) float32 (noisy
    active depth, 0 = invalid), semantic / instance (N, H, W) uint16, T_world_camera (N, 4, 4), and
    K (3, 3). World frame z-up (gravity along -z). Cached as an .npz keyed by the arguments.
    """
    path = Path(cache_dir) / f"eval_seed{seed}_n{frames}_{width}x{height}_up{PITCH_UP_DEG:.0f}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    from metric_semantic_slam.sim.render import RenderConfig, Renderer
    from metric_semantic_slam.sim.scene import generate_world
    from metric_semantic_slam.sim.sensors import ActiveDepthConfig, simulate_active_depth
    from metric_semantic_slam.sim.simulate import default_camera
    from metric_semantic_slam.sim.trajectory import make_trajectory

    world = generate_world(seed, with_person=True)
    duration_s = 60.0
    traj = make_trajectory(world, preset="handheld", duration_s=duration_s, seed=seed)
    renderer = Renderer(world, RenderConfig(raycast_threads=1))
    cam = default_camera(width, height)
    times = (np.arange(frames) + 0.5) * duration_s / frames
    out = {"rgb": np.zeros((frames, height, width, 3), np.uint8),
           "depth_m": np.zeros((frames, height, width), np.float32),
           "semantic": np.zeros((frames, height, width), np.uint16),
           "instance": np.zeros((frames, height, width), np.uint16),
           "T_world_camera": np.zeros((frames, 4, 4)), "K": cam.K}
    for i, t in enumerate(times):
        T = np.asarray(traj.T_world_camera(float(t)), np.float64)
        if i % 3 == 2:  # rotate about the camera x axis: forward (z) tips towards up (-y)
            a = np.deg2rad(PITCH_UP_DEG)
            Rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
            T = T.copy()
            T[:3, :3] = T[:3, :3] @ Rx
        res = renderer.render(cam, T, float(t), np.random.default_rng([seed, i, 11]), renderer.dynamic_mesh(float(t)))
        d = simulate_active_depth(res.depth_m, res.cos_incidence, renderer.ir_albedo(res.material),
                                  ActiveDepthConfig(), np.random.default_rng([seed, i, 12])).depth_m
        out["rgb"][i] = res.color
        out["depth_m"][i] = np.where(np.isfinite(d), d, 0.0)
        out["semantic"][i] = res.semantic
        out["instance"][i] = res.instance
        out["T_world_camera"][i] = T
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **out)
    tmp.replace(path)
    return out




def load_avg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def gravity_in_camera(T_world_camera: np.ndarray) -> np.ndarray:
    """Gravity direction in the camera frame for a z-up world. Shape: (4, 4) -> (3,)."""
    return np.asarray(T_world_camera)[:3, :3].T @ np.array([0.0, 0.0, -1.0])


def large_instances(gt_sem: np.ndarray, gt_inst: np.ndarray, depth_m: np.ndarray, cam: PinholeCamera,
                    thing: np.ndarray) -> list[np.ndarray]:
    """Masks of the GT thing instances with a visible 3D extent > 20 cm and >= 50 pixels."""
    pts = cam.backproject(depth_m)
    valid = depth_m > 0
    out = []
    for iid in np.unique(gt_inst):
        if iid == 0:
            continue
        m = gt_inst == iid
        cls = np.bincount(gt_sem[m].astype(np.int64)).argmax()
        if cls >= len(thing) or not thing[cls] or m.sum() < 50:
            continue
        p = pts[m & valid]
        if len(p) < 30:
            continue
        ext = np.percentile(p, 95, axis=0) - np.percentile(p, 5, axis=0)
        if ext.max() > MIN_OBJECT_EXTENT_M:
            out.append(m)
    return out


def recalled(gt_mask: np.ndarray, pred_inst: np.ndarray) -> bool:
    ids, inter = np.unique(pred_inst[gt_mask], return_counts=True)
    for i, n in zip(ids, inter):
        if i == 0:
            continue
        union = gt_mask.sum() + (pred_inst == i).sum() - n
        if n / union > 0.5:
            return True
    return False


class Scores:
    """Accumulates one backend's metrics over frames."""

    def __init__(self, space: LabelSpace) -> None:
        self.space = space
        self.C = space.max_id + 1
        self.conf = np.zeros((self.C, self.C), np.int64)
        self.pq = PqAccumulator(space.thing_mask)
        self.n_obj = 0
        self.n_rec = 0
        self.n_obs = 0
        self.n_obs_rec = 0
        self.wall_void = np.zeros(3, np.int64)  # wall tp, fp, fn with GT door / window pixels ignored
        self.cpu_s: list[float] = []
        self.wall_s: list[float] = []

    def add(self, res, gt_sem, gt_inst, big: list[np.ndarray], depth_m: np.ndarray, cpu_s: float,
            wall_s: float) -> None:
        self.conf += confusion_matrix(gt_sem, res.semantic, self.C)
        self.pq.add(res.semantic, res.instance, gt_sem, gt_inst)
        self.n_obj += len(big)
        hits = [recalled(m, res.instance) for m in big]
        self.n_rec += sum(hits)
        observable = [np.mean(depth_m[m] > 0) >= 0.5 for m in big]
        self.n_obs += sum(observable)
        self.n_obs_rec += sum(h for h, o in zip(hits, observable) if o)
        wall = self.space.id_of("wall")
        keep = ~np.isin(gt_sem, [0, self.space.id_of("door"), self.space.id_of("window")])
        pw, gw = (res.semantic == wall) & keep, (gt_sem == wall) & keep
        self.wall_void += [int((pw & gw).sum()), int((pw & ~gw).sum()), int((~pw & gw).sum())]
        self.cpu_s.append(cpu_s)
        self.wall_s.append(wall_s)

    def summary(self) -> dict:
        sem = miou_from_confusion(self.conf)
        pq = self.pq.result()
        tp, fp, fn = self.wall_void
        s = {"miou": sem.miou, "pq": pq.pq, "recall": self.n_rec / max(1, self.n_obj), "objects": self.n_obj,
             "recall_observable": self.n_obs_rec / max(1, self.n_obs), "observable": self.n_obs,
             "wall_void": tp / max(1, tp + fp + fn),
             "cpu_ms": 1000 * float(np.median(self.cpu_s)), "wall_ms": 1000 * float(np.median(self.wall_s))}
        for name in ("floor", "wall", "ceiling"):
            s[name] = sem.per_class_iou.get(self.space.id_of(name), float("nan"))
        return s


def run_sim(backends: dict, frames: int, space: LabelSpace, out_dir: Path,
            seeds: tuple[int, ...] = EVAL_SEEDS) -> dict[str, dict]:
    from metric_semantic_slam.core.panoptic import PanopticResult
    from tqdm import tqdm

    scores = {name: Scores(space) for name in backends}
    tiles: dict[str, list[np.ndarray]] = {name: [] for name in backends}
    thing = space.thing_mask
    for seed in seeds:
        data = render_eval_frames(seed, frames)
        K = data["K"]
        H, W = data["depth_m"].shape[1:]
        cam = PinholeCamera(W, H, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        for i in tqdm(range(frames), desc=f"seed {seed}", unit="frame", leave=False):
            gt_sem, gt_inst = data["semantic"][i], data["instance"][i]
            inp = PanopticInput(color=data["rgb"][i], depth_m=data["depth_m"][i], camera=cam,
                                gravity_camera=gravity_in_camera(data["T_world_camera"][i]),
                                gt_semantic=gt_sem, gt_instance=gt_inst)
            big = large_instances(gt_sem, gt_inst, data["depth_m"][i], cam, thing)
            for name, be in backends.items():
                t0, c0 = time.perf_counter(), time.thread_time()
                res = be.predict(inp)
                c1, t1 = time.thread_time(), time.perf_counter()
                scores[name].add(res, gt_sem, gt_inst, big, data["depth_m"][i], c1 - c0, t1 - t0)
                if i < 3 and not name.startswith("oracle"):
                    gt = PanopticResult(gt_sem, gt_inst)
                    tiles[name].append(np.hstack([overlay(inp.color, gt, space), overlay(inp.color, res, space)]))
    for name, t in tiles.items():
        if t:
            png = out_dir / f"sim_{name}.png"
            cv2.imwrite(str(png), cv2.cvtColor(np.vstack(t), cv2.COLOR_RGB2BGR))
            print(f"{name}: ground truth | prediction overlays -> {png}")
    return {name: s.summary() for name, s in scores.items()}


def overlay(color: np.ndarray, res, space: LabelSpace) -> np.ndarray:
    """Color image blended with class colors, instance borders in white. Shape: (H, W, 3) RGB."""
    lut = space.color_table()
    sem_rgb = lut[np.minimum(res.semantic, space.max_id)]
    out = (0.45 * color + 0.55 * sem_rgb).astype(np.uint8)
    out[res.semantic == 0] = (0.6 * color[res.semantic == 0]).astype(np.uint8)
    inst = res.instance.astype(np.int32)
    border = np.zeros(inst.shape, bool)
    border[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    border[1:] |= inst[1:] != inst[:-1]
    out[border & ((inst > 0) | np.roll(inst > 0, 1, 0) | np.roll(inst > 0, 1, 1))] = 255
    return out


def run_real(out_dir: Path, space: LabelSpace) -> tuple[list[str], bool]:
    """Geometric backend on the TUM frames; saves overlays, returns table lines and whether targets are met."""
    from metric_semantic_slam.io.sequence import open_sequence

    geo = make_backend("geometric", space)
    floor, table, obj = space.id_of("floor"), space.id_of("table"), space.id_of("object")
    lines, ok_all = [], True
    picks = {"tum_fr1_desk_9": [0, 4, 8], "tum_fr3_cabinet_keyframes58": [0, 20, 40]}
    for name, idx in picks.items():
        path = DATA / name
        if not path.is_dir():
            lines.append(f"{name}: missing (skipped)")
            ok_all = False
            continue
        frames = list(open_sequence(path))
        tiles = []
        for i in idx:
            f = frames[i]
            inp = PanopticInput(color=f.color, depth_m=f.depth_m, camera=f.camera)
            c0 = time.thread_time()
            res = geo.predict(inp)
            cpu_ms = 1000 * (time.thread_time() - c0)
            up_est = geo.last_up
            angle = float("nan")
            if f.gt is not None and f.gt.T_world_camera is not None and up_est is not None:
                up_gt = -gravity_in_camera(f.gt.T_world_camera)
                angle = float(np.degrees(np.arccos(np.clip(up_est @ up_gt, -1, 1))))
            valid = f.depth_m > 0
            plane_frac = float(np.isin(res.semantic, (floor, table))[valid].mean())
            min_px = 0.01 * res.semantic.size
            n_obj = sum(1 for k, c in res.instance_classes.items()
                        if c == obj and (res.instance == k).sum() >= min_px)
            ok = plane_frac >= 0.15 and n_obj >= 1
            ok_all &= ok
            lines.append(f"{name}[{i}]: floor+support {100 * plane_frac:.0f}% of valid px, {n_obj} objects "
                         f"(>= 1% of image), up error vs mocap {angle:.1f} deg, {cpu_ms:.0f} ms CPU "
                         f"-> {'ok' if ok else 'MISSED'}")
            tiles.append(np.hstack([f.color, overlay(f.color, res, space)]))
        png = out_dir / f"geometric_{name}.png"
        cv2.imwrite(str(png), cv2.cvtColor(np.vstack(tiles), cv2.COLOR_RGB2BGR))
        lines.append(f"  overlay -> {png}")
    return lines, ok_all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20, help="views per simulator seed (default 20)")
    ap.add_argument("--output", default=str(REPO / "output" / "bench_panoptic"), help="folder for PNGs")
    ap.add_argument("--backends", default="oracle,oracle_noisy,geometric,builtin",
                    help="comma list among oracle, oracle_noisy, geometric, builtin, torchscript, onnx")
    ap.add_argument("--model", default=None, help="model file for the torchscript / onnx rows")
    ap.add_argument("--adapter", default=None, help="adapter YAML for the torchscript / onnx rows")
    ap.add_argument("--seeds", default=",".join(map(str, EVAL_SEEDS)),
                    help="simulator seeds (default 7,8,9; must be < 1000: seeds >= 1000 train the built-in network)")
    ap.add_argument("--no-real", action="store_true", help="skip the TUM frames")
    args = ap.parse_args(argv)
    seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
    if not seeds or any(x >= 1000 for x in seeds):
        ap.error("--seeds: give simulator seeds below 1000 (>= 1000 are the built-in network's training seeds)")
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    space = load_label_space()
    print(f"cpu: {cpu_model()}; load average (1 min) {load_avg()}; 1 torch / OpenCV thread")

    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    backends, missed = {}, []
    for name in wanted:
        try:
            if name == "oracle":
                backends[name] = make_backend("oracle", space)
            elif name == "oracle_noisy":
                backends["oracle_noisy"] = make_backend("oracle", space, noise_fraction=0.2, seed=0)
            elif name in ("torchscript", "onnx"):
                if not args.model or not args.adapter:
                    print(f"{name}: no --model/--adapter given; row skipped")
                    continue
                backends[name] = make_backend(name, space, model_path=args.model, adapter_path=args.adapter)
            else:
                backends[name] = make_backend(name, space)
        except (ValueError, FileNotFoundError, ImportError) as e:
            if name == "builtin":
                print(f"builtin: weights missing or unusable ({e})")
                missed.append("builtin: no usable weights")
            else:
                print(f"{name}: cannot be built: {e}")
                missed.append(f"{name}: not built")
    t0 = time.perf_counter()
    table = run_sim(backends, args.frames, space, out_dir, seeds) if backends else {}
    print(f"\nsimulator seeds {seeds}, {args.frames} views each, 320x240, gravity from the pose "
          f"({time.perf_counter() - t0:.0f} s)")
    hdr = f"{'backend':<14}{'mIoU':>7}{'PQ':>7}{'floor':>7}{'wall':>7}{'wall*':>7}{'ceil':>7}{'recall':>8}" \
          f"{'objs':>6}{'recall*':>8}{'objs*':>6}{'CPU ms':>8}{'wall ms':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name, s in table.items():
        print(f"{name:<14}{s['miou']:7.3f}{s['pq']:7.3f}{s['floor']:7.3f}{s['wall']:7.3f}{s['wall_void']:7.3f}"
              f"{s['ceiling']:7.3f}{s['recall']:8.3f}{s['objects']:6d}{s['recall_observable']:8.3f}"
              f"{s['observable']:6d}{s['cpu_ms']:8.1f}{s['wall_ms']:9.1f}")
    print("wall*: wall IoU with ground-truth door / window pixels ignored (coplanar with the wall, "
          "indistinguishable by geometry); recall*: objects > 20 cm with >= 50 % valid depth (dark TV / "
          "monitor screens return no depth). Targets use the strict columns.")
    if "builtin" not in table and "builtin" in wanted:
        print(f"{'builtin':<14}  weights missing")

    def need(cond: bool, what: str) -> None:
        if not cond:
            missed.append(what)

    if "oracle" in table:
        need(table["oracle"]["miou"] > 0.999 and table["oracle"]["pq"] > 0.999, "oracle: mIoU/PQ != 1")
    if "geometric" in table:
        g = table["geometric"]
        for k in ("floor", "wall", "ceiling"):
            need(g[k] >= 0.9, f"geometric {k} IoU {g[k]:.3f} < 0.9")
        need(g["recall"] >= 0.8, f"geometric recall {g['recall']:.3f} < 0.8")
        need(g["cpu_ms"] < 100, f"geometric {g['cpu_ms']:.0f} ms CPU >= 100")
    if "builtin" in table:
        b = table["builtin"]
        need(b["miou"] >= 0.70, f"builtin mIoU {b['miou']:.3f} < 0.70")
        need(b["pq"] >= 0.50, f"builtin PQ {b['pq']:.3f} < 0.50")
        need(b["cpu_ms"] <= 60, f"builtin {b['cpu_ms']:.0f} ms CPU > 60")

    if not args.no_real and "geometric" in wanted:
        print("\nreal TUM frames, geometric backend, gravity estimated from the normals:")
        lines, ok = run_real(out_dir, space)
        print("\n".join(lines))
        need(ok, "geometric on TUM: floor/desk plane or objects not found")
    print(f"\nload average (1 min) at the end {load_avg()}")
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
