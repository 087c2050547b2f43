"""Bags (rosbag2 sqlite3/mcap, ROS 1 .bag) <-> sequences, with ``rosbags`` (no ROS install needed).

Topics follow ``docs/formats.md`` (RealSense-like names, :data:`DEFAULT_TOPICS`). Besides them the
writer adds ``/tf_static`` (color -> infra1 and color -> imu optical frames) and
``/ground_truth/depth`` (32FC1 meters) when the folder has them, so a bag keeps what a folder knows.

Reading accepts a rosbag2 folder, a ROS 1 ``.bag`` file, or a lone ``.mcap``/``.db3`` file (topics and
types then come from the storage file itself). Damaged bags raise :class:`BagError` (a ValueError).

Convention: message log time = header stamp; depth is 16UC1 millimeters; an Imu without gyro
has zero angular velocity and ``angular_velocity_covariance[0] = -1`` (sensor_msgs/Imu: "no estimate").
"""
from __future__ import annotations

import heapq
from collections import deque
import itertools
import math
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from ..core.camera import PinholeCamera
from ..core.geometry import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from .frame import Frame, GroundTruth, ImuSamples, StereoPair
from .image_encoding import color_to_rgb8, decode_image, depth_to_meters, encode_image
from .sequence import Sequence, StereoRig, open_sequence, select_frames
from .trajectory import Trajectory, interpolate_poses
from .tum import nearest_stamp_indices

__all__ = ["DEFAULT_TOPICS", "FRAME_IDS", "folder_to_bag", "sequence_to_bag", "BagSequence", "BagError",
           "open_bag_reader"]

DEFAULT_TOPICS: dict[str, str] = {
    "color": "/camera/color/image_raw",
    "color_info": "/camera/color/camera_info",
    "depth": "/camera/aligned_depth_to_color/image_raw",
    "depth_info": "/camera/aligned_depth_to_color/camera_info",
    "ir_left": "/camera/infra1/image_rect_raw",
    "ir_left_info": "/camera/infra1/camera_info",
    "ir_right": "/camera/infra2/image_rect_raw",
    "ir_right_info": "/camera/infra2/camera_info",
    "imu": "/camera/imu",
    "gt_pose": "/ground_truth/pose",
    "gt_semantic": "/ground_truth/semantic",
    "gt_instance": "/ground_truth/instance",
    "gt_depth": "/ground_truth/depth",
    "tf_static": "/tf_static",
}

FRAME_IDS: dict[str, str] = {
    "color": "camera_color_optical_frame",
    "ir_left": "camera_infra1_optical_frame",
    "ir_right": "camera_infra2_optical_frame",
    "imu": "camera_imu_optical_frame",
    "world": "map",
}

_MSGTYPES = {
    "color": "sensor_msgs/msg/Image", "depth": "sensor_msgs/msg/Image", "ir_left": "sensor_msgs/msg/Image",
    "ir_right": "sensor_msgs/msg/Image", "gt_semantic": "sensor_msgs/msg/Image",
    "gt_instance": "sensor_msgs/msg/Image", "gt_depth": "sensor_msgs/msg/Image",
    "color_info": "sensor_msgs/msg/CameraInfo", "depth_info": "sensor_msgs/msg/CameraInfo",
    "ir_left_info": "sensor_msgs/msg/CameraInfo", "ir_right_info": "sensor_msgs/msg/CameraInfo",
    "imu": "sensor_msgs/msg/Imu", "gt_pose": "geometry_msgs/msg/PoseStamped", "tf_static": "tf2_msgs/msg/TFMessage",
}
_STORAGES = ("mcap", "sqlite3", "ros1")


class BagError(ValueError):
    """A bag that cannot be read or written (corrupt, truncated, missing topics)."""


def _typestore(ros1: bool):
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    if not ros1:
        # Humble's definitions serialize identically to Jazzy/Kilted for every type used here.
        return get_typestore(Stores.ROS2_HUMBLE)
    store = get_typestore(Stores.ROS1_NOETIC)  # a fresh copy: registering below changes no other user
    # Noetic's store lacks tf2_msgs; its definition is one line (tf2_msgs/TFMessage.msg).
    store.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    return store


