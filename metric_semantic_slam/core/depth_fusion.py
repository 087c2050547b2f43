"""Fusion of active depth and stereo depth into one depth map with a per-pixel confidence.

Both methods minimise (exactly or approximately) ``E(d) = w_stereo E_stereo(d) + w_tof E_tof(d) +
R_smooth(d) (+ R_temp(d))`` with data terms weighted by each source's inverse variance (see
:mod:`metric_semantic_slam.core.depth_confidence`):

- ``"local"``: per pixel, the inverse-variance mean where the sources agree (within
  ``outlier_k`` combined std), the lower-noise source where they disagree, the only source where one is
  missing; then an edge-aware normalised convolution (a local ``R_smooth``) accepted only where it
  stays within ``smooth_accept_k`` std of the pixel's own estimate; finally, with both sources given,
  pixels whose fused std exceeds ``max_relative_sigma`` of their depth are dropped.
- ``"variational"``: robust data terms with validity indicators and an edge-aware Huber-TV
  smoothness, solved by primal-dual iterations in torch
  (:mod:`metric_semantic_slam.core.depth_fusion_variational`).

Missing sources pass through: with one source (or one without any valid pixel), the output equals the
other's depth (no smoothing) and confidence.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .camera import PinholeCamera
from .depth_confidence import (ActiveConfidenceConfig, SourceConfidence, StereoConfidenceConfig,
                               active_depth_confidence, sigma_to_confidence, stereo_confidence)
from .stereo import StereoConfig, StereoMatcher, reproject_depth

__all__ = ["DepthFusionConfig", "FusedDepth", "fuse_local", "DepthFuser", "SOURCE_ACTIVE", "SOURCE_STEREO",
           "SOURCE_TEMPORAL"]

SOURCE_ACTIVE = 1
SOURCE_STEREO = 2
SOURCE_TEMPORAL = 4

_METHODS = ("local", "variational")


@dataclass(frozen=True)
class DepthFusionConfig:
    """Fusion parameters (the node's parameters map one to one onto these)."""

    method: str = "local"
    """``"local"`` or ``"variational"``."""
    w_active: float = 1.0
    """Weight of the active depth data term (multiplies its inverse variance)."""
    w_stereo: float = 1.0
    """Weight of the stereo data term."""
    outlier_k: float = 3.0
    """Sources further apart than this many combined std disagree: keep the less noisy one."""
    smooth_sigma_px: float = 2.0
    """Local method: Gaussian std of the edge-aware smoothing; 0 keeps the per-pixel estimate."""
    smooth_accept_k: float = 3.0
    """Local method: the smoothed value is used only within this many std of the pixel's estimate."""
    sigma_ref_m: float = 0.02
    """Std at which the output confidence is 0.5."""
    max_relative_sigma: float = 0.025
    """With both sources given, output pixels whose fused std exceeds this fraction of their depth are
    dropped (mostly stereo-only pixels at edges and far away); 0 keeps everything."""
    tv_weight: float = 10.0
    """Variational: weight of the smoothness term."""
    huber_delta_m: float = 0.005
    """Variational: depth step per pixel, per meter of depth, below which smoothing is quadratic (TV above)."""
    iterations: int = 10
    """Variational: primal-dual iterations per frame."""
    reweight_every: int = 10
    """Variational: robust (Cauchy) data weights are recomputed every this many iterations."""
    edge_beta: float = 1.0
    """Variational: smoothness across a depth jump of ``j`` times ``huber_delta_m`` is scaled by
    ``exp(-j / edge_beta)`` (edge-aware)."""
    device: str = "cpu"
    """torch device of the variational solver (``"cpu"``, ``"cuda"``)."""
    w_temporal: float = 0.0
    """Weight of the temporal term (previous fused depth warped by odometry); 0 disables it."""
    temporal_sigma_inflation: float = 2.0
    """The warped previous depth counts with its std multiplied by this."""
    stereo: StereoConfig = field(default_factory=StereoConfig)
    active_confidence: ActiveConfidenceConfig = field(default_factory=ActiveConfidenceConfig)
    stereo_confidence: StereoConfidenceConfig = field(default_factory=StereoConfidenceConfig)

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {self.method!r}")
        if min(self.w_active, self.w_stereo, self.w_temporal) < 0:
            raise ValueError("source weights must be >= 0")
        if self.outlier_k <= 0 or self.smooth_accept_k <= 0 or self.sigma_ref_m <= 0 or self.max_relative_sigma < 0:
            raise ValueError("outlier_k, smooth_accept_k and sigma_ref_m must be positive")
        if self.smooth_sigma_px < 0 or self.tv_weight < 0 or self.huber_delta_m <= 0:
            raise ValueError("smooth_sigma_px, tv_weight must be >= 0 and huber_delta_m > 0")
        if self.iterations < 0 or self.reweight_every < 1 or self.edge_beta <= 0:
            raise ValueError("iterations must be >= 0, reweight_every >= 1, edge_beta > 0")
        if self.temporal_sigma_inflation < 1:
            raise ValueError("temporal_sigma_inflation must be >= 1")


@dataclass
class FusedDepth:
    """Fused depth in the color camera.

    Shape: all (H, W). depth_m float32 (0 = invalid); confidence float32 in [0, 1]; sigma_m float32
    (inf where invalid); sources uint8 bit mask of the sources that contributed (SOURCE_* flags).
    ``timings_s`` has ``stereo``, ``confidence``, ``fusion`` entries for what ran.
    """

    depth_m: np.ndarray
    confidence: np.ndarray
    sigma_m: np.ndarray
    sources: np.ndarray
    method: str
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        """Shape: (H, W) bool."""
        return self.depth_m > 0


def _empty(shape: tuple[int, int]) -> SourceConfidence:
    return SourceConfidence(depth_m=np.zeros(shape, np.float32), sigma_m=np.full(shape, np.inf, np.float32),
                            confidence=np.zeros(shape, np.float32), valid=np.zeros(shape, bool))


def _weighted(src: SourceConfidence | None, weight: float, shape: tuple[int, int]) -> SourceConfidence:
    """The source with its std scaled by ``1/sqrt(weight)`` (weight 0 removes it)."""
    if src is None or weight == 0:
        return _empty(shape)
    if src.depth_m.shape != shape:
        raise ValueError(f"source depth {src.depth_m.shape} does not match {shape}")
    if weight == 1:
        return src
    return SourceConfidence(src.depth_m, src.sigma_m / np.float32(np.sqrt(weight)), src.confidence, src.valid)


def fuse_local(active: SourceConfidence | None, stereo: SourceConfidence | None,
               config: DepthFusionConfig | None = None, temporal: SourceConfidence | None = None) -> FusedDepth:
    """Per-pixel confidence-weighted fusion with outlier rejection and edge-aware local smoothing.

    Where only one source (of active/stereo) is given, or the other has no valid pixel, its depth and
    confidence pass through unchanged (plus the temporal term when one is given).
    Shape: sources (H, W) -> :class:`FusedDepth` (H, W).
    """
    t0 = time.perf_counter()
    c = config or DepthFusionConfig()
    present = [x for x in (active, stereo, temporal) if x is not None]
    if not present:
        raise ValueError("fusion needs at least one depth source")
    shape = present[0].depth_m.shape
    a = _weighted(active, c.w_active, shape)
    s = _weighted(stereo, c.w_stereo, shape)
    use_temporal = temporal is not None and c.w_temporal > 0
    # A source without a single valid pixel counts as missing.
    has_a, has_s = bool(a.valid.any()), bool(s.valid.any())
    if not use_temporal and not (has_a and has_s):
        if has_a or (active is not None and not has_s):
            only, flag = (active if active is not None else a), SOURCE_ACTIVE
        else:
            only, flag = (stereo if stereo is not None else s), SOURCE_STEREO
        return FusedDepth(depth_m=only.depth_m.copy(), confidence=only.confidence.copy(), sigma_m=only.sigma_m.copy(),
                          sources=only.valid.view(np.uint8) * np.uint8(flag), method="local",
                          timings_s={"fusion": time.perf_counter() - t0})
    sref = np.float32(c.sigma_ref_m)
    # Inverse variances relative to sigma_ref^2 (float32 stays well conditioned); inf sigma gives 0.
    # In-place ufuncs on few buffers: this runs per frame at full resolution, and every extra
    # temporary image is another pass over memory.
    wa = np.divide(sref, a.sigma_m)
    np.multiply(wa, wa, out=wa)
    ws = np.divide(sref, s.sigma_m)
    np.multiply(ws, ws, out=ws)
    da, ds = a.depth_m, s.depth_m
    diff = np.subtract(da, ds)
    w = np.add(wa, ws)
    # No conflict when |diff| <= k sqrt(sa^2 + ss^2), i.e. diff^2 wa ws <= k^2 sref^2 (wa + ws); always
    # true where a source is missing (weight 0).
    lhs = np.multiply(diff, diff)
    lhs *= wa
    lhs *= ws
    conflict = np.flatnonzero(lhs > w * np.float32(c.outlier_k**2 * c.sigma_ref_m**2))
    del lhs
    if conflict.size:
        # One of them is an outlier: keep the one that claims less noise (few pixels: fix them sparsely).
        wa_f, ws_f = wa.reshape(-1), ws.reshape(-1)
        wa_c, ws_c = wa_f[conflict], ws_f[conflict]
        drop_a = ws_c > wa_c
        wa_f[conflict] = np.where(drop_a, np.float32(0), wa_c)
        ws_f[conflict] = np.where(drop_a, ws_c, np.float32(0))
        w.reshape(-1)[conflict] = np.where(drop_a, ws_c, wa_c)
    # ds + wa (da - ds) / w: exactly ds where wa = 0; where ws = 0 the active depth (0 if invalid too)
    # is copied in exactly.
    depth = np.multiply(wa, diff, out=diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth /= w
    depth += ds
    no_s = ws == 0
    np.copyto(depth, da, where=no_s)
    sources = (wa > 0).view(np.uint8)
    sources |= np.logical_not(no_s).view(np.uint8) << np.uint8(1)
    if use_temporal:
        tp = _weighted(temporal, c.w_temporal, shape)
        wt = np.square(sref / tp.sigma_m)
        with np.errstate(divide="ignore", invalid="ignore"):
            cur_var = np.float32(1.0) / w
        # The warped history only helps where it is consistent with the current estimate (or fills a hole).
        # |d - d_t| <= k sqrt(var + var_t), both variances in units of sref^2, multiplied through by wt.
        ok_t = tp.valid & ((w == 0) | (np.square(depth - tp.depth_m) * wt
                                       <= np.float32(c.outlier_k**2) * sref * sref * (cur_var * wt + 1)))
        wt = np.where(ok_t, wt, np.float32(0))
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(w > 0, np.where(wt > 0, (depth * w + wt * tp.depth_m) / (w + wt), depth), tp.depth_m)
        depth = np.where(w + wt > 0, depth, np.float32(0))
        w = w + wt
        sources |= (wt > 0).view(np.uint8) << np.uint8(2)
    both_given = has_a and has_s
    if c.smooth_sigma_px > 0 and both_given:
        depth, w = _smooth(depth, w, c.smooth_sigma_px, c.smooth_accept_k * sref)
    if c.max_relative_sigma > 0 and both_given:
        # sigma <= r z  <=>  w r^2 z^2 >= sref^2  (sigma = sref / sqrt(w))
        t = np.multiply(depth, np.float32(c.max_relative_sigma))
        np.multiply(t, t, out=t)
        t *= w
        drop = t < sref * sref
        del t
        depth[drop] = 0
        w[drop] = 0
        sources[drop] = 0
    with np.errstate(divide="ignore"):
        sigma = np.sqrt(w)
        np.divide(sref, sigma, out=sigma)  # inf where invalid (w = 0)
    conf = np.add(w, np.float32(1))
    np.divide(w, conf, out=conf)
    return FusedDepth(depth_m=depth.astype(np.float32, copy=False), confidence=conf,
                      sigma_m=sigma, sources=sources, method="local", timings_s={"fusion": time.perf_counter() - t0})


_SMOOTH_VARIANCE_FACTOR = 0.25
"""Variance kept by an accepted smoothed pixel. A 1.5 px Gaussian averages ~28 pixels, but the noise of
neighbouring pixels is correlated (block matching, sensor quantization), so no more than a 4x drop is
claimed."""


def _smooth(depth: np.ndarray, w: np.ndarray, sigma_px: float, accept_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution weighted by inverse variance, kept only where it agrees with the pixel.

    ``w`` is the inverse variance relative to ``sigma_ref^2`` and ``accept_m = k sigma_ref``: the
    smoothed value replaces the pixel's where ``|mean - d| <= k sigma``. A Gaussian mean is unbiased
    on planes (also slanted ones); next to a depth edge it is pulled toward the other side and the
    test falls back to the pixel's own estimate. ``depth`` and ``w`` are updated in place (and returned).
    """
    ksize = 2 * int(np.ceil(2.5 * sigma_px)) + 1
    den = cv2.GaussianBlur(w, (ksize, ksize), sigma_px)
    num = cv2.GaussianBlur(np.multiply(w, depth), (ksize, ksize), sigma_px)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.divide(num, den, out=num)
    # |mean - d|^2 w <= accept^2 on valid pixels (w > 0); NaN means (den = 0) fail the comparison.
    r = np.subtract(mean, depth, out=den)
    np.multiply(r, r, out=r)
    r *= w
    accept = r <= np.float32(accept_m * accept_m)
    accept &= w > 0
    np.copyto(depth, mean, where=accept)
    np.multiply(w, np.float32(1.0 / _SMOOTH_VARIANCE_FACTOR), out=w, where=accept)
    return depth, w


class DepthFuser:
    """Stereo matching, confidences and fusion for a stream of frames (one per camera).

    :meth:`fuse` takes raw images; the node and the offline pipeline call this same object.
    """

    def __init__(self, config: DepthFusionConfig | None = None) -> None:
        self.config = config or DepthFusionConfig()
        self._matcher = StereoMatcher(self.config.stereo)
        self._previous: FusedDepth | None = None
        self._variational = None

    def reset(self) -> None:
        """Forget the previous fused depth (temporal term)."""
        self._previous = None

    def stereo_source(self, left: np.ndarray, right: np.ndarray, stereo_camera: PinholeCamera, baseline_m: float,
                      T_color_left: np.ndarray | None, camera: PinholeCamera) -> tuple[SourceConfidence, float]:
        """Stereo depth with confidence in the color camera, and the matching time (s).

        Shape: left, right (Hs, Ws) uint8 -> :class:`SourceConfidence` of ``camera`` (H, W).
        """
        res = self._matcher.compute(left, right, stereo_camera, baseline_m, T_color_left, camera)
        return stereo_confidence(res, self.config.stereo_confidence), res.time_s

    def fuse(self, camera: PinholeCamera, depth_m: np.ndarray | None = None, stereo=None,
             T_curr_prev: np.ndarray | None = None) -> FusedDepth:
        """Fuse the active depth (registered to ``camera``) with a stereo pair (``io.frame.StereoPair``).

        Either input may be None (the other passes through). ``T_curr_prev`` (odometry, previous
        camera frame -> current) enables the temporal term when ``config.w_temporal > 0``.
        Shape: depth (H, W) meters, stereo images (Hs, Ws) uint8 -> :class:`FusedDepth` (H, W).
        """
        if camera is None:
            raise ValueError("the color camera calibration is missing")
        if depth_m is None and stereo is None:
            raise ValueError("fusion needs active depth, a stereo pair, or both")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        active = None
        if depth_m is not None:
            active = active_depth_confidence(depth_m, camera, self.config.active_confidence)
        timings["confidence"] = time.perf_counter() - t0
        st = None
        if stereo is not None:
            if stereo.camera is None:
                raise ValueError("the stereo pair has no camera calibration")
            t1 = time.perf_counter()
            st, timings["stereo"] = self.stereo_source(stereo.left, stereo.right, stereo.camera, stereo.baseline_m,
                                                       stereo.T_color_left, camera)
            timings["confidence"] += time.perf_counter() - t1 - timings["stereo"]
        temporal = self._temporal(camera, T_curr_prev)
        out = self.fuse_sources(active, st, temporal)
        out.timings_s = {**timings, **out.timings_s}
        self._previous = out
        return out

    def fuse_sources(self, active: SourceConfidence | None, stereo: SourceConfidence | None,
                     temporal: SourceConfidence | None = None) -> FusedDepth:
        """Fuse already computed sources with the configured method.

        Shape: sources (H, W) -> :class:`FusedDepth` (H, W).
        """
        c = self.config
        if active is not None and stereo is not None and active.depth_m.shape != stereo.depth_m.shape:
            raise ValueError(f"active depth {active.depth_m.shape} and stereo depth {stereo.depth_m.shape} differ")
        local = fuse_local(active, stereo, c, temporal)
        if c.method == "local" or active is None or stereo is None or not active.valid.any() or not stereo.valid.any():
            return local
        if self._variational is None:
            from .depth_fusion_variational import VariationalFusion

            self._variational = VariationalFusion(c)
        return self._variational.refine(local, active, stereo, temporal)

    def _temporal(self, camera: PinholeCamera, T_curr_prev: np.ndarray | None) -> SourceConfidence | None:
        prev = self._previous
        if self.config.w_temporal <= 0 or prev is None or T_curr_prev is None:
            return None
        if prev.depth_m.shape != camera.shape:
            return None
        depth, (sigma,) = reproject_depth(prev.depth_m, camera, T_curr_prev, camera,
                                          [np.where(prev.valid, prev.sigma_m, 0).astype(np.float32)])
        valid = depth > 0
        sigma = np.where(valid, sigma * np.float32(self.config.temporal_sigma_inflation), np.inf).astype(np.float32)
        return SourceConfidence(depth_m=depth, sigma_m=sigma, confidence=sigma_to_confidence(sigma, self.config.sigma_ref_m),
                                valid=valid)
