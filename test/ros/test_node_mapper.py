"""mapper_node as a real process over DDS (each test on its own ROS_DOMAIN_ID): posed simulated frames in -> mesh
markers, semantic cloud and instance table out; services save/load/reset/pause/resume; bad messages
dropped with the map intact (byte-identical saves); SIGINT mid-run leaves a saved map that loads back."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("rclpy")

from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from metric_semantic_slam.core.labels import load_label_space  # noqa: E402
from metric_semantic_slam.ros.camera_info import camera_to_camera_info  # noqa: E402
from metric_semantic_slam.ros.image_conversion import numpy_to_image  # noqa: E402
from metric_semantic_slam.ros.markers import ADD, DELETEALL, TRIANGLE_LIST  # noqa: E402
from metric_semantic_slam.ros.node_runtime import NodeProcess  # noqa: E402
from metric_semantic_slam.ros.pointcloud import pointcloud2_to_cloud  # noqa: E402
from metric_semantic_slam.ros.qos import qos_profile  # noqa: E402
from metric_semantic_slam.ros.stamps import seconds_to_stamp, stamp_to_ns  # noqa: E402
from metric_semantic_slam.ros.testing import TopicCollector, ros_env  # noqa: E402
from metric_semantic_slam.ros.tf import matrix_to_pose  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]

NS = "/t"
MESH, FULL, CLOUD, INST, STATUS = (f"{NS}/map/mesh", f"{NS}/map/mesh_full", f"{NS}/map/semantic_cloud",
                                   f"{NS}/map/instances", f"{NS}/mapper/status")
INPUTS = {"depth": ("depth/image_raw", Image), "color": ("color/image_raw", Image),
          "info": ("color/camera_info", CameraInfo), "odom": ("odometry", Odometry),
          "semantic": ("panoptic/semantic", Image), "instance": ("panoptic/instance", Image)}
NODE_PARAMS = {"depth_topic": "depth/image_raw", "device": "cpu", "mesh_period_s": 0.0, "cloud_period_s": 0.0,
               "queue_size": 50, "status_period_s": 0.3, "drop_log_period_s": 0.0, "mesh_color_mode": "class"}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from metric_semantic_slam.io.sequence import open_sequence
    from metric_semantic_slam.sim.simulate import SimConfig, simulate_sequence

    root = tmp_path_factory.mktemp("sim") / "seq"
    simulate_sequence(root, SimConfig(seed=1, frames=10, width=160, height=120), write_bag=False, verbose=False)
    return list(open_sequence(root))


class Rig:
    """A mapper process, a collector of its outputs, publishers of its inputs and service clients."""

    def __init__(self, domain: int, tmp_path, **params):
        self.node = NodeProcess("metric_semantic_slam.nodes.mapper_node", "mapper", ros_env(domain), namespace="t",
                                parameters={**NODE_PARAMS, "output_dir": str(tmp_path / "out"), **params},
                                log_path=tmp_path / "mapper.log")
        self.col = TopicCollector(domain, {MESH: MarkerArray, FULL: MarkerArray, CLOUD: PointCloud2, INST: String,
                                           STATUS: String})
        n = self.col.node
        self.pubs = {k: n.create_publisher(t, f"{NS}/{name}", qos_profile("reliable"))
                     for k, (name, t) in INPUTS.items()}
        self.clients: dict[str, object] = {}
        self.info_sent = False
        assert self.node.wait_for_log("ready", 60), self.node.log()
        assert self.col.spin_until(lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values()), 20), \
            self.node.log()

    def send(self, frame, stamp_s=None, depth=None, pose=None, semantic=None, depth_encoding="32FC1",
             info=True, odom=True):
        st = seconds_to_stamp(frame.stamp_s if stamp_s is None else stamp_s)
        if info:
            self.pubs["info"].publish(camera_to_camera_info(frame.camera, stamp=st, frame_id="cam"))
            if not self.info_sent:
                # the first camera_info has its own reader: on a loaded machine the first frame's synchronized
                # set once arrived before it, and the node drops a frame without intrinsics (by design)
                self.info_sent = True
                self.col.spin_until(lambda: False, 1.0)
        d = frame.depth_m.astype(np.float32) if depth is None else depth
        self.pubs["depth"].publish(numpy_to_image(d, depth_encoding, stamp=st, frame_id="cam"))
        self.pubs["color"].publish(numpy_to_image(frame.color, "rgb8", stamp=st, frame_id="cam"))
        if odom:
            self.send_pose(st, matrix_to_pose(frame.gt.T_world_camera) if pose is None else pose)
        sem = frame.gt.semantic.astype(np.uint16) if semantic is None else semantic
        received = self.received()
        self.pubs["semantic"].publish(numpy_to_image(sem, "mono16", stamp=st, frame_id="cam"))
        self.pubs["instance"].publish(numpy_to_image(frame.gt.instance.astype(np.uint16), "mono16", stamp=st,
                                                     frame_id="cam"))
        # pace on the synchronizer: topics may arrive out of order across readers, and a set completed
        # after a newer one is discarded by design (a live stream wants the newest)
        self.col.spin_until(lambda: self.received() > received, 10)

    def send_pose(self, stamp, pose) -> None:
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id = stamp, "map"
        odom.pose.pose = pose
        self.pubs["odom"].publish(odom)

    def received(self) -> int:
        """Synchronized sets the node queued."""
        return self.status().get("queues", {}).get("frames", {}).get("received", 0)

    def status(self) -> dict:
        return json.loads(self.col.messages[STATUS][-1][1].data) if self.col.count(STATUS) else {}

    def integrated(self) -> int:
        """Frames the mapper fused (the integrate stage also times the calls the mapper rejects)."""
        return self.status().get("latency", {}).get("integrated", {}).get("count", 0)

    def drops(self) -> dict:
        return self.status().get("drops", {})

    def wait_integrated(self, n: int, timeout_s: float = 60) -> None:
        assert self.col.spin_until(lambda: self.integrated() >= n, timeout_s), (self.status(), self.node.log()[-3000:])

    def call(self, service: str, timeout_s: float = 60):
        # one client per service, kept: a new client's endpoints must be discovered again, which took
        # over 10 s once on a loaded machine (the service itself had answered a moment before)
        if service not in self.clients:
            self.clients[service] = self.col.node.create_client(Trigger, f"{NS}/{service}")
        cli = self.clients[service]
        assert cli.wait_for_service(timeout_sec=30), service
        fut = cli.call_async(Trigger.Request())
        assert self.col.spin_until(fut.done, timeout_s), f"{service} did not answer"
        return fut.result()

    def settle(self, seconds: float = 1.0) -> None:
        self.col.spin_until(lambda: False, seconds)

    def close(self) -> int:
        self.col.close()
        return self.node.stop(timeout_s=60)


def _idle_and_save(rig: Rig) -> bytes:
    """Wait until the worker has nothing left, save, return the map file's bytes."""
    before = -1
    while before != rig.integrated():
        before = rig.integrated()
        rig.settle(1.0)
    res = rig.call("save_map")
    assert res.success, res.message
    return open(json.loads(res.message)["map"], "rb").read()


