"""ROS 2 adapters between messages and the ROS-free core (DESIGN.md §2, layer ``ros/``).

One job per module: ``image_conversion`` (Image <-> numpy, cv_bridge when importable),
``camera_info`` (CameraInfo <-> PinholeCamera), ``sync`` (approximate-time synchronization,
message_filters when importable), ``qos`` (named QoS profiles), ``queues`` (drop-oldest input queues),
``tf`` (TransformStamped <-> 4x4, tf2_ros when importable), ``params`` (declared parameters from one
table), ``stamps`` (Time <-> seconds/ns), ``testing`` (an isolated rclpy context for DDS tests).
Importing this package imports no rclpy; each module imports message types where it needs them.
"""