def _split_stamp(t: float) -> tuple[int, int]:
    sec = math.floor(t)
    nsec = int(round((t - sec) * 1e9))
    if nsec >= 1_000_000_000:
        sec, nsec = sec + 1, nsec - 1_000_000_000
    return int(sec), nsec


def _stamp_ns(t: float) -> int:
    sec, nsec = _split_stamp(t)
    return sec * 1_000_000_000 + nsec


class _MsgFactory:
    """Builds messages for one typestore (ROS 1 and ROS 2 differ in Header.seq and CameraInfo field case)."""

    def __init__(self, ros1: bool) -> None:
        self.ros1 = ros1
        self.store = _typestore(ros1)
        self.T = self.store.types
        self._seq = itertools.count()

    def serialize(self, msg: object, msgtype: str) -> bytes:
        if self.ros1:
            return bytes(self.store.serialize_ros1(msg, msgtype))
        return bytes(self.store.serialize_cdr(msg, msgtype))

    def header(self, t: float, frame_id: str):
        sec, nsec = _split_stamp(t)
        stamp = self.T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec)
        if self.ros1:
            return self.T["std_msgs/msg/Header"](seq=next(self._seq), stamp=stamp, frame_id=frame_id)
        return self.T["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(self, t: float, frame_id: str, array: np.ndarray, encoding: str):
        h, w, step, big, data = encode_image(array, encoding)
        return self.T["sensor_msgs/msg/Image"](
            header=self.header(t, frame_id), height=h, width=w, encoding=encoding, is_bigendian=int(big),
            step=step, data=np.frombuffer(data, dtype=np.uint8))

    def camera_info(self, t: float, frame_id: str, cam: PinholeCamera, tx: float = 0.0):
        K = cam.K
        P = np.zeros((3, 4))
        P[:, :3] = K
        P[0, 3] = tx
        d = np.asarray(cam.distortion, dtype=np.float64)
        roi = self.T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        arrays = {"d": d, "k": K.ravel(), "r": np.eye(3).ravel(), "p": P.ravel()}
        if self.ros1:
            arrays = {k.upper(): v for k, v in arrays.items()}
        return self.T["sensor_msgs/msg/CameraInfo"](
            header=self.header(t, frame_id), height=cam.height, width=cam.width,
            distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi, **arrays)

    def _vec(self, v) -> object:
        return self.T["geometry_msgs/msg/Vector3"](x=float(v[0]), y=float(v[1]), z=float(v[2]))

    def _quat(self, q) -> object:
        return self.T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))

    def imu(self, t: float, gyro: np.ndarray, accel: np.ndarray):
        orient_cov = np.zeros(9)
        orient_cov[0] = -1.0  # no orientation estimate
        gyro_cov = np.zeros(9)
        if not np.all(np.isfinite(gyro)):
            gyro, gyro_cov[0] = np.zeros(3), -1.0  # sensor_msgs/Imu: covariance[0] = -1 means "no estimate"
        return self.T["sensor_msgs/msg/Imu"](
            header=self.header(t, FRAME_IDS["imu"]), orientation=self._quat((0, 0, 0, 1)),
            orientation_covariance=orient_cov, angular_velocity=self._vec(gyro),
            angular_velocity_covariance=gyro_cov, linear_acceleration=self._vec(accel),
            linear_acceleration_covariance=np.zeros(9))

    def pose(self, t: float, T_world_camera: np.ndarray):
        pose = self.T["geometry_msgs/msg/Pose"](
            position=self.T["geometry_msgs/msg/Point"](x=float(T_world_camera[0, 3]), y=float(T_world_camera[1, 3]),
                                                      z=float(T_world_camera[2, 3])),
            orientation=self._quat(matrix_to_quat_xyzw(T_world_camera[:3, :3])))
        return self.T["geometry_msgs/msg/PoseStamped"](header=self.header(t, FRAME_IDS["world"]), pose=pose)

    def tf_static(self, t: float, transforms: list[tuple[str, str, np.ndarray]]):
        msgs = []
        for parent, child, T in transforms:
            tr = self.T["geometry_msgs/msg/Transform"](translation=self._vec(T[:3, 3]),
                                                       rotation=self._quat(matrix_to_quat_xyzw(T[:3, :3])))
            msgs.append(self.T["geometry_msgs/msg/TransformStamped"](
                header=self.header(t, parent), child_frame_id=child, transform=tr))
        return self.T["tf2_msgs/msg/TFMessage"](transforms=msgs)


