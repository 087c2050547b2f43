"""Full system launch for a ROS 2 install with launch_ros (Jazzy / Kilted).

Builds every node from the one node-graph definition (metric_semantic_slam/graph.py).
NOTE: the nodes themselves are not implemented yet (issue #7); this file only wires the graph.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from metric_semantic_slam.graph import NODES, PACKAGE


def generate_launch_description() -> LaunchDescription:
    namespace = LaunchConfiguration("namespace")
    nodes = [
        Node(package=PACKAGE, executable=exe, name=name, namespace=namespace, output="screen")
        for name, (exe, _target) in NODES.items()
    ]
    return LaunchDescription([DeclareLaunchArgument("namespace", default_value="msslam"), *nodes])
