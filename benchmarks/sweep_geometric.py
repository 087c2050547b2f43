"""One-at-a-time sensitivity sweep of the ``geometric`` panoptic backend's parameters (issue #6).

Each variant changes one or more ``GeometricConfig`` fields from a base configuration and runs the backend on the
simulator views of ``bench_panoptic.py`` (20 views a seed, 320x240, gravity from the ground-truth pose); it
records, for every counted object (``bench_panoptic.counted_instances``), whether it is recalled
(``bench_panoptic.recalled``). The summary gives each variant's change in recalled objects against the base on
each seed group, and how many objects it gains and loses. The default groups are the ones the backend's methods
were chosen on (5, 6, 11 and 12, 13, 14) and the reported ones (7, 8, 9): choose on the first two, read the third.

Variants: by default every numeric field (``--fields`` to restrict) times each of ``--scales`` (integers
rounded, plus and minus one); ``--variants FILE`` takes a JSON list of option dicts instead. Runs in
``--workers`` processes (one thread each). ``--pack FILE`` writes the views and counted masks into one file,
and ``--packed FILE`` reads them from it, so a sweep can run on a machine without the renderer or Open3D
(the visibility test ray casts with Open3D), e.g. one with many cores. Results: ``sweep.jsonl`` (one line a
variant), a printed table sorted by the change on the choosing groups, and ``sweep.png``.

    python benchmarks/sweep_geometric.py [--workers 2] [--output output/sweep_geometric]
        [--fields edge_noise_sigmas,colour_growth_delta] [--scales 0.7,0.85,1.15,1.4]
        [--base '{"edge_noise_sigmas": 3.0}'] [--variants FILE] [--pack FILE | --packed FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metric_semantic_slam.core.camera import PinholeCamera  # noqa: E402
from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.core.panoptic import PanopticInput, make_backend  # noqa: E402
from metric_semantic_slam.core.panoptic.geometric import GeometricConfig  # noqa: E402

GROUPS = {"choose_a": (5, 6, 11), "choose_b": (12, 13, 14), "report": (7, 8, 9)}
FRAMES = 20
NOT_SWEPT = {"process_width", "max_depth_m", "max_planes"}

_VIEWS: list[tuple[PanopticInput, np.ndarray, list[tuple[int, str]]]] = []   # filled in each worker


def pack_views(seeds: list[int], path: Path | None = None) -> dict[str, np.ndarray]:
    """The views and counted objects of ``seeds``: per seed its rgb, depth (as indices into a table of its
    values: the simulated sensor's depth is disparity-quantised), a mask image numbering its counted objects
    (1..n per view), the camera poses, K and the objects' keys ("seed/view/instance id")."""
    from bench_panoptic import counted_instances, render_eval_frames, visibility_table
    space = load_label_space()
    out: dict[str, np.ndarray] = {}
    for seed in seeds:
        d = render_eval_frames(seed, FRAMES)
        vis = visibility_table(seed, d)
        table, idx = np.unique(d["depth_m"], return_inverse=True)
        counted = np.zeros(d["depth_m"].shape, np.uint8)
        keys = []
        for i in range(FRAMES):
            for j, m in enumerate(counted_instances(d["semantic"][i], d["instance"][i], vis, i, space.thing_mask)):
                counted[i][m] = j + 1
                keys.append(f"{i}|{j + 1}|{seed}/{i}/{int(np.bincount(d['instance'][i][m]).argmax())}")
        out.update({f"s{seed}_rgb": d["rgb"], f"s{seed}_depth_index": idx.reshape(d["depth_m"].shape).astype(np.uint32),
                    f"s{seed}_depth_table": table, f"s{seed}_counted": counted, f"s{seed}_T": d["T_world_camera"],
                    f"s{seed}_K": d["K"], f"s{seed}_keys": np.array(keys)})
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **out)
    return out


