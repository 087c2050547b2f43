"""SemanticCloud <-> sensor_msgs/PointCloud2 with fields x, y, z, rgb, label, instance.

Layout (24 bytes a point, little-endian, one row: ``height = 1``):

==========  ======  =========  ==========================================================
field       offset  datatype   meaning
==========  ======  =========  ==========================================================
x, y, z     0/4/8   FLOAT32    point in ``header.frame_id`` (meters)
rgb         12      FLOAT32    color packed as RViz expects: the bits of uint32 0x00RRGGBB
label       16      UINT32     class id of the label space (0 = unknown)
instance    20      UINT32     map instance id (0 = none)
==========  ======  =========  ==========================================================

Both directions go through numpy structured arrays and byte buffers, never per-point Python objects
(DESIGN.md §5). The reader accepts any field order, padding, either endianness, and 8/16/32-bit
integer label fields, so clouds from other tools decode too.
"""
from __future__ import annotations

import numpy as np

from ..core.mapping import SemanticCloud
from .stamps import fill_header

__all__ = ["CLOUD_FIELDS", "POINT_STEP", "pack_rgb", "unpack_rgb", "cloud_to_pointcloud2",
           "pointcloud2_to_cloud"]

# PointField datatype constants (sensor_msgs/PointField), kept here so this table needs no import.
_INT8, _UINT8, _INT16, _UINT16, _INT32, _UINT32, _FLOAT32, _FLOAT64 = range(1, 9)
_DATATYPE_TO_NUMPY = {_INT8: "i1", _UINT8: "u1", _INT16: "i2", _UINT16: "u2", _INT32: "i4", _UINT32: "u4",
                      _FLOAT32: "f4", _FLOAT64: "f8"}

CLOUD_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("x", 0, _FLOAT32), ("y", 4, _FLOAT32), ("z", 8, _FLOAT32), ("rgb", 12, _FLOAT32),
    ("label", 16, _UINT32), ("instance", 20, _UINT32))
"""(name, byte offset, PointField datatype) of the clouds this module writes."""
POINT_STEP = 24

