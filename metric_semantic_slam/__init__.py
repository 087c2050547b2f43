"""metric_semantic_slam: real-time metric-semantic SLAM for ROS 2 (core algorithms are ROS-free)."""
__version__ = "0.1.0"
