"""Projective TSDF + color integration into voxel blocks (torch, CPU or CUDA).

Method (Curless & Levoy 1996; voxel hashing after Niessner et al. 2013): every voxel of the blocks
near the observed surface is projected into the depth image; its projective signed distance is
``sdf = depth(u, v) - z_voxel`` (positive in front of the surface). Voxels with
``sdf >= -truncation`` get ``tsdf = min(sdf, truncation) / truncation`` fused by a weighted running
average; the weight is capped at ``max_weight`` so the map can still change.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .voxel_blocks import BlockStore, pack_keys, unpack_keys

__all__ = ["TsdfConfig", "Observation", "allocate_blocks", "integrate_tsdf", "local_voxel_offsets", "to_device"]

WEIGHT_MODES = ("constant", "inverse_square")
_SENTINEL = torch.iinfo(torch.int64).max  # above every packed block key (they are < 2^63)


@dataclass(frozen=True)
class TsdfConfig:
    """TSDF integration parameters."""

    voxel_size_m: float = 0.04
    """Voxel edge length."""
    truncation_voxels: float = 4.0
    """Truncation distance as a multiple of the voxel size (0.16 m at 4 cm voxels)."""
    block_resolution: int = 8
    """Voxels per block edge."""
    depth_min_m: float = 0.1
    """Depth below this is ignored."""
    depth_max_m: float = 5.0
    """Depth beyond this is ignored (structured-light noise grows with z^2)."""
    weight_mode: str = "constant"
    """``constant`` (1 per observation) or ``inverse_square`` (``min(1, 1/z^2)``, z in meters)."""
    max_weight: float = 100.0
    """Cap of the accumulated weight (a running average over at most ~this many frames)."""
    allocation_stride: int = 8
    """Pixel stride of the depth samples that decide which blocks to allocate (blocks are large)."""

    def validate(self) -> None:
        if not self.voxel_size_m > 0:
            raise ValueError(f"voxel_size_m must be > 0, got {self.voxel_size_m}")
        if not self.truncation_voxels >= 1:
            raise ValueError(f"truncation_voxels must be >= 1, got {self.truncation_voxels}")
        if self.block_resolution not in (4, 8, 16):
            raise ValueError(f"block_resolution must be 4, 8 or 16, got {self.block_resolution}")
        if not 0 <= self.depth_min_m < self.depth_max_m:
            raise ValueError(f"need 0 <= depth_min_m < depth_max_m, got {self.depth_min_m}, {self.depth_max_m}")
        if self.weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {self.weight_mode!r}")
        if not self.max_weight >= 1:
            raise ValueError(f"max_weight must be >= 1, got {self.max_weight}")
        if not self.allocation_stride >= 1:
            raise ValueError(f"allocation_stride must be >= 1, got {self.allocation_stride}")

    @property
    def truncation_m(self) -> float:
        return self.voxel_size_m * self.truncation_voxels

    @property
    def block_size_m(self) -> float:
        return self.voxel_size_m * self.block_resolution


@dataclass
class Observation:
    """Voxels updated by one frame.

    ``voxel``, ``pixel`` and ``sdf_m`` list the updated voxels within ``select_band_m`` of the observed
    surface (all updated voxels when no band was asked for; none when the band is 0): voxel (K,) int64
    flat voxel index (``slot * R^3 + local``); pixel (K,) int64 flat pixel index (``v * W + u``); sdf_m
    (K,) float32 projective signed distance. ``slots`` (B,) are the blocks visited; ``updated_count`` (a
    0-d int64 tensor on the map's device, read without a host sync) and ``num_updated`` (the same as an
    int: reading it waits for the device) count every voxel whose TSDF was updated.
    """

    voxel: torch.Tensor
    pixel: torch.Tensor
    sdf_m: torch.Tensor
    slots: torch.Tensor
    updated_count: torch.Tensor

    @property
    def num_updated(self) -> int:
        return int(self.updated_count)


@lru_cache(maxsize=16)
def local_voxel_offsets(R: int, device: torch.device) -> torch.Tensor:
    """Integer offsets of the voxels of a block in local-index order (x fastest). Shape: (R^3, 3) int64."""
    r = torch.arange(R, device=device)
    z, y, x = torch.meshgrid(r, r, r, indexing="ij")
    return torch.stack([x.flatten(), y.flatten(), z.flatten()], dim=1)


def _rows_times(X: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``X @ M.T`` for (N, 3) x (3, 3) as broadcast multiply-adds (BLAS is slow on skinny inputs)."""
    return X[:, 0:1] * M[:, 0] + X[:, 1:2] * M[:, 1] + X[:, 2:3] * M[:, 2]


