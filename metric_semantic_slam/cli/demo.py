"""``msslam demo [BAG]``: the whole node suite over real DDS on a bag, then the saved map, a picture and metrics.

Steps (each printed as it happens):

1. the bag: BAG, else ``OUTPUT/sim_seed1/bag``, simulated (seed 1, ``--frames`` frames) when missing;
2. a launch config: the chosen profile (``--profile oracle`` = ``config/launch/sim_replay.yaml``, ground-truth
   poses + labels; ``vio`` = ``sim_replay_vio.yaml``; or ``--config FILE``) written to
   ``OUTPUT/suite/launch.yaml`` with absolute params files, the mapper saving into ``OUTPUT/suite`` on
   SIGINT, a 1 s status period and the ``--param NODE.NAME=VALUE`` overrides. A bag without
   ``/ground_truth/semantic`` gets the model-free ``geometric`` panoptic backend, one without
   ``/ground_truth/pose`` the tracker (``pose_source: vio``); the demo says so;
3. ``msslam launch`` with that config; the demo waits until every node publishes ``~/status``;
4. ``msslam play BAG --clock --rate R`` (only the topics the nodes subscribe to), showing how many frames
   each node has processed; then waits until the mapper has integrated everything queued;
5. SIGINT to the launcher: every node stops, the mapper saves ``mesh.ply``, ``map.npz``,
   ``trajectory.txt``, ``instances.json``, ``scene_graph.json`` into ``OUTPUT/suite``;
6. ``mesh.png`` / ``mesh_semantic.png`` renders, ``msslam eval`` against the ground truth when there is
   some (ATE against ``/ground_truth/pose`` or ``--gt``; mesh F-score and 3D mIoU against the simulator's
   ``scene/`` next to the bag) into ``OUTPUT/suite/eval``;
7. one summary table (metrics + per node: rate, processed / dropped frames, stage ms, latency p50/p95),
   also written as ``OUTPUT/suite/metrics.json``. ``--compare DIR`` adds an offline reconstruction's
   ``metrics.json`` (``msslam reconstruct``) to the table.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_parser", "run", "PROFILES", "MAIN_STAGE", "main_stage", "write_launch_config", "bag_topics",
           "summarize_nodes", "parse_overrides", "format_table", "evaluate_suite_outputs", "flat_metrics",
           "pose_source"]

REPO = Path(__file__).resolve().parents[2]
PROFILES = {"oracle": "sim_replay.yaml", "vio": "sim_replay_vio.yaml"}
# the stage that handles one input frame in each node (its count = frames processed)
MAIN_STAGE = {"depth_fusion": "fuse", "vio": "track", "panoptic": "predict", "mapper": "integrate",
              "scene_graph": "scene_graph_update"}
_MSSLAM = [sys.executable, "-m", "metric_semantic_slam.cli.main"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``demo`` verb."""
    p = subparsers.add_parser(
        "demo", help="run the five nodes over DDS on a bag, save the map, render it and print the metrics",
        description="Start the node suite (msslam launch), replay BAG into it (msslam play --clock), save the map "
        "on SIGINT, render it, evaluate it against the ground truth when there is some and print a summary.")
    p.add_argument("bag", nargs="?", default=None,
                   help="bag to replay (default OUTPUT/sim_seed1/bag, simulated when missing)")
    p.add_argument("--output", type=Path, default=Path("output"),
                   help="output root: the map goes to OUTPUT/suite (default output)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="oracle",
                   help="oracle: ground-truth poses + labels (sim_replay.yaml); vio: tracked poses + geometric "
                   "labels (sim_replay_vio.yaml)")
    p.add_argument("--config", type=Path, default=None, help="a launch config instead of --profile's")
    p.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                   help="parameter override (YAML value), e.g. mapper.voxel_size_m=0.05; repeatable")
    p.add_argument("--rate", type=float, default=0.2,
                   help="playback speed factor (default 0.2: what 2 CPU cores follow at 640x480)")
    p.add_argument("--frames", type=int, default=300, help="frames to simulate when there is no bag")
    p.add_argument("--domain", type=int, default=None,
                   help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID, else 0)")
    p.add_argument("--gt", type=Path, default=None, help="ground-truth TUM trajectory (default: from the bag)")
    p.add_argument("--threshold", type=float, default=0.05, help="mesh F-score distance in meters (default 0.05)")
    p.add_argument("--compare", type=Path, default=None,
                   help="folder of an offline `msslam reconstruct` run: its metrics go into the table")
    p.add_argument("--up-timeout", type=float, default=240.0, help="seconds to wait for every node's status")
    p.add_argument("--idle-s", type=float, default=5.0,
                   help="after playback, stop once every queue is empty and no node finished a frame for this long")
    p.add_argument("--drain-timeout-s", type=float, default=300.0,
                   help="after playback, wait at most this long for the nodes to empty their queues")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation")
    p.set_defaults(func=run)
    return p


