"""The suite on a live RealSense D435i (realsense2_camera 4.x topics), ROS 2 with launch_ros.

    ros2 launch realsense2_camera rs_launch.py align_depth.enable:=true enable_infra1:=true \
        enable_infra2:=true enable_gyro:=true enable_accel:=true unite_imu_method:=2
    ros2 launch metric_semantic_slam realsense_d435i.launch.py

Same nodes and parameters as ``msslam launch config/launch/realsense_d435i.yaml``.
"""
import importlib.util
from pathlib import Path

from launch import LaunchDescription

from metric_semantic_slam.graph import NODES  # noqa: F401

_spec = importlib.util.spec_from_file_location("msslam_launch_common", Path(__file__).with_name("msslam_launch_common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


def generate_launch_description() -> LaunchDescription:
    return common.system_launch_description("realsense_d435i.yaml")
