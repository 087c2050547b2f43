"""Dense RGB-D tracking on SE(3): point-to-plane ICP + photometric error, Gauss-Newton, coarse-to-fine.

Minimises ``E = sum rho(r_icp / sigma_icp) + w_rgb * sum rho(r_rgb / sigma_rgb)`` over the pose
``T_ref_cur`` (current camera -> reference camera), with ``rho`` the Huber loss (iteratively reweighted).

- ICP (KinectFusion, Newcombe et al. 2011): current vertices mapped into the reference and projected
  there (projective association); ``r_icp = n_ref . (T p_cur - v_ref)``.
- Photometric (Kerl et al. 2013, "Robust odometry estimation for RGB-D cameras"): reference pixels with a
  strong gradient and valid depth are warped into the current image; ``r_rgb = I_cur(w(p)) - I_ref(p)``.
- Updates are left-multiplied, ``T <- exp(xi) T`` with ``xi = (rho, phi)`` as in :mod:`core.geometry`.
- A level's ``cache["dynamic"]`` ((H, W) bool, set by the caller) marks pixels to leave out (moving
  objects): the caller also zeroes their depth, which removes them from ICP and photometric references;
  here photometric samples that land on them in the current frame are dropped.

An optional rotation prior (from gyro preintegration) adds ``|log(R R_prior^T)|^2 / sigma_rot^2``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import se3_exp, skew, so3_log
from .dense_terms_np import (LinearSystem, fit_brightness_affine, icp_current_points, icp_reference_pack, icp_system_np,
                             rgb_reference_points, rgb_system_np)
from .pyramid import PyramidLevel

__all__ = ["TrackerConfig", "RotationPrior", "TrackerResult", "RgbdTracker"]


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`RgbdTracker`."""

    #: Iterations per pyramid level, finest level first; its length is the number of levels used.
    iterations: tuple[int, ...] = (4, 6, 8, 10)
    #: Finest level actually optimised (1 skips the full-resolution level: ~4x faster, slightly less exact).
    finest_level: int = 0
    #: Finest level of the ICP term (None = ``finest_level``): full-resolution normals of a noisy sensor
    #: are poor, while the photometric term still gains from the finest image.
    icp_finest_level: int | None = None
    #: Use the point-to-plane ICP term.
    use_icp: bool = True
    #: Use the photometric term.
    use_rgb: bool = True
    #: Weight of the photometric term relative to ICP (after each is divided by its sigma).
    w_rgb: float = 1.0
    #: Expected ICP residual (m): residuals are divided by it before the Huber loss.
    sigma_icp_m: float = 0.01
    #: Expected photometric residual (intensity in [0, 1]).
    sigma_rgb: float = 0.04
    #: Scale the ICP sigma with depth as structured-light noise does, ``sigma * max(z, 0.5)^2`` (z in m,
    #: Nguyen et al. 2012: axial noise grows quadratically); False keeps it constant.
    icp_depth_weighting: bool = False
    #: Remove the median photometric residual each iteration (auto-exposure / lighting offset).
    rgb_offset_compensation: bool = False
    #: Fit a global brightness change ``I_cur ~ gain * I_ref + offset`` per pair and pose (robust least
    #: squares) and take photometric residuals against it: lighting changes and auto-exposure are not
    #: motion. Takes precedence over ``rgb_offset_compensation``.
    rgb_affine_compensation: bool = False
    #: Huber threshold on the normalised residual.
    huber_k: float = 1.345
    #: ICP associations farther apart than this (m, at the finest level; doubled per level) are dropped.
    icp_max_dist_m: float = 0.1
    #: ICP associations whose normals differ by more than this angle (rad) are dropped.
    icp_max_normal_angle_rad: float = 0.6
    #: Photometric pixels need a gradient magnitude above this (intensity per pixel).
    min_gradient: float = 0.01
    #: Photometric samples whose warped depth disagrees with the current depth by more than this
    #: fraction are occluded or disoccluded and dropped.
    occlusion_rel: float = 0.1
    #: Levenberg-Marquardt damping added to the Hessian diagonal (relative).
    damping: float = 1e-4
    #: Stop a level when the update is smaller than this (norm of the twist).
    min_update: float = 1e-5
    #: Use at most this many points per term at one level (random stride), to bound the cost.
    max_points: int = 40000
    #: CPU path: photometric Jacobians from the reference gradients, computed once per reference
    #: (inverse compositional: ~20% cheaper, but ATE on tum_fr1_rpy_90 rose 1.49 -> 1.57 cm under fast
    #: rotation), instead of the current gradients at the warped points every iteration.
    rgb_inverse_compositional: bool = False

    def validate(self) -> "TrackerConfig":
        if not self.iterations or any(i < 0 for i in self.iterations):
            raise ValueError(f"iterations must be non-negative per level, got {self.iterations}")
        if not 0 <= self.finest_level < len(self.iterations):
            raise ValueError(f"finest_level {self.finest_level} outside 0..{len(self.iterations) - 1}")
        if self.icp_finest_level is not None and not self.finest_level <= self.icp_finest_level < self.levels:
            raise ValueError(f"icp_finest_level {self.icp_finest_level} outside {self.finest_level}..{self.levels - 1}")
        if not (self.use_icp or self.use_rgb):
            raise ValueError("at least one of use_icp / use_rgb must be set")
        if self.sigma_icp_m <= 0 or self.sigma_rgb <= 0 or self.huber_k <= 0 or self.w_rgb < 0:
            raise ValueError("sigmas and huber_k must be positive and w_rgb non-negative")
        return self

    @property
    def levels(self) -> int:
        return len(self.iterations)


