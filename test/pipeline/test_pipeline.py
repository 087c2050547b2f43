"""The incremental pipeline on analytic scenes (no simulator needed)."""
import numpy as np
import pytest

from metric_semantic_slam.core.camera import PinholeCamera
from metric_semantic_slam.core.geometry import make_transform, so3_exp
from metric_semantic_slam.io.frame import Frame, GroundTruth
from metric_semantic_slam.pipeline.mapping_open3d import TsdfMapperConfig
from metric_semantic_slam.pipeline.pipeline import Pipeline, PipelineConfig

CAM = PinholeCamera(80, 60, 60.0, 60.0, 39.5, 29.5)
WALL_Y = 2.0  # the world plane y = 2 m, seen by cameras looking along +y


def _frame_looking_at_wall(i: int, x: float) -> Frame:
    # Optical frame: z forward -> world +y, x right -> world +x, y down -> world -z.
    R_world_camera = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]) @ so3_exp([0.05 * i, 0, 0])
    T = make_transform(R_world_camera, [x, 0.0, 1.0])
    rays_world = CAM.ray_directions().reshape(-1, 3) @ R_world_camera.T
    t = (WALL_Y - T[1, 3]) / rays_world[:, 1]
    depth = (t * 1.0).reshape(CAM.shape)  # ray_directions have z = 1, so t is the optical depth
    color = np.zeros(CAM.shape + (3,), np.uint8)
    color[..., 0] = 200
    return Frame(index=i, stamp_s=float(i), color=color, depth_m=depth.astype(np.float32), camera=CAM,
                 gt=GroundTruth(T_world_camera=T))


def test_mesh_lies_on_the_observed_plane_and_trajectory_is_kept():
    pipe = Pipeline(PipelineConfig(mapping=TsdfMapperConfig(voxel_size_m=0.02)))
    for i in range(4):
        assert pipe.step(_frame_looking_at_wall(i, 0.1 * i)).status == "ok"
    mesh = pipe.mesh()
    assert len(mesh.triangles) > 100
    assert np.abs(mesh.vertices[:, 1] - WALL_Y).max() < 0.01
    assert np.abs(mesh.colors[:, 0].astype(int) - 200).max() <= 2
    stamps, poses = pipe.trajectory()
    assert stamps.tolist() == [0.0, 1.0, 2.0, 3.0] and poses.shape == (4, 4, 4)


def test_bad_frames_are_dropped_without_touching_the_map():
    pipe = Pipeline()
    pipe.step(_frame_looking_at_wall(0, 0.0))
    before = pipe.mesh()
    no_pose = _frame_looking_at_wall(1, 0.0)
    no_pose.gt = None
    assert pipe.step(no_pose).status == "no_pose"
    nan_pose = _frame_looking_at_wall(2, 0.0)
    nan_pose.gt.T_world_camera = np.full((4, 4), np.nan)
    assert pipe.step(nan_pose).status == "bad_input"
    after = pipe.mesh()
    np.testing.assert_array_equal(before.vertices, after.vertices)
    assert pipe.counts == {"ok": 1, "no_pose": 1, "bad_input": 1}
    assert len(pipe.trajectory()[0]) == 1


def test_unknown_stage_names_are_rejected():
    with pytest.raises(ValueError, match="unknown odometry"):
        Pipeline(PipelineConfig(odometry="magic"))
    with pytest.raises(ValueError, match="unknown mapper"):
        Pipeline(PipelineConfig(mapper="magic"))
    with pytest.raises(ValueError):
        Pipeline(PipelineConfig(mapping=TsdfMapperConfig(voxel_size_m=0.0)))


def test_semantic_mapper_keeps_ground_truth_labels():
    cfg = PipelineConfig(mapper="semantic", labels="ground_truth", odometry="ground_truth",
                         mapping=TsdfMapperConfig(voxel_size_m=0.02))
    pipe = Pipeline(cfg)
    for i in range(5):
        f = _frame_looking_at_wall(0, 0.0)  # the same view: every voxel gets 5 votes
        f.index, f.stamp_s = i, float(i)
        f.gt.semantic = np.full(CAM.shape, 2, np.uint16)  # "wall"
        f.gt.instance = np.zeros(CAM.shape, np.uint16)
        assert pipe.step(f).status == "ok"
    mesh = pipe.mesh()
    assert mesh.classes is not None and len(mesh.classes) == len(mesh.vertices)
    # A class is reported once it leads by the mapper's margin; the rest stays unknown (0), never wrong.
    assert set(np.unique(mesh.classes)) <= {0, 2} and np.mean(mesh.classes == 2) > 0.8
    assert np.abs(mesh.vertices[:, 1] - WALL_Y).max() < 0.01