def test_frames_make_mesh_cloud_and_instances_and_services_work(frames, tmp_path):
    labels = load_label_space()
    rig = Rig(90, tmp_path, map_file=str(tmp_path / "keep" / "map.npz"))
    try:
        for f in frames[:5]:
            rig.send(f)
        rig.wait_integrated(5)
        assert rig.col.spin_until(lambda: rig.col.count(INST) >= 1 and rig.col.count(MESH) >= 1, 30)

        # mesh: per-block TRIANGLE_LIST markers in frame map, class-colored, inside the room
        markers = [m for _t, arr in rig.col.messages[MESH] for m in arr.markers]
        adds = [m for m in markers if m.action == ADD]
        assert adds and all(m.type == TRIANGLE_LIST and m.header.frame_id == "map" for m in adds)
        assert all(len(m.points) % 3 == 0 and len(m.points) == len(m.colors) for m in adds)
        pts = np.array([[p.x, p.y, p.z] for m in adds for p in m.points])
        cols = np.array([[c.r, c.g, c.b] for m in adds for c in m.colors])
        assert len(pts) > 300
        lut = labels.color_table() / 255.0
        dist = np.abs(cols[:, None, :] - lut[None, :, :]).sum(-1).min(1)
        assert dist.max() < 1e-3, "class-colored mesh carries a color that is no class color"
        # the camera sees the room from inside: vertices lie within a few meters of it
        cam = np.stack([f.gt.T_world_camera[:3, 3] for f in frames[:5]])
        assert np.linalg.norm(pts - cam.mean(0), axis=1).max() < 8.0

        # cloud + instances: same stamp, attributes consistent with the label space and the table
        cloud_msg = rig.col.messages[CLOUD][-1][1]
        matching = [json.loads(m.data) for _t, m in rig.col.messages[INST]
                    if json.loads(m.data)["stamp_ns"] == stamp_to_ns(cloud_msg.header.stamp)]
        assert matching, "no instance table with the cloud's stamp"
        cloud = pointcloud2_to_cloud(cloud_msg)
        assert len(cloud.points) > 300 and cloud_msg.header.frame_id == "map"
        present = set(np.unique(cloud.classes).tolist())
        assert present <= set(lab.id for lab in labels.labels)
        assert {labels.id_of("floor"), labels.id_of("wall")} & present
        table_ids = {d["id"] for d in matching[-1]["instances"]}
        assert table_ids and set(np.unique(cloud.instances[cloud.instances > 0]).tolist()) <= table_ids
        gt_sem = np.concatenate([f.gt.semantic.ravel() for f in frames[:5]])
        assert not (present - set(np.unique(gt_sem).tolist()) - {0}), "cloud has classes the input never had"

        # bad input on every stream is dropped and leaves the map byte-identical
        saved = _idle_and_save(rig)
        (tmp_path / "keep").mkdir()
        shutil.copy(tmp_path / "out" / "map.npz", tmp_path / "keep" / "map.npz")
        f = frames[5]
        n_before = rig.integrated()
        nan_pose = matrix_to_pose(f.gt.T_world_camera)
        nan_pose.position.x = float("nan")
        zero_q = matrix_to_pose(f.gt.T_world_camera)
        zero_q.orientation.x = zero_q.orientation.y = zero_q.orientation.z = zero_q.orientation.w = 0.0
        bad_sem = f.gt.semantic.astype(np.uint16).copy()
        bad_sem[:5, :5] = 999
        t = f.stamp_s  # bad sets 0.1 s apart (> sync slop): each is synchronized as one set
        rig.send(f, stamp_s=t + 0.1, pose=nan_pose)
        rig.send(f, stamp_s=t + 0.2, pose=zero_q)
        rig.send(f, stamp_s=t + 0.3, semantic=bad_sem)
        rig.send(f, stamp_s=t + 0.4, depth=f.depth_m[:60].astype(np.float32))  # wrong size
        rig.send(f, stamp_s=t + 0.5, depth=np.full(f.depth_m.shape, np.nan, np.float32))  # no valid depth
        rig.send(f, stamp_s=t + 0.6, depth=np.zeros((120, 160), np.uint8), depth_encoding="mono8")  # encoding
        reasons = ("bad_pose", "rejected_by_mapper", "size_mismatch", "bad_image")
        assert rig.col.spin_until(lambda: all(r in rig.drops() for r in reasons)
                                  and sum(rig.drops().values()) >= 6, 60), (rig.drops(), rig.node.log()[-3000:])
        # (sent after the others: a set older than one the synchronizer already emitted never leaves it)
        rig.send(f, stamp_s=frames[0].stamp_s)  # stamp going backwards
        assert rig.col.spin_until(lambda: "stamp_backwards" in rig.drops(), 30), rig.drops()
        assert rig.node.alive() and rig.integrated() == n_before
        assert _idle_and_save(rig) == saved, "a dropped message changed the map"

        # pause: frames are not integrated; resume: they are again
        assert rig.call("pause").success
        rig.send(frames[6], stamp_s=t + 1.0)
        assert rig.col.spin_until(lambda: rig.drops().get("paused", 0) >= 1, 30)
        assert _idle_and_save(rig) == saved
        assert rig.call("resume").success
        rig.send(frames[7], stamp_s=t + 1.1)
        rig.wait_integrated(n_before + 1)
        assert _idle_and_save(rig) != saved

        # reset: an empty map, announced with DELETEALL on the latched full mesh
        n_full = rig.col.count(FULL)
        assert rig.call("reset").success
        assert rig.col.spin_until(lambda: rig.col.count(FULL) > n_full, 20)
        full = rig.col.messages[FULL][-1][1].markers
        assert full[0].action == DELETEALL and len(full) == 1

        # load_map: the saved map comes back whole (same bytes when saved again)
        res = rig.call("load_map")
        assert res.success, res.message
        assert rig.col.spin_until(lambda: rig.col.count(FULL) > n_full + 1, 30)
        full = rig.col.messages[FULL][-1][1].markers
        assert full[0].action == DELETEALL and sum(len(m.points) for m in full[1:]) > 300
        assert _idle_and_save(rig) == saved
    finally:
        code = rig.close()
    assert code == 0, rig.node.log()[-3000:]


