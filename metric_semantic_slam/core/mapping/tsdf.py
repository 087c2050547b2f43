"""Projective TSDF + color integration into voxel blocks (torch, CPU or CUDA).

Method (Curless & Levoy 1996; voxel hashing after Niessner et al. 2013): every voxel of the blocks
near the observed surface is projected into the depth image; its projective signed distance is
``sdf = depth(u, v) - z_voxel`` (positive in front of the surface). Voxels with
``sdf >= -truncation`` get ``tsdf = min(sdf, truncation) / truncation`` fused by a weighted running
average; the weight is capped at ``max_weight`` so the map can still change.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .voxel_blocks import BlockStore, pack_keys, unpack_keys

__all__ = ["TsdfConfig", "Observation", "allocate_blocks", "integrate_tsdf", "local_voxel_offsets"]

WEIGHT_MODES = ("constant", "inverse_square")


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

    Shape: voxel (K,) int64 flat voxel index (``slot * R^3 + local``); pixel (K,) int64 flat pixel index
    (``v * W + u``); sdf_m (K,) float32 projective signed distance. ``slots`` (B,) are the blocks visited.
    """

    voxel: torch.Tensor
    pixel: torch.Tensor
    sdf_m: torch.Tensor
    slots: torch.Tensor


def local_voxel_offsets(R: int, device: torch.device) -> torch.Tensor:
    """Integer offsets of the voxels of a block in local-index order (x fastest). Shape: (R^3, 3) int64."""
    r = torch.arange(R, device=device)
    z, y, x = torch.meshgrid(r, r, r, indexing="ij")
    return torch.stack([x.flatten(), y.flatten(), z.flatten()], dim=1)


