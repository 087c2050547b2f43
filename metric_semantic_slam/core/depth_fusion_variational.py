"""Variational depth fusion: robust data terms + edge-aware Huber-TV, primal-dual in torch.

Energy, in units of ``s = sigma_ref`` (``u = d / s``)::

    E(u) = sum_i sum_p 1/2 lambda_i(p) (u - f_i)^2  +  mu sum_p [h_delta(g_x d_x u) + h_delta(g_y d_y u)]

with ``lambda_i = w_i (s / sigma_i)^2 * valid_i * rho_i`` (inverse-variance weights with validity
indicators; ``rho_i = 1 / (1 + (r_i / (k sigma_i))^2)`` are Cauchy robust weights recomputed every few
iterations, i.e. iteratively reweighted least squares for a robust data term), ``h_delta`` the Huber norm
(anisotropic) and ``g = exp(-|jump| / (beta delta))`` edge weights from the initial depth. Solved with the first-order
primal-dual algorithm of Chambolle and Pock ("A first-order primal-dual algorithm for convex problems
with applications to imaging", JMIV 2011, Algorithm 1), warm-started from the local fusion, so a few
tens of iterations per frame suffice. Device-agnostic: everything is torch on ``config.device``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time

import numpy as np
import torch

from .depth_confidence import SourceConfidence

__all__ = ["VariationalFusion", "primal_dual_huber_tv"]

_log = logging.getLogger(__name__)


def _grad(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences with Neumann boundary (last row/column 0)."""
    gx = torch.zeros_like(u)
    gy = torch.zeros_like(u)
    gx[:, :-1] = u[:, 1:] - u[:, :-1]
    gy[:-1, :] = u[1:, :] - u[:-1, :]
    return gx, gy


