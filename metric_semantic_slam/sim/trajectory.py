"""Smooth, collision-free camera trajectories through a generated room.

The camera centre follows an axis-aligned ellipse (the *camera loop*) planned from the room size
alone by :func:`plan_camera_loop`; the scene generator keeps every object at least
``LOOP_CLEARANCE_M`` away from that ellipse, so one world works for every preset and duration
(the motion is periodic). Every pose component is a finite sum of sinusoids composed with smooth
maps, so poses are infinitely differentiable in time (an IMU is synthesised from derivatives).

Frames: world z-up (floor at z = 0). ``T_world_camera`` is the pose of the color *optical* frame
(z forward, x right, y down). The intermediate body frame is x forward, y left, z up, with
``R_world_body = Rz(yaw) @ Ry(pitch) @ Rx(roll)``; positive pitch looks down.

Motion styles (``MOTIONS``) on top of a preset: ``smooth`` (the default) is the walk alone;
``fast_rotation`` adds short, fast rotation bursts like the TUM ``fr1_rpy`` sequences (the camera shaken
about one axis at a time: peak rates 1.5-3 rad/s at 2-3 Hz, ~1-1.5 s each). They are drawn from their own
random stream, so every other parameter, and the default motion, stays the same for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from metric_semantic_slam.sim.world import World

__all__ = [
    "LOOP_CLEARANCE_M",
    "MIN_CAMERA_CLEARANCE_M",
    "SIDE_BAND_M",
    "NORTH_BAND_M",
    "SOUTH_FREE_M",
    "PRESETS",
    "MOTIONS",
    "CameraLoop",
    "LoopTrajectory",
    "plan_camera_loop",
    "make_trajectory",
    "point_box_distance_m",
    "R_BODY_OPTICAL",
]

#: Minimum distance between the camera centre and any object box or wall.
MIN_CAMERA_CLEARANCE_M = 0.35
#: Distance the scene generator keeps between object footprints and the loop ellipse (the camera
#: deviates from the ellipse by millimetres of hand shake; the rest is safety margin).
LOOP_CLEARANCE_M = 0.5
#: Furniture depth reserved along the west (x = min) and east (x = max) walls.
SIDE_BAND_M = 0.95
#: Furniture depth reserved along the north wall (y = max): desk + chair groups.
NORTH_BAND_M = 1.25
#: Distance from the south wall (y = min) to the loop: a walkway for the simulated person.
SOUTH_FREE_M = 1.4

PRESETS = ("handheld", "robot")
#: Motion styles added to a preset (see the module docstring).
MOTIONS = ("smooth", "fast_rotation")

#: Columns are the optical axes (x right, y down, z forward) in the body frame (x fwd, y left, z up).
R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class CameraLoop:
    """Axis-aligned ellipse in the floor plane that the camera centre follows.

    Shape: center_xy (2,); semi_axes_m (2,) = (along x, along y).
    """

    center_xy: np.ndarray
    semi_axes_m: np.ndarray

    def points(self, n: int = 256) -> np.ndarray:
        """Evenly spaced points on the ellipse. Shape: -> (n, 2)."""
        th = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        return self.center_xy + np.stack([np.cos(th), np.sin(th)], 1) * self.semi_axes_m


def plan_camera_loop(room_min_m: np.ndarray, room_max_m: np.ndarray) -> CameraLoop:
    """The camera loop of a room: leaves ``SIDE_BAND_M``, ``NORTH_BAND_M`` of furniture depth
    plus ``LOOP_CLEARANCE_M`` along the walls and ``SOUTH_FREE_M`` for the person's walkway.

    Shape: room_min_m (3,), room_max_m (3,) -> CameraLoop. Raises ValueError for rooms too small.
    """
    lo = np.asarray(room_min_m, dtype=np.float64)
    hi = np.asarray(room_max_m, dtype=np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(hi <= lo):
        raise ValueError(f"room bounds must be (3,) with max > min, got {lo} .. {hi}")
    a = 0.5 * (hi[0] - lo[0]) - SIDE_BAND_M - LOOP_CLEARANCE_M
    y0 = lo[1] + SOUTH_FREE_M
    y1 = hi[1] - NORTH_BAND_M - LOOP_CLEARANCE_M
    b = 0.5 * (y1 - y0)
    if a < 0.5 or b < 0.4:
        raise ValueError(f"room {hi - lo} too small for a camera loop (semi-axes {a:.2f}, {b:.2f} m)")
    return CameraLoop(np.array([0.5 * (lo[0] + hi[0]), 0.5 * (y0 + y1)]), np.array([a, b]))


def point_box_distance_m(points: np.ndarray, center: np.ndarray, yaw_rad: float,
                         extents: np.ndarray) -> np.ndarray:
    """Euclidean distance from points to a gravity-aligned box (0 inside).

    Shape: points (N, 3), center (3,), extents (3,) -> (N,).
    """
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    d = np.asarray(points, dtype=np.float64) - np.asarray(center, dtype=np.float64)
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    excess = np.maximum(np.abs(local) - np.asarray(extents) / 2, 0.0)
    return np.linalg.norm(excess, axis=1)


def _rot_zyx(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    R = np.empty(yaw.shape + (3, 3))
    R[..., 0, 0] = cy * cp
    R[..., 0, 1] = cy * sp * sr - sy * cr
    R[..., 0, 2] = cy * sp * cr + sy * sr
    R[..., 1, 0] = sy * cp
    R[..., 1, 1] = sy * sp * sr + cy * cr
    R[..., 1, 2] = sy * sp * cr - cy * sr
    R[..., 2, 0] = -sp
    R[..., 2, 1] = cp * sr
    R[..., 2, 2] = cp * cr
    return R


@dataclass(frozen=True)
class LoopTrajectory:
    """A camera walking (or driving) round a :class:`CameraLoop`, looking around.

    Parameters are drawn by :func:`make_trajectory`; angles in radians, frequencies in rad/s.
    ``sway`` holds (amplitude, angular frequency, phase) rows of small sinusoids added to
    (x, y, z, yaw, pitch, roll): body bob and hand shake (all zero for the robot).
    ``shakes`` holds rotation bursts, rows (axis 0/1/2 = yaw/pitch/roll, centre time s, envelope std s,
    amplitude rad, angular frequency rad/s, phase rad): ``A exp(-(t - c)^2 / (2 s^2)) sin(w (t - c) + ph)``
    is added to that angle (Gaussian envelopes keep the motion smooth). Shape: (K, 6); empty when smooth.
    """

    duration_s: float
    preset: str
    loop: CameraLoop
    direction: float  # +1 counter-clockwise seen from above, -1 clockwise
    theta0: float
    omega: float
    speed_wobble: tuple[float, float, float]  # relative amplitude, frequency, phase of d(theta)/dt
    height_m: float
    height_wave: tuple[float, float, float]
    look_bias_rad: float  # turned towards the loop centre
    look_wave: tuple[float, float, float]
    pitch_rad: float
    pitch_wave: tuple[float, float, float]
    roll_wave: tuple[float, float, float]
    sway: np.ndarray  # (6, K, 3)
    shakes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def _angle(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eps, w, ph = self.speed_wobble
        # theta' = omega * (1 + eps * cos(w t + ph)) > 0: the loop is never traversed backwards.
        th = self.theta0 + self.direction * self.omega * (t + eps / w * (np.sin(w * t + ph) - np.sin(ph)))
        dth = self.direction * self.omega * (1.0 + eps * np.cos(w * t + ph))
        return th, dth

    @staticmethod
    def _wave(p: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
        return p[0] * np.sin(p[1] * t + p[2])

    def T_world_camera_batch(self, t_s) -> np.ndarray:
        """Poses of the color optical frame at many times. Shape: (N,) -> (N, 4, 4)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if t.ndim != 1 or not np.all(np.isfinite(t)):
            raise ValueError("times must be a finite 1-D array")
        th, dth = self._angle(t)
        a, b = self.loop.semi_axes_m
        x = self.loop.center_xy[0] + a * np.cos(th)
        y = self.loop.center_xy[1] + b * np.sin(th)
        heading = np.arctan2(b * np.cos(th) * dth, -a * np.sin(th) * dth)
        z = self.height_m + self._wave(self.height_wave, t)
        yaw = heading + self.direction * (self.look_bias_rad + self._wave(self.look_wave, t))
        pitch = self.pitch_rad + self._wave(self.pitch_wave, t)
        roll = self._wave(self.roll_wave, t)
        comps = [x, y, z, yaw, pitch, roll]
        for i in range(6):
            amp, freq, phase = self.sway[i, :, 0:1], self.sway[i, :, 1:2], self.sway[i, :, 2:3]
            comps[i] = comps[i] + (amp * np.sin(freq * t[None, :] + phase)).sum(axis=0)
        for axis, c, s, amp, freq, phase in self.shakes:
            dt = t - c
            comps[3 + int(axis)] = comps[3 + int(axis)] + amp * np.exp(-0.5 * (dt / s) ** 2) * np.sin(freq * dt + phase)
        x, y, z, yaw, pitch, roll = comps
        T = np.zeros((len(t), 4, 4))
        T[:, :3, :3] = _rot_zyx(yaw, pitch, roll) @ R_BODY_OPTICAL
        T[:, :3, 3] = np.stack([x, y, z], axis=1)
        T[:, 3, 3] = 1.0
        return T

    def T_world_camera(self, t_s: float) -> np.ndarray:
        """4x4 pose of the color optical frame at ``t_s`` (any finite time; the centre's path is periodic).

        Shape: () -> (4, 4).
        """
        return self.T_world_camera_batch(np.array([float(t_s)]))[0]


