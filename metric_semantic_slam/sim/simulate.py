"""Write a simulated RGB-D + IR stereo + IMU sequence folder (layout: ``docs/formats.md``).

Per frame: color (shaded, textured), noisy active depth (:mod:`.sensors`), exact depth, IR pair,
semantic and instance ground truth; per sequence: ground-truth trajectory, IMU, camera/label/config
files, the static scene mesh, the observed surface points and the objects/relations. The dynamic
(private) person is in the images (they are ground truth) but never in ``scene/``.
Deterministic for a seed: every frame draws its noise from its own generator seeded by
``(seed, frame index, stream)``, so worker threads do not change a single byte.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from ..core.camera import PinholeCamera
from ..core.geometry import invert_transform
from ..core.labels import LabelSpace, default_label_space_path, load_label_space
from ..io.ply import write_ply
from ..io.trajectory import write_tum_trajectory
from .trajectory import MOTIONS, PRESETS, make_trajectory
from .imu import DEFAULT_T_CAMERA_IMU, GRAVITY_M_S2, ImuNoiseConfig, synthesize_imu
from .render import RenderConfig, Renderer
from .sensors import (ActiveDepthConfig, DepthErrorAccumulator, DepthErrorRow, IrStereoConfig,
                      format_depth_error_table, render_ir_pair, simulate_active_depth)
from .world import CameraTrajectory, TriangleMesh, World

__all__ = ["SIM_T0_S", "DEPTH_SCALE", "SimConfig", "SimulationResult", "SurfaceSamples", "default_camera",
           "sample_surface_points",
           "simulate", "simulate_sequence"]

SIM_T0_S = 1000.0
DEPTH_SCALE = 5000.0


@dataclass(frozen=True)
class SimConfig:
    """Every option of a simulation run (written to ``sim_config.json``)."""

    seed: int = 1
    frames: int = 300
    width: int = 640
    height: int = 480
    fps: float = 30.0
    preset: str = "handheld"
    #: Motion style on top of the preset (``sim.trajectory.MOTIONS``): ``smooth`` or ``fast_rotation``.
    motion: str = "smooth"
    with_person: bool = True
    imu_rate_hz: float = 200.0
    baseline_m: float = 0.05
    depth_noise: bool = True
    lighting_variation: float = 0.0
    #: Texture contrast of the color images, in [0, 1] (see ``RenderConfig.texture_contrast``; 1 = default).
    texture_contrast: float = 1.0
    t0_s: float = SIM_T0_S
    depth_scale: float = DEPTH_SCALE
    observed_points_per_m2: float = 10000.0
    """Surface sampling density of ``scene/observed_points.ply`` (1 per cm^2) ..."""
    observed_points_max: int = 300000
    """... capped at this many points."""
    observed_tolerance_m: float = 0.025
    """A sample is observed in a frame when its depth matches that frame's exact depth this closely
    (and the depth sensor returned a value at its pixel)."""
    render: RenderConfig = field(default_factory=RenderConfig)
    depth_sensor: ActiveDepthConfig = field(default_factory=ActiveDepthConfig)
    ir: IrStereoConfig = field(default_factory=IrStereoConfig)
    imu_noise: ImuNoiseConfig = field(default_factory=ImuNoiseConfig)
    T_camera_imu: tuple[tuple[float, ...], ...] = tuple(tuple(float(x) for x in r) for r in DEFAULT_T_CAMERA_IMU)

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"image size too small: {self.width}x{self.height}")
        if not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 200.0 <= self.imu_rate_hz <= 400.0:
            raise ValueError(f"imu_rate_hz must be in [200, 400], got {self.imu_rate_hz}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {self.preset!r}")
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if not 0.0 <= self.lighting_variation <= 1.0:
            raise ValueError(f"lighting_variation must be in [0, 1], got {self.lighting_variation}")
        if not 0.0 <= self.texture_contrast <= 1.0:
            raise ValueError(f"texture_contrast must be in [0, 1], got {self.texture_contrast}")
        if not self.baseline_m > 0:
            raise ValueError(f"baseline_m must be positive, got {self.baseline_m}")

    def to_dict(self) -> dict:
        """JSON-ready dict of every option (nested configs included)."""
        d = asdict(self)
        d["T_camera_imu"] = [list(r) for r in self.T_camera_imu]
        d["ir"]["T_color_left"] = [list(r) for r in self.ir.T_color_left]
        d["depth_sensor"]["speckle_radius_px"] = list(self.depth_sensor.speckle_radius_px)
        # Written only when changed, so default runs keep their sim_config.json byte for byte.
        if self.texture_contrast == 1.0:
            d.pop("texture_contrast")
        if self.motion == "smooth":
            d.pop("motion")
        if d["render"].get("texture_contrast") == 1.0:
            d["render"].pop("texture_contrast")
        return d


@dataclass
class SimulationResult:
    """What a run produced: the folder, the measured depth-noise curve and timings (seconds)."""

    output_dir: Path
    depth_error: list[DepthErrorRow]
    timings_s: dict[str, float]


def default_camera(width: int = 640, height: int = 480) -> PinholeCamera:
    """The simulator's color camera: fx = fy = 525 at 640 px wide (scaled with width), centred.

    Shape: -> camera of (height, width) pixels.
    """
    f = 525.0 * width / 640.0
    return PinholeCamera(width=width, height=height, fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0)


@dataclass
class SurfaceSamples:
    """Points on a mesh surface. Shape: points (N, 3) float64; face (N,) int64 index of their face."""

    points: np.ndarray
    face: np.ndarray


def sample_surface_points(mesh: TriangleMesh, per_m2: float, max_points: int, rng: np.random.Generator) -> SurfaceSamples:
    """Area-uniform random points on a triangle mesh (``per_m2`` density, at most ``max_points``).

    Shape: mesh of F faces -> :class:`SurfaceSamples` with N points.
    """
    v = mesh.vertices[mesh.triangles]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
    total = float(area.sum())
    if total <= 0:
        raise ValueError("mesh has no surface area")
    n = int(min(max_points, max(1, round(total * per_m2))))
    face = rng.choice(len(area), size=n, p=area / total)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    a, b, c = 1.0 - s, s * (1.0 - r2), s * r2
    pts = a[:, None] * v[face, 0] + b[:, None] * v[face, 1] + c[:, None] * v[face, 2]
    return SurfaceSamples(pts, face.astype(np.int64))


# Frame index used for sequence-wide random streams (IMU noise, surface samples); never a real frame.
_SEQUENCE_STREAM = 1 << 30


def _frame_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), int(stream)])


def _depth_u16(depth_m: np.ndarray, scale: float) -> np.ndarray:
    d = np.rint(np.asarray(depth_m, np.float64) * scale)
    d[(d > 65535) | ~np.isfinite(d) | (d < 0)] = 0
    return d.astype(np.uint16)


# Huffman-only deflate: ~25 % faster than the default on noisy sensor images, same file sizes.
_PNG_PARAMS = [cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, _PNG_PARAMS):
        raise OSError(f"could not write {path}")


@dataclass
class _FrameOut:
    noisy: np.ndarray
    exact: np.ndarray
    sigma: np.ndarray
    edge: np.ndarray
    seen: np.ndarray
    render_s: float
    write_s: float


class _FrameJob:
    """Renders, models and writes one frame; shared read-only state only (thread-safe)."""

    def __init__(self, cfg: SimConfig, out: Path, renderer: Renderer, camera: PinholeCamera,
                 poses: np.ndarray, times: np.ndarray, names: list[str], samples: np.ndarray) -> None:
        self.cfg, self.out, self.renderer, self.camera = cfg, out, renderer, camera
        self.poses, self.times, self.names = poses, times, names
        self.samples = samples.astype(np.float32)
        self.seen = np.zeros(len(samples), bool)
        self.ir_identity = np.allclose(cfg.ir.T_color_left_matrix, np.eye(4))

    def __call__(self, i: int) -> _FrameOut:
        cfg, cam = self.cfg, self.camera
        t0 = time.perf_counter()
        T, t = self.poses[i], float(self.times[i])
        dmesh = self.renderer.dynamic_mesh(t)
        res = self.renderer.render(cam, T, t, _frame_rng(cfg.seed, i, 1), dmesh)
        ir_albedo = self.renderer.ir_albedo(res.material)
        if cfg.depth_noise:
            dres = simulate_active_depth(res.depth_m, res.cos_incidence, ir_albedo, cfg.depth_sensor,
                                         _frame_rng(cfg.seed, i, 2))
            noisy, sigma, edge = dres.depth_m, dres.model_sigma_m, dres.edge_mask
        else:
            noisy, sigma, edge = res.depth_m.copy(), np.zeros_like(res.depth_m), np.zeros(res.depth_m.shape, bool)
        pair = render_ir_pair(self.renderer, cam, T, t, cfg.ir, _frame_rng(cfg.seed, i, 3),
                              left_hits=res if self.ir_identity else None, dynamic_mesh=dmesh)
        seen = self._visible(T, res.depth_m, noisy)
        self.seen[seen] = True  # only ever set to True, so concurrent frames cannot lose an update
        t1 = time.perf_counter()
        name = self.names[i]
        o = self.out
        _write_png(o / "rgb" / name, cv2.cvtColor(res.color, cv2.COLOR_RGB2BGR))
        _write_png(o / "depth" / name, _depth_u16(noisy, cfg.depth_scale))
        _write_png(o / "depth_gt" / name, _depth_u16(res.depth_m, cfg.depth_scale))
        _write_png(o / "ir_left" / name, pair.left)
        _write_png(o / "ir_right" / name, pair.right)
        _write_png(o / "semantic" / name, res.semantic)
        _write_png(o / "instance" / name, res.instance)
        t2 = time.perf_counter()
        return _FrameOut(noisy, res.depth_m, sigma, edge, seen, t1 - t0, t2 - t1)

    def _visible(self, T_world_camera: np.ndarray, depth: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Indices of surface samples measured in this frame: their depth matches the exact depth and
        the depth sensor returned a value at that pixel (``measured > 0``). Surfaces the sensor never
        measures (beyond its range, at grazing angles, dark) cannot be reconstructed from depth, so
        they do not count against a map's completeness.

        Samples already marked seen by any frame are skipped: the final set is the union over frames,
        so skipping them changes nothing, whatever order the worker threads run in.
        """
        cam = self.camera
        T_cw = invert_transform(T_world_camera).astype(np.float32)
        cand = np.nonzero(~self.seen)[0]
        p = self.samples[cand] @ T_cw[:3, :3].T + T_cw[:3, 3]
        z = p[:, 2]
        keep = z > 0.05
        cand, p, z = cand[keep], p[keep], z[keep]
        u = np.rint(cam.fx * p[:, 0] / z + cam.cx)
        v = np.rint(cam.fy * p[:, 1] / z + cam.cy)
        inside = (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
        cand, z, u, v = cand[inside], z[inside], u[inside].astype(np.int64), v[inside].astype(np.int64)
        d = depth[v, u]
        ok = (d > 0) & (np.abs(d - z) < self.cfg.observed_tolerance_m) & (measured[v, u] > 0)
        return cand[ok]


def _write_text_files(out: Path, cfg: SimConfig, camera: PinholeCamera, stamps: np.ndarray, names: list[str],
                      poses: np.ndarray, imu) -> None:
    for sub, title in (("rgb", "color images"), ("depth", "depth maps")):
        lines = [f"# {title}", "# file: simulated by metric_semantic_slam", "# timestamp filename"]
        lines += [f"{s:.6f} {sub}/{n}" for s, n in zip(stamps, names)]
        (out / f"{sub}.txt").write_text("\n".join(lines) + "\n")
    write_tum_trajectory(out / "groundtruth.txt", stamps, poses)
    rows = ["# timestamp wx wy wz ax ay az (rad/s, m/s^2, IMU frame)"]
    rows += [f"{t:.6f} " + " ".join(f"{x:.9f}" for x in (*g, *a))
             for t, g, a in zip(imu.stamps_s, imu.gyro_rad_s, imu.accel_m_s2)]
    (out / "imu.txt").write_text("\n".join(rows) + "\n")
    rows = ["# accelerometer data", "# file: simulated by metric_semantic_slam", "# timestamp ax ay az"]
    rows += [f"{t:.6f} " + " ".join(f"{x:.9f}" for x in a) for t, a in zip(imu.stamps_s, imu.accel_m_s2)]
    (out / "accelerometer.txt").write_text("\n".join(rows) + "\n")
    n = cfg.imu_noise
    cam = {
        "width": camera.width, "height": camera.height, "fx": camera.fx, "fy": camera.fy,
        "cx": camera.cx, "cy": camera.cy, "depth_scale": cfg.depth_scale, "depth_registered_to_color": True,
        "stereo": {"baseline_m": cfg.baseline_m, "T_color_left": cfg.ir.T_color_left_matrix.tolist(),
                   "width": camera.width, "height": camera.height, "fx": camera.fx, "fy": camera.fy,
                   "cx": camera.cx, "cy": camera.cy},
        "imu": {"rate_hz": cfg.imu_rate_hz, "T_camera_imu": [list(r) for r in cfg.T_camera_imu],
                "gravity_m_s2": GRAVITY_M_S2,
                "gyro_noise_density": n.gyro_noise_density if n.enabled else 0.0,
                "accel_noise_density": n.accel_noise_density if n.enabled else 0.0,
                "gyro_bias_random_walk": n.gyro_bias_random_walk if n.enabled else 0.0,
                "accel_bias_random_walk": n.accel_bias_random_walk if n.enabled else 0.0},
        "frame_rate_hz": cfg.fps,
    }
    (out / "camera.json").write_text(json.dumps(cam, indent=2) + "\n")
    (out / "sim_config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def _write_scene(out: Path, world: World, samples: np.ndarray, sample_face: np.ndarray, seen: np.ndarray,
                 private_ids: set[int]) -> int:
    mesh = world.static_mesh
    colors = np.array([m.base_rgb for m in world.materials], np.float64)
    vcol = np.zeros((len(mesh.vertices), 3), np.uint8)
    vcol[mesh.triangles.reshape(-1)] = np.repeat(np.clip(colors[mesh.face_material] * 255, 0, 255).astype(np.uint8), 3, axis=0)
    write_ply(out / "scene" / "mesh.ply", mesh.vertices, mesh.triangles, vertex_colors=vcol,
              face_props={"class": mesh.face_class.astype(np.uint16), "instance": mesh.face_instance.astype(np.uint16)})
    keep = np.nonzero(seen)[0]
    f = sample_face[keep]
    pcol = np.clip(colors[mesh.face_material[f]] * 255, 0, 255).astype(np.uint8)
    write_ply(out / "scene" / "observed_points.ply", samples[keep], vertex_colors=pcol,
              vertex_props={"class": mesh.face_class[f].astype(np.uint16),
                            "instance": mesh.face_instance[f].astype(np.uint16)})
    objs = [o for o in world.objects if not o.is_dynamic and o.class_id not in private_ids]
    ids = {o.instance_id for o in objs}
    rels = [r for r in world.relations if r.subject_id in ids and r.object_id in ids]
    (out / "scene" / "objects.json").write_text(json.dumps({"objects": [o.to_dict() for o in objs]}, indent=2) + "\n")
    (out / "scene" / "relations.json").write_text(json.dumps({"relations": [r.to_dict() for r in rels]}, indent=2) + "\n")
    return len(keep)


@contextlib.contextmanager
def _single_threaded_blas():
    """Run numpy's OpenBLAS single-threaded inside the block (restored afterwards).

    The simulator's matrix products are tiny ((N, 3) @ (3, 3)); OpenBLAS splits them over all cores
    and its idle threads then spin, doubling CPU use and starving the parallel frame workers. Only a
    speed matter: when the library or its symbols are not found, nothing changes.
    """
    lib = None
    libdir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for cand in sorted(libdir.glob("libscipy_openblas*.so*")):
        try:
            lib = ctypes.CDLL(str(cand))
            setter = lib.scipy_openblas_set_num_threads64_
            getter = lib.scipy_openblas_get_num_threads64_
            break
        except (OSError, AttributeError):
            lib = None
    if lib is None:
        yield
        return
    getter.restype = ctypes.c_int
    before = int(getter())
    setter.argtypes = [ctypes.c_int]
    setter(1)
    try:
        yield
    finally:
        setter(before)


def _bag_writer():
    from ..io.bag import folder_to_bag  # lazy: rosbags is only needed when a bag is written

    return folder_to_bag


def simulate_sequence(
    output_dir: str | Path,
    config: SimConfig,
    write_bag: bool = True,
    workers: int | None = None,
    world: World | None = None,
    trajectory: CameraTrajectory | None = None,
    label_space: LabelSpace | None = None,
    verbose: bool = True,
    raycaster: str = "auto",
) -> SimulationResult:
    """Simulate a sequence into ``output_dir`` (created; must be empty or absent).

    ``world``/``trajectory`` default to :func:`~metric_semantic_slam.sim.scene.generate_world` and
    :func:`~metric_semantic_slam.sim.trajectory.make_trajectory` for the config's seed and preset.
    ``raycaster``: :data:`.raycast.RAYCASTERS` (``auto``: Open3D when it imports, else torch on CUDA or CPU).
    Shape: images (config.height, config.width).
    """
    cfg = config
    t_start = time.perf_counter()
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"output folder {out} exists and is not empty")
    folder_to_bag = _bag_writer() if write_bag else None
    labels = label_space or load_label_space()
    if world is None:
        from .scene import generate_world

        world = generate_world(cfg.seed, with_person=cfg.with_person, label_space=labels)
    elif not cfg.with_person and world.dynamic_mesh_at is not None:
        world = World(**{**vars(world), "dynamic_mesh_at": None, "dynamic_objects_at": None})
    duration = (cfg.frames - 1) / cfg.fps
    if trajectory is None:
        trajectory = make_trajectory(world, preset=cfg.preset, duration_s=duration, seed=cfg.seed, motion=cfg.motion)
    if trajectory.duration_s < duration - 1e-9:
        raise ValueError(f"trajectory lasts {trajectory.duration_s} s, the sequence needs {duration} s")
    t_world = time.perf_counter()

    camera = default_camera(cfg.width, cfg.height)
    ir_cfg = replace(cfg.ir, baseline_m=cfg.baseline_m)
    n_workers = max(1, int(workers if workers is not None else min(2, os.cpu_count() or 1)))
    rcfg = replace(cfg.render, lighting_variation=cfg.lighting_variation,
                   texture_contrast=cfg.texture_contrast * cfg.render.texture_contrast)
    cfg = replace(cfg, ir=ir_cfg, render=rcfg)
    # Parallel frames each ray cast single-threaded: Open3D's own threads would only compete with them.
    # (A speed setting only, so it stays out of sim_config.json: outputs do not depend on it.)
    renderer = Renderer(world, replace(rcfg, raycast_threads=1) if n_workers > 1 else rcfg, raycaster=raycaster)

    stamps = np.round(cfg.t0_s + np.arange(cfg.frames) / cfg.fps, 6)
    times = np.clip(stamps - cfg.t0_s, 0.0, duration)
    names = [f"{s:.6f}.png" for s in stamps]
    poses = np.stack([np.asarray(trajectory.T_world_camera(float(t)), np.float64) for t in times])
    imu = synthesize_imu(trajectory, np.asarray(cfg.T_camera_imu), cfg.imu_rate_hz, 0.0, duration, cfg.imu_noise,
                         _frame_rng(cfg.seed, _SEQUENCE_STREAM, 4) if cfg.imu_noise.enabled else None, stamp_offset_s=cfg.t0_s)
    surf = sample_surface_points(world.static_mesh, cfg.observed_points_per_m2, cfg.observed_points_max,
                                 _frame_rng(cfg.seed, _SEQUENCE_STREAM, 5))
    for sub in ("rgb", "depth", "depth_gt", "ir_left", "ir_right", "semantic", "instance", "scene"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _write_text_files(out, cfg, camera, stamps, names, poses, imu)
    if label_space is None:
        shutil.copyfile(default_label_space_path(), out / "labels.yaml")
    else:
        (out / "labels.yaml").write_text(yaml.safe_dump(labels.to_dict(), sort_keys=False))
    t_setup = time.perf_counter()

    job = _FrameJob(cfg, out, renderer, camera, poses, times, names, surf.points)
    seen = job.seen
    acc = DepthErrorAccumulator()
    render_s = write_s = 0.0
    bar = tqdm(total=cfg.frames, desc="simulate", unit="frame", disable=None if verbose else True)
    with _single_threaded_blas(), ThreadPoolExecutor(max_workers=n_workers) as pool:
        # map() yields in frame order, so the accumulated statistics are the same for any worker count.
        for fo in pool.map(job, range(cfg.frames)):
            if cfg.depth_noise:
                # Every other row and column: still ~77k samples per 640x480 frame, at a quarter of the
                # cost of this serial step.
                acc.add(fo.noisy[::2, ::2], fo.exact[::2, ::2], fo.sigma[::2, ::2], exclude=fo.edge[::2, ::2])
            render_s += fo.render_s
            write_s += fo.write_s
            bar.update(1)
    bar.close()
    t_frames = time.perf_counter()
    private_ids = {lab.id for lab in labels.labels if lab.is_private}
    n_obs = _write_scene(out, world, surf.points, surf.face, seen, private_ids)
    t_scene = time.perf_counter()
    if folder_to_bag is not None:
        folder_to_bag(out, out / "bag", storage="mcap")
    t_end = time.perf_counter()
    timings = {"world_and_trajectory": t_world - t_start, "setup_imu_text": t_setup - t_world,
               "frames_wall": t_frames - t_setup, "render_cpu": render_s, "png_write_cpu": write_s,
               "scene_files": t_scene - t_frames, "bag": t_end - t_scene, "total": t_end - t_start}
    rows = acc.rows()
    if verbose:
        if cfg.depth_noise:
            print(format_depth_error_table(rows))
        print(f"observed_points: {n_obs} of {len(surf.points)} surface samples seen")
        print("timing [s]: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items())
              + f"; {cfg.frames / max(timings['frames_wall'], 1e-9):.1f} frames/s with {n_workers} workers")
        print(f"wrote {cfg.frames} frames ({cfg.width}x{cfg.height}) to {out.resolve()}")
    sys.stdout.flush()
    return SimulationResult(out, rows, timings)


def simulate(
    output_dir: str | Path,
    seed: int = 1,
    frames: int = 300,
    width: int = 640,
    height: int = 480,
    fps: float = 30.0,
    preset: str = "handheld",
    with_person: bool = True,
    imu_rate_hz: float = 200.0,
    baseline_m: float = 0.05,
    depth_noise: bool = True,
    lighting_variation: float = 0.0,
    write_bag: bool = True,
    workers: int | None = None,
    world: World | None = None,
    trajectory: CameraTrajectory | None = None,
    verbose: bool = True,
    texture_contrast: float = 1.0,
    motion: str = "smooth",
    raycaster: str = "auto",
) -> Path:
    """Simulate a sequence folder and return its path (see :func:`simulate_sequence`).

    ``workers`` frame threads (default min(2, CPUs)); the output does not depend on it.
    Shape: images (height, width); ``frames`` of them per image folder.
    """
    cfg = SimConfig(seed=seed, frames=frames, width=width, height=height, fps=fps, preset=preset,
                    with_person=with_person, imu_rate_hz=imu_rate_hz, baseline_m=baseline_m,
                    depth_noise=depth_noise, lighting_variation=lighting_variation, texture_contrast=texture_contrast,
                    motion=motion)
    return simulate_sequence(output_dir, cfg, write_bag=write_bag, workers=workers, world=world,
                             trajectory=trajectory, verbose=verbose, raycaster=raycaster).output_dir
