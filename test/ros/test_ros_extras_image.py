"""``ros/image_conversion.py`` through ``cv_bridge`` (the Kilted stand-in of ``fake_ros_extras``) gives the same
messages and arrays as our own codec, including the layouts cv_bridge itself gets wrong."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from sensor_msgs.msg import Image  # noqa: E402

import fake_ros_extras  # noqa: E402

RNG = np.random.default_rng(1)
ARRAYS = {
    "rgb8": RNG.integers(0, 256, (4, 7, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (4, 7, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (4, 7, 4), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (4, 7), dtype=np.uint8),
    "mono16": RNG.integers(0, 65536, (4, 7), dtype=np.uint16),
    "16UC1": RNG.integers(0, 65536, (4, 7), dtype=np.uint16),
    "32FC1": (RNG.random((4, 7)) * 4).astype(np.float32),
}


def _conv():
    return importlib.import_module("metric_semantic_slam.ros.image_conversion")


def _manual(encoding: str, a: np.ndarray, pad: int, big: bool) -> Image:
    """An Image laid out by hand: rows padded by ``pad`` bytes, values in the chosen byte order."""
    rows = a.astype(a.dtype.newbyteorder(">" if big else "<")).reshape(a.shape[0], -1).view(np.uint8)
    padded = np.zeros((a.shape[0], rows.shape[1] + pad), np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(height=a.shape[0], width=a.shape[1], encoding=encoding, is_bigendian=int(big), step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


def _fields(msg: Image) -> tuple:
    return (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step, bytes(msg.data), msg.header.frame_id,
            msg.header.stamp.sec, msg.header.stamp.nanosec)


LAYOUTS = [(e, pad, big) for e in ARRAYS for pad in (0, 2, 6, 12) for big in (False, True)
           if not (big and ARRAYS[e].dtype.itemsize == 1)]


def test_bridge_path_gives_the_fallbacks_messages_and_arrays(ros_extras):
    conv = _conv()
    assert not conv.HAVE_CV_BRIDGE  # the fallback first (cv_bridge does not install here)
    want_msgs = {e: _fields(conv.numpy_to_image(a, e, stamp_s=3.25, frame_id="cam")) for e, a in ARRAYS.items()}
    want_arrays = {k: conv.image_to_numpy(_manual(k[0], ARRAYS[k[0]], *k[1:])) for k in LAYOUTS}

    ros_extras("cv_bridge")
    conv = _conv()
    assert conv.HAVE_CV_BRIDGE
    before = fake_ros_extras.USED.copy()
    for e, a in ARRAYS.items():
        msg = conv.numpy_to_image(a, e, stamp_s=3.25, frame_id="cam")
        assert _fields(msg) == want_msgs[e], e
        back = conv.image_to_numpy(msg)
        assert back.dtype == a.dtype and back.flags.owndata, e
        np.testing.assert_array_equal(back, a)
    for key in LAYOUTS:
        got = conv.image_to_numpy(_manual(key[0], ARRAYS[key[0]], *key[1:]))
        assert got.dtype.isnative and got.dtype == want_arrays[key].dtype, key  # big-endian in, native out
        np.testing.assert_array_equal(got, want_arrays[key], err_msg=str(key))
    used = fake_ros_extras.USED - before
    assert used["cv_bridge.CvBridge.cv2_to_imgmsg"] == len(ARRAYS)
    # every layout whose padding is whole pixels went through cv_bridge; the rest through our decoder
    whole = [k for k in LAYOUTS if (ARRAYS[k[0]].shape[1] * ARRAYS[k[0]][0, 0].size * ARRAYS[k[0]].itemsize + k[1])
             % (ARRAYS[k[0]][0, 0].size * ARRAYS[k[0]].itemsize) == 0]
    assert used["cv_bridge.CvBridge.imgmsg_to_cv2"] == len(ARRAYS) + len(whole)
    assert len(whole) < len(LAYOUTS)


def test_cv_bridge_itself_shears_padding_that_is_not_whole_pixels():
    # why image_to_numpy routes such images around cv_bridge: the test above would fail without it
    a = ARRAYS["32FC1"]
    msg = _manual("32FC1", a, pad=6, big=False)
    sheared = fake_ros_extras.CvBridge().imgmsg_to_cv2(msg)
    assert sheared.shape == a.shape and not np.array_equal(sheared, a)
    np.testing.assert_array_equal(fake_ros_extras.CvBridge().imgmsg_to_cv2(_manual("32FC1", a, 8, True)), a)


def test_bad_images_raise_value_error_on_the_bridge_path(ros_extras):
    ros_extras("cv_bridge")
    conv = _conv()
    good = conv.numpy_to_image(ARRAYS["rgb8"], "rgb8")
    short = conv.numpy_to_image(ARRAYS["rgb8"], "rgb8")
    short.data = bytes(short.data)[:-1]
    narrow = Image(height=2, width=7, encoding="rgb8", step=12)  # step below 7 pixels * 3 bytes
    narrow.data = bytes(24)
    unknown = conv.numpy_to_image(ARRAYS["mono8"], "mono8")
    unknown.encoding = "yuv422_weird"
    for msg, match in [(short, "bytes"), (narrow, "step"), (unknown, "unsupported image encoding")]:
        with pytest.raises(ValueError, match=match):
            conv.image_to_numpy(msg)
    for array, encoding in [(ARRAYS["mono8"], "rgb8"), (ARRAYS["32FC1"], "16UC1"),
                            (ARRAYS["16UC1"].astype(np.int64), "16UC1"),  # OpenCV has no int64 type (KeyError)
                            (np.zeros((2, 2), bool), "mono8"), ([[1, 2]], "mono8")]:
        with pytest.raises(ValueError):
            conv.numpy_to_image(array, encoding)
    empty = conv.numpy_to_image(np.zeros((0, 0, 3), np.uint8), "rgb8")  # cv_bridge would divide by zero
    assert (empty.height, empty.width, len(empty.data)) == (0, 0, 0)
    assert conv.image_to_numpy(empty).shape == (0, 0, 3)
    np.testing.assert_array_equal(conv.image_to_rgb8(good), ARRAYS["rgb8"])
    mm = np.array([[0, 1500], [65535, 10]], np.uint16)
    np.testing.assert_allclose(conv.image_to_depth_m(conv.numpy_to_image(mm, "16UC1")), mm * 1e-3, rtol=1e-6)


def test_a_cv_bridge_without_the_numpy2_fix_still_decodes_big_endian(ros_extras, monkeypatch):
    ros_extras("cv_bridge")
    conv = _conv()

    def old_imgmsg_to_cv2(self, msg, desired_encoding="passthrough"):
        if msg.is_bigendian:
            raise AttributeError("`newbyteorder` was removed from the ndarray class in NumPy 2.0")
        return fake_ros_extras.CvBridge.imgmsg_to_cv2(self, msg, desired_encoding)

    monkeypatch.setattr(conv._BRIDGE, "imgmsg_to_cv2", old_imgmsg_to_cv2.__get__(conv._BRIDGE))
    a = ARRAYS["16UC1"]
    np.testing.assert_array_equal(conv.image_to_numpy(_manual("16UC1", a, 0, True)), a)
    np.testing.assert_array_equal(conv.image_to_numpy(_manual("16UC1", a, 0, False)), a)
