"""Visual-inertial odometry facade: ``VisualInertialOdometry.track(frame) -> TrackingResult``.

Per frame: predict the pose (constant velocity, rotation from the gyro when there is one), track the
frame densely against the current keyframe (:class:`RgbdTracker`), check the solution (inlier ratio,
residual, Hessian conditioning, jump from the prediction), fall back to the prediction on failure and
re-anchor a keyframe there so tracking recovers. ``track`` never raises: bad input yields a status.

The gyro: its samples are integrated between the frames' stamps (rate linear between samples, the
previous frame's last sample included) into a rotation prior chained on the last pose, whose std is what
that chain really knows: ``sqrt(noise_density^2 dt + (bias std * dt)^2 + gyro_prior_sigma_rad^2 +
var(last pose's rotation in the keyframe))`` (the gyro part ~3e-5 rad per 30 Hz frame for a D435i-class
gyro), so the tracker weighs it against the images' Hessian instead of ignoring it. The
bias is a Kalman filter (:class:`GyroBiasEstimator`) fed, once per keyframe span (or
``gyro_bias_update_interval_s``), with the difference between the gyro rotation integrated over the span
and the images' rotation over it (the prior's pull taken out), weighted by both their variances.

With class labels in ``frame.semantic`` (a segmenter's output, (H, W) integer class ids) the tracker
also minimises the semantic reprojection error of a *semantic anchor* (:mod:`.semantic_term`): labelled
points of an earlier frame, kept in the world frame over many keyframes and renewed only when too few
of them stay visible and consistent. Frames without (usable) labels simply track without the term.

Dynamic classes (``is_dynamic`` in the label space, e.g. a walking person): with labels, their pixels
(dilated by a few pixels for label and depth-edge errors) are removed from the frame before tracking, so
they take part in neither the ICP, the photometric nor the semantic term, on the reference side (the
keyframe and previous frame keep their masks) nor on the current side (photometric samples and semantic
points landing on them are dropped). Without labels nothing is masked; the Huber weights then only
down-weight a moving object.

Convention: the world frame is the first camera frame (or, with ``gravity_aligned_world``, that frame
rotated so world z points up). Covariances are 6x6 over the left-perturbation twist ``(rho, phi)`` of
``T_world_camera`` and ignore the uncertainty of the keyframe pose itself.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..geometry import invert_transform, se3_exp, se3_log, skew, so3_exp, so3_log
from .imu_preintegration import (GyroBiasEstimator, gravity_direction_from_accel, preintegrate_gyro,
                                 rotation_aligning_gravity)
from .keyframes import Keyframe, KeyframePolicy
from .pyramid import PyramidLevel, build_pyramid, rgb_to_intensity
from .rgbd_tracker import RgbdTracker, RotationPrior, TrackerConfig, TrackerResult
from .semantic_term import SemanticAnchor, SemanticConfig, SemanticDistanceMaps, level_intrinsics
from .tracker_cuda import CudaPyramidBuilder, CudaRgbdTracker

__all__ = ["TrackingStatus", "TrackingResult", "VioConfig", "VisualInertialOdometry", "adjoint_se3",
           "default_dynamic_classes"]

log = logging.getLogger(__name__)

# Covariance reported when a pose is a guess (prediction without image data): 10 cm, ~6 deg std.
_GUESS_COV = np.diag([1e-2] * 3 + [1e-2] * 3)


class TrackingStatus(str, enum.Enum):
    """What :meth:`VisualInertialOdometry.track` did with a frame."""

    INITIALIZED = "initialized"  #: first usable frame: the pose is set and the first keyframe taken
    OK = "ok"                    #: tracked against the keyframe and passed every check
    PREDICTED = "predicted"      #: no usable depth: pose from the gyro / motion model only
    LOST = "lost"                #: tracking failed its checks: pose predicted, keyframe re-anchored here
    REJECTED = "rejected"        #: stamp duplicated or out of order: frame ignored, last pose returned
    INVALID = "invalid"          #: frame unreadable (missing/ill-shaped arrays, bad stamp): last pose returned


@dataclass
class TrackingResult:
    """One frame's odometry output.

    Shape: T_world_camera (4, 4); covariance (6, 6) over ``(rho, phi)`` (m^2, rad^2).
    """

    stamp_s: float
    T_world_camera: np.ndarray
    covariance: np.ndarray
    status: TrackingStatus
    is_keyframe: bool = False
    inlier_ratio: float = 0.0
    residual: float = float("nan")
    used_gyro: bool = False
    message: str = ""
    time_ms: float = 0.0

    @property
    def in_trajectory(self) -> bool:
        """Whether this pose was appended to the trajectory (rejected/invalid frames are not)."""
        return self.status not in (TrackingStatus.REJECTED, TrackingStatus.INVALID)


@dataclass(frozen=True)
class VioConfig:
    """Settings of :class:`VisualInertialOdometry`."""

    #: Dense tracker settings (default: skip the full-resolution level; tuned on 640x480 TUM fr1/rpy for
    #: <= 40 ms CPU per frame: 6000 points per term and level, stop a level at updates below 2e-3;
    #: ATE on tum_fr1_rpy_90 1.40 cm vs 1.49 cm with 15000 points, w_rgb 0.3 at ~3x the time).
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(
        finest_level=1, max_points=6000, w_rgb=0.7, huber_k=0.7, min_update=2e-3))
    #: Track against the previous frame too (joint problem with the keyframe): ~1.5x the cost,
    #: ATE on tum_fr1_rpy_90 1.71 -> 1.49 cm.
    use_previous_frame: bool = True
    #: Keyframe renewal rule.
    keyframes: KeyframePolicy = field(default_factory=KeyframePolicy)
    #: torch device for the dense tracker ("cpu", "cuda", ...).
    device: str = "cpu"
    #: Depth outside this range (m) is treated as invalid.
    min_depth_m: float = 0.1
    max_depth_m: float = 6.0
    #: Below this fraction of valid depth pixels a frame cannot be tracked (pose is predicted).
    min_valid_depth_fraction: float = 0.05
    #: Below this intensity std the image carries no photometric information (e.g. black): ICP only.
    min_intensity_std: float = 0.01
    #: Failure checks on the tracker's solution.
    fail_min_inlier_ratio: float = 0.15
    fail_max_residual: float = 4.0
    fail_min_condition: float = 1e-9
    #: A solution farther than this from the prediction (m, rad) is a divergence, not motion.
    fail_max_jump_m: float = 0.3
    fail_max_jump_rad: float = 0.6
    #: Use the gyro (when the frame has one) as the rotation prediction and prior.
    use_gyro: bool = True
    #: Std (rad, per axis) of gyro errors the noise model leaves out (camera-IMU extrinsic and time-sync
    #: error, scale factor), added in quadrature to the preintegrated std. The rotation prior's std is
    #: ``sqrt(noise_density^2 dt + (bias std dt)^2 + this^2 + var(last pose's rotation in the keyframe))``:
    #: the information the gyro really carries, weighed against the images' Hessian. (1e-4 chosen on the
    #: validation seed 5, smooth / fast-rotation / lighting-change sequences: ATE 0.185 / 0.250 / 0.330 cm,
    #: vs 0.206 / 0.254 / 0.359 at 3e-5, 0.195 / 0.270 / 0.320 at 3e-4. The earlier fixed 1e-2, far above a
    #: 30 Hz frame's ~3e-5 rad of gyro noise, left the prior irrelevant next to the images.)
    gyro_prior_sigma_rad: float = 1e-4
    #: Gyro noise density (rad/s/sqrt(Hz)) for the prior's std.
    gyro_noise_density: float = 1.7e-4
    #: IMU stamp + offset = camera stamp (s).
    imu_time_offset_s: float = 0.0
    #: Estimate the gyro bias online (a Kalman filter on gyro vs. vision rotations).
    estimate_gyro_bias: bool = True
    #: Prior std of the gyro bias at start (rad/s) and its random walk (rad/s^2/sqrt(Hz)); MEMS gyros after
    #: factory calibration (e.g. a D435i's BMI055: random walk ~2e-5, drift with temperature on top).
    gyro_bias_init_std_rad_s: float = 0.005
    gyro_bias_random_walk: float = 1e-4
    #: The bias filter compares gyro and images over each keyframe's span, or this long at most (s).
    gyro_bias_update_interval_s: float = 1.0
    #: Predict with constant velocity (otherwise: no motion).
    constant_velocity: bool = True
    #: Velocity older than this gap (s) is not extrapolated (e.g. after many dropped frames).
    max_extrapolation_s: float = 0.5
    #: Rotate the world so that z is up, from the first accelerometer samples.
    gravity_aligned_world: bool = False
    #: Semantic reprojection term (used on frames with ``frame.semantic`` labels; evaluated on the host,
    #: also when the dense terms run on CUDA).
    use_semantic: bool = True
    semantic: SemanticConfig = field(default_factory=SemanticConfig)
    #: Exclude pixels of dynamic classes (from ``frame.semantic``) from every tracking term.
    mask_dynamic: bool = True
    #: Class ids treated as dynamic (None: the ``is_dynamic`` classes of the default label space).
    dynamic_classes: tuple[int, ...] | None = None
    #: The dynamic mask grows by this many pixels (full resolution) to cover label and depth-edge errors.
    dynamic_dilation_px: int = 4

    def __post_init__(self) -> None:
        self.tracker.validate()
        if not 0 <= self.min_valid_depth_fraction < 1:
            raise ValueError(f"min_valid_depth_fraction must be in [0, 1), got {self.min_valid_depth_fraction}")
        if self.gyro_prior_sigma_rad <= 0 or self.gyro_bias_init_std_rad_s <= 0 or self.gyro_bias_random_walk < 0:
            raise ValueError("gyro_prior_sigma_rad and gyro_bias_init_std_rad_s must be positive, "
                             "gyro_bias_random_walk non-negative")
        if not 0 < self.min_depth_m < self.max_depth_m:
            raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {self.min_depth_m}, {self.max_depth_m}")
        if self.dynamic_dilation_px < 0:
            raise ValueError(f"dynamic_dilation_px must be >= 0, got {self.dynamic_dilation_px}")
        if self.use_semantic and not self.tracker.finest_level <= self.semantic.level < self.tracker.levels:
            raise ValueError(f"semantic.level {self.semantic.level} outside the tracked levels "
                             f"{self.tracker.finest_level}..{self.tracker.levels - 1}")


def default_dynamic_classes() -> tuple[int, ...]:
    """Ids of the ``is_dynamic`` classes of the project's default label space (empty if it is missing)."""
    try:
        from ..labels import load_label_space
        return tuple(int(i) for i in np.flatnonzero(load_label_space().dynamic_mask))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("no label space for dynamic classes (%s): nothing is masked", exc)
        return ()


