"""The VIO facade on a synthetic gyro + RGB-D sequence: accuracy, IMU use, and failure handling."""
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import invert_transform, se3_exp, so3_exp, so3_log
from metric_semantic_slam.core.odometry.rgbd_tracker import TrackerConfig
from metric_semantic_slam.core.odometry.synthetic import Plane, render_planes, box_room
from metric_semantic_slam.core.odometry.vio import TrackingStatus, VioConfig, VisualInertialOdometry
from metric_semantic_slam.io.frame import Frame, GroundTruth, ImuSamples
from metric_semantic_slam.io.trajectory import read_tum_trajectory

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)


R_CI = so3_exp(np.array([0.0, 0.0, np.pi / 2]))  # IMU axes rotated about the optical axis
T_CI = np.eye(4)
T_CI[:3, :3] = R_CI
FPS, IMU_HZ, T0 = 30.0, 200.0, 1000.0
TWIST = np.array([0.25, -0.1, 0.15, 0.2, 0.35, -0.15])  # m/s, rad/s


def pose(t: float) -> np.ndarray:
    s = t - T0
    wobble = np.array([0, 0.02 * np.sin(4 * s), 0, 0.05 * np.sin(3 * s), 0, 0])
    return se3_exp(TWIST * s + wobble)


def imu_between(t0: float, t1: float, gyro: bool = True) -> ImuSamples:
    st = np.arange(np.floor(t0 * IMU_HZ) + 1, np.floor(t1 * IMU_HZ) + 1) / IMU_HZ
    st = st[(st > t0) & (st <= t1)]
    h = 1e-4
    w_cam = np.array([so3_log(pose(t - h)[:3, :3].T @ pose(t + h)[:3, :3]) / (2 * h) for t in st]).reshape(-1, 3)
    w_imu = w_cam @ R_CI  # R_CI^T w_cam, row form
    g_cam = np.array([0.0, 9.81, 0.0])  # y down: the accelerometer reads "up" = -y ... as specific force
    acc = np.array([-(pose(t)[:3, :3].T @ g_cam) for t in st]).reshape(-1, 3) @ R_CI
    gy = w_imu if gyro else np.full_like(w_imu, np.nan)
    return ImuSamples(st, gy, acc)


def make_frame(i: int, stamp: float, prev_stamp: float | None, depth_scale: float = 1.0,
               brightness: float = 1.0, imu: ImuSamples | None = None, labels: bool = False) -> Frame:
    T = pose(stamp)
    d, c, lab = render_planes(CAM, T, box_room(), brightness=brightness)
    if imu is None:
        imu = ImuSamples.empty() if prev_stamp is None else imu_between(prev_stamp, stamp)
    return Frame(index=i, stamp_s=stamp, color=c, depth_m=d * depth_scale, camera=CAM, imu=imu,
                 gt=GroundTruth(T_world_camera=T), T_camera_imu=T_CI.copy(), semantic=lab if labels else None)


def small_vio(**kw) -> VisualInertialOdometry:
    return VisualInertialOdometry(VioConfig(tracker=TrackerConfig(iterations=(5, 5, 6)), **kw))


def final_error(vio: VisualInertialOdometry, last_stamp: float) -> float:
    T_est = vio.trajectory().T_world_camera[-1]
    T_true = invert_transform(pose(T0)) @ pose(last_stamp)
    return float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]))


def test_clean_sequence_tracks_with_gyro_and_gravity():
    vio = small_vio()
    stamps = T0 + np.arange(10) / FPS
    res = [vio.track(make_frame(i, s, stamps[i - 1] if i else None)) for i, s in enumerate(stamps)]
    assert res[0].status == TrackingStatus.INITIALIZED and res[0].is_keyframe
    assert all(r.status == TrackingStatus.OK for r in res[1:])
    assert all(r.used_gyro for r in res[1:])
    assert final_error(vio, stamps[-1]) < 0.005
    assert all(np.all(np.linalg.eigvalsh(r.covariance) > 0) for r in res[1:])
    # gravity (camera frame of the first frame) points along the true down direction
    down_true = pose(T0)[:3, :3].T @ np.array([0.0, 1.0, 0.0])
    assert vio.gravity_camera is not None and np.dot(vio.gravity_camera, down_true) > 0.999