def test_sigint_mid_run_leaves_a_saved_map_that_loads(frames, tmp_path):
    from metric_semantic_slam.core.mapping import SemanticVoxelMapper
    from metric_semantic_slam.io.trajectory import read_tum_trajectory

    rig = Rig(91, tmp_path, queue_size=2)
    try:
        for f in frames[:3]:
            rig.send(f)
        rig.wait_integrated(1)
        for f in frames[3:]:  # still streaming when the signal comes
            rig.send(f)
    finally:
        rig.col.close()
        code = rig.node.stop(timeout_s=90)
    assert code == 0, rig.node.log()[-3000:]
    assert "saved at shutdown" in rig.node.log()
    out = tmp_path / "out"
    mapper = SemanticVoxelMapper.load(out / "map.npz", device="cpu")
    assert mapper.num_blocks > 0 and mapper.frames_integrated >= 1
    mesh = mapper.extract_mesh()
    assert len(mesh.triangles) > 100
    traj = read_tum_trajectory(out / "trajectory.txt")
    assert len(traj.stamps_s) == mapper.frames_integrated
    gt = {round(f.stamp_s, 6): f.gt.T_world_camera for f in frames}
    for t, T in zip(traj.stamps_s, traj.T_world_camera):
        np.testing.assert_allclose(T, gt[round(float(t), 6)], atol=1e-6)
    assert (out / "mesh.ply").is_file()
    # msslam render: the saved map as a PNG, headless (classes drawn in their colors)
    from PIL import Image as PilImage

    from metric_semantic_slam.cli.main import main as msslam

    assert msslam(["render", str(out / "map.npz"), "--output", str(tmp_path / "pic.png"), "--color", "class",
                   "--width", "160", "--height", "120"]) == 0
    pic = np.asarray(PilImage.open(tmp_path / "pic.png"))
    assert pic.shape == (120, 160, 3) and (pic != 255).any(axis=2).mean() > 0.1
    assert msslam(["render", str(tmp_path / "missing.npz"), "--output", str(tmp_path / "x.png")]) == 2


