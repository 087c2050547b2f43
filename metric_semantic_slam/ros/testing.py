"""Helpers for tests that talk to nodes over real DDS: an isolated rclpy context that collects messages, and
the comparison of what the node suite saved with the offline pipeline on the same sequence.

Each :class:`TopicCollector` owns its own rclpy ``Context`` on a chosen ``ROS_DOMAIN_ID``, so tests can
run side by side (and beside other rclpy users in the process) without hearing each other.
:func:`offline_reference` + :func:`compare_saved_map` are the one comparison the end-to-end tests share.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["TopicCollector", "ros_env", "OfflineReference", "MapComparison", "offline_reference",
           "compare_saved_map"]


def ros_env(domain_id: int, **extra: str) -> dict[str, str]:
    """Environment for a child process on ``domain_id`` with the suite's DDS transport (:mod:`.dds`), forced:
    tests and benchmarks measure that transport whatever the shell exports."""
    from .dds import dds_environment

    env = dds_environment({**os.environ, "ROS_DOMAIN_ID": str(domain_id), "PYTHONUNBUFFERED": "1"}, force=True)
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)  # LOCALHOST would replace the transports with UDP alone
    env.update(extra)
    return env


class TopicCollector:
    """Subscribes to topics on its own context and keeps every message with its receive time.

    ``messages[topic]`` is a list of ``(receive monotonic s, msg)``. Use as a context manager.
    """

    def __init__(self, domain_id: int, topics: dict[str, type], qos: Any = None, name: str = "collector") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        from .qos import qos_profile

        from .dds import use_dds_environment

        # the transport is chosen when the process's first participant is created, from its environment
        use_dds_environment()
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(domain_id))
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[tuple[float, Any]]] = {t: [] for t in topics}
        qos = qos or qos_profile("reliable", depth=200)
        self._subs = [
            self.node.create_subscription(cls, topic, lambda m, t=topic: self.messages[t].append((time.monotonic(), m)),
                                          qos)
            for topic, cls in topics.items()
        ]

    def spin_until(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Process callbacks until ``done()`` is true or ``timeout_s`` passes; returns ``done()``."""
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.02)
        return done()

    def count(self, topic: str) -> int:
        return len(self.messages[topic])

    def close(self, timeout_s: float = 15.0) -> None:
        """Shut the collector down, waiting at most ``timeout_s`` for the DDS teardown (run_node's bound: Fast DDS
        3.2 deadlocked in participant destruction with the TCP transport of ``LARGE_DATA``, still possible when
        the environment chooses it); a stuck teardown is left behind in this process with a warning."""
        from .node_runtime import call_with_timeout

        def teardown() -> None:
            self.executor.shutdown()
            self.node.destroy_node()
            self.context.try_shutdown()

        if not call_with_timeout(teardown, timeout_s):
            warnings.warn(f"DDS teardown of the test collector did not finish in {timeout_s} s; continuing "
                          "without it", RuntimeWarning, stacklevel=2)

    def __enter__(self) -> "TopicCollector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class OfflineReference:
    """What the offline pipeline makes of a sequence (ground-truth poses and labels, raw depth).

    Shapes: ``stamps_s`` (N,), ``T_world_camera`` (N, 4, 4), ``mesh_vertices_m`` (V, 3) in the world frame,
    ``mesh_classes`` (V,); ``scene_graph`` is the JSON dict the scene-graph node's builder makes of the map.
    """

    stamps_s: np.ndarray
    T_world_camera: np.ndarray
    mesh_vertices_m: np.ndarray
    mesh_classes: np.ndarray
    scene_graph: dict


@dataclass
class MapComparison:
    """A saved suite output folder measured against an :class:`OfflineReference`.

    ``frames``: trajectory rows saved; ``all_at_reference_stamps``: every row's stamp is a reference stamp
    (1 us); ``max_position_error_m``: against the reference pose at that stamp; ``vertex_count_ratio``:
    saved / reference; ``p99_saved_to_ref_m`` / ``p99_ref_to_saved_m``: 99th percentile nearest-vertex
    distances; ``fscore``: mesh F-score between the vertex sets at ``threshold_m``; ``class_agreement``:
    fraction of saved vertices whose class equals the nearest reference vertex's; ``objects_*``: scene-graph
    objects as ``(id, class_name)``.
    """

    frames: int
    all_at_reference_stamps: bool
    max_position_error_m: float
    vertex_count_ratio: float
    p99_saved_to_ref_m: float
    p99_ref_to_saved_m: float
    fscore: float
    threshold_m: float
    class_agreement: float
    objects_saved: set
    objects_ref: set

    def object_classes_differ(self) -> int:
        """How many object classes only one of the two scene graphs has."""
        return len({c for _i, c in self.objects_saved} ^ {c for _i, c in self.objects_ref})

    def objects_differ(self) -> int:
        """How many (id, class) objects only one of the two scene graphs has."""
        return len(self.objects_saved ^ self.objects_ref)


