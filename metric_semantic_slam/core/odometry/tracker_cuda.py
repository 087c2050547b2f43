"""Dense RGB-D tracker for GPUs: static shapes, no host syncs inside a linearisation, CUDA graphs.

The same problem as :class:`.rgbd_tracker.RgbdTracker` (point-to-plane ICP + photometric error with
Huber weights, coarse-to-fine, Gauss-Newton with LM damping, rotation prior, several references),
arranged so that a GPU runs it without stalls:

- No ``nonzero``/boolean indexing (they sync with the host and give data-dependent shapes): the same
  evenly strided ``max_points`` subset as the CPU path is found with one prefix sum
  (:func:`strided_subset`) and packed by a scatter into fixed-length arrays with a validity mask.
- All references of a frame (keyframe and previous frame) are linearised in one batch; one linearisation
  (residuals, Jacobians, Huber weights, and the 7x7 moment matrix ``A^T A`` of
  ``A = sqrt(w) [J, r]``, which holds ``H``, ``b`` and the weighted squared sum) is a fixed sequence of
  ~90 kernels. On CUDA, per pyramid level, the first iteration (point subsets + linearisation) and the
  later ones (linearisation) are each captured once into a ``torch.cuda.CUDAGraph``, pose upload and
  result download (pinned buffers) included, and replayed.
- A frame's pyramids sit in byte arenas (:class:`_Stage`); one made by :class:`CudaPyramidBuilder`
  (the pyramid construction in one graph replay) loads with one device copy, and a reference already
  loaded (the keyframe) is not copied again.
- The 6x6 solve, the se(3) update and the convergence test stay on the host in float64 (numpy), exactly
  as in the CPU tracker: its early stop (``min_update``) ends most levels after one or two iterations
  (4-6 per frame on tum_fr1_rpy), so reading ~1 KB back per iteration costs far less than a fixed
  iteration count (24) run blind on the device.

Frames and conventions as in :mod:`.rgbd_tracker`: ``T = T_ref_cur``, updates ``T <- exp(xi) T`` with
``xi = (rho, phi)``. On a CPU the same code runs eagerly (that is how it is tested against the CPU
tracker); only the graph capture/replay is CUDA-specific, and a failed capture falls back to eager
execution (logged once).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .dense_terms_np import LinearSystem
from .pyramid import PyramidLevel
from .rgbd_tracker import (RgbdTracker, RotationPrior, TrackerConfig, TrackerResult, _adjoint, gauss_newton_update,
                           tracker_result)

__all__ = ["CudaRgbdTracker", "CudaPyramidBuilder", "pose_weights", "strided_subset", "strided_subset_mask"]

log = logging.getLogger(__name__)


def strided_subset(mask: torch.Tensor, max_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The evenly strided subset of the True entries of ``mask`` (last dim) that the CPU tracker keeps,
    and each kept entry's position in that subset.

    The CPU path keeps ``idx[floor(j * n / M)]`` for ``j < M`` of the ``n`` valid indices ``idx``
    (all of them when ``n <= M``); here an entry of rank ``r`` is kept when some ``j`` hits it, i.e.
    ``j = ceil(r M / n)`` satisfies ``j < M`` and ``j n < (r + 1) M`` (exact integer arithmetic), and
    ``j`` (or ``r`` when ``n <= M``) is its position; no shape depends on the data.
    Shape: mask (..., N) bool -> keep (..., N) bool, position (..., N) int64 (meaningful where kept).
    """
    m = int(max_points)
    # Ranks from one 1-D scan of the flattened mask: a scan along the last dim of a (B, N) tensor runs
    # one slow block per row on CUDA, the 1-D scan is a fast device-wide one.
    flat = torch.cumsum(mask.reshape(-1).to(torch.int64), 0).reshape(mask.shape)
    rank = flat - (flat[..., :1] - mask[..., :1].to(torch.int64)) - 1
    n = rank[..., -1:] + 1
    n_safe = n.clamp(min=1)
    j = torch.div(rank * m + n_safe - 1, n_safe, rounding_mode="floor")
    few = n <= m
    keep = mask & (((j < m) & (j * n_safe < (rank + 1) * m)) | few)
    return keep, torch.where(few, rank, j)


def strided_subset_mask(mask: torch.Tensor, max_points: int) -> torch.Tensor:
    """The kept entries of :func:`strided_subset`. Shape: (..., N) bool -> (..., N) bool."""
    return strided_subset(mask, max_points)[0]


