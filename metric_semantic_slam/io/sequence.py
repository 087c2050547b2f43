"""One interface over every input: simulator folders, TUM folders, 3DMatch, ICL-NUIM, bags.

``open_sequence(path)`` detects the input type and returns a :class:`Sequence` that yields
:class:`~metric_semantic_slam.io.frame.Frame` objects in stamp order. ``Frame.imu`` holds the
samples in ``(previous frame stamp, stamp]``; the first frame has no previous frame, so it gets an
empty sample set (all samples stay available through ``Sequence.imu()``).
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..core.camera import PinholeCamera
from .frame import Frame, GroundTruth, ImuSamples, StereoPair
from .trajectory import Trajectory

__all__ = [
    "Sequence",
    "FolderSequence",
    "FrameRecord",
    "StereoRig",
    "open_sequence",
    "detect_sequence_type",
    "camera_from_dict",
    "read_stamped_list",
    "read_numeric_table",
    "read_color",
    "read_depth_png",
    "select_frames",
    "load_camera_json",
]


class Sequence(ABC):
    """A recorded or simulated RGB-D(+IMU) sequence.

    Attributes: ``name``, ``camera`` (color intrinsics, depth registered to it),
    ``label_space_path`` (label YAML of the GT labels, or None), ``T_camera_imu`` (4x4 or None).
    """

    name: str
    camera: PinholeCamera
    label_space_path: Path | None = None
    T_camera_imu: np.ndarray | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Frame: ...

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    @property
    @abstractmethod
    def stamps_s(self) -> np.ndarray:
        """Frame stamps in seconds, without loading images. Shape: (N,)."""

    @abstractmethod
    def gt_trajectory(self) -> Trajectory | None:
        """Ground-truth ``T_world_camera`` samples as stored (may be denser than the frames)."""

    @abstractmethod
    def imu(self) -> ImuSamples | None:
        """Every IMU sample of the sequence, or None when it has no IMU."""

    def _normalise_index(self, index: int) -> int:
        n = len(self)
        i = int(index) + n if int(index) < 0 else int(index)
        if not 0 <= i < n:
            raise IndexError(f"frame index {index} out of range for {n} frames")
        return i

    def __repr__(self) -> str:
        cam = self.camera
        return f"{type(self).__name__}(name={self.name!r}, frames={len(self)}, camera={cam.width}x{cam.height})"


@dataclass
class FrameRecord:
    """Where one frame's files are and what is known about it (paths None when absent)."""

    stamp_s: float
    color_path: Path
    depth_path: Path
    T_world_camera: np.ndarray | None = None
    depth_gt_path: Path | None = None
    semantic_path: Path | None = None
    instance_path: Path | None = None
    ir_left_path: Path | None = None
    ir_right_path: Path | None = None


@dataclass
class StereoRig:
    """Rectified IR pair calibration: both images share ``camera``; right at ``+baseline_m`` along x."""

    camera: PinholeCamera
    baseline_m: float
    T_color_left: np.ndarray


