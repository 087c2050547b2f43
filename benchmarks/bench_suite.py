"""Benchmark: the whole node suite over real DDS on a simulated bag played at its recorded rate (30 Hz).

Starts the five nodes with ``msslam launch`` (profile ``oracle-rt``, the default: config/launch/
sim_replay_realtime.yaml, ground-truth poses + labels, depth_fusion (active depth only) and panoptic on the
same 2 Hz slots of sensor time, the real-time configuration for a 2-core CPU; ``oracle-rt-stereo``: the same
with stereo matching in depth_fusion, measured after it by default for comparison; ``vio-rt``: the same
slots with tracked poses (interpolated by the mapper) and geometric labels; ``gpu``: sim_replay_gpu.yaml,
the full system without oracles (VIO, built-in panoptic network, stereo + active depth, mapper) on CUDA and on
every frame; ``oracle``:
sim_replay.yaml, the same nodes on every frame they can take; ``vio``: sim_replay_vio.yaml, tracked poses +
geometric labels), plays the bag ``--loops`` times (default 3: 60 mapped frames, the map carries over) with
``msslam play --clock`` and reads every node's ``~/status`` (JSON from the node runtime). Prints per node:
frames received, processed and dropped by the input queue, the queue's high-water mark against its bound,
bad-input drops by reason, stage times (mean / p95, wall and thread CPU), output rate, the latency from
the sensor stamp to the node's output (sim time, as ``use_sim_time`` nodes see it), and the CPU seconds each
node process and the player used during playback (from /proc, all threads: DDS receive included), and each node
process's resident memory at the end (``rss MB``; sampled once a second: a node whose memory grows by more than
50 MiB after the first pass is named, as the map carries over the passes and should not grow with them).

Sensor-stamp-to-mesh latency (the target): for every ``map/mesh`` message the mapper publishes, the time it
is published minus the time its newest frame was sensed. It spans the whole chain: transport, depth fusion,
the mapper's input synchronization, integration, marching cubes and the message build. By default the
benchmark subscribes to ``map/mesh`` as RViz would (the mapper then delivers ~2-4 MB per update to this
benchmark's process, on the same cores) and takes both times from DDS source timestamps of one system clock,
independent of every node's clock: the mesh message's publication, and the player's first /clock tick that
reached the frame's stamp (the player publishes the frame right after that tick; ``publication_latencies_ms``).
The mapper's own reading is printed next to it: its sim clock (the player's /clock, sent about every 10 ms, as
its executor last applied it) at publication minus the stamp. ``--no-mesh-consumer`` leaves ``map/mesh``
without a subscriber (DDS then delivers the mesh nowhere) and takes the target from the mapper's clock. In
earlier runs with a consumer the two readings differed by -15 to +13 ms at p95, and the consumer itself cost
~20 ms at p50 on a 2-core CPU. Frames a node drops (the newest frame wins) have no latency; their count is
reported.

Map quality: each profile's mapper saves its map when the run stops; ``msslam eval`` compares it with the
simulator's ground truth next to the bag (mesh F-score at 5 cm, 3D mIoU, ATE with tracked poses), the numbers
``msslam demo`` reports, so a profile's latency is read next to what it maps (where Open3D is missing, the GPU
machine, mesh distances go to the other mesh's samples, 1 cm apart, instead of its exact surface).

Columns: ``in`` frames into the node's queues (the largest count over its input queues), ``q.drop`` evicted by a
newer one (the queue holds the newest), ``skip`` frames outside the node's ``process_rate_hz`` slots (for
depth_fusion, with the IR pairs of those frames), ``bad`` bad-input drops, ``unsync`` messages its synchronizers
let go without a set, the smallest count over their inputs (a color image without a depth frame in a slot profile
is no loss; a frame whose every message arrived but never met, e.g. across a time reset, is; a node without a
synchronizer shows ``-``), ``Hz`` the main stage's mean rate while frames flowed (``flowing_rate_hz``), ``rss MB``
the node process's resident memory at the end.

Targets (exit 1 when missed), on the main profile only: every input queue stays within its bound;
sensor-stamp-to-mesh latency p95 <= 250 ms. Frames dropped per node are reported, not a target on a CPU. On
the ``gpu`` profile the target is also full rate with no drops: no node's queue evicted a frame, skipped one or
dropped one for a reason, and the mapper integrated every color frame of every pass (counted in the bag).
No peer runs the same suite, so there is no ``ratio`` line; the comparison profiles run on the same machine
right after. Writes ``suite.json`` and ``suite.png`` (per-node latency and rate of the main profile) into
``--output``.

Usage: python benchmarks/bench_suite.py [--bag output/sim_seed1/bag]
       [--profile oracle-rt|oracle-rt-stereo|vio-rt|gpu|oracle|vio]
       [--compare [PROFILE ...]] [--loops 3] [--rate 1.0] [--output DIR] [--domain 76] [--param NODE.NAME=VALUE ...]
       [--no-mesh-consumer]
"""
from __future__ import annotations