def test_buffered_poses_place_frames_between_them(frames, tmp_path):
    """pose_max_gap_s > 0: odometry every third frame; the frames between take the interpolated pose, a frame
    waits for the later pose, and one with no pose after it is dropped as no_pose."""
    from metric_semantic_slam.io.trajectory import Trajectory, interpolate_poses, read_tum_trajectory

    rig = Rig(94, tmp_path, pose_max_gap_s=0.2, pose_wait_s=3.0)
    try:
        posed = frames[0:10:3]  # frames 0, 3, 6, 9
        # the poses must be in the buffer before the frames come: under load the mapper's reader can match
        # the writer after the first poses went out (volatile: lost), and then no frame has an earlier pose.
        # Sent again until the status shows them (a pose with a known stamp replaces itself).
        def buffered() -> int:
            return rig.status().get("poses", {}).get("buffered", 0)

        for _ in range(10):
            for f in posed[:-1]:
                rig.send_pose(seconds_to_stamp(f.stamp_s), matrix_to_pose(f.gt.T_world_camera))
            if rig.col.spin_until(lambda: buffered() >= 3, 3):
                break
        assert buffered() == 3, rig.status()
        for f in frames[:9]:
            rig.send(f, odom=False)
        rig.settle(0.5)  # frames 7 and 8 are waiting for the pose of frame 9
        rig.send_pose(seconds_to_stamp(posed[-1].stamp_s), matrix_to_pose(posed[-1].gt.T_world_camera))
        rig.wait_integrated(9)
        rig.send(frames[9], stamp_s=frames[9].stamp_s + 1.0, odom=False)  # no pose will ever follow it
        assert rig.col.spin_until(lambda: rig.drops().get("no_pose", 0) >= 1, 30), rig.drops()
        assert rig.integrated() == 9 and rig.node.alive()
        # the wait for a later pose is its own stage (frames 7 and 8 waited ~0.5 s), not part of decoding
        stages = rig.status()["stages"]
        assert stages["pose_wait"]["count"] == 10 and stages["pose_wait"]["max_ms"] > 300, stages
        assert stages["decode"]["max_ms"] < 300, stages
        _idle_and_save(rig)
        traj = read_tum_trajectory(tmp_path / "out" / "trajectory.txt")
        expected, ok = interpolate_poses(Trajectory(np.array([f.stamp_s for f in posed]),
                                                    np.stack([f.gt.T_world_camera for f in posed])),
                                         np.array([f.stamp_s for f in frames[:9]]), max_gap_s=0.2)
        assert ok.all() and len(traj) == 9
        assert np.allclose(traj.stamps_s, [f.stamp_s for f in frames[:9]], atol=1e-6)
        assert np.allclose(traj.T_world_camera, expected, atol=1e-5)
        assert not np.allclose(traj.T_world_camera[1], frames[1].gt.T_world_camera, atol=1e-9)  # interpolated
    finally:
        rig.close()


