"""Scene-graph evaluation against the simulator's ground truth (objects.json, relations.json), and a
helper that maps a simulated folder with ground-truth labels and poses (used by the benchmark and tests).

Matching: a ground-truth object and a graph object match when their classes agree and the 3D IoU of
their gravity-aligned boxes is at least ``iou_min``; pairs are taken greedily by decreasing IoU (one
to one). Relations are compared through that matching, predicate by predicate.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .boxes import box_iou_3d
from .model import SceneGraph

__all__ = ["ObjectMatch", "observed_gt_ids", "load_gt_objects", "load_gt_relations", "match_objects", "relation_scores",
           "map_sim_folder", "map_rendered_world", "COMPARED_PREDICATES"]

#: Predicates the simulator's ground truth defines (``near`` is symmetric, stored once, smaller id first).
COMPARED_PREDICATES: tuple[str, ...] = ("on", "under", "near", "in_front_of", "behind")


def load_gt_objects(sim_dir: str | Path) -> list[dict]:
    with open(Path(sim_dir) / "scene" / "objects.json") as f:
        return json.load(f)["objects"]


def load_gt_relations(sim_dir: str | Path) -> list[tuple[int, str, int]]:
    with open(Path(sim_dir) / "scene" / "relations.json") as f:
        return [(int(r["subject_id"]), r["predicate"], int(r["object_id"])) for r in json.load(f)["relations"]]


def observed_gt_ids(sim_dir: str | Path, gt_objects: list[dict], min_cover: float = 0.5,
                    min_density_ratio: float = 0.25) -> set[int]:
    """Ground-truth objects the sensor saw well enough to reconstruct their box.

    Uses ``scene/observed_points.ply`` (surface samples the simulated depth sensor returned in some
    frame, with their instance id): an object counts when its observed samples span at least
    ``min_cover`` of its box extent along each of its three axes and their number per m^2 of box
    surface is at least ``min_density_ratio`` of the median over all objects (glimpsed at the image
    border only, like a sofa seen in one corner, does not count). Objects the depth sensor hardly
    returns (dark tv / monitor screens drop out) or that the camera never faced are left out.
    """
    from ...io.ply import read_ply

    ply = read_ply(Path(sim_dir) / "scene" / "observed_points.ply")
    inst = np.asarray(ply.vertex_props["instance"]).astype(np.int64)
    pts = np.asarray(ply.vertices)
    counts = np.bincount(inst, minlength=max([int(o["instance_id"]) for o in gt_objects] + [0]) + 1)

    def box_area(o) -> float:
        e = np.asarray(o["extents_m"], np.float64)
        return float(2 * (e[0] * e[1] + e[0] * e[2] + e[1] * e[2]))

    # Observed samples per m^2 of box surface; the median over the objects is the typical coverage.
    dens = np.array([counts[int(o["instance_id"])] / box_area(o) for o in gt_objects])
    typical = float(np.median(dens[dens > 0])) if np.any(dens > 0) else 0.0
    out = set()
    for o, dn in zip(gt_objects, dens):
        p = pts[inst == int(o["instance_id"])]
        if len(p) < 10 or dn < min_density_ratio * typical:
            continue
        c, s = np.cos(o["yaw_rad"]), np.sin(o["yaw_rad"])
        d = p - np.asarray(o["center_m"])
        local = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]])
        span = local.max(0) - local.min(0)
        if np.all(span >= min_cover * np.asarray(o["extents_m"])):
            out.add(int(o["instance_id"]))
    return out


@dataclass
class ObjectMatch:
    """Result of matching. ``pairs`` maps gt instance id -> graph object id; ``ious`` and
    ``centre_errors_m`` are per matched pair; ``gt_eval`` are the gt ids that count (size filter)."""

    pairs: dict[int, int]
    ious: list[float]
    centre_errors_m: list[float]
    gt_eval: list[int]
    pred_eval: list[int]
    precision: float
    recall: float
    missed: list[int] = field(default_factory=list)
    spurious: list[int] = field(default_factory=list)


def match_objects(graph: SceneGraph, gt_objects: list[dict], iou_min: float = 0.25, min_size_m: float = 0.2,
                  observed: set[int] | None = None) -> ObjectMatch:
    """Match graph objects to ground-truth objects (static ones whose largest extent > ``min_size_m``).

    Recall counts those gt objects (only the ``observed`` ones when given). Precision counts the graph
    objects whose own largest extent > ``min_size_m``, except those matched to, or overlapping a
    same-class box of, a gt object left out of recall (small or unobserved: neither required nor
    penalised, like "don't care" regions).
    """
    gts = [o for o in gt_objects if not o.get("is_dynamic", False)]
    cand = []
    for o in gts:
        for oid, n in graph.objects.items():
            if n.class_name != o["class_name"]:
                continue
            iou = box_iou_3d(o["center_m"], o["extents_m"], o["yaw_rad"], n.box.center_m, n.box.extents_m, n.box.yaw_rad)
            if iou >= iou_min:
                cand.append((iou, o["instance_id"], oid))
    cand.sort(reverse=True)
    pairs: dict[int, int] = {}
    used = set()
    ious = []
    for iou, gid, oid in cand:
        if gid in pairs or oid in used:
            continue
        pairs[gid] = oid
        used.add(oid)
        ious.append(iou)
    gt_by_id = {o["instance_id"]: o for o in gts}
    big = [o["instance_id"] for o in gts if max(o["extents_m"]) > min_size_m
           and (observed is None or o["instance_id"] in observed)]
    errs = [float(np.linalg.norm(np.asarray(gt_by_id[g]["center_m"]) - graph.objects[pairs[g]].box.center_m))
            for g in big if g in pairs]
    # "Don't care": graph objects matched to, or overlapping a same-class box of, a gt object left out
    # of recall (small or unobserved, e.g. the visible base of a monitor whose screen the sensor misses).
    dont_care = {pairs[g] for g in pairs if g not in big}
    for o in gts:
        if o["instance_id"] in big:
            continue
        for oid, n in graph.objects.items():
            if n.class_name == o["class_name"] and box_iou_3d(o["center_m"], o["extents_m"], o["yaw_rad"],
                                                              n.box.center_m, n.box.extents_m, n.box.yaw_rad) > 0:
                dont_care.add(oid)
    dont_care -= set(pairs[g] for g in big if g in pairs)
    pred_eval = [oid for oid, n in graph.objects.items()
                 if max(n.box.extents_m) > min_size_m and oid not in dont_care]
    tp_pred = sum(1 for oid in pred_eval if oid in used)
    tp_gt = sum(1 for g in big if g in pairs)
    return ObjectMatch(pairs=pairs, ious=ious, centre_errors_m=errs, gt_eval=big, pred_eval=pred_eval,
                       precision=tp_pred / len(pred_eval) if pred_eval else 1.0,
                       recall=tp_gt / len(big) if big else 1.0,
                       missed=[g for g in big if g not in pairs], spurious=[o for o in pred_eval if o not in used])


def relation_scores(graph: SceneGraph, gt_relations: list[tuple[int, str, int]], pairs: dict[int, int],
                    predicates: tuple[str, ...] = COMPARED_PREDICATES) -> dict[str, dict]:
    """Precision / recall of the graph's relations against the ground truth, per predicate and overall.

    Only relations whose two ends are matched objects are compared (an unmatched object is an object
    error, already counted). ``near`` is compared as an unordered pair.
    """
    inv = {v: k for k, v in pairs.items()}

    def key(s, p, o):
        return (p, min(s, o), max(s, o)) if p == "near" else (p, s, o)

    gt = {key(s, p, o) for s, p, o in gt_relations if p in predicates and s in pairs and o in pairs}
    pred = {key(inv[r.subject_id], r.predicate, inv[r.object_id]) for r in graph.relations
            if r.predicate in predicates and r.subject_id in inv and r.object_id in inv}
    out = {}
    for p in list(predicates) + ["all"]:
        g = {k for k in gt if p == "all" or k[0] == p}
        q = {k for k in pred if p == "all" or k[0] == p}
        tp = len(g & q)
        out[p] = {"gt": len(g), "pred": len(q), "tp": tp, "precision": tp / len(q) if q else 1.0,
                  "recall": tp / len(g) if g else 1.0, "missed": sorted(g - q), "extra": sorted(q - g)}
    return out


def map_sim_folder(sim_dir: str | Path, voxel_size_m: float = 0.04, stride: int = 1, max_frames: int | None = None,
                   device: str = "cpu", on_frame=None):
    """Fuse a simulated folder with ground-truth poses, depth and labels into a SemanticVoxelMapper.

    ``on_frame(mapper, frame)`` is called after each integration (for incremental tests).
    Returns the mapper. Shape: frames of the folder's camera.
    """
    from ...io.tum import open_tum_folder
    from ..labels import load_label_space
    from ..mapping import MapperConfig, SemanticVoxelMapper, TsdfConfig

    seq = open_tum_folder(sim_dir, max_frames=max_frames, stride=stride)
    labels_path = Path(sim_dir) / "labels.yaml"
    labels = load_label_space(labels_path if labels_path.is_file() else None)
    mapper = SemanticVoxelMapper(MapperConfig(tsdf=TsdfConfig(voxel_size_m=voxel_size_m), device=device), labels)
    for frame in seq:
        gt = frame.gt
        if gt is None or gt.T_world_camera is None or gt.semantic is None:
            raise ValueError(f"{sim_dir}: frame {frame.index} lacks ground-truth pose or labels")
        mapper.integrate(frame.depth_m, frame.color, frame.camera, gt.T_world_camera, semantic=gt.semantic,
                         instance=gt.instance)
        if on_frame is not None:
            on_frame(mapper, frame)
    return mapper


def map_rendered_world(seed: int, n_frames: int = 80, width: int = 240, height: int = 180, duration_s: float = 50.0,
                       with_person: bool = True, label_space=None, voxel_size_m: float = 0.04, on_frame=None):
    """Ray cast a simulated world along its hand-held loop (exact depth, ground-truth labels, no color,
    no files) and fuse the frames; a fast stand-in for ``msslam simulate`` + mapping in tests.

    ``n_frames`` poses are spread over ``duration_s`` (50 s is about one loop round the room).
    ``label_space`` is the mapper's (None: the bundled one); ``on_frame(mapper, hits, T_world_camera,
    t_s)`` is called after each integration. Returns (world, mapper).
    """
    from ...sim.render import Renderer
    from ...sim.scene import generate_world
    from ...sim.simulate import default_camera
    from ...sim.trajectory import make_trajectory
    from ..labels import load_label_space
    from ..mapping import MapperConfig, SemanticVoxelMapper, TsdfConfig

    world_labels = load_label_space()
    world = generate_world(seed, with_person=with_person, label_space=world_labels)
    traj = make_trajectory(world, preset="handheld", duration_s=duration_s, seed=seed)
    renderer = Renderer(world)
    camera = default_camera(width, height)
    mapper = SemanticVoxelMapper(MapperConfig(tsdf=TsdfConfig(voxel_size_m=voxel_size_m), device="cpu"),
                                 label_space if label_space is not None else world_labels)
    for t in np.linspace(0.0, duration_s, n_frames):
        T = np.asarray(traj.T_world_camera(float(t)), np.float64)
        hits = renderer.cast(camera, T, float(t))
        mapper.integrate(hits.depth_m, None, camera, T, semantic=hits.semantic, instance=hits.instance)
        if on_frame is not None:
            on_frame(mapper, hits, T, float(t))
    return world, mapper