@dataclass
class RotationPrior:
    """A prior on the rotation of ``T_ref_cur``: ``R_ref_cur`` with isotropic std ``sigma_rad``.

    Shape: R_ref_cur (3, 3).
    """

    R_ref_cur: np.ndarray
    sigma_rad: float


@dataclass
class TrackerResult:
    """Outcome of one :meth:`RgbdTracker.track` call.

    Shape: T_ref_cur (4, 4), hessian and covariance (6, 6) over ``(rho, phi)``.
    ``inlier_ratio`` is the fraction of valid current pixels (finest optimised level) that found an ICP
    association (or, without ICP, of photometric samples kept); ``residual`` the RMS of normalised
    residuals at the last iteration; ``condition`` the smallest/largest eigenvalue of the Hessian.
    """

    T_ref_cur: np.ndarray
    hessian: np.ndarray
    covariance: np.ndarray
    inlier_ratio: float
    residual: float
    condition: float
    num_icp: int
    num_rgb: int
    iterations: int
    per_level: list[dict] = field(default_factory=list)


def _huber_weights(r: torch.Tensor, k: float) -> torch.Tensor:
    a = r.abs()
    return torch.where(a <= k, torch.ones_like(a), k / a.clamp(min=1e-12))


def _adjoint(T: np.ndarray) -> np.ndarray:
    # T exp(xi) T^-1 = exp(Ad xi) for (rho, phi) twists
    R, t = T[:3, :3], T[:3, 3]
    A = np.zeros((6, 6))
    A[:3, :3] = R
    A[:3, 3:] = skew(t) @ R
    A[3:, 3:] = R
    return A


def _subsample(idx: torch.Tensor, max_points: int) -> torch.Tensor:
    if idx.numel() <= max_points:
        return idx
    step = idx.numel() / max_points
    pick = (torch.arange(max_points, device=idx.device, dtype=torch.float64) * step).long()
    return idx[pick]


