"""Photometric tracking under a global lighting change: the affine brightness fit, CPU and torch paths."""
import numpy as np
import torch

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import se3_exp, se3_log
from metric_semantic_slam.core.odometry.dense_terms_np import fit_brightness_affine
from metric_semantic_slam.core.odometry.pyramid import build_pyramid, rgb_to_intensity
from metric_semantic_slam.core.odometry.rgbd_tracker import RgbdTracker, TrackerConfig
from metric_semantic_slam.core.odometry.synthetic import box_room, render_planes

CAM = PinholeCamera(160, 120, 130.0, 130.0, 79.5, 59.5)
T1 = se3_exp(np.array([0.03, -0.02, 0.04, 0.02, -0.03, 0.015]))


def test_affine_fit_recovers_gain_and_offset_despite_outliers():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0.1, 0.9, 2000)
    cur = 1.3 * ref - 0.05 + rng.normal(0, 0.005, ref.size)
    cur[:200] = rng.uniform(0, 1, 200)  # 10% occluded / specular samples
    gain, offset = fit_brightness_affine(ref, cur)
    assert abs(gain - 1.3) < 0.01 and abs(offset + 0.05) < 0.005
    assert fit_brightness_affine(np.full(100, 0.5), np.full(100, 0.7)) == (1.0, 0.0)  # no spread: no fit
    assert fit_brightness_affine(ref[:5], cur[:5]) == (1.0, 0.0)                      # too few samples


def test_lighting_change_is_not_read_as_motion_on_both_paths():
    def pyr(T, brightness):
        d, c, _ = render_planes(CAM, T, box_room(), brightness=brightness)
        return build_pyramid(rgb_to_intensity(c), torch.as_tensor(d), CAM, 3)

    ref, cur = pyr(np.eye(4), 1.0), pyr(T1, 0.7)  # 30% darker
    errs = {}
    for affine in (False, True):
        for fast in (True, False):
            # photometric only: ICP would hide what the brightness does to the pose
            tracker = RgbdTracker(TrackerConfig(iterations=(6, 6, 8), max_points=3000, use_icp=False,
                                                rgb_affine_compensation=affine))
            tracker.cpu_fast_path = fast
            T = tracker.track(ref, cur, np.eye(4)).T_ref_cur
            errs[(affine, fast)] = (T, np.linalg.norm(se3_log(np.linalg.inv(T1) @ T)))
    assert errs[(True, True)][1] < 2e-3 and errs[(True, False)][1] < 2e-3
    assert np.allclose(errs[(True, True)][0], errs[(True, False)][0], atol=5e-4)  # numpy == torch
    assert errs[(False, True)][1] > 3 * errs[(True, True)][1]  # without the fit the change biases the pose