# ------------------------------------------------------------------------------------------ bag + config
def bag_topics(bag: Path) -> dict[str, int]:
    """Topic -> message count of a bag (rosbag2 folder/file or ROS 1 bag), from its index only."""
    from rosbags.highlevel import AnyReader

    with AnyReader([Path(bag)]) as reader:
        counts: dict[str, int] = {}
        for c in reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + int(c.msgcount)
    return counts


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["mapper.voxel_size_m=0.05"]`` -> ``{"mapper": {"voxel_size_m": 0.05}}``; ValueError when malformed."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not sep or not dot or not node or not name:
            raise ValueError(f"bad --param {item!r}: expected NODE.NAME=VALUE")
        out.setdefault(node, {})[name] = yaml.safe_load(value)
    return out


def write_launch_config(src: Path, dest: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """``src`` with absolute params files and ``overrides`` merged into the nodes' parameters, at ``dest``."""
    import yaml

    cfg = yaml.safe_load(Path(src).read_text()) or {}

    def absolute(f: Any) -> Any:
        if isinstance(f, list):
            return [absolute(x) for x in f]
        return str((Path(src).resolve().parent / str(f)).resolve())

    if cfg.get("params_file"):
        cfg["params_file"] = absolute(cfg["params_file"])
    nodes = cfg.setdefault("nodes", {}) or {}
    for name, params in overrides.items():
        nodes.setdefault(name, {})
    for name, node in nodes.items():
        node = dict(node or {})
        if node.get("params_file"):
            node["params_file"] = absolute(node["params_file"])
        if name in overrides:
            node["parameters"] = {**(node.get("parameters") or {}), **overrides[name]}
        nodes[name] = node
    cfg["nodes"] = nodes
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(f"# generated by msslam demo from {src}\n" + yaml.safe_dump(cfg, sort_keys=False))
    return dest


def subscribed_bag_topics(config: Path, available: dict[str, int]) -> list[str]:
    """The bag topics the config remaps node inputs to and the bag has (playback waits for those only)."""
    import yaml

    cfg = yaml.safe_load(config.read_text()) or {}
    topics = set((cfg.get("remappings") or {}).values())
    for node in (cfg.get("nodes") or {}).values():
        topics |= set(((node or {}).get("remappings") or {}).values())
    return sorted(t for t in topics if t in available)


def node_parameters(config: Path, name: str) -> dict[str, Any]:
    """The ``parameters`` a launch config gives node ``name`` (params files not included)."""
    from .launch import load_config

    return next((dict(n.parameters) for n in load_config(config).nodes if n.name == name), {})


def pose_source(config: Path) -> str:
    """Where the config's poses come from: ``ground_truth`` or ``vio`` (the vio node's parameter, else its
    params file's default)."""
    import yaml

    value = node_parameters(config, "vio").get("pose_source")
    if value is None:
        params = REPO / "config" / "params" / "vio.yaml"
        raw = yaml.safe_load(params.read_text()) if params.is_file() else {}
        value = next(iter((raw or {}).values()), {}).get("ros__parameters", {}).get("pose_source", "vio")
    return str(value)


def enabled_nodes(config: Path) -> list[str]:
    from .launch import load_config

    return [s.name for s in load_config(config).nodes]


# ------------------------------------------------------------------------------------------ summary
def main_stage(name: str, stages: dict[str, dict]) -> str | None:
    """The stage whose count is the node's processed frames: :data:`MAIN_STAGE`, else the busiest one (e.g.
    vio republishing ground-truth poses has only ``publish``)."""
    main = MAIN_STAGE.get(name)
    if main in stages:
        return main
    return max(stages, key=lambda k: (stages[k]["mean_ms"] or 0) * stages[k]["count"], default=None)


def flowing_rate_hz(history: list[tuple[float, dict]], stage: str | None) -> float | None:
    """Mean rate of ``stage`` while frames flowed, from a node's statuses ``(receive s, status)``: the count's
    rise between the first and the last status sent while it was rising (after the first frame, before the
    final count; statuses come every ``status_period_s``). The status's own ``rate_hz`` spans its last 500
    events up to the moment it is sent: the one read after the run has decayed (18.7 Hz for a stage that kept
    up with 30 Hz), and one read at the start can show a start-up backlog's burst."""
    counts = [(t, st.get("stages", {}).get(stage or "", {}).get("count", 0)) for t, st in history]
    started = [(t, c) for t, c in counts if c > 0]
    if not started:
        return None
    rising = [(t, c) for t, c in started if c < started[-1][1]]
    if len(rising) < 2:  # too short a run for two statuses inside it: up to the first with the final count
        rising = [started[0], next((t, c) for t, c in started if c == started[-1][1])]
    (t0, c0), (t1, c1) = rising[0], rising[-1]
    return round((c1 - c0) / (t1 - t0), 2) if t1 > t0 else None


def frames_in(queues: dict[str, dict]) -> int:
    """Frames into a node, from its status's ``queues``: the largest count over its input queues, not their sum
    (depth_fusion's IR pairs of the same frames have a queue of their own)."""
    return max((q["received"] for q in queues.values()), default=0)


def summarize_nodes(statuses: dict[str, dict], history: dict[str, list[tuple[float, dict]]]) -> list[dict]:
    """One row per node from its last status (counts, stage ms, latency) and every status it sent before the
    stop (``history``, receive time and status: the rate)."""
    rows = []
    for name, st in statuses.items():
        stages = st.get("stages", {})
        main = main_stage(name, stages)
        queues = st.get("queues", {})
        lat = st.get("latency", {})
        lat_name = "mesh" if "mesh" in lat else next(iter(lat), None)
        rows.append({
            "node": name,
            "received": frames_in(queues),
            "processed": stages[main]["count"] if main else 0,
            "queue_dropped": sum(q["dropped"] for q in queues.values()),
            "queue_high_water": {k: f"{q['high_water']}/{q['maxsize']}" for k, q in queues.items()},
            "bad_input_dropped": int(sum(st.get("drops", {}).values())),
            "drops": st.get("drops", {}),
            "errors": st.get("errors", 0),
            "main_stage": main,
            "rate_hz": flowing_rate_hz(history.get(name, []), main),
            "stage_ms": {k: v["mean_ms"] for k, v in stages.items()},
            "stage_cpu_ms": {k: v["cpu_mean_ms"] for k, v in stages.items()},
            "stage_p95_ms": {k: v["p95_ms"] for k, v in stages.items()},
            "latency_name": lat_name,
            "latency_p50_ms": lat[lat_name]["p50_ms"] if lat_name else None,
            "latency_p95_ms": lat[lat_name]["p95_ms"] if lat_name else None,
            "latency": lat,
            "memory_peak_mb": (st.get("memory_mb") or {}).get("peak"),
        })
    return rows


def _f(v: Any, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(rows: list[dict], metrics: dict, compare: dict | None) -> str:
    """The demo's summary: map metrics (suite, and offline when given), then one line per node."""
    lines = []
    head = f"{'metric':<28} {'suite':>10}" + (f" {'offline':>10}" if compare is not None else "")
    lines += [head, "-" * len(head)]
    for key, label, scale, spec in (("ate_rmse_m", "ATE RMSE [cm]", 100.0, ".2f"),
                                    ("mesh_fscore", "mesh F-score @ %g cm", None, ".3f"),
                                    ("mesh_precision", "mesh precision", None, ".3f"),
                                    ("mesh_recall", "mesh recall", None, ".3f"),
                                    ("miou_3d", "3D mIoU", None, ".3f"),
                                    ("frames_mapped", "frames mapped", None, "d"),
                                    ("mesh_vertices", "mesh vertices", None, "d")):
        if "%g" in label:
            label = label % (100 * metrics.get("threshold_m", 0.05))
        v = metrics.get(key)
        o = None if compare is None else compare.get(key)
        if v is None and o is None:
            continue
        sv = None if v is None else (v * scale if scale else v)
        so = None if o is None else (o * scale if scale else o)
        lines.append(f"{label:<28} {_f(sv, spec):>10}" + (f" {_f(so, spec):>10}" if compare is not None else ""))
    lines.append("")
    head = (f"{'node':<13} {'in':>5} {'done':>5} {'q.drop':>6} {'bad':>4} {'Hz':>6} {'latency':<9} {'p50 ms':>8} "
            f"{'p95 ms':>8} {'peak MB':>7}  stages: mean wall ms (thread CPU ms)")
    lines += [head, "-" * len(head)]
    for r in rows:
        stages = ", ".join(f"{k} {_f(v)} ({_f(r['stage_cpu_ms'].get(k))})" for k, v in r["stage_ms"].items())
        lines.append(f"{r['node']:<13} {r['received']:>5} {r['processed']:>5} {r['queue_dropped']:>6} "
                     f"{r['bad_input_dropped']:>4} {_f(r['rate_hz']):>6} {str(r['latency_name'] or '-'):<9} "
                     f"{_f(r['latency_p50_ms']):>8} {_f(r['latency_p95_ms']):>8} "
                     f"{_f(r.get('memory_peak_mb'), '.0f'):>7}  {stages}")
    for r in rows:
        if r["drops"] or r["errors"]:
            lines.append(f"  {r['node']}: drops by reason {r['drops']}, errors {r['errors']}")
    return "\n".join(lines)


def flat_metrics(m: dict) -> dict:
    """The headline numbers of an ``msslam eval`` or ``msslam reconstruct`` metrics.json."""
    out: dict[str, Any] = {}
    if "trajectory" in m:
        out["ate_rmse_m"] = m["trajectory"]["ate"]["translation_m"]["rmse"]
    if "ate_rmse_m" in m:
        out["ate_rmse_m"] = m["ate_rmse_m"]
    if "mesh" in m:
        out.update(mesh_fscore=m["mesh"]["fscore"], mesh_precision=m["mesh"]["precision"],
                   mesh_recall=m["mesh"]["recall"], threshold_m=m["mesh"].get("threshold_m", 0.05))
    if "semantic_3d" in m:
        out["miou_3d"] = m["semantic_3d"]["miou"]
    for k in ("frames_mapped", "mesh_vertices"):
        if k in m:
            out[k] = m[k]
    return out


# ------------------------------------------------------------------------------------------ steps
class _Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[demo {time.monotonic() - self.t0:6.1f} s] {msg}", flush=True)


def _default_bag(output: Path, frames: int, say: _Progress) -> Path:
    bag = output / "sim_seed1" / "bag"
    if bag.exists() and any(bag.iterdir()):
        return bag
    from ..sim.simulate import simulate

    say(f"no bag at {bag}: simulating seed 1, {frames} frames into {bag.parent}")
    simulate(bag.parent, seed=1, frames=frames, write_bag=True)
    return bag


def _gt_trajectory_file(bag: Path, gt: Path | None, dest: Path) -> Path | None:
    """A TUM ground-truth file: ``gt``, else one next to the bag, else the bag's /ground_truth/pose."""
    if gt is not None:
        return gt
    beside = bag.parent / "groundtruth.txt"
    if beside.is_file():
        return beside
    from ..io.sequence import open_sequence
    from ..io.trajectory import write_tum_trajectory

    traj = open_sequence(bag).gt_trajectory()
    if traj is None or len(traj) == 0:
        return None
    return write_tum_trajectory(dest, traj.stamps_s, traj.T_world_camera)


def mesh_in_gt_frame(mesh: Path, gt_file: Path, est_file: Path, dest: Path, min_poses_se3: int = 10) -> Path:
    """``mesh`` moved by the SE(3) alignment of the estimated trajectory onto the ground truth (the one ATE
    uses; the first pose's when fewer than ``min_poses_se3`` poses match), so a map built in the tracker's own
    world frame can be compared with the ground-truth scene."""
    import numpy as np

    from ..eval.trajectory_metrics import compute_ate
    from ..io.ply import read_ply, write_ply
    from ..io.trajectory import read_tum_trajectory

    gt_traj, est_traj = read_tum_trajectory(gt_file), read_tum_trajectory(est_file)
    ate = compute_ate(gt_traj, est_traj, align="se3")
    if ate.matched < min_poses_se3:  # a few close poses leave the rotation about them undetermined
        ate = compute_ate(gt_traj, est_traj, align="origin")
    ply = read_ply(mesh)
    R, t = np.asarray(ate.alignment.R), np.asarray(ate.alignment.t)
    vertices = ate.alignment.scale * ply.vertices @ R.T + t
    props = {k: v for k, v in ply.vertex_props.items() if k not in ("x", "y", "z")}
    return write_ply(dest, vertices, ply.faces, vertex_props=props)


def evaluate_suite_outputs(bag: Path, suite: Path, gt: Path | None, threshold_m: float, estimated_poses: bool,
                           say: Callable[[str], None]) -> dict:
    """``msslam eval`` of what the suite saved in ``suite`` (trajectory.txt, mesh.ply) against the ground truth
    next to ``bag`` (or ``gt``); writes ``suite/eval`` and returns its metrics ({} when there is nothing to
    compare with). ``estimated_poses``: the map was built on tracked poses, so the mesh is first moved into the
    ground truth's frame by the trajectory alignment."""
    from .evaluate import add_parser as eval_parser

    sub = argparse.ArgumentParser().add_subparsers()
    eval_parser(sub)
    argv = ["eval"]
    gt_file = _gt_trajectory_file(bag, gt, suite / "groundtruth.txt")
    have_traj = gt_file is not None and (suite / "trajectory.txt").is_file()
    if have_traj:
        argv += ["--gt", str(gt_file), "--est", str(suite / "trajectory.txt")]
    scene = bag.parent / "scene"
    if (scene / "mesh.ply").is_file() and (suite / "mesh.ply").is_file():
        mesh = suite / "mesh.ply"
        if estimated_poses:
            if not have_traj:
                say("estimated poses and no ground-truth trajectory: the mesh cannot be put in the scene's frame")
                return {}
            try:
                mesh = mesh_in_gt_frame(mesh, gt_file, suite / "trajectory.txt", suite / "eval" / "mesh_gt_frame.ply")
            except ValueError as exc:
                say(f"cannot align the trajectory to the ground truth ({exc}): no metrics")
                return {}
            say(f"the tracker's map moved into the ground-truth frame by the ATE alignment: {mesh}")
        argv += ["--mesh", str(mesh), "--gt-mesh", str(scene / "mesh.ply"),
                 "--threshold", str(threshold_m)]
        if (scene / "observed_points.ply").is_file():
            argv += ["--gt-points", str(scene / "observed_points.ply")]
    if len(argv) == 1:
        say("no ground truth for this bag: no metrics (the picture is the result)")
        return {}
    if "--mesh" not in argv:
        say("no ground-truth scene next to the bag: trajectory metrics only")
    args = sub.choices["eval"].parse_args(argv[1:] + ["--output", str(suite / "eval")])
    if args.func(args) != 0:
        say("msslam eval failed (see above)")
        return {}
    return json.loads((suite / "eval" / "metrics.json").read_text())


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when the suite ran and saved a map, 1 otherwise."""
    from .launch import load_config

    say = _Progress()
    output = Path(args.output)
    suite = output / "suite"
    if not args.rate > 0:
        print(f"msslam demo: error: --rate must be positive, got {args.rate}", file=sys.stderr)
        return 1
    try:
        overrides = parse_overrides(args.param)
        bag = Path(args.bag) if args.bag else _default_bag(output, args.frames, say)
        if not bag.exists():
            raise ValueError(f"bag {bag} does not exist")
        topics = bag_topics(bag)
        src = args.config or REPO / "config" / "launch" / PROFILES[args.profile]
        auto: dict[str, dict[str, Any]] = {}
        src_cfg_text = Path(src).read_text()
        if "/ground_truth/semantic" not in topics and "backend: oracle" in src_cfg_text:
            auto["panoptic"] = {"backend": "geometric"}
            say("the bag has no /ground_truth/semantic: panoptic backend 'geometric' instead of the oracle")
        if "/ground_truth/pose" not in topics and "pose_source: ground_truth" in src_cfg_text:
            auto["vio"] = {"pose_source": "vio"}
            say("the bag has no /ground_truth/pose: vio tracks the poses")
        merged: dict[str, dict[str, Any]] = {n: {"status_period_s": 1.0} for n in MAIN_STAGE}
        for extra in (auto, {"mapper": {"output_dir": str(suite.resolve()), "save_on_shutdown": True}}, overrides):
            for node, params in extra.items():
                merged.setdefault(node, {}).update(params)
        if suite.exists():  # stale files from an earlier run must not pass for this run's results
            for name in ("mesh.ply", "map.npz", "trajectory.txt", "instances.json", "scene_graph.json",
                         "mesh.png", "mesh_semantic.png", "metrics.json"):
                (suite / name).unlink(missing_ok=True)
        config = write_launch_config(Path(src), suite / "launch.yaml", merged)
        nodes = enabled_nodes(config)
        play_topics = subscribed_bag_topics(config, topics)
        shutdown_timeout_s = load_config(config).shutdown_timeout_s
    except (ValueError, OSError) as exc:
        print(f"msslam demo: error: {exc}", file=sys.stderr)
        return 1
    color_topic = next((t for t in play_topics if "color/image" in t), None)
    n_frames = topics.get(color_topic, 0) if color_topic else 0
    say(f"bag {bag}: {n_frames} frames; config {src} -> {config}; nodes {nodes}; rate {args.rate:g}")

    domain = args.domain if args.domain is not None else int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
    from ..ros.testing import TopicCollector, ros_env
    from .play import subscribers_arguments

    env = ros_env(domain)

    def _terminate(*_a: Any) -> None:
        raise KeyboardInterrupt  # the finally below stops the suite (the launcher runs in its own session)

    signal.signal(signal.SIGTERM, _terminate)
    from std_msgs.msg import String

    status_topics = {f"/msslam/{n}/status": String for n in nodes}
    launch_log_path = suite / "launch.log"
    launch_log = open(launch_log_path, "wb")
    launcher = subprocess.Popen([*_MSSLAM, "launch", str(config)], env=env, stdout=launch_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    say(f"msslam launch started (pid {launcher.pid}, ROS_DOMAIN_ID {domain}); node logs in {launch_log_path}")
    statuses: dict[str, dict] = {}
    history: dict[str, list[tuple[float, dict]]] = {}
    play_wall_s = None
    ok = True

    def last(col: TopicCollector, name: str) -> dict:
        msgs = col.messages[f"/msslam/{name}/status"]
        return json.loads(msgs[-1][1].data) if msgs else {}

    def done(col: TopicCollector, name: str) -> int:
        stages = last(col, name).get("stages", {})
        return stages.get(main_stage(name, stages) or "", {}).get("count", 0)

    try:
        with TopicCollector(domain, status_topics, name="msslam_demo") as col:
            col.spin_until(lambda: all(col.count(t) for t in status_topics) or launcher.poll() is not None,
                           args.up_timeout)
            missing = [t for t in status_topics if not col.count(t)]
            if missing:
                say(f"nodes did not come up: {missing}; last log lines:")
                print(launch_log_path.read_text(errors="replace")[-3000:])
                return 1
            # play only what some node subscribes to (e.g. no IMU for ground-truth poses): playback waits
            # for a subscriber on every topic it publishes
            col.spin_until(lambda: False, 1.0)
            play_topics = [t for t in play_topics if col.node.get_subscriptions_info_by_topic(t)] or play_topics
            # playback starts once the player has matched every subscriber seen here, not just one per topic: a
            # node discovered late (a loaded machine) would miss the first frames of a short bag
            readers = subscribers_arguments(col.node, play_topics)
            say(f"all {len(nodes)} nodes are up; playing {len(play_topics)} topics: {' '.join(play_topics)}")
            t_play = time.monotonic()
            play_log = open(suite / "play.log", "wb")
            play = subprocess.Popen([*_MSSLAM, "play", str(bag), "--clock", "--rate", str(args.rate),
                                     "--wait-for-subscribers", "--wait-timeout", "30", "--delay", "1.0",
                                     "--topics", *play_topics, *readers],
                                    env=env, stdout=play_log, stderr=subprocess.STDOUT)
            next_print = time.monotonic() + 5.0
            while play.poll() is None:
                col.spin_until(lambda: play.poll() is not None, 0.5)
                if time.monotonic() >= next_print:
                    next_print += 5.0
                    say("playing: " + ", ".join(f"{n} {done(col, n)}" for n in nodes) + f" of {n_frames} frames")
            play_log.close()
            play_wall_s = time.monotonic() - t_play
            if play.returncode != 0:
                say(f"msslam play failed ({play.returncode}):")
                print((suite / "play.log").read_text(errors="replace")[-2000:])
                ok = False
            say(f"playback done in {play_wall_s:.1f} s; waiting for the mapper to integrate its queue")
            # drained: every input queue empty and no node finished a frame for idle_s (bounded by drain_timeout_s)
            def progress_key() -> tuple:
                return tuple(done(col, n) for n in nodes)

            def queued() -> int:
                return sum(q.get("size", 0) for n in nodes for q in last(col, n).get("queues", {}).values())

            t_drain = seen_at = time.monotonic()
            seen, next_print = progress_key(), time.monotonic() + 5.0
            while time.monotonic() - t_drain < args.drain_timeout_s:
                col.spin_until(lambda: False, 0.5)
                now = time.monotonic()
                if progress_key() != seen:
                    seen, seen_at = progress_key(), now
                elif queued() == 0 and now - seen_at >= args.idle_s:
                    break
                if now >= next_print:
                    next_print += 5.0
                    say("draining: " + ", ".join(f"{n} {done(col, n)}" for n in nodes) + f"; {queued()} queued")
            else:
                say(f"the nodes did not drain within {args.drain_timeout_s:g} s: stopping anyway")
            if "scene_graph" in nodes:
                # the mapper's next cloud after its last frame reaches the scene graph, whose graph the mapper saves
                before = done(col, "scene_graph")
                col.spin_until(lambda: done(col, "scene_graph") > before, 10.0)
                col.spin_until(lambda: False, 1.0)
            history = {n: [(t, json.loads(m.data)) for t, m in col.messages[f"/msslam/{n}/status"]] for n in nodes}
            say("stopping the suite (SIGINT): the mapper saves into " + str(suite))
            launcher.send_signal(signal.SIGINT)
            # keep listening: the nodes publish a final status on the way down
            col.spin_until(lambda: launcher.poll() is not None, shutdown_timeout_s + 15.0)
            for n in nodes:
                if col.count(f"/msslam/{n}/status"):
                    statuses[n] = last(col, n)
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            try:
                launcher.wait(timeout=shutdown_timeout_s + 15.0)
            except subprocess.TimeoutExpired:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
        launch_log.close()
    say(f"suite stopped (launcher exit code {launcher.returncode})")
    if not (suite / "mesh.ply").is_file():
        say(f"the mapper saved no mesh into {suite}; last log lines:")
        print(launch_log_path.read_text(errors="replace")[-3000:])
        ok = False

    metrics: dict[str, Any] = {}
    evaluation: dict = {}
    if (suite / "mesh.ply").is_file():
        from .render import render_map

        is_sim = (bag.parent / "sim_config.json").is_file()
        view = "oblique" if is_sim else "principal"
        for color in ("rgb", "class"):
            try:
                png = render_map(suite / "mesh.ply", suite, color=color, view=view)
                say(f"rendered {png}")
            except (ValueError, KeyError) as exc:  # a mesh without classes has no semantic picture
                if color == "rgb":
                    say(f"render failed: {exc}")
        if not args.no_eval:
            say("evaluating against the ground truth")
            evaluation = evaluate_suite_outputs(bag, suite, args.gt, args.threshold,
                                                pose_source(config) != "ground_truth", say)
        from ..io.ply import read_ply

        metrics["mesh_vertices"] = int(len(read_ply(suite / "mesh.ply").vertices))
    if (suite / "trajectory.txt").is_file():
        import numpy as np

        metrics["frames_mapped"] = int(len(np.atleast_2d(np.loadtxt(suite / "trajectory.txt"))))
    metrics.update(flat_metrics(evaluation))
    metrics.setdefault("threshold_m", args.threshold)
    compare = None
    if args.compare is not None and (args.compare / "metrics.json").is_file():
        compare = flat_metrics(json.loads((args.compare / "metrics.json").read_text()))
    rows = summarize_nodes(statuses, history)
    print()
    print(f"msslam demo: {bag} ({n_frames} frames) at rate {args.rate:g} "
          f"({'-' if play_wall_s is None else f'{play_wall_s:.0f}'} s playback), config {Path(src).name}")
    poses, labels = pose_source(config), node_parameters(config, "panoptic").get("backend", "?")
    print(f"poses: {poses}" + (" (ATE ~0 by construction)" if poses == "ground_truth" else "")
          + f"; labels: panoptic backend {labels}")
    print(format_table(rows, metrics, compare))
    result = {"bag": str(bag), "frames": n_frames, "config": str(src), "launch_config": str(config),
              "rate": args.rate, "domain": domain, "play_wall_s": play_wall_s, "auto_overrides": auto,
              "overrides": overrides, "metrics": metrics, "offline": compare, "nodes": rows,
              "evaluation": evaluation, "load_average": os.getloadavg()}
    (suite / "metrics.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"\noutputs in {suite}: mesh.ply, map.npz, trajectory.txt, instances.json, scene_graph.json, mesh.png, "
          f"mesh_semantic.png, eval/, metrics.json, launch.log")
    return 0 if ok else 1