class RgbdTracker:
    """Frame-to-reference dense tracker; stateless apart from its config (the caller keeps keyframes)."""

    #: On CPU tensors, evaluate the terms with numpy + cv2 (:mod:`.dense_terms_np`, several times faster
    #: than torch there); False forces the torch code (used on GPUs) everywhere.
    cpu_fast_path: bool = True

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = (config or TrackerConfig()).validate()

    # ---------------------------------------------------------------- per-term linear systems
    def _icp_system(self, ref: PyramidLevel, cur_pts: torch.Tensor, cur_nrm: torch.Tensor, R: torch.Tensor,
                    t: torch.Tensor, max_dist: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        cfg = self.config
        fx, fy, cx, cy = ref.intrinsics
        h, w = ref.shape
        q = cur_pts @ R.T + t
        z = q[:, 2]
        zs = z.clamp(min=1e-6)
        u = torch.round(fx * q[:, 0] / zs + cx).long()
        v = torch.round(fy * q[:, 1] / zs + cy).long()
        inside = (z > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        flat = (v.clamp(0, h - 1) * w + u.clamp(0, w - 1))
        vr = ref.vertices.reshape(-1, 3)[flat]
        nr = ref.normals.reshape(-1, 3)[flat]
        okr = ref.normal_valid.reshape(-1)[flat]
        diff = q - vr
        nc = cur_nrm @ R.T
        ok = inside & okr & (diff.norm(dim=1) < max_dist) & ((nc * nr).sum(1) > np.cos(cfg.icp_max_normal_angle_rad))
        q, nr, diff = q[ok], nr[ok], diff[ok]
        sigma = torch.full_like(diff[:, 2], cfg.sigma_icp_m)
        if cfg.icp_depth_weighting:
            sigma = sigma * q[:, 2].clamp(min=0.5) ** 2
        r = (nr * diff).sum(1) / sigma
        J = torch.cat([nr, torch.linalg.cross(q, nr, dim=1)], dim=1) / sigma[:, None]
        wgt = _huber_weights(r, cfg.huber_k)
        return J, r, wgt, int(ok.sum())

    def _rgb_system(self, ref_pts: torch.Tensor, ref_int: torch.Tensor, cur: PyramidLevel, R: torch.Tensor,
                    t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        cfg = self.config
        fx, fy, cx, cy = cur.intrinsics
        h, w = cur.shape
        p = (ref_pts - t) @ R  # R^T (P - t), row-vector form
        z = p[:, 2]
        zs = z.clamp(min=1e-6)
        u = fx * p[:, 0] / zs + cx
        v = fy * p[:, 1] / zs + cy
        inside = (z > 1e-3) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
        grid = torch.stack([u / max(w - 1, 1) * 2 - 1, v / max(h - 1, 1) * 2 - 1], dim=-1)[None, None]
        stack = torch.stack([cur.intensity, cur.grad_x, cur.grad_y, cur.depth], 0)[None]
        samp = F.grid_sample(stack, grid, mode="bilinear", align_corners=True)[0, :, 0]  # (4, N)
        # Nearest depth: a bilinear blend across an edge would be neither surface.
        un = torch.round(u).long().clamp(0, w - 1)
        vn = torch.round(v).long().clamp(0, h - 1)
        dcur = cur.depth[vn, un]
        visible = (dcur <= 0) | ((dcur - z).abs() <= cfg.occlusion_rel * z)
        ok = inside & visible
        excluded = cur.cache.get("dynamic")  # (H, W) bool numpy: pixels of moving objects (see vio.py)
        if excluded is not None:
            ok &= ~torch.as_tensor(excluded, device=ok.device)[vn, un]
        p, zs = p[ok], zs[ok]
        ic, gx, gy = samp[0][ok], samp[1][ok], samp[2][ok]
        diff = ic - ref_int[ok]
        if cfg.rgb_affine_compensation and diff.numel() > 0:
            gain, offset = fit_brightness_affine(ref_int[ok].double().cpu().numpy(), ic.double().cpu().numpy())
            diff = ic - (gain * ref_int[ok] + offset)
        elif cfg.rgb_offset_compensation and diff.numel() > 0:
            diff = diff - diff.median()
        r = diff / cfg.sigma_rgb
        iz = 1.0 / zs
        jp = torch.stack([gx * fx * iz, gy * fy * iz, -(gx * fx * p[:, 0] + gy * fy * p[:, 1]) * iz * iz], 1)
        g = jp @ R.T  # (R jp^T)^T
        P = ref_pts[ok]
        J = -torch.cat([g, torch.linalg.cross(P, g, dim=1)], dim=1) / cfg.sigma_rgb
        wgt = _huber_weights(r, cfg.huber_k)
        return J, r, wgt, int(ok.sum())

    # ---------------------------------------------------------------- main loop
    def _level_terms_np(self, rl: PyramidLevel, cl: PyramidLevel, level: int):
        """CPU version of :meth:`_level_terms` (numpy + cv2, see :mod:`.dense_terms_np`)."""
        cfg = self.config
        scale = 2.0 ** level
        use_icp = cfg.use_icp and level >= (cfg.finest_level if cfg.icp_finest_level is None
                                            else cfg.icp_finest_level)
        use_rgb = cfg.use_rgb and cfg.w_rgb > 0
        if use_icp:
            pack = icp_reference_pack(rl)
            cur_pts, cur_nrm, icp_frac, n_cur_valid = icp_current_points(cl, cfg.max_points)
            cos_max = float(np.cos(cfg.icp_max_normal_angle_rad))
            max_dist = cfg.icp_max_dist_m * scale
        if use_rgb:
            P, inten, Jr = rgb_reference_points(rl, cfg.min_gradient, cfg.max_points, cfg.sigma_rgb)
            cur_int = cl.intensity.numpy()
            cur_depth = cl.depth.numpy()
            n_rgb_cand = max(P.shape[1], 1)
            cur_stack = None
            if not cfg.rgb_inverse_compositional:
                cur_stack = cl.cache.get("rgb_stack")
                if cur_stack is None:
                    cur_stack = np.ascontiguousarray(np.stack([cur_int, cl.grad_x.numpy(), cl.grad_y.numpy()], -1))
                    cl.cache["rgb_stack"] = cur_stack

        def system(T: np.ndarray):
            R = T[:3, :3].astype(np.float32)
            t = T[:3, 3].astype(np.float32)
            Hs = np.zeros((6, 6))
            bs = np.zeros(6)
            sq, cnt, n_icp, n_rgb, inl = 0.0, 0, 0, 0, None
            if use_icp:
                H, b, s, c, n_icp = icp_system_np(pack, rl.shape, rl.intrinsics, cur_pts, cur_nrm, R, t, max_dist,
                                                  cos_max, cfg.sigma_icp_m, cfg.icp_depth_weighting, cfg.huber_k)
                Hs += H
                bs += b
                sq += s
                cnt += c
                inl = n_icp / icp_frac / n_cur_valid if icp_frac > 0 else 0.0
            if use_rgb:
                H, b, s, n_rgb = rgb_system_np(P, inten, Jr, cur_int, cur_depth, cl.intrinsics, R, t, cfg.sigma_rgb,
                                               cfg.huber_k, cfg.occlusion_rel, cfg.rgb_offset_compensation, cur_stack,
                                               cl.cache.get("dynamic"), cfg.rgb_affine_compensation)
                Hs += cfg.w_rgb * H
                bs += cfg.w_rgb * b
                sq += s * cfg.w_rgb
                cnt += n_rgb
                if not cfg.use_icp:
                    inl = n_rgb / n_rgb_cand
            return Hs, bs, sq, cnt, (n_icp, n_rgb, inl)

        return system

    def _level_terms(self, rl: PyramidLevel, cl: PyramidLevel, level: int):
        """Per-level constants of one reference and a function ``T -> (H, b, sq, cnt, stats)``."""
        if self.cpu_fast_path and rl.depth.device.type == "cpu" and cl.depth.device.type == "cpu":
            return self._level_terms_np(rl, cl, level)
        cfg = self.config
        scale = 2.0 ** level
        use_icp = cfg.use_icp and level >= (cfg.finest_level if cfg.icp_finest_level is None
                                            else cfg.icp_finest_level)
        device = rl.depth.device
        if use_icp:
            idx = torch.nonzero(cl.normal_valid.reshape(-1)).squeeze(1)
            n_cur_valid = max(int(cl.depth_valid.sum()), 1)
            icp_frac = _subsample(idx, cfg.max_points).numel() / max(idx.numel(), 1)
            idx = _subsample(idx, cfg.max_points)
            cur_pts = cl.vertices.reshape(-1, 3)[idx]
            cur_nrm = cl.normals.reshape(-1, 3)[idx]
        use_rgb = cfg.use_rgb and cfg.w_rgb > 0
        if use_rgb:
            gmag = torch.sqrt(rl.grad_x ** 2 + rl.grad_y ** 2)
            sel = (rl.depth_valid & (gmag > cfg.min_gradient)).reshape(-1)
            if rl.cache.get("dynamic") is not None:
                sel &= ~torch.as_tensor(rl.cache["dynamic"], device=device).reshape(-1)
            ridx = _subsample(torch.nonzero(sel).squeeze(1), cfg.max_points)
            ref_pts = rl.vertices.reshape(-1, 3)[ridx]
            ref_int = rl.intensity.reshape(-1)[ridx]
            n_rgb_cand = max(ridx.numel(), 1)

        def system(T: np.ndarray):
            Rt = torch.as_tensor(T[:3, :3], dtype=torch.float32, device=device)
            tt = torch.as_tensor(T[:3, 3], dtype=torch.float32, device=device)
            Hs = torch.zeros((6, 6), dtype=torch.float64, device=device)
            bs = torch.zeros(6, dtype=torch.float64, device=device)
            sq, cnt, n_icp, n_rgb, inl = 0.0, 0, 0, 0, None
            if use_icp:
                J, r, wgt, n_icp = self._icp_system(rl, cur_pts, cur_nrm, Rt, tt, cfg.icp_max_dist_m * scale)
                Jw = J * wgt[:, None]
                Hs += (Jw.T @ J).double()
                bs += (Jw.T @ r).double()
                sq += float((r * r * wgt).sum())
                cnt += r.numel()
                inl = n_icp / icp_frac / n_cur_valid if icp_frac > 0 else 0.0
            if use_rgb:
                J, r, wgt, n_rgb = self._rgb_system(ref_pts, ref_int, cl, Rt, tt)
                Jw = J * (wgt * cfg.w_rgb)[:, None]
                Hs += (Jw.T @ J).double()
                bs += (Jw.T @ r).double()
                sq += float((r * r * wgt).sum()) * cfg.w_rgb
                cnt += r.numel()
                if not cfg.use_icp:
                    inl = n_rgb / n_rgb_cand
            return Hs.cpu().numpy(), bs.cpu().numpy(), sq, cnt, (n_icp, n_rgb, inl)

        return system

    def track(self, ref: list[PyramidLevel], cur: list[PyramidLevel], T_ref_cur_init: np.ndarray,
              rotation_prior: RotationPrior | None = None,
              extra_refs: list[tuple[list[PyramidLevel], np.ndarray]] | None = None,
              extra_systems: list[LinearSystem] | None = None) -> TrackerResult:
        """Estimate ``T_ref_cur`` starting from ``T_ref_cur_init``.

        ``extra_refs`` holds more references ``(pyramid, T_ref_other)`` with known poses in ``ref`` (e.g.
        the previous frame next to the keyframe); their residuals join the same least-squares problem
        (Jacobians mapped with the adjoint), which averages the errors of the references.
        ``extra_systems`` are further terms ``T_ref_cur -> (H, b, sq, count)`` (e.g. the semantic
        reprojection term) added at every iteration of every level.
        Statistics (inlier ratio, counts) are those of ``ref``.
        Shape: pyramids with at least ``config.levels`` levels each; T_ref_cur_init (4, 4).
        """
        cfg = self.config
        refs = [(ref, None)] + [(p, np.asarray(T, dtype=np.float64)) for p, T in (extra_refs or [])]
        for p, _ in refs:
            if len(p) < cfg.levels:
                raise ValueError(f"pyramids need {cfg.levels} levels, got {len(p)}")
        if len(cur) < cfg.levels:
            raise ValueError(f"pyramids need {cfg.levels} levels, got {len(cur)}")
        T = np.asarray(T_ref_cur_init, dtype=np.float64).copy()
        H = np.zeros((6, 6))
        total_iters = 0
        n_icp = n_rgb = 0
        res = float("nan")
        inlier_ratio = 0.0
        per_level: list[dict] = []
        for level in range(cfg.levels - 1, cfg.finest_level - 1, -1):
            systems = []
            for p, T_ref_other in refs:
                if T_ref_other is None:
                    systems.append((self._level_terms(p[level], cur[level], level), None, None))
                else:
                    T_other_ref = np.linalg.inv(T_ref_other)
                    systems.append((self._level_terms(p[level], cur[level], level), T_other_ref,
                                    _adjoint(T_other_ref)))
            for _ in range(cfg.iterations[level]):
                Hn = np.zeros((6, 6))
                bn = np.zeros(6)
                sq, cnt = 0.0, 0
                for k, (system, T_other_ref, A) in enumerate(systems):
                    if A is None:
                        Hk, bk, sqk, cntk, stats = system(T)
                        n_icp, n_rgb = stats[0], stats[1]
                        if stats[2] is not None:
                            inlier_ratio = stats[2]
                    else:
                        Hk, bk, sqk, cntk, _ = system(T_other_ref @ T)
                        Hk, bk = A.T @ Hk @ A, A.T @ bk
                    Hn += Hk
                    bn += bk
                    sq += sqk
                    cnt += cntk
                total_iters += 1
                T, res, H, stop = gauss_newton_update(T, Hn, bn, sq, cnt, extra_systems, rotation_prior, cfg)
                if stop:
                    break
            per_level.append({"level": level, "icp": n_icp, "rgb": n_rgb, "residual": res})
        return tracker_result(T, H, inlier_ratio, res, n_icp, n_rgb, total_iters, per_level)


def gauss_newton_update(T: np.ndarray, Hn: np.ndarray, bn: np.ndarray, sq: float, cnt: int, extra_systems,
                        rotation_prior: "RotationPrior | None", cfg: "TrackerConfig"
                        ) -> tuple[np.ndarray, float, np.ndarray, bool]:
    """One damped Gauss-Newton step on the dense terms' normal equations (``Hn``, ``bn``: 6x6, 6; ``sq``,
    ``cnt``: sum of squared weighted residuals and their count), after adding the extra terms' systems
    (callables ``T -> (H, b, sq, cnt)``) and the rotation prior. ``T`` is ``T_ref_cur`` (4x4).
    Returns (updated T, RMS residual, the Hessian, whether to stop iterating this level)."""
    for extra in extra_systems or ():
        Hk, bk, sqk, cntk = extra(T)
        Hn += Hk
        bn += bk
        sq += sqk
        cnt += cntk
    if rotation_prior is not None:
        r0 = so3_log(T[:3, :3] @ rotation_prior.R_ref_cur.T)
        wp = 1.0 / rotation_prior.sigma_rad ** 2
        Hn[3:, 3:] += wp * np.eye(3)
        bn[3:] += wp * r0
    res = float(np.sqrt(sq / max(cnt, 1)))
    if cnt < 6:
        return T, res, Hn, True
    A_ = Hn + cfg.damping * np.diag(np.diag(Hn)) + 1e-9 * np.eye(6)
    try:
        xi = -np.linalg.solve(A_, bn)
    except np.linalg.LinAlgError:
        return T, res, Hn, True
    if not np.all(np.isfinite(xi)):
        return T, res, Hn, True
    return se3_exp(xi) @ T, res, Hn, bool(np.linalg.norm(xi) < cfg.min_update)


def tracker_result(T: np.ndarray, H: np.ndarray, inlier_ratio: float, res: float, n_icp: int, n_rgb: int,
                   iterations: int, per_level: list[dict]) -> "TrackerResult":
    """The :class:`TrackerResult` of a finished alignment: covariance and conditioning from the Hessian,
    ``T`` (``T_ref_cur``) re-orthonormalised."""
    ev = np.linalg.eigvalsh(0.5 * (H + H.T)) if np.all(np.isfinite(H)) else np.zeros(6)
    condition = float(ev[0] / ev[-1]) if ev[-1] > 0 else 0.0
    try:
        cov = np.linalg.inv(H + 1e-9 * np.eye(6)) if ev[0] > 0 else np.full((6, 6), np.inf)
    except np.linalg.LinAlgError:
        cov = np.full((6, 6), np.inf)
    # Keep T a proper rigid transform despite float drift in the update chain.
    U, _, Vt = np.linalg.svd(T[:3, :3])
    T[:3, :3] = U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt
    return TrackerResult(T_ref_cur=T, hessian=H, covariance=cov, inlier_ratio=float(inlier_ratio),
                         residual=res, condition=condition, num_icp=n_icp, num_rgb=n_rgb,
                         iterations=iterations, per_level=per_level)
