"""A walking person: an articulated low-poly body pacing back and forth along a straight segment.

The body (torso, head, two legs, two arms; about 1.7 m tall) is built from primitives in a body
frame (x forward, y left, z up, origin between the feet on the floor). Legs and arms swing about
the hip / shoulder axis in proportion to the walking speed, so the limbs come to rest at the
turning points, where the body turns smoothly round.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metric_semantic_slam.sim.primitives import (box_mesh, pose_matrix, sphere_mesh, transform_mesh)
from metric_semantic_slam.sim.world import SceneObject, TriangleMesh

__all__ = ["PersonState", "WalkingPerson"]

# Body dimensions (m), chosen for a ~1.72 m adult.
_HIP_Z = 0.88
_LEG = (0.14, 0.14, 0.84)
_TORSO = (0.24, 0.40, 0.60)
_ARM = (0.09, 0.09, 0.60)
_SHOULDER_Z = _HIP_Z + _TORSO[2] - 0.04
_HEAD_R = 0.11
_HEAD_Z = _HIP_Z + _TORSO[2] + 0.02 + _HEAD_R
_SWING_RAD = np.deg2rad(25.0)
# Near-triangular position profile: u = asin(k sin(w t)) / asin(k) has nearly constant speed
# between smooth turnarounds; k < 1 keeps it infinitely smooth.
_K = 0.95


@dataclass(frozen=True)
class PersonState:
    """Where the person is at one time. Shape: xy (2,)."""

    xy: np.ndarray
    yaw_rad: float
    speed_m_s: float
    swing_rad: float


@dataclass(frozen=True)
class WalkingPerson:
    """A person walking from ``start_xy`` to ``end_xy`` and back, peak speed ``peak_speed_m_s``.

    Materials are indices into ``World.materials`` for skin, shirt and trousers.
    Shape: start_xy (2,), end_xy (2,).
    """

    start_xy: np.ndarray
    end_xy: np.ndarray
    instance_id: int
    class_id: int
    skin_material: int
    shirt_material: int
    trousers_material: int
    peak_speed_m_s: float = 1.2
    step_hz: float = 0.9
    class_name: str = "person"

    def __post_init__(self) -> None:
        if np.linalg.norm(np.asarray(self.end_xy) - np.asarray(self.start_xy)) < 0.5:
            raise ValueError("walking segment must be at least 0.5 m long")
        if not 0 < self.peak_speed_m_s < 3:
            raise ValueError(f"peak_speed_m_s must be in (0, 3), got {self.peak_speed_m_s}")

    @property
    def length_m(self) -> float:
        return float(np.linalg.norm(np.asarray(self.end_xy) - np.asarray(self.start_xy)))

    @property
    def _omega(self) -> float:
        # Peak of d/dt [L/2 * asin(k sin(w t)) / asin(k)] is L k w / (2 asin k).
        return 2.0 * self.peak_speed_m_s * np.arcsin(_K) / (self.length_m * _K)

    def state_at(self, t_s: float) -> PersonState:
        """Position, heading, signed speed along the segment and limb swing angle at ``t_s``.

        Shape: () -> PersonState with xy (2,).
        """
        w = self._omega
        s = np.sin(w * t_s)
        u = 0.5 + 0.5 * np.arcsin(_K * s) / np.arcsin(_K)  # fraction of the way from start to end
        du = 0.5 * _K * w * np.cos(w * t_s) / (np.sqrt(1.0 - (_K * s) ** 2) * np.arcsin(_K))
        start, end = np.asarray(self.start_xy, float), np.asarray(self.end_xy, float)
        v = float(du * self.length_m)
        seg_yaw = float(np.arctan2(*(end - start)[::-1]))
        # Turn smoothly through 180 deg while the speed crosses zero instead of snapping round.
        turn = 0.5 * np.pi * (1.0 - np.tanh(v / 0.15))
        swing = _SWING_RAD * min(abs(v) / self.peak_speed_m_s, 1.0) * np.sin(2 * np.pi * self.step_hz * t_s)
        return PersonState(start + u * (end - start), seg_yaw + turn, v, float(swing))

    def mesh_at(self, t_s: float) -> TriangleMesh:
        """Body mesh in the world at ``t_s``; every face carries the person's class and instance.

        Shape: -> TriangleMesh (7 closed parts).
        """
        st = self.state_at(t_s)
        lab = dict(class_id=self.class_id, instance_id=self.instance_id)
        parts = [
            box_mesh(_TORSO, (0.0, 0.0, _HIP_Z + _TORSO[2] / 2), material=self.shirt_material, **lab),
            sphere_mesh(_HEAD_R, (0.0, 0.0, _HEAD_Z), material=self.skin_material, **lab),
        ]
        for side, sign in ((1.0, 1.0), (-1.0, -1.0)):
            leg = box_mesh(_LEG, (0.0, 0.0, -_LEG[2] / 2), material=self.trousers_material, **lab)
            parts.append(transform_mesh(leg, _limb_pose((0.0, side * 0.1, _HIP_Z), sign * st.swing_rad)))
            arm = box_mesh(_ARM, (0.0, 0.0, -_ARM[2] / 2), material=self.shirt_material, **lab)
            y_arm = side * (_TORSO[1] / 2 + _ARM[1] / 2 + 0.01)
            parts.append(transform_mesh(arm, _limb_pose((0.0, y_arm, _SHOULDER_Z), -sign * 0.8 * st.swing_rad)))
        body = TriangleMesh.concatenate(parts)
        return transform_mesh(body, pose_matrix((st.xy[0], st.xy[1], 0.0), st.yaw_rad))

    def object_at(self, t_s: float) -> SceneObject:
        """Gravity-aligned box tightly bounding the body at ``t_s`` (``is_dynamic=True``).

        Shape: () -> SceneObject with center (3,), extents (3,).
        """
        st = self.state_at(t_s)
        v = self.mesh_at(t_s).vertices
        c, s = np.cos(st.yaw_rad), np.sin(st.yaw_rad)
        d = v[:, :2] - st.xy
        local = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], v[:, 2]])
        lo, hi = local.min(axis=0), local.max(axis=0)
        mid = 0.5 * (lo + hi)
        center = np.array([st.xy[0] + c * mid[0] - s * mid[1], st.xy[1] + s * mid[0] + c * mid[1], mid[2]])
        return SceneObject(self.instance_id, self.class_id, self.class_name, center, float(st.yaw_rad),
                           hi - lo, front_local=np.array([1.0, 0.0, 0.0]), support_id=None, is_dynamic=True)


def _limb_pose(pivot, angle_rad: float) -> np.ndarray:
    # Limb hangs along -z from its pivot and swings about the body's y (hip / shoulder) axis.
    T = np.eye(4)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    T[:3, :3] = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    T[:3, 3] = pivot
    return T
