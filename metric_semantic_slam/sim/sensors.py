"""Sensor models: a structured-light (Kinect v1-like) active depth camera and a rectified IR pair.

Active depth noise model (Nguyen, Izadi, Lovell, "Modeling Kinect Sensor Noise for Improved 3D
Reconstruction and Tracking", 3DIMPVT 2012, eq. for axial noise)::

    sigma_z(z, theta) = 0.0012 + 0.0019 (z - 0.4)^2 + 0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2   [m]

with ``z`` the depth and ``theta`` the angle between the viewing ray and the surface normal. The
noise is applied where a structured-light sensor makes it, in the disparity domain (Khoshelham &
Elberink, "Accuracy and Resolution of Kinect Depth Data", Sensors 2012): ``d = f b / z`` with the
sensor's own IR focal length ``f`` and projector baseline ``b`` (580 px, 7.5 cm), Gaussian noise of
``sigma_d = sigma_z f b / z^2`` (reduced so that, together with the quantization, the total matches
``sigma_z``), then quantization to 1/8 px sub-pixel steps, and back to ``z = f b / d``. Lateral noise
(Nguyen et al.: ~0.8 px) is modelled as jitter of depth discontinuities. Dropouts: pixels next to
depth discontinuities, dark (low ``ir_albedo``) surfaces, grazing angles, outside the working range,
and a few random speckle holes.

The IR pair: the left IR camera is at ``T_color_left`` in the color frame, the right one at
``+baseline`` along the left x axis; both ray cast their own view, so regions seen by one camera
only are right. The emitter sits at the left camera and projects a fixed pseudo-random dot
pattern; a right-camera hit gets dots only if the emitter sees it (shadow test against the left
camera's depth).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core.camera import PinholeCamera
from ..core.depth_confidence import nguyen_sigma_m
from ..core.geometry import invert_transform
from ..io.frame import StereoPair
from .render import RayHits, Renderer
from .world import TriangleMesh
from .textures import lattice_hash

__all__ = [
    "ActiveDepthConfig",
    "ActiveDepthResult",
    "nguyen_axial_sigma_m",
    "simulate_active_depth",
    "DepthErrorRow",
    "DepthErrorAccumulator",
    "depth_error_curve",
    "format_depth_error_table",
    "IrStereoConfig",
    "dot_pattern",
    "render_ir_pair",
]


# --------------------------------------------------------------------------------------------
# Active depth
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActiveDepthConfig:
    """Kinect v1-like structured-light depth sensor."""

    focal_px: float = 580.0
    """Focal length of the sensor's own IR camera (native 640x480), pixels."""
    baseline_m: float = 0.075
    """Projector-camera baseline, meters."""
    subpixel_step_px: float = 0.125
    """Disparity quantization step (1/8 px on Kinect v1)."""
    min_range_m: float = 0.3
    max_range_m: float = 6.0
    axial_noise: bool = True
    """Add the axial (disparity) noise; False keeps only quantization and dropouts."""
    edge_disparity_jump_px: float = 1.0
    """A neighbour whose disparity differs by more than this marks a depth discontinuity."""
    edge_dropout_width_px: int = 2
    """Pixels within this distance of a discontinuity may drop out."""
    edge_dropout_prob: float = 0.7
    lateral_sigma_px: float = 0.8
    """Lateral jitter of discontinuities (Nguyen et al. 2012), pixels."""
    dark_albedo_low: float = 0.12
    """IR albedo at and below which every pixel drops out."""
    dark_albedo_high: float = 0.25
    """IR albedo above which no pixel drops out for darkness (linear ramp in between)."""
    grazing_angle_deg: float = 78.0
    """Pixels viewed at a larger angle between ray and normal drop out."""
    speckle_holes_per_frame: float = 6.0
    """Mean number (Poisson) of random small holes per frame."""
    speckle_radius_px: tuple[float, float] = (1.0, 4.0)

    def __post_init__(self) -> None:
        if self.focal_px <= 0 or self.baseline_m <= 0 or self.subpixel_step_px < 0:
            raise ValueError("focal_px and baseline_m must be positive, subpixel_step_px >= 0")
        if not 0 < self.min_range_m < self.max_range_m:
            raise ValueError(f"need 0 < min_range_m < max_range_m, got {self.min_range_m}, {self.max_range_m}")
        if not 0 <= self.dark_albedo_low < self.dark_albedo_high:
            raise ValueError("need 0 <= dark_albedo_low < dark_albedo_high")
        if not 0 < self.grazing_angle_deg <= 90:
            raise ValueError("grazing_angle_deg must be in (0, 90]")
        if not 0 <= self.edge_dropout_prob <= 1:
            raise ValueError("edge_dropout_prob must be in [0, 1]")


