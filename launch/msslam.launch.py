"""Full system launch (ROS 2 Jazzy / Kilted with launch_ros): every node of the graph as its own process.

    ros2 launch metric_semantic_slam msslam.launch.py config:=realsense_d435i.yaml

Nodes, executables, params files and remappings come from the node graph and ``config/launch/CONFIG``
(the files ``msslam launch`` reads) through ``msslam_launch_common.py``. The nodes get the suite's DDS
transport (``config/dds/fastdds_profiles.xml``: shared memory for large images) unless the environment
sets ``FASTDDS_BUILTIN_TRANSPORTS`` or a profiles file.
"""
import importlib.util
from pathlib import Path

from launch import LaunchDescription

from metric_semantic_slam.graph import NODES  # noqa: F401  (the one node graph, used through the common module)

_spec = importlib.util.spec_from_file_location("msslam_launch_common", Path(__file__).with_name("msslam_launch_common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def generate_launch_description() -> LaunchDescription:
    return common.system_launch_description("realsense_d435i.yaml")