def adjoint_se3(T: np.ndarray) -> np.ndarray:
    """Adjoint of a transform for ``(rho, phi)`` twists: ``T exp(xi) T^-1 = exp(Ad xi)``.

    Shape: (4, 4) -> (6, 6).
    """
    R, t = T[:3, :3], T[:3, 3]
    A = np.zeros((6, 6))
    A[:3, :3] = R
    A[:3, 3:] = skew(t) @ R
    A[3:, 3:] = R
    return A


@dataclass
class _GyroChain:
    """Gyro rotation integrated from a start frame (camera frame), for the bias filter.

    Shape: R_kf_start (3, 3) the start frame's rotation in the keyframe (identity at the keyframe) with
    its per-axis variance; R_start_cur (3, 3) the gyro rotation since then, over ``dt_s`` seconds.
    """

    R_kf_start: np.ndarray = field(default_factory=lambda: np.eye(3))
    var_start_rad2: float = 0.0
    R_start_cur: np.ndarray = field(default_factory=lambda: np.eye(3))
    dt_s: float = 0.0

    def extended(self, R_prev_cur: np.ndarray, dt_s: float) -> "_GyroChain":
        return _GyroChain(self.R_kf_start, self.var_start_rad2, self.R_start_cur @ R_prev_cur, self.dt_s + dt_s)


