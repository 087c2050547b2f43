"""TUM trajectory files (``t tx ty tz qx qy qz qw``) and pose interpolation.

Convention: each row is ``T_world_camera`` (camera pose in the world), quaternion ``(x, y, z, w)``
real part last, translation in meters, stamp in seconds.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.geometry import matrix_to_quat_xyzw, quat_xyzw_to_matrix

__all__ = ["Trajectory", "read_tum_trajectory", "write_tum_trajectory", "interpolate_poses", "PassTracker",
           "PoseBuffer", "LATE_MARGIN_S"]


@dataclass
class Trajectory:
    """Time-stamped camera poses, sorted by stamp.

    Shape: stamps_s (N,), T_world_camera (N, 4, 4).
    """

    stamps_s: np.ndarray
    T_world_camera: np.ndarray

    def __post_init__(self) -> None:
        self.stamps_s = np.asarray(self.stamps_s, dtype=np.float64)
        self.T_world_camera = np.asarray(self.T_world_camera, dtype=np.float64)
        n = len(self.stamps_s)
        if self.T_world_camera.shape != (n, 4, 4):
            raise ValueError(f"trajectory has {n} stamps but poses of shape {self.T_world_camera.shape}")

    def __len__(self) -> int:
        return len(self.stamps_s)

    @property
    def positions(self) -> np.ndarray:
        """Camera centres in the world. Shape: (N, 3)."""
        return self.T_world_camera[:, :3, 3]


def read_tum_trajectory(path: str | Path) -> Trajectory:
    """Read a TUM trajectory file; ``#`` comments and blank lines are skipped; rows are sorted by stamp.

    Shape: file of N rows ``t tx ty tz qx qy qz qw`` -> Trajectory (N,), (N, 4, 4).
    Raises ValueError naming the file and line on a malformed row.
    """
    path = Path(path)
    rows: list[list[float]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.replace(",", " ").split()
        if len(parts) != 8:
            raise ValueError(
                f"{path}:{lineno}: expected 8 columns 't tx ty tz qx qy qz qw', got {len(parts)}: {line!r}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}:{lineno}: non-numeric value in {line!r}") from None
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{path}:{lineno}: non-finite value in {line!r}")
        if np.linalg.norm(values[4:8]) < 1e-6:
            raise ValueError(f"{path}:{lineno}: zero quaternion in {line!r}")
        rows.append(values)
    if not rows:
        return Trajectory(np.zeros(0), np.zeros((0, 4, 4)))
    data = np.asarray(rows)
    data = data[np.argsort(data[:, 0], kind="stable")]
    T = np.tile(np.eye(4), (len(data), 1, 1))
    T[:, :3, :3] = quat_xyzw_to_matrix(data[:, 4:8])
    T[:, :3, 3] = data[:, 1:4]
    return Trajectory(data[:, 0].copy(), T)


def write_tum_trajectory(path: str | Path, stamps_s: np.ndarray, T_world_camera: np.ndarray) -> Path:
    """Write poses as a TUM trajectory (``%.9f`` so positions survive a round trip to 1e-9 m).

    Shape: stamps_s (N,), T_world_camera (N, 4, 4).
    """
    stamps_s = np.asarray(stamps_s, dtype=np.float64)
    T = np.asarray(T_world_camera, dtype=np.float64)
    if T.shape != (len(stamps_s), 4, 4):
        raise ValueError(f"{len(stamps_s)} stamps but poses of shape {T.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for t, pose in zip(stamps_s, T):
        q = matrix_to_quat_xyzw(pose[:3, :3])
        vals = " ".join(f"{v:.9f}" for v in (*pose[:3, 3], *q))
        lines.append(f"{t:.9f} {vals}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _slerp_xyzw(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (Shoemake 1985). Shape: (N, 4), (N,) -> (N, 4)."""
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # shortest arc
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-9
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(small, alpha, np.sin(alpha * theta) / safe)
    q = w0[:, None] * q0 + w1[:, None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def interpolate_poses(
    trajectory: Trajectory, stamps_s: np.ndarray, max_gap_s: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Poses at ``stamps_s``: linear in translation, slerp in rotation between the bracketing samples.

    A stamp that coincides with a sample (within 1 us) takes it as is; otherwise both bracketing
    samples must exist and lie within ``max_gap_s`` of the stamp, else it is invalid (identity pose,
    ``valid_mask`` False). No extrapolation.
    Shape: stamps_s (M,) -> poses (M, 4, 4), valid_mask (M,) bool.
    """
    query = np.atleast_1d(np.asarray(stamps_s, dtype=np.float64))
    m = len(query)
    poses = np.tile(np.eye(4), (m, 1, 1))
    valid = np.zeros(m, dtype=bool)
    t = trajectory.stamps_s
    if len(t) == 0 or m == 0:
        return poses, valid
    T = trajectory.T_world_camera
    hi = np.clip(np.searchsorted(t, query, side="left"), 0, len(t) - 1)
    lo = np.clip(hi - 1, 0, len(t) - 1)
    nearest = np.where(np.abs(t[lo] - query) < np.abs(t[hi] - query), lo, hi)
    exact = np.abs(t[nearest] - query) <= 1e-6
    poses[exact] = T[nearest[exact]]
    valid[exact] = True
    bracket = (~exact) & (t[lo] <= query) & (query <= t[hi]) & (hi > lo)
    bracket &= (query - t[lo] <= max_gap_s) & (t[hi] - query <= max_gap_s)
    if np.any(bracket):
        i0, i1, q = lo[bracket], hi[bracket], query[bracket]
        alpha = (q - t[i0]) / (t[i1] - t[i0])
        q0 = np.stack([matrix_to_quat_xyzw(R) for R in T[i0, :3, :3]])
        q1 = np.stack([matrix_to_quat_xyzw(R) for R in T[i1, :3, :3]])
        out = np.tile(np.eye(4), (len(q), 1, 1))
        out[:, :3, :3] = quat_xyzw_to_matrix(_slerp_xyzw(q0, q1, alpha))
        out[:, :3, 3] = (1.0 - alpha)[:, None] * T[i0, :3, 3] + alpha[:, None] * T[i1, :3, 3]
        poses[bracket] = out
        valid[bracket] = True
    return poses, valid


LATE_MARGIN_S = 2.0
"""After a time reset (a bag played again), how close to the newest stamp seen of the previous pass a late
message of that pass lies: the last frames of a pass, whose messages were still on their way (processing lags
of a second or two). A message far after the current pass but not there is a stream that jumped forward (a gap
in a recording) and stays in the current pass."""


class PassTracker:
    """The passes of a stream whose time may jump back (a bag played in a loop, a restarted clock).

    A stamp more than ``time_reset_s`` before the newest of the current pass starts a new pass; one more than
    ``time_reset_s`` after it and within :data:`LATE_MARGIN_S` of the previous pass's newest is a late message
    of the previous pass (its messages still on their way when the stream looped); anything else belongs to
    the current pass (a stream that jumped forward stays in it). Used by the builtin synchronizer
    (``ros.sync``) and :class:`PoseBuffer`, so both tell passes apart by the same rule. Not thread-safe.
    """

    def __init__(self, time_reset_s: float = 5.0) -> None:
        if not time_reset_s > 0:
            raise ValueError(f"time_reset_s must be > 0 seconds, got {time_reset_s}")
        self.time_reset_s = float(time_reset_s)
        self.index = 0           # the current pass (= time resets seen)
        self.newest_s = -np.inf  # newest stamp of the current pass
        self._previous_newest_s = -np.inf

    def peek(self, stamp_s: float) -> int:
        """The pass ``stamp_s`` belongs to (``index + 1``: it starts a new one), without recording it."""
        if stamp_s < self.newest_s - self.time_reset_s:
            return self.index + 1
        if (self.index > 0 and stamp_s > self.newest_s + self.time_reset_s
                and abs(stamp_s - self._previous_newest_s) <= LATE_MARGIN_S):
            return self.index - 1
        return self.index

    def add(self, stamp_s: float) -> int:
        """Record ``stamp_s`` and return its pass (a new pass becomes the current one)."""
        run = self.peek(stamp_s)
        if run > self.index:
            self.index = run
            self._previous_newest_s, self.newest_s = self.newest_s, stamp_s
        elif run == self.index:
            self.newest_s = max(self.newest_s, stamp_s)
        return run


class PoseBuffer:
    """The recent poses of a stream (odometry), looked up at any stamp between two of them.

    What a TF lookup gives a ROS node: a frame whose stamp falls between two poses no more than
    ``max_gap_s`` from it gets their interpolation (:func:`interpolate_poses`), so an image does not need
    a pose with its own stamp (odometry slower than the camera, or tracking that skipped frames). Keeps
    the newest ``capacity`` poses in stamp order. Passes as :class:`PassTracker` tells them apart: a pose of a
    new pass (a bag played again) starts an empty pass; the previous pass's poses stay for the frames of that
    pass still on their way (a node with a backlog, a set completed late). Not thread-safe: callers lock.
    """

    def __init__(self, capacity: int = 600, time_reset_s: float = 5.0) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self.capacity = int(capacity)
        self._passes = PassTracker(time_reset_s)
        self._stamps: list[float] = []
        self._poses: list[np.ndarray] = []
        self._previous: tuple[list[float], list[np.ndarray]] = ([], [])  # the pass before, for late frames

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def newest_s(self) -> float | None:
        return self._stamps[-1] if self._stamps else None

    def _pass_lists(self, run: int) -> tuple[list[float], list[np.ndarray]]:
        return self._previous if run < self._passes.index else (self._stamps, self._poses)

    def add(self, stamp_s: float, T_world_camera: np.ndarray) -> None:
        """Insert a pose (a pose with an existing stamp replaces it). Shape: T (4, 4)."""
        stamp_s = float(stamp_s)
        current = self._passes.index
        run = self._passes.add(stamp_s)
        if run > current:  # a new pass
            self._previous = (self._stamps, self._poses)
            self._stamps, self._poses = [], []
        stamps, poses = self._pass_lists(run)
        i = bisect.bisect_left(stamps, stamp_s)
        T = np.asarray(T_world_camera, dtype=np.float64)
        if i < len(stamps) and stamps[i] == stamp_s:
            poses[i] = T
            return
        stamps.insert(i, stamp_s)
        poses.insert(i, T)
        if len(stamps) > self.capacity:
            del stamps[0], poses[0]

    def lookup(self, stamp_s: float, max_gap_s: float) -> tuple[str, np.ndarray | None]:
        """``("ok", T)`` at ``stamp_s``; ``("wait", None)`` when no pose at or after it has arrived yet (one
        may still come); ``("missing", None)`` when the poses around it are too far apart or it lies before
        the buffer. A frame of a new pass whose poses have not arrived waits too; a late frame of the previous
        pass is looked up among that pass's poses. Shape: T (4, 4)."""
        stamp_s = float(stamp_s)
        run = self._passes.peek(stamp_s)
        if run > self._passes.index:
            return "wait", None  # a frame of a new pass (a bag played again) before any pose of it
        stamps, poses = self._pass_lists(run)
        if not stamps or stamps[-1] < stamp_s - 1e-6:
            return "wait", None
        hi = bisect.bisect_left(stamps, stamp_s - 1e-6)
        around = [hi] if hi == 0 else [hi - 1, hi]  # at (or before) the oldest pose only an exact match will do
        traj = Trajectory(np.array([stamps[i] for i in around]), np.stack([poses[i] for i in around]))
        poses_at, valid = interpolate_poses(traj, np.array([stamp_s]), max_gap_s)
        return ("ok", poses_at[0]) if valid[0] else ("missing", None)
