"""Train the built-in panoptic network on simulator renders (see ``core/panoptic/builtin_net.py``).

Data: one cache file per scene seed under ``--cache`` (default ``output/panoptic_train_data/``),
``seed_<s>_n<frames>_<w>x<h>.npz`` with ``rgb`` (N, H, W, 3) uint8, ``depth_mm`` (N, H, W) uint16 (noisy
active depth, 0 = invalid), ``semantic`` (N, H, W) uint8 and ``instance`` (N, H, W) uint16. Frames are
rendered in-process at random times of a 90 s camera loop (not consecutive video frames), so each seed
gives diverse views; missing files are rendered first. Seeds < 1000 are refused: they are for evaluation.

Deterministic for ``--seed`` (fixed data order and augmentation from one torch generator; torch
thread count does not change results beyond float rounding).
Writes ``metric_semantic_slam/models/panoptic_builtin.pt`` (fp16 state dict + configs),
``metric_semantic_slam/models/panoptic_builtin.json`` (command, seeds, per-epoch curves, final metrics)
and ``docs/panoptic_builtin_training.png``.

    OMP_WAIT_POLICY=PASSIVE nice -n 5 python scripts/train_panoptic.py \
        --seeds 1000-1020,1022-1025,1050-1075 --val-seeds 1021 --frames-per-seed 40 --up-frames-per-seed 14 --epochs 11 --seed 0

(``OMP_WAIT_POLICY=PASSIVE``: on a shared, loaded CPU torch's spinning OpenMP threads made training
~5x slower; it does not change results.) Evaluate the saved weights on the benchmark seeds 7-9:
``python scripts/train_panoptic.py --evaluate``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

import torch
import torch.nn.functional as F
from tqdm import tqdm

from metric_semantic_slam.core.labels import load_label_space
from metric_semantic_slam.core.panoptic.builtin_net import (NetConfig, PanopticNet, PostprocessConfig,
                                                             instance_targets, make_net_input,
                                                             panoptic_postprocess)
from metric_semantic_slam.eval.semantic_metrics import PqAccumulator, confusion_matrix, miou_from_confusion
from metric_semantic_slam.sim.render import Renderer, RenderConfig
from metric_semantic_slam.sim.scene import generate_world
from metric_semantic_slam.sim.sensors import ActiveDepthConfig, simulate_active_depth
from metric_semantic_slam.sim.simulate import default_camera
from metric_semantic_slam.sim.trajectory import make_trajectory

DEFAULT_CACHE = Path("output/panoptic_train_data")
MIN_TRAIN_SEED = 1000  # evaluation uses small seeds (7, 8, 9); never train on seeds below this


def parse_seeds(text: str) -> list[int]:
    """``"1000-1039,1050"`` -> [1000, ..., 1039, 1050]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            seeds.extend(range(int(a), int(b) + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def cache_path(cache_dir: Path, seed: int, frames: int, width: int, height: int, pitch_up: bool = False) -> Path:
    return Path(cache_dir) / f"seed_{seed}_n{frames}_{width}x{height}{'_up' if pitch_up else ''}.npz"


def _pitch_up(T_world_camera: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotate a camera about its own x axis so that it looks up by ``angle_rad`` (optical frame, y down)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    T = T_world_camera.copy()
    T[:3, :3] = T[:3, :3] @ np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return T


def render_seed(seed: int, frames: int, width: int = 320, height: int = 240,
                pitch_up: bool = False) -> dict[str, np.ndarray]:
    """Render ``frames`` views of the room of ``seed`` at random times of a 90 s camera loop
    (handheld; every 4th seed the low ``robot`` preset for viewpoint diversity). ``pitch_up``: every
    view is tilted up by a random 10-50 degrees (the trajectories look slightly down and rarely see the
    ceiling; a camera in use also looks up).

    Shape: -> dict of arrays with leading dimension ``frames`` (see module docstring).
    """
    rng = np.random.default_rng([seed, 4242] + ([7] if pitch_up else []))
    world = generate_world(seed, with_person=True)
    preset = "robot" if seed % 4 == 3 else "handheld"
    duration_s = 90.0
    traj = make_trajectory(world, preset=preset, duration_s=duration_s, seed=seed)
    # Mild lighting change on some seeds so the net does not rely on one exposure.
    lighting = float(rng.choice([0.0, 0.0, 0.3, 0.6]))
    rcfg = RenderConfig(lighting_variation=lighting, raycast_threads=1)
    renderer = Renderer(world, rcfg)
    cam = default_camera(width, height)
    depth_cfg = ActiveDepthConfig()
    times = np.sort(rng.uniform(0.0, duration_s, size=frames))
    angles = np.deg2rad(rng.uniform(10.0, 50.0, size=frames)) if pitch_up else np.zeros(frames)
    stream = 100 if pitch_up else 0
    out = {"rgb": np.zeros((frames, height, width, 3), np.uint8),
           "depth_mm": np.zeros((frames, height, width), np.uint16),
           "semantic": np.zeros((frames, height, width), np.uint8),
           "instance": np.zeros((frames, height, width), np.uint16)}
    for i, t in enumerate(times):
        T = np.asarray(traj.T_world_camera(float(t)), np.float64)
        if pitch_up:
            T = _pitch_up(T, float(angles[i]))
        res = renderer.render(cam, T, float(t), np.random.default_rng([seed, i, 1 + stream]),
                              renderer.dynamic_mesh(float(t)))
        d = simulate_active_depth(res.depth_m, res.cos_incidence, renderer.ir_albedo(res.material), depth_cfg,
                                  np.random.default_rng([seed, i, 2 + stream])).depth_m
        d = np.where(np.isfinite(d), d, 0.0)
        out["rgb"][i] = res.color
        out["depth_mm"][i] = np.clip(np.rint(d * 1000.0), 0, 65535).astype(np.uint16)
        out["semantic"][i] = res.semantic.astype(np.uint8)
        out["instance"][i] = res.instance
    return out


def ensure_seed(cache_dir: Path, seed: int, frames: int, width: int = 320, height: int = 240,
                pitch_up: bool = False) -> Path:
    """Render and cache one seed unless its file already exists; returns the file path."""
    if seed < MIN_TRAIN_SEED:
        raise ValueError(f"training seed {seed} < {MIN_TRAIN_SEED}: small seeds are kept for evaluation")
    path = cache_path(cache_dir, seed, frames, width, height, pitch_up)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = render_seed(seed, frames, width, height, pitch_up)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")  # unique: parallel renderers may race on one seed
    np.savez_compressed(tmp, **data)
    tmp.replace(path)
    return path


def load_frames(cache_dir: Path, seeds: list[int], frames: int, width: int, height: int, up_frames: int = 0
                ) -> dict[str, torch.Tensor]:
    """Render (if missing) and load ``frames`` (+ ``up_frames`` tilted-up) views of each of ``seeds``;
    tensors stacked over all frames."""
    parts: dict[str, list[np.ndarray]] = {"rgb": [], "depth_mm": [], "semantic": [], "instance": []}
    for s in tqdm(seeds, desc="data", unit="seed"):
        files = [ensure_seed(cache_dir, s, frames, width, height)]
        if up_frames > 0:
            files.append(ensure_seed(cache_dir, s, up_frames, width, height, pitch_up=True))
        for f in files:
            with np.load(f) as d:
                for k in parts:
                    parts[k].append(d[k])
    return {k: torch.from_numpy(np.concatenate(v)) for k, v in parts.items()}


def class_weights(semantic: torch.Tensor, num_classes: int, power: float = 0.5, max_w: float = 8.0) -> torch.Tensor:
    """Inverse-frequency class weights ``(median_freq / freq)^power`` (clipped), 0 for class 0 (ignored)."""
    counts = torch.bincount(semantic.reshape(-1).long(), minlength=num_classes).double()
    freq = counts / counts.sum()
    present = (freq > 0) & (torch.arange(num_classes) > 0)
    med = freq[present].median()
    w = torch.where(present, (med / freq.clamp(min=1e-12)) ** power, torch.zeros_like(freq))
    return w.clamp(max=max_w).float()


def augment_batch(data: dict[str, torch.Tensor], idx: torch.Tensor, crop_hw: tuple[int, int],
                  gen: torch.Generator, depth_drop_p: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random scale (0.8-1.25), crop, horizontal flip (one affine resampling per batch), color jitter
    and depth dropout (the whole depth channel zeroed, so the net also works without depth).

    Shape: -> x (B, 4, h, w) network input, semantic (B, h, w) long, instance (B, h, w) long.
    """
    ch, cw = crop_hw
    B = len(idx)
    H, W = data["rgb"].shape[1:3]
    r = torch.rand(B, 8, generator=gen)
    scale = 0.8 * (1.25 / 0.8) ** r[:, 0]
    half_w = (cw / scale / W).clamp(max=1.0)  # half crop size in normalised [-1, 1] coordinates
    half_h = (ch / scale / H).clamp(max=1.0)
    cx = (1 - half_w) * (2 * r[:, 1] - 1)
    cy = (1 - half_h) * (2 * r[:, 2] - 1)
    flip = torch.where(r[:, 3] < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = flip * half_w, cx
    theta[:, 1, 1], theta[:, 1, 2] = half_h, cy
    grid = F.affine_grid(theta, [B, 1, ch, cw], align_corners=False)
    rgb = data["rgb"][idx].permute(0, 3, 1, 2).float()
    rgb = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)
    lab = torch.stack([data["depth_mm"][idx].float() / 1000.0, data["semantic"][idx].float(),
                       data["instance"][idx].float()], 1)
    lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="border", align_corners=False)
    # color jitter: global gain, per-channel gain, contrast about the mean, sensor noise
    gain = (0.7 + 0.6 * r[:, 4]).view(B, 1, 1, 1)
    chan = 1.0 + 0.16 * (torch.rand(B, 3, 1, 1, generator=gen) - 0.5)
    contrast = (0.8 + 0.4 * r[:, 5]).view(B, 1, 1, 1)
    m = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = ((rgb - m) * contrast + m) * gain * chan + 3.0 * torch.randn(rgb.shape, generator=gen)
    rgb = rgb.clamp(0, 255)
    dep = lab[:, :1] * (r[:, 6] >= depth_drop_p).float().view(B, 1, 1, 1)
    return make_net_input(rgb, dep), lab[:, 1].long(), lab[:, 2].long()


def compute_losses(out: dict[str, torch.Tensor], sem: torch.Tensor, ins: torch.Tensor, thing_lut: torch.Tensor,
                   weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Weighted CE at 1/2 resolution (class 0 ignored) + 100 * center MSE + 0.05 * offset L1 (thing pixels)."""
    # CE at the logits' resolution (1/2), labels subsampled: 4x cheaper than upsampling the logits
    sem2 = sem[:, ::2, ::2][:, :out["semantic"].shape[-2], :out["semantic"].shape[-1]]
    ce = F.cross_entropy(out["semantic"], sem2, weight=weights, ignore_index=0)
    heat, offset, mask = instance_targets(ins, thing_lut[sem] & (ins > 0))
    center = F.mse_loss(out["center"], heat)
    m = mask.expand_as(offset)
    off = (out["offset"] - offset).abs()[m].mean() if bool(m.any()) else out["offset"].sum() * 0.0
    return {"semantic": ce, "center": 100.0 * center, "offset": 0.05 * off}


@torch.no_grad()
def evaluate(net: PanopticNet, data: dict[str, torch.Tensor], thing_lut: torch.Tensor,
             post: PostprocessConfig, batch: int = 8) -> dict[str, float]:
    """mIoU and PQ (``eval/semantic_metrics``) of the net on full frames (depth used)."""
    net.eval()
    n = len(data["rgb"])
    acc_pred_s, acc_pred_i = [], []
    for a in range(0, n, batch):
        rgb = data["rgb"][a:a + batch].permute(0, 3, 1, 2)
        dep = data["depth_mm"][a:a + batch].float()[:, None] / 1000.0
        out = net(make_net_input(rgb, dep).contiguous(memory_format=torch.channels_last))
        for j in range(len(rgb)):
            s, i, _ = panoptic_postprocess(out["semantic"][j], out["center"][j], out["offset"][j], thing_lut, post)
            acc_pred_s.append(s.numpy().astype(np.uint16))
            acc_pred_i.append(i.numpy().astype(np.uint16))
    gt_s = data["semantic"].numpy().astype(np.uint16)
    gt_i = data["instance"].numpy().astype(np.uint16)
    ps = np.stack(acc_pred_s)
    sem = miou_from_confusion(confusion_matrix(gt_s, ps, num_classes=thing_lut.numel()))
    acc = PqAccumulator(thing_lut.numpy())
    for f in range(n):  # PQ per frame: instance ids are unique within a frame only
        acc.add(acc_pred_s[f], acc_pred_i[f], gt_s[f], gt_i[f])
    pq = acc.result()
    net.train()
    return {"miou": sem.miou, "pq": pq.pq, "pq_things": pq.pq_things, "pq_stuff": pq.pq_stuff,
            "pixel_accuracy": sem.pixel_accuracy,
            "per_class_iou": {str(k): round(v, 4) for k, v in sem.per_class_iou.items()}}


def save_weights(path: Path, net: PanopticNet, post: PostprocessConfig, meta: dict) -> None:
    """fp16 state dict + the net/post-processing configs (loaded by ``core/panoptic/builtin.py``)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "msslam_panoptic_builtin_v1", "net_config": net.config.to_dict(),
                "postprocess": asdict(post), "state_dict": state, "meta": meta}, path)


def plot_curves(path: Path, history: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for k in ("semantic", "center", "offset", "total"):
        ax[0].plot(ep, [h["train_loss"][k] for h in history], marker="o", label=k)
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("mean training loss"); ax[0].set_yscale("log"); ax[0].legend()
    ax[0].set_title("training losses (weighted)")
    for k in ("miou", "pq", "pq_things", "pq_stuff"):
        ax[1].plot(ep, [h["val"][k] for h in history], marker="o", label=k)
    ax[1].axhline(0.70, ls="--", c="gray", lw=0.8); ax[1].axhline(0.50, ls=":", c="gray", lw=0.8)
    ax[1].set_xlabel("epoch"); ax[1].set_ylim(0, 1); ax[1].legend(); ax[1].set_title("validation (held-out seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_backend(model_path: Path, seeds: list[int], frames: int, use_depth: bool = True) -> dict:
    """mIoU / PQ / ms per frame of the saved weights through the ``builtin`` backend on the benchmark's
    evaluation frames (``benchmarks/panoptic_scenes.py``, seeds < 1000, never trained on).
    One torch thread; ms = thread CPU time and wall time per frame of ``predict`` (batch of one)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_panoptic import render_eval_frames  # the benchmark's own frames (identical views)

    from metric_semantic_slam.core.panoptic import PanopticInput, make_backend

    torch.set_num_threads(1)
    labels = load_label_space()
    backend = make_backend("builtin", labels, model_path=model_path)
    conf = np.zeros((labels.max_id + 1,) * 2, np.int64)
    acc = PqAccumulator(labels.thing_mask)
    cpu_s, wall_s, n = [], [], 0
    for seed in seeds:
        d = render_eval_frames(seed, frames)
        for f in range(len(d["rgb"])):
            inp = PanopticInput(color=d["rgb"][f], depth_m=d["depth_m"][f] if use_depth else None)
            t0, c0 = time.perf_counter(), time.thread_time()
            res = backend.predict(inp)
            cpu_s.append(time.thread_time() - c0)
            wall_s.append(time.perf_counter() - t0)
            conf += confusion_matrix(d["semantic"][f], res.semantic, num_classes=labels.max_id + 1)
            acc.add(res.semantic, res.instance, d["semantic"][f], d["instance"][f])
            n += 1
    sem = miou_from_confusion(conf)
    pq = acc.result()
    warm = slice(min(3, n - 1), None)  # the first calls include one-time allocations
    return {"seeds": seeds, "frames": n, "depth": use_depth, "miou": sem.miou, "pq": pq.pq,
            "pq_things": pq.pq_things, "pq_stuff": pq.pq_stuff, "pixel_accuracy": sem.pixel_accuracy,
            "cpu_ms_median": 1000 * float(np.median(cpu_s[warm])), "wall_ms_median": 1000 * float(np.median(wall_s[warm])),
            "per_class_iou": {labels.by_id(k).name: round(v, 3) for k, v in sem.per_class_iou.items()},
            "per_class_pq": {labels.by_id(k).name: round(v.pq, 3) for k, v in pq.per_class.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the built-in panoptic network on simulator renders.")
    ap.add_argument("--seeds", default="1000-1020,1022-1025,1050-1075", help="training scene seeds (>= 1000), e.g. 1000-1099")
    ap.add_argument("--val-seeds", default="1021", help="held-out validation seeds (>= 1000)")
    ap.add_argument("--frames-per-seed", type=int, default=40)
    ap.add_argument("--up-frames-per-seed", type=int, default=14, help="extra views per seed tilted up 10-50 deg")
    ap.add_argument("--epochs", type=int, default=11)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, nargs=2, default=(128, 160), metavar=("H", "W"))
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--depth-drop", type=float, default=0.15, help="fraction of samples trained without depth")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--output", type=Path, default=Path("metric_semantic_slam/models/panoptic_builtin.pt"))
    ap.add_argument("--plot", type=Path, default=Path("docs/panoptic_builtin_training.png"))
    ap.add_argument("--render-only", action="store_true", help="only fill the data cache")
    ap.add_argument("--evaluate", action="store_true",
                    help="only evaluate --output on --eval-seeds (with and without depth) and print JSON")
    ap.add_argument("--eval-seeds", default="7-9")
    ap.add_argument("--eval-frames", type=int, default=20)
    args = ap.parse_args(argv)
    width, height = 320, 240
    if args.evaluate:
        res = [evaluate_backend(args.output, parse_seeds(args.eval_seeds), args.eval_frames, d) for d in (True, False)]
        print(json.dumps(res, indent=1))
        record = args.output.with_suffix(".json")
        if record.is_file():  # keep the evaluation next to the training record
            rec = json.loads(record.read_text())
            rec["evaluation"] = {"note": "benchmark frames of bench_panoptic.render_eval_frames, post-processing "
                                         "defaults of builtin_net.PostprocessConfig, 1 torch thread",
                                 "with_depth": res[0], "without_depth": res[1]}
            record.write_text(json.dumps(rec, indent=1) + "\n")
        return 0
    seeds, val_seeds = parse_seeds(args.seeds), parse_seeds(args.val_seeds)
    if set(seeds) & set(val_seeds):
        raise ValueError("training and validation seeds overlap")
    if args.render_only:
        for s in tqdm(seeds + val_seeds, desc="render seeds", unit="seed"):
            ensure_seed(args.cache, s, args.frames_per_seed, width, height)
            if args.up_frames_per_seed > 0:
                ensure_seed(args.cache, s, args.up_frames_per_seed, width, height, pitch_up=True)
        return 0
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    labels = load_label_space()
    C = labels.max_id + 1
    thing_lut = torch.from_numpy(labels.thing_mask)
    train = load_frames(args.cache, seeds, args.frames_per_seed, width, height, args.up_frames_per_seed)
    val = load_frames(args.cache, val_seeds, args.frames_per_seed, width, height, args.up_frames_per_seed)
    weights = class_weights(train["semantic"], C)
    net = PanopticNet(NetConfig(num_classes=C, input_hw=(height, width))).to(memory_format=torch.channels_last)
    post = PostprocessConfig()
    n = len(train["rgb"])
    steps_per_epoch = n // args.batch
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.1)
    meta = {"command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
            "seed": args.seed, "train_seeds": args.seeds, "val_seeds": args.val_seeds,
            "frames_per_seed": args.frames_per_seed, "up_frames_per_seed": args.up_frames_per_seed, "epochs": args.epochs, "batch": args.batch,
            "crop_hw": list(args.crop), "lr": args.lr, "depth_drop": args.depth_drop, "threads": args.threads,
            "train_frames": n, "val_frames": len(val["rgb"]), "image_hw": [height, width],
            "parameters": sum(p.numel() for p in net.parameters()),
            "class_weights": [round(float(w), 4) for w in weights], "torch": str(torch.__version__)}
    history: list[dict] = []
    best = -1.0
    t_start = time.time()
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(n, generator=gen)
        sums = {"semantic": 0.0, "center": 0.0, "offset": 0.0, "total": 0.0}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", unit="batch")
        for it in bar:
            idx = order[it * args.batch:(it + 1) * args.batch]
            x, sem, ins = augment_batch(train, idx, tuple(args.crop), gen, args.depth_drop)
            out = net(x.contiguous(memory_format=torch.channels_last))
            losses = compute_losses(out, sem, ins, thing_lut, weights)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in losses.items():
                sums[k] += float(v.detach())
            sums["total"] += float(loss.detach())
            if it % 10 == 0:
                bar.set_postfix({k: f"{v / (it + 1):.3f}" for k, v in sums.items()})
        bar.close()
        train_loss = {k: v / steps_per_epoch for k, v in sums.items()}
        v = evaluate(net, val, thing_lut, post)
        rec = {"epoch": epoch, "train_loss": train_loss, "val": v, "lr_end": sched.get_last_lr()[0],
               "elapsed_s": round(time.time() - t_start, 1)}
        history.append(rec)
        score = v["miou"] + v["pq"]
        print(f"epoch {epoch}: loss {train_loss['total']:.3f} val mIoU {v['miou']:.3f} PQ {v['pq']:.3f} "
              f"(things {v['pq_things']:.3f}, stuff {v['pq_stuff']:.3f}) [{rec['elapsed_s']:.0f} s]", flush=True)
        if score > best:
            best = score
            meta_best = {**meta, "best_epoch": epoch, "best_val": v}
            save_weights(args.output, net, post, meta_best)
        report = {**meta, "history": history, "best_epoch": meta_best["best_epoch"], "best_val": meta_best["best_val"],
                  "finished": epoch == args.epochs}
        args.output.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
        plot_curves(args.plot, history)
    print(f"best epoch {meta_best['best_epoch']}: mIoU {meta_best['best_val']['miou']:.3f} "
          f"PQ {meta_best['best_val']['pq']:.3f}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