def read_color(path: Path) -> np.ndarray:
    """RGB uint8 image from PNG/JPEG. Shape: (H, W, 3)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.dtype != np.uint8:
        raise ValueError(f"color image {path} has dtype {img.dtype}, expected uint8")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=-1)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_uint(path: Path, dtypes: tuple[type, ...]) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.ndim != 2 or img.dtype not in dtypes:
        raise ValueError(f"{path}: expected a single-channel {[np.dtype(d).name for d in dtypes]} image, "
                         f"got shape {img.shape} dtype {img.dtype}")
    return img


def _read_labels(path: Path) -> np.ndarray:
    return _read_uint(path, (np.uint16, np.uint8)).astype(np.uint16)


def read_depth_png(path: Path, depth_scale: float) -> np.ndarray:
    """Depth in meters from a uint16 PNG (meters = value / depth_scale, 0 = invalid). Shape: (H, W) float32."""
    return _read_uint(path, (np.uint16,)).astype(np.float32) / np.float32(depth_scale)


def camera_from_dict(d: dict) -> PinholeCamera:
    """Color intrinsics from any of the ``camera.json`` variants of the shared datasets.

    Looks for ``fx, fy, cx, cy`` at the top level, then under ``intrinsics``, then under the first
    ``rgb_intrinsics*`` key (TUM). Distortion comes from a ``distortion*`` key beside them.
    Shape: dict -> PinholeCamera (no arrays).
    """
    if "fx" in d:
        intr = d
    elif isinstance(d.get("intrinsics"), dict):
        intr = d["intrinsics"]
    else:
        keys = sorted(k for k in d if k.startswith("rgb_intrinsics") and isinstance(d[k], dict))
        if not keys:
            raise ValueError(f"camera description has no fx/fy/cx/cy (keys: {sorted(d)})")
        intr = d[keys[0]]
    dist_keys = [k for k in intr if k.startswith("distortion")]
    distortion = tuple(float(x) for x in intr[dist_keys[0]]) if dist_keys else (0.0,) * 5
    try:
        return PinholeCamera(
            width=int(intr.get("width", d.get("width"))),
            height=int(intr.get("height", d.get("height"))),
            fx=float(intr["fx"]), fy=float(intr["fy"]), cx=float(intr["cx"]), cy=float(intr["cy"]),
            distortion=distortion,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"camera description incomplete: {exc!r} missing (keys: {sorted(intr)})") from None


def read_stamped_list(path: Path) -> list[tuple[float, str]]:
    """TUM ``timestamp filename`` list (``#`` comments skipped). Shape: N lines -> list of N (stamp_s, name)."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{lineno}: expected 'timestamp filename', got {line!r}")
        try:
            out.append((float(parts[0]), parts[1]))
        except ValueError:
            raise ValueError(f"{path}:{lineno}: bad timestamp in {line!r}") from None
    return out


def read_numeric_table(path: Path, ncols: int) -> np.ndarray:
    """Whitespace-separated numeric rows with exactly ``ncols`` columns (``#`` comments skipped). Shape: (N, ncols)."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != ncols:
            raise ValueError(f"{path}:{lineno}: expected {ncols} columns, got {len(parts)}: {line!r}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: non-numeric value in {line!r}") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, ncols)


def select_frames(items: list, stride: int = 1, max_frames: int | None = None) -> list:
    """Every ``stride``-th item, at most ``max_frames`` of them. Shape: (N,) -> (min(ceil(N/stride), max_frames),)."""
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if max_frames is not None and int(max_frames) < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    out = items[:: int(stride)]
    return out if max_frames is None else out[: int(max_frames)]


class FolderSequence(Sequence):
    """A sequence of image files on disk, described by one :class:`FrameRecord` per frame."""

    def __init__(
        self,
        name: str,
        camera: PinholeCamera,
        records: list[FrameRecord],
        depth_scale: float,
        imu: ImuSamples | None = None,
        gt: Trajectory | None = None,
        stereo: StereoRig | None = None,
        label_space_path: Path | None = None,
        T_camera_imu: np.ndarray | None = None,
        root: Path | None = None,
    ) -> None:
        if not depth_scale > 0:
            raise ValueError(f"depth_scale must be positive, got {depth_scale}")
        stamps = np.array([r.stamp_s for r in records])
        if np.any(np.diff(stamps) <= 0):
            raise ValueError(f"{name}: frame stamps are not strictly increasing")
        self.name = name
        self.camera = camera
        self.records = records
        self.depth_scale = float(depth_scale)
        self._imu = imu
        self._gt = gt
        self.stereo = stereo
        self.label_space_path = label_space_path
        self.T_camera_imu = T_camera_imu
        self.root = root

    def __len__(self) -> int:
        return len(self.records)

    @property
    def stamps_s(self) -> np.ndarray:
        """Frame stamps. Shape: (N,)."""
        return np.array([r.stamp_s for r in self.records])

    def gt_trajectory(self) -> Trajectory | None:
        if self._gt is not None:
            return self._gt
        known = [r for r in self.records if r.T_world_camera is not None]
        if not known:
            return None
        return Trajectory(np.array([r.stamp_s for r in known]), np.stack([r.T_world_camera for r in known]))

    def imu(self) -> ImuSamples | None:
        return self._imu

    def __getitem__(self, index: int) -> Frame:
        i = self._normalise_index(index)
        rec = self.records[i]
        imu = None
        if self._imu is not None:
            imu = ImuSamples.empty() if i == 0 else self._imu.between(self.records[i - 1].stamp_s, rec.stamp_s)
        stereo = None
        if self.stereo is not None and rec.ir_left_path is not None and rec.ir_right_path is not None:
            stereo = StereoPair(
                left=_read_uint(rec.ir_left_path, (np.uint8,)),
                right=_read_uint(rec.ir_right_path, (np.uint8,)),
                camera=self.stereo.camera,
                baseline_m=self.stereo.baseline_m,
                T_color_left=self.stereo.T_color_left.copy(),
            )
        gt = GroundTruth(
            T_world_camera=None if rec.T_world_camera is None else rec.T_world_camera.copy(),
            depth_m=None if rec.depth_gt_path is None else read_depth_png(rec.depth_gt_path, self.depth_scale),
            semantic=None if rec.semantic_path is None else _read_labels(rec.semantic_path),
            instance=None if rec.instance_path is None else _read_labels(rec.instance_path),
        )
        return Frame(
            index=i,
            stamp_s=rec.stamp_s,
            color=read_color(rec.color_path),
            depth_m=read_depth_png(rec.depth_path, self.depth_scale),
            camera=self.camera,
            stereo=stereo,
            imu=imu,
            gt=gt,
            T_camera_imu=None if self.T_camera_imu is None else self.T_camera_imu.copy(),
        )


def detect_sequence_type(path: str | Path) -> str:
    """One of ``sim, tum, tum_keyframes, 3dmatch, icl_nuim, rosbag2, ros1bag`` (ValueError otherwise).

    Shape: path -> str (no arrays).
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"input {p} does not exist")
    if p.is_file():
        if p.suffix == ".bag":
            return "ros1bag"
        if p.suffix in (".mcap", ".db3"):
            return "rosbag2"
        raise ValueError(f"{p}: unknown file type (expected a .bag, .mcap or .db3 file, or a folder)")
    if (p / "metadata.yaml").is_file():
        return "rosbag2"
    if (p / "sim_config.json").is_file():
        return "sim"
    if (p / "truth_cam_poses.txt").is_file() and (p / "rgb.txt").is_file():
        return "tum_keyframes"
    if (p / "rgb.txt").is_file() and (p / "depth.txt").is_file():
        return "tum"
    if (p / "camera-intrinsics.txt").is_file() and any(p.glob("seq-*/frame-*.color.png")):
        return "3dmatch"
    if (p / "odometry.log").is_file() and (p / "color").is_dir() and (p / "depth").is_dir():
        return "icl_nuim"
    raise ValueError(
        f"{p}: not a known sequence (looked for sim_config.json, rgb.txt+depth.txt, truth_cam_poses.txt, "
        "camera-intrinsics.txt+seq-*/, odometry.log+color/+depth/, metadata.yaml, *.bag/*.mcap/*.db3)"
    )


