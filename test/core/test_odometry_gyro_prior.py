"""The gyro in the VIO: information-weighted prior under fast rotation, and the online bias filter."""
import numpy as np

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import invert_transform, rotation_angle_rad, so3_exp, so3_log
from metric_semantic_slam.core.odometry.rgbd_tracker import TrackerConfig
from metric_semantic_slam.core.odometry.synthetic import box_room, render_planes
from metric_semantic_slam.core.odometry.vio import TrackingStatus, VioConfig, VisualInertialOdometry
from metric_semantic_slam.io.frame import Frame, GroundTruth, ImuSamples

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)
R_CI = so3_exp(np.array([0.0, 0.0, np.pi / 2]))  # IMU axes rotated about the optical axis
T_CI = np.eye(4)
T_CI[:3, :3] = R_CI
FPS, IMU_HZ, T0 = 30.0, 200.0, 1000.0


def shake_pose(t: float) -> np.ndarray:
    """A TUM fr1_rpy-like shake: yaw and pitch oscillating at 2.5 / 2 Hz, peak rates ~3 / 2 rad/s."""
    s = t - T0
    T = np.eye(4)
    T[:3, :3] = so3_exp(np.array([0.16 * np.sin(2 * np.pi * 2.0 * s), 0.19 * np.sin(2 * np.pi * 2.5 * s), 0.0]))
    T[:3, 3] = [0.1 * s, 0.0, 0.05 * s]
    return T


def walk_pose(t: float) -> np.ndarray:
    s = t - T0
    T = np.eye(4)
    T[:3, :3] = so3_exp(np.array([0.05 * np.sin(2 * s), 0.3 * s, 0.04 * np.sin(3 * s)]))
    T[:3, 3] = [0.2 * s, -0.05 * s, 0.1 * s]
    return T


def gyro_samples(pose, t0: float, t1: float, bias: np.ndarray) -> ImuSamples:
    """Exact body rates of ``pose`` in the IMU frame (plus a constant ``bias``) at 200 Hz in (t0, t1]."""
    st = np.arange(np.floor(t0 * IMU_HZ) + 1, np.floor(t1 * IMU_HZ) + 1) / IMU_HZ
    st = st[(st > t0) & (st <= t1)]
    h = 1e-5
    w_cam = np.array([so3_log(pose(t - h)[:3, :3].T @ pose(t + h)[:3, :3]) / (2 * h) for t in st]).reshape(-1, 3)
    w_imu = w_cam @ R_CI + bias  # R_CI^T w_cam in row form
    return ImuSamples(st, w_imu, np.tile([0.0, -9.81, 0.0], (len(st), 1)))


def run(pose, stamps: np.ndarray, bias: np.ndarray = np.zeros(3), **kw) -> tuple[VisualInertialOdometry, list]:
    vio = VisualInertialOdometry(VioConfig(tracker=TrackerConfig(iterations=(5, 5, 6)), **kw))
    out = []
    for i, s in enumerate(stamps):
        d, c, _ = render_planes(CAM, pose(s), box_room())
        imu = ImuSamples.empty() if i == 0 else gyro_samples(pose, stamps[i - 1], s, bias)
        out.append(vio.track(Frame(index=i, stamp_s=float(s), color=c, depth_m=d, camera=CAM, imu=imu,
                                   gt=GroundTruth(T_world_camera=pose(s)), T_camera_imu=T_CI.copy())))
    return vio, out


def rotation_errors_rad(vio: VisualInertialOdometry, pose, stamps: np.ndarray) -> np.ndarray:
    est = vio.trajectory().T_world_camera
    ref = invert_transform(pose(stamps[0]))
    return np.array([rotation_angle_rad((ref @ pose(s))[:3, :3].T @ T[:3, :3]) for s, T in zip(stamps, est)])


def test_gyro_prior_keeps_fast_shakes_across_dropped_frames():
    # 3 of every 4 frames dropped during a ~3 rad/s shake: up to ~0.35 rad between frames, and the
    # motion reverses between them, so the constant-velocity guess is far off for the images alone.
    stamps = T0 + np.arange(0, 24, 4) / FPS
    vio, res = run(shake_pose, stamps)
    assert all(r.status in (TrackingStatus.INITIALIZED, TrackingStatus.OK) for r in res), [r.message for r in res]
    assert rotation_errors_rad(vio, shake_pose, stamps).max() < np.deg2rad(0.3)
    blind, _ = run(shake_pose, stamps, use_gyro=False)
    assert rotation_errors_rad(blind, shake_pose, stamps).max() > np.deg2rad(2.0)


def test_gyro_bias_is_learned_from_the_images():
    bias = np.array([0.012, -0.008, 0.006])  # rad/s, IMU frame: a MEMS gyro's turn-on bias
    stamps = T0 + np.arange(60) / FPS
    vio, res = run(walk_pose, stamps, bias=bias, gyro_bias_update_interval_s=0.3)
    assert all(r.status in (TrackingStatus.INITIALIZED, TrackingStatus.OK) for r in res)
    err = np.linalg.norm(vio.gyro_bias_rad_s - bias)
    assert err < 0.25 * np.linalg.norm(bias), (vio.gyro_bias_rad_s, bias)
    assert rotation_errors_rad(vio, walk_pose, stamps)[-1] < np.deg2rad(0.2)
    # Without the filter the prior keeps the bias: the estimate stays at zero.
    fixed, _ = run(walk_pose, stamps[:10], bias=bias, estimate_gyro_bias=False)
    assert np.all(fixed.gyro_bias_rad_s == 0)
