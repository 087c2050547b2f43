"""`msslam launch`: config parsing, the commands it builds from the node graph, and a real run with a
stand-in rclpy node (params, remaps, namespace over DDS; prefixed logs; bounded respawn; clean Ctrl-C)."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from metric_semantic_slam.cli import launch as launch_cli
from metric_semantic_slam.graph import NODES

MSSLAM = [sys.executable, "-m", "metric_semantic_slam.cli.main"]

STANDIN = textwrap.dedent('''
    """Test stand-in node: prints what --ros-args gave it, publishes on `chatter`, crashes on request."""
    import os, sys
    from pathlib import Path
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_msgs.msg import String

    mode, marker = sys.argv[1], Path(sys.argv[2])
    rclpy.init(args=sys.argv)
    node = rclpy.create_node("standin")
    greeting = node.declare_parameter("greeting", "none").value
    count = node.declare_parameter("count", 0).value
    pub = node.create_publisher(String, "chatter", 10)
    print(f"node={node.get_fully_qualified_name()} greeting={greeting} count={count} topic={pub.topic_name} "
          f"profiles={Path(os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', '-')).name}", flush=True)
    if mode == "always-crash" or (mode == "crash-once" and not marker.exists()):
        marker.touch()
        print("crashing on purpose", flush=True)
        sys.exit(3)
    node.create_timer(0.1, lambda: pub.publish(String(data=greeting)))
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    print("bye", flush=True)
''')


def _write_config(tmp_path, text: str):
    cfg = tmp_path / "launch.yaml"
    cfg.write_text(textwrap.dedent(text))
    return cfg


def test_default_config_runs_every_graph_node_with_ros_args():
    cfg = launch_cli.load_config(None)
    assert [n.name for n in cfg.nodes] == list(NODES)
    for spec in cfg.nodes:
        cmd = launch_cli.node_command(spec, cfg.namespace, use_sim_time=True)
        module, func = NODES[spec.name][1].split(":")
        assert f"from {module} import {func}" in cmd[2]
        i = cmd.index("--ros-args")
        assert cmd[i + 1:i + 5] == ["-r", f"__node:={spec.name}", "-r", "__ns:=/msslam"]
        assert "use_sim_time:=true" in cmd


def test_config_params_remaps_and_disabled_nodes(tmp_path):
    (tmp_path / "all.yaml").write_text("/**:\n  ros__parameters: {}\n")
    (tmp_path / "mapper.yaml").write_text("mapper:\n  ros__parameters: {}\n")
    cfg = launch_cli.load_config(_write_config(tmp_path, """
        namespace: ""
        params_file: all.yaml
        remappings: {color/image_raw: /camera/color/image_raw}
        nodes:
          mapper:
            params_file: mapper.yaml
            parameters: {voxel_size_m: 0.04, use_gpu: false, label_space: indoor}
            remappings: {odometry: /vio/odom}
          depth_fusion: {enabled: false}
        """))
    assert "depth_fusion" not in [n.name for n in cfg.nodes]
    mapper = next(n for n in cfg.nodes if n.name == "mapper")
    cmd = launch_cli.node_command(mapper, cfg.namespace, use_sim_time=False)
    args = cmd[cmd.index("--ros-args"):]
    assert "__ns:=/" not in " ".join(args)  # root namespace: no __ns rule
    assert args.count("--params-file") == 2 and str(tmp_path / "mapper.yaml") in args
    for p in ("voxel_size_m:=0.04", "use_gpu:=false", "label_space:=indoor"):
        assert p in args
    assert "color/image_raw:=/camera/color/image_raw" in args and "odometry:=/vio/odom" in args
    assert "use_sim_time:=true" not in args


@pytest.mark.parametrize("text, message", [
    ("namespac: x\n", "unknown key"),
    ("nodes:\n  mapper: {param: 1}\n", "unknown key"),
    ("nodes:\n  extra: {}\n", "has no 'command'"),
    ("params_file: missing.yaml\n", "does not exist"),
    ("include_graph: false\n", "enables no node"),
    ("- a list\n", "YAML mapping"),
])
def test_bad_config_raises_a_clear_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        launch_cli.load_config(_write_config(tmp_path, text))


def test_the_suites_transport_is_set_unless_the_user_chose_one(monkeypatch):
    from metric_semantic_slam.ros.dds import PROFILES_ENV_KEYS, profiles_file

    cfg = launch_cli.LaunchConfig(nodes=[launch_cli.NodeSpec("x", ["true"])])
    for key in ("FASTDDS_BUILTIN_TRANSPORTS", *PROFILES_ENV_KEYS):
        monkeypatch.delenv(key, raising=False)
    env = launch_cli.Launcher(cfg, out=io.StringIO()).env
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profiles_file()) and "FASTDDS_BUILTIN_TRANSPORTS" not in env
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "UDPv4")
    env = launch_cli.Launcher(cfg, out=io.StringIO()).env
    assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4" and "FASTDDS_DEFAULT_PROFILES_FILE" not in env


@pytest.mark.timeout(240)
def test_real_graph_nodes_start_answer_and_stop_cleanly_on_sigint(tmp_path):
    # Every graph node starts as its own process with the default config, logs "ready", and on Ctrl-C
    # (SIGINT to the launcher, forwarded to each node) shuts down cleanly: the launch exits 0.
    from metric_semantic_slam.ros.testing import ros_env

    proc = subprocess.Popen([*MSSLAM, "launch", "--max-respawns", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ros_env(68), cwd=tmp_path)
    out = _Lines(proc)
    ready = lambda: all(any(l.startswith(f"[{n}] ") and l.endswith("ready") for l in list(out.lines)) for n in NODES)
    try:
        assert out.wait_for(lambda _l: ready(), timeout_s=180), out.text()[-6000:]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.text()[-6000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.5)  # the reader thread drains the last lines
    text = out.text()
    for name in NODES:
        assert f"[launch] started {name}" in text
        assert f"{name} exited with code" not in text
    assert text.count("final status") >= len(NODES)


class _Lines:
    """Collects a process's output lines in a thread so the test can wait for one without blocking."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._t.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(predicate(l) for l in list(self.lines)):
                return True
            time.sleep(0.05)
        return False

    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.ros