def _rows_times(X: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``X @ M.T`` for (N, 3) x (3, 3) as broadcast multiply-adds (BLAS is slow on skinny inputs)."""
    return X[:, 0:1] * M[:, 0] + X[:, 1:2] * M[:, 1] + X[:, 2:3] * M[:, 2]


def _intrinsics(K: torch.Tensor) -> tuple[float, float, float, float]:
    return float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])


def allocate_blocks(store: BlockStore, config: TsdfConfig, depth: torch.Tensor, K: torch.Tensor,
                    T_world_camera: torch.Tensor) -> torch.Tensor:
    """Allocate the blocks within the truncation band of a depth image; return their slots (unique).

    Shape: depth (H, W) float32 meters (0 = invalid), K (3, 3), T_world_camera (4, 4) -> slots (B,) int64.
    """
    s = config.allocation_stride
    d = depth[::s, ::s]
    H, W = depth.shape
    fx, fy, cx, cy = _intrinsics(K)
    dev = depth.device
    xs = (torch.arange(0, W, s, device=dev, dtype=torch.float32) - cx) / fx
    ys = (torch.arange(0, H, s, device=dev, dtype=torch.float32) - cy) / fy
    ok = (d > 0).reshape(-1)
    idx = torch.nonzero(ok).flatten()
    dd = d.reshape(-1).index_select(0, idx)
    rx = xs.index_select(0, idx % xs.shape[0])
    ry = ys.index_select(0, torch.div(idx, xs.shape[0], rounding_mode="floor"))
    tr = config.truncation_m
    Rm = T_world_camera[:3, :3].tolist()  # python floats: no tiny-tensor ops in the loop
    t = T_world_camera[:3, 3].tolist()
    inv_b = 1.0 / config.block_size_m
    keys = []
    for off in (-tr, 0.0, tr):
        z = (dd + off).clamp_(min=1e-3)
        x = rx * z
        y = ry * z
        # world = R @ (x, y, z) + t, written out: (N, 3) @ (3, 3) matmuls are slow for skinny inputs
        c = [torch.floor(((Rm[i][0] * x + Rm[i][1] * y + Rm[i][2] * z) + t[i]) * inv_b).to(torch.int64)
             for i in range(3)]
        keys.append(pack_keys(torch.stack(c, dim=1)))
    keys = torch.unique(torch.cat(keys))
    slots, _ = store.insert(unpack_keys(keys))
    return slots


def integrate_tsdf(store: BlockStore, config: TsdfConfig, slots: torch.Tensor, depth: torch.Tensor,
                   color: torch.Tensor | None, K: torch.Tensor, T_world_camera: torch.Tensor,
                   offsets: torch.Tensor) -> Observation:
    """Fuse one depth (+ color) image into the blocks ``slots``; return the updated voxels.

    Layers used: ``tsdf`` (float32), ``weight`` (float32), ``color`` (float32 RGB 0-255, optional).
    Shape: depth (H, W) float32 meters (0 = invalid); color (H, W, 3) uint8 or None; K (3, 3);
    T_world_camera (4, 4); offsets (R^3, 3) from :func:`local_voxel_offsets`.
    """
    H, W = depth.shape
    vs = config.voxel_size_m
    R_blk = store.R
    n_local = store.voxels_per_block
    fx, fy, cx, cy = _intrinsics(K)
    Twc = T_world_camera.to(torch.float64)
    Rcw = Twc[:3, :3].T  # rigid inverse: cheaper than a general 4x4 inverse
    tcw = -(Rcw @ Twc[:3, 3])
    # Project with a zero-padded depth image: out-of-image voxels land on the border (depth 0), so no
    # explicit in-image test is needed. Intrinsics, the +1 border shift and the +0.5 rounding are
    # folded into per-block and per-voxel parts so each (B, R^3) array costs one add.
    P = torch.tensor([[fx, 0.0, cx + 1.5], [0.0, fy, cy + 1.5], [0.0, 0.0, 1.0]], dtype=torch.float64,
                     device=Rcw.device) @ Rcw
    origins = (store.index.coords[slots].to(torch.float64) * R_blk + 0.5) * vs
    A = (_rows_times(origins, P) + (P @ Rcw.T @ tcw)).to(torch.float32)  # (B, 3): K'(Rcw o + tcw)
    Lp = _rows_times(offsets.to(torch.float64) * vs, P).to(torch.float32)  # (R^3, 3)
    Wp = W + 2
    padded = torch.nn.functional.pad(depth, (1, 1, 1, 1)).reshape(-1)
    z = A[:, 2:3] + Lp[None, :, 2]
    z_min = max(config.depth_min_m, 1e-3)
    zc = z.clamp(min=z_min)  # no 0/0 NaN in the division; voxels with z < z_min are rejected below
    up = torch.div(A[:, 0:1] + Lp[None, :, 0], zc).clamp_(0, W + 1).trunc_()
    vp = torch.div(A[:, 1:2] + Lp[None, :, 1], zc).clamp_(0, H + 1).trunc_()
    del zc
    pix_all = torch.add(up, vp, alpha=Wp).to(torch.int64).reshape(-1)
    del up, vp
    d_all = padded.index_select(0, pix_all).view_as(z)
    sdf_all = d_all - z
    tr = config.truncation_m
    upd = (sdf_all >= -tr) & (d_all > 0) & (z > z_min)
    idx = torch.nonzero(upd.reshape(-1)).flatten()
    b = torch.div(idx, n_local, rounding_mode="floor")
    local = idx - b * n_local
    voxel = slots.index_select(0, b) * n_local + local
    pp = pix_all.index_select(0, idx)
    prow = torch.div(pp, Wp, rounding_mode="floor")
    pixel = (prow - 1) * W + (pp - prow * Wp - 1)  # back to the unpadded image
    sdf = sdf_all.reshape(-1).index_select(0, idx)
    tsdf_obs = (sdf / tr).clamp_(max=1.0)
    if config.weight_mode == "constant":
        w_obs = torch.ones_like(sdf)
    else:
        zz = z.reshape(-1).index_select(0, idx)
        w_obs = (1.0 / (zz * zz)).clamp_(max=1.0)

    tsdf_v = store.view("tsdf")
    weight_v = store.view("weight")
    w_old = weight_v.index_select(0, voxel)
    w_sum = w_old + w_obs
    a = w_obs / w_sum  # blend factor of the new observation
    t_old = tsdf_v.index_select(0, voxel)
    tsdf_v.index_copy_(0, voxel, t_old.add_((tsdf_obs - t_old).mul_(a)))
    weight_v.index_copy_(0, voxel, w_sum.clamp_(max=config.max_weight))
    if color is not None and "color" in store.layers:
        color_v = store.view("color")
        c_obs = color.reshape(-1, 3).index_select(0, pixel).to(torch.float32)
        c_old = color_v.index_select(0, voxel)
        color_v.index_copy_(0, voxel, c_old.add_((c_obs - c_old).mul_(a[:, None])))
    return Observation(voxel=voxel, pixel=pixel, sdf_m=sdf, slots=slots)
