"""Visual-inertial odometry core (torch + numpy, ROS-free, any torch device).

Entry point: :class:`VisualInertialOdometry` (``track(frame) -> TrackingResult``).
"""
from .imu_preintegration import *  # noqa: F401,F403
from .keyframes import *  # noqa: F401,F403
from .pyramid import *  # noqa: F401,F403
from .rgbd_tracker import *  # noqa: F401,F403
from .semantic_term import *  # noqa: F401,F403
from .vio import *  # noqa: F401,F403
from . import imu_preintegration, keyframes, pyramid, rgbd_tracker, semantic_term, vio

__all__ = (imu_preintegration.__all__ + keyframes.__all__ + pyramid.__all__ + rgbd_tracker.__all__
           + semantic_term.__all__ + vio.__all__)