def offline_reference(sequence: str | Path, voxel_size_m: float = 0.04) -> OfflineReference:
    """Run the offline pipeline on ``sequence`` (a folder or bag) as ``msslam reconstruct SEQ --labels
    ground_truth`` configures it (ground-truth poses, raw depth, ``voxel_size_m``), and build the scene graph
    from its map with the scene-graph node's default parameters."""
    from ..core.labels import load_label_space
    from ..core.scene_graph import SceneGraphBuilder
    from ..io.sequence import open_sequence
    from ..nodes.scene_graph_node import PARAMS as SG_PARAMS
    from ..nodes.scene_graph_node import scene_graph_config
    from ..pipeline.mapping_open3d import TsdfMapperConfig
    from ..pipeline.pipeline import Pipeline, PipelineConfig
    from .node_runtime import with_runtime_params
    from .params import ParamValues

    pipe = Pipeline(PipelineConfig(odometry="ground_truth", labels="ground_truth", device="cpu",
                                   mapping=TsdfMapperConfig(voxel_size_m=voxel_size_m, truncation_voxels=4.0,
                                                            depth_max_m=5.0)))
    for frame in open_sequence(sequence):
        status = pipe.step(frame).status
        if status != "ok":
            raise ValueError(f"offline pipeline: frame {frame.index} ended with status {status!r}")
    mapper = pipe.mapper.mapper
    cloud = mapper.extract_point_cloud()
    table = [i.to_dict() for i in mapper.instances()]
    known = np.isin(cloud.instances, np.array([d["id"] for d in table], dtype=np.int64))
    params = ParamValues({s.name: s.default for s in with_runtime_params(SG_PARAMS)})
    builder = SceneGraphBuilder(load_label_space(), scene_graph_config(params))
    builder.update(cloud.points, cloud.classes, np.where(known, cloud.instances, 0), table, 0.0, None)
    stamps, poses = pipe.trajectory()
    mesh = pipe.mesh()
    return OfflineReference(np.asarray(stamps, dtype=np.float64), np.asarray(poses, dtype=np.float64),
                            np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.classes),
                            builder.graph.to_dict())


def compare_saved_map(folder: str | Path, ref: OfflineReference, threshold_m: float = 0.08) -> MapComparison:
    """Measure ``trajectory.txt``, ``mesh.ply`` and ``scene_graph.json`` in ``folder`` against ``ref``.

    Raises ValueError when a file is missing or empty.
    """
    from scipy.spatial import cKDTree

    from ..io.ply import read_ply

    folder = Path(folder)
    for name in ("trajectory.txt", "mesh.ply", "scene_graph.json"):
        if not (folder / name).is_file():
            raise ValueError(f"{folder / name} is missing")
    rows = np.atleast_2d(np.loadtxt(folder / "trajectory.txt"))
    if rows.size == 0 or len(ref.stamps_s) == 0:
        raise ValueError(f"{folder / 'trajectory.txt'} or the reference trajectory is empty")
    idx = np.clip(np.searchsorted(ref.stamps_s, rows[:, 0] - 1e-6), 0, len(ref.stamps_s) - 1)
    at_stamps = bool(np.all(np.abs(ref.stamps_s[idx] - rows[:, 0]) <= 1e-6))
    pos_err = float(np.max(np.linalg.norm(ref.T_world_camera[idx, :3, 3] - rows[:, 1:4], axis=1)))

    saved = read_ply(folder / "mesh.ply")
    v_saved = np.asarray(saved.vertices, dtype=np.float64)
    if len(v_saved) == 0 or len(ref.mesh_vertices_m) == 0:
        raise ValueError(f"{folder / 'mesh.ply'} or the reference mesh has no vertices")
    d_saved, nearest = cKDTree(ref.mesh_vertices_m).query(v_saved)
    d_ref, _ = cKDTree(v_saved).query(ref.mesh_vertices_m)
    precision, recall = float(np.mean(d_saved < threshold_m)), float(np.mean(d_ref < threshold_m))
    fscore = 2 * precision * recall / max(precision + recall, 1e-12)
    agreement = float(np.mean(np.asarray(saved.vertex_props["class"]) == ref.mesh_classes[nearest]))

    graph = json.loads((folder / "scene_graph.json").read_text())
    objects = lambda g: {(o["id"], o["class_name"]) for o in g["objects"]}  # noqa: E731
    return MapComparison(len(rows), at_stamps, pos_err, len(v_saved) / len(ref.mesh_vertices_m),
                         float(np.percentile(d_saved, 99)), float(np.percentile(d_ref, 99)), fscore, threshold_m,
                         agreement, objects(graph), objects(ref.scene_graph))
