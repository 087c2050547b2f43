"""``launch/*.launch.py`` run through the Kilted ``launch``/``launch_ros`` stand-ins of ``fake_ros_extras`` the way
``ros2 launch`` runs them (arguments declared and given, substitutions performed, opaque functions and includes
executed, each Node turned into its command line): the nodes start with the same executables, names,
namespace, parameter files, parameter values and remappings as ``msslam launch`` gives them from the node graph.
(test/test_package.py checks the keyword arguments the launch files pass; this checks what they amount to.)"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

import fake_ros_extras as fx
from metric_semantic_slam import graph
from metric_semantic_slam.ros.dds import profiles_file
from metric_semantic_slam.cli import launch as launch_cli

REPO = Path(__file__).resolve().parents[2]
LAUNCH_DIR = REPO / "launch"
CONFIG_DIR = REPO / "config" / "launch"


def _run(monkeypatch, launch_file: str, argv=(), environment=None, description=None) -> fx.LaunchContext:
    fx.install(monkeypatch, "launch")
    if description is None:
        description = fx.PythonLaunchDescriptionSource(str(LAUNCH_DIR / launch_file)).get()
    return fx.run_launch_description(description, fx.LaunchContext(argv, environment or {}))


def _effective_from_launch(node: fx.Node) -> dict:
    """What a launch_ros Node amounts to, from its performed command line and parameter dicts."""
    cmd = node.performed_cmd
    assert cmd[0].startswith(f"<prefix>/lib/{graph.PACKAGE}/") and cmd[1] == "--ros-args", cmd
    rules = [cmd[i + 1] for i in range(len(cmd)) if cmd[i] == "-r"]
    params: dict = {}
    for d in node.param_dicts:
        params.update({k: list(v) if isinstance(v, tuple) else v for k, v in d.items()})  # launch_ros keeps tuples
    ns = next((r.split(":=", 1)[1] for r in rules if r.startswith("__ns:=")), "/")
    return {"executable": cmd[0].rsplit("/", 1)[1],
            "name": next(r.split(":=", 1)[1] for r in rules if r.startswith("__node:=")),
            "namespace": ns, "params_files": node.param_files, "parameters": params,
            "remappings": [tuple(r.split(":=", 1)) for r in rules if not r.startswith("__")]}


def _effective_from_msslam(cmd: list[str]) -> dict:
    """The same for a command line of `msslam launch` (``-p name:=yaml``)."""
    args = cmd[cmd.index("--ros-args") + 1:]
    pairs = list(zip(args[::2], args[1::2]))
    assert all(flag in ("-r", "-p", "--params-file") for flag, _ in pairs), args
    rules = [v for f, v in pairs if f == "-r"]
    target = cmd[2].split("from ", 1)[1].replace(" import ", ":").split(";")[0].strip()
    exe = next(e for e, t in graph.NODES.values() if t == target)
    return {"executable": exe, "name": next(r.split(":=", 1)[1] for r in rules if r.startswith("__node:=")),
            "namespace": next((r.split(":=", 1)[1] for r in rules if r.startswith("__ns:=")), "/"),
            "params_files": [v for f, v in pairs if f == "--params-file"],
            "parameters": {k: yaml.safe_load(v) for k, v in (p.split(":=", 1) for f, p in pairs if f == "-p")},
            "remappings": [tuple(r.split(":=", 1)) for r in rules if not r.startswith("__")]}


def _assert_same_nodes(ctx: fx.LaunchContext, config: str) -> list[fx.Node]:
    cfg = launch_cli.load_config(CONFIG_DIR / config)
    nodes = [a for a in ctx.launched if isinstance(a, fx.Node)]
    assert [n.node_name for n in nodes] == [s.name for s in cfg.nodes]
    assert set(n.node_name for n in nodes) <= set(graph.NODES)
    for node, spec in zip(nodes, cfg.nodes):
        got = _effective_from_launch(node)
        want = _effective_from_msslam(launch_cli.node_command(spec, cfg.namespace, cfg.use_sim_time))
        assert got == want, (spec.name, got, want)
        assert got["parameters"].get("use_sim_time", False) == cfg.use_sim_time
        assert node.respawn == spec.respawn and node.respawn_delay == cfg.respawn_delay_s
        assert node.output == "screen"
    # the executables exist as console scripts with the graph's targets (what ros2 launch will run)
    scripts = dict(s.split(" = ") for s in graph.console_scripts())
    assert all(scripts[_effective_from_launch(n)["executable"]] == graph.NODES[n.node_name][1] for n in nodes)
    return nodes


@pytest.mark.parametrize("launch_file, config", [("msslam.launch.py", "realsense_d435i.yaml"),
                                                 ("realsense_d435i.launch.py", "realsense_d435i.yaml")])
def test_system_launch_files_start_the_graph_like_msslam_launch(monkeypatch, launch_file, config):
    ctx = _run(monkeypatch, launch_file)
    assert ctx.launch_configurations["config"] == config
    nodes = _assert_same_nodes(ctx, config)
    # the suite's transport (the bundled profiles file) reaches every node unless the user chose one
    bundled = str(profiles_file())
    assert all(n.performed_env["FASTDDS_DEFAULT_PROFILES_FILE"] == bundled for n in nodes)
    ctx = _run(monkeypatch, launch_file, environment={"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"})
    assert all(n.performed_env["FASTDDS_BUILTIN_TRANSPORTS"] == "UDPv4"
               and "FASTDDS_DEFAULT_PROFILES_FILE" not in n.performed_env for n in ctx.launched)


@pytest.mark.parametrize("config", ["sim_replay.yaml", "sim_replay_vio.yaml", "edge.yaml"])
def test_config_argument_selects_the_profile(monkeypatch, config):
    ctx = _run(monkeypatch, "msslam.launch.py", argv=[f"config:={config}"])
    _assert_same_nodes(ctx, config)


def test_a_users_launch_file_can_include_ours_with_arguments(monkeypatch):
    fx.install(monkeypatch, "launch")
    user = fx.LaunchDescription([
        fx.DeclareLaunchArgument("profile", default_value="sim_replay_vio.yaml"),
        fx.IncludeLaunchDescription(fx.PythonLaunchDescriptionSource(str(LAUNCH_DIR / "msslam.launch.py")),
                                    launch_arguments=[("config", fx.LaunchConfiguration("profile"))]),
    ])
    ctx = _run(monkeypatch, "", description=user)
    _assert_same_nodes(ctx, "sim_replay_vio.yaml")
    assert [a.name for a in user.get_launch_arguments()] == ["profile"]  # 'config' is given by the include


def test_replay_launch_plays_the_bag_with_msslam_play(monkeypatch):
    from metric_semantic_slam.cli.main import build_parser

    with pytest.raises(RuntimeError, match="'bag'"):  # a required argument, as ros2 launch reports it
        _run(monkeypatch, "replay.launch.py")
    ctx = _run(monkeypatch, "replay.launch.py", argv=["bag:=/data/run1", "rate:=0.5"])
    _assert_same_nodes(ctx, "sim_replay.yaml")
    play = [a for a in ctx.launched if not isinstance(a, fx.Node)]
    assert len(play) == 1 and ctx.launched[-1] is play[0]  # after the nodes
    cmd = play[0].performed_cmd
    assert cmd[:3] == [sys.executable, "-m", "metric_semantic_slam.cli.main"]
    args = build_parser().parse_args(cmd[3:])  # the command line msslam play really accepts
    assert (args.verb, args.bag, args.rate, args.clock, args.wait_for_subscribers) == ("play", "/data/run1", 0.5,
                                                                                      100.0, True)
    assert play[0].performed_env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profiles_file())


def test_stand_in_rejects_what_launch_ros_rejects(monkeypatch):
    # the checks above can fail: bad parameter values, remappings and keywords raise like upstream
    fx.install(monkeypatch, "launch")
    for params in ([{"x": None}], [{"x": [1, "a"]}], [{"x": []}], ["/no/such/params.yaml"]):
        node = fx.Node(package="p", executable="e", name="n", parameters=params)
        with pytest.raises((TypeError, FileNotFoundError)):
            node.execute(fx.LaunchContext())
    nested = fx.Node(package="p", executable="e", parameters=[{"a": {"b": 1, "c": [1, 2.5], "d": ["x", "y"]}}])
    nested.execute(fx.LaunchContext())
    assert nested.param_dicts == [{"a.b": 1, "a.c": (1.0, 2.5), "a.d": ("x", "y")}]
    with pytest.raises(TypeError):
        fx.Node(package="p", executable="e", remappings=[("a", "b", "c")])
    with pytest.raises(TypeError):
        fx.Node(package="p", executable="e", respawn_max_tries=3)  # a misspelt keyword
    with pytest.raises(fx.SubstitutionFailure):
        fx.LaunchConfiguration("missing").perform(fx.LaunchContext())


def test_launch_files_bound_respawns_like_msslam_launch(monkeypatch):
    ctx = _run(monkeypatch, "msslam.launch.py")
    cfg = launch_cli.load_config(CONFIG_DIR / "realsense_d435i.yaml")
    assert all(n.respawn_max_retries == cfg.max_respawns for n in ctx.launched)