def test_bad_input_gives_statuses_and_the_trajectory_continues(tmp_path):
    vio = small_vio()
    dt = 1 / FPS
    log = []

    def feed(frame, expect):
        r = vio.track(frame)
        log.append(r)
        assert r.status == expect, (expect, r.status, r.message)
        return r

    feed(make_frame(0, T0, None), TrackingStatus.INITIALIZED)
    feed(make_frame(1, T0 + dt, T0), TrackingStatus.OK)
    feed(make_frame(2, T0 + 2 * dt, T0 + dt, depth_scale=0.0), TrackingStatus.PREDICTED)   # all-zero depth
    feed(make_frame(3, T0 + 3 * dt, T0 + 2 * dt, brightness=0.0), TrackingStatus.OK)       # black image: ICP
    feed(make_frame(4, T0 + 3 * dt, T0 + 2 * dt), TrackingStatus.REJECTED)                  # duplicated stamp
    feed(make_frame(5, T0 + 1 * dt, T0), TrackingStatus.REJECTED)                           # out of order
    feed(make_frame(6, T0 + 5 * dt, T0 + 3 * dt), TrackingStatus.OK)                        # a dropped frame
    gap = ImuSamples.empty()                                                                # 0.5 s IMU gap
    r = feed(make_frame(7, T0 + 6 * dt, T0 + 5 * dt, imu=gap), TrackingStatus.OK)
    assert not r.used_gyro
    feed(None, TrackingStatus.INVALID)
    bad = make_frame(8, T0 + 7 * dt, T0 + 6 * dt)
    bad.stamp_s = float("nan")
    feed(bad, TrackingStatus.INVALID)
    bad = make_frame(9, T0 + 7 * dt, T0 + 6 * dt)
    bad.depth_m = np.zeros((3, 3), np.float32)  # shape no longer matches the camera
    feed(bad, TrackingStatus.INVALID)
    r = feed(make_frame(10, T0 + 8 * dt, T0 + 6 * dt), TrackingStatus.OK)
    assert all(np.all(np.isfinite(x.T_world_camera)) for x in log)
    traj = vio.trajectory()
    assert len(traj) == sum(x.in_trajectory for x in log) == 7
    assert np.all(np.diff(traj.stamps_s) > 0)
    assert final_error(vio, T0 + 8 * dt) < 0.01
    back = read_tum_trajectory(vio.write_trajectory(tmp_path / "trajectory.txt"))
    assert np.allclose(back.T_world_camera, traj.T_world_camera, atol=1e-5)


def test_divergence_is_detected_and_tracking_recovers():
    vio = small_vio(use_gyro=False)
    stamps = T0 + np.arange(6) / FPS
    for i in range(3):
        assert vio.track(make_frame(i, stamps[i], stamps[i - 1] if i else None)).status in (
            TrackingStatus.INITIALIZED, TrackingStatus.OK)
    # A different world (one far wall) appears: no consistent alignment with the keyframe exists.
    alien = make_frame(3, stamps[3], stamps[2])
    d, c, _ = render_planes(CAM, np.eye(4), [Plane((0.3, 0.2, 1.0), 6.0, 1)], phase=2.0)
    alien.depth_m, alien.color = d * 0 + 0.5 + 0.4 * (np.arange(160)[None, :] % 7 == 0), c
    r = vio.track(alien)
    assert r.status == TrackingStatus.LOST and r.is_keyframe
    assert np.trace(r.covariance) >= 0.05
    # The keyframe was re-anchored at the prediction; the next frames track against it without exceptions.
    r4 = vio.track(make_frame(4, stamps[4], stamps[3]))
    assert r4.status in (TrackingStatus.OK, TrackingStatus.LOST)
    r5 = vio.track(make_frame(5, stamps[5], stamps[4]))
    assert r5.status == TrackingStatus.OK


def test_config_is_validated():
    with pytest.raises(ValueError):
        VioConfig(min_depth_m=2.0, max_depth_m=1.0)
    with pytest.raises(ValueError):
        VioConfig(tracker=TrackerConfig(use_icp=False, use_rgb=False))


