"""Benchmark: 3D scene graph from the semantic voxel mapper vs the simulator's ground truth.

Simulated scenes (seeds 1..3, ``--frames`` at ``--width``x``--height``, cached under ``--cache``) are
fused with ground-truth poses, noisy depth and ground-truth labels by ``SemanticVoxelMapper`` at 4 cm;
the scene graph is built from the map's mesh vertices (``--points cloud``: surface voxels) and compared:

- objects: precision / recall for ground-truth objects larger than 20 cm (largest box extent) that the
  sensor observed (``evaluation.observed_gt_ids``), matched by class and 3D IoU >= 0.25 of gravity-aligned
  boxes; median centre error of the matched boxes. A second line excludes objects thinner than two
  voxels (books standing in a row: below the map's resolution) and is reported next to it.
- relations: precision / recall of ``on, under, near, in_front_of, behind`` (the simulator's predicates)
  between matched objects.
- update cost: ``SceneGraphBuilder.update`` for 200 synthetic objects, 10 of which move between updates
  (CPU time of this thread, median of 60 updates; the builder is incremental, see its module docstring).

Targets: object P, R >= 0.9; centre error median <= 5 cm; relation P, R >= 0.85; update <= 20 ms.
Exit 1 on a missed target. Writes ``scene_graph_seed*.png``, ``scene_graph_seed*.json`` and ``results.json``.

Usage: python benchmarks/bench_scene_graph.py [--seeds 1 2 3] [--frames 300] [--width 640 --height 480]
       [--stride 2] [--points mesh|cloud] [--cache output/scene_graph_bench] [--output output/scene_graph_bench]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(REPO))

from metric_semantic_slam.eval.machine import cpu_name as cpu_model  # noqa: E402
from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.core.mapping.instances import MapInstance  # noqa: E402
from metric_semantic_slam.core.scene_graph import SceneGraphBuilder, SceneGraphConfig, run_query  # noqa: E402
from metric_semantic_slam.core.scene_graph.evaluation import (COMPARED_PREDICATES, load_gt_objects,  # noqa: E402
                                                               load_gt_relations, map_sim_folder, match_objects,
                                                               observed_gt_ids, relation_scores)
from metric_semantic_slam.core.scene_graph.plot import plot_scene_graph  # noqa: E402

TARGETS = {"precision": 0.9, "recall": 0.9, "centre_error_m": 0.05, "relation_precision": 0.85,
           "relation_recall": 0.85, "update_ms": 20.0}




def ensure_sim(cache: Path, seed: int, frames: int, width: int, height: int) -> Path:
    """A cached simulated folder (the demo's ``output/sim_seed1`` is reused when it matches)."""
    demo = REPO / "output" / f"sim_seed{seed}"
    for cand in (cache / f"sim_seed{seed}", demo):
        cfg = cand / "sim_config.json"
        if cfg.is_file():
            c = json.loads(cfg.read_text())
            if (c.get("seed"), c.get("frames"), c.get("width"), c.get("height")) == (seed, frames, width, height):
                return cand
    from metric_semantic_slam.sim.simulate import SimConfig, simulate_sequence

    out = cache / f"sim_seed{seed}"
    print(f"simulating seed {seed}: {frames} frames {width}x{height} -> {out}", flush=True)
    simulate_sequence(out, SimConfig(seed=seed, frames=frames, width=width, height=height), write_bag=False,
                      workers=1)
    return out


def ensure_map(cache: Path, sim: Path, seed: int, stride: int, voxel_m: float) -> dict:
    """Mapper outputs (mesh vertices, cloud, instance table) for a simulated folder, cached as npz."""
    f = cache / f"map_seed{seed}_{sim.name}_s{stride}_v{int(round(voxel_m * 1000))}mm.npz"
    if not f.is_file():
        t0 = time.perf_counter()
        mapper = map_sim_folder(sim, voxel_size_m=voxel_m, stride=stride)
        mesh, cloud = mapper.extract_mesh(), mapper.extract_point_cloud()
        table = json.dumps([i.to_dict() for i in mapper.instances()])
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, mesh_v=mesh.vertices, mesh_c=mesh.classes, mesh_i=mesh.instances,
                            cloud_p=cloud.points, cloud_c=cloud.classes, cloud_i=cloud.instances,
                            table=np.array(table))
        print(f"mapped seed {seed} in {time.perf_counter() - t0:.0f} s -> {f}", flush=True)
    d = np.load(f)
    return {"mesh": (d["mesh_v"], d["mesh_c"], d["mesh_i"]), "cloud": (d["cloud_p"], d["cloud_c"], d["cloud_i"]),
            "table": [MapInstance.from_dict(x) for x in json.loads(str(d["table"]))]}


