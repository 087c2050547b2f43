"""Replay a bag through the suite (ROS 2 with launch_ros): the nodes of ``config`` (default: the simulator
replay with ground-truth poses and labels) plus ``msslam play BAG --clock`` (rosbag2 sqlite3/mcap or ROS 1).

    ros2 launch metric_semantic_slam replay.launch.py bag:=output/sim_seed1/bag rate:=1.0
    ros2 launch metric_semantic_slam replay.launch.py bag:=my.bag config:=sim_replay_vio.yaml

``msslam play`` waits for a subscriber on every topic it plays (``--wait-for-subscribers``) and 1 s more; a node
whose subscription it discovers later than that misses the first frames (``msslam demo`` waits for every
subscriber it sees instead: ``--subscribers``).
"""
import importlib.util
import sys
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

from metric_semantic_slam.graph import NODES  # noqa: F401

_spec = importlib.util.spec_from_file_location("msslam_launch_common", Path(__file__).with_name("msslam_launch_common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def generate_launch_description() -> LaunchDescription:
    play = ExecuteProcess(
        cmd=[sys.executable, "-m", "metric_semantic_slam.cli.main", "play", LaunchConfiguration("bag"), "--clock",
             "--rate", LaunchConfiguration("rate"), "--wait-for-subscribers", "--delay", "1.0"],
        output="screen")
    return LaunchDescription([
        common.config_argument("sim_replay.yaml"),
        DeclareLaunchArgument("bag", description="rosbag2 folder, .mcap/.db3 file or ROS 1 .bag"),
        DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
        *common.dds_transport_actions(),
        common.nodes_action(),
        play,
    ])
