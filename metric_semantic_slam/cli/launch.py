"""``msslam launch [CONFIG]``: run the node graph as separate processes, without ``ros2 launch``.

Every node of ``metric_semantic_slam/graph.py`` (plus any extra node the config defines with a
``command``) starts as its own process with ``--ros-args`` (node name, namespace, params files,
``-p`` overrides, remaps). Output lines are prefixed with ``[node]``; a node that exits with an
error is restarted after ``respawn_delay_s``, at most ``max_respawns`` times; Ctrl-C or SIGTERM sends
SIGINT to every node (so mappers can save), then SIGTERM/SIGKILL after ``shutdown_timeout_s``.
The nodes get the suite's DDS transport (``config/dds/fastdds_profiles.xml``, :mod:`..ros.dds`) unless the
environment chooses one (``FASTDDS_BUILTIN_TRANSPORTS`` or a profiles file).

CONFIG (YAML; relative paths are relative to the file)::

    namespace: msslam            # "" for the root namespace
    use_sim_time: false          # true when a bag plays with --clock
    include_graph: true          # start every node of graph.py
    params_file: params.yaml     # given to every node (a list is fine too)
    remappings: {color/image_raw: /camera/color/image_raw}   # every node
    respawn: true
    max_respawns: 3
    respawn_delay_s: 1.0
    shutdown_timeout_s: 10.0
    env: {RMW_IMPLEMENTATION: rmw_fastrtps_cpp}
    nodes:
      mapper: {params_file: mapper.yaml, parameters: {voxel_size_m: 0.04}, remappings: {}}
      depth_fusion: {enabled: false}
      my_logger: {command: [python3, my_logger.py]}   # a node outside the graph
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "LaunchConfig", "NodeSpec", "load_config", "node_command", "Launcher"]

_TOP_KEYS = {"namespace", "use_sim_time", "include_graph", "params_file", "remappings", "respawn",
             "max_respawns", "respawn_delay_s", "shutdown_timeout_s", "env", "nodes"}
_NODE_KEYS = {"enabled", "command", "params_file", "parameters", "remappings", "respawn"}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``launch`` verb."""
    p = subparsers.add_parser("launch", help="start every node of the suite as its own process",
                              description="Start the node graph (metric_semantic_slam/graph.py) as processes "
                              "configured by CONFIG (YAML, see `msslam launch --help` and the module docstring).")
    p.add_argument("config", nargs="?", default=None, help="launch config YAML (default: every graph node, defaults)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    p.add_argument("--max-respawns", type=int, default=None, help="override the config's max_respawns")
    p.set_defaults(func=run)
    return p


@dataclass
class NodeSpec:
    """One process to run."""

    name: str
    command: list[str]
    params_files: list[Path] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: dict[str, str] = field(default_factory=dict)
    respawn: bool = True


@dataclass
class LaunchConfig:
    """A parsed launch config."""

    nodes: list[NodeSpec]
    namespace: str = "msslam"
    use_sim_time: bool = False
    max_respawns: int = 3
    respawn_delay_s: float = 1.0
    shutdown_timeout_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict)