import argparse
import bisect
import contextlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(REPO))

from metric_semantic_slam.eval.machine import cpu_name as cpu_model, process_memory_mb  # noqa: E402
from metric_semantic_slam.cli.demo import flowing_rate_hz, frames_in, main_stage  # noqa: E402
from metric_semantic_slam.cli.play import subscribers_arguments  # noqa: E402
from metric_semantic_slam.graph import NODES  # noqa: E402

TARGETS = {"mesh_latency_p95_ms": 250.0}
MAP_THRESHOLD_M = 0.05
"""Distance within which a mesh point counts as correct in the map quality's F-score (as msslam demo)."""
LOOP_BACK_NS = 1_000_000_000
"""A /clock tick more than this before a mesh's stamp belongs to a later pass of the bag."""
PROFILES = {"oracle-rt": "sim_replay_realtime.yaml", "oracle-rt-stereo": "sim_replay_realtime.yaml",
            "vio-rt": "sim_replay_vio_realtime.yaml", "gpu": "sim_replay_gpu.yaml", "oracle": "sim_replay.yaml",
            "vio": "sim_replay_vio.yaml"}
FULL_RATE_PROFILES = {"gpu"}
"""Profiles whose target includes every frame taken by every node (the GPU point of issue #7)."""
PROFILE_OVERRIDES = {"oracle-rt-stereo": {"depth_fusion": {"use_stereo": True}}}
"""Parameters a profile sets on top of its launch config (the real-time config with stereo matching back on)."""
MSSLAM = [sys.executable, "-m", "metric_semantic_slam.cli.main"]