_WRITE_DTYPE = np.dtype({"names": [f[0] for f in CLOUD_FIELDS],
                         "formats": ["<f4", "<f4", "<f4", "<u4", "<u4", "<u4"],  # rgb written as its uint32 bits
                         "offsets": [f[1] for f in CLOUD_FIELDS], "itemsize": POINT_STEP})


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """RGB uint8 -> packed uint32 ``0x00RRGGBB`` (view it as float32 for an ``rgb`` field).

    Shape: (N, 3) uint8 -> (N,) uint32.
    """
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3), got {c.shape}")
    c = c.astype(np.uint32)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Packed ``0x00RRGGBB`` (uint32, or float32 holding those bits) -> RGB uint8. Shape: (N,) -> (N, 3)."""
    p = np.ascontiguousarray(packed)
    if p.dtype.kind == "f":
        if p.dtype.itemsize != 4:
            raise ValueError(f"a packed rgb field is float32, got {p.dtype}")
        p = p.astype(np.dtype("=f4")).view(np.uint32)  # at most a byte swap: the bits stay
    p = p.astype(np.uint32)
    return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=-1).astype(np.uint8)


def cloud_to_pointcloud2(cloud: SemanticCloud, frame_id: str = "map", stamp_s: float | None = None,
                         stamp: object | None = None):
    """A ``sensor_msgs/PointCloud2`` (unorganised, dense) holding ``cloud``.

    Shape: cloud.points (N, 3) float meters, colors (N, 3) uint8, classes (N,), instances (N,) ints.
    Raises ValueError for mismatched lengths, non-finite points, or ids outside uint32.
    """
    from sensor_msgs.msg import PointCloud2, PointField

    pts = np.asarray(cloud.points)
    n = pts.shape[0] if pts.ndim == 2 else -1
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    for name in ("colors", "classes", "instances"):
        if len(getattr(cloud, name)) != n:
            raise ValueError(f"cloud.{name} has {len(getattr(cloud, name))} rows, points have {n}")
    if not np.isfinite(pts).all():
        raise ValueError("cloud points must be finite")
    for name in ("classes", "instances"):
        a = np.asarray(getattr(cloud, name))
        if n and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
            raise ValueError(f"cloud.{name} must fit in uint32")
    arr = np.empty(n, dtype=_WRITE_DTYPE)
    arr["x"], arr["y"], arr["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    arr["rgb"] = pack_rgb(np.asarray(cloud.colors)) if n else 0
    arr["label"] = np.asarray(cloud.classes)
    arr["instance"] = np.asarray(cloud.instances)
    msg = PointCloud2(height=1, width=n, is_bigendian=False, point_step=POINT_STEP, row_step=POINT_STEP * n,
                      is_dense=True)
    msg.fields = [PointField(name=name, offset=off, datatype=dt, count=1) for name, off, dt in CLOUD_FIELDS]
    msg.data = arr.tobytes()  # one C-level copy into the message's array
    return fill_header(msg, frame_id, stamp, stamp_s)


def _read_dtype(msg: object) -> np.dtype:
    endian = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _DATATYPE_TO_NUMPY:
            raise ValueError(f"PointCloud2 field {f.name!r} has unknown datatype {f.datatype}")
        if f.count != 1:
            continue  # array fields (rare) are not part of the semantic cloud
        names.append(f.name)
        formats.append(endian + _DATATYPE_TO_NUMPY[f.datatype])
        offsets.append(int(f.offset))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})


def pointcloud2_to_cloud(msg: object, drop_invalid: bool = True) -> SemanticCloud:
    """The points of a ``PointCloud2`` with fields x, y, z and optional rgb/rgba, label, instance.

    Missing attributes read as zeros (colors black, label 0, instance 0). With ``drop_invalid``,
    points with a non-finite coordinate are removed (organised clouds mark holes with NaN).
    Shape: -> points (N, 3) float32, colors (N, 3) uint8, classes (N,) int64, instances (N,) int64.
    Raises ValueError when x/y/z are missing or the buffer size disagrees with the header.
    """
    dt = _read_dtype(msg)
    for axis in ("x", "y", "z"):
        if axis not in dt.names:
            raise ValueError(f"PointCloud2 has no {axis!r} field (fields: {list(dt.names)})")
    n = int(msg.width) * int(msg.height)
    row_step, point_step = int(msg.row_step), int(msg.point_step)
    if point_step <= 0 or any(dt.fields[k][1] + dt.fields[k][0].itemsize > point_step for k in dt.names):
        raise ValueError(f"PointCloud2 point_step {point_step} is smaller than its fields")
    if row_step < point_step * int(msg.width) or len(msg.data) != row_step * int(msg.height):
        raise ValueError(f"PointCloud2 {msg.width}x{msg.height}, row_step {row_step}: expected "
                         f"{row_step * int(msg.height)} bytes, got {len(msg.data)}")
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if row_step == point_step * int(msg.width):
        arr = buf.view(dt) if n else np.zeros(0, dt)
    else:  # padded rows: drop the padding row by row (one strided copy)
        rows = buf.reshape(int(msg.height), row_step)[:, :point_step * int(msg.width)]
        arr = np.ascontiguousarray(rows).reshape(-1).view(dt)
    points = np.stack([arr["x"], arr["y"], arr["z"]], axis=-1).astype(np.float32)
    if "rgb" in dt.names or "rgba" in dt.names:
        colors = unpack_rgb(arr["rgb" if "rgb" in dt.names else "rgba"])
    else:
        colors = np.zeros((n, 3), np.uint8)
    classes = arr["label"].astype(np.int64) if "label" in dt.names else np.zeros(n, np.int64)
    instances = arr["instance"].astype(np.int64) if "instance" in dt.names else np.zeros(n, np.int64)
    if drop_invalid:
        ok = np.isfinite(points).all(axis=1)
        if not ok.all():
            points, colors, classes, instances = points[ok], colors[ok], classes[ok], instances[ok]
    return SemanticCloud(points=points, colors=colors, classes=classes, instances=instances)