def open_sequence(path: str | Path, **options) -> Sequence:
    """Open any supported input as a :class:`Sequence`.

    Common options: ``max_frames`` (int), ``stride`` (int). TUM/simulator: ``max_pair_dt_s`` (rgb<->depth
    association, 0.02), ``max_gt_gap_s`` (0.02). Bags: ``topics`` (dict overriding the RealSense names).
    Shape: frames of the camera size; see :class:`~metric_semantic_slam.io.frame.Frame`.
    """
    kind = detect_sequence_type(path)
    if kind in ("sim", "tum"):
        from .tum import open_tum_folder

        return open_tum_folder(path, **options)
    if kind == "tum_keyframes":
        from .datasets import open_tum_keyframes

        return open_tum_keyframes(path, **options)
    if kind == "3dmatch":
        from .datasets import open_3dmatch

        return open_3dmatch(path, **options)
    if kind == "icl_nuim":
        from .datasets import open_icl_nuim

        return open_icl_nuim(path, **options)
    from .bag import BagSequence

    return BagSequence(path, **options)


def load_camera_json(folder: Path) -> dict:
    """``camera.json`` of a folder as a dict (ValueError when missing or not JSON). Shape: path -> dict."""
    path = Path(folder) / "camera.json"
    if not path.is_file():
        raise ValueError(f"{folder}: camera.json is missing (intrinsics and depth_scale are needed)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc}") from None