def _wave(rng: np.random.Generator, amp: float, period_s: tuple[float, float]) -> tuple[float, float, float]:
    return (amp, float(2 * np.pi / rng.uniform(*period_s)), float(rng.uniform(0, 2 * np.pi)))


def rotation_shakes(duration_s: float, seed: int, axes: tuple[int, ...] = (0, 1, 2),
                    rate_rad_s: tuple[float, float] = (1.5, 3.0), freq_hz: tuple[float, float] = (2.0, 3.0),
                    gap_s: tuple[float, float] = (0.2, 0.6), envelope_s: tuple[float, float] = (0.25, 0.35)
                    ) -> np.ndarray:
    """Rotation bursts for the ``fast_rotation`` motion (rows as in ``LoopTrajectory.shakes``).

    Bursts cycle through ``axes`` (0 yaw, 1 pitch, 2 roll), one at a time like a person shaking the
    camera about each axis in turn (TUM fr1_rpy); a burst's peak angular rate is about ``rate_rad_s``
    (amplitude = rate / angular frequency), its envelope std ``envelope_s`` (so ~4 std = 1-1.5 s of
    shaking) and the calm between two bursts ``gap_s``. Drawn from their own generator (``seed``).
    Shape: -> (K, 6).
    """
    rng = np.random.default_rng([int(seed), 9173])
    rows = []
    t = float(rng.uniform(0.3, 0.8))
    k = int(rng.integers(len(axes)))
    while True:
        s = float(rng.uniform(*envelope_s))
        c = t + 2.0 * s
        if c > duration_s + 2.0 * s:
            break
        w = 2 * np.pi * float(rng.uniform(*freq_hz))
        amp = float(rng.uniform(*rate_rad_s)) / w
        rows.append((float(axes[k % len(axes)]), c, s, amp, w, float(rng.uniform(0, 2 * np.pi))))
        k += 1
        t = c + 2.0 * s + float(rng.uniform(*gap_s))
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def make_trajectory(world: World, preset: str = "handheld", duration_s: float = 10.0,
                    seed: int = 0, motion: str = "smooth") -> LoopTrajectory:
    """A smooth camera trajectory through ``world`` for ``preset`` ``handheld`` or ``robot``.

    ``handheld``: a person walking slowly round the loop holding the camera at ~1.4 m, looking
    around with a slight downward pitch, with small body bob and hand shake (max speed 0.35 m/s).
    ``robot``: planar motion at 0.5 m, yaw only (max speed 0.3 m/s).
    ``motion`` ``fast_rotation`` adds :func:`rotation_shakes` (yaw only for the robot); ``smooth`` adds
    nothing and gives exactly the trajectory of earlier versions.
    Raises ValueError for an unknown preset or motion, a non-positive duration, or a world whose objects
    come closer than ``MIN_CAMERA_CLEARANCE_M`` to the path.
    Shape: -> LoopTrajectory with ``T_world_camera(t) -> (4, 4)``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown trajectory preset {preset!r}; expected one of {PRESETS}")
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    loop = plan_camera_loop(world.room_min_m, world.room_max_m)
    rng = np.random.default_rng([int(seed), 7331 if preset == "handheld" else 1337])
    a = float(loop.semi_axes_m[0])
    direction = float(rng.choice([-1.0, 1.0]))
    theta0 = float(rng.uniform(0, 2 * np.pi))
    eps = 0.2
    speed_wobble = (eps, float(2 * np.pi / rng.uniform(7.0, 11.0)), float(rng.uniform(0, 2 * np.pi)))
    sway = np.zeros((6, 3, 3))
    if preset == "handheld":
        v_max = 0.35
        height = float(rng.uniform(1.35, 1.45))
        height_wave = _wave(rng, 0.05, (6.0, 9.0))
        look_bias = np.deg2rad(25.0)
        look_wave = _wave(rng, np.deg2rad(45.0), (11.0, 14.0))
        pitch = np.deg2rad(rng.uniform(16.0, 20.0))
        pitch_wave = _wave(rng, np.deg2rad(5.0), (5.0, 8.0))
        roll_wave = _wave(rng, np.deg2rad(2.0), (4.0, 6.0))
        # Hand shake: three incommensurate components per axis, 2-5 Hz, half a millimetre / a fraction
        # of a degree (peak accelerations stay near 1-2 m/s^2, like a walking hand).
        amps = np.array([0.0005, 0.0005, 0.0006, np.deg2rad(0.2), np.deg2rad(0.25), np.deg2rad(0.15)])
        for i in range(6):
            f_hz = rng.uniform(2.0, 5.0, size=3)
            sway[i, :, 0] = amps[i] * rng.uniform(0.5, 1.0, size=3)
            sway[i, :, 1] = 2 * np.pi * f_hz
            sway[i, :, 2] = rng.uniform(0, 2 * np.pi, size=3)
        # Walking bob: vertical at step frequency.
        sway[2, 0] = (0.004, 2 * np.pi * rng.uniform(1.6, 1.9), rng.uniform(0, 2 * np.pi))
    else:
        v_max = 0.3
        height = 0.5
        height_wave = (0.0, 1.0, 0.0)
        look_bias = 0.0
        look_wave = _wave(rng, np.deg2rad(30.0), (10.0, 14.0))
        pitch = 0.0
        pitch_wave = (0.0, 1.0, 0.0)
        roll_wave = (0.0, 1.0, 0.0)
    # Speed on the ellipse is at most omega * (1 + eps) * a.
    omega = v_max / ((1.0 + eps) * a)
    traj = LoopTrajectory(
        duration_s=float(duration_s), preset=preset, loop=loop, direction=direction, theta0=theta0,
        omega=float(omega), speed_wobble=speed_wobble, height_m=height, height_wave=height_wave,
        look_bias_rad=float(look_bias), look_wave=look_wave, pitch_rad=float(pitch), pitch_wave=pitch_wave,
        roll_wave=roll_wave, sway=sway,
    )
    if motion == "fast_rotation":
        # Drawn after (and apart from) everything above, so the walk itself is the same as ``smooth``'s.
        traj = replace(traj, shakes=rotation_shakes(duration_s, seed, axes=(0, 1, 2) if preset == "handheld" else (0,)))
    _check_clearance(world, traj)
    return traj


def _check_clearance(world: World, traj: LoopTrajectory) -> None:
    # Check the whole duration and at least one full loop: a world that blocks any part of the loop
    # is broken for longer sequences even when this one would not reach the obstacle.
    horizon = max(traj.duration_s, 2 * np.pi / traj.omega + 1.0)
    t = np.linspace(0.0, horizon, int(horizon * 10) + 1)
    p = traj.T_world_camera_batch(t)[:, :3, 3]
    lo, hi = np.asarray(world.room_min_m), np.asarray(world.room_max_m)
    wall = np.minimum(p - lo, hi - p).min()
    if wall < MIN_CAMERA_CLEARANCE_M:
        raise ValueError(f"camera path comes {wall:.2f} m from a wall/floor/ceiling")
    for obj in world.objects:
        d = point_box_distance_m(p, obj.center_m, obj.yaw_rad, obj.extents_m).min()
        if d < MIN_CAMERA_CLEARANCE_M:
            raise ValueError(
                f"camera path comes {d:.2f} m from object {obj.instance_id} ({obj.class_name}); "
                "this world does not keep the camera loop free (was it made by generate_world?)"
            )