class VisualInertialOdometry:
    """Frame-to-keyframe RGB-D(+gyro) odometry with failure handling; one instance per sequence."""

    def __init__(self, config: VioConfig | None = None) -> None:
        self.config = config or VioConfig()
        self.device = torch.device(self.config.device)
        # On CUDA: fixed-shape linearisations in CUDA graphs (same math and poses as RgbdTracker).
        tracker_cls = CudaRgbdTracker if self.device.type == "cuda" else RgbdTracker
        self._tracker = tracker_cls(self.config.tracker)
        tc = self.config.tracker
        self._tracker_icp = tracker_cls(TrackerConfig(**{**tc.__dict__, "use_rgb": False, "use_icp": True}))
        self._cuda_pyramids: dict[tuple, CudaPyramidBuilder] = {}  # per camera: pyramid build in one graph
        self._bias = self._new_bias_estimator()
        dyn: tuple[int, ...] = ()
        if self.config.mask_dynamic:
            dyn = (self.config.dynamic_classes if self.config.dynamic_classes is not None
                   else default_dynamic_classes())
        self.dynamic_classes = tuple(sorted(set(int(c) for c in dyn)))
        # Dynamic classes never become semantic anchor points.
        self._sem_cfg = replace(self.config.semantic, ignore_classes=tuple(
            sorted(set(self.config.semantic.ignore_classes) | set(self.dynamic_classes))))
        self.reset()

    # ---------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget everything: the next frame starts a new trajectory."""
        self._keyframe: Keyframe | None = None
        self._previous: tuple[list[PyramidLevel], np.ndarray] | None = None  # pyramid, T_world_camera
        self._kf_age = 0
        self._last_stamp: float | None = None
        self._last_T: np.ndarray | None = None
        self._velocity = np.zeros(6)  # body twist per second, T_prev_cur = exp(v dt)
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._results: list[TrackingResult] = []
        self.gravity_camera: np.ndarray | None = None  #: gravity direction in the first camera frame
        self._sem_anchor: SemanticAnchor | None = None
        self._bias = self._new_bias_estimator()
        self._last_gyro: tuple[float, np.ndarray] | None = None  # (IMU stamp s, rate rad/s (3,))
        self._gyro_chain: _GyroChain | None = None
        #: Per-axis variance (rad^2) of the last pose's rotation relative to the keyframe: the gyro prior
        #: chains on that pose, so its uncertainty adds to the gyro's.
        self._last_rot_var_kf = 0.0

    def _new_bias_estimator(self) -> GyroBiasEstimator:
        return GyroBiasEstimator(self.config.gyro_bias_init_std_rad_s, self.config.gyro_bias_random_walk)

    @property
    def gyro_bias_rad_s(self) -> np.ndarray:
        """Current online gyro bias estimate. Shape: (3,)."""
        return self._bias.bias_rad_s.copy()

    @property
    def results(self) -> list[TrackingResult]:
        """Every result returned so far, in call order."""
        return list(self._results)

    def trajectory(self) -> Any:
        """The trajectory so far (frames in the trajectory only) as ``io.trajectory.Trajectory``."""
        from ...io.trajectory import Trajectory
        if not self._poses:
            return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
        return Trajectory(np.array(self._stamps), np.stack(self._poses))

    def write_trajectory(self, path: str | Path) -> Path:
        """Write the trajectory as a TUM file (``t tx ty tz qx qy qz qw``) and return its path."""
        from ...io.trajectory import write_tum_trajectory
        tr = self.trajectory()
        return write_tum_trajectory(path, tr.stamps_s, tr.T_world_camera)

    # ---------------------------------------------------------------- public step
    def track(self, frame: Any) -> TrackingResult:
        """Estimate ``T_world_camera`` of ``frame`` (an ``io.frame.Frame``); never raises.

        Shape: frame.color (H, W, 3) uint8, frame.depth_m (H, W) meters -> result.T_world_camera (4, 4).
        """
        t0 = time.perf_counter()
        try:
            res = self._track(frame)
        except Exception as exc:  # noqa: BLE001 -- the contract is a status, never an exception
            res = self._unusable(getattr(frame, "stamp_s", float("nan")), TrackingStatus.INVALID,
                                 f"{type(exc).__name__}: {exc}")
        res.time_ms = (time.perf_counter() - t0) * 1e3
        self._results.append(res)
        return res

    # ---------------------------------------------------------------- internals
    def _unusable(self, stamp: Any, status: TrackingStatus, message: str) -> TrackingResult:
        T = np.eye(4) if self._last_T is None else self._last_T.copy()
        try:
            s = float(stamp)
        except (TypeError, ValueError):
            s = float("nan")
        return TrackingResult(s, T, np.full((6, 6), np.inf) if self._last_T is None else _GUESS_COV.copy(),
                              status, message=message)

    def _gyro_rotation(self, frame: Any, stamp: float) -> tuple[np.ndarray | None, float, Any]:
        """Camera rotation ``R_prev_cur`` from the gyro, its std, and the raw preintegration."""
        imu = getattr(frame, "imu", None)
        if not self.config.use_gyro or imu is None or len(imu) == 0 or self._last_stamp is None:
            return None, 0.0, None
        stamps, rates = imu.stamps_s, imu.gyro_rad_s
        if self._last_gyro is not None:
            # The previous frame's last sample gives the rate at the window's start (linear integration).
            stamps = np.concatenate([[self._last_gyro[0]], stamps])
            rates = np.concatenate([self._last_gyro[1][None], rates])
        pre = preintegrate_gyro(stamps, rates, self._last_stamp, stamp, self._bias.bias_rad_s,
                                self.config.imu_time_offset_s, self.config.gyro_noise_density)
        if pre is None or pre.coverage < 0.8:
            return None, 0.0, None
        R_ci = self._R_camera_imu(frame)
        if self.config.estimate_gyro_bias:
            self._bias.predict(pre.dt_s)
        # Per-axis std of the integrated rotation: white noise, the bias estimate's error over dt, and the
        # unmodelled errors (the rotation of an isotropic std to the camera frame changes nothing).
        sigma = float(np.sqrt(pre.sigma_rad ** 2 + (self._bias.std_rad_s * pre.dt_s) ** 2
                              + self.config.gyro_prior_sigma_rad ** 2))
        return R_ci @ pre.dR_imu @ R_ci.T, sigma, pre

    def _remember_gyro(self, frame: Any) -> None:
        """Keep the frame's last finite gyro sample (IMU time) for the next frame's integration window."""
        imu = getattr(frame, "imu", None)
        if imu is None or len(imu) == 0:
            return
        st = np.asarray(imu.stamps_s, dtype=np.float64).reshape(-1)
        w = np.asarray(imu.gyro_rad_s, dtype=np.float64).reshape(-1, 3)
        ok = np.flatnonzero(np.isfinite(st) & np.all(np.isfinite(w), axis=1))
        if ok.size:
            k = ok[np.argmax(st[ok])]
            self._last_gyro = (float(st[k]), w[k].copy())

    @staticmethod
    def _R_camera_imu(frame: Any) -> np.ndarray:
        T = getattr(frame, "T_camera_imu", None)
        # Without a calibration (TUM's Kinect accelerometer) the IMU axes are taken as the camera's.
        return np.eye(3) if T is None else np.asarray(T, dtype=np.float64)[:3, :3]

    def _init_gravity(self, frame: Any) -> None:
        imu = getattr(frame, "imu", None)
        if self.gravity_camera is not None or imu is None or len(imu) == 0:
            return
        g = gravity_direction_from_accel(imu.accel_m_s2)
        if g is not None:
            self.gravity_camera = self._R_camera_imu(frame) @ g

    def _prediction(self, stamp: float, R_gyro: np.ndarray | None) -> np.ndarray:
        assert self._last_T is not None and self._last_stamp is not None
        dt = stamp - self._last_stamp
        motion = np.eye(4)
        if self.config.constant_velocity and dt <= self.config.max_extrapolation_s:
            motion = se3_exp(self._velocity * dt)
        if R_gyro is not None:
            motion[:3, :3] = R_gyro
        return self._last_T @ motion

    def _labels(self, frame: Any) -> np.ndarray | None:
        """The frame's class labels when usable: (H, W) integers matching the camera, else None."""
        labels = getattr(frame, "semantic", None)
        if labels is None:
            return None
        labels = np.asarray(labels)
        if labels.shape != (frame.camera.height, frame.camera.width) or not np.issubdtype(labels.dtype, np.integer):
            return None  # a mismatched label image is ignored, not an error: labels are optional
        return labels

    def _dynamic_mask(self, labels: np.ndarray | None) -> np.ndarray | None:
        """Pixels of dynamic classes, dilated; None when there are none (or no labels). Shape: (H, W) bool."""
        if labels is None or not self.dynamic_classes:
            return None
        mask = np.isin(labels, self.dynamic_classes)
        if not mask.any():
            return None
        r = self.config.dynamic_dilation_px
        if r > 0:
            mask = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        return mask

    def _pyramid(self, frame: Any, dynamic: np.ndarray | None = None) -> tuple[list[PyramidLevel], float, bool]:
        cam = frame.camera
        depth = np.asarray(frame.depth_m, dtype=np.float32)
        if depth.shape != (cam.height, cam.width):
            raise ValueError(f"depth {depth.shape} does not match camera {(cam.height, cam.width)}")
        if dynamic is not None:
            # No depth on a moving object: no ICP points or normals, no photometric reference points, no
            # semantic anchor points there; the tracker also drops samples landing on it (cache below).
            depth = np.where(dynamic, np.float32(0.0), depth)
        color = getattr(frame, "color", None)
        if color is not None:
            color = np.asarray(color)
            if color.shape[:2] != depth.shape:
                raise ValueError(f"color {color.shape} does not match depth {depth.shape}")
        if self.device.type == "cuda":
            # The same torch pyramid, built by one CUDA graph replay instead of ~200 kernel launches.
            key = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)
            if key not in self._cuda_pyramids:
                self._cuda_pyramids[key] = CudaPyramidBuilder(
                    cam, self.config.tracker.levels, self.config.min_depth_m, self.config.max_depth_m,
                    self.config.tracker.finest_level, self.device)
            pyr = self._cuda_pyramids[key](color, depth)
        else:
            if color is None:
                intensity = torch.zeros(depth.shape, dtype=torch.float32, device=self.device)
            else:
                intensity = rgb_to_intensity(color, self.device)
            pyr = build_pyramid(intensity, torch.as_tensor(depth, device=self.device), cam,
                                self.config.tracker.levels, self.config.min_depth_m, self.config.max_depth_m,
                                self.config.tracker.finest_level)
        if dynamic is not None:
            m = dynamic
            kernel = np.ones((3, 3), np.uint8)
            for level, p in enumerate(pyr):
                if level > 0:  # a coarse pixel is dynamic when any of its 2x2 children is
                    h2, w2 = m.shape[0] // 2, m.shape[1] // 2
                    m = m[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).any(axis=(1, 3))
                # Plus one pixel of the level: its gradients and bilinear samples reach that far.
                p.cache["dynamic"] = cv2.dilate(m.astype(np.uint8), kernel) > 0
        lvl = pyr[self.config.tracker.finest_level]
        # one device -> host transfer for both statistics (each float() would wait for the device)
        valid_frac, intensity_std = torch.stack([lvl.depth_valid.float().mean(), lvl.intensity.std()]).tolist()
        textured = intensity_std >= self.config.min_intensity_std
        return pyr, valid_frac, textured

    def _semantic_maps(self, labels: np.ndarray | None) -> SemanticDistanceMaps | None:
        """Distance maps of the frame's labels, or None when the term is off or there are no labels."""
        cfg = self.config
        if not cfg.use_semantic or cfg.semantic.weight <= 0 or labels is None:
            return None
        # Maps for the anchor's classes only; all classes when a new anchor may be taken from this frame.
        only = None if self._sem_anchor is None else np.unique(self._sem_anchor.classes)
        return SemanticDistanceMaps(labels, self._sem_cfg, only)

    def _new_semantic_anchor(self, maps: SemanticDistanceMaps | None, pyr: list[PyramidLevel], T: np.ndarray,
                             stamp: float) -> None:
        if maps is None:
            self._sem_anchor = None
            return
        lvl = pyr[self.config.semantic.level]
        h, w = maps.shape
        self._sem_anchor = SemanticAnchor.from_frame(
            maps.labels, lvl.vertices.cpu().numpy()[:h, :w], lvl.depth_valid.cpu().numpy()[:h, :w], T, self._sem_cfg, stamp)

    def _set_keyframe(self, frame: Any, pyr: list[PyramidLevel], T: np.ndarray, stamp: float, textured: bool
                      ) -> None:
        self._keyframe = Keyframe(index=int(getattr(frame, "index", -1)), stamp_s=stamp, pyramid=pyr,
                                  T_world_camera=T.copy(), semantic=getattr(frame, "semantic", None))
        self._kf_textured = textured
        self._kf_age = 0
        self._gyro_chain = _GyroChain()
        self._last_rot_var_kf = 0.0

    def _commit(self, stamp: float, T: np.ndarray, res: TrackingResult) -> TrackingResult:
        if self._last_T is not None and self._last_stamp is not None and stamp > self._last_stamp:
            dt = stamp - self._last_stamp
            if dt <= self.config.max_extrapolation_s and res.status == TrackingStatus.OK:
                self._velocity = se3_log(invert_transform(self._last_T) @ T) / dt
            elif res.status != TrackingStatus.OK:
                self._velocity = np.zeros(6) if dt > self.config.max_extrapolation_s else self._velocity
        self._last_T = T.copy()
        self._last_stamp = stamp
        self._stamps.append(stamp)
        self._poses.append(T.copy())
        return res

    def _track(self, frame: Any) -> TrackingResult:
        cfg = self.config
        stamp = float(frame.stamp_s)
        if not np.isfinite(stamp):
            return self._unusable(stamp, TrackingStatus.INVALID, "non-finite stamp")
        if self._last_stamp is not None and stamp <= self._last_stamp:
            return self._unusable(stamp, TrackingStatus.REJECTED,
                                  f"stamp {stamp:.6f} not after the last one {self._last_stamp:.6f}")
        self._init_gravity(frame)
        R_gyro, sigma_gyro, pre = self._gyro_rotation(frame, stamp)
        self._remember_gyro(frame)
        labels = self._labels(frame)
        pyr, valid_frac, textured = self._pyramid(frame, self._dynamic_mask(labels))

        if self._last_T is None:
            T0 = np.eye(4)
            if cfg.gravity_aligned_world and self.gravity_camera is not None:
                T0[:3, :3] = rotation_aligning_gravity(self.gravity_camera)
            cov = np.zeros((6, 6))
            if valid_frac < cfg.min_valid_depth_fraction:
                # No depth to anchor a keyframe: start the trajectory, take the keyframe later.
                return self._commit(stamp, T0, TrackingResult(stamp, T0, cov, TrackingStatus.INITIALIZED,
                                                              message="no valid depth: keyframe deferred"))
            self._set_keyframe(frame, pyr, T0, stamp, textured)
            self._new_semantic_anchor(self._semantic_maps(labels), pyr, T0, stamp)
            return self._commit(stamp, T0, TrackingResult(stamp, T0, cov, TrackingStatus.INITIALIZED,
                                                          is_keyframe=True))

        T_pred = self._prediction(stamp, R_gyro)
        if self._gyro_chain is not None:
            self._gyro_chain = None if R_gyro is None else self._gyro_chain.extended(R_gyro, pre.dt_s)
        if valid_frac < cfg.min_valid_depth_fraction:
            self._previous = None
            self._last_rot_var_kf += sigma_gyro ** 2 if R_gyro is not None else _GUESS_COV[3, 3]
            return self._commit(stamp, T_pred, TrackingResult(
                stamp, T_pred, _GUESS_COV.copy(), TrackingStatus.PREDICTED, used_gyro=R_gyro is not None,
                message=f"valid depth {valid_frac:.1%} below {cfg.min_valid_depth_fraction:.1%}"))
        sem_maps = self._semantic_maps(labels)
        if self._keyframe is None:
            self._set_keyframe(frame, pyr, T_pred, stamp, textured)
            self._new_semantic_anchor(sem_maps, pyr, T_pred, stamp)
            return self._commit(stamp, T_pred, TrackingResult(
                stamp, T_pred, _GUESS_COV.copy(), TrackingStatus.INITIALIZED, is_keyframe=True,
                used_gyro=R_gyro is not None, message="first keyframe after frames without depth"))

        kf = self._keyframe
        if kf.pyramid[0].shape != pyr[0].shape or kf.pyramid[0].intrinsics != pyr[0].intrinsics:
            # A new camera (resolution or intrinsics): nothing to align with; start over from the prediction.
            self._set_keyframe(frame, pyr, T_pred, stamp, textured)
            self._new_semantic_anchor(sem_maps, pyr, T_pred, stamp)
            self._previous = None
            return self._commit(stamp, T_pred, TrackingResult(
                stamp, T_pred, _GUESS_COV.copy(), TrackingStatus.LOST, is_keyframe=True,
                used_gyro=R_gyro is not None, message="camera changed; keyframe re-anchored at the prediction"))
        T_kf_w = invert_transform(kf.T_world_camera)
        prior = None
        if R_gyro is not None:
            # The prior chains the gyro rotation onto the last pose: its std adds that pose's uncertainty
            # (relative to the keyframe) to the gyro's. Without it the prior, ~10x tighter than one
            # frame's images, let the rotation follow the gyro and corrected it ~100x too slowly.
            prior = RotationPrior((T_kf_w @ self._last_T)[:3, :3] @ R_gyro,
                                  float(np.sqrt(sigma_gyro ** 2 + self._last_rot_var_kf)))
        use_rgb = textured and self._kf_textured
        tracker = self._tracker if use_rgb else self._tracker_icp
        extra = None
        if cfg.use_previous_frame and self._previous is not None and self._previous[0] is not kf.pyramid:
            extra = [(self._previous[0], T_kf_w @ self._previous[1])]
        sem_systems = None
        k_sem = None
        if sem_maps is not None:
            k_sem = level_intrinsics(frame.camera.fx, frame.camera.fy, frame.camera.cx, frame.camera.cy,
                                     cfg.semantic.level)
            if self._sem_anchor is not None and len(self._sem_anchor) > 0:
                h, w = sem_maps.shape
                depth_lvl = pyr[cfg.semantic.level].depth.cpu().numpy()[:h, :w]
                sem_systems = [self._sem_anchor.system(sem_maps, k_sem, T_kf_w, self._sem_cfg, depth_lvl)]
        tr: TrackerResult = tracker.track(kf.pyramid, pyr, T_kf_w @ T_pred, prior, extra, sem_systems)
        T = kf.T_world_camera @ tr.T_ref_cur
        failure = self._failure(tr, T, T_pred)
        if failure:
            self._set_keyframe(frame, pyr, T_pred, stamp, textured)
            self._new_semantic_anchor(sem_maps, pyr, T_pred, stamp)
            self._previous = None
            return self._commit(stamp, T_pred, TrackingResult(
                stamp, T_pred, _GUESS_COV.copy(), TrackingStatus.LOST, is_keyframe=True,
                inlier_ratio=tr.inlier_ratio, residual=tr.residual, used_gyro=R_gyro is not None,
                message=failure + "; keyframe re-anchored at the prediction"))

        Ad = adjoint_se3(kf.T_world_camera)
        cov = Ad @ tr.covariance @ Ad.T
        self._kf_age += 1
        var_rot = float(np.trace(tr.covariance[3:, 3:])) / 3.0
        self._last_rot_var_kf = var_rot if np.isfinite(var_rot) and var_rot >= 0 else _GUESS_COV[3, 3]
        new_kf = cfg.keyframes.needs_new(tr.T_ref_cur, tr.inlier_ratio, self._kf_age)
        if prior is not None and cfg.estimate_gyro_bias and self._gyro_chain is not None and (
                new_kf or self._gyro_chain.dt_s >= cfg.gyro_bias_update_interval_s):
            self._update_bias(frame, prior, tr)
        if new_kf:
            self._set_keyframe(frame, pyr, T, stamp, textured)
        if sem_maps is not None:
            anchor = self._sem_anchor
            renew = anchor is None
            if anchor is not None:
                visible, good = anchor.update(sem_maps, k_sem, T, self._sem_cfg)
                renew = anchor.needs_renewal(visible, good, self._sem_cfg)
            if renew:
                self._new_semantic_anchor(sem_maps, pyr, T, stamp)
        # A black previous image would feed the photometric term nothing but noise.
        self._previous = (pyr, T.copy()) if textured else None
        return self._commit(stamp, T, TrackingResult(
            stamp, T, cov, TrackingStatus.OK, is_keyframe=new_kf, inlier_ratio=tr.inlier_ratio,
            residual=tr.residual, used_gyro=R_gyro is not None))

    def _update_bias(self, frame: Any, prior: RotationPrior, tr: TrackerResult) -> None:
        """Kalman update of the gyro bias: the gyro rotation integrated since the chain's start (the
        keyframe, or the last update) against the images' rotation over the same span.

        Measured over many frames (a keyframe's span, up to ``gyro_bias_update_interval_s``) because the
        images' error relative to one keyframe is nearly the same in consecutive frames: per frame, it
        would look like a rate and feed the bias a spurious one. The tracked rotation fuses the gyro prior,
        which pulls it towards the gyro: its deviation from the prior is the vision-only deviation shrunk
        by ``sigma_vision^2 / (sigma_prior^2 + sigma_vision^2)`` (vision rotation information taken as
        isotropic, from the tracker's Hessian without the prior), which is undone here.
        """
        chain = self._gyro_chain
        assert chain is not None
        w_prior = 1.0 / prior.sigma_rad ** 2
        H_vision = tr.hessian.copy()
        H_vision[3:, 3:] -= w_prior * np.eye(3)
        try:
            cov_rot = np.linalg.inv(H_vision)[3:, 3:]
        except np.linalg.LinAlgError:
            cov_rot = np.full((3, 3), np.nan)
        var_vision = float(np.trace(cov_rot)) / 3.0
        if not (np.isfinite(var_vision) and var_vision > 0):
            # No rotation information from the images (all from the prior): nothing to learn; the next
            # keyframe starts a new chain.
            self._gyro_chain = None
            return
        R_fused = tr.T_ref_cur[:3, :3]
        # Vision-only rotation (keyframe frame): the fused one's left deviation from the prior, unshrunk.
        e_fused = so3_log(R_fused @ prior.R_ref_cur.T)
        R_vision = so3_exp((1.0 + w_prior * var_vision) * e_fused) @ prior.R_ref_cur
        # The next span starts here (a new keyframe resets the chain again in _set_keyframe).
        self._gyro_chain = _GyroChain(R_kf_start=R_vision, var_start_rad2=var_vision)
        R_ci = self._R_camera_imu(frame)
        dR_vision = R_ci.T @ chain.R_kf_start.T @ R_vision @ R_ci  # IMU frame, chain start -> now
        dR_gyro = R_ci.T @ chain.R_start_cur @ R_ci
        sigma = np.sqrt(var_vision + chain.var_start_rad2 + self.config.gyro_noise_density ** 2 * chain.dt_s)
        self._bias.update(dR_gyro, dR_vision, chain.dt_s, float(sigma))

    def _failure(self, tr: TrackerResult, T: np.ndarray, T_pred: np.ndarray) -> str:
        cfg = self.config
        if not np.all(np.isfinite(T)):
            return "non-finite pose"
        if tr.inlier_ratio < cfg.fail_min_inlier_ratio:
            return f"inlier ratio {tr.inlier_ratio:.2f} < {cfg.fail_min_inlier_ratio}"
        if not tr.residual <= cfg.fail_max_residual:
            return f"residual {tr.residual:.2f} > {cfg.fail_max_residual}"
        if not tr.condition >= cfg.fail_min_condition:
            return f"degenerate Hessian (condition {tr.condition:.1e})"
        jump = invert_transform(T_pred) @ T
        if np.linalg.norm(jump[:3, 3]) > cfg.fail_max_jump_m:
            return f"jump {np.linalg.norm(jump[:3, 3]):.2f} m from the prediction"
        ang = float(np.arccos(np.clip((np.trace(jump[:3, :3]) - 1) / 2, -1, 1)))
        if ang > cfg.fail_max_jump_rad:
            return f"jump {ang:.2f} rad from the prediction"
        return ""