@pytest.mark.parametrize("reset_on_time_reset,domain", [(False, 95), (True, 96)])
def test_a_looping_bag_restarts_the_map_only_when_asked(frames, tmp_path, reset_on_time_reset, domain):
    from metric_semantic_slam.core.mapping import SemanticVoxelMapper
    from metric_semantic_slam.io.trajectory import read_tum_trajectory

    rig = Rig(domain, tmp_path, reset_on_time_reset=reset_on_time_reset)
    try:
        first = [100.0 + 0.1 * i for i in range(3)]   # the first pass
        again = [1.0 + 0.1 * i for i in range(2)]     # the bag looped: stamps jump back by ~99 s
        for f, t in zip(frames[:3], first):
            rig.send(f, stamp_s=t)
        rig.wait_integrated(3)
        for f, t in zip(frames[3:5], again):
            rig.send(f, stamp_s=t)
        rig.wait_integrated(5)
        saved = json.loads(rig.call("save_map").message)
        log = rig.node.log()
    finally:
        code = rig.close()
    assert code == 0, log[-3000:]
    stamps = read_tum_trajectory(saved["trajectory"]).stamps_s
    mapper = SemanticVoxelMapper.load(saved["map"], device="cpu")
    if reset_on_time_reset:
        np.testing.assert_allclose(stamps, again)
        assert mapper.frames_integrated == 2 and "the map starts over" in log
    else:
        np.testing.assert_allclose(np.sort(stamps), sorted(first + again))  # the file is in stamp order
        assert mapper.frames_integrated == 5 and "the map starts over" not in log
