"""Dynamic-class masking: a large moving object labelled as a dynamic class must not drag the odometry."""
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import make_transform, so3_exp
from metric_semantic_slam.core.odometry import VioConfig, VisualInertialOdometry
from metric_semantic_slam.core.odometry.synthetic import box_room, render_planes
from metric_semantic_slam.io.frame import Frame

CAM = PinholeCamera(160, 120, 120.0, 120.0, 79.5, 59.5)
PERSON = 19  # "person" in the default label space (is_dynamic)
N_FRAMES = 30


def _camera_pose(i: int) -> np.ndarray:
    return make_transform(so3_exp([0.0, 0.004 * i, 0.0]), [0.006 * i, 0.002 * i, 0.0])


def _render(i: int, with_person: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The box room, plus (optionally) a textured 0.6 m wide slab at z = 1.3 m walking along +x."""
    T = _camera_pose(i)
    depth, color, labels = render_planes(CAM, T, box_room())
    if not with_person:
        return depth, color, labels
    x0 = -0.7 + 0.03 * i  # 0.9 m/s at 30 fps, much faster than the camera
    rays = CAM.ray_directions() @ T[:3, :3].T
    t = (1.3 - T[2, 3]) / rays[..., 2]
    p = T[:3, 3] + rays * t[..., None]
    hit = (t > 0) & (t < depth) & (p[..., 0] > x0) & (p[..., 0] < x0 + 0.6) & (np.abs(p[..., 1]) < 1.0)
    u = p[..., 0] - x0  # texture moves with the slab
    g = 0.5 + 0.3 * np.sin(25.0 * u) * np.cos(17.0 * p[..., 1]) + 0.1 * np.sin(41.0 * u + 9.0 * p[..., 1])
    depth = np.where(hit, t, depth).astype(np.float32)
    color = np.where(hit[..., None], (np.clip(g, 0, 1) * 255).astype(np.uint8)[..., None], color)
    labels = np.where(hit, PERSON, labels).astype(np.uint16)
    return depth, color, labels


def _run(with_person: bool, labels: bool, mask: bool = True, labels_of_person_scene: bool = False) -> float:
    """Final position error (m) after ``N_FRAMES`` frames.

    ``labels_of_person_scene``: label every frame as in the scene with the slab, whatever is rendered.
    """
    vio = VisualInertialOdometry(VioConfig(mask_dynamic=mask, use_semantic=False))
    for i in range(N_FRAMES):
        d, c, lab = _render(i, with_person)
        if labels_of_person_scene:
            lab = _render(i, True)[2]
        vio.track(Frame(index=i, stamp_s=i / 30.0, color=c, depth_m=d, camera=CAM,
                        semantic=lab if labels else None))
    T_est = vio.trajectory().T_world_camera[-1]
    return float(np.linalg.norm(T_est[:3, 3] - _camera_pose(N_FRAMES - 1)[:3, 3]))


@pytest.fixture(scope="module")
def errors() -> dict[str, float]:
    return {"static": _run(False, False), "person": _run(True, False),
            "person_masked": _run(True, True),
            "person_labels_mask_off": _run(True, True, mask=False),
            "static_same_mask": _run(False, True, labels_of_person_scene=True)}


def test_the_moving_object_covers_much_of_the_view():
    fractions = [np.mean(_render(i, True)[2] == PERSON) for i in range(N_FRAMES)]
    assert min(fractions) > 0.15 and max(fractions) < 0.7


def test_masking_the_dynamic_class_removes_the_moving_object(errors):
    # Without masking the slab drags the pose (so the scene is a real test) ...
    assert errors["person"] > 0.1 and errors["person_labels_mask_off"] > 0.1, errors
    # ... with it the error is small, and the same as with the same pixels masked in the scene without the
    # slab: nothing of the moving object reaches any term (on the reference or the current side).
    assert errors["static"] < 0.003, errors
    assert errors["person_masked"] < 0.015, errors
    assert abs(errors["person_masked"] - errors["static_same_mask"]) < 0.001, errors
