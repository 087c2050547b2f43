"""sensor_msgs/Image <-> numpy: ``cv_bridge`` when it imports, else the ROS-free codec of ``io/``.

Both paths give the same arrays: native-endian, step padding removed, one channel as (H, W).
Malformed images (unknown encoding, size/step/data disagreeing) raise ``ValueError`` either way so
nodes can log and drop them.
"""
from __future__ import annotations

import numpy as np

from ..io.image_encoding import ENCODINGS, color_to_rgb8, decode_image, depth_to_meters, encode_image
from .stamps import fill_header

__all__ = ["HAVE_CV_BRIDGE", "image_to_numpy", "numpy_to_image", "image_to_rgb8", "image_to_depth_m"]

try:  # a full ROS install: use the library ROS users know (and its extra encodings)
    from cv_bridge import CvBridge, CvBridgeError

    _BRIDGE = CvBridge()
    HAVE_CV_BRIDGE = True
except ImportError:
    _BRIDGE = None
    HAVE_CV_BRIDGE = False


def _check_size(msg: object) -> None:
    # cv_bridge accepts short buffers on some versions and crashes on others: check first, same message.
    if msg.height < 0 or msg.width < 0 or msg.height * msg.step != len(msg.data):
        raise ValueError(f"{msg.encoding} image {msg.width}x{msg.height} step {msg.step}: "
                         f"expected {msg.height * msg.step} bytes, got {len(msg.data)}")


def image_to_numpy(msg: object) -> np.ndarray:
    """Pixels of a ``sensor_msgs/msg/Image``, owning their memory.

    Shape: -> (H, W) for one channel, (H, W, C) otherwise; dtype from the encoding.
    Raises ValueError for unsupported encodings or inconsistent sizes.
    """
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    _check_size(msg)
    if _BRIDGE is not None:
        try:
            return np.array(_BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough"), copy=True)
        except CvBridgeError as exc:
            raise ValueError(f"cv_bridge could not convert the image: {exc}") from exc
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian),
                        memoryview(msg.data))


def numpy_to_image(array: np.ndarray, encoding: str, stamp_s: float | None = None, frame_id: str = "",
                   stamp: object | None = None):
    """A ``sensor_msgs/msg/Image`` holding ``array`` (little-endian, unpadded rows).

    Shape: array (H, W) for one channel, (H, W, C) otherwise, dtype matching ``encoding``.
    ``stamp`` (a builtin_interfaces Time) wins over ``stamp_s``.
    """
    from sensor_msgs.msg import Image

    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    if _BRIDGE is not None:
        try:
            msg = _BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(array), encoding=encoding)
        except (CvBridgeError, TypeError) as exc:
            raise ValueError(f"cv_bridge could not encode a {encoding} image: {exc}") from exc
    else:
        h, w, step, big, data = encode_image(array, encoding)
        msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=step)
        msg.data = data  # rclpy copies bytes into its array.array in C (~1 ms per 640x480 rgb8)
    return fill_header(msg, frame_id, stamp, stamp_s)


def image_to_rgb8(msg: object) -> np.ndarray:
    """Color image as RGB uint8. Shape: -> (H, W, 3)."""
    return color_to_rgb8(image_to_numpy(msg), msg.encoding)


def image_to_depth_m(msg: object) -> np.ndarray:
    """Depth in meters (16UC1/mono16 millimeters or 32FC1 meters), 0 where invalid. Shape: -> (H, W) float32."""
    return depth_to_meters(image_to_numpy(msg), msg.encoding)