def nguyen_axial_sigma_m(z_m: np.ndarray, theta_rad: np.ndarray | float = 0.0) -> np.ndarray:
    """Axial depth noise std of a Kinect v1 (Nguyen, Izadi, Lovell 2012): the model the depth fusion's
    confidence also uses (:func:`~metric_semantic_slam.core.depth_confidence.nguyen_sigma_m`),
    evaluated in float64 with angles up to 89 deg.

    Shape: z (...) meters, theta (...) radians -> sigma (...) meters.
    """
    return nguyen_sigma_m(z_m, theta_rad, max_angle_rad=np.deg2rad(89.0), dtype=np.float64)


@dataclass
class ActiveDepthResult:
    """Output of the active depth model.

    Shape: all (H, W). depth_m float32 (0 = invalid); model_sigma_m float32 (the model's axial std
    per pixel, also where dropped); the dropout masks (bool) say why a pixel is invalid.
    """

    depth_m: np.ndarray
    model_sigma_m: np.ndarray
    edge_mask: np.ndarray
    dropout_edge: np.ndarray
    dropout_dark: np.ndarray
    dropout_grazing: np.ndarray
    dropout_range: np.ndarray
    dropout_speckle: np.ndarray


def _discontinuities(disp: np.ndarray, valid: np.ndarray, jump_px: float) -> np.ndarray:
    """Pixels with a 4-neighbour whose disparity differs by more than ``jump_px`` (or is invalid)."""
    d = np.where(valid, disp, 0.0)
    e = np.zeros(d.shape, bool)
    dx = np.abs(np.diff(d, axis=1)) > jump_px
    dy = np.abs(np.diff(d, axis=0)) > jump_px
    vx = valid[:, 1:] != valid[:, :-1]
    vy = valid[1:, :] != valid[:-1, :]
    dx |= vx
    dy |= vy
    e[:, 1:] |= dx
    e[:, :-1] |= dx
    e[1:, :] |= dy
    e[:-1, :] |= dy
    return e


