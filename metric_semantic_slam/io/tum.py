"""TUM RGB-D folders and the simulator's folders (a TUM folder plus extra ground truth).

Layout: ``docs/formats.md``. RGB and depth are associated by nearest stamp (within
``max_pair_dt_s``, as TUM's ``associate.py``); color frames without a depth partner are dropped.
The ground-truth pose is interpolated at the color stamp (within ``max_gt_gap_s``), else None.
IMU: ``imu.txt`` (``t wx wy wz ax ay az``) or, failing that, TUM's ``accelerometer.txt``
(``t ax ay az``, gyro NaN).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.camera import PinholeCamera
from .frame import ImuSamples
from .sequence import (
    FolderSequence,
    FrameRecord,
    StereoRig,
    camera_from_dict,
    load_camera_json,
    read_numeric_table,
    read_stamped_list,
    select_frames,
)
from .trajectory import interpolate_poses, read_tum_trajectory

__all__ = ["TUM_DEPTH_SCALE", "open_tum_folder", "read_imu_files", "nearest_stamp_indices"]

TUM_DEPTH_SCALE = 5000.0

# Simulator extras: (FrameRecord field, sub-folder); file name = the color file's name.
_EXTRAS = (
    ("depth_gt_path", "depth_gt"),
    ("semantic_path", "semantic"),
    ("instance_path", "instance"),
    ("ir_left_path", "ir_left"),
    ("ir_right_path", "ir_right"),
)


def nearest_stamp_indices(query_s: np.ndarray, target_s: np.ndarray, max_dt_s: float) -> np.ndarray:
    """Index of the nearest ``target_s`` stamp for each query, -1 when farther than ``max_dt_s``
    (on a tie the earlier stamp). Not evo's association: every query is matched independently.

    Shape: query_s (N,), target_s (M,) sorted -> (N,) int.
    """
    query_s = np.asarray(query_s, dtype=np.float64)
    target_s = np.asarray(target_s, dtype=np.float64)
    if len(target_s) == 0:
        return np.full(len(query_s), -1, dtype=np.int64)
    hi = np.clip(np.searchsorted(target_s, query_s), 0, len(target_s) - 1)
    lo = np.clip(hi - 1, 0, len(target_s) - 1)
    best = np.where(np.abs(target_s[lo] - query_s) <= np.abs(target_s[hi] - query_s), lo, hi)
    return np.where(np.abs(target_s[best] - query_s) <= max_dt_s, best, -1).astype(np.int64)


def read_imu_files(folder: Path) -> ImuSamples | None:
    """IMU samples of a folder (``imu.txt`` preferred, else ``accelerometer.txt`` with NaN gyro), sorted.

    Shape: -> ImuSamples stamps (N,), gyro (N, 3), accel (N, 3); None when the folder has neither file.
    """
    folder = Path(folder)
    if (folder / "imu.txt").is_file():
        t = read_numeric_table(folder / "imu.txt", 7)
        gyro, accel = t[:, 1:4], t[:, 4:7]
    elif (folder / "accelerometer.txt").is_file():
        t = read_numeric_table(folder / "accelerometer.txt", 4)
        gyro, accel = np.full((len(t), 3), np.nan), t[:, 1:4]
    else:
        return None
    order = np.argsort(t[:, 0], kind="stable")
    return ImuSamples(t[order, 0].copy(), gyro[order].copy(), accel[order].copy())


def _stereo_rig(cam_json: dict) -> StereoRig | None:
    st = cam_json.get("stereo")
    if not st:
        return None
    camera = PinholeCamera(width=int(st["width"]), height=int(st["height"]), fx=float(st["fx"]),
                           fy=float(st["fy"]), cx=float(st["cx"]), cy=float(st["cy"]))
    T = np.asarray(st.get("T_color_left", np.eye(4)), dtype=np.float64)
    if T.shape != (4, 4):
        raise ValueError(f"camera.json stereo.T_color_left must be 4x4, got {T.shape}")
    return StereoRig(camera=camera, baseline_m=float(st["baseline_m"]), T_color_left=T)


def open_tum_folder(
    path: str | Path,
    max_frames: int | None = None,
    stride: int = 1,
    max_pair_dt_s: float = 0.02,
    max_gt_gap_s: float = 0.02,
    camera: PinholeCamera | None = None,
) -> FolderSequence:
    """Open a TUM RGB-D folder or a simulator folder.

    ``camera`` overrides ``camera.json``; depth scale from ``camera.json`` (default 5000 when absent).
    Shape: frames (H, W) of the camera.
    """
    root = Path(path)
    cam_json = load_camera_json(root) if (root / "camera.json").is_file() else {}
    if camera is None:
        if not cam_json:
            raise ValueError(f"{root}: camera.json is missing; pass camera=PinholeCamera(...)")
        camera = camera_from_dict(cam_json)
    depth_scale = float(cam_json.get("depth_scale", TUM_DEPTH_SCALE))

    rgb = read_stamped_list(root / "rgb.txt")
    depth = sorted(read_stamped_list(root / "depth.txt"))
    rgb.sort()
    pair = nearest_stamp_indices(np.array([t for t, _ in rgb]), np.array([t for t, _ in depth]), max_pair_dt_s)

    gt = read_tum_trajectory(root / "groundtruth.txt") if (root / "groundtruth.txt").is_file() else None
    extras = [(field, root / sub) for field, sub in _EXTRAS if (root / sub).is_dir()]
    records = []
    for (t, rel), j in zip(rgb, pair):
        if j < 0:
            continue
        rec = FrameRecord(stamp_s=t, color_path=root / rel, depth_path=root / depth[j][1])
        name = Path(rel).name
        for field, sub in extras:
            candidate = sub / name
            if candidate.is_file():
                setattr(rec, field, candidate)
        records.append(rec)
    records = select_frames(records, stride, max_frames)
    if gt is not None and records:
        poses, valid = interpolate_poses(gt, np.array([r.stamp_s for r in records]), max_gt_gap_s)
        for rec, pose, ok in zip(records, poses, valid):
            rec.T_world_camera = pose if ok else None

    imu_json = cam_json.get("imu") or {}
    T_camera_imu = np.asarray(imu_json["T_camera_imu"], dtype=np.float64) if "T_camera_imu" in imu_json else None
    labels = root / "labels.yaml"
    return FolderSequence(
        name=root.resolve().name,
        camera=camera,
        records=records,
        depth_scale=depth_scale,
        imu=read_imu_files(root),
        gt=gt,
        stereo=_stereo_rig(cam_json),
        label_space_path=labels if labels.is_file() else None,
        T_camera_imu=T_camera_imu,
        root=root,
    )