@pytest.mark.timeout(90)
def test_launch_standin_nodes_over_dds_respawn_and_clean_sigint(tmp_path):
    pytest.importorskip("rclpy")
    from std_msgs.msg import String

    from metric_semantic_slam.ros.testing import TopicCollector, ros_env

    script = tmp_path / "standin.py"
    script.write_text(STANDIN)
    (tmp_path / "params.yaml").write_text("/**:\n  ros__parameters:\n    greeting: hello\n")
    cfg = _write_config(tmp_path, f"""
        include_graph: false
        namespace: ns_test
        params_file: params.yaml
        max_respawns: 2
        respawn_delay_s: 0.2
        shutdown_timeout_s: 10
        nodes:
          talker:
            command: [{sys.executable}, {script}, crash-once, {tmp_path / "marker"}]
            parameters: {{count: 3}}
            remappings: {{chatter: /remapped_chatter}}
          doomed:
            command: [{sys.executable}, {script}, always-crash, {tmp_path / "doomed_marker"}]
        """)
    env = ros_env(64)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE")  # the launcher must set it
    with TopicCollector(64, {"/remapped_chatter": String}) as col:
        proc = subprocess.Popen([*MSSLAM, "launch", str(cfg)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        out = _Lines(proc)
        try:
            assert out.wait_for(lambda l: l == "[talker] ready", 30), out.text()
            assert out.wait_for(lambda l: "[launch] doomed exited with code 3; not respawning" in l, 30), out.text()
            assert col.spin_until(lambda: col.count("/remapped_chatter") >= 2, 20), out.text()
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out.text()
    assert rc == 0, text
    assert col.messages["/remapped_chatter"][0][1].data == "hello"  # params file reached the node
    assert ("[talker] node=/ns_test/talker greeting=hello count=3 topic=/remapped_chatter "
            "profiles=fastdds_profiles.xml") in text
    assert "[talker] crashing on purpose" in text
    assert "[launch] talker exited with code 3; respawning (1/2) in 0.2 s" in text
    assert text.count("[launch] started doomed") == 3  # first run + 2 respawns
    assert "[talker] bye" in text and "[launch] shutting down 1 node(s)" in text
    assert "still running" not in text  # SIGINT was enough: no SIGTERM/SIGKILL


SLEEPER = textwrap.dedent('''
    """Non-ROS stand-in: prints, then sleeps; 'stubborn' ignores SIGINT (only SIGTERM/SIGKILL stop it)."""
    import signal, sys, time
    if sys.argv[1] == "stubborn":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *a: (print("got SIGINT", flush=True), sys.exit(0)))
    print("up", flush=True)
    time.sleep(60)
''')


def test_shutdown_escalates_to_sigterm_for_a_node_ignoring_sigint(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    cfg = launch_cli.LaunchConfig(
        nodes=[launch_cli.NodeSpec("polite", [sys.executable, str(script), "polite"]),
               launch_cli.NodeSpec("stubborn", [sys.executable, str(script), "stubborn"])],
        shutdown_timeout_s=0.5)
    out = io.StringIO()
    launcher = launch_cli.Launcher(cfg, out=out)
    started = time.monotonic()

    def stop_when_up():
        while out.getvalue().count("] up") < 2 and time.monotonic() - started < 20:
            time.sleep(0.02)
        launcher.request_stop()

    threading.Thread(target=stop_when_up, daemon=True).start()
    rc = launcher.run()
    text = out.getvalue()
    assert rc == 1, text  # a node had to be terminated: not a clean shutdown
    assert "[polite] got SIGINT" in text
    assert "[launch] ['stubborn'] still running: sending SIGTERM" in text
    assert all(c.returncode is not None for c in launcher.children)
    assert time.monotonic() - started < 15


def test_sigterm_to_the_launcher_stops_every_node(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    cfg = _write_config(tmp_path, f"""
        include_graph: false
        nodes:
          a: {{command: [{sys.executable}, {script}, polite]}}
          b: {{command: [{sys.executable}, {script}, polite]}}
        """)
    proc = subprocess.Popen([*MSSLAM, "launch", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = _Lines(proc)
    try:
        assert out.wait_for(lambda l: l == "[a] up", 20) and out.wait_for(lambda l: l == "[b] up", 20), out.text()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, out.text()
    assert "[a] got SIGINT" in out.text() and "[b] got SIGINT" in out.text()


def _process_gone(pid: int) -> bool:
    """True when ``pid`` has exited (no such process, or a zombie nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.timeout(240)
def test_a_node_whose_launcher_is_killed_stops_and_saves(tmp_path):
    """SIGKILL gives the launcher no chance to stop its nodes: they notice it is gone, stop in order (the
    mapper saves its map) and exit instead of running on as orphans."""
    import numpy as np

    from metric_semantic_slam.core.camera import PinholeCamera
    from metric_semantic_slam.core.mapping import MapperConfig, SemanticVoxelMapper
    from metric_semantic_slam.ros.testing import ros_env

    # a small map for the mapper to start from (an empty map is not saved at shutdown)
    mapper = SemanticVoxelMapper(MapperConfig(device="cpu"))
    mapper.integrate(np.full((60, 80), 1.5, np.float32), None, PinholeCamera(80, 60, 60.0, 60.0, 40.0, 30.0),
                     np.eye(4))
    start_map = mapper.save(tmp_path / "start" / "map.npz")
    out_dir = tmp_path / "out"
    cfg = _write_config(tmp_path, f"""
        nodes:
          depth_fusion: {{enabled: false}}
          vio: {{enabled: false}}
          panoptic: {{enabled: false}}
          scene_graph: {{enabled: false}}
          mapper:
            parameters: {{output_dir: {out_dir}, save_on_shutdown: true, load_on_start: true, map_file: {start_map}}}
        """)
    proc = subprocess.Popen([*MSSLAM, "launch", str(cfg)], env=ros_env(60), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = _Lines(proc)
    pid = None
    try:
        assert out.wait_for(lambda l: l.startswith("[mapper]") and l.endswith("ready"), 120), out.text()
        pid = int(next(l for l in out.lines if l.startswith("[launch] started mapper")).rsplit(" ", 1)[1].strip(")"))
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 60
        while not _process_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _process_gone(pid), "the mapper outlived its killed launcher"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pid is not None and not _process_gone(pid):
            os.kill(pid, signal.SIGKILL)
    # saved in order at the stop: the map it started from
    saved = SemanticVoxelMapper.load(out_dir / "map.npz", device="cpu")
    assert saved.num_blocks == mapper.num_blocks > 0
