"""Procedural surface textures evaluated at world hit points (vectorized numpy).

Every texture is a function of the hit point on the surface, so a point keeps its color from any
viewpoint (needed for photometric tracking and for the left/right IR pair). Patterns are laid out
on the plane most aligned with the surface (tri-planar projection by the dominant normal axis),
which keeps stripes/checkers undistorted on the axis-aligned walls, floors and boxes of the
simulator. Every texture, ``plain`` included, carries a fine multi-scale mottling so that each
surface has intensity gradients for photometric odometry.
"""
from __future__ import annotations

import numpy as np

__all__ = ["TEXTURES", "lattice_hash", "value_noise_2d", "fbm_2d", "surface_uv", "evaluate_texture"]

TEXTURES = ("plain", "wood", "checker", "noise", "stripes", "fabric")


def lattice_hash(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Pseudo-random value in [0, 1) per integer lattice point (uint32 mixing, platform exact).

    Shape: ix, iy (N,) int -> (N,) float32.
    """
    with np.errstate(over="ignore"):
        h = ix.astype(np.uint32) * np.uint32(374761393) + iy.astype(np.uint32) * np.uint32(668265263)
        h += np.uint32((seed * 2654435761) & 0xFFFFFFFF)
        h ^= h >> np.uint32(13)
        h *= np.uint32(1274126177)
        h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def value_noise_2d(u: np.ndarray, v: np.ndarray, seed: int = 0) -> np.ndarray:
    """Smooth lattice value noise in [0, 1] with unit lattice spacing.

    Shape: u, v (N,) -> (N,) float32.
    """
    fu, fv = np.floor(u), np.floor(v)
    tu = (u - fu).astype(np.float32)
    tv = (v - fv).astype(np.float32)
    # int32 lattice indices wrap into uint32 in the hash: fine for coordinates below 2^31 cells.
    iu, iv = fu.astype(np.int32), fv.astype(np.int32)
    su = tu * tu * (3.0 - 2.0 * tu)
    sv = tv * tv * (3.0 - 2.0 * tv)
    a = lattice_hash(iu, iv, seed)
    b = lattice_hash(iu + 1, iv, seed)
    c = lattice_hash(iu, iv + 1, seed)
    d = lattice_hash(iu + 1, iv + 1, seed)
    return (a + (b - a) * su) + ((c + (d - c) * su) - (a + (b - a) * su)) * sv


def fbm_2d(u: np.ndarray, v: np.ndarray, octaves: int = 3, seed: int = 0) -> np.ndarray:
    """Fractal sum of value noise, normalised to [0, 1]. Shape: u, v (N,) -> (N,) float32."""
    total = np.zeros(u.shape, np.float32)
    amp, freq, norm = 1.0, 1.0, 0.0
    for k in range(octaves):
        total += np.float32(amp) * value_noise_2d(u * freq, v * freq, seed + 17 * k)
        norm += amp
        amp *= 0.5
        freq *= 2.03
    return total / np.float32(norm)


def surface_uv(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2D surface coordinates (meters) on the plane most aligned with each surface.

    Shape: points (N, 3), normals (N, 3) -> u (N,), v (N,).
    """
    axis = np.argmax(np.abs(normals), axis=1)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # Normal along x -> (y, z); along y -> (x, z); along z -> (x, y). Each plane gets its own offset so
    # perpendicular faces of one box do not show the same pattern mirrored at the shared edge.
    u = np.where(axis == 0, y + 31.7, np.where(axis == 1, x + 7.3, x))
    v = np.where(axis == 2, y, z + 3.1 * (axis == 0))
    return u, v


def evaluate_texture(
    texture: str,
    points: np.ndarray,
    normals: np.ndarray,
    scale_m: float,
    base_rgb: tuple[float, float, float],
    secondary_rgb: tuple[float, float, float],
    seed: int = 0,
) -> np.ndarray:
    """Albedo of a procedural texture at surface points.

    ``scale_m`` is the pattern period; ``base_rgb``/``secondary_rgb`` in [0, 1]. ``seed`` varies the
    pattern between materials that share a texture.
    Shape: points (N, 3), normals (N, 3) -> albedo (N, 3) float32 in [0, 1].
    """
    if texture not in TEXTURES:
        raise ValueError(f"unknown texture {texture!r}; expected one of {TEXTURES}")
    if not scale_m > 0:
        raise ValueError(f"texture scale must be positive, got {scale_m}")
    n = len(points)
    base = np.asarray(base_rgb, np.float32)[None, :]
    second = np.asarray(secondary_rgb, np.float32)[None, :]
    if n == 0:
        return np.zeros((0, 3), np.float32)
    u, v = surface_uv(points, normals)
    s = float(scale_m)
    # Fine mottling (1.5 cm features) on every surface so photometric tracking has gradients.
    fine = value_noise_2d(u / 0.015, v / 0.015, seed + 101)
    if texture == "plain":
        blotch = value_noise_2d(u / (2.0 * s), v / (2.0 * s), seed)
        mix = None
        shade = 0.78 + 0.22 * blotch + 0.28 * (fine - 0.5)
    elif texture == "checker":
        parity = ((np.floor(u / s) + np.floor(v / s)) % 2.0).astype(np.float32)
        mix = parity
        shade = 0.9 + 0.22 * (fine - 0.5)
    elif texture == "stripes":
        mix = (0.5 + 0.5 * np.sin(2.0 * np.pi * u / s)).astype(np.float32) ** 2
        shade = 0.88 + 0.24 * (fine - 0.5)
    elif texture == "noise":
        mix = fbm_2d(u / s, v / s, octaves=3, seed=seed)
        mix = np.clip((mix - 0.5) * 2.2 + 0.5, 0.0, 1.0)
        shade = 0.9 + 0.2 * (fine - 0.5)
    elif texture == "wood":
        # Grain runs along the longer in-plane direction u; rings are warped by low-frequency noise.
        warp = fbm_2d(u / (3.0 * s), v / s, octaves=2, seed=seed)
        rings = np.sin(2.0 * np.pi * (v / (0.25 * s) + 4.0 * warp))
        streak = value_noise_2d(u / (2.0 * s), v / (0.02 * s + 1e-3), seed + 7)
        mix = np.clip(0.5 + 0.4 * rings + 0.3 * (streak - 0.5), 0.0, 1.0).astype(np.float32)
        shade = 0.92 + 0.16 * (fine - 0.5)
    else:  # fabric: a weave at the texture scale plus yarn noise
        pu = np.sin(2.0 * np.pi * u / s)
        pv = np.sin(2.0 * np.pi * v / s)
        weave = 0.5 + 0.5 * pu * pv
        yarn = value_noise_2d(u / (0.5 * s), v / (0.5 * s), seed + 3)
        mix = np.clip(0.6 * weave + 0.4 * yarn, 0.0, 1.0).astype(np.float32)
        shade = 0.85 + 0.3 * (fine - 0.5)
    if mix is None:
        albedo = np.broadcast_to(base, (n, 3)) * shade[:, None]
    else:
        albedo = (base + (second - base) * mix[:, None]) * shade[:, None]
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)
