"""sensor_msgs/Image <-> numpy: ``cv_bridge`` when it imports, else the ROS-free codec of ``io/``.

Both paths give the same arrays: native-endian, step padding removed, one channel as (H, W). Images
cv_bridge decodes wrongly (row padding that is not a whole number of pixels) or not at all (big-endian data
with cv_bridge releases predating numpy 2) go through our decoder. Malformed images (unknown encoding,
size/step/data disagreeing) raise ``ValueError`` either way so nodes can log and drop them.
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
    lay = ENCODINGS[msg.encoding]
    row_bytes = msg.width * lay.channels * np.dtype(lay.dtype).itemsize
    if msg.height > 0 and msg.step < row_bytes:
        # cv_bridge would silently return fewer columns
        raise ValueError(f"{msg.encoding} image {msg.width}x{msg.height}: step {msg.step} < width*channels*bytes "
                         f"= {row_bytes}")


def _bridge_can_decode(msg: object) -> bool:
    # cv_bridge derives the row length as step // pixel size and views the buffer with those rows: padding
    # that is not a whole number of pixels shears the image. Those (rare) images go through our decoder.
    lay = ENCODINGS[msg.encoding]
    return msg.step % (lay.channels * np.dtype(lay.dtype).itemsize) == 0


def image_to_numpy(msg: object) -> np.ndarray:
    """Pixels of a ``sensor_msgs/msg/Image``, owning their memory.

    Shape: -> (H, W) for one channel, (H, W, C) otherwise; dtype from the encoding.
    Raises ValueError for unsupported encodings or inconsistent sizes.
    """
    if msg.encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(ENCODINGS)}")
    _check_size(msg)
    if _BRIDGE is not None and _bridge_can_decode(msg):
        try:
            pixels = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="passthrough")
        except CvBridgeError as exc:
            raise ValueError(f"cv_bridge could not convert the image: {exc}") from exc
        except AttributeError:
            # cv_bridge releases older than their numpy 2 fix call ndarray.newbyteorder() on big-endian
            # images (removed in numpy 2): decode those ourselves
            pixels = None
        if pixels is not None:
            # same contract as decode_image: native byte order, owning its memory
            return np.array(pixels, dtype=pixels.dtype.newbyteorder("="), copy=True)
    return decode_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian),
                        memoryview(msg.data))


def numpy_to_image(array: np.ndarray, encoding: str, stamp_s: float | None = None, frame_id: str = "",
                   stamp: object | None = None):
    """A ``sensor_msgs/msg/Image`` holding ``array`` (unpadded rows; little-endian, except that cv_bridge keeps
    a big-endian array's byte order and sets ``is_bigendian``).

    Shape: array (H, W) for one channel, (H, W, C) otherwise, dtype matching ``encoding``.
    ``stamp`` (a builtin_interfaces Time) wins over ``stamp_s``.
    """
    from sensor_msgs.msg import Image

    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    array = np.asarray(array)
    if _BRIDGE is not None and array.size > 0:  # cv_bridge divides by the height (zero for an empty image)
        try:
            msg = _BRIDGE.cv2_to_imgmsg(np.ascontiguousarray(array), encoding=encoding)
        except (CvBridgeError, TypeError, KeyError) as exc:  # KeyError: a dtype OpenCV has no type for
            raise ValueError(f"cv_bridge could not encode a {array.dtype} {array.shape} array as {encoding}: "
                             f"{exc!r}") from exc
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