def _host(x: "torch.Tensor | np.ndarray", dtype: torch.dtype) -> torch.Tensor:
    """A small matrix (intrinsics, pose) as a CPU tensor: its numbers are read on the host, and reading
    them from a device tensor would wait for the device."""
    return x.detach().to("cpu", dtype) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x), dtype=dtype)


def _intrinsics(K: torch.Tensor) -> tuple[float, float, float, float]:
    """fx, fy, cx, cy as the float32 values of ``K`` (what a float32 K tensor held before)."""
    return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to ``device`` without waiting: through pinned memory on CUDA (a pageable
    copy would first wait for the device's queued work)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _compact(mask: torch.Tensor, count: int) -> torch.Tensor:
    """Ascending indices of the ``count`` True entries of ``mask`` without a host sync (``count`` known).

    A stable sort puts the True entries first in index order. Shape: mask (N,) bool -> (count,) int64.
    """
    return torch.argsort((~mask).to(torch.uint8), stable=True)[:count]


@lru_cache(maxsize=8)
def _sample_rays(H: int, W: int, s: int, fx: float, fy: float, cx: float, cy: float, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised ray coordinates of the allocation samples (a camera's are the same every frame).

    Returns xs (W/s,), ys (H/s,) and, per sample in row-major order, rx, ry (H/s * W/s,).
    """
    xs = (torch.arange(0, W, s, device=device, dtype=torch.float32) - cx) / fx
    ys = (torch.arange(0, H, s, device=device, dtype=torch.float32) - cy) / fy
    return xs, ys, xs.repeat(ys.shape[0]), ys.repeat_interleave(xs.shape[0])


def allocate_blocks(store: BlockStore, config: TsdfConfig, depth: torch.Tensor, K: "torch.Tensor | np.ndarray",
                    T_world_camera: "torch.Tensor | np.ndarray", sync_free: bool | None = None) -> torch.Tensor:
    """Allocate the blocks within the truncation band of a depth image; return their slots (unique).

    The slots come as: the blocks that existed, ascending, then the new ones, ascending. ``sync_free``
    (default: on CUDA) computes the same slots with one host sync in all (the counts of hit and of new
    blocks) instead of a data-dependent filter at every step; the CPU default keeps the filters, which
    are cheaper there.
    Shape: depth (H, W) float32 meters (0 = invalid), K (3, 3), T_world_camera (4, 4) -> slots (B,) int64.
    """
    if sync_free is None:
        sync_free = depth.device.type == "cuda"
    s = config.allocation_stride
    d = depth[::s, ::s]
    H, W = depth.shape
    fx, fy, cx, cy = _intrinsics(_host(K, torch.float32))
    dev = depth.device
    xs, ys, rx, ry = _sample_rays(H, W, s, fx, fy, cx, cy, dev)
    ok = (d > 0).reshape(-1)
    if sync_free:  # every sample; the invalid ones are masked out below
        dd = d.reshape(-1)
    else:
        idx = torch.nonzero(ok).flatten()
        dd = d.reshape(-1).index_select(0, idx)
        rx = xs.index_select(0, idx % xs.shape[0])
        ry = ys.index_select(0, torch.div(idx, xs.shape[0], rounding_mode="floor"))
    tr = config.truncation_m
    Tw = _host(T_world_camera, torch.float64)
    Rm = Tw[:3, :3].tolist()  # python floats: no tiny-tensor ops
    t = Tw[:3, 3].tolist()
    inv_b = 1.0 / config.block_size_m
    # The samples at depth - tr, depth, depth + tr in one (3, N) array: fewer, larger tensor ops.
    z = torch.stack([dd - tr, dd, dd + tr]).clamp_(min=1e-3)
    x = rx * z
    y = ry * z
    # world = R @ (x, y, z) + t, written out: (N, 3) @ (3, 3) matmuls are slow for skinny inputs
    c = [torch.floor_((x * (Rm[i][0] * inv_b)).add_(y, alpha=Rm[i][1] * inv_b).add_(z, alpha=Rm[i][2] * inv_b)
                      .add_(t[i] * inv_b)).to(torch.int64).view(-1) for i in range(3)]
    keys = pack_keys(torch.stack(c, dim=1))
    # Most blocks exist already: look every sample up (binary search) and mark the hit slots in a
    # bitmap instead of sorting all samples; only the missing keys are deduplicated and inserted.
    found = store.index.lookup_keys(keys)
    n = len(store)
    if not sync_free:
        hit = torch.zeros(n + 1, dtype=torch.bool, device=dev)
        hit[found] = True  # misses (-1) mark the spare last entry
        slots = torch.nonzero(hit[:-1]).flatten()
        missing = keys[found < 0]
        if missing.numel():
            _, new_slots = store.insert(unpack_keys(torch.unique(missing)))
            slots = torch.cat([slots, new_slots])
        return slots
    ok3 = ok.repeat(3)  # the (3, N) sample layout
    hit = torch.zeros(n + 1, dtype=torch.bool, device=dev)
    hit[torch.where(ok3 & (found >= 0), found, n)] = True  # misses and invalid samples: the spare entry
    # Missing keys, deduplicated without a data-dependent size: sorted, with the non-missing pushed to
    # the end as a sentinel; a key is new where it differs from its predecessor.
    srt = torch.sort(torch.where(ok3 & (found < 0), keys, _SENTINEL)).values
    is_new = (srt != _SENTINEL) & (srt != torch.cat([srt[:1] - 1, srt[:-1]]))
    n_hit, n_new = torch.stack([hit[:n].sum(), is_new.sum()]).tolist()  # the one host sync
    slots = _compact(hit[:n], n_hit)
    if n_new:
        new_slots = store.append_new_keys(srt.index_select(0, _compact(is_new, n_new)))
        slots = torch.cat([slots, new_slots])
    return slots


def integrate_tsdf(store: BlockStore, config: TsdfConfig, slots: torch.Tensor, depth: torch.Tensor,
                   color: torch.Tensor | None, K: torch.Tensor, T_world_camera: torch.Tensor,
                   offsets: torch.Tensor, select_band_m: float | None = None) -> Observation:
    """Fuse one depth (+ color) image into the blocks ``slots``; return the updated voxels.

    ``slots`` must be unique (as :func:`allocate_blocks` returns them). ``select_band_m`` picks which
    updated voxels the returned :class:`Observation` lists: those with ``|sdf| < select_band_m`` (what
    semantic fusion needs), all of them when None, none when 0 (geometry only: no index lists built).
    Layers used: ``tsdf`` (float32), ``weight`` (float32), ``color`` (float32 RGB 0-255, optional).
    Shape: depth (H, W) float32 meters (0 = invalid); color (H, W, 3) uint8 or None; K (3, 3);
    T_world_camera (4, 4); offsets (R^3, 3) from :func:`local_voxel_offsets`.
    """
    H, W = depth.shape
    vs = config.voxel_size_m
    R_blk = store.R
    n_local = store.voxels_per_block
    fx, fy, cx, cy = _intrinsics(_host(K, torch.float32))
    dev = depth.device
    # The small matrices are computed on the host (CPU float64) and go to the device in one
    # non-blocking copy: no device round trip for a 3x3 product.
    Twc = _host(T_world_camera, torch.float64)
    Rcw = Twc[:3, :3].T  # rigid inverse: cheaper than a general 4x4 inverse
    tcw = -(Rcw @ Twc[:3, 3])
    # Project with a zero-padded depth image: out-of-image voxels land on the border (depth 0), so no
    # explicit in-image test is needed. Intrinsics, the +1 border shift and the +0.5 rounding are
    # folded into per-block and per-voxel parts so each (B, R^3) array costs one add.
    P = torch.tensor([[fx, 0.0, cx + 1.5], [0.0, fy, cy + 1.5], [0.0, 0.0, 1.0]], dtype=torch.float64) @ Rcw
    off_h = offsets if offsets.device.type == "cpu" else local_voxel_offsets(R_blk, torch.device("cpu"))
    # Component-major and contiguous (a strided column as a broadcast operand is several times slower).
    Lp_h = _rows_times(off_h.to(torch.float64) * vs, P).T.to(torch.float32).contiguous()  # (3, R^3)
    small = to_device(torch.cat([P.view(-1), (P @ Rcw.T @ tcw), Lp_h.view(-1).to(torch.float64)]), dev)
    P_d, c_d = small[:9].view(3, 3), small[9:12]
    Lp = small[12:].view(3, 1, n_local).to(torch.float32) if dev.type != "cpu" else Lp_h[:, None, :]  # (3, 1, R^3)
    origins = (store.index.coords[slots].to(torch.float64) * R_blk + 0.5) * vs
    A = (_rows_times(origins, P_d) + c_d).T.to(torch.float32).contiguous()[:, :, None]  # (3, B, 1)
    Wp = W + 2
    padded = torch.nn.functional.pad(depth, (1, 1, 1, 1)).reshape(-1)
    # Every voxel of the visited blocks, as (B, R^3) arrays. The update is done block-densely (whole
    # rows of the layers gathered and written back, non-updated voxels blended with weight 0): that
    # streams through memory instead of gathering/scattering single voxels, and needs no index list.
    z = A[2] + Lp[2]
    z_min = max(config.depth_min_m, 1e-3)
    buf = z.clamp(min=z_min).reciprocal_()  # no 0/0 NaN; voxels with z < z_min are rejected below
    uv = torch.add(A[0], Lp[0]).mul_(buf).clamp_(0, W + 1)
    pix = uv.to(torch.int32)  # truncation = floor on these non-negative values (the +0.5 is in P)
    torch.add(A[1], Lp[1], out=uv).mul_(buf).clamp_(0, H + 1)
    row = uv.to(torch.int32)
    del uv
    pix.add_(row, alpha=Wp)  # padded-image index
    d_all = padded.index_select(0, pix.view(-1)).view_as(z)
    sdf_all = torch.sub(d_all, z, out=buf)
    tr = config.truncation_m
    upd = (sdf_all >= -tr) & (d_all > 0) & (z > z_min)
    del d_all
    if config.weight_mode == "constant":
        w_obs = upd.to(torch.float32)
    else:
        w_obs = z.square_().reciprocal_().clamp_(max=1.0).mul_(upd)
    del z
    w_blk = store.layers["weight"].index_select(0, slots)
    w_sum = w_blk.add_(w_obs)
    # Blend factor of the new observation; 0 (state unchanged, exactly) where the voxel is not updated.
    a = w_obs.div_(w_sum.clamp(min=1e-12))
    t_blk = store.layers["tsdf"].index_select(0, slots)
    t_obs = torch.mul(sdf_all, 1.0 / tr).clamp_(max=1.0)
    t_blk.lerp_(t_obs, a)  # t + a (t_obs - t) in one pass
    del t_obs
    store.layers["tsdf"].index_copy_(0, slots, t_blk)
    store.layers["weight"].index_copy_(0, slots, w_sum.clamp_(max=config.max_weight))
    # Unpadded pixel index ((row - 1) W + col - 1), clamped: border voxels are not updated (a = 0), so
    # any in-image pixel will do for them, and the color image needs no padded copy.
    pix_img = torch.sub(pix, row, alpha=2).sub_(W + 1).clamp_(0, H * W - 1)
    del pix, row
    if color is not None and "color" in store.layers:
        c_obs = color.reshape(-1, 3).index_select(0, pix_img.view(-1)).view(*a.shape, 3).to(torch.float32)
        c_blk = store.layers["color"].index_select(0, slots)
        # A materialised (B, R^3, 3) weight: broadcasting a stride-0 innermost dimension of 3 is ~4x slower.
        c_blk.lerp_(c_obs, a[..., None].expand_as(c_blk).contiguous())
        store.layers["color"].index_copy_(0, slots, c_blk)
    num_updated = upd.sum()  # read by the caller when it syncs anyway
    if select_band_m is None:
        sel = upd
    elif select_band_m > 0:
        sel = upd & (sdf_all.abs() < select_band_m)
    else:
        empty = torch.zeros(0, dtype=torch.int64, device=depth.device)
        return Observation(voxel=empty, pixel=empty, sdf_m=empty.to(torch.float32), slots=slots,
                           updated_count=num_updated)
    idx = torch.nonzero(sel.view(-1)).flatten()
    shift = n_local.bit_length() - 1  # R^3 is a power of two: block = idx >> shift, local = idx & (R^3 - 1)
    voxel = slots.index_select(0, idx >> shift).mul_(n_local).add_(idx & (n_local - 1))
    pixel = pix_img.view(-1).index_select(0, idx).to(torch.int64)
    sdf = sdf_all.view(-1).index_select(0, idx)
    return Observation(voxel=voxel, pixel=pixel, sdf_m=sdf, slots=slots, updated_count=num_updated)