def _graph_command(target: str) -> list[str]:
    # Run the entry point through the interpreter: works installed or from a source checkout.
    module, func = target.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def load_config(path: str | Path | None) -> LaunchConfig:
    """Parse a launch config (None: every graph node with defaults). Raises ValueError on a bad file."""
    import yaml

    from ..graph import NODES

    raw: dict = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"launch config {p} does not exist")
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{p}: a launch config is a YAML mapping")
        base = p.resolve().parent
        _check_keys(raw, _TOP_KEYS, str(p))

    def resolve(f: Any) -> Path:
        q = Path(str(f))
        q = q if q.is_absolute() else base / q
        if not q.is_file():
            raise ValueError(f"params file {q} does not exist")
        return q

    shared_params = [resolve(f) for f in _as_list(raw.get("params_file"))]
    shared_remaps = {str(k): str(v) for k, v in (raw.get("remappings") or {}).items()}
    respawn_all = bool(raw.get("respawn", True))
    node_cfg = raw.get("nodes") or {}
    if not isinstance(node_cfg, dict):
        raise ValueError("'nodes' must map node names to settings")
    names = list(NODES) if raw.get("include_graph", True) else []
    names += [n for n in node_cfg if n not in names]
    nodes = []
    for name in names:
        cfg = node_cfg.get(name) or {}
        _check_keys(cfg, _NODE_KEYS, f"node {name!r}")
        if not cfg.get("enabled", True):
            continue
        if "command" in cfg:
            command = [str(c) for c in _as_list(cfg["command"])]
            if not command:
                raise ValueError(f"node {name!r}: empty command")
        elif name in NODES:
            command = _graph_command(NODES[name][1])
        else:
            raise ValueError(f"node {name!r} is not in the node graph and has no 'command'")
        nodes.append(NodeSpec(
            name=name, command=command,
            params_files=shared_params + [resolve(f) for f in _as_list(cfg.get("params_file"))],
            parameters=dict(cfg.get("parameters") or {}),
            remappings={**shared_remaps, **{str(k): str(v) for k, v in (cfg.get("remappings") or {}).items()}},
            respawn=bool(cfg.get("respawn", respawn_all))))
    if not nodes:
        raise ValueError("the launch config enables no node")
    return LaunchConfig(
        nodes=nodes, namespace=str(raw.get("namespace", "msslam") or ""),
        use_sim_time=bool(raw.get("use_sim_time", False)), max_respawns=int(raw.get("max_respawns", 3)),
        respawn_delay_s=float(raw.get("respawn_delay_s", 1.0)),
        shutdown_timeout_s=float(raw.get("shutdown_timeout_s", 10.0)),
        env={str(k): str(v) for k, v in (raw.get("env") or {}).items()})