def find_or_make_bag(bag: str | None, frames: int, workdir: Path) -> Path:
    """The given bag, else output/sim_seed1/bag, else a freshly simulated short sequence."""
    if bag:
        p = Path(bag)
        if not p.exists():
            raise SystemExit(f"bag {p} does not exist")
        return p
    default = REPO / "output" / "sim_seed1" / "bag"
    if default.exists() and any(default.iterdir()):
        return default
    from metric_semantic_slam.sim.simulate import simulate

    print(f"no bag at {default}: simulating {frames} frames")
    root = simulate(workdir / "sim", seed=1, frames=frames, write_bag=True)
    return Path(root) / "bag"


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """``NODE.NAME=VALUE`` strings (VALUE as YAML) -> ``{node: {name: value}}``."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        node, dot, name = key.partition(".")
        if not (sep and dot and node and name):
            raise SystemExit(f"--param wants NODE.NAME=VALUE, got {item!r}")
        out.setdefault(node, {})[name] = yaml.safe_load(value)
    return out


def mapper_dir(workdir: Path, profile: str) -> Path:
    """Where the mapper of ``profile`` saves its map when the run stops (save_on_shutdown)."""
    return workdir / f"mapper_{profile}"


def write_launch_config(profile: str, workdir: Path, status_period_s: float,
                        overrides: dict[str, dict] | None = None) -> Path:
    """The profile's launch config with absolute params files, a faster status, the mapper saving into
    ``mapper_dir`` and ``overrides`` (``{node: {param: value}}``) on top."""
    src = REPO / "config" / "launch" / PROFILES[profile]
    cfg = yaml.safe_load(src.read_text())
    for name, node in (cfg.get("nodes") or {}).items():
        node = node or {}
        if "params_file" in node:
            node["params_file"] = str((src.parent / node["params_file"]).resolve())
        params = dict(node.get("parameters") or {})
        params["status_period_s"] = status_period_s
        if name == "mapper":
            params["output_dir"] = str(mapper_dir(workdir, profile))
        params.update(PROFILE_OVERRIDES.get(profile, {}).get(name, {}))
        params.update((overrides or {}).get(name, {}))
        node["parameters"] = params
        cfg["nodes"][name] = node
    out = workdir / f"launch_{profile}.yaml"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def input_topics(config: Path) -> list[str]:
    """The bag topics the config's nodes listen to (the targets of its remappings), so playback waits only
    for subscribers that exist."""
    cfg = yaml.safe_load(config.read_text())
    topics = set((cfg.get("remappings") or {}).values())
    for node in (cfg.get("nodes") or {}).values():
        topics |= set(((node or {}).get("remappings") or {}).values())
    return sorted(topics)


def bag_duration_s(bag: Path) -> float:
    """Recorded span of the bag in seconds (0 when the bag does not say)."""
    from metric_semantic_slam.io.bag import open_bag_reader

    reader, _path, _ros1 = open_bag_reader(bag)
    try:
        return max(0.0, float(getattr(reader, "duration", 0) or 0) * 1e-9)
    finally:
        reader.close()


def bag_message_count(bag: Path, topic: str) -> int:
    """Messages on ``topic`` in the bag (0 when it has none)."""
    from metric_semantic_slam.io.bag import open_bag_reader

    reader, _path, _ros1 = open_bag_reader(bag)
    try:
        return sum(int(getattr(c, "msgcount", 0) or 0) for c in reader.connections if c.topic == topic)
    finally:
        reader.close()


NOT_FRAME_LOSSES = {"imu_gap"}
"""Drop reasons that lose no frame: vio_node counts ``imu_gap`` when it tracks a frame without IMU samples."""


def full_rate_failures(rows: list[dict], expected_frames: int) -> list[str]:
    """What keeps ``rows`` from full rate with no drops: frames a node's queue evicted, skipped or dropped for a
    reason (but :data:`NOT_FRAME_LOSSES`), and mapper integrations short of ``expected_frames``."""
    failures = []
    for r in rows:
        if r["missing"]:
            continue
        drops = {k: v for k, v in r["drops"].items() if k not in NOT_FRAME_LOSSES}
        lost = {"queue": r["queue_dropped"], "skipped": r["rate_skipped"], **drops}
        lost = {k: v for k, v in lost.items() if v}
        if lost:
            failures.append(f"{r['node']} dropped frames: {lost}")
    mapper = next((r for r in rows if r["node"] == "mapper" and not r["missing"]), None)
    integrated = 0 if mapper is None else (mapper["latency"].get("integrated") or {}).get("count", 0)
    if integrated < expected_frames:
        failures.append(f"the mapper integrated {integrated} of {expected_frames} frames")
    return failures


def subscribed_topics(node, topics: list[str]) -> list[str]:
    """Those of ``topics`` some node subscribes to (the player waits only for them: in the oracle profile
    nothing reads the IMU)."""
    return [t for t in topics if node.count_subscribers(t) > 0]


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (all threads), None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime (fields 14 and 15 of stat)


def node_pids(launcher_pid: int) -> dict[str, int]:
    """The node processes ``msslam launch`` started, by node name (their ``__node:=NAME`` argument)."""
    pids = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != launcher_pid:
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        for a in args:
            if a.startswith(b"__node:="):
                pids[a.split(b":=", 1)[1].decode()] = int(proc.name)
    return pids


def _fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def publication_latencies_ms(clock: list[tuple[int, int]], mesh: list[tuple[int, int]]) -> list[float]:
    """Sensor-stamp-to-mesh latencies from publication times, independent of every node's clock.

    ``clock``: the player's /clock messages as (publication time ns, bag time ns); ``mesh``: the mapper's
    ``map/mesh`` messages as (publication time ns, stamp ns of the newest frame in it). Publication times are
    the DDS source timestamps (the system clock of one machine). A frame is sensed when the player's clock
    first reaches its stamp (the player publishes the frame right after that tick), in the pass the mesh
    belongs to: the latest such tick before the mesh was published, looking back past a loop of the bag.
    Meshes without such a tick are left out. Shape: lists of pairs -> list of ms."""
    clock = sorted(clock)
    times = [c[0] for c in clock]
    out = []
    for t_mesh, stamp in mesh:
        i = bisect.bisect_left(times, t_mesh) - 1
        while i >= 0 and clock[i][1] < stamp - LOOP_BACK_NS:   # a later pass began before the mesh went out
            i -= 1
        sensed, newer = None, None
        # back to the first tick at or after the stamp, not past the start of this pass (bag time rises again)
        while i >= 0 and clock[i][1] >= stamp and (newer is None or clock[i][1] <= newer):
            sensed, newer = clock[i][0], clock[i][1]
            i -= 1
        if sensed is not None:
            out.append((t_mesh - sensed) * 1e-6)
    return out


def latency_summary(values_ms: list[float]) -> dict:
    """count / p50 / p95 / max of latencies in ms, as the nodes' status reports them ({} when empty)."""
    if not values_ms:
        return {}
    a = np.asarray(values_ms, dtype=np.float64)
    return {"count": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "max_ms": round(float(a.max()), 3)}


