"""The simulator's ``fast_rotation`` motion: TUM fr1_rpy-like shakes on top of the unchanged walk."""
import argparse

import numpy as np
import pytest

from metric_semantic_slam.cli import simulate as cli_simulate
from metric_semantic_slam.core.geometry import so3_log
from metric_semantic_slam.sim.imu import DEFAULT_T_CAMERA_IMU, imu_kinematics
from metric_semantic_slam.sim.scene import generate_world
from metric_semantic_slam.sim.simulate import SimConfig
from metric_semantic_slam.sim.trajectory import MOTIONS, make_trajectory, rotation_shakes

DURATION_S = 10.0


@pytest.fixture(scope="module")
def world():
    return generate_world(3, with_person=False)


def test_smooth_is_the_default_and_fast_rotation_only_adds_rotation(world):
    default = make_trajectory(world, duration_s=DURATION_S, seed=3)
    smooth = make_trajectory(world, duration_s=DURATION_S, seed=3, motion="smooth")
    fast = make_trajectory(world, duration_s=DURATION_S, seed=3, motion="fast_rotation")
    t = np.linspace(0.0, DURATION_S, 601)
    P0, P1, P2 = (tr.T_world_camera_batch(t) for tr in (default, smooth, fast))
    assert default.shakes.shape == (0, 6) and np.array_equal(P0, P1)  # default: the earlier trajectory
    assert np.array_equal(P2[:, :3, 3], P1[:, :3, 3])                  # the same walk ...
    dang = np.array([np.linalg.norm(so3_log(a[:3, :3].T @ b[:3, :3])) for a, b in zip(P1, P2)])
    assert dang.max() > 0.1                                            # ... shaken
    with pytest.raises(ValueError, match="motion"):
        make_trajectory(world, duration_s=DURATION_S, seed=3, motion="jerky")
    assert MOTIONS == ("smooth", "fast_rotation")


def test_fast_rotation_rates_are_tum_rpy_like_and_smooth(world):
    fast = make_trajectory(world, duration_s=DURATION_S, seed=3, motion="fast_rotation")
    assert set(fast.shakes[:, 0].astype(int)) == {0, 1, 2}  # yaw, pitch and roll bursts
    assert len(fast.shakes) >= 5
    t = np.arange(0.0, DURATION_S, 1 / 100)
    rate = np.linalg.norm(imu_kinematics(fast, DEFAULT_T_CAMERA_IMU, t).omega_imu, axis=1)
    assert 1.5 < rate.max() < 3.5
    assert np.mean(rate > 1.0) > 0.1  # much of the time, not one spike
    smooth = make_trajectory(world, duration_s=DURATION_S, seed=3)
    assert np.linalg.norm(imu_kinematics(smooth, DEFAULT_T_CAMERA_IMU, t).omega_imu, axis=1).max() < 1.0
    # smooth in time: the rate changes by little between 100 Hz samples (no jumps)
    assert np.abs(np.diff(rate)).max() < 1.0
    # the bursts are their own random stream: the same for a seed, different across seeds
    assert np.array_equal(rotation_shakes(DURATION_S, 3), rotation_shakes(DURATION_S, 3))
    assert not np.array_equal(rotation_shakes(DURATION_S, 3), rotation_shakes(DURATION_S, 4))


def test_config_and_cli_option():
    assert "motion" not in SimConfig().to_dict()  # default runs keep their sim_config.json byte for byte
    assert SimConfig(motion="fast_rotation").to_dict()["motion"] == "fast_rotation"
    with pytest.raises(ValueError, match="motion"):
        SimConfig(motion="jerky")
    parser = argparse.ArgumentParser()
    cli_simulate.add_parser(parser.add_subparsers(dest="verb"))
    assert parser.parse_args(["simulate", "--output", "/x"]).motion == "smooth"
    assert parser.parse_args(["simulate", "--output", "/x", "--motion", "fast_rotation"]).motion == "fast_rotation"
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--output", "/x", "--motion", "jerky"])
