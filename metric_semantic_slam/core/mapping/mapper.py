"""The semantic voxel mapper facade: TSDF + color + semantics + instances in voxel blocks.

One object owns the block store and the integrators; ``integrate`` fuses a posed RGB-D frame with
optional per-pixel labels, ``update_mesh`` returns the mesh of the blocks changed since the last call,
``extract_mesh`` the whole mesh. Runs with torch + numpy only, on CUDA when present (``device="auto"``).

Dynamic and private classes (label space roles) are cut out of the depth image before integration,
so they leave no geometry, color, label or instance anywhere in the map.
"""
from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..camera import PinholeCamera
from ..labels import LabelSpace, load_label_space
from .instances import InstanceConfig, InstanceTracker, MapInstance
from .meshing import CORNER_OFFSETS, SemanticMesh, marching_cubes_blocks
from .semantics import SemanticConfig, make_semantic_fusion
from .tsdf import TsdfConfig, allocate_blocks, integrate_tsdf, local_voxel_offsets
from .voxel_blocks import BlockStore, HostStager, pack_keys

__all__ = ["MapperConfig", "IntegrationStats", "MeshUpdate", "SemanticCloud", "SemanticVoxelMapper",
           "resolve_device"]

_FORMAT = "msslam_voxel_map"
_FORMAT_VERSION = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass(frozen=True)
class MapperConfig:
    """Parameters of :class:`SemanticVoxelMapper`."""

    tsdf: TsdfConfig = field(default_factory=TsdfConfig)
    semantics: SemanticConfig = field(default_factory=SemanticConfig)
    instances: InstanceConfig = field(default_factory=InstanceConfig)
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ``cuda:1`` ..."""
    clear_radius_m: float = 0.0
    """Blocks whose centre is farther than this from the camera are evicted (0 = never)."""
    max_blocks: int = 0
    """Upper bound of allocated blocks; the farthest are evicted beyond it (0 = unbounded)."""
    mesh_min_weight: float = 0.5
    """Voxels with less accumulated weight are treated as unobserved by meshing and export."""
    reserve_blocks: int = 0
    """Storage for this many blocks is allocated up front (and after a reset): a frame that adds blocks
    below it never waits for the store to grow (~35 kB a block with the default label space)."""

    def validate(self) -> None:
        self.tsdf.validate()
        self.semantics.validate()
        self.instances.validate()
        if not self.clear_radius_m >= 0:
            raise ValueError(f"clear_radius_m must be >= 0, got {self.clear_radius_m}")
        if not self.max_blocks >= 0:
            raise ValueError(f"max_blocks must be >= 0, got {self.max_blocks}")
        if not self.reserve_blocks >= 0:
            raise ValueError(f"reserve_blocks must be >= 0, got {self.reserve_blocks}")
        if not self.mesh_min_weight > 0:
            raise ValueError(f"mesh_min_weight must be > 0, got {self.mesh_min_weight}")
        resolve_device(self.device)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MapperConfig":
        d = dict(d)
        return cls(tsdf=TsdfConfig(**d.pop("tsdf", {})), semantics=SemanticConfig(**d.pop("semantics", {})),
                   instances=InstanceConfig(**d.pop("instances", {})), **d)


@dataclass
class IntegrationStats:
    """What one ``integrate`` call did."""

    blocks_visited: int
    blocks_allocated: int
    blocks_evicted: int
    voxels_updated: int
    total_blocks: int
    time_s: float


@dataclass
class MeshUpdate:
    """Mesh of the blocks changed since the previous update.

    ``mesh.block_coords`` lists the re-meshed blocks (a consumer replaces those blocks' meshes, even
    with nothing when a block has no triangle now); ``removed_blocks`` (R, 3) were evicted.
    """

    mesh: SemanticMesh
    removed_blocks: np.ndarray


@dataclass
class SemanticCloud:
    """Surface voxel centres with attributes.

    Shape: points (N, 3) float32 meters; colors (N, 3) uint8; classes (N,) int64; instances (N,) int64.
    """

    points: np.ndarray
    colors: np.ndarray
    classes: np.ndarray
    instances: np.ndarray


class SemanticVoxelMapper:
    """Sparse voxel-block TSDF with color, Bayesian semantics and instances."""

    def __init__(self, config: MapperConfig = MapperConfig(), label_space: LabelSpace | None = None) -> None:
        config.validate()
        self.config = config
        self.labels = label_space if label_space is not None else load_label_space()
        self.num_classes = self.labels.max_id + 1
        self.device = resolve_device(config.device)
        ids = np.zeros(self.num_classes, dtype=bool)
        ids[[lab.id for lab in self.labels.labels]] = True
        self._known_ids = ids
        self._excluded = torch.as_tensor(self.labels.dynamic_mask | self.labels.private_mask, device=self.device)
        self._thing = torch.as_tensor(self.labels.thing_mask, device=self.device)
        # Formulations with fixed-size intermediates and few host syncs (block allocation, instance
        # tables): what a GPU needs; the CPU keeps the compacting ones, which do less work. Same map.
        self._sync_free = self.device.type == "cuda"
        self._build()

    def _build(self) -> None:
        c = self.config
        self.store = BlockStore(c.tsdf.block_resolution, self.device)
        self.store.add_layer("tsdf", (), torch.float32, 1.0)
        self.store.add_layer("weight", (), torch.float32, 0.0)
        self.store.add_layer("color", (3,), torch.float32, 0.0)
        self.semantics = make_semantic_fusion(self.store, self.num_classes, c.semantics)
        self.instance_tracker = InstanceTracker(self.store, self.num_classes, c.instances)
        self.store.reserve(c.reserve_blocks)
        self._offsets = local_voxel_offsets(self.store.R, self.device)
        self._corner_offsets = torch.as_tensor(CORNER_OFFSETS, device=self.device)  # (8, 3), uploaded once
        self._stager = HostStager(self.device)
        self._changed = torch.zeros(0, dtype=torch.bool, device=self.device)
        self._removed: list[np.ndarray] = []
        self.frames_integrated = 0

    # ------------------------------------------------------------------ input checks
    def _check(self, depth_m, color, camera, T_world_camera, semantic, instance) -> None:
        if not isinstance(camera, PinholeCamera):
            raise ValueError(f"camera must be a PinholeCamera, got {type(camera).__name__}")
        depth = np.asarray(depth_m)
        if depth.size == 0:
            raise ValueError("depth image is empty")
        if depth.shape != camera.shape:
            raise ValueError(f"depth shape {depth.shape} does not match camera {camera.shape}")
        if not np.issubdtype(depth.dtype, np.floating):
            raise ValueError(f"depth must be float meters, got dtype {depth.dtype}")
        # Two reductions instead of one boolean image per test (NaN is skipped by nanmin/nanmax; an
        # all-NaN image gives NaN, which fails the > 0 test below).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(depth), np.nanmax(depth)
        if np.isinf(lo) or np.isinf(hi):
            raise ValueError("depth contains infinite values")
        if lo < 0:
            raise ValueError("depth contains negative values")
        if not hi > 0:
            raise ValueError("depth has no valid pixel (all zero or NaN)")
        if color is not None:
            col = np.asarray(color)
            if col.shape != camera.shape + (3,) or col.dtype != np.uint8:
                raise ValueError(f"color must be uint8 {camera.shape + (3,)}, got {col.dtype} {col.shape}")
        T = np.asarray(T_world_camera, dtype=np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError("T_world_camera must be a finite 4x4 matrix")
        R = T[:3, :3]
        if (np.abs(R.T @ R - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0
                or np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-9):
            raise ValueError("T_world_camera is not a rigid transform (rotation not orthonormal or bad last row)")
        if semantic is not None:
            sem = np.asarray(semantic)
            if sem.shape == camera.shape:
                if not np.issubdtype(sem.dtype, np.integer):
                    raise ValueError(f"semantic labels must be integers, got {sem.dtype}")
                # The per-pixel lookup of defined ids is only needed when the label space has gaps.
                if (sem.min() < 0 or sem.max() >= self.num_classes
                        or (not self._known_ids.all() and not self._known_ids[sem].all())):
                    bad = np.unique(sem[(sem < 0) | (sem >= self.num_classes)])
                    raise ValueError(f"semantic labels outside the label space {self.labels.name!r}: "
                                     f"{bad[:10].tolist() or 'ids not defined'}")
            elif sem.shape == camera.shape + (self.num_classes,):
                if not np.isfinite(sem).all() or (sem < 0).any():
                    raise ValueError("semantic probabilities must be finite and non-negative")
            else:
                raise ValueError(f"semantic must be (H, W) ids or (H, W, {self.num_classes}) probabilities, "
                                 f"got {sem.shape}")
        if instance is not None:
            ins = np.asarray(instance)
            if ins.shape != camera.shape or not np.issubdtype(ins.dtype, np.integer):
                raise ValueError(f"instance must be an integer {camera.shape} image, got {ins.dtype} {ins.shape}")
            if np.issubdtype(ins.dtype, np.signedinteger) and ins.min() < 0:
                raise ValueError("instance ids must be >= 0")
            if semantic is None:
                raise ValueError("instance ids need a semantic image (an instance's class comes from it)")

    # ------------------------------------------------------------------ integration
    def integrate(self, depth_m: np.ndarray, color: np.ndarray | None, camera: PinholeCamera,
                  T_world_camera: np.ndarray, semantic: np.ndarray | None = None,
                  instance: np.ndarray | None = None) -> IntegrationStats:
        """Fuse one posed RGB-D frame with optional labels. Invalid input raises ValueError and
        leaves the map unchanged.

        Shape: depth_m (H, W) float meters (0/NaN = invalid); color (H, W, 3) uint8 RGB or None;
        T_world_camera (4, 4); semantic (H, W) int class ids or (H, W, C) class probabilities;
        instance (H, W) int frame instance ids (0 = none).
        """
        self._check(depth_m, color, camera, T_world_camera, semantic, instance)
        t0 = time.perf_counter()
        dev = self.device
        cfg = self.config.tsdf
        # Every input goes to the device first, in one copy through pinned memory on CUDA. From here on
        # a CUDA frame waits for the device five times: the counts of visited and new blocks, of voxels
        # near the surface and of saturated class scores, the instance tables, and the updated-voxel
        # count at the end.
        host = [np.asarray(depth_m, dtype=np.float32)]
        sem_np = ins_np = None
        if semantic is not None:
            sem_np = np.asarray(semantic)
            host.append(sem_np)
            if instance is not None:
                ins_np = np.asarray(instance)
                if ins_np.dtype not in (np.uint8, np.int8, np.uint16, np.int16, np.int32):
                    ins_np = ins_np.astype(np.int32 if np.can_cast(ins_np.dtype, np.int32) else np.int64)
                host.append(ins_np)  # small ints are sent as they are and widened on the device
        if color is not None:
            host.append(np.asarray(color))
        if not self._sync_free:
            # A copy we own, out-of-range pixels zeroed; NaN fails both comparisons, so this also clears
            # invalid pixels. (numpy: its vectorised comparisons and masked store beat torch's here.)
            depth_np = np.array(host[0], dtype=np.float32)
            depth_np[~((depth_np >= cfg.depth_min_m) & (depth_np <= cfg.depth_max_m))] = 0.0
            host[0] = depth_np
        dev_in = self._stager.upload(host)
        depth = dev_in.pop(0)
        if self._sync_free:  # on a GPU the same test is two kernels, cheaper than the host's passes
            depth = torch.where((depth >= cfg.depth_min_m) & (depth <= cfg.depth_max_m), depth, 0.0)
        sem_flat = probs_t = ins_t = None
        max_segment = None
        if sem_np is not None:
            s = dev_in.pop(0)
            if s.ndim == 2:
                # int32 ids: half the memory traffic of int64 and still a valid gather index.
                sem_flat = (s if s.dtype == torch.int32 else s.to(torch.int32)).view(-1)
            else:
                probs_t = s.to(torch.float32)
                sem_flat = probs_t.argmax(dim=2).view(-1)
            if ins_np is not None:
                ins_t = dev_in.pop(0)
                if ins_t.dtype not in (torch.int32, torch.int64):
                    ins_t = ins_t.to(torch.int32)
                max_segment = int(ins_np.max()) if self._sync_free else None  # host: sizes the id tables
        col_t = dev_in.pop(0) if color is not None else None
        if sem_flat is not None:
            # Dynamic/private pixels are removed before anything is fused.
            depth = torch.where(self._excluded.index_select(0, sem_flat).view_as(depth), 0.0, depth)
        K = np.asarray(camera.K, dtype=np.float32)  # host matrices: their numbers are read on the host
        T = np.asarray(T_world_camera, dtype=np.float64)
        n_before = len(self.store)
        slots = allocate_blocks(self.store, cfg, depth, K, T, sync_free=self._sync_free)
        band_m = self.config.semantics.band_voxels * cfg.voxel_size_m if sem_flat is not None else 0.0
        obs = integrate_tsdf(self.store, cfg, slots, depth, col_t, K, T, self._offsets, select_band_m=band_m)
        if sem_flat is not None:
            v_near, p_near = obs.voxel, obs.pixel
            labels = sem_flat.index_select(0, p_near).to(torch.int64)
            if probs_t is not None:
                p = probs_t.reshape(-1, probs_t.shape[2]).index_select(0, p_near)
                self.semantics.update_probabilities(v_near, p)
            else:
                self.semantics.update_labels(v_near, labels)
            if ins_t is not None:
                seg = ins_t.view(-1).index_select(0, p_near).to(torch.int64)
                seg = torch.where(self._thing.index_select(0, labels), seg, 0)
                self.instance_tracker.update(v_near, seg, labels, self.voxel_centres,
                                             self.frames_integrated, max_segment_id=max_segment,
                                             dense=self._sync_free)
        n = len(self.store)
        if self._changed.shape[0] < n:
            self._changed = torch.cat([self._changed, torch.zeros(n - self._changed.shape[0], dtype=torch.bool,
                                                                  device=dev)])
        self._changed[slots] = True
        evicted = self._evict(T[:3, 3])
        self.frames_integrated += 1
        # Reading the count waits for the device: every kernel of this frame is done when it returns.
        voxels_updated = obs.num_updated
        return IntegrationStats(blocks_visited=int(slots.shape[0]), blocks_allocated=n - n_before,
                                blocks_evicted=evicted, voxels_updated=voxels_updated,
                                total_blocks=len(self.store), time_s=time.perf_counter() - t0)

    def voxel_centres(self, voxel: torch.Tensor) -> torch.Tensor:
        """World coordinates of flat voxel indices. Shape: (K,) -> (K, 3) float32 meters."""
        n_local = self.store.voxels_per_block
        slot = torch.div(voxel, n_local, rounding_mode="floor")
        local = voxel - slot * n_local
        g = self.store.index.coords[slot] * self.store.R + self._offsets[local]
        return ((g.to(torch.float32) + 0.5) * self.config.tsdf.voxel_size_m)

    def _evict(self, camera_position_m: np.ndarray) -> int:
        c = self.config
        n = len(self.store)
        if n == 0 or (c.clear_radius_m <= 0 and (c.max_blocks <= 0 or n <= c.max_blocks)):
            return 0
        camera_position = torch.as_tensor(np.asarray(camera_position_m), dtype=torch.float32, device=self.device)
        centres = (self.store.index.coords.to(torch.float32) + 0.5) * c.tsdf.block_size_m
        dist = torch.linalg.norm(centres - camera_position, dim=1)
        keep = torch.ones(n, dtype=torch.bool, device=self.device)
        if c.clear_radius_m > 0:
            keep &= dist <= c.clear_radius_m
        if c.max_blocks > 0 and int(keep.sum()) > c.max_blocks:
            far = torch.argsort(torch.where(keep, dist, torch.full_like(dist, float("inf"))))
            keep[far[c.max_blocks:]] = False
        n_drop = n - int(keep.sum())
        if n_drop == 0:
            return 0
        self._removed.append(self.store.index.coords[~keep].cpu().numpy())
        old = self.store.keep(keep)
        self._changed = self._changed[old]
        return n_drop

    # ------------------------------------------------------------------ outputs
    @property
    def changed_blocks(self) -> np.ndarray:
        """Coordinates of the blocks integrated since the last ``update_mesh``. Shape: (K, 3) int64."""
        n = len(self.store)
        return self.store.index.coords[torch.nonzero(self._changed[:n]).flatten()].cpu().numpy()

    @property
    def num_blocks(self) -> int:
        return len(self.store)

    def _mesh_slots(self, slots: torch.Tensor, nbr: torch.Tensor | None = None) -> SemanticMesh:
        coords = self.store.index.coords[slots]
        if nbr is None:  # the 8 neighbour lookups as one batched lookup (one search instead of eight)
            nbr = self.store.index.lookup((coords[:, None, :] + self._corner_offsets).view(-1, 3)).view(-1, 8)
        return marching_cubes_blocks(
            coords, nbr, self.store.view("tsdf"), self.store.view("weight"), self.store.view("color"),
            self.semantics.labels, self.store.view("inst_id"), self.store.R, self.config.tsdf.voxel_size_m,
            min_weight=self.config.mesh_min_weight, scan_all_blocks=self._sync_free)

    def extract_mesh(self) -> SemanticMesh:
        """Marching-cubes mesh of the whole map (vertices shared across blocks)."""
        return self._mesh_slots(torch.arange(len(self.store), device=self.device))

    def update_mesh(self) -> MeshUpdate:
        """Mesh of the changed blocks and of the blocks whose cubes read them; clears the changed set."""
        n = len(self.store)
        # A cube reads its block and the +x/+y/+z neighbours, so blocks at -offset see the change too.
        if self._sync_free:
            # Every block's +offset neighbours in one lookup: a block is re-meshed when one of them
            # changed, and the same table feeds marching cubes (no search of the changed set first).
            nbr_all = self.store.index.lookup((self.store.index.coords[:, None, :] + self._corner_offsets)
                                              .view(-1, 3)).view(n, 8)
            changed = torch.cat([self._changed[:n], self._changed.new_zeros(1)])  # misses read the spare
            slots = torch.nonzero(changed[torch.where(nbr_all >= 0, nbr_all, n)].any(dim=1)).flatten()
            mesh = self._mesh_slots(slots, nbr_all.index_select(0, slots))
        else:
            changed = torch.nonzero(self._changed[:n]).flatten()
            coords = self.store.index.coords[changed]
            # One batched lookup; the hits are marked in a bitmap (misses on a spare last entry), whose
            # nonzero is the sorted, unique slot list without a sort.
            cand = self.store.index.lookup((coords[:, None, :] - self._corner_offsets).view(-1, 3))
            hit = torch.zeros(n + 1, dtype=torch.bool, device=self.device)
            hit[torch.where(cand >= 0, cand, n)] = True
            slots = torch.nonzero(hit[:n]).flatten()
            mesh = self._mesh_slots(slots)
        self._changed[:] = False
        removed = np.concatenate(self._removed) if self._removed else np.zeros((0, 3), np.int64)
        self._removed = []
        return MeshUpdate(mesh=mesh, removed_blocks=removed)

    def _surface_voxels(self) -> torch.Tensor:
        n = len(self.store) * self.store.voxels_per_block
        t = self.store.view("tsdf")[:n]
        w = self.store.view("weight")[:n]
        band = 1.0 / self.config.tsdf.truncation_voxels  # one voxel, in TSDF units
        return torch.nonzero((w >= self.config.mesh_min_weight) & (t.abs() < band)).flatten()

    def extract_point_cloud(self) -> SemanticCloud:
        """Voxels within one voxel of the surface, with color, class and instance."""
        v = self._surface_voxels()
        col = self.store.view("color").index_select(0, v).round().clamp(0, 255).to(torch.uint8)
        return SemanticCloud(points=self.voxel_centres(v).cpu().numpy(), colors=col.cpu().numpy(),
                             classes=self.semantics.labels(v).cpu().numpy(),
                             instances=self.store.view("inst_id").index_select(0, v).to(torch.int64).cpu().numpy())

    def instances(self) -> list[MapInstance]:
        """The map instances with voxels left, with fresh voxel counts, by id."""
        self.instance_tracker.refresh_counts(len(self.store))
        return [self.instance_tracker.instances[k] for k in sorted(self.instance_tracker.instances)]

    def write_mesh_ply(self, path: str | Path, mesh: SemanticMesh | None = None) -> Path:
        """Write a binary PLY with vertex colors and ``class`` / ``instance`` vertex properties."""
        from ...io.ply import write_ply

        m = mesh if mesh is not None else self.extract_mesh()
        return write_ply(path, m.vertices, m.triangles, vertex_colors=m.colors,
                         vertex_props={"class": m.classes.astype(np.uint16),
                                       "instance": m.instances.astype(np.uint32)})

    def write_cloud_ply(self, path: str | Path) -> Path:
        """Write the semantic surface point cloud as PLY (x, y, z, rgb, class, instance)."""
        from ...io.ply import write_ply

        c = self.extract_point_cloud()
        return write_ply(path, c.points, vertex_colors=c.colors,
                         vertex_props={"class": c.classes.astype(np.uint16), "instance": c.instances.astype(np.uint32)})

    # ------------------------------------------------------------------ persistence
    def reset(self) -> None:
        """Forget everything (blocks, instances, counters); the configuration stays."""
        removed = self.store.index.coords.cpu().numpy()
        self._build()
        if len(removed):
            self._removed.append(removed)

    def save(self, path: str | Path) -> Path:
        """Write the map to an ``.npz`` file. Blocks are stored in key order, so equal maps give
        byte-identical files (a save -> load -> save round trip reproduces the file)."""
        path = Path(path)
        n = len(self.store)
        coords = self.store.index.coords
        order = torch.argsort(pack_keys(coords)) if n else torch.zeros(0, dtype=torch.int64, device=self.device)
        arrays = {"coords": coords[order].cpu().numpy()}
        for name, t in self.store.layers.items():
            arrays[f"layer_{name}"] = t[:n][order].cpu().numpy()
        meta = {"format": _FORMAT, "version": _FORMAT_VERSION, "config": self.config.to_dict(),
                "label_space": self.labels.to_dict(), "frames_integrated": self.frames_integrated,
                "next_instance_id": self.instance_tracker.next_id,
                "instances": [i.to_dict() for _, i in sorted(self.instance_tracker.instances.items())]}
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "SemanticVoxelMapper":
        """Read a map written by :meth:`save` (``device`` overrides the saved one)."""
        with np.load(Path(path), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        try:
            meta = json.loads(data["meta"].tobytes().decode())
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a voxel map file ({e})") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported map format {meta.get('format')!r} v{meta.get('version')}")
        cfg = meta["config"]
        if device is not None:
            cfg = dict(cfg, device=device)
        mapper = cls(MapperConfig.from_dict(cfg), LabelSpace.from_dict(meta["label_space"]))
        coords = torch.as_tensor(data["coords"], device=mapper.device)
        mapper.store.insert(coords)  # new keys get slots in sorted-key order, the order saved
        n = coords.shape[0]
        for name, t in mapper.store.layers.items():
            arr = data.get(f"layer_{name}")
            if arr is None or arr.shape != (n, *t.shape[1:]):
                raise ValueError(f"{path}: layer {name!r} missing or of the wrong shape")
            t[:n] = torch.as_tensor(arr, device=mapper.device)
        mapper._changed = torch.ones(n, dtype=torch.bool, device=mapper.device)
        mapper.frames_integrated = int(meta["frames_integrated"])
        mapper.instance_tracker.next_id = int(meta["next_instance_id"])
        mapper.instance_tracker.instances = {d["id"]: MapInstance.from_dict(d) for d in meta["instances"]}
        return mapper