def summarize(statuses: dict[str, dict], history: dict[str, list[tuple[float, dict]]] | None = None) -> list[dict]:
    """One row per node from its last status, and the rate from every status it sent (``history``, receive
    time and status)."""
    rows = []
    for name in NODES:
        st = statuses.get(name)
        if st is None:
            rows.append({"node": name, "missing": True})
            continue
        queues = st.get("queues", {})
        received = frames_in(queues)
        q_dropped = sum(q["dropped"] for q in queues.values())
        bounded = all(q["high_water"] <= q["maxsize"] for q in queues.values())
        stages = st.get("stages", {})
        # the node's main stage, the same as msslam demo's (the mapper's "integrate", not whichever of
        # "mesh_update" / "pose_wait" took more time in this run)
        main_name = main_stage(name, stages)
        main = (main_name, stages[main_name]) if main_name else (None, None)
        lat = st.get("latency", {})
        lat_name = "mesh" if "mesh" in lat else next(iter(lat), None)
        syncs = [v for k, v in st.items() if k.startswith("sync") and isinstance(v, dict) and "dropped" in v]
        rows.append({
            "node": name, "missing": False, "received": received, "queue_dropped": q_dropped,
            "rate_skipped": st.get("rate_skipped", 0),
            "queues": {k: f"{q['high_water']}/{q['maxsize']}" for k, q in queues.items()}, "bounded": bounded,
            "bad_input_drops": sum(v for k, v in st.get("drops", {}).items()),
            "sync_dropped": max((min(v["dropped"], default=0) for v in syncs), default=None),
            "drops": st.get("drops", {}), "errors": st.get("errors", 0),
            "stage": main[0], "stage_count": None if main[1] is None else main[1]["count"],
            "stage_mean_ms": None if main[1] is None else main[1]["mean_ms"],
            "stage_p95_ms": None if main[1] is None else main[1]["p95_ms"],
            "stage_cpu_ms": None if main[1] is None else main[1]["cpu_mean_ms"],
            "rate_hz": flowing_rate_hz((history or {}).get(name, []), main[0]),
            "latency_name": lat_name,
            "latency_p50_ms": None if lat_name is None else lat[lat_name]["p50_ms"],
            "latency_p95_ms": None if lat_name is None else lat[lat_name]["p95_ms"],
            "stages": stages, "latency": lat, "frames_fused": st.get("frames_fused"),
        })
    return rows