def synthetic_objects(n: int, rng: np.random.Generator, points_per_object: int = 150):
    """``n`` box-shaped objects on a grid (surface samples) with an instance table, plus floor/walls."""
    labels = load_label_space()
    thing_ids = [lab.id for lab in labels.labels if lab.is_thing and not lab.is_dynamic and not lab.is_private]
    side = int(np.ceil(np.sqrt(n)))
    pts, cls, ins, table = [], [], [], []
    for k in range(n):
        cid = int(thing_ids[k % len(thing_ids)])
        ext = rng.uniform(0.1, 0.6, 3)
        centre = np.array([(k % side) * 0.8 + 0.5, (k // side) * 0.8 + 0.5, ext[2] / 2])
        yaw = rng.uniform(-np.pi, np.pi)
        u = rng.uniform(-0.5, 0.5, (points_per_object, 3)) * ext
        face = rng.integers(0, 3, points_per_object)
        u[np.arange(points_per_object), face] = np.sign(u[np.arange(points_per_object), face]) * ext[face] / 2
        c, s = np.cos(yaw), np.sin(yaw)
        p = np.column_stack([c * u[:, 0] - s * u[:, 1], s * u[:, 0] + c * u[:, 1], u[:, 2]]) + centre
        pts.append(p)
        cls.append(np.full(points_per_object, cid))
        ins.append(np.full(points_per_object, k + 1))
        votes = np.zeros(labels.max_id + 1, np.int64)
        votes[cid] = 10
        table.append(MapInstance(k + 1, votes, 0, 10, p.min(0), p.max(0), points_per_object))
    L = side * 0.8 + 0.5
    g = rng.uniform(0, L, (4000, 2))
    floor = np.column_stack([g, np.zeros(len(g))])
    walls = np.concatenate([np.column_stack([g[:500, 0], np.zeros(500), rng.uniform(0, 2.5, 500)]),
                            np.column_stack([g[500:1000, 0], np.full(500, L), rng.uniform(0, 2.5, 500)]),
                            np.column_stack([np.zeros(500), g[1000:1500, 1], rng.uniform(0, 2.5, 500)]),
                            np.column_stack([np.full(500, L), g[1500:2000, 1], rng.uniform(0, 2.5, 500)])])
    pts += [floor, walls]
    cls += [np.full(len(floor), labels.id_of("floor")), np.full(len(walls), labels.id_of("wall"))]
    ins += [np.zeros(len(floor), np.int64), np.zeros(len(walls), np.int64)]
    return (np.concatenate(pts).astype(np.float32), np.concatenate(cls), np.concatenate(ins), table, labels)


def bench_update_cost(n: int = 200, repeats: int = 60) -> dict:
    rng = np.random.default_rng(0)
    pts, cls, ins, table, labels = synthetic_objects(n, rng)
    builder = SceneGraphBuilder(labels, SceneGraphConfig())
    builder.update(pts, cls, ins, table, 0.0)  # warm-up (imports, first full update)
    if len(builder.graph.objects) != n:
        raise RuntimeError(f"synthetic scene: expected {n} objects, got {len(builder.graph.objects)}")
    cpu, wall = [], []
    moved = pts.copy()
    for r in range(repeats):
        # Each update moves 10 objects by 5 cm, so the diff has work to do.
        k = rng.choice(n, 10, replace=False) + 1
        m = np.isin(ins, k)
        moved[m, 0] += 0.05 * (1 if r % 2 == 0 else -1)
        t_c, t_w = time.thread_time(), time.perf_counter()
        u = builder.update(moved, cls, ins, table, float(r + 1), viewpoint_m=np.array([0.0, 0.0, 1.5]))
        cpu.append(time.thread_time() - t_c)
        wall.append(time.perf_counter() - t_w)
    return {"objects": n, "points": int(len(pts)), "relations": len(builder.graph.relations),
            "cpu_ms_median": 1000 * float(np.median(cpu)), "wall_ms_median": 1000 * float(np.median(wall)),
            "cpu_ms_max": 1000 * float(np.max(cpu)), "cpu_ms_min": 1000 * float(np.min(cpu)),
            "changed_last": len(u.changed)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--stride", type=int, default=2, help="fuse every n-th frame")
    ap.add_argument("--voxel", type=float, default=0.04)
    ap.add_argument("--points", choices=("mesh", "cloud"), default="mesh")
    ap.add_argument("--cache", type=Path, default=REPO / "output" / "scene_graph_bench")
    ap.add_argument("--output", type=Path, default=REPO / "output" / "scene_graph_bench")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    args.output.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_model()}  ({os.cpu_count()} logical CPUs); load average {os.getloadavg()}")
    print(f"compared predicates: {', '.join(COMPARED_PREDICATES)} (the simulator's; supports/left_of/right_of/"
          f"inside are produced but have no ground truth)")
    labels = load_label_space()
    cfg = SceneGraphConfig(voxel_size_m=args.voxel)
    rows, results = [], {"seeds": {}}
    agg = {"tp_pred": 0, "n_pred": 0, "tp_gt": 0, "n_gt": 0, "errs": [], "rel_tp": 0, "rel_pred": 0, "rel_gt": 0,
           "tp_pred_r": 0, "n_pred_r": 0, "tp_gt_r": 0, "n_gt_r": 0}
    per_pred = {p: [0, 0, 0] for p in COMPARED_PREDICATES}
    for seed in args.seeds:
        sim = ensure_sim(args.cache, seed, args.frames, args.width, args.height)
        m = ensure_map(args.cache, sim, seed, args.stride, args.voxel)
        pts, cls, ins = m[args.points]
        builder = SceneGraphBuilder(labels, cfg)
        builder.update(pts, cls, ins, m["table"], stamp_s=float(args.frames))
        g = builder.graph
        gt = load_gt_objects(sim)
        observed = observed_gt_ids(sim, gt)
        match = match_objects(g, gt, observed=observed)
        # Resolvable subset: gt objects at least two voxels thick in every dimension.
        thick = {o["instance_id"] for o in gt if min(o["extents_m"]) >= 2 * args.voxel}
        match_r = match_objects(g, gt, observed=observed & thick)
        rel = relation_scores(g, load_gt_relations(sim), match.pairs)
        (args.output / f"scene_graph_seed{seed}.json").write_text(g.to_json(indent=1))
        plot_scene_graph(g, args.output / f"scene_graph_seed{seed}.png", labels, points_m=m["cloud"][0],
                         point_classes=m["cloud"][1], title=f"seed {seed}: {len(g.objects)} objects, "
                         f"{len(g.relations)} relations")
        tp_pred = round(match.precision * len(match.pred_eval))
        tp_gt = round(match.recall * len(match.gt_eval))
        agg["tp_pred"] += tp_pred; agg["n_pred"] += len(match.pred_eval)  # noqa: E702
        agg["tp_gt"] += tp_gt; agg["n_gt"] += len(match.gt_eval)  # noqa: E702
        agg["tp_pred_r"] += round(match_r.precision * len(match_r.pred_eval))
        agg["n_pred_r"] += len(match_r.pred_eval)
        agg["tp_gt_r"] += round(match_r.recall * len(match_r.gt_eval))
        agg["n_gt_r"] += len(match_r.gt_eval)
        agg["errs"] += match.centre_errors_m
        a = rel["all"]
        agg["rel_tp"] += a["tp"]; agg["rel_pred"] += a["pred"]; agg["rel_gt"] += a["gt"]  # noqa: E702
        for p in COMPARED_PREDICATES:
            per_pred[p][0] += rel[p]["tp"]; per_pred[p][1] += rel[p]["pred"]; per_pred[p][2] += rel[p]["gt"]  # noqa: E702
        queries = {q: [x.ids for x in run_query(g, q)] for q in
                   ("cup on table", "chair in_front_of tv", "chair in_front_of monitor",
                    "support_surface min_area_m2=0.3")}
        rows.append((seed, len(gt), len(match.gt_eval), len(g.objects), len(match.pred_eval), match.precision,
                     match.recall, match_r.precision, match_r.recall,
                     float(np.median(match.centre_errors_m)) if match.centre_errors_m else float("nan"),
                     float(np.median(match.ious)) if match.ious else float("nan"), a["precision"], a["recall"],
                     a["gt"]))
        results["seeds"][seed] = {"sim": str(sim), "gt_objects": len(gt), "gt_eval": len(match.gt_eval),
                                  "graph_objects": len(g.objects), "pred_eval": len(match.pred_eval),
                                  "precision": match.precision, "recall": match.recall,
                                  "precision_resolvable": match_r.precision, "recall_resolvable": match_r.recall,
                                  "missed": match.missed, "spurious": match.spurious,
                                  "centre_error_median_m": rows[-1][9], "iou_median": rows[-1][10],
                                  "relations": {p: {k: v for k, v in r.items() if k not in ("missed", "extra")}
                                                for p, r in rel.items()},
                                  "relation_errors": {p: {"missed": r["missed"], "extra": r["extra"]}
                                                      for p, r in rel.items() if p != "all"},
                                  "queries": queries}
    upd = bench_update_cost()
    results["update_cost"] = upd
    P = agg["tp_pred"] / max(agg["n_pred"], 1)
    Rc = agg["tp_gt"] / max(agg["n_gt"], 1)
    Pr = agg["tp_pred_r"] / max(agg["n_pred_r"], 1)
    Rr = agg["tp_gt_r"] / max(agg["n_gt_r"], 1)
    err = float(np.median(agg["errs"])) if agg["errs"] else float("nan")
    relP = agg["rel_tp"] / max(agg["rel_pred"], 1)
    relR = agg["rel_tp"] / max(agg["rel_gt"], 1)

    print(f"\nmapper: {args.voxel * 100:.0f} cm voxels, every {args.stride}. frame of {args.frames} at "
          f"{args.width}x{args.height}, ground-truth poses and labels, noisy depth; graph from {args.points} points")
    hdr = (f"{'seed':>4} {'gt':>4} {'gt>20cm':>7} {'graph':>5} {'eval':>4} {'obj P':>6} {'obj R':>6} {'P res':>6} "
           f"{'R res':>6} {'c.err cm':>8} {'IoU':>5} {'rel P':>6} {'rel R':>6} {'rel gt':>6}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r[0]:>4} {r[1]:>4} {r[2]:>7} {r[3]:>5} {r[4]:>4} {r[5]:>6.3f} {r[6]:>6.3f} {r[7]:>6.3f} {r[8]:>6.3f} "
              f"{100 * r[9]:>8.2f} {r[10]:>5.2f} {r[11]:>6.3f} {r[12]:>6.3f} {r[13]:>6}")
    print(f"{'all':>4} {'':>4} {agg['n_gt']:>7} {'':>5} {agg['n_pred']:>4} {P:>6.3f} {Rc:>6.3f} {Pr:>6.3f} {Rr:>6.3f} "
          f"{100 * err:>8.2f} {'':>5} {relP:>6.3f} {relR:>6.3f} {agg['rel_gt']:>6}")
    print("\nrelations by predicate (all seeds): " + ", ".join(
        f"{p} P {tp / max(npred, 1):.2f} R {tp / max(ngt, 1):.2f} (gt {ngt})" for p, (tp, npred, ngt) in per_pred.items()))
    print(f"update cost, {upd['objects']} synthetic objects ({upd['points']} points, {upd['relations']} relations): "
          f"CPU {upd['cpu_ms_median']:.1f} ms median (min {upd['cpu_ms_min']:.1f}, max {upd['cpu_ms_max']:.1f}), "
          f"wall {upd['wall_ms_median']:.1f} ms; 10 of the objects move between updates")
    print("obj P/R: gt objects > 20 cm observed by the sensor; 'res' = only those >= 2 voxels thick in every "
          "dimension (books in a row are thinner than the map's voxels)")
    checks = {"object precision": (P, TARGETS["precision"], ">="), "object recall": (Rc, TARGETS["recall"], ">="),
              "centre error median [m]": (err, TARGETS["centre_error_m"], "<="),
              "relation precision": (relP, TARGETS["relation_precision"], ">="),
              "relation recall": (relR, TARGETS["relation_recall"], ">="),
              "update CPU [ms]": (upd["cpu_ms_median"], TARGETS["update_ms"], "<=")}
    failed = []
    for name, (v, t, op) in checks.items():
        ok = v >= t if op == ">=" else v <= t
        print(f"  {'ok  ' if ok else 'MISS'} {name}: {v:.3f} (target {op} {t})")
        if not ok:
            failed.append(name)
    results["summary"] = {"object_precision": P, "object_recall": Rc, "object_precision_resolvable": Pr,
                          "object_recall_resolvable": Rr, "centre_error_median_m": err,
                          "relation_precision": relP, "relation_recall": relR,
                          "per_predicate": {p: {"tp": a, "pred": b, "gt": c} for p, (a, b, c) in per_pred.items()},
                          "failed": failed, "cpu": cpu_model(), "load": os.getloadavg()}
    (args.output / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.output}/results.json and scene_graph_seed*.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