class _BagWriter:
    """One writer API over rosbag2 (mcap/sqlite3) and ROS 1 bags."""

    def __init__(self, path: Path, storage: str, factory: _MsgFactory) -> None:
        self.factory = factory
        self.conns: dict[str, object] = {}
        if storage == "ros1":
            from rosbags.rosbag1 import Writer

            self.writer = Writer(path)
        else:
            from rosbags.rosbag2 import StoragePlugin, Writer

            plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
            self.writer = Writer(path, version=8, storage_plugin=plugin)
        self.writer.open()

    def write(self, topic: str, msgtype: str, t_ns: int, msg: object) -> None:
        if topic not in self.conns:
            self.conns[topic] = self.writer.add_connection(topic, msgtype, typestore=self.factory.store)
        self.writer.write(self.conns[topic], t_ns, self.factory.serialize(msg, msgtype))

    def close(self) -> None:
        self.writer.close()


def _frame_messages(frame: Frame, fac: _MsgFactory, topics: dict[str, str | None]) -> list:
    """(key, msg) pairs of one frame, in a fixed order."""
    t, cam, cf = frame.stamp_s, frame.camera, FRAME_IDS["color"]
    out: list[tuple[str, object]] = []
    out.append(("color_info", lambda: fac.camera_info(t, cf, cam)))
    out.append(("color", lambda: fac.image(t, cf, frame.color, "rgb8")))
    out.append(("depth_info", lambda: fac.camera_info(t, cf, cam)))
    depth_mm = np.clip(np.round(np.nan_to_num(frame.depth_m, nan=0.0) * 1000.0), 0, 65535).astype(np.uint16)
    out.append(("depth", lambda: fac.image(t, cf, depth_mm, "16UC1")))
    if frame.stereo is not None:
        sc, b = frame.stereo.camera, frame.stereo.baseline_m
        out.append(("ir_left_info", lambda: fac.camera_info(t, FRAME_IDS["ir_left"], sc)))
        out.append(("ir_left", lambda: fac.image(t, FRAME_IDS["ir_left"], frame.stereo.left, "mono8")))
        # ROS CameraInfo convention: right camera P[0,3] = -fx * baseline.
        out.append(("ir_right_info", lambda: fac.camera_info(t, FRAME_IDS["ir_right"], sc, tx=-sc.fx * b)))
        out.append(("ir_right", lambda: fac.image(t, FRAME_IDS["ir_right"], frame.stereo.right, "mono8")))
    gt = frame.gt
    if gt is not None:
        if gt.semantic is not None:
            out.append(("gt_semantic", lambda: fac.image(t, cf, gt.semantic.astype(np.uint16), "mono16")))
        if gt.instance is not None:
            out.append(("gt_instance", lambda: fac.image(t, cf, gt.instance.astype(np.uint16), "mono16")))
        if gt.depth_m is not None:
            out.append(("gt_depth", lambda: fac.image(t, cf, gt.depth_m.astype(np.float32), "32FC1")))
    return [(k, m) for k, m in out if topics.get(k)]


