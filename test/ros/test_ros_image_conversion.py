"""sensor_msgs/Image and CameraInfo <-> numpy / PinholeCamera (cv_bridge when present, else the io codec)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from metric_semantic_slam.core.camera import PinholeCamera  # noqa: E402
from metric_semantic_slam.ros.camera_info import (camera_info_to_camera, camera_to_camera_info,  # noqa: E402
                                                  stereo_baseline_m)
from metric_semantic_slam.ros.image_conversion import (image_to_depth_m, image_to_numpy, image_to_rgb8,  # noqa: E402
                                                       numpy_to_image)
from metric_semantic_slam.ros.stamps import ns_to_stamp, seconds_to_stamp, stamp_to_ns, stamp_to_seconds  # noqa: E402

RNG = np.random.default_rng(0)
CASES = {
    "rgb8": RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (5, 7), dtype=np.uint8),
    "mono16": RNG.integers(0, 65536, (5, 7), dtype=np.uint16),
    "16UC1": RNG.integers(0, 65536, (5, 7), dtype=np.uint16),
    "32FC1": RNG.random((5, 7), dtype=np.float32) * 4,
}


@pytest.mark.parametrize("encoding", list(CASES))
def test_roundtrip_every_encoding(encoding):
    a = CASES[encoding]
    msg = numpy_to_image(a, encoding, stamp_s=12.5, frame_id="cam")
    assert (msg.height, msg.width, msg.encoding, msg.header.frame_id) == (5, 7, encoding, "cam")
    assert stamp_to_seconds(msg.header.stamp) == 12.5
    back = image_to_numpy(msg)
    assert back.dtype == a.dtype and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def _manual(encoding: str, a: np.ndarray, pad: int, big: bool) -> Image:
    # built by hand (not through numpy_to_image) so the decoder is checked against an independent layout
    dt = a.dtype.newbyteorder(">" if big else "<")
    rows = a.astype(dt).reshape(a.shape[0], -1).view(np.uint8)
    padded = np.zeros((a.shape[0], rows.shape[1] + pad), np.uint8)
    padded[:, :rows.shape[1]] = rows
    msg = Image(height=a.shape[0], width=a.shape[1], encoding=encoding, is_bigendian=int(big), step=padded.shape[1])
    msg.data = padded.tobytes()
    return msg


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "16UC1", "32FC1"])
@pytest.mark.parametrize("big", [False, True])
def test_step_padding_and_endianness(encoding, big):
    a = CASES[encoding]
    np.testing.assert_array_equal(image_to_numpy(_manual(encoding, a, pad=6, big=big)), a)


def test_color_and_depth_helpers():
    rgb = CASES["rgb8"]
    np.testing.assert_array_equal(image_to_rgb8(numpy_to_image(rgb[..., ::-1].copy(), "bgr8")), rgb)
    np.testing.assert_array_equal(image_to_rgb8(numpy_to_image(CASES["mono8"], "mono8"))[..., 2], CASES["mono8"])
    mm = np.array([[0, 1500], [65535, 10]], np.uint16)
    np.testing.assert_allclose(image_to_depth_m(numpy_to_image(mm, "16UC1")), mm * 1e-3, rtol=1e-6)
    m = np.array([[np.nan, 1.0], [-2.0, np.inf]], np.float32)
    np.testing.assert_array_equal(image_to_depth_m(numpy_to_image(m, "32FC1")), [[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="not a depth encoding"):
        image_to_depth_m(numpy_to_image(rgb, "rgb8"))


def test_bad_images_raise_value_error():
    msg = numpy_to_image(CASES["rgb8"], "rgb8")
    msg.data = msg.data[:-1]
    with pytest.raises(ValueError, match="bytes"):
        image_to_numpy(msg)
    bad = numpy_to_image(CASES["mono8"], "mono8")
    bad.encoding = "yuv422_weird"
    with pytest.raises(ValueError, match="unsupported image encoding"):
        image_to_numpy(bad)
    with pytest.raises(ValueError):
        numpy_to_image(CASES["mono8"], "rgb8")  # wrong channel count
    with pytest.raises(ValueError):
        numpy_to_image(CASES["32FC1"], "16UC1")  # wrong dtype


def test_stamps_exact_in_nanoseconds():
    t = 1_700_000_000_123_456_789
    assert stamp_to_ns(ns_to_stamp(t)) == t
    assert stamp_to_ns(seconds_to_stamp(1.5)) == 1_500_000_000
    with pytest.raises(ValueError):
        ns_to_stamp(-1)


def test_camera_info_roundtrip_and_baseline():
    cam = PinholeCamera(640, 480, 615.0, 616.0, 319.5, 239.5, distortion=(0.1, -0.2, 0.0, 0.0, 0.01))
    msg = camera_to_camera_info(cam, stamp_s=3.0, frame_id="camera_infra2_optical_frame", baseline_m=0.05)
    assert msg.header.frame_id == "camera_infra2_optical_frame"
    assert camera_info_to_camera(msg) == cam
    assert camera_info_to_camera(msg, from_projection=True).fx == 615.0
    assert stereo_baseline_m(msg) == pytest.approx(0.05)
    assert stereo_baseline_m(camera_to_camera_info(cam)) == 0.0


def test_uncalibrated_camera_info_is_rejected():
    with pytest.raises(ValueError, match="uncalibrated"):
        camera_info_to_camera(CameraInfo(width=640, height=480))  # all-zero K, as drivers send before calibration
    with pytest.raises(ValueError, match="image size"):
        camera_info_to_camera(CameraInfo())
