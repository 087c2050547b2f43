"""Shared by the launch files here: build launch_ros ``Node`` actions from a ``config/launch/*.yaml`` file.

One source of truth: the node graph (``metric_semantic_slam/graph.py``: names, executables) and the same
YAML configs ``msslam launch`` reads (parsed by ``metric_semantic_slam.cli.launch.load_config``: params
files, parameters, remappings, namespace, use_sim_time). Not a launch file itself (no ``.launch.py``).
"""
from __future__ import annotations

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from metric_semantic_slam.cli.launch import load_config
from metric_semantic_slam.graph import NODES, PACKAGE
from metric_semantic_slam.ros.dds import PROFILES_ENV_KEYS, dds_environment

# launch/ and config/ sit side by side in the source tree and in share/<package>/ after install
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "launch"


def config_path(name_or_path: str) -> Path:
    """A config by file name in config/launch/ (``sim_replay.yaml``) or by path."""
    p = Path(name_or_path)
    return p if p.is_file() else CONFIG_DIR / name_or_path


def nodes_from_config(path: str | Path) -> list:
    """One launch_ros ``Node`` per enabled graph node of the config (extra ``command`` nodes are skipped:
    launch files run only the package's executables)."""
    cfg = load_config(config_path(str(path)))
    actions = []
    for spec in cfg.nodes:
        if spec.name not in NODES:
            continue
        parameters = [str(f) for f in spec.params_files]
        overrides = dict(spec.parameters)
        if cfg.use_sim_time:
            overrides["use_sim_time"] = True
        if overrides:
            parameters.append(overrides)
        actions.append(Node(package=PACKAGE, executable=NODES[spec.name][0], name=spec.name,
                            namespace=cfg.namespace, parameters=parameters,
                            remappings=list(spec.remappings.items()), respawn=spec.respawn,
                            respawn_delay=cfg.respawn_delay_s, respawn_max_retries=cfg.max_respawns,
                            output="screen",
                            additional_env=dict(cfg.env) or None))
    return actions


def config_argument(default: str) -> DeclareLaunchArgument:
    return DeclareLaunchArgument("config", default_value=default,
                                 description="msslam launch config: a file name in config/launch/ or a path")


def nodes_action() -> OpaqueFunction:
    """Reads the ``config`` launch argument at launch time and returns the nodes it configures."""
    def build(context, *args, **kwargs):
        return nodes_from_config(LaunchConfiguration("config").perform(context))

    return OpaqueFunction(function=build)


def system_launch_description(default_config: str) -> LaunchDescription:
    """Every node the ``config`` argument (default ``default_config``) configures, with the suite's DDS
    transport unless the environment chooses one."""
    return LaunchDescription([config_argument(default_config), *dds_transport_actions(), nodes_action()])


def dds_transport_actions() -> list:
    """Actions giving every process launched after them the suite's DDS transport
    (``config/dds/fastdds_profiles.xml``), unless the launch environment chooses a transport itself."""
    def build(context, *args, **kwargs):
        env = dds_environment(dict(context.environment))
        return [SetEnvironmentVariable(k, env[k]) for k in PROFILES_ENV_KEYS
                if env.get(k) and context.environment.get(k) != env[k]]

    return [OpaqueFunction(function=build)]
