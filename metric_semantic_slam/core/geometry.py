"""Rigid-body geometry on numpy arrays: SO(3), SE(3), quaternions.

Conventions (pinned by ``test/core/test_geometry.py::test_convention_*``):

- A transform is a 4x4 homogeneous matrix ``T_target_source`` that maps points expressed in
  ``source`` into ``target``: ``p_target = T_target_source @ p_source``. Composition cancels
  inner frames: ``T_a_c = T_a_b @ T_b_c``.
- Quaternions are ``(x, y, z, w)``, real part LAST, as in ROS messages, TUM trajectory files and
  ``scipy.spatial.transform``. Passing ``(w, x, y, z)`` silently gives a different rotation, so
  every function that takes one says ``xyzw`` in its name.
- Tangent vectors of SE(3) are ``(rho, phi)``: translation part first, rotation part second
  (rotation vector in radians). ``se3_exp`` uses the exact closed form (left Jacobian).
- Units: meters and radians.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "skew",
    "so3_exp",
    "so3_log",
    "se3_exp",
    "se3_log",
    "make_transform",
    "invert_transform",
    "transform_points",
    "quat_xyzw_to_matrix",
    "matrix_to_quat_xyzw",
    "rotation_angle_rad",
    "project_to_so3",
]

_EPS = 1e-9


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix ``[v]_x`` so that ``skew(a) @ b == np.cross(a, b)``.

    Shape: v (3,) -> (3, 3).
    """
    x, y, z = np.asarray(v, dtype=np.float64)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def so3_exp(phi: np.ndarray) -> np.ndarray:
    """Rotation matrix of the rotation vector ``phi`` (axis * angle, radians). Shape: (3,) -> (3, 3)."""
    phi = np.asarray(phi, dtype=np.float64)
    theta = float(np.linalg.norm(phi))
    K = skew(phi)
    if theta < 1e-8:
        return np.eye(3) + K + 0.5 * K @ K
    a = np.sin(theta) / theta
    b = (1.0 - np.cos(theta)) / theta**2
    return np.eye(3) + a * K + b * K @ K


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vector (radians) of a rotation matrix; inverse of :func:`so3_exp`. Shape: (3, 3) -> (3,)."""
    R = np.asarray(R, dtype=np.float64)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    sin_theta = 0.5 * float(np.linalg.norm(w))
    cos_theta = 0.5 * (float(np.trace(R)) - 1.0)
    theta = float(np.arctan2(sin_theta, cos_theta))  # well conditioned at 0 and at pi, unlike arccos
    if theta < 1e-6:
        return 0.5 * w
    if sin_theta > 1e-6:
        return w * (theta / (2.0 * sin_theta))
    # Near pi the antisymmetric part vanishes: (R + R^T)/2 = cos(theta) I + (1 - cos(theta)) a a^T.
    aaT = (0.5 * (R + R.T) - cos_theta * np.eye(3)) / (1.0 - cos_theta)
    i = int(np.argmax(np.diag(aaT)))
    axis = aaT[i] / np.sqrt(max(aaT[i, i], _EPS))
    axis /= np.linalg.norm(axis)
    if np.dot(axis, w) < 0:
        axis = -axis
    return axis * theta


def _so3_left_jacobian(phi: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(phi))
    K = skew(phi)
    if theta < 1e-8:
        return np.eye(3) + 0.5 * K
    a = (1.0 - np.cos(theta)) / theta**2
    b = (theta - np.sin(theta)) / theta**3
    return np.eye(3) + a * K + b * K @ K


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """4x4 transform of the twist ``xi = (rho, phi)`` (translation first). Shape: (6,) -> (4, 4)."""
    xi = np.asarray(xi, dtype=np.float64)
    rho, phi = xi[:3], xi[3:]
    T = np.eye(4)
    T[:3, :3] = so3_exp(phi)
    T[:3, 3] = _so3_left_jacobian(phi) @ rho
    return T


def se3_log(T: np.ndarray) -> np.ndarray:
    """Twist ``(rho, phi)`` of a 4x4 transform; inverse of :func:`se3_exp`. Shape: (4, 4) -> (6,)."""
    T = np.asarray(T, dtype=np.float64)
    phi = so3_log(T[:3, :3])
    rho = np.linalg.solve(_so3_left_jacobian(phi), T[:3, 3])
    return np.concatenate([rho, phi])


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 transform from rotation (3, 3) and translation (3,)."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform: ``T_b_a`` from ``T_a_b``. Shape: (..., 4, 4) -> (..., 4, 4)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    Rt = np.swapaxes(R, -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def transform_points(T_target_source: np.ndarray, points_source: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points. Shape: T (4, 4), points (N, 3) -> (N, 3)."""
    return points_source @ T_target_source[:3, :3].T + T_target_source[:3, 3]


def quat_xyzw_to_matrix(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix of a quaternion in ``(x, y, z, w)`` order (normalised first).

    Convention: real part last, as in ROS ``geometry_msgs/Quaternion`` and TUM files.
    Shape: (..., 4) -> (..., 3, 3).
    """
    q = np.asarray(q_xyzw, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty(q.shape[:-1] + (3, 3))
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - z * w)
    R[..., 0, 2] = 2 * (x * z + y * w)
    R[..., 1, 0] = 2 * (x * y + z * w)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - x * w)
    R[..., 2, 0] = 2 * (x * z - y * w)
    R[..., 2, 1] = 2 * (y * z + x * w)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def matrix_to_quat_xyzw(R: np.ndarray) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` with ``w >= 0`` of a rotation matrix. Shape: (3, 3) -> (4,)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = np.array([(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s])
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = np.array([0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s])
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = np.array([(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = np.array([(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s])
    q /= np.linalg.norm(q)
    return q if q[3] >= 0 else -q


def rotation_angle_rad(R: np.ndarray) -> float:
    """Angle (radians, in [0, pi]) of a rotation matrix."""
    return float(np.arccos(np.clip((np.trace(R) - 1.0) * 0.5, -1.0, 1.0)))


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (Frobenius norm) to a 3x3 matrix, via SVD."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt
