"""sensor_msgs/Image encodings without ROS."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.io.image_encoding import (
    ENCODINGS,
    color_to_rgb8,
    decode_image,
    depth_to_meters,
    encode_image,
)


def _sample(encoding: str, h: int = 5, w: int = 7, seed: int = 0) -> np.ndarray:
    lay = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (h, w) if lay.channels == 1 else (h, w, lay.channels)
    if lay.dtype == "f4":
        return rng.normal(size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(np.dtype(lay.dtype)).max, size=shape, dtype=np.dtype(lay.dtype))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip(encoding: str) -> None:
    a = _sample(encoding)
    h, w, step, big, data = encode_image(a, encoding)
    assert (h, w, big) == (5, 7, False) and len(data) == step * h
    out = decode_image(encoding, h, w, step, big, data)
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_padded_step_and_big_endian(encoding: str) -> None:
    a = _sample(encoding, seed=1)
    h, w, step, _, data = encode_image(a, encoding)
    rows = np.frombuffer(data, np.uint8).reshape(h, step)
    itemsize = np.dtype(ENCODINGS[encoding].dtype).itemsize
    swapped = rows.reshape(h, -1, itemsize)[..., ::-1].reshape(h, step)  # byte-swap every value
    padded = np.concatenate([swapped, np.full((h, 13), 0xAB, np.uint8)], axis=1)
    out = decode_image(encoding, h, w, step + 13, itemsize > 1, memoryview(padded.tobytes()))
    np.testing.assert_array_equal(out, a)
    assert out.dtype.isnative


def test_decode_owns_memory() -> None:
    buf = bytearray(encode_image(np.arange(12, dtype=np.uint8).reshape(3, 4), "mono8")[4])
    out = decode_image("mono8", 3, 4, 4, False, buf)
    buf[0] = 99
    assert out[0, 0] == 0 and out.flags.writeable


def test_errors_name_the_numbers() -> None:
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'"):
        decode_image("yuv422", 2, 2, 4, False, bytes(8))
    with pytest.raises(ValueError, match="expected 24 bytes, got 23"):
        decode_image("rgb8", 2, 4, 12, False, bytes(23))
    with pytest.raises(ValueError, match="step 10 < .* 12"):
        decode_image("rgb8", 2, 4, 10, False, bytes(20))
    with pytest.raises(ValueError, match="dtype"):
        encode_image(np.zeros((2, 2), np.float64), "32FC1")
    with pytest.raises(ValueError, match="channel"):
        encode_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="unsupported"):
        encode_image(np.zeros((2, 2), np.uint8), "bayer_rggb8")


def test_depth_to_meters() -> None:
    mm = np.array([[0, 1500], [65535, 1]], np.uint16)
    for enc in ("16UC1", "mono16"):
        m = depth_to_meters(mm, enc)
        assert m.dtype == np.float32
        np.testing.assert_allclose(m, [[0, 1.5], [65.535, 0.001]], rtol=1e-6)
    f = np.array([[np.nan, 2.5], [np.inf, -1.0]], np.float32)
    np.testing.assert_array_equal(depth_to_meters(f, "32FC1"), [[0, 2.5], [0, 0]])
    with pytest.raises(ValueError, match="not a depth encoding"):
        depth_to_meters(mm, "rgb8")


def test_color_to_rgb8() -> None:
    rgb = _sample("rgb8")
    np.testing.assert_array_equal(color_to_rgb8(rgb[..., ::-1], "bgr8"), rgb)
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(color_to_rgb8(rgba, "rgba8"), rgb)
    bgra = np.concatenate([rgb[..., ::-1], rgba[..., 3:]], axis=-1)
    np.testing.assert_array_equal(color_to_rgb8(bgra, "bgra8"), rgb)
    mono = rgb[..., 0]
    out = color_to_rgb8(mono, "mono8")
    assert out.shape == rgb.shape and np.all(out[..., 2] == mono)
    with pytest.raises(ValueError):
        color_to_rgb8(np.zeros((2, 2), np.uint16), "16UC1")