def print_table(rows: list[dict]) -> None:
    head = (f"{'node':<13} {'in':>5} {'q.drop':>6} {'skip':>5} {'queue hw/max':<22} {'bad':>4} {'unsync':>6} "
            f"{'stage':<14} {'n':>5} "
            f"{'mean ms':>8} {'p95 ms':>8} {'cpu ms':>7} {'Hz':>6} {'latency':<11} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'proc cpu %':>10} {'rss MB':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["missing"]:
            print(f"{r['node']:<13} no status received")
            continue
        qs = ",".join(f"{k} {v}" for k, v in r["queues"].items()) or "-"
        print(f"{r['node']:<13} {r['received']:>5} {r['queue_dropped']:>6} {r['rate_skipped']:>5} {qs:<22} "
              f"{r['bad_input_drops']:>4} {_fmt(r['sync_dropped'], 'd'):>6} "
              f"{str(r['stage']):<14} {_fmt(r['stage_count'], 'd'):>5} {_fmt(r['stage_mean_ms']):>8} "
              f"{_fmt(r['stage_p95_ms']):>8} {_fmt(r['stage_cpu_ms']):>7} {_fmt(r['rate_hz']):>6} "
              f"{str(r['latency_name']):<11} {_fmt(r['latency_p50_ms']):>8} {_fmt(r['latency_p95_ms']):>8} "
              f"{_fmt(r.get('process_cpu_pct')):>10} {_fmt((r.get('memory_mb') or {}).get('end'), '.0f'):>7}")
    for r in rows:
        if not r["missing"] and r["drops"]:
            print(f"  {r['node']} drops by reason: {r['drops']}")
        if not r["missing"] and r.get("memory_mb") and r["memory_mb"]["end"] - r["memory_mb"]["first_pass"] > 50:
            m = r["memory_mb"]
            print(f"  {r['node']}: resident memory grew {m['first_pass']:.0f} -> {m['end']:.0f} MiB after the "
                  "first pass")
        if not r["missing"] and isinstance(r.get("frames_fused"), dict):
            ff = r["frames_fused"]
            print(f"  {r['node']}: {ff.get('with_pair', 0)} frames fused with their IR pair, "
                  f"{ff.get('without_pair', 0)} without one while stereo was streaming")


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG")
        return
    ok = [r for r in rows if not r["missing"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    names = [r["node"] for r in ok]
    axes[0].bar(names, [r["latency_p95_ms"] or 0 for r in ok], color="tab:red", label="p95")
    axes[0].bar(names, [r["latency_p50_ms"] or 0 for r in ok], color="tab:blue", label="p50")
    axes[0].axhline(TARGETS["mesh_latency_p95_ms"], color="k", ls="--", lw=1, label="mesh target")
    axes[0].set_ylabel("sensor stamp -> output [ms]")
    axes[0].legend()
    axes[1].bar(names, [r["rate_hz"] or 0 for r in ok], color="tab:green")
    axes[1].axhline(30.0, color="k", ls="--", lw=1)
    axes[1].set_ylabel("main stage rate [Hz]")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_profile(profile: str, bag: Path, args: argparse.Namespace, overrides: dict, workdir: Path) -> list[dict]:
    """Launch the suite with ``profile``, play the bag ``args.loops`` times and collect the nodes' last status.

    Returns :func:`summarize`'s rows, with each node's CPU share during playback."""
    from metric_semantic_slam.ros.qos import qos_profile
    from metric_semantic_slam.ros.testing import TopicCollector, ros_env
    from std_msgs.msg import String

    config = write_launch_config(profile, workdir, status_period_s=1.0, overrides=overrides)
    env = ros_env(args.domain)
    print(f"\n== profile {profile} ({PROFILES[profile]}"
          + (f", {PROFILE_OVERRIDES[profile]}" if profile in PROFILE_OVERRIDES else "") + ")"
          + (f"; overrides {overrides}" if overrides else ""))
    log_path = workdir / f"launch_{profile}.log"
    launch_log = open(log_path, "wb")
    launcher = subprocess.Popen([*MSSLAM, "launch", str(config), "--max-respawns", "0"], env=env, stdout=launch_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    topics = {f"/msslam/{name}/status": String for name in NODES}
    statuses: dict[str, dict] = {}
    history: dict[str, list[tuple[float, dict]]] = {}
    t_play, cpu0, cpu1, player_cpu = None, {}, {}, None
    memory: dict[str, list[tuple[float, float]]] = {}  # node -> (s since playback start, RSS MiB)
    clock_pub_ns: list[tuple[int, int]] = []   # /clock: (publication ns, bag time ns)
    mesh_pub_ns: list[tuple[int, int]] = []    # map/mesh: (publication ns, stamp ns)
    try:
        with TopicCollector(args.domain, topics, name="bench_suite") as col:
            if args.mesh_consumer:
                # publication times of /clock and map/mesh (callbacks with message info; the mesh raw: only the
                # stamp of its first marker is read)
                from metric_semantic_slam.ros.stamps import stamp_to_ns
                from rosgraph_msgs.msg import Clock
                from visualization_msgs.msg import MarkerArray

                def on_clock(msg, info) -> None:
                    clock_pub_ns.append((info["source_timestamp"], stamp_to_ns(msg.clock)))

                def on_mesh(raw: bytes, info) -> None:
                    if len(raw) >= 16:
                        mesh_pub_ns.append((info["source_timestamp"], _first_marker_stamp_ns(raw)))

                col.node.create_subscription(Clock, "/clock", on_clock, qos_profile("reliable", 1000))
                col.node.create_subscription(MarkerArray, "/msslam/map/mesh", on_mesh, qos_profile("reliable", 50),
                                             raw=True)
            if not col.spin_until(lambda: all(col.count(t) for t in topics), timeout_s=120):
                missing = [t for t in topics if not col.count(t)]
                print(f"nodes did not come up: {missing}; see {log_path}")
                return summarize({})
            play_topics = subscribed_topics(col.node, input_topics(config))
            pids = node_pids(launcher.pid)
            cpu0 = {name: _proc_cpu_s(pid) for name, pid in pids.items()}
            t0 = time.monotonic()
            loop = ["--loop", "--max-loops", str(args.loops)] if args.loops > 1 else []
            player = subprocess.Popen([*MSSLAM, "play", str(bag), "--clock", "--rate", str(args.rate), *loop,
                                       "--wait-for-subscribers", "--wait-timeout", "30", "--delay", "1.0",
                                       "--topics", *play_topics, *subscribers_arguments(col.node, play_topics)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # bound the wait by the bag's own duration (a stuck DDS teardown in the player must not hang the
            # benchmark) and go on with what the nodes report
            budget_s = 30.0 + 1.0 + args.loops * bag_duration_s(bag) / args.rate + 60.0
            deadline = time.monotonic() + budget_s
            next_memory = t0
            while player.poll() is None and time.monotonic() < deadline:
                player_cpu = _proc_cpu_s(player.pid) or player_cpu
                col.spin_until(lambda: False, 0.2)
                if time.monotonic() >= next_memory:  # each node's resident memory, once a second
                    next_memory += 1.0
                    for name, pid in pids.items():
                        if (mem := process_memory_mb(pid)) is not None:
                            memory.setdefault(name, []).append((time.monotonic() - t0, mem["rss"]))
            cpu1 = {name: _proc_cpu_s(pid) for name, pid in pids.items()}
            t_play = time.monotonic() - t0
            if player.poll() is None:
                player.kill()
                print(f"msslam play did not exit within {budget_s:.0f} s: killed (its publishing had ended)")
            out_text, err_text = player.communicate()
            print(out_text.strip().splitlines()[-1] if out_text.strip() else "(msslam play printed nothing)")
            if player.returncode not in (0, -9):
                print(out_text[-2000:], err_text[-2000:])
            col.spin_until(lambda: False, args.settle_s)
            for name in NODES:
                msgs = col.messages[f"/msslam/{name}/status"]
                if msgs:
                    history[name] = [(t, json.loads(m.data)) for t, m in msgs]
                    statuses[name] = history[name][-1][1]
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        launch_log.close()
    rows = summarize(statuses, history)
    for r in rows:
        if r["node"] == "mapper" and not r["missing"] and args.mesh_consumer:
            series = publication_latencies_ms(clock_pub_ns, mesh_pub_ns)
            r["mesh_latency_published"] = latency_summary(series)
            r["mesh_latencies_published_ms"] = [round(v, 1) for v in series]  # in publication order
    for r in rows:  # resident memory: at the end of the first pass, at the end, the largest sample
        samples = memory.get(r["node"], [])
        if samples and t_play:
            first_pass = min(samples, key=lambda s: abs(s[0] - t_play / max(1, args.loops)))[1]
            r["memory_mb"] = {"first_pass": first_pass, "end": samples[-1][1], "max": max(m for _, m in samples),
                              "series": [(round(t, 1), m) for t, m in samples]}
    for r in rows:  # CPU share of each node process during playback (100 % = one core)
        c0, c1 = cpu0.get(r["node"]), cpu1.get(r["node"])
        r["process_cpu_pct"] = None if c0 is None or c1 is None or not t_play else 100.0 * (c1 - c0) / t_play
    print(f"playback took {_fmt(t_play)} s wall; load average after {os.getloadavg()}; the player used "
          f"{_fmt(player_cpu)} s CPU; node logs in {log_path}")
    print_table(rows)
    return rows


def map_quality(bag: Path, workdir: Path, profile: str, threshold_m: float = MAP_THRESHOLD_M) -> dict:
    """Mesh F-score at ``threshold_m``, 3D mIoU and ATE of the map ``profile`` saved, from ``msslam eval`` (what
    ``msslam demo`` reports), so a profile's latency is read next to what it maps; ``{"note": why}`` when there
    is nothing to compare with or the evaluation cannot run; without Open3D (the GPU machine) the mesh distances
    go to the other mesh's samples (``"mesh_distance": "points"``)."""
    suite = mapper_dir(workdir, profile)
    if not (suite / "mesh.ply").is_file():
        return {"note": "no saved mesh"}
    notes: list[str] = []
    try:
        from metric_semantic_slam.cli.demo import evaluate_suite_outputs, flat_metrics, pose_source

        with contextlib.redirect_stdout(io.StringIO()):  # msslam eval's own report: kept in suite/eval
            raw = evaluate_suite_outputs(bag, suite, None, threshold_m,
                                         pose_source(workdir / f"launch_{profile}.yaml") != "ground_truth",
                                         notes.append)
    except Exception as exc:  # noqa: BLE001 -- a broken file, a missing package: the latency still counts
        return {"note": f"not evaluated: {type(exc).__name__}: {exc}"}
    m = flat_metrics(raw)
    keep = {k: m[k] for k in ("mesh_fscore", "miou_3d", "ate_rmse_m") if k in m}
    if keep and raw.get("mesh", {}).get("distance") == "points":  # no Open3D (the GPU machine)
        keep["mesh_distance"] = "points"
    return keep or {"note": "; ".join(notes) or "no ground truth next to the bag"}


def _first_marker_stamp_ns(raw: bytes) -> int:
    """Header stamp of the first marker of a serialized MarkerArray (all of a mesh update share it): at byte 8,
    after the CDR encapsulation header and the array length."""
    sec, nanosec = struct.unpack_from("<iI", raw, 8)
    return sec * 1_000_000_000 + nanosec


def mesh_latency(rows: list[dict], published: bool = False) -> dict:
    """The mapper's sensor-stamp-to-mesh latency summary ({} when it sent none or it was not measured): as the
    mapper measured it on its sim clock, or (``published``, with ``--mesh-consumer``) from publication times
    (``publication_latencies_ms``)."""
    mesh = next((r for r in rows if r["node"] == "mapper" and not r["missing"]), None)
    if mesh is None:
        return {}
    return mesh.get("mesh_latency_published", {}) if published else mesh["latency"].get("mesh", {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bag", default=None, help="bag to play (default output/sim_seed1/bag, else simulate one)")
    ap.add_argument("--frames", type=int, default=90, help="frames to simulate when there is no bag")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="oracle-rt",
                    help="oracle-rt (default): sim_replay_realtime.yaml, oracle with depth_fusion and panoptic on the "
                         "same 2 Hz slots of sensor time; oracle-rt-stereo: the same with stereo matching; vio-rt: "
                         "the same slots with tracked poses and geometric labels; gpu: sim_replay_gpu.yaml, the "
                         "full system on CUDA, every frame, target no drops; "
                         "oracle: sim_replay.yaml, every frame they can; vio")
    ap.add_argument("--compare", nargs="*", choices=sorted(PROFILES), default=None,
                    help="profiles measured after the main one for comparison, no target (default with oracle-rt: "
                         "oracle-rt-stereo; none: --compare with no name)")
    ap.add_argument("--loops", type=int, default=3, help="passes over the bag (the map carries over)")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor (1 = recorded 30 Hz)")
    ap.add_argument("--domain", type=int, default=76, help="ROS_DOMAIN_ID for this run")
    ap.add_argument("--output", default=None, help="folder for suite.json / suite.png (default: a temp folder)")
    ap.add_argument("--settle-s", type=float, default=10.0,
                    help="seconds to wait after playback for the queues to drain")
    ap.add_argument("--mesh-consumer", action=argparse.BooleanOptionalAction, default=True,
                    help="subscribe to map/mesh as RViz would (the mapper then delivers its mesh messages) and take "
                         "the target latency from publication times (default; see the module doc); "
                         "--no-mesh-consumer: nobody subscribes, latency on the mapper's sim clock")
    ap.add_argument("--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                    help="override a node parameter of the profiles (repeatable), e.g. depth_fusion.process_rate_hz=5")
    args = ap.parse_args(argv)
    if args.loops < 1:
        raise SystemExit("--loops must be >= 1")
    overrides = parse_overrides(args.param)
    compare = args.compare if args.compare is not None else (["oracle-rt-stereo"] if args.profile == "oracle-rt" else [])

    workdir = Path(tempfile.mkdtemp(prefix="bench_suite_"))
    out = Path(args.output) if args.output else workdir
    out.mkdir(parents=True, exist_ok=True)
    bag = find_or_make_bag(args.bag, args.frames, workdir)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); load average {os.getloadavg()}")
    print(f"bag: {bag}; {args.loops} pass(es) at rate {args.rate}; domain {args.domain}")
    runs = {name: run_profile(name, bag, args, overrides, workdir) for name in [args.profile, *compare]}
    quality = {name: map_quality(bag, workdir, name) for name in runs}
    rows = runs[args.profile]
    mesh = mesh_latency(rows, published=args.mesh_consumer)
    mesh_p95 = mesh.get("p95_ms")
    bounded = all(r.get("bounded", False) for r in rows)
    errors = {r["node"]: r["errors"] for r in rows if not r["missing"] and r["errors"]}
    (out / "suite.json").write_text(json.dumps({"bag": str(bag), "profile": args.profile, "rate": args.rate,
                                                "loops": args.loops, "cpu": cpu_model(), "rows": rows,
                                                "compare": {k: v for k, v in runs.items() if k != args.profile},
                                                "map_quality": quality},
                                               indent=1))
    plot(rows, out / "suite.png")
    print(f"\nwrote {out / 'suite.json'} and {out / 'suite.png'}")
    print("sensor-stamp-to-mesh latency per profile (same machine, one after the other)"
          + (": from publication times with a mesh consumer (the target), and as the mapper read it on its sim clock:"
             if args.mesh_consumer else ", as the mapper read it on its sim clock:"))
    for name, run_rows in runs.items():
        for published in ((True, False) if args.mesh_consumer else (False,)):
            m = mesh_latency(run_rows, published)
            print(f"  {name:<18} {'published' if published else 'sim clock':<10} n {_fmt(m.get('count'), 'd'):>4}  "
                  f"p50 {_fmt(m.get('p50_ms')):>7} ms  p95 {_fmt(m.get('p95_ms')):>7} ms  max "
                  f"{_fmt(m.get('max_ms')):>7} ms"
                  + ("" if published != args.mesh_consumer else "  (target profile)" if name == args.profile else
                     "  (comparison, no target)"))
    print("the map each profile saved at the end, against the simulator's ground truth (msslam eval, in "
          f"{mapper_dir(workdir, '<profile>')}/eval):")
    labels = (("mesh_fscore", f"mesh F-score at {100 * MAP_THRESHOLD_M:.0f} cm"), ("miou_3d", "3D mIoU"),
              ("ate_rmse_m", "ATE [m]"))
    for name, q in quality.items():
        print(f"  {name:<18} " + (q["note"] if "note" in q else
                                  ", ".join(f"{label} {_fmt(q[key], '.3f')}" for key, label in labels if key in q)
                                  + ("  (mesh distances to the other mesh's 1 cm samples: no Open3D)"
                                     if q.get("mesh_distance") == "points" else "")))
    failures = []
    if any(r["missing"] for r in rows):
        failures.append("a node sent no status")
    if not bounded:
        failures.append("an input queue exceeded its bound")
    if mesh_p95 is None:
        failures.append("no mesh latency measured")
    elif mesh_p95 > TARGETS["mesh_latency_p95_ms"]:
        failures.append(f"sensor-stamp-to-mesh latency p95 {mesh_p95:.0f} ms > {TARGETS['mesh_latency_p95_ms']:.0f} ms")
    if args.profile in FULL_RATE_PROFILES:
        color_topic = yaml.safe_load((REPO / "config" / "launch" / PROFILES[args.profile]).read_text())["remappings"][
            "color/image_raw"]
        expected = args.loops * bag_message_count(bag, color_topic)
        full_rate = full_rate_failures(rows, expected)
        print(f"{args.profile}: full rate with no drops ({expected} frames over {args.loops} pass(es)): "
              + ("yes" if not full_rate else "no: " + "; ".join(full_rate)))
        failures += full_rate
    if errors:
        print(f"exceptions inside nodes (logged, dropped): {errors}")
    print(f"{args.profile}: queues bounded: {bounded}; mesh latency p95: {_fmt(mesh_p95)} ms (target <= "
          f"{TARGETS['mesh_latency_p95_ms']:.0f})")
    if failures:
        print("TARGET MISSED: " + "; ".join(failures))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