def _param_value(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def node_command(spec: NodeSpec, namespace: str, use_sim_time: bool) -> list[str]:
    """The full command line of a node: its command, then ``--ros-args`` with name, namespace, params, remaps."""
    cmd = [*spec.command, "--ros-args", "-r", f"__node:={spec.name}"]
    if namespace:
        cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for f in spec.params_files:
        cmd += ["--params-file", str(f)]
    if use_sim_time:
        cmd += ["-p", "use_sim_time:=true"]
    for k, v in spec.parameters.items():
        cmd += ["-p", f"{k}:={_param_value(v)}"]
    for src, dst in spec.remappings.items():
        cmd += ["-r", f"{src}:={dst}"]
    return cmd


class _Child:
    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None
        self.respawns = 0
        self.restart_at: float | None = None
        self.done = False
        self.returncode: int | None = None


class Launcher:
    """Starts, watches, respawns and stops the processes of a :class:`LaunchConfig`."""

    def __init__(self, config: LaunchConfig, out=None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._stop_requested = False
        self.children = [_Child(s) for s in config.nodes]
        from ..ros.dds import dds_environment
        from ..ros.node_runtime import STOP_WITH_PARENT_ENV

        self.env = dds_environment({**os.environ, **config.env})
        self.env["PYTHONUNBUFFERED"] = "1"  # node logs appear line by line, not at exit
        self.env[STOP_WITH_PARENT_ENV] = "1"  # a node outliving a killed launcher stops (and saves) by itself

    def say(self, who: str, line: str) -> None:
        with self._lock:
            self.out.write(f"[{who}] {line}\n")
            self.out.flush()

    def request_stop(self, *_args: Any) -> None:
        # A plain flag, no lock: this is the SIGINT/SIGTERM handler, which runs in the main thread between two
        # of its bytecodes. ``threading.Event.set`` takes the Event's lock, which that thread may hold at that
        # moment inside ``Event.wait`` (the loop below used to wait on one): a possible self-deadlock, and
        # launchers that ignored SIGINT/SIGTERM were seen twice under load (not reproduced in isolation).
        self._stop_requested = True

    def _start(self, child: _Child) -> None:
        cmd = node_command(child.spec, self.config.namespace, self.config.use_sim_time)
        child.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=self.env, start_new_session=True)
        child.restart_at = None
        self.say("launch", f"started {child.spec.name} (pid {child.proc.pid})")
        child.reader = threading.Thread(target=self._pump, args=(child.spec.name, child.proc), daemon=True)
        child.reader.start()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b""):
            self.say(name, raw.decode("utf-8", errors="replace").rstrip("\n"))
        proc.stdout.close()

    def _watch(self, child: _Child, now: float) -> None:
        if child.done:
            return
        if child.proc is None:
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child)
            return
        rc = child.proc.poll()
        if rc is None:
            return
        child.reader.join(timeout=1.0)  # print the dying node's last lines before our verdict
        child.proc, child.returncode = None, rc
        if rc == 0:
            self.say("launch", f"{child.spec.name} finished")
            child.done = True
        elif child.spec.respawn and child.respawns < self.config.max_respawns:
            child.respawns += 1
            child.restart_at = now + self.config.respawn_delay_s
            self.say("launch", f"{child.spec.name} exited with code {rc}; respawning "
                     f"({child.respawns}/{self.config.max_respawns}) in {self.config.respawn_delay_s:g} s")
        else:
            self.say("launch", f"{child.spec.name} exited with code {rc}; not respawning")
            child.done = True

    def _shutdown(self) -> bool:
        alive = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        self.say("launch", f"shutting down {len(alive)} node(s)")
        clean = True
        for sig, wait_s in ((signal.SIGINT, self.config.shutdown_timeout_s), (signal.SIGTERM, 3.0),
                            (signal.SIGKILL, 3.0)):
            if not alive:
                break
            if sig != signal.SIGINT:
                clean = False
                self.say("launch", f"{[c.spec.name for c in alive]} still running: sending {sig.name}")
            for c in alive:
                try:
                    os.killpg(c.proc.pid, sig)  # the node's own group: its children stop too
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while alive and time.monotonic() < deadline:
                time.sleep(0.05)
                alive = [c for c in alive if c.proc.poll() is None]
        for c in self.children:
            if c.proc is not None:
                c.proc.wait()
                if c.reader is not None:
                    c.reader.join(timeout=1.0)
                c.returncode = c.proc.returncode
        return clean

    def run(self) -> int:
        """Run until every node is done or a stop is requested; 0 when all ended cleanly."""
        if self.env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST":
            self.say("launch", "warning: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST replaces the DDS transports with "
                     "UDP alone (no shared memory); large images will lag or drop")
        for c in self.children:
            self._start(c)
        while not self._stop_requested:
            now = time.monotonic()
            for c in self.children:
                self._watch(c, now)
            if all(c.done for c in self.children):
                failed = [c.spec.name for c in self.children if c.returncode != 0]
                if failed:
                    self.say("launch", f"all nodes ended; failed: {failed}")
                return 1 if failed else 0
            time.sleep(0.05)  # a signal ends the nap early enough (the flag is read 20 times a second)
        return 0 if self._shutdown() else 1


def run(args: argparse.Namespace) -> int:
    """Launch; returns 0 after a clean shutdown, 1 on a bad config or when nodes had to be killed."""
    try:
        config = load_config(args.config)
    except ValueError as exc:
        print(f"msslam launch: error: {exc}", file=sys.stderr)
        return 1
    if args.max_respawns is not None:
        config.max_respawns = int(args.max_respawns)
    if args.dry_run:
        for spec in config.nodes:
            print(f"{spec.name}: {shlex.join(node_command(spec, config.namespace, config.use_sim_time))}")
        return 0
    launcher = Launcher(config)
    previous = {s: signal.signal(s, launcher.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return launcher.run()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