def test_camera_change_reanchors_instead_of_failing_forever():
    vio = small_vio()
    stamps = T0 + np.arange(4) / FPS
    vio.track(make_frame(0, stamps[0], None))
    vio.track(make_frame(1, stamps[1], stamps[0]))
    cam2 = PinholeCamera(120, 90, 100.0, 100.0, 59.5, 44.5)
    d, c, _ = render_planes(cam2, pose(stamps[2]), box_room())
    other = Frame(index=2, stamp_s=stamps[2], color=c, depth_m=d, camera=cam2)
    r = vio.track(other)
    assert r.status == TrackingStatus.LOST and "camera changed" in r.message
    d, c, _ = render_planes(cam2, pose(stamps[3]), box_room())
    r = vio.track(Frame(index=3, stamp_s=stamps[3], color=c, depth_m=d, camera=cam2))
    assert r.status == TrackingStatus.OK


def test_half_second_imu_gap_and_dropped_frames_keep_tracking():
    vio = small_vio()
    stamps = T0 + np.arange(40) / FPS
    keep = [i for i in range(40) if i not in (5, 6, 7, 8)]  # four dropped frames (0.17 s without images)
    gap = (stamps[12], stamps[12] + 0.5)  # no IMU samples at all for 0.5 s
    prev = None
    res = []
    for i in keep:
        s = stamps[i]
        imu = None
        if prev is not None:
            full = imu_between(prev, s)
            m = (full.stamps_s <= gap[0]) | (full.stamps_s > gap[1])
            imu = ImuSamples(full.stamps_s[m], full.gyro_rad_s[m], full.accel_m_s2[m])
        res.append((i, vio.track(make_frame(i, s, prev, imu=imu))))
        prev = s
    assert all(r.status == TrackingStatus.OK for _, r in res[1:]), [(i, r.status, r.message) for i, r in res]
    in_gap = [r for i, r in res if gap[0] + 1 / FPS < stamps[i] <= gap[1]]
    after = [r for i, r in res if stamps[i] > gap[1] + 1 / FPS]
    assert in_gap and not any(r.used_gyro for r in in_gap)  # the gyro prior is dropped, not extrapolated
    assert after and all(r.used_gyro for r in after)        # and comes back with the samples
    assert len(vio.trajectory()) == len(keep)
    assert final_error(vio, stamps[keep[-1]]) < 0.01


def test_semantic_labels_are_used_when_present_and_ignored_when_unusable():
    vio = small_vio()
    stamps = T0 + np.arange(8) / FPS
    res = [vio.track(make_frame(i, s, stamps[i - 1] if i else None, labels=True)) for i, s in enumerate(stamps)]
    assert all(r.status in (TrackingStatus.INITIALIZED, TrackingStatus.OK) for r in res)
    assert vio._sem_anchor is not None and len(vio._sem_anchor) > 100
    assert final_error(vio, stamps[-1]) < 0.005
    # Unusable labels (wrong shape, float dtype) switch the term off for that frame without an error.
    f = make_frame(8, T0 + 8 / FPS, stamps[-1], labels=True)
    f.semantic = np.zeros((3, 3), np.uint16)
    assert vio.track(f).status == TrackingStatus.OK
    f = make_frame(9, T0 + 9 / FPS, T0 + 8 / FPS, labels=True)
    f.semantic = f.semantic.astype(np.float32)
    assert vio.track(f).status == TrackingStatus.OK
    # Labels with a black image and with no depth: same statuses as without labels.
    assert vio.track(make_frame(10, T0 + 10 / FPS, T0 + 9 / FPS, brightness=0.0, labels=True)).status == \
        TrackingStatus.OK
    assert vio.track(make_frame(11, T0 + 11 / FPS, T0 + 10 / FPS, depth_scale=0.0, labels=True)).status == \
        TrackingStatus.PREDICTED
    r = vio.track(make_frame(12, T0 + 12 / FPS, T0 + 11 / FPS, labels=True))
    assert r.status == TrackingStatus.OK
    assert final_error(vio, T0 + 12 / FPS) < 0.01