def _compact_index(mask: torch.Tensor, max_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the strided subset packed to a fixed length ``M = min(max_points, N)``, and their validity.

    Unused slots hold index 0 and are invalid. Shape: mask (..., N) -> index (..., M) int64, valid (..., M) bool.
    """
    N = mask.shape[-1]
    M = min(int(max_points), N)
    keep, pos = strided_subset(mask, M)
    slots = torch.zeros(mask.shape[:-1] + (M + 1,), dtype=torch.int64, device=mask.device)
    # Kept entries land at their position; the others all on the spare slot M, cut off below.
    src = torch.arange(N, device=mask.device).expand(mask.shape)
    slots.scatter_(-1, torch.where(keep, pos, torch.full_like(pos, M)), src)
    count = keep.sum(-1, keepdim=True)
    valid = torch.arange(M, device=mask.device) < count
    return torch.where(valid, slots[..., :M], torch.zeros_like(slots[..., :M])), valid


def _sqrt_huber(r: torch.Tensor, k: float, scale: float = 1.0) -> torch.Tensor:
    """``scale * sqrt(w)`` of the Huber IRLS weight ``w = min(1, k / |r|)`` of normalised residuals.

    ``k / max(|r|, k)`` is that weight (1 inside the threshold), in fewer kernels than a ``where``.
    Shape: (...) -> (...).
    """
    return torch.sqrt((k * scale * scale) / r.abs().clamp(min=k))


def _moments(A: torch.Tensor, s: torch.Tensor, ok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A s)^T (A s)`` per batch over the samples with ``ok``, and the count of those samples.

    With ``A = [J sigma, r sigma]`` and ``s = sqrt(w) / sigma`` it holds ``H`` (6x6), ``b`` and the
    weighted squared sum in one 7x7 matrix. Shape: A (B, N, 7), s / ok (B, N) -> (B, 7, 7), (B,).
    """
    # where, not a product: a rejected sample may hold inf/nan (e.g. behind the camera).
    As = torch.where(ok[..., None], A * s[..., None], torch.zeros((), dtype=A.dtype, device=A.device))
    # One (7 x N) @ (N x 7) product is a skinny GEMM that cuBLAS runs on a handful of tiles (~0.4 ms at
    # N = 76800 on an H100); many short chunks in one batched GEMM plus a sum fill the GPU.
    B, N = As.shape[0], As.shape[1]
    chunks = _chunk_count(N)
    Ac = As.reshape(B * chunks, N // chunks, 7)
    m = torch.bmm(Ac.transpose(1, 2), Ac).reshape(B, chunks, 7, 7).sum(1)
    return m, ok.sum(-1).to(torch.float32)


def _chunk_count(n: int, most: int = 256) -> int:
    """The largest divisor of ``n`` not above ``most`` (chunks of equal length without padding)."""
    for c in range(min(most, n), 0, -1):
        if n % c == 0:
            return c
    return 1


_ARENA_FIELDS = ("intensity", "depth", "grad_x", "grad_y", "vertices", "normals", "depth_valid", "normal_valid")


def arena_layout(pyramid: list[PyramidLevel]) -> tuple[tuple, int]:
    """Byte layout of every field of every level in one buffer: float fields first, bool fields last
    (so every float starts at a multiple of 4 bytes), the total padded to 16.

    Returns ``(entries, total_bytes)`` with entries ``(level, field, offset, dtype, shape)``.
    """
    fields = [(i, n) for i, lvl in enumerate(pyramid) for n in _ARENA_FIELDS if getattr(lvl, n).dtype != torch.bool]
    fields += [(i, n) for i, lvl in enumerate(pyramid) for n in _ARENA_FIELDS if getattr(lvl, n).dtype == torch.bool]
    entries, offset = [], 0
    for i, n in fields:
        t = getattr(pyramid[i], n)
        entries.append((i, n, offset, t.dtype, tuple(t.shape)))
        offset += t.numel() * t.element_size()
    return tuple(entries), (offset + 15) // 16 * 16


def _arena_view(arena: torch.Tensor, off: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A field inside a byte arena: ``arena`` (bytes,) -> ``shape``, or (B, bytes) -> ``(B,) + shape``."""
    n = int(np.prod(shape)) if shape else 1
    return arena[..., off:off + n * dtype.itemsize].view(dtype).view(arena.shape[:-1] + tuple(shape))


class _Stage:
    """Static device copies of one frame's pyramids: the current one and ``B`` references, all levels.

    Each pyramid sits in one byte arena laid out by :func:`arena_layout`, so a pyramid made by
    :class:`CudaPyramidBuilder` (whose levels carry that arena) loads with one device copy; other
    pyramids load field by field. Dynamic-object masks come from the host and sit beside the arenas.
    """

    def __init__(self, entries: tuple, total: int, shapes: list[tuple[int, int]], B: int,
                 device: torch.device) -> None:
        self.entries, self.B = entries, B
        self.cur = torch.zeros(total, dtype=torch.uint8, device=device)
        self.ref = torch.zeros(B, total, dtype=torch.uint8, device=device)
        self.cur_dyn = [torch.zeros(s, dtype=torch.bool, device=device) for s in shapes]
        self.ref_dyn = [torch.zeros((B,) + tuple(s), dtype=torch.bool, device=device) for s in shapes]
        self.loaded: list[list[PyramidLevel] | None] = [None] * B  # the pyramid held by each reference slot
        self._dyn_set: dict[tuple[int, int], bool] = {}  # (level, slot; -1 = current) -> buffer holds a mask
        self._where = {(lvl, name): (off, dtype, shape) for lvl, name, off, dtype, shape in entries}

    def field(self, level: int, name: str, ref: bool) -> torch.Tensor:
        off, dtype, shape = self._where[(level, name)]
        return _arena_view(self.ref if ref else self.cur, off, dtype, shape)

    def load(self, slot: int, pyramid: list[PyramidLevel], levels: range) -> None:
        """Copy ``pyramid`` into the current arena (``slot`` -1) or reference slot ``slot``."""
        dst = self.cur if slot < 0 else self.ref[slot]
        got = pyramid[0].cache.get("arena")
        if got is not None and (got[0] is self.entries or got[0] == self.entries):
            dst.copy_(got[1])
        else:
            pairs = [(_arena_view(dst, *self._where[(lvl, name)]), getattr(pyramid[lvl], name))
                     for lvl in levels for name in _ARENA_FIELDS]
            torch._foreach_copy_([d for d, _ in pairs], [s_ for _, s_ in pairs])
        for lvl in levels:
            buf = self.cur_dyn[lvl] if slot < 0 else self.ref_dyn[lvl][slot]
            m = pyramid[lvl].cache.get("dynamic")
            if m is not None:
                buf.copy_(torch.as_tensor(np.ascontiguousarray(m, dtype=bool)))
                self._dyn_set[(lvl, slot)] = True
            elif self._dyn_set.get((lvl, slot), False):
                buf.zero_()
                self._dyn_set[(lvl, slot)] = False


class _LevelProblem:
    """Static buffers and the two per-level functions (``setup`` once per frame, ``linearize`` per
    iteration) for ``B`` references against one current frame at one pyramid level.

    Buffers: ``ref_*`` (B, H, W[, 3]), ``cur_*`` (H, W[, 3]); ``pose`` (flat float32): per reference the
    row-vector maps of :func:`pose_weights` (ICP ``(4, B, 5)`` then photometric ``(B, 4, 8)``); output
    ``out`` (flat float32): per term (ICP, photometric) the moment matrices ``(B, 7, 7)`` and counts
    ``(B,)``, then the ICP kept fraction, the valid current pixels and the photometric candidates of
    reference 0.
    """

    def __init__(self, cfg: TrackerConfig, level: int, k: tuple[float, ...], use_icp: bool, use_rgb: bool,
                 stage: _Stage) -> None:
        B = stage.B
        device = stage.cur.device
        h, w = shape = stage.cur_dyn[level].shape
        self.cfg, self.level, self.shape, self.k, self.B = cfg, level, (h, w), k, B
        self.use_icp, self.use_rgb, self.device = use_icp, use_rgb, device
        f32, b8 = dict(dtype=torch.float32, device=device), dict(dtype=torch.bool, device=device)
        z = torch.zeros
        # Inputs: views of the stage's arenas (loaded once per frame for all levels).
        f = stage.field
        self.ref_vert, self.ref_nrm = f(level, "vertices", True), f(level, "normals", True)
        self.ref_nvalid, self.ref_dvalid = f(level, "normal_valid", True), f(level, "depth_valid", True)
        self.ref_int, self.ref_gx, self.ref_gy = (f(level, n, True) for n in ("intensity", "grad_x", "grad_y"))
        self.ref_dyn = stage.ref_dyn[level]
        self.cur_vert, self.cur_nrm = f(level, "vertices", False), f(level, "normals", False)
        self.cur_nvalid, self.cur_dvalid = f(level, "normal_valid", False), f(level, "depth_valid", False)
        self.cur_int, self.cur_gx, self.cur_gy, self.cur_depth = (f(level, n, False) for n in
                                                                  ("intensity", "grad_x", "grad_y", "depth"))
        self.cur_dyn = stage.cur_dyn[level]
        self.pose = z(B * 20 + B * 32, **f32)
        self.icp_W = self.pose[:B * 20].view(4, B * 5)  # [[R^T, R^T K2], [t, t K2]] side by side
        self.rgb_W = self.pose[B * 20:].view(B, 4, 8)   # [[R, R K2, R^T], [-t R, -t R K2, 0]]
        # Setup products, read by linearize (preallocated so that both graphs see fixed addresses).
        # The point subsets (at most max_points per term, as on the CPU), packed to M points.
        self.M = M = min(cfg.max_points, h * w)
        # ICP: homogeneous current points over normals (w = 1 / 0), one GEMM maps both for every reference.
        self.icp_X, self.icp_valid = z(2 * M, 4, **f32), z(M, **b8)
        self.ref_pack = z(B, h * w, 6, **f32)
        # Photometric: homogeneous reference points (B, M, 4), their intensities and validity.
        self.rgb_P, self.rgb_int, self.rgb_valid = z(B, M, 4, **f32), z(B, M, **f32), z(B, M, **b8)
        self.cur_stack = z(1, 3, h, w, **f32)
        self.cur_static = z(h * w, **b8)  # not dynamic
        self.counts = z(3, **f32)
        self.out = z(2 * B * 50 + 3, **f32)
        self.uv_lo = torch.zeros(2, **f32)
        self.uv_max = torch.tensor([w - 1, h - 1], **f32)
        self.uv_pad_lo = torch.full((2,), -1.0, **f32)
        self.uv_pad_hi = self.uv_max + 1.0
        self.flat_w = torch.tensor([1.0, float(w)], **f32)  # (u, v) -> v * w + u
        self.grid_scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], **f32)
        self.f_col = torch.tensor([k[0], k[1]], **f32).reshape(2, 1, 1)
        self.minus_one = torch.full((2,), -1.0, **f32)
        # Host side of the pose input and of the output (pinned on CUDA: copied inside the graphs).
        pin = device.type == "cuda"
        self.pose_host = torch.zeros(self.pose.numel(), dtype=torch.float32, pin_memory=pin)
        self.out_host = torch.zeros(self.out.numel(), dtype=torch.float32, pin_memory=pin)
        #: (first iteration of a level: setup + linearize, later iterations: linearize), captured.
        self.graphs: tuple[torch.cuda.CUDAGraph, torch.cuda.CUDAGraph] | None = None
        self.needs_setup = True
        self.capture_tried = False

    # ------------------------------------------------------------------ per frame
    def setup(self) -> None:
        """Per-frame constants: ICP point subset, reference packs, photometric point subset."""
        cfg = self.cfg
        B = self.B
        counts = []
        if self.use_icp:
            nv = self.cur_nvalid.reshape(-1)
            n = nv.sum().to(torch.float32)
            idx, valid = _compact_index(nv, cfg.max_points)
            M = self.M
            self.icp_X[:M, :3].copy_(self.cur_vert.reshape(-1, 3)[idx])
            self.icp_X[:M, 3].fill_(1.0)
            self.icp_X[M:, :3].copy_(self.cur_nrm.reshape(-1, 3)[idx])
            self.icp_valid.copy_(valid)
            # kept fraction of the valid-normal points (0 when there are none), valid-depth pixels >= 1
            counts += [valid.sum().to(torch.float32) / n.clamp(min=1.0),
                       self.cur_dvalid.sum().to(torch.float32).clamp(min=1.0)]
            self.ref_pack.copy_(torch.cat([self.ref_vert, self.ref_nrm * self.ref_nvalid[..., None]], -1)
                                .reshape(B, -1, 6))
        else:
            counts += [torch.zeros((), device=self.device), torch.ones((), device=self.device)]
        if self.use_rgb:
            g2 = self.ref_gx * self.ref_gx + self.ref_gy * self.ref_gy
            sel = (self.ref_dvalid & (g2 > cfg.min_gradient ** 2) & ~self.ref_dyn).reshape(B, -1)
            idx, valid = _compact_index(sel, cfg.max_points)
            self.rgb_P[..., :3].copy_(torch.gather(self.ref_vert.reshape(B, -1, 3), 1,
                                                   idx[..., None].expand(-1, -1, 3)))
            self.rgb_P[..., 3].fill_(1.0)
            self.rgb_int.copy_(torch.gather(self.ref_int.reshape(B, -1), 1, idx))
            self.rgb_valid.copy_(valid)
            counts.append(valid[0].sum().to(torch.float32).clamp(min=1.0))
            self.cur_stack.copy_(torch.stack([self.cur_int, self.cur_gx, self.cur_gy], 0)[None])
            self.cur_static.copy_(~self.cur_dyn.reshape(-1))
        else:
            counts.append(torch.ones((), device=self.device))
        self.counts.copy_(torch.stack(counts))

    # ------------------------------------------------------------------ per iteration
    def _icp(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        B, M = self.B, self.M
        # (2M, 4) @ (4, B*5): current points and normals in every reference, with K q for the projection.
        Y = torch.mm(self.icp_X, self.icp_W).view(2 * M, B, 5).permute(1, 0, 2)
        q, nc, kq = Y[:, :M, :3], Y[:, M:, :3], Y[:, :M, 3:]
        z = q[..., 2]
        uv = torch.round(kq / z.clamp(min=1e-6)[..., None])
        uvc = torch.clamp(uv, min=self.uv_lo, max=self.uv_max)
        inside = (uv == uvc).all(-1) & (z > 1e-3)
        flat = torch.matmul(uvc, self.flat_w).to(torch.int64)
        g = torch.gather(self.ref_pack, 1, flat[..., None].expand(-1, -1, 6))
        nr = g[..., 3:]
        d = q - g[..., :3]
        # d.d, nc.nr and nr.d in one product and one sum
        dots = (torch.cat([d, nc, nr], -1) * torch.cat([d, nr, d], -1)).reshape(B, M, 3, 3).sum(-1)
        ok = (inside & self.icp_valid & (dots[..., 0] < (cfg.icp_max_dist_m * 2.0 ** self.level) ** 2)
              & (dots[..., 1] > math.cos(cfg.icp_max_normal_angle_rad)))
        J = torch.cat([nr, torch.linalg.cross(q, nr, dim=-1), dots[..., 2:]], -1)  # [J * sigma, r * sigma]
        if cfg.icp_depth_weighting:
            inv_sigma = (1.0 / cfg.sigma_icp_m) / z.clamp(min=0.5) ** 2
            s = _sqrt_huber(dots[..., 2] * inv_sigma, cfg.huber_k) * inv_sigma
        else:
            inv_sigma = 1.0 / cfg.sigma_icp_m
            s = _sqrt_huber(dots[..., 2] * inv_sigma, cfg.huber_k, inv_sigma)
        return _moments(J, s, ok)

    def _rgb(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        B = self.B
        W = self.rgb_W
        # (B, M, 4) @ (B, 4, 5): reference points in the current camera, and K p for the projection.
        Y = torch.bmm(self.rgb_P, W[:, :, :5])
        p, kp = Y[..., :3], Y[..., 3:]
        z = p[..., 2]
        iz = torch.reciprocal(z.clamp(min=1e-6))
        uv = kp * iz[..., None]
        inside = (uv == torch.clamp(uv, min=self.uv_lo, max=self.uv_max)).all(-1) & (z > 1e-3)
        uvs = torch.clamp(uv, min=self.uv_pad_lo, max=self.uv_pad_hi)  # finite for the sampler; inside unchanged
        grid = torch.addcmul(self.minus_one, uvs, self.grid_scale).reshape(1, B, -1, 2)
        smp = F.grid_sample(self.cur_stack, grid, mode="bilinear", align_corners=True)[0]  # (3, B, M)
        flat = torch.matmul(torch.clamp(torch.round(uvs), min=self.uv_lo, max=self.uv_max), self.flat_w)
        flat = flat.to(torch.int64)
        # Nearest depth: a bilinear blend across an edge would be neither surface.
        dcur = torch.take(self.cur_depth, flat)
        visible = (dcur <= 0) | ((dcur - z).abs() <= cfg.occlusion_rel * z)
        ok = inside & visible & self.rgb_valid & torch.take(self.cur_static, flat)
        diff = smp[0] - self.rgb_int
        if getattr(cfg, "rgb_affine_compensation", False):
            gain, offset = _brightness_affine(self.rgb_int, smp[0], ok)
            diff = smp[0] - (gain[:, None] * self.rgb_int + offset[:, None])
        elif cfg.rgb_offset_compensation:
            diff = diff - _masked_median(diff, ok)[:, None]
        diff = torch.where(ok, diff, torch.zeros((), device=diff.device))
        gf = smp[1:] * (self.f_col * iz)  # (gx fx / z, gy fy / z)
        jp = torch.cat([gf.permute(1, 2, 0), (-(gf[0] * p[..., 0] + gf[1] * p[..., 1]) * iz)[..., None]], -1)
        g = torch.bmm(jp, W[:, :3, 5:])  # R jp
        # [-J * sigma, r * sigma]: the sign of J is undone on the host (b = -A_J^T A_r).
        J = torch.cat([g, torch.linalg.cross(self.rgb_P[..., :3], g, dim=-1), diff[..., None]], -1)
        inv_sigma = 1.0 / cfg.sigma_rgb
        return _moments(J, _sqrt_huber(diff * inv_sigma, cfg.huber_k, inv_sigma), ok)

    def step(self, first: bool) -> None:
        """Pose in (host -> device), ``setup`` when ``first``, ``linearize``, moments out (device -> host)."""
        cuda = self.device.type == "cuda"
        self.pose.copy_(self.pose_host, non_blocking=cuda)
        if first:
            self.setup()
        self.linearize()
        self.out_host.copy_(self.out, non_blocking=cuda)

    def linearize(self) -> None:
        """Moment matrices of every reference at ``self.pose`` into ``self.out`` (no host sync)."""
        parts = []
        for use, term in ((self.use_icp, self._icp), (self.use_rgb, self._rgb)):
            if use:
                m, n = term()
                parts += [m.reshape(-1), n]
            else:
                parts.append(torch.zeros(self.B * 50, dtype=torch.float32, device=self.device))
        parts.append(self.counts)
        self.out.copy_(torch.cat(parts))


def _brightness_affine(ref: torch.Tensor, cur: torch.Tensor, ok: torch.Tensor, max_gain_ratio: float = 4.0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`.dense_terms_np.fit_brightness_affine` per row over the samples with ``ok``, without syncs.

    Least squares ``cur ~ gain * ref + offset``, once more on the samples within 3 MADs of the first fit;
    ``(1, 0)`` where a pass has fewer than 16 samples or no intensity spread (the CPU function's early
    returns). Shape: ref, cur, ok (B, N) -> gain, offset (B,) float32.
    """
    x, y = ref.double(), cur.double()
    keep = ok
    usable = torch.ones(ok.shape[0], dtype=torch.bool, device=ok.device)
    gain = offset = None
    for first in (True, False):
        kf = keep.double()
        n = kf.sum(-1)
        mx = (x * kf).sum(-1) / n.clamp(min=1.0)
        my = (y * kf).sum(-1) / n.clamp(min=1.0)
        dx = (x - mx[:, None]) * kf
        vx = (dx * dx).sum(-1)
        usable = usable & (n >= 16) & (vx > 1e-8 * n)
        gain = (torch.clamp((dx * (y - my[:, None])).sum(-1) / vx.clamp(min=1e-300), 1.0 / max_gain_ratio,
                            max_gain_ratio))
        offset = my - gain * mx
        if first:  # the second pass's inlier set is never used
            res = y - (gain[:, None] * x + offset[:, None])
            mad = _masked_median((res - _masked_median(res, keep)[:, None]).abs(), keep)
            keep = keep & (res.abs() <= 3.0 * 1.4826 * mad[:, None] + 1e-6)
    gain = torch.where(usable, gain, torch.ones_like(gain)).to(torch.float32)
    offset = torch.where(usable, offset, torch.zeros_like(offset)).to(torch.float32)
    return gain, offset


def _masked_median(x: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """``np.median`` of ``x[b][ok[b]]`` per row (mean of the two middle values; 0 for no samples).

    Shape: x, ok (B, N) -> (B,).
    """
    s = torch.sort(torch.where(ok, x, torch.full_like(x, float("inf"))), dim=-1).values
    n = ok.sum(-1, keepdim=True)
    lo = ((n - 1).clamp(min=0)) // 2
    hi = (n // 2).clamp(max=x.shape[-1] - 1)
    med = 0.5 * (torch.gather(s, -1, lo) + torch.gather(s, -1, hi))
    return torch.where(n > 0, med, torch.zeros_like(med))[:, 0]


@dataclass
class _Systems:
    """Host view of one linearisation: per reference the 7x7 moments ``[[H, b], [b^T, sq]]`` and the
    sample count of each term (photometric ``b`` still negated, see ``_rgb``), and the level counts.

    Shape: icp / rgb (B, 7, 7) float64; n_icp / n_rgb (B,); counts (3,).
    """

    icp: np.ndarray
    n_icp: np.ndarray
    rgb: np.ndarray
    n_rgb: np.ndarray
    counts: np.ndarray


def pose_weights(poses: list[np.ndarray], k: tuple[float, ...]) -> np.ndarray:
    """Row-vector maps of ``T_refk_cur`` for the GPU terms, flat float32 (see :class:`_LevelProblem`).

    ICP ``(4, B, 5)``: ``[x, 1] @ W = [R x + t, K2^T (R x + t)]``; photometric ``(B, 4, 8)``:
    ``[P, 1] @ W[:, :5] = [R^T (P - t), K2^T R^T (P - t)]`` and ``W[:3, 5:] = R^T``; ``K2 = K^T[:, :2]``.
    Shape: poses B x (4, 4) -> (B * 52,).
    """
    fx, fy, cx, cy = k
    K2 = np.array([[fx, 0.0], [0.0, fy], [cx, cy]])
    B = len(poses)
    icp = np.zeros((4, B, 5))
    rgb = np.zeros((B, 4, 8))
    for b, T in enumerate(poses):
        R, t = T[:3, :3], T[:3, 3]
        icp[:3, b, :3] = R.T
        icp[3, b, :3] = t
        icp[:, b, 3:] = icp[:, b, :3] @ K2
        rgb[b, :3, :3] = R
        rgb[b, 3, :3] = -t @ R
        rgb[b, :, 3:5] = rgb[b, :, :3] @ K2
        rgb[b, :3, 5:] = R.T
    return np.concatenate([icp.reshape(-1), rgb.reshape(-1)]).astype(np.float32)


class CudaRgbdTracker(RgbdTracker):
    """:class:`RgbdTracker` with batched, fixed-shape linearisations, captured in CUDA graphs on CUDA.

    Same ``track()`` signature and result (``extra_systems``, host callables such as the semantic term,
    are evaluated on the host each iteration, as in the CPU tracker). On CUDA a frame costs one device
    copy per new pyramid (field by field for pyramids not made by :class:`CudaPyramidBuilder`), then per
    Gauss-Newton iteration one graph replay and one wait for its ~1 KB result; nothing else synchronises.
    Not thread-safe: one instance per tracking thread (its static buffers are reused every frame).
    """

    #: Capture CUDA graphs on CUDA devices (False: run the same kernels eagerly, e.g. to profile them).
    use_cuda_graphs: bool = True

    def __init__(self, config: TrackerConfig | None = None) -> None:
        super().__init__(config)
        self._stages: dict[tuple, _Stage] = {}
        self._problems: dict[tuple, _LevelProblem] = {}
        self._warned = False

    # ------------------------------------------------------------------ plumbing
    def _stage(self, cur: list[PyramidLevel], B: int) -> _Stage:
        got = cur[0].cache.get("arena")
        entries, total = (got[0], got[1].numel()) if got is not None else arena_layout(cur)
        device = cur[self.config.finest_level].depth.device
        key = (entries, B, str(device))
        stage = self._stages.get(key)
        if stage is None:
            stage = _Stage(entries, total, [lvl.shape for lvl in cur], B, device)
            self._stages[key] = stage
        return stage

    def _load(self, stage: _Stage, refs: list[list[PyramidLevel]], cur: list[PyramidLevel]) -> None:
        levels = range(self.config.finest_level, self.config.levels)
        stage.load(-1, cur, levels)
        for b, p in enumerate(refs):
            # A reference already in its slot (the keyframe, frame after frame) is not copied again; the
            # slot keeps its levels alive, so identity means the same, never modified, tensors.
            held = stage.loaded[b]
            if held is None or len(held) != len(p) or any(x is not y for x, y in zip(held, p)):
                stage.load(b, p, levels)
                stage.loaded[b] = list(p)

    def _problem(self, stage: _Stage, level: int, k: tuple[float, ...], use_icp: bool, use_rgb: bool
                 ) -> _LevelProblem:
        key = (id(stage), level, use_icp, use_rgb)
        pb = self._problems.get(key)
        if pb is None:
            pb = _LevelProblem(self.config, level, k, use_icp, use_rgb, stage)
            self._problems[key] = pb
        pb.needs_setup = True
        if pb.device.type == "cuda" and self.use_cuda_graphs and pb.graphs is None and not pb.capture_tried:
            pb.capture_tried = True
            self._capture(pb)
        return pb

    def _capture(self, pb: _LevelProblem) -> None:
        """Warm up on a side stream, then capture the first and the later iterations; eager on failure."""
        try:
            side = torch.cuda.Stream(pb.device)
            side.wait_stream(torch.cuda.current_stream(pb.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    pb.step(True)
            torch.cuda.current_stream(pb.device).wait_stream(side)
            g_first, g_next = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
            with torch.cuda.graph(g_first):
                pb.step(True)
            with torch.cuda.graph(g_next):
                pb.step(False)
            pb.graphs = (g_first, g_next)
        except Exception as exc:  # noqa: BLE001 -- any capture problem: the eager kernels are still right
            pb.graphs = None
            if not self._warned:
                log.warning("CUDA graph capture failed (%s: %s); tracking runs eagerly", type(exc).__name__, exc)
                self._warned = True

    def _linearize(self, pb: _LevelProblem, poses: list[np.ndarray]) -> _Systems:
        pb.pose_host.numpy()[:] = pose_weights(poses, pb.k)
        first, pb.needs_setup = pb.needs_setup, False
        if pb.graphs is not None:
            pb.graphs[0 if first else 1].replay()
        else:
            pb.step(first)
        if pb.device.type == "cuda":
            torch.cuda.current_stream(pb.device).synchronize()
        o = pb.out_host.numpy().astype(np.float64)
        B = pb.B
        icp, rgb = o[:B * 50], o[B * 50:2 * B * 50]
        return _Systems(icp[:B * 49].reshape(B, 7, 7), icp[B * 49:], rgb[:B * 49].reshape(B, 7, 7), rgb[B * 49:],
                        o[2 * B * 50:])

    # ------------------------------------------------------------------ main loop
    def track(self, ref: list[PyramidLevel], cur: list[PyramidLevel], T_ref_cur_init: np.ndarray,
              rotation_prior: RotationPrior | None = None,
              extra_refs: list[tuple[list[PyramidLevel], np.ndarray]] | None = None,
              extra_systems: list[LinearSystem] | None = None) -> TrackerResult:
        """As :meth:`RgbdTracker.track` (same arguments, same result); see the module docstring."""
        cfg = self.config
        refs = [(ref, None)] + [(p, np.asarray(T, dtype=np.float64)) for p, T in (extra_refs or [])]
        for p, _ in refs:
            if len(p) < cfg.levels:
                raise ValueError(f"pyramids need {cfg.levels} levels, got {len(p)}")
        if len(cur) < cfg.levels:
            raise ValueError(f"pyramids need {cfg.levels} levels, got {len(cur)}")
        for level in range(cfg.finest_level, cfg.levels):
            c = cur[level]
            if any(p[level].shape != c.shape or p[level].intrinsics != c.intrinsics or p[level].depth.device
                   != c.depth.device for p, _ in refs):
                # Mixed cameras or devices: the general (per-point, dynamic-shape) path handles them.
                return super().track(ref, cur, T_ref_cur_init, rotation_prior, extra_refs, extra_systems)
        T = np.asarray(T_ref_cur_init, dtype=np.float64).copy()
        T_others = [None] + [np.linalg.inv(T_ro) for _, T_ro in refs[1:]]
        adjoints = [None] + [_adjoint(T_or) for T_or in T_others[1:]]
        use_rgb = cfg.use_rgb and cfg.w_rgb > 0
        H = np.zeros((6, 6))
        total_iters = 0
        n_icp = n_rgb = 0
        res = float("nan")
        inlier_ratio = 0.0
        per_level: list[dict] = []
        stage = self._stage(cur, len(refs))
        self._load(stage, [p for p, _ in refs], cur)
        for level in range(cfg.levels - 1, cfg.finest_level - 1, -1):
            use_icp = cfg.use_icp and level >= (cfg.finest_level if cfg.icp_finest_level is None
                                                else cfg.icp_finest_level)
            pb = self._problem(stage, level, cur[level].intrinsics, use_icp, use_rgb)
            for _ in range(cfg.iterations[level]):
                s = self._linearize(pb, [T if T_or is None else T_or @ T for T_or in T_others])
                icp_frac, n_cur_valid, n_rgb_cand = s.counts
                Hn = np.zeros((6, 6))
                bn = np.zeros(6)
                sq, cnt = 0.0, 0
                for k, A in enumerate(adjoints):
                    mi, mr = s.icp[k], s.rgb[k]
                    ni, nr = int(round(s.n_icp[k])), int(round(s.n_rgb[k]))
                    # the photometric b comes negated (see _LevelProblem._rgb)
                    Hk = mi[:6, :6] + cfg.w_rgb * mr[:6, :6] if use_rgb else mi[:6, :6].copy()
                    bk = mi[:6, 6] - cfg.w_rgb * mr[:6, 6] if use_rgb else mi[:6, 6].copy()
                    sq += mi[6, 6] + (cfg.w_rgb * mr[6, 6] if use_rgb else 0.0)
                    cnt += ni + (nr if use_rgb else 0)
                    if A is None:
                        n_icp = ni if use_icp else 0
                        n_rgb = nr if use_rgb else 0
                        if use_icp:
                            inlier_ratio = n_icp / icp_frac / n_cur_valid if icp_frac > 0 else 0.0
                        elif use_rgb and not cfg.use_icp:
                            inlier_ratio = n_rgb / n_rgb_cand
                    else:
                        Hk, bk = A.T @ Hk @ A, A.T @ bk
                    Hn += Hk
                    bn += bk
                total_iters += 1
                T, res, H, stop = gauss_newton_update(T, Hn, bn, sq, cnt, extra_systems, rotation_prior, cfg)
                if stop:
                    break
            per_level.append({"level": level, "icp": n_icp, "rgb": n_rgb, "residual": res})
        return tracker_result(T, H, inlier_ratio, res, n_icp, n_rgb, total_iters, per_level)


class CudaPyramidBuilder:
    """:func:`.pyramid.build_pyramid` of colour + depth images of one camera, captured in a CUDA graph.

    The same torch functions as the GPU branch of ``build_pyramid`` (so the same numbers), but one graph
    replay instead of ~200 kernel launches: the images go through pinned host buffers into static device
    buffers, the graph writes every level into one static arena, and each call returns levels that are
    views of one clone of the arena (one device copy), so pyramids stay valid after later calls.
    Off CUDA, or if the capture fails (logged once), the same functions run eagerly.
    Shape: color (H, W, 3) uint8 RGB or None (black), depth (H, W) float32 m -> list of levels.
    """

    _warned = False

    def __init__(self, camera, levels: int, min_depth_m: float, max_depth_m: float, first_geometry_level: int,
                 device: torch.device | str) -> None:
        self.camera, self.levels = camera, levels
        self.min_depth_m, self.max_depth_m, self.first_geometry_level = min_depth_m, max_depth_m, first_geometry_level
        self.device = torch.device(device)
        h, w = camera.height, camera.width
        cuda = self.device.type == "cuda"
        self._color_host = torch.zeros(h, w, 3, dtype=torch.uint8, pin_memory=cuda)
        self._depth_host = torch.zeros(h, w, dtype=torch.float32, pin_memory=cuda)
        self._color = torch.zeros(h, w, 3, dtype=torch.uint8, device=self.device)
        self._depth = torch.zeros(h, w, dtype=torch.float32, device=self.device)
        self._has_color = torch.zeros((), dtype=torch.float32, device=self.device)
        self._uploaded = torch.cuda.Event() if cuda else None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._arena: torch.Tensor | None = None
        self._entries: tuple | None = None  # arena layout (arena_layout), fixed by the first call
        self._pad = torch.zeros(0, dtype=torch.uint8, device=self.device)
        self._meta: list[tuple[float, float, float, float]] = []
        self._sizes: list[int] = []
        self._tried = False

    def _build(self) -> list[PyramidLevel]:
        from .pyramid import build_pyramid, rgb_to_intensity
        # A missing colour image is black (vio.py's rule): scale by a 0/1 flag instead of branching.
        intensity = rgb_to_intensity(self._color, self.device) * self._has_color
        return build_pyramid(intensity, self._depth, self.camera, self.levels, self.min_depth_m, self.max_depth_m,
                             self.first_geometry_level)

    _FIELDS = _ARENA_FIELDS

    def _pack(self, pyr: list[PyramidLevel]) -> torch.Tensor:
        """All fields of ``pyr`` in one byte tensor, laid out as ``self._entries`` (one concatenation)."""
        parts = [getattr(pyr[i], n).reshape(-1).view(torch.uint8) for i, n, _, _, _ in self._entries]
        return torch.cat(parts + [self._pad])

    def _capture(self) -> None:
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._arena = self._pack(self._build())
        self._graph = graph

    def __call__(self, color: np.ndarray | None, depth: np.ndarray) -> list[PyramidLevel]:
        h, w = self.camera.height, self.camera.width
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != (h, w) or (color is not None and np.asarray(color).shape[:2] != (h, w)):
            raise ValueError(f"images must be {(h, w)}, got depth {depth.shape}")
        cuda = self.device.type == "cuda"
        if self._uploaded is not None:
            self._uploaded.synchronize()  # the pinned buffers are free again
        self._depth_host.numpy()[:] = depth
        if color is not None:
            c = np.asarray(color)
            self._color_host.numpy()[:] = c[..., :3] if c.ndim == 3 else c[..., None]
        self._depth.copy_(self._depth_host, non_blocking=cuda)
        self._color.copy_(self._color_host, non_blocking=cuda)
        self._has_color.fill_(0.0 if color is None else 1.0)
        if self._uploaded is not None:
            self._uploaded.record()
        if self._entries is None:  # first call: the layout of the arena, from an eager build
            pyr = self._build()
            self._entries, total = arena_layout(pyr)
            self._sizes = [int(np.prod(e[4])) * e[3].itemsize for e in self._entries]
            self._pad = torch.zeros(total - sum(self._sizes), dtype=torch.uint8, device=self.device)
            self._sizes.append(self._pad.numel())
            self._meta = [lvl.intrinsics for lvl in pyr]
        if cuda and self._graph is None and not self._tried:
            self._tried = True
            try:
                self._capture()
            except Exception as exc:  # noqa: BLE001 -- eager kernels give the same pyramid
                self._graph = None
                if not CudaPyramidBuilder._warned:
                    log.warning("pyramid graph capture failed (%s: %s); building eagerly", type(exc).__name__, exc)
                    CudaPyramidBuilder._warned = True
        if self._graph is not None:
            self._graph.replay()
            arena = self._arena.clone()  # the graph rewrites its arena on every replay
        else:
            arena = self._pack(self._build())
        fields: list[dict] = [{} for _ in self._meta]
        # one split (the arena is in layout order) instead of a slice per field
        for (lvl, name, _, dtype, shape), chunk in zip(self._entries, torch.split(arena, self._sizes)):
            fields[lvl][name] = chunk.view(dtype).view(shape)
        out = [PyramidLevel(intrinsics=k, **f) for k, f in zip(self._meta, fields)]
        for lvl in out:
            lvl.cache["arena"] = (self._entries, arena)  # lets CudaRgbdTracker load it with one copy
        return out