def sequence_to_bag(
    seq: Sequence,
    bag_path: str | Path,
    storage: str = "mcap",
    topics: dict[str, str | None] | None = None,
    margin_s: float = 0.5,
    overwrite: bool = False,
    progress: bool | None = None,
) -> Path:
    """Write a sequence as a bag; IMU and GT-pose samples within ``margin_s`` of the frames' span go too.

    ``topics`` overrides names from :data:`DEFAULT_TOPICS` (None drops a topic). Frames are read one
    at a time, so memory stays bounded. Shape: -> the bag path (a folder for rosbag2, a file for ROS 1).
    """
    if storage not in _STORAGES:
        raise ValueError(f"storage must be one of {_STORAGES}, got {storage!r}")
    topics = {**DEFAULT_TOPICS, **(topics or {})}
    unknown = set(topics) - set(DEFAULT_TOPICS)
    if unknown:
        raise ValueError(f"unknown topic keys {sorted(unknown)}; known: {sorted(DEFAULT_TOPICS)}")
    bag_path = Path(bag_path)
    if (storage == "ros1") != (bag_path.suffix == ".bag"):
        raise ValueError(f"{bag_path}: ROS 1 bags are .bag files and rosbag2 bags are folders not named *.bag "
                         f"(storage={storage!r})")
    source = getattr(seq, "path", None) or getattr(seq, "root", None)
    if source is not None:
        src, dst = Path(source).resolve(), bag_path.resolve()
        if src == dst or dst in src.parents:
            raise ValueError(f"output {bag_path} would overwrite the input {source}")
    if bag_path.exists():
        if not overwrite:
            raise ValueError(f"{bag_path} exists already (overwrite=True / --overwrite replaces it)")
        shutil.rmtree(bag_path) if bag_path.is_dir() else bag_path.unlink()
    bag_path.parent.mkdir(parents=True, exist_ok=True)
    if len(seq) == 0:
        raise ValueError(f"sequence {seq.name} has no frames to write")
    ros1 = storage == "ros1"
    fac = _MsgFactory(ros1)
    stamps = np.asarray(seq.stamps_s)
    t_lo, t_hi = stamps[0] - margin_s, stamps[-1] + margin_s
    stereo_rig = getattr(seq, "stereo", None)

    # Each source yields (t_ns, source order, topic key, message builder), sorted, so heapq.merge
    # interleaves them in time; builders run only when written, so one frame is in memory at a time.
    def frame_source() -> Iterator[tuple]:
        bar = tqdm(total=len(seq), desc=f"bag {seq.name}", unit="frame",
                   disable=None if progress is None else not progress)
        for frame in seq:
            for k, build in _frame_messages(frame, fac, topics):
                yield (_stamp_ns(frame.stamp_s), 2, k, build)
            bar.update(1)
        bar.close()

    def imu_source() -> Iterator[tuple]:
        imu = seq.imu()
        if imu is None or not topics.get("imu"):
            return
        m = (imu.stamps_s >= t_lo) & (imu.stamps_s <= t_hi)
        for t, g, a in zip(imu.stamps_s[m], imu.gyro_rad_s[m], imu.accel_m_s2[m]):
            yield (_stamp_ns(t), 0, "imu", lambda t=t, g=g, a=a: fac.imu(t, g, a))

    def gt_source() -> Iterator[tuple]:
        gt = seq.gt_trajectory()
        if gt is None or not topics.get("gt_pose"):
            return
        m = (gt.stamps_s >= t_lo) & (gt.stamps_s <= t_hi)
        for t, T in zip(gt.stamps_s[m], gt.T_world_camera[m]):
            yield (_stamp_ns(t), 1, "gt_pose", lambda t=t, T=T: fac.pose(t, T))

    def tf_source() -> Iterator[tuple]:
        tfs = []
        if stereo_rig is not None:
            tfs.append((FRAME_IDS["color"], FRAME_IDS["ir_left"], stereo_rig.T_color_left))
        if seq.T_camera_imu is not None:
            tfs.append((FRAME_IDS["color"], FRAME_IDS["imu"], seq.T_camera_imu))
        if tfs and topics.get("tf_static"):
            t0 = float(stamps[0])
            yield (_stamp_ns(t0), -1, "tf_static", lambda: fac.tf_static(t0, tfs))

    writer = _BagWriter(bag_path, storage, fac)
    try:
        merged = heapq.merge(tf_source(), imu_source(), gt_source(), frame_source(), key=lambda x: (x[0], x[1]))
        for t_ns, _, key, build in merged:
            writer.write(topics[key], _MSGTYPES[key], t_ns, build())
    except BaseException:
        # A half-written bag looks valid to players; remove it rather than leave it behind.
        try:
            writer.close()
        finally:
            shutil.rmtree(bag_path, ignore_errors=True) if bag_path.is_dir() else bag_path.unlink(missing_ok=True)
        raise
    writer.close()
    return bag_path