def simulate_active_depth(
    depth_exact_m: np.ndarray,
    cos_incidence: np.ndarray,
    ir_albedo: np.ndarray,
    config: ActiveDepthConfig,
    rng: np.random.Generator,
) -> ActiveDepthResult:
    """Noisy sensor depth from exact depth (see the module docstring for the model).

    ``cos_incidence`` is |cos| of the angle between the viewing ray and the surface normal.
    Shape: depth_exact_m, cos_incidence, ir_albedo (H, W) -> :class:`ActiveDepthResult` (H, W).
    """
    z = np.asarray(depth_exact_m, np.float64)
    if z.ndim != 2 or cos_incidence.shape != z.shape or ir_albedo.shape != z.shape:
        raise ValueError(
            f"depth, cos_incidence, ir_albedo must be equal (H, W) arrays, got {z.shape}, "
            f"{cos_incidence.shape}, {ir_albedo.shape}"
        )
    cfg = config
    h, w = z.shape
    valid = np.isfinite(z) & (z > 0)
    zc = np.where(valid, z, 1.0)
    theta = np.arccos(np.clip(cos_incidence.astype(np.float64), 0.0, 1.0))
    sigma_z = np.where(valid, nguyen_axial_sigma_m(zc, theta), 0.0)
    fb = cfg.focal_px * cfg.baseline_m
    disp = fb / zc

    # Lateral noise: discontinuities wobble by ~sigma_lateral px, so pixels right at an edge take a
    # neighbour's depth. Applied only at edges; on smooth surfaces it is absorbed in the axial term.
    edge = _discontinuities(disp, valid, cfg.edge_disparity_jump_px)
    jitter = edge & (rng.random((h, w)) < 0.5)
    if cfg.lateral_sigma_px > 0 and jitter.any():
        ys, xs = np.nonzero(jitter)
        oy = np.rint(rng.normal(0.0, cfg.lateral_sigma_px, len(ys))).astype(int)
        ox = np.rint(rng.normal(0.0, cfg.lateral_sigma_px, len(xs))).astype(int)
        sy, sx = np.clip(ys + oy, 0, h - 1), np.clip(xs + ox, 0, w - 1)
        disp = disp.copy()
        disp[ys, xs] = np.where(valid[sy, sx], disp[sy, sx], disp[ys, xs])
        sigma_jit = sigma_z.copy()
        sigma_jit[ys, xs] = sigma_z[sy, sx]
    else:
        sigma_jit = sigma_z

    if cfg.axial_noise:
        sigma_d = sigma_jit * disp**2 / fb
        q = cfg.subpixel_step_px
        # Quantization of a noisy disparity adds ~q^2/12 of variance; take it out of the Gaussian part
        # so the total std matches the published curve.
        sigma_g = np.sqrt(np.maximum(sigma_d**2 - q * q / 12.0, 0.0))
        disp = disp + rng.standard_normal((h, w)) * sigma_g
    if cfg.subpixel_step_px > 0:
        disp = np.rint(disp / cfg.subpixel_step_px) * cfg.subpixel_step_px
    noisy = np.where(disp > 0, fb / np.maximum(disp, 1e-9), 0.0)

    k = max(int(cfg.edge_dropout_width_px), 0)
    near_edge = cv2.dilate(edge.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0 if k else edge
    drop_edge = near_edge & (rng.random((h, w)) < cfg.edge_dropout_prob)
    ramp = (cfg.dark_albedo_high - ir_albedo) / (cfg.dark_albedo_high - cfg.dark_albedo_low)
    drop_dark = rng.random((h, w)) < np.clip(ramp, 0.0, 1.0)
    drop_graze = theta > np.deg2rad(cfg.grazing_angle_deg)
    drop_range = (z < cfg.min_range_m) | (z > cfg.max_range_m)
    speckle = np.zeros((h, w), np.uint8)
    # Holes scale with the image so a 160x120 test image and a 640x480 one look alike.
    s = w / 640.0
    for _ in range(int(rng.poisson(cfg.speckle_holes_per_frame))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(*cfg.speckle_radius_px) * s
        cv2.ellipse(speckle, (int(cx), int(cy)), (max(int(round(r)), 1), max(int(round(r * rng.uniform(0.5, 1.0))), 1)),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    drop_speckle = speckle > 0
    drop = drop_edge | drop_dark | drop_graze | drop_range | drop_speckle | ~valid
    out = np.where(drop, 0.0, noisy).astype(np.float32)
    return ActiveDepthResult(
        depth_m=out,
        model_sigma_m=sigma_z.astype(np.float32),
        edge_mask=near_edge & valid,
        dropout_edge=drop_edge & valid,
        dropout_dark=drop_dark & valid,
        dropout_grazing=drop_graze & valid,
        dropout_range=drop_range & valid,
        dropout_speckle=drop_speckle & valid,
    )


# --------------------------------------------------------------------------------------------
# Error curve: measured vs model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepthErrorRow:
    """Measured error of noisy minus exact depth in one range band, next to the model.

    ``model_std_m`` is the RMS of the per-pixel model sigma over the same pixels; ``ratio`` is
    measured / model std (NaN without samples).
    """

    band_lo_m: float
    band_hi_m: float
    n: int
    mean_m: float
    std_m: float
    model_std_m: float

    @property
    def ratio(self) -> float:
        """Measured / model std (NaN without samples)."""
        return self.std_m / self.model_std_m if self.n and self.model_std_m > 0 else float("nan")


class DepthErrorAccumulator:
    """Accumulates noisy - exact depth statistics per range band over many frames.

    Pixels invalid in either image or inside ``exclude`` (e.g. the edge mask, where lateral jitter
    swaps in a neighbour's depth) are ignored, so the curve measures the axial noise only.
    """

    def __init__(self, bands_m: np.ndarray | None = None) -> None:
        self.bands = np.asarray(bands_m if bands_m is not None else np.arange(0.5, 6.01, 0.5), np.float64)
        if self.bands.ndim != 1 or len(self.bands) < 2 or np.any(np.diff(self.bands) <= 0):
            raise ValueError("bands_m must be an increasing 1-D array with at least 2 edges")
        nb = len(self.bands) - 1
        self._width = float(self.bands[1] - self.bands[0])
        self._uniform = bool(np.allclose(np.diff(self.bands), self._width))
        self._n = np.zeros(nb, np.int64)
        self._s1 = np.zeros(nb)
        self._s2 = np.zeros(nb)
        self._m2 = np.zeros(nb)

    def add(self, noisy_m: np.ndarray, exact_m: np.ndarray, model_sigma_m: np.ndarray,
            exclude: np.ndarray | None = None) -> None:
        """Add one frame. Shape: all (H, W)."""
        if noisy_m.shape != exact_m.shape or model_sigma_m.shape != exact_m.shape:
            raise ValueError("noisy, exact and model_sigma must have the same shape")
        ok = (noisy_m > 0) & (exact_m > 0) & np.isfinite(noisy_m) & np.isfinite(exact_m)
        if exclude is not None:
            ok &= ~exclude
        z = exact_m[ok].astype(np.float64)
        err = noisy_m[ok].astype(np.float64) - z
        sig = model_sigma_m[ok].astype(np.float64)
        if self._uniform:
            b = np.floor((z - self.bands[0]) / self._width).astype(np.int64)
        else:
            b = np.searchsorted(self.bands, z, side="right") - 1
        inb = (b >= 0) & (b < len(self._n))
        b, err, sig = b[inb], err[inb], sig[inb]
        nb = len(self._n)
        self._n += np.bincount(b, minlength=nb)
        self._s1 += np.bincount(b, err, minlength=nb)
        self._s2 += np.bincount(b, err * err, minlength=nb)
        self._m2 += np.bincount(b, sig * sig, minlength=nb)

    def rows(self) -> list[DepthErrorRow]:
        """The error table. Shape: -> one :class:`DepthErrorRow` per band (B = len(bands) - 1)."""
        out = []
        for i in range(len(self._n)):
            n = int(self._n[i])
            if n:
                mean = self._s1[i] / n
                std = float(np.sqrt(max(self._s2[i] / n - mean * mean, 0.0)))
                model = float(np.sqrt(self._m2[i] / n))
            else:
                mean, std, model = float("nan"), float("nan"), float("nan")
            out.append(DepthErrorRow(float(self.bands[i]), float(self.bands[i + 1]), n, float(mean), std, model))
        return out


def depth_error_curve(noisy_m: list[np.ndarray], exact_m: list[np.ndarray], model_sigma_m: list[np.ndarray],
                      exclude: list[np.ndarray] | None = None,
                      bands_m: np.ndarray | None = None) -> list[DepthErrorRow]:
    """Measured error (mean, std of noisy - exact) per range band over frames, with the model std.

    Shape: each list item (H, W) -> one :class:`DepthErrorRow` per band.
    """
    if not (len(noisy_m) == len(exact_m) == len(model_sigma_m)):
        raise ValueError("noisy, exact and model_sigma lists must have the same length")
    acc = DepthErrorAccumulator(bands_m)
    for i in range(len(noisy_m)):
        acc.add(noisy_m[i], exact_m[i], model_sigma_m[i], None if exclude is None else exclude[i])
    return acc.rows()


def format_depth_error_table(rows: list[DepthErrorRow], min_samples: int = 1000) -> str:
    """Printable table of the error curve; bands with fewer than ``min_samples`` are marked ``(few)``.

    Shape: B rows -> a string of B + 2 lines.
    """
    lines = ["depth noise: measured vs model (Nguyen et al. 2012), noisy - exact per range band",
             f"{'band [m]':>11} {'n':>9} {'mean [mm]':>10} {'std [mm]':>9} {'model [mm]':>11} {'ratio':>6}"]
    for r in rows:
        if r.n == 0:
            lines.append(f"{r.band_lo_m:4.1f}-{r.band_hi_m:4.1f}m {0:>9d} {'-':>10} {'-':>9} {'-':>11} {'-':>6}")
            continue
        note = "" if r.n >= min_samples else "  (few)"
        lines.append(f"{r.band_lo_m:4.1f}-{r.band_hi_m:4.1f}m {r.n:>9d} {1000 * r.mean_m:>10.2f} {1000 * r.std_m:>9.2f} "
                     f"{1000 * r.model_std_m:>11.2f} {r.ratio:>6.2f}{note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# IR stereo pair
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IrStereoConfig:
    """Rectified IR stereo pair with a projected dot pattern (D435-like)."""

    baseline_m: float = 0.05
    """Right camera offset along the left camera's x axis."""
    T_color_left: tuple[tuple[float, ...], ...] = field(
        default=((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0)))
    """Left IR camera pose in the color frame (identity: registered to color)."""
    dot_density: float = 0.1
    """Dots per emitter pixel."""
    dot_sigma_px: float = 0.7
    """Dot blur radius in the emitter image."""
    pattern_seed: int = 1234
    """The pattern is a property of the device: the same for every sequence."""
    projector_power: float = 1.6
    """Dot brightness on a white surface at ``falloff_ref_m``."""
    falloff_ref_m: float = 2.5
    ambient: float = 0.3
    """Passive IR (ambient) level on a white surface."""
    noise_sigma_dn: float = 2.0
    shadow_tolerance_m: float = 0.02
    """A right-camera hit farther from the emitter than the emitter's own depth by more is in shadow."""

    def __post_init__(self) -> None:
        if self.baseline_m <= 0:
            raise ValueError(f"baseline_m must be positive, got {self.baseline_m}")
        if np.asarray(self.T_color_left).shape != (4, 4):
            raise ValueError("T_color_left must be 4x4")

    @property
    def T_color_left_matrix(self) -> np.ndarray:
        """``T_color_left`` as an array. Shape: (4, 4)."""
        return np.asarray(self.T_color_left, np.float64)


_PATTERN_CACHE: dict[tuple, np.ndarray] = {}


def dot_pattern(height: int, width: int, config: IrStereoConfig) -> np.ndarray:
    """The emitter's dot image (float32 in [0, 1]), fixed by ``config.pattern_seed``. Shape: (H, W)."""
    key = (height, width, config.dot_density, config.dot_sigma_px, config.pattern_seed)
    pat = _PATTERN_CACHE.get(key)
    if pat is None:
        rng = np.random.default_rng(config.pattern_seed)
        up = 4  # draw dots at 4x resolution so their centres are sub-pixel
        n = int(config.dot_density * height * width)
        img = np.zeros((height * up, width * up), np.float32)
        ys = rng.integers(0, height * up, n)
        xs = rng.integers(0, width * up, n)
        img[ys, xs] = rng.uniform(0.6, 1.0, n).astype(np.float32)
        sig = config.dot_sigma_px * up
        img = cv2.GaussianBlur(img, (0, 0), sig)
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        pat = (img / max(float(img.max()), 1e-6)).astype(np.float32)
        _PATTERN_CACHE[key] = pat
    return pat


def _ir_image(hits: RayHits, albedo_ir: np.ndarray, dots: np.ndarray, config: IrStereoConfig,
              rng: np.random.Generator | None) -> np.ndarray:
    z = np.maximum(hits.depth_m, np.float32(1e-3))
    # Passive IR texture of the surface: a hash of 2 cm world cells, so left and right agree. Cheap on
    # purpose (the dots dominate the image); blocky cells are invisible under the sensor noise.
    p = hits.points_world.reshape(-1, 3)
    cells = np.floor(p * np.float32(50.0)).astype(np.int32)
    tex = 0.6 + 0.4 * lattice_hash(cells[:, 0] + 7919 * cells[:, 2], cells[:, 1], 99).reshape(z.shape)
    falloff = np.minimum((np.float32(config.falloff_ref_m) / z) ** 2, np.float32(2.5))
    val = albedo_ir * (np.float32(config.projector_power) * dots * falloff * hits.cos_incidence
                       + np.float32(config.ambient) * tex)
    val = np.where(hits.hit, val, np.float32(0.0)) * np.float32(255.0)
    if rng is not None and config.noise_sigma_dn > 0:
        val = val + rng.normal(0.0, config.noise_sigma_dn, val.shape).astype(np.float32)
    return np.clip(np.rint(val), 0, 255).astype(np.uint8)


def render_ir_pair(renderer: Renderer, camera: PinholeCamera, T_world_color: np.ndarray, t_s: float,
                   config: IrStereoConfig, rng: np.random.Generator | None,
                   left_hits: RayHits | None = None,
                   dynamic_mesh: TriangleMesh | None | str = "auto") -> StereoPair:
    """Render the rectified IR pair (mono8) of the color camera pose ``T_world_color``.

    ``renderer`` is a :class:`~metric_semantic_slam.sim.render.Renderer`; ``left_hits`` may pass the
    already ray-cast left view (e.g. the color view when ``T_color_left`` is identity);
    ``dynamic_mesh`` as in :meth:`Renderer.cast` (pass it to avoid querying the world twice).
    Shape: T_world_color (4, 4) -> :class:`StereoPair` with (H, W) uint8 images.
    """
    T_cl = config.T_color_left_matrix
    T_world_left = np.asarray(T_world_color, np.float64) @ T_cl
    T_left_right = np.eye(4)
    T_left_right[0, 3] = config.baseline_m
    T_world_right = T_world_left @ T_left_right
    dmesh = renderer.dynamic_mesh(t_s) if isinstance(dynamic_mesh, str) else dynamic_mesh
    if left_hits is None:
        left_hits = renderer.cast(camera, T_world_left, t_s, dmesh)
    right_hits = renderer.cast(camera, T_world_right, t_s, dmesh)
    pattern = dot_pattern(camera.height, camera.width, config)
    # Emitter at the left camera: left-camera dots are fixed in the image.
    dots_left = pattern
    # Right camera: project each hit into the emitter (left) image; occluded from the emitter -> no dots.
    h, w = camera.shape
    T_left_world = invert_transform(T_world_left)
    pr = right_hits.points_world.reshape(-1, 3).astype(np.float64)
    pl = pr @ T_left_world[:3, :3].T + T_left_world[:3, 3]
    zl = pl[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = camera.fx * pl[:, 0] / zl + camera.cx
        v = camera.fy * pl[:, 1] / zl + camera.cy
    inside = right_hits.hit.reshape(-1) & (zl > 1e-3) & (u > -0.5) & (u < w - 0.5) & (v > -0.5) & (v < h - 0.5)
    ui = np.clip(np.rint(np.nan_to_num(u)), 0, w - 1).astype(int)
    vi = np.clip(np.rint(np.nan_to_num(v)), 0, h - 1).astype(int)
    emitter_depth = left_hits.depth_m[vi, ui]
    lit = inside & ((emitter_depth <= 0) | (zl <= emitter_depth + config.shadow_tolerance_m))
    mapx = np.where(inside, u, -10.0).astype(np.float32).reshape(h, w)
    mapy = np.where(inside, v, -10.0).astype(np.float32).reshape(h, w)
    dots_right = cv2.remap(pattern, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    dots_right = np.where(lit.reshape(h, w), dots_right, 0.0)
    left = _ir_image(left_hits, renderer.ir_albedo(left_hits.material), dots_left, config, rng)
    right = _ir_image(right_hits, renderer.ir_albedo(right_hits.material), dots_right, config, rng)
    return StereoPair(left=left, right=right, camera=camera, baseline_m=config.baseline_m, T_color_left=T_cl.copy())
