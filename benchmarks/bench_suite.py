"""Benchmark: the whole node suite over real DDS on a simulated bag played at its recorded rate (30 Hz).

Starts the five nodes with ``msslam launch`` (profile ``oracle``: config/launch/sim_replay.yaml, ground-truth
poses + labels; ``vio``: sim_replay_vio.yaml, tracked poses + geometric labels), plays the bag with
``msslam play --clock`` and reads every node's ``~/status`` (JSON from the node runtime). Prints per node:
frames received, processed and dropped by the input queue, the queue's high-water mark against its bound,
bad-input drops by reason, stage times (mean / p95, wall and thread CPU), output rate, and the latency from
the sensor stamp to the node's output (sim time, as ``use_sim_time`` nodes see it). The mapper's ``mesh``
latency is the suite's sensor-stamp-to-mesh latency.

Targets (exit 1 when missed): every input queue stays within its bound; sensor-stamp-to-mesh latency
p95 <= 250 ms. Frames dropped per node are reported, not a target on a CPU (a GPU target is full rate
with no drops). No peer runs the same suite, so there is no ``ratio`` line. Writes ``suite.json`` and
``suite.png`` (per-node latency and rate) into ``--output``.

Usage: python benchmarks/bench_suite.py [--bag output/sim_seed1/bag] [--profile oracle|vio] [--rate 1.0]
       [--output DIR] [--domain 76]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(REPO))

from metric_semantic_slam.eval.machine import cpu_name as cpu_model  # noqa: E402
from metric_semantic_slam.graph import NODES  # noqa: E402

TARGETS = {"mesh_latency_p95_ms": 250.0}
PROFILES = {"oracle": "sim_replay.yaml", "vio": "sim_replay_vio.yaml"}
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


def write_launch_config(profile: str, workdir: Path, status_period_s: float) -> Path:
    """The profile's launch config with absolute params files, a faster status and the mapper writing to workdir."""
    src = REPO / "config" / "launch" / PROFILES[profile]
    cfg = yaml.safe_load(src.read_text())
    for name, node in (cfg.get("nodes") or {}).items():
        node = node or {}
        if "params_file" in node:
            node["params_file"] = str((src.parent / node["params_file"]).resolve())
        params = dict(node.get("parameters") or {})
        params["status_period_s"] = status_period_s
        if name == "mapper":
            params["output_dir"] = str(workdir / "mapper")
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


def _fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def summarize(statuses: dict[str, dict]) -> list[dict]:
    """One row per node from its last status."""
    rows = []
    for name in NODES:
        st = statuses.get(name)
        if st is None:
            rows.append({"node": name, "missing": True})
            continue
        queues = st.get("queues", {})
        received = sum(q["received"] for q in queues.values())
        q_dropped = sum(q["dropped"] for q in queues.values())
        bounded = all(q["high_water"] <= q["maxsize"] for q in queues.values())
        stages = st.get("stages", {})
        # the node's main stage: the one with the largest total time
        main = max(stages.items(), key=lambda kv: (kv[1]["mean_ms"] or 0) * kv[1]["count"], default=(None, None))
        lat = st.get("latency", {})
        lat_name = "mesh" if "mesh" in lat else next(iter(lat), None)
        rows.append({
            "node": name, "missing": False, "received": received, "queue_dropped": q_dropped,
            "queues": {k: f"{q['high_water']}/{q['maxsize']}" for k, q in queues.items()}, "bounded": bounded,
            "bad_input_drops": sum(v for k, v in st.get("drops", {}).items()),
            "drops": st.get("drops", {}), "errors": st.get("errors", 0),
            "stage": main[0], "stage_count": None if main[1] is None else main[1]["count"],
            "stage_mean_ms": None if main[1] is None else main[1]["mean_ms"],
            "stage_p95_ms": None if main[1] is None else main[1]["p95_ms"],
            "stage_cpu_ms": None if main[1] is None else main[1]["cpu_mean_ms"],
            "rate_hz": None if main[1] is None else main[1]["rate_hz"],
            "latency_name": lat_name,
            "latency_p50_ms": None if lat_name is None else lat[lat_name]["p50_ms"],
            "latency_p95_ms": None if lat_name is None else lat[lat_name]["p95_ms"],
            "stages": stages, "latency": lat,
        })
    return rows