def folder_to_bag(
    folder: str | Path,
    bag_path: str | Path,
    storage: str = "mcap",
    topics: dict[str, str | None] | None = None,
    max_frames: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a simulator/TUM (or any readable) folder as a bag with the ``docs/formats.md`` topics.

    ``storage``: ``mcap`` or ``sqlite3`` (rosbag2 folder) or ``ros1`` (a ``.bag`` file).
    Shape: -> the bag path.
    """
    seq = open_sequence(folder, max_frames=max_frames)
    return sequence_to_bag(seq, bag_path, storage=storage, topics=topics, overwrite=overwrite)


# ----------------------------------------------------------------------------------------------- reading


@dataclass
class _FrameIndex:
    stamp_s: float
    parts: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (log time ns, header stamp)


def _header_stamp(msg: object) -> float:
    s = msg.header.stamp
    return s.sec + s.nanosec * 1e-9


def _cam_arrays(msg: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    K = getattr(msg, "k", None)
    if K is None:
        K = msg.K
    P = getattr(msg, "p", None)
    if P is None:
        P = msg.P
    D = getattr(msg, "d", None)
    if D is None:
        D = msg.D
    return np.asarray(K, dtype=np.float64).reshape(3, 3), np.asarray(P, dtype=np.float64).reshape(3, 4), \
        np.asarray(D, dtype=np.float64)


def _camera_from_info(msg: object, topic: str) -> PinholeCamera:
    K, _, D = _cam_arrays(msg)
    if not (K[0, 0] > 0 and msg.width > 0 and msg.height > 0):
        raise BagError(f"{topic}: CameraInfo has no calibration (K={K.ravel().tolist()}, {msg.width}x{msg.height})")
    dist = tuple(float(x) for x in D) if len(D) else (0.0,) * 5
    return PinholeCamera(width=int(msg.width), height=int(msg.height), fx=float(K[0, 0]), fy=float(K[1, 1]),
                         cx=float(K[0, 2]), cy=float(K[1, 2]), distortion=dist)


def _transform_from_msg(tr: object) -> np.ndarray:
    T = np.eye(4)
    q = tr.rotation
    T[:3, :3] = quat_xyzw_to_matrix(np.array([q.x, q.y, q.z, q.w]))
    T[:3, 3] = [tr.translation.x, tr.translation.y, tr.translation.z]
    return T


class _LoneStorageReader:
    """A lone rosbag2 storage file (``.mcap``/``.db3`` without ``metadata.yaml``), read through
    rosbags' storage plugin, which finds topics and types in the file itself. Same calls as AnyReader."""

    def __init__(self, path: Path, store) -> None:
        from rosbags.rosbag2.storage_mcap import McapReader
        from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

        self.storage = (McapReader if path.suffix == ".mcap" else Sqlite3Reader)(path)
        self.store = store

    def open(self) -> None:
        self.storage.open()
        self.connections = list(self.storage.connections)

    def close(self) -> None:
        self.storage.close()

    def messages(self, connections, start=None, stop=None):
        return self.storage.messages(connections, start=start, stop=stop)

    def deserialize(self, raw, msgtype: str) -> object:
        return self.store.deserialize_cdr(raw, msgtype)


def _resolve_bag_path(path: Path) -> Path:
    if path.is_dir():
        if not (path / "metadata.yaml").is_file():
            raise BagError(f"{path}: a rosbag2 folder needs metadata.yaml")
        return path
    if not path.is_file():
        raise BagError(f"bag {path} does not exist")
    if path.suffix == ".bag":
        return path
    if path.suffix in (".mcap", ".db3"):
        return path.parent if (path.parent / "metadata.yaml").is_file() else path
    raise BagError(f"{path}: not a bag (.bag file or rosbag2 folder)")


def open_bag_reader(path: str | Path, store=None):
    """Open any readable bag: a rosbag2 folder, a lone ``.mcap``/``.db3``, or a ROS 1 ``.bag``.

    Returns ``(reader, resolved_path, is_ros1)``; the reader is opened and has rosbags' AnyReader
    calls (``connections``, ``messages``, ``deserialize``, ``close``). ``store`` defaults to the
    typestore this module writes with. Unreadable input raises :class:`BagError`.
    """
    resolved = _resolve_bag_path(Path(path))
    ros1 = resolved.suffix == ".bag"
    store = _typestore(ros1) if store is None else store
    try:
        if resolved.suffix in (".mcap", ".db3"):
            reader = _LoneStorageReader(resolved, store)
        else:
            from rosbags.highlevel import AnyReader

            reader = AnyReader([resolved], default_typestore=store)
        reader.open()
    except Exception as exc:  # rosbags raises several unrelated types for damaged files
        raise BagError(f"cannot read bag {resolved}: {type(exc).__name__}: {exc}") from exc
    return reader, resolved, ros1


class BagSequence(Sequence):
    """Frames of a rosbag2 (sqlite3/mcap) or ROS 1 bag.

    Opening scans the bag once for stamps, CameraInfo, IMU, GT poses and tf_static (images are not
    kept); iterating streams the images again, holding only frames still waiting for a partner.
    Color and depth pair by nearest header stamp within ``max_pair_dt_s``; unpaired color is dropped.
    ``label_space_path`` defaults to a ``labels.yaml`` beside the bag (the simulator's ``bag/`` folder).
    """

    def __init__(
        self,
        path: str | Path,
        topics: dict[str, str | None] | None = None,
        max_frames: int | None = None,
        stride: int = 1,
        max_pair_dt_s: float = 0.02,
        max_gt_gap_s: float = 0.02,
        camera: PinholeCamera | None = None,
        label_space_path: str | Path | None = None,
    ) -> None:
        self.path = _resolve_bag_path(Path(path))
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.topics = {**DEFAULT_TOPICS, **(topics or {})}
        self.max_pair_dt_s = float(max_pair_dt_s)
        # A bag carries no label space; the simulator keeps one beside its bag/ folder.
        sibling = self.path.parent / "labels.yaml"
        self.label_space_path = Path(label_space_path) if label_space_path else (sibling if sibling.is_file() else None)
        self.T_camera_imu = None
        self.stereo: StereoRig | None = None
        self._ros1 = self.path.suffix == ".bag"
        self._store = _typestore(self._ros1)
        self._keys_of: dict[str, list[str]] = {}  # one topic may serve several roles (e.g. shared camera_info)
        for k, v in self.topics.items():
            if v:
                self._keys_of.setdefault(v, []).append(k)
        self._scan(camera)
        self.frames = select_frames(self.frames, stride, max_frames)
        self._gt_at_frame: list[np.ndarray | None] = [None] * len(self.frames)
        if self._gt is not None and self.frames:
            poses, valid = interpolate_poses(self._gt, np.array([f.stamp_s for f in self.frames]), max_gt_gap_s)
            self._gt_at_frame = [p if ok else None for p, ok in zip(poses, valid)]

    # -- reading helpers -------------------------------------------------------------------------------
    def _reader(self):
        return open_bag_reader(self.path, self._store)[0]

    def _messages(self, reader, keys: set[str], start: int | None = None, stop: int | None = None,
                  stamp_only: bool = False):
        """(key, log time ns, message) of the topics of ``keys``; with ``stamp_only`` Image messages
        yield just their header stamp (s), read from the raw bytes without decoding the pixels."""
        conns = [c for c in reader.connections if keys.intersection(self._keys_of.get(c.topic, ()))]
        if not conns:
            return
        try:
            for conn, t_ns, raw in reader.messages(conns, start=start, stop=stop):
                if stamp_only and conn.msgtype == "sensor_msgs/msg/Image":
                    msg = self._raw_header_stamp(raw)
                else:
                    msg = reader.deserialize(raw, conn.msgtype)
                for key in self._keys_of[conn.topic]:
                    if key in keys:
                        yield key, t_ns, msg
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f"bag {self.path} is damaged: {type(exc).__name__}: {exc}") from exc

    def _raw_header_stamp(self, raw: bytes | memoryview) -> float:
        # Header is the first field. ROS 1: uint32 seq, uint32 sec, uint32 nsec (little-endian).
        # CDR: 4-byte encapsulation header (byte 1 odd = little-endian), then int32 sec, uint32 nanosec.
        b = bytes(raw[:12])
        if len(b) < 12:
            raise BagError(f"bag {self.path}: Image message of {len(b)} bytes is truncated")
        if self._ros1:
            sec, nsec = struct.unpack("<II", b[4:12])
        else:
            sec, nsec = struct.unpack("<iI" if b[1] & 1 else ">iI", b[4:12])
        return sec + nsec * 1e-9

    def _scan(self, camera: PinholeCamera | None) -> None:
        stamps: dict[str, list[tuple[float, int]]] = {}
        infos: dict[str, object] = {}
        imu_rows: list[tuple[float, float, float, float, float, float, float]] = []
        gt_rows: list[tuple[float, np.ndarray]] = []
        tf: dict[str, np.ndarray] = {}
        reader = self._reader()
        try:
            keys = {k for k in self.topics if self.topics[k]}
            present = {k for c in reader.connections for k in self._keys_of.get(c.topic, ())}
            for need in ("color", "depth"):
                if need not in present:
                    raise BagError(f"bag {self.path} has no {need} topic {self.topics[need]!r} "
                                   f"(topics: {sorted({c.topic for c in reader.connections})})")
            for key, t_ns, msg in self._messages(reader, keys, stamp_only=True):
                if key.endswith("_info"):
                    infos.setdefault(key, msg)
                elif key == "imu":
                    g, a = msg.angular_velocity, msg.linear_acceleration
                    no_gyro = msg.angular_velocity_covariance[0] == -1
                    gyro = (math.nan,) * 3 if no_gyro else (g.x, g.y, g.z)
                    imu_rows.append((_header_stamp(msg), *gyro, a.x, a.y, a.z))
                elif key == "gt_pose":
                    p, q = msg.pose.position, msg.pose.orientation
                    T = np.eye(4)
                    T[:3, :3] = quat_xyzw_to_matrix(np.array([q.x, q.y, q.z, q.w]))
                    T[:3, 3] = [p.x, p.y, p.z]
                    gt_rows.append((_header_stamp(msg), T))
                elif key == "tf_static":
                    for ts in msg.transforms:
                        if ts.header.frame_id == FRAME_IDS["color"]:
                            tf[ts.child_frame_id] = _transform_from_msg(ts.transform)
                else:
                    stamps.setdefault(key, []).append((msg if isinstance(msg, float) else _header_stamp(msg), t_ns))
        finally:
            reader.close()

        if camera is None:
            if "color_info" not in infos:
                raise BagError(f"bag {self.path} has no camera_info on {self.topics['color_info']!r}; "
                               "pass camera=PinholeCamera(...)")
            camera = _camera_from_info(infos["color_info"], self.topics["color_info"])
        self.camera = camera
        if "ir_left_info" in infos and "ir_right_info" in infos:
            left_cam = _camera_from_info(infos["ir_left_info"], self.topics["ir_left_info"])
            _, P_right, _ = _cam_arrays(infos["ir_right_info"])
            baseline = -P_right[0, 3] / P_right[0, 0]
            self.stereo = StereoRig(left_cam, float(baseline), tf.get(FRAME_IDS["ir_left"], np.eye(4)))
        self.T_camera_imu = tf.get(FRAME_IDS["imu"])

        imu = np.array(sorted(imu_rows), dtype=np.float64).reshape(-1, 7)
        self._imu = ImuSamples(imu[:, 0].copy(), imu[:, 1:4].copy(), imu[:, 4:7].copy()) if len(imu) else None
        gt_rows.sort(key=lambda r: r[0])
        self._gt = Trajectory(np.array([r[0] for r in gt_rows]), np.stack([r[1] for r in gt_rows])) if gt_rows else None

        def sorted_stamps(key: str) -> tuple[np.ndarray, list[int]]:
            rows = sorted(stamps.get(key, []))
            return np.array([r[0] for r in rows]), [r[1] for r in rows]

        color_t, color_log = sorted_stamps("color")
        partners = {}
        for key in ("depth", "ir_left", "ir_right", "gt_semantic", "gt_instance", "gt_depth"):
            t, log = sorted_stamps(key)
            partners[key] = (t, log)
        frames: list[_FrameIndex] = []
        match = {key: nearest_stamp_indices(color_t, pt, self.max_pair_dt_s) for key, (pt, _) in partners.items()}
        for i, (t, log) in enumerate(zip(color_t, color_log)):
            fi = _FrameIndex(float(t), {"color": (log, float(t))})
            for key, (pt, plog) in partners.items():
                j = int(match[key][i])
                if j >= 0:
                    fi.parts[key] = (plog[j], float(pt[j]))
            if "depth" in fi.parts:
                frames.append(fi)
        self.frames = frames

    # -- Sequence API ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frames)

    @property
    def stamps_s(self) -> np.ndarray:
        """Frame stamps. Shape: (N,)."""
        return np.array([f.stamp_s for f in self.frames])

    def gt_trajectory(self) -> Trajectory | None:
        return self._gt

    def imu(self) -> ImuSamples | None:
        return self._imu

    def _build(self, i: int, images: dict[str, np.ndarray]) -> Frame:
        fi = self.frames[i]
        imu = None
        if self._imu is not None:
            imu = ImuSamples.empty() if i == 0 else self._imu.between(self.frames[i - 1].stamp_s, fi.stamp_s)
        stereo = None
        if self.stereo is not None and "ir_left" in images and "ir_right" in images:
            stereo = StereoPair(images["ir_left"], images["ir_right"], self.stereo.camera, self.stereo.baseline_m,
                                self.stereo.T_color_left.copy())
        gt_pose = self._gt_at_frame[i]
        gt = GroundTruth(
            T_world_camera=None if gt_pose is None else gt_pose.copy(),
            depth_m=images.get("gt_depth"), semantic=images.get("gt_semantic"), instance=images.get("gt_instance"))
        return Frame(index=i, stamp_s=fi.stamp_s, color=images["color"], depth_m=images["depth"], camera=self.camera,
                     stereo=stereo, imu=imu, gt=gt,
                     T_camera_imu=None if self.T_camera_imu is None else self.T_camera_imu.copy())

    def _decode(self, key: str, msg: object) -> np.ndarray:
        arr = decode_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)
        try:
            if key == "color":
                return color_to_rgb8(arr, msg.encoding)
            if key in ("depth", "gt_depth"):
                return depth_to_meters(arr, msg.encoding)
            if key in ("ir_left", "ir_right"):
                return arr if arr.ndim == 2 else color_to_rgb8(arr, msg.encoding).mean(axis=2).astype(np.uint8)
            return arr.astype(np.uint16)
        except ValueError as exc:
            raise BagError(f"{self.topics[key]}: {exc}") from None

    def _stream(self, indices: list[int]) -> Iterator[Frame]:
        """Frames ``indices`` (ascending) reading only the time window they span."""
        if not indices:
            return
        wanted: dict[tuple[str, int], list[int]] = {}
        for i in indices:
            for key, (log, _) in self.frames[i].parts.items():
                wanted.setdefault((key, log), []).append(i)
        logs = [log for key, log in wanted]
        pending: dict[int, dict[str, np.ndarray]] = {i: {} for i in indices}
        queue = deque(indices)
        reader = self._reader()
        try:
            keys = {key for key, _ in wanted}
            for key, log, msg in self._messages(reader, keys, start=min(logs), stop=max(logs) + 1):
                users = wanted.get((key, log))
                if not users:
                    continue
                arr = self._decode(key, msg)
                for i in users:
                    pending[i][key] = arr
                while queue and set(self.frames[queue[0]].parts) <= set(pending[queue[0]]):
                    i = queue.popleft()
                    yield self._build(i, pending.pop(i))
        finally:
            reader.close()
        if queue:
            raise BagError(f"bag {self.path}: messages of frame {queue[0]} vanished while reading (damaged bag?)")

    def __iter__(self) -> Iterator[Frame]:
        yield from self._stream(list(range(len(self))))

    def __getitem__(self, index: int) -> Frame:
        frames = self._stream([self._normalise_index(index)])
        try:
            return next(frames)
        finally:
            frames.close()  # closes the bag reader now rather than at garbage collection