def _load_views(packed: dict[str, np.ndarray], seeds: list[int]) -> None:
    from bench_panoptic import gravity_in_camera
    _VIEWS.clear()
    for seed in seeds:
        K = packed[f"s{seed}_K"]
        h, w = packed[f"s{seed}_rgb"].shape[1:3]
        cam = PinholeCamera(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        depth = packed[f"s{seed}_depth_table"][packed[f"s{seed}_depth_index"]]
        keys = [k.split("|") for k in packed[f"s{seed}_keys"].tolist()]
        for i in range(depth.shape[0]):
            inp = PanopticInput(color=packed[f"s{seed}_rgb"][i], depth_m=depth[i], camera=cam,
                                gravity_camera=gravity_in_camera(packed[f"s{seed}_T"][i]))
            _VIEWS.append((inp, packed[f"s{seed}_counted"][i], [(int(j), k) for v, j, k in keys if int(v) == i]))


def _worker_init(packed_path: str | None, seeds: list[int]) -> None:
    import cv2
    import torch
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    if packed_path is not None:
        with np.load(packed_path) as z:
            _load_views({k: z[k] for k in z.files}, seeds)


def run_variant(options: dict) -> dict:
    """Recalled or not, per counted object key, for one set of ``GeometricConfig`` options."""
    from bench_panoptic import recalled
    t0 = time.perf_counter()
    try:
        backend = make_backend("geometric", load_label_space(), **options)
    except (TypeError, ValueError) as e:   # a value outside a field's range
        return {"options": options, "error": str(e)}
    found = {}
    for inp, counted, keys in _VIEWS:
        inst = backend.predict(inp).instance
        for j, key in keys:
            found[key] = recalled(counted == j, inst)
    return {"options": options, "recalled": found, "seconds": time.perf_counter() - t0}


def default_variants(base: dict, fields: list[str] | None, scales: list[float]) -> list[dict]:
    """``base`` itself first, then each numeric field (or those of ``fields``) at each scale of its base value."""
    config = dataclasses.replace(GeometricConfig(), **base)
    variants = [dict(base)]
    for f in dataclasses.fields(config):
        x = getattr(config, f.name)
        if (fields and f.name not in fields) or f.name in NOT_SWEPT or isinstance(x, (bool, str)):
            continue
        if isinstance(x, int):
            values = {max(0, round(x * s)) for s in scales} | {x - 1, x + 1}
        else:
            values = {round(x * s, 6) for s in scales}
        variants += [{**base, f.name: v} for v in sorted(values) if v != x and v >= 0]
    return variants


def group_counts(found: dict[str, bool]) -> dict[str, tuple[int, int]]:
    """(recalled, counted) per seed group."""
    out = {}
    for name, seeds in GROUPS.items():
        hits = [v for k, v in found.items() if int(k.split("/")[0]) in seeds]
        out[name] = (sum(hits), len(hits))
    return out


def summarize(rows: list[dict], base: dict, out_png: Path | None) -> list[tuple]:
    """Rows (change on the choosing groups, change per group, gained, lost, options), best first."""
    base_row = next(r for r in rows if r.get("options") == base and "recalled" in r)
    b = base_row["recalled"]
    b_counts = group_counts(b)
    table = []
    for r in rows:
        if "recalled" not in r or r is base_row:
            continue
        c = group_counts(r["recalled"])
        delta = {g: c[g][0] - b_counts[g][0] for g in GROUPS}
        gained = sum(v and not b.get(k, False) for k, v in r["recalled"].items())
        lost = sum(b.get(k, False) and not v for k, v in r["recalled"].items())
        changed = {k: v for k, v in r["options"].items() if base.get(k) != v}
        table.append((delta["choose_a"] + delta["choose_b"], delta, gained, lost, changed))
    table.sort(key=lambda t: (-t[0], t[3]))
    print("base: " + ", ".join(f"{g} {GROUPS[g]} {n}/{m} = {n / max(1, m):.3f}" for g, (n, m) in b_counts.items()))
    print(f"{'choose':>7}{'5,6,11':>8}{'12-14':>7}{'7-9':>6}{'gain':>6}{'lost':>6}  options")
    for total, d, g, lost, opts in table:
        print(f"{total:+7d}{d['choose_a']:+8d}{d['choose_b']:+7d}{d['report']:+6d}{g:6d}{lost:6d}  {json.dumps(opts)}")
    if out_png is not None and table:
        _plot(table, out_png)
    return table


def _plot(table: list[tuple], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    choose = np.array([t[0] for t in table])
    report = np.array([t[1]["report"] for t in table])
    fig, ax = plt.subplots(figsize=(7, 5))
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, (2, len(table)))
    ax.scatter(choose + jitter[0], report + jitter[1], s=12, alpha=0.6)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    for t, x, y in zip(table[:8], choose[:8], report[:8]):
        ax.annotate(json.dumps(t[4])[1:-1][:40], (x, y), fontsize=6)
    ax.set_xlabel("change in recalled objects, seeds 5, 6, 11 + 12, 13, 14 (choosing)")
    ax.set_ylabel("change in recalled objects, seeds 7, 8, 9 (reported)")
    ax.set_title(f"geometric backend: {len(table)} variants against the base")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--output", type=Path, default=Path("output/sweep_geometric"))
    ap.add_argument("--fields", default="", help="comma-separated GeometricConfig fields (default: all numeric)")
    ap.add_argument("--scales", default="0.7,0.85,1.15,1.4")
    ap.add_argument("--base", default="{}", help="JSON options of the base configuration")
    ap.add_argument("--variants", type=Path, help="JSON list of option dicts (the base is added first)")
    ap.add_argument("--pack", type=Path, help="write the views and counted masks to this .npz and stop")
    ap.add_argument("--packed", type=Path, help="read the views from a file written by --pack")
    args = ap.parse_args(argv)
    seeds = sorted({s for g in GROUPS.values() for s in g})
    if args.pack:
        pack_views(seeds, args.pack)
        print(f"wrote {args.pack}")
        return 0
    base = json.loads(args.base)
    if args.variants:
        variants = [dict(base)] + [{**base, **v} for v in json.loads(args.variants.read_text())]
    else:
        fields = [f for f in args.fields.split(",") if f]
        variants = default_variants(base, fields, [float(s) for s in args.scales.split(",")])
    packed_path = str(args.packed) if args.packed else None
    if packed_path is None:   # render (or read the bench's cache) once here; forked workers inherit the views
        _load_views(pack_views(seeds), seeds)
    args.output.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm
    rows = []
    with open(args.output / "sweep.jsonl", "w") as f, \
            mp.get_context("fork").Pool(args.workers, _worker_init, (packed_path, seeds)) as pool:
        for r in tqdm(pool.imap_unordered(run_variant, variants), total=len(variants), desc="variants"):
            rows.append(r)
            f.write(json.dumps(r) + "\n")
            f.flush()
    for r in rows:
        if "error" in r:
            print(f"not run: {json.dumps(r['options'])}: {r['error']}")
    summarize(rows, base, args.output / "sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