def test_labels_need_a_labeled_mapper():
    with pytest.raises(ValueError, match="keeps no labels"):
        Pipeline(PipelineConfig(mapper="open3d", labels="ground_truth"))
    with pytest.raises(ValueError, match="unknown labels"):
        Pipeline(PipelineConfig(labels="magic"))


def test_panoptic_label_sources_feed_the_mapper():
    """The geometric backend labels the wall (gravity from the pose); the oracle reproduces ground truth."""
    from metric_semantic_slam.pipeline.pipeline import LABEL_SOURCES, PANOPTIC_LABEL_SOURCES

    assert set(PANOPTIC_LABEL_SOURCES) <= set(LABEL_SOURCES) and {"none", "ground_truth"} <= set(LABEL_SOURCES)
    for source in ("oracle", "geometric"):
        pipe = Pipeline(PipelineConfig(labels=source, mapping=TsdfMapperConfig(voxel_size_m=0.02)))
        for i in range(3):
            f = _frame_looking_at_wall(0, 0.0)
            f.index, f.stamp_s = i, float(i)
            f.gt.semantic = np.full(CAM.shape, 2, np.uint16)
            f.gt.instance = np.zeros(CAM.shape, np.uint16)
            g = pipe._gravity_camera(f)
            np.testing.assert_allclose(g, [0.0, np.cos(0.0), 0.0], atol=1e-9)  # camera y is down
            sem, _ = pipe._labels_of(f)
            assert np.mean(sem == 2) > 0.9, source
            assert pipe.step(f).status == "ok"
        mesh = pipe.mesh()
        assert mesh.classes is not None and np.mean(mesh.classes == 2) > 0.8, source


def test_panoptic_label_source_options_are_checked():
    with pytest.raises(ValueError, match="panoptic_model"):
        Pipeline(PipelineConfig(labels="onnx"))
    with pytest.raises(ValueError, match="oracle_noise"):
        Pipeline(PipelineConfig(labels="oracle", oracle_noise=2.0))
    with pytest.raises(ValueError, match="not found"):
        Pipeline(PipelineConfig(labels="torchscript", panoptic_model="/nonexistent.pt",
                                panoptic_adapter="/nonexistent.yaml"))


def _textured_wall_frames(n: int) -> list[Frame]:
    frames = []
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 255, (CAM.height // 4 + 1, CAM.width // 4 + 1), dtype=np.uint8)
    for i in range(n):
        f = _frame_looking_at_wall(i, 0.01 * i)
        f.color[..., 1] = np.kron(pattern, np.ones((4, 4), np.uint8))[:CAM.height, :CAM.width]
        f.gt.semantic = np.full(CAM.shape, 2, np.uint16)
        f.gt.semantic[:, :20] = 5
        f.gt.instance = np.zeros(CAM.shape, np.uint16)
        frames.append(f)
    return frames


def test_labels_are_given_to_the_odometry_before_tracking():
    """With a label source the VIO sees the labels in frame.semantic; with 'none' it runs exactly as alone."""
    from metric_semantic_slam.core.odometry import VisualInertialOdometry

    for source in ("oracle", "ground_truth", "none"):
        pipe = Pipeline(PipelineConfig(odometry="vio", labels=source, mapping=TsdfMapperConfig(voxel_size_m=0.05)))
        seen = []
        track = pipe._vio.track

        def spy(frame, track=track, seen=seen):
            seen.append(None if frame.semantic is None else np.array(frame.semantic))
            return track(frame)

        pipe._vio.track = spy
        frames = _textured_wall_frames(4)
        for f in frames:
            pipe.step(f)
            assert f.semantic is None  # the caller's frame is not modified
        assert len(seen) == 4
        if source == "none":
            assert all(s is None for s in seen)
            alone = VisualInertialOdometry()
            expected = [alone.track(f).T_world_camera for f in _textured_wall_frames(4)]
            got = pipe.trajectory()[1]
            assert len(got) == 4
            np.testing.assert_array_equal(got, np.stack(expected))
        else:
            for s, f in zip(seen, frames):
                assert s is not None and s.shape == CAM.shape
                np.testing.assert_array_equal(s, f.gt.semantic)
