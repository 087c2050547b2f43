"""Readers for the other shared RGB-D datasets: 3DMatch, ICL-NUIM/Redwood, TUM keyframe subsets.

3DMatch ``frame-*.pose.txt`` and ICL/Redwood ``.log`` poses are camera-to-world 4x4 matrices, i.e.
``T_world_camera``. Neither dataset has time stamps: frames get synthetic ones at 30 Hz from
``SYNTHETIC_T0_S`` (not 0: some ROS tools reject zero stamps), using the frame id so gaps in the
ids stay gaps in time.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from ..core.camera import PinholeCamera
from .sequence import (
    FolderSequence,
    FrameRecord,
    camera_from_dict,
    load_camera_json,
    read_numeric_table,
    read_stamped_list,
    select_frames,
)

__all__ = ["SYNTHETIC_T0_S", "SYNTHETIC_RATE_HZ", "open_3dmatch", "open_icl_nuim", "open_tum_keyframes",
           "read_redwood_log"]

SYNTHETIC_T0_S = 1000.0
SYNTHETIC_RATE_HZ = 30.0
_MM_DEPTH_SCALE = 1000.0  # 3DMatch and ICL-NUIM store millimeters


def _camera_and_scale(
    root: Path, camera: PinholeCamera | None, default_scale: float
) -> tuple[PinholeCamera | None, float]:
    cam_json = load_camera_json(root) if (root / "camera.json").is_file() else {}
    if camera is None and cam_json:
        camera = camera_from_dict(cam_json)
    return camera, float(cam_json.get("depth_scale", default_scale))


def _check_poses(T: np.ndarray, where: str) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{where}: expected a finite 4x4 pose, got shape {T.shape}")
    R = T[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > 1e-3 or not np.allclose(T[3], [0, 0, 0, 1]):
        raise ValueError(f"{where}: not a rigid transform (|R^T R - I| = {err:.2e}, last row {T[3]})")
    return T


def open_3dmatch(
    path: str | Path, max_frames: int | None = None, stride: int = 1, camera: PinholeCamera | None = None
) -> FolderSequence:
    """3DMatch RGB-D folder: ``camera-intrinsics.txt`` + ``seq-*/frame-XXXXXX.{color.png,depth.png,pose.txt}``.

    Shape: frames (480, 640) for the shipped data; pose per frame (4, 4) ``T_world_camera``.
    """
    root = Path(path)
    camera, depth_scale = _camera_and_scale(root, camera, _MM_DEPTH_SCALE)
    records: list[FrameRecord] = []
    t_offset = SYNTHETIC_T0_S
    for seq_dir in sorted(root.glob("seq-*")):
        colors = sorted(seq_dir.glob("frame-*.color.png"))
        last = t_offset
        for color in colors:
            frame_id = int(re.match(r"frame-(\d+)", color.name).group(1))
            stem = color.name[: -len(".color.png")]
            depth = seq_dir / f"{stem}.depth.png"
            if not depth.is_file():
                raise ValueError(f"{color}: depth image {depth.name} is missing")
            pose_file = seq_dir / f"{stem}.pose.txt"
            pose = None
            if pose_file.is_file():
                pose = _check_poses(read_numeric_table(pose_file, 4), str(pose_file))
            last = round(t_offset + frame_id / SYNTHETIC_RATE_HZ, 6)  # microseconds, as TUM files
            records.append(FrameRecord(stamp_s=last, color_path=color, depth_path=depth, T_world_camera=pose))
        t_offset = last + 1.0 / SYNTHETIC_RATE_HZ  # keep later seq-* folders after earlier ones
    if not records:
        raise ValueError(f"{root}: no seq-*/frame-*.color.png found")
    if camera is None:
        K = read_numeric_table(root / "camera-intrinsics.txt", 3)
        h, w = cv2.imread(str(records[0].color_path), cv2.IMREAD_UNCHANGED).shape[:2]
        camera = PinholeCamera.from_K(K, width=w, height=h)
    records = select_frames(records, stride, max_frames)
    return FolderSequence(root.resolve().name, camera, records, depth_scale, root=root)


def read_redwood_log(path: str | Path) -> list[np.ndarray]:
    """Poses of a Redwood/ICL ``.log`` trajectory: per frame a 3-int header line then 4 matrix rows.

    Shape: -> list of (4, 4) camera-to-world matrices, in file order.
    """
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) % 5:
        raise ValueError(f"{path}: {len(lines)} non-empty lines is not a multiple of 5 (header + 4 rows per pose)")
    poses = []
    for k in range(0, len(lines), 5):
        if len(lines[k]) != 3:
            raise ValueError(f"{path}: pose {k // 5} header must have 3 integers, got {lines[k]}")
        try:
            M = np.array([[float(x) for x in row] for row in lines[k + 1 : k + 5]])
        except ValueError:
            raise ValueError(f"{path}: non-numeric value in pose {k // 5}") from None
        poses.append(_check_poses(M, f"{path} pose {k // 5}"))
    return poses


def open_icl_nuim(
    path: str | Path, max_frames: int | None = None, stride: int = 1, camera: PinholeCamera | None = None
) -> FolderSequence:
    """ICL-NUIM / Redwood folder: ``color/``, ``depth/``, ``odometry.log`` (+ optional ``rgbd.match``).

    Pose k of the log belongs to the k-th frame. Shape: frames (H, W) of the camera.
    """
    root = Path(path)
    camera, depth_scale = _camera_and_scale(root, camera, _MM_DEPTH_SCALE)
    if camera is None:
        raise ValueError(f"{root}: camera.json is missing; pass camera=PinholeCamera(...)")
    if (root / "rgbd.match").is_file():
        pairs = [(root / c, root / d) for d, c in _read_name_pairs(root / "rgbd.match")]
    else:
        colors = sorted(p for p in (root / "color").iterdir() if p.suffix.lower() in (".jpg", ".png"))
        depths = sorted((root / "depth").glob("*.png"))
        if len(colors) != len(depths):
            raise ValueError(f"{root}: {len(colors)} color but {len(depths)} depth images and no rgbd.match")
        pairs = list(zip(colors, depths))
    poses = read_redwood_log(root / "odometry.log")
    if len(poses) < len(pairs):
        raise ValueError(f"{root}: odometry.log has {len(poses)} poses for {len(pairs)} frames")
    records = [
        FrameRecord(stamp_s=round(SYNTHETIC_T0_S + k / SYNTHETIC_RATE_HZ, 6), color_path=c, depth_path=d,
                    T_world_camera=poses[k])
        for k, (c, d) in enumerate(pairs)
    ]
    records = select_frames(records, stride, max_frames)
    return FolderSequence(root.resolve().name, camera, records, depth_scale, root=root)


def _read_name_pairs(path: Path) -> list[tuple[str, str]]:
    """Two-column file-name list such as ``rgbd.match`` (``depth color`` per line)."""
    out = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{path}:{lineno}: expected two file names, got {line!r}")
        out.append((parts[0], parts[1]))
    return out


def open_tum_keyframes(
    path: str | Path, max_frames: int | None = None, stride: int = 1, camera: PinholeCamera | None = None
) -> FolderSequence:
    """TUM keyframe subset (``tum_fr3_cabinet_keyframes58``): rgb.txt/depth.txt hold indices, not stamps.

    Row i of ``truth_cam_poses.txt`` (``t tx ty tz qx qy qz qw``) belongs to image index i and gives
    the frame its stamp and ``T_world_camera``. Shape: frames (H, W) of the camera.
    """
    from ..core.geometry import quat_xyzw_to_matrix

    root = Path(path)
    camera, depth_scale = _camera_and_scale(root, camera, 5000.0)
    if camera is None:
        raise ValueError(f"{root}: camera.json is missing; pass camera=PinholeCamera(...)")
    rgb = {int(i): f for i, f in read_stamped_list(root / "rgb.txt")}
    depth = {int(i): f for i, f in read_stamped_list(root / "depth.txt")}
    truth = read_numeric_table(root / "truth_cam_poses.txt", 8)
    records = []
    for i, row in enumerate(truth):
        if i not in rgb or i not in depth:
            raise ValueError(f"{root}: pose row {i} has no image with index {i} in rgb.txt/depth.txt")
        T = np.eye(4)
        T[:3, :3] = quat_xyzw_to_matrix(row[4:8])
        T[:3, 3] = row[1:4]
        records.append(FrameRecord(stamp_s=float(row[0]), color_path=root / rgb[i], depth_path=root / depth[i],
                                   T_world_camera=T))
    if len(rgb) != len(truth):
        raise ValueError(f"{root}: {len(rgb)} images but {len(truth)} rows in truth_cam_poses.txt")
    records = select_frames(records, stride, max_frames)
    return FolderSequence(root.resolve().name, camera, records, depth_scale, root=root)