def _div(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`_grad`."""
    d = torch.zeros_like(px)
    d[:, 0] = px[:, 0]
    d[:, 1:-1] = px[:, 1:-1] - px[:, :-2]
    d[:, -1] = -px[:, -2]
    d[0, :] += py[0, :]
    d[1:-1, :] += py[1:-1, :] - py[:-2, :]
    d[-1, :] += -py[-2, :]
    return d


def primal_dual_huber_tv(u0: torch.Tensor, f: torch.Tensor, lam: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor,
                         mu: float, delta: float | torch.Tensor, iterations: int, reweight=None, reweight_every: int = 10
                         ) -> torch.Tensor:
    """Minimise ``sum_i 1/2 lam_i (u - f_i)^2 + mu (Huber_delta(wx dx u) + Huber_delta(wy dy u))`` (Chambolle-Pock).

    ``wx``/``wy`` in [0, 1] weight forward differences (their last column/row is ignored: Neumann
    boundary). ``reweight(u) -> lam`` (optional) updates the data weights every ``reweight_every``
    iterations. In-place tensor ops on preallocated buffers keep the CPU cost per iteration low.
    Shape: u0 (H, W), f (S, H, W), lam (S, H, W), wx, wy (H, W) -> u (H, W).
    """
    if u0.ndim != 2 or f.shape != lam.shape or f.shape[1:] != u0.shape or wx.shape != u0.shape or wy.shape != u0.shape:
        raise ValueError(f"shape mismatch: u0 {tuple(u0.shape)}, f {tuple(f.shape)}, lam {tuple(lam.shape)}, "
                         f"wx {tuple(wx.shape)}, wy {tuple(wy.shape)}")
    if u0.shape[0] < 2 or u0.shape[1] < 2 or iterations == 0:
        return u0.clone()
    tau = sigma = 0.99 / math.sqrt(8.0)  # tau * sigma * ||K||^2 < 1 with ||K||^2 <= 8 (|w| <= 1)
    # The duals are kept multiplied by the edge weights (q = w p, so |p| <= mu becomes |q| <= w mu): the
    # divergence then reads q directly, which saves two passes over the image per iteration. A zero
    # weight on the last column/row (Neumann boundary) keeps q there at 0, so the divergence below is a
    # plain backward difference. (New tensors: the caller's weights are left as they are.)
    sx = wx.square().mul_(sigma)
    sy = wy.square().mul_(sigma)
    bx = wx.mul(mu)
    by = wy.mul(mu)
    for t in (sx[:, -1], bx[:, -1], sy[-1, :], by[-1, :]):
        t.zero_()
    nbx, nby = -bx, -by
    # delta may vary per pixel (a Huber threshold proportional to depth).
    if isinstance(delta, torch.Tensor):
        shrink = torch.mul(delta, sigma / max(mu, 1e-12)).add_(1.0).reciprocal_()
    else:
        shrink = 1.0 / (1.0 + sigma * delta / max(mu, 1e-12))
    u = u0.clone()
    ubar = u0.clone()
    u_next = torch.empty_like(u)
    qx = torch.zeros_like(u)
    qy = torch.zeros_like(u)
    g = torch.zeros_like(u)  # gradient scratch; its last row/column only ever meets a zero weight

    def data_terms(lam_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # u_next = (u + tau div + tau sum(lam f)) / (1 + tau sum(lam)) = (u + tau div) inv + c
        inv_ = (lam_.sum(0) * tau).add_(1.0).reciprocal_()
        return (lam_ * f).sum(0).mul_(tau).mul_(inv_), inv_

    c, inv = data_terms(lam)
    for it in range(iterations):
        torch.sub(ubar[:, 1:], ubar[:, :-1], out=g[:, :-1])
        # Huber prox (the shrink) then the anisotropic projection onto |q| <= w mu (a clamp).
        qx.addcmul_(sx, g).mul_(shrink).clamp_(nbx, bx)
        torch.sub(ubar[1:, :], ubar[:-1, :], out=g[:-1, :])
        qy.addcmul_(sy, g).mul_(shrink).clamp_(nby, by)
        torch.add(u, qx, alpha=tau, out=u_next)
        u_next[:, 1:].sub_(qx[:, :-1], alpha=tau)
        u_next.add_(qy, alpha=tau)
        u_next[1:, :].sub_(qy[:-1, :], alpha=tau)
        torch.addcmul(c, u_next, inv, out=u_next)
        torch.lerp(u, u_next, 2.0, out=ubar)  # over-relaxation: 2 u_next - u
        u, u_next = u_next, u
        if reweight is not None and (it + 1) % reweight_every == 0 and it + 1 < iterations:
            c, inv = data_terms(reweight(u))
    return u


def _edge_aware_solve(u0: torch.Tensor, f: torch.Tensor, sig2: torch.Tensor, w: torch.Tensor, c) -> torch.Tensor:
    """The robust, edge-aware Huber-TV refinement of ``u0`` in ``sigma_ref`` units (shape-static: no host sync).

    Shape: u0 (H, W) (0 = no local depth); f, sig2 (S, H, W) source depth and variance (inf = invalid);
    w (S, 1, 1) source weights -> u (H, W).
    """
    inv_ref = float(np.float32(1.0 / float(c.sigma_ref_m)))
    valid_t = u0 > 0
    inv_k2 = 1.0 / float(c.outlier_k) ** 2

    def reweight(u: torch.Tensor) -> torch.Tensor:
        # Cauchy weights: a residual of k std halves a source's weight. lam0 / (1 + r^2 / (k^2 sig^2))
        # written as w / (sig^2 + r^2 / k^2): fewer passes over the (S, H, W) arrays.
        return torch.sub(u[None], f).square_().mul_(inv_k2).add_(sig2).reciprocal_().mul_(w)

    lam = reweight(u0)
    # Per-pixel Huber threshold grows with depth (as do noise and slanted-plane slopes), so planes
    # stay in the quadratic regime and only real jumps are treated as edges.
    delta = torch.clamp(u0, min=0.3 * inv_ref).mul_(float(c.huber_delta_m))
    # Edge weights exp(-|jump| / (beta delta)): no smoothing across jumps nor across validity borders
    # (holes are decoupled, so their start value does not matter). The last column/row is unused.
    neg_inv = torch.reciprocal(delta).mul_(-1.0 / float(c.edge_beta))
    wx = torch.zeros_like(u0)
    wy = torch.zeros_like(u0)
    torch.sub(u0[:, 1:], u0[:, :-1], out=wx[:, :-1])
    torch.sub(u0[1:, :], u0[:-1, :], out=wy[:-1, :])
    wx.abs_().mul_(neg_inv).exp_()
    wy.abs_().mul_(neg_inv).exp_()
    wx[:, :-1].mul_(valid_t[:, 1:] & valid_t[:, :-1])
    wy[:-1, :].mul_(valid_t[1:, :] & valid_t[:-1, :])
    return primal_dual_huber_tv(u0, f, lam, wx, wy, float(c.tv_weight), delta, int(c.iterations),
                                reweight=reweight, reweight_every=int(c.reweight_every))


class _CudaGraphSolve:
    """The whole refinement for one (sources, H, W) shape captured once as a CUDA graph.

    Inputs go through one pinned host buffer and one host->device copy (depth and sigma of each
    source, then the local depth), the graph replays every kernel of the solve, and the result comes
    back through one pinned buffer: three submissions and one stream sync per frame instead of ~150
    launches. Raises whatever the capture raises (the caller falls back to eager execution).
    """

    def __init__(self, n_sources: int, shape: tuple[int, int], weights: tuple[float, ...], config,
                 device: torch.device) -> None:
        S, (H, W) = n_sources, shape
        self.S, self.device, self.config = S, device, config
        self.h_in = torch.empty((2 * S + 1, H, W), dtype=torch.float32, pin_memory=True)
        self.h_in_np = self.h_in.numpy()
        self.h_out = torch.empty((H, W), dtype=torch.float32, pin_memory=True)
        self.h_out_np = self.h_out.numpy()
        self.d_in = torch.zeros((2 * S + 1, H, W), dtype=torch.float32, device=device)
        self.d_in[2 * S].fill_(1.0)  # a plausible start for the warm-up run
        self.w = torch.tensor(weights, dtype=torch.float32, device=device)[:, None, None]
        stream = torch.cuda.current_stream(device)
        side = torch.cuda.Stream(device)
        side.wait_stream(stream)
        with torch.cuda.stream(side):  # warm-up outside the capture (lazy initialisations)
            self._body()
        stream.wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):  # other threads may use CUDA
            self.d_out = self._body()
        torch.cuda.synchronize(device)

    def _body(self) -> torch.Tensor:
        S, c = self.S, self.config
        inv_ref = np.float32(1.0 / float(c.sigma_ref_m))  # the eager path's scalar: equal results
        f = self.d_in[:S].mul(inv_ref)
        sig2 = self.d_in[S:2 * S].mul(inv_ref).square_()
        u0 = self.d_in[2 * S].mul(inv_ref)
        return _edge_aware_solve(u0, f, sig2, self.w, c).mul_(float(c.sigma_ref_m))

    def __call__(self, sources: list, local_depth_m: np.ndarray) -> np.ndarray:
        """Refined depth in meters (a view of the pinned output buffer: copy before the next call)."""
        S = self.S
        for i, x in enumerate(sources):
            np.copyto(self.h_in_np[i], x.depth_m)
            np.copyto(self.h_in_np[S + i], x.sigma_m)
        np.copyto(self.h_in_np[2 * S], local_depth_m)
        self.d_in.copy_(self.h_in, non_blocking=True)
        self.graph.replay()
        self.h_out.copy_(self.d_out, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return self.h_out_np


_CUDA_SOLVE_LOCK = threading.Lock()
"""One CUDA solve at a time in a process: while one thread captures a CUDA graph, a copy or a launch on the
legacy stream from another thread invalidates the capture (several fusers side by side, depth_fusion_node's
``workers``). The solve is ~2 ms of GPU time, so serializing it costs little."""


class VariationalFusion:
    """Refines a local fusion result with the variational energy (one object per stream).

    On CUDA the solve of each input shape is captured once as a CUDA graph and replayed
    (``use_cuda_graph``); if the capture fails it runs eagerly (the same code) and says so once in the log.
    Several objects may refine in parallel threads: their CUDA solves take turns (:data:`_CUDA_SOLVE_LOCK`).
    """

    def __init__(self, config, use_cuda_graph: bool = True) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.use_cuda_graph = bool(use_cuda_graph) and self.device.type == "cuda"
        self._graphs: dict[tuple, _CudaGraphSolve] = {}

    def _graph_for(self, srcs: list, shape: tuple[int, int]) -> _CudaGraphSolve | None:
        key = (len(srcs), tuple(shape), tuple(float(wt) for _, wt in srcs))
        g = self._graphs.get(key)
        if g is None:
            if len(self._graphs) >= 4:  # a stream has one shape; bound the graphs' memory anyway
                self._graphs.clear()
            try:
                g = self._graphs[key] = _CudaGraphSolve(len(srcs), shape, key[2], self.config, self.device)
            except Exception as e:  # noqa: BLE001 -- any capture failure: the eager path gives the same result
                _log.warning("variational fusion: CUDA graph capture failed (%s: %s); running eagerly",
                             type(e).__name__, e)
                self.use_cuda_graph = False
                return None
        return g

    def refine(self, local, active: SourceConfidence | None, stereo: SourceConfidence | None,
               temporal: SourceConfidence | None = None):
        """Variational fused depth, warm-started from ``local`` (a ``FusedDepth``); keeps its validity and std.

        Shape: sources (H, W) -> ``FusedDepth`` (H, W).
        """
        from .depth_fusion import FusedDepth  # circular at import time

        t0 = time.perf_counter()
        c = self.config
        srcs = [(x, w) for x, w in ((active, c.w_active), (stereo, c.w_stereo), (temporal, c.w_temporal))
                if x is not None and w > 0]
        valid = local.valid
        if not srcs or not valid.any():
            return local
        with _CUDA_SOLVE_LOCK if self.device.type == "cuda" else contextlib.nullcontext():
            depth = self._solve(srcs, local)
        depth *= valid
        bad = valid & ~(depth > 0)  # NaN or non-positive: never expected, but never published
        if bad.any():
            depth[bad] = local.depth_m[bad]
        conf, sigma, sources = local.confidence, local.sigma_m, local.sources
        timings = dict(local.timings_s)
        timings["fusion"] = timings.get("fusion", 0.0) + time.perf_counter() - t0
        return FusedDepth(depth_m=depth, confidence=conf, sigma_m=sigma, sources=sources, method="variational",
                          timings_s=timings)

    def _solve(self, srcs: list, local) -> np.ndarray:
        """The refined depth in meters, a new array (validity not applied yet). Shape: -> (H, W) float32."""
        c = self.config
        s_ref = float(c.sigma_ref_m)
        graph = self._graph_for(srcs, local.depth_m.shape) if self.use_cuda_graph else None
        if graph is not None:
            return graph([x for x, _ in srcs], local.depth_m).copy()  # a new array: the buffer is reused
        dev = self.device
        inv_ref = np.float32(1.0 / s_ref)
        # Sources' depth in sigma_ref units; invalid pixels have sigma = inf, hence lambda = 0.
        shape = (len(srcs), *local.depth_m.shape)
        f = torch.empty(shape, dtype=torch.float32, device=dev)
        sig2 = torch.empty(shape, dtype=torch.float32, device=dev)
        for i, (x, _) in enumerate(srcs):  # scaled straight into the stacked arrays: one pass each
            torch.mul(torch.from_numpy(x.depth_m).to(dev), inv_ref, out=f[i])
            torch.mul(torch.from_numpy(x.sigma_m).to(dev), inv_ref, out=sig2[i]).square_()
        w = torch.tensor([wt for _, wt in srcs], dtype=torch.float32, device=dev)[:, None, None]
        # Not in place: on the CPU from_numpy shares the caller's array.
        u0 = torch.from_numpy(local.depth_m).to(dev).mul(inv_ref)  # 0 where the local fusion has no depth
        u = _edge_aware_solve(u0, f, sig2, w, c)
        return u.mul_(s_ref).cpu().numpy()
