"""sensor_msgs/Image byte layouts <-> numpy, without ROS or cv_bridge.

Convention: ``step`` is the length of one row in bytes (may exceed ``width * channels * itemsize``
when rows are padded); ``is_bigendian`` describes multi-byte pixel values. Depth images are
``16UC1``/``mono16`` in millimeters or ``32FC1`` in meters (REP 118).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ENCODINGS", "decode_image", "encode_image", "depth_to_meters", "color_to_rgb8"]


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: str  # numpy kind + size, byte order added at decode time


ENCODINGS: dict[str, _Layout] = {
    "rgb8": _Layout(3, "u1"),
    "bgr8": _Layout(3, "u1"),
    "rgba8": _Layout(4, "u1"),
    "bgra8": _Layout(4, "u1"),
    "mono8": _Layout(1, "u1"),
    "mono16": _Layout(1, "u2"),
    "8UC1": _Layout(1, "u1"),
    "8UC3": _Layout(3, "u1"),
    "8UC4": _Layout(4, "u1"),
    "16UC1": _Layout(1, "u2"),
    "32FC1": _Layout(1, "f4"),
}

_DEPTH_MM = {"16UC1", "mono16"}
_DEPTH_M = {"32FC1"}


def _layout(encoding: str) -> _Layout:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}") from None


def decode_image(
    encoding: str, height: int, width: int, step: int, is_bigendian: bool, data: bytes | memoryview | np.ndarray
) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as a native-endian array that owns its memory.

    Shape: -> (H, W) for one channel, (H, W, C) otherwise; dtype uint8, uint16 or float32.
    Raises ValueError on an unknown encoding or when ``step``/``len(data)`` disagree with the size.
    """
    lay = _layout(encoding)
    dtype = np.dtype(lay.dtype).newbyteorder(">" if is_bigendian else "<")
    height, width, step = int(height), int(width), int(step)
    row_bytes = width * lay.channels * dtype.itemsize
    if height < 0 or width < 0:
        raise ValueError(f"negative image size {width}x{height}")
    if step < row_bytes:
        raise ValueError(f"{encoding} image {width}x{height}: step {step} < width*channels*bytes = {row_bytes}")
    buf = np.frombuffer(memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel(),
                        dtype=np.uint8)
    if buf.size != step * height:
        raise ValueError(
            f"{encoding} image {width}x{height} step {step}: expected {step * height} bytes, got {buf.size}"
        )
    rows = buf.reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, lay.channels)
    out = pixels.astype(dtype.newbyteorder("="), copy=True)
    return out[..., 0] if lay.channels == 1 else out


def encode_image(array: np.ndarray, encoding: str) -> tuple[int, int, int, bool, bytes]:
    """Bytes of ``array`` laid out as a little-endian, unpadded ``sensor_msgs/Image``.

    Shape: array (H, W) or (H, W, 1) for one channel, (H, W, C) otherwise.
    Returns ``(height, width, step, is_bigendian, data)``.
    """
    lay = _layout(encoding)
    a = np.asarray(array)
    if lay.channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    expected_ndim = 2 if lay.channels == 1 else 3
    if a.ndim != expected_ndim or (lay.channels > 1 and a.shape[2] != lay.channels):
        raise ValueError(f"{encoding} needs {lay.channels} channel(s), got array of shape {a.shape}")
    target = np.dtype(lay.dtype).newbyteorder("<")
    if a.dtype.kind != target.kind or a.dtype.itemsize != target.itemsize:
        raise ValueError(f"{encoding} needs dtype {np.dtype(lay.dtype)}, got {a.dtype}")
    a = np.ascontiguousarray(a.astype(target, copy=False))
    height, width = a.shape[:2]
    return height, width, width * lay.channels * target.itemsize, False, a.tobytes()


def depth_to_meters(array: np.ndarray, encoding: str) -> np.ndarray:
    """Depth in meters, 0 where invalid (NaN, inf, negative).

    Shape: (H, W) -> (H, W) float32. ``16UC1``/``mono16`` are millimeters, ``32FC1`` meters.
    """
    a = np.asarray(array)
    if encoding in _DEPTH_MM:
        out = a.astype(np.float32) * np.float32(1e-3)
    elif encoding in _DEPTH_M:
        out = a.astype(np.float32, copy=True)
    else:
        raise ValueError(f"{encoding!r} is not a depth encoding (expected one of 16UC1, mono16, 32FC1)")
    out[~np.isfinite(out) | (out < 0)] = 0.0
    return out


def color_to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Color image as RGB uint8 (alpha dropped, BGR swapped, mono replicated).

    Shape: (H, W[, C]) -> (H, W, 3) uint8. ``8UC3`` is taken as RGB (the encoding does not say).
    """
    a = np.asarray(array)
    if encoding in ("rgb8", "8UC3"):
        out = a
    elif encoding == "bgr8":
        out = a[..., ::-1]
    elif encoding in ("rgba8", "8UC4"):
        out = a[..., :3]
    elif encoding == "bgra8":
        out = a[..., 2::-1]
    elif encoding in ("mono8", "8UC1"):
        out = np.repeat(a[..., None], 3, axis=-1)
    else:
        raise ValueError(f"{encoding!r} is not a supported color encoding")
    if out.dtype != np.uint8 or out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"{encoding} image has unexpected shape/dtype {a.shape} {a.dtype}")
    return np.ascontiguousarray(out)