def print_table(rows: list[dict]) -> None:
    head = (f"{'node':<13} {'in':>5} {'q.drop':>6} {'queue hw/max':<22} {'bad':>4} {'stage':<14} {'n':>5} "
            f"{'mean ms':>8} {'p95 ms':>8} {'cpu ms':>7} {'Hz':>6} {'latency':<11} {'p50 ms':>8} {'p95 ms':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["missing"]:
            print(f"{r['node']:<13} no status received")
            continue
        qs = ",".join(f"{k} {v}" for k, v in r["queues"].items()) or "-"
        print(f"{r['node']:<13} {r['received']:>5} {r['queue_dropped']:>6} {qs:<22} {r['bad_input_drops']:>4} "
              f"{str(r['stage']):<14} {_fmt(r['stage_count'], 'd'):>5} {_fmt(r['stage_mean_ms']):>8} "
              f"{_fmt(r['stage_p95_ms']):>8} {_fmt(r['stage_cpu_ms']):>7} {_fmt(r['rate_hz']):>6} "
              f"{str(r['latency_name']):<11} {_fmt(r['latency_p50_ms']):>8} {_fmt(r['latency_p95_ms']):>8}")
    for r in rows:
        if not r["missing"] and r["drops"]:
            print(f"  {r['node']} drops by reason: {r['drops']}")


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bag", default=None, help="bag to play (default output/sim_seed1/bag, else simulate one)")
    ap.add_argument("--frames", type=int, default=90, help="frames to simulate when there is no bag")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="oracle")
    ap.add_argument("--rate", type=float, default=1.0, help="playback speed factor (1 = recorded 30 Hz)")
    ap.add_argument("--domain", type=int, default=76, help="ROS_DOMAIN_ID for this run")
    ap.add_argument("--output", default=None, help="folder for suite.json / suite.png (default: a temp folder)")
    ap.add_argument("--settle-s", type=float, default=10.0,
                    help="seconds to wait after playback for the queues to drain")
    args = ap.parse_args(argv)

    from metric_semantic_slam.ros.testing import TopicCollector, ros_env
    from std_msgs.msg import String

    workdir = Path(tempfile.mkdtemp(prefix="bench_suite_"))
    out = Path(args.output) if args.output else workdir
    out.mkdir(parents=True, exist_ok=True)
    bag = find_or_make_bag(args.bag, args.frames, workdir)
    config = write_launch_config(args.profile, workdir, status_period_s=1.0)
    env = ros_env(args.domain)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); load average {os.getloadavg()}")
    print(f"bag: {bag}; profile {args.profile} ({PROFILES[args.profile]}); rate {args.rate}; domain {args.domain}")
    launch_log = open(workdir / "launch.log", "wb")
    launcher = subprocess.Popen([*MSSLAM, "launch", str(config), "--max-respawns", "0"], env=env, stdout=launch_log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    topics = {f"/msslam/{name}/status": String for name in NODES}
    statuses: dict[str, dict] = {}
    t_play = None
    try:
        with TopicCollector(args.domain, topics, name="bench_suite") as col:
            if not col.spin_until(lambda: all(col.count(t) for t in topics), timeout_s=120):
                missing = [t for t in topics if not col.count(t)]
                print(f"nodes did not come up: {missing}; see {workdir / 'launch.log'}")
                return 1
            t0 = time.monotonic()
            play = subprocess.run([*MSSLAM, "play", str(bag), "--clock", "--rate", str(args.rate),
                                   "--wait-for-subscribers", "--wait-timeout", "30", "--delay", "1.0",
                                   "--topics", *input_topics(config)],
                                  env=env, capture_output=True, text=True,
                                  timeout=3600)
            t_play = time.monotonic() - t0
            print(play.stdout.strip().splitlines()[-1] if play.stdout.strip() else "(msslam play printed nothing)")
            if play.returncode != 0:
                print(play.stdout[-2000:], play.stderr[-2000:])
            col.spin_until(lambda: False, args.settle_s)
            for name in NODES:
                msgs = col.messages[f"/msslam/{name}/status"]
                if msgs:
                    statuses[name] = json.loads(msgs[-1][1].data)
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
        launch_log.close()
    rows = summarize(statuses)
    print(f"playback took {t_play:.1f} s wall; load average after {os.getloadavg()}")
    print_table(rows)
    mesh = next((r for r in rows if r["node"] == "mapper" and not r["missing"]), None)
    mesh_p95 = None if mesh is None else mesh["latency"].get("mesh", {}).get("p95_ms")
    bounded = all(r.get("bounded", False) for r in rows)
    errors = {r["node"]: r["errors"] for r in rows if not r["missing"] and r["errors"]}
    (out / "suite.json").write_text(json.dumps({"bag": str(bag), "profile": args.profile, "rate": args.rate,
                                                "cpu": cpu_model(), "rows": rows}, indent=1))
    plot(rows, out / "suite.png")
    print(f"wrote {out / 'suite.json'} and {out / 'suite.png'}; node logs in {workdir / 'launch.log'}")
    failures = []
    if any(r["missing"] for r in rows):
        failures.append("a node sent no status")
    if not bounded:
        failures.append("an input queue exceeded its bound")
    if mesh_p95 is None:
        failures.append("no mesh latency measured")
    elif mesh_p95 > TARGETS["mesh_latency_p95_ms"]:
        failures.append(f"sensor-stamp-to-mesh latency p95 {mesh_p95:.0f} ms > {TARGETS['mesh_latency_p95_ms']:.0f} ms")
    if errors:
        print(f"exceptions inside nodes (logged, dropped): {errors}")
    print(f"queues bounded: {bounded}; mesh latency p95: {_fmt(mesh_p95)} ms (target <= "
          f"{TARGETS['mesh_latency_p95_ms']:.0f})")
    if failures:
        print("TARGET MISSED: " + "; ".join(failures))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
