"""Marching cubes over voxel blocks, with per-vertex color, class and instance (torch).

The case table is *generated* here, not copied: for each of the 256 inside/outside corner patterns
the surface's trace on each cube face is a set of segments between edge crossings; walking a face's
corners counter-clockwise about its outward normal, each "entry" crossing (outside -> inside) is
joined to the next crossing. On faces with two diagonal inside corners this separates the inside
corners, a rule that depends only on the face, so neighbouring cubes agree and the mesh is
watertight. The segments chain into closed loops, fanned into triangles whose winding makes the
normal point towards positive TSDF (free space).

Vertices sit on voxel edges, keyed by (global voxel of the edge's lower end, axis), so triangles of
neighbouring cubes and blocks share vertices. Class and instance come from the edge's end nearer to
the surface (the other end's when the nearer has none); color is interpolated.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["SemanticMesh", "marching_cubes_tables", "marching_cubes_blocks", "CORNER_OFFSETS", "EDGE_CORNERS"]

CORNER_OFFSETS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.int64)
"""Corner ``i`` of a cube sits at offset (bit0, bit1, bit2) = (x, y, z). Shape: (8, 3)."""

EDGE_CORNERS = np.array([(c, c | (1 << a)) for a in range(3) for c in range(8) if not c & (1 << a)], dtype=np.int64)
"""The 12 cube edges as (lower corner, upper corner); edge ``e`` runs along axis ``e // 4``. Shape: (12, 2)."""


@dataclass
class SemanticMesh:
    """A triangle mesh with semantic vertex attributes.

    Shape: vertices (V, 3) float32 world meters; triangles (F, 3) int64 (counter-clockwise seen from
    free space); colors (V, 3) uint8 RGB; classes (V,) int64 class ids; instances (V,) int64 map
    instance ids (0 = none); triangle_block (F,) int64 index into ``block_coords`` (B, 3).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    classes: np.ndarray
    instances: np.ndarray
    triangle_block: np.ndarray
    block_coords: np.ndarray

    @classmethod
    def empty(cls) -> "SemanticMesh":
        return cls(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.uint8),
                   np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))

    def __len__(self) -> int:
        return len(self.triangles)


def _face_cycles() -> list[list[int]]:
    """Corners of each cube face in counter-clockwise order about the outward normal."""
    cycles = []
    for axis in range(3):
        for side in (0, 1):
            corners = [c for c in range(8) if ((c >> axis) & 1) == side]
            n = np.zeros(3)
            n[axis] = 1.0 if side else -1.0
            e1 = np.zeros(3)
            e1[(axis + 1) % 3] = 1.0
            e2 = np.cross(n, e1)
            ctr = CORNER_OFFSETS[corners].mean(axis=0)
            ang = [np.arctan2((CORNER_OFFSETS[c] - ctr) @ e2, (CORNER_OFFSETS[c] - ctr) @ e1) for c in corners]
            cycles.append([corners[i] for i in np.argsort(ang)])
    return cycles


@lru_cache(maxsize=1)
def marching_cubes_tables() -> tuple[np.ndarray, np.ndarray]:
    """Generate the case table.

    Returns ``(tri_edges, tri_count)``: the edges of each triangle of each case (-1 padded) and the
    number of triangles per case. A case's bit ``i`` is set when corner ``i`` is inside (TSDF < 0).
    Shape: tri_edges (256, T, 3) int64, tri_count (256,) int64.
    """
    edge_of = {}
    for e, (a, b) in enumerate(EDGE_CORNERS):
        edge_of[(int(a), int(b))] = e
        edge_of[(int(b), int(a))] = e
    cycles = _face_cycles()
    cases: list[list[tuple[int, int, int]]] = []
    for case in range(256):
        inside = [(case >> i) & 1 == 1 for i in range(8)]
        nxt: dict[int, int] = {}
        for cyc in cycles:
            crossings = []  # (edge, is_entry) in counter-clockwise order
            for k in range(4):
                p, r = cyc[k], cyc[(k + 1) % 4]
                if inside[p] != inside[r]:
                    crossings.append((edge_of[(p, r)], not inside[p]))
            for k, (e, entry) in enumerate(crossings):
                if entry:
                    nxt[e] = crossings[(k + 1) % len(crossings)][0]
        tris = []
        todo = dict(nxt)
        while todo:
            start, e = todo.popitem()
            loop = [start]
            while e != start:
                loop.append(e)
                e = todo.pop(e)
            tris += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
        cases.append(tris)
    T = max(len(t) for t in cases)
    tri_edges = np.full((256, T, 3), -1, dtype=np.int64)
    tri_count = np.zeros(256, dtype=np.int64)
    for c, tris in enumerate(cases):
        tri_count[c] = len(tris)
        if tris:
            tri_edges[c, :len(tris)] = tris
    return tri_edges, tri_count


@lru_cache(maxsize=8)
def _grid_tables(R: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the (R+1)^3 sample grid of a block: neighbour code (0-7) and local voxel index of each
    sample, and for each of the R^3 cubes the grid index of its 8 corners."""
    g = np.arange(R + 1)
    gz, gy, gx = np.meshgrid(g, g, g, indexing="ij")
    gx, gy, gz = gx.ravel(), gy.ravel(), gz.ravel()
    nb = (gx // R) + 2 * (gy // R) + 4 * (gz // R)
    local = (gx % R) + R * (gy % R) + R * R * (gz % R)
    c = np.arange(R)
    cz, cy, cx = np.meshgrid(c, c, c, indexing="ij")
    base = np.stack([cx.ravel(), cy.ravel(), cz.ravel()], axis=1)  # (R^3, 3)
    corners = base[:, None, :] + CORNER_OFFSETS[None, :, :]
    G = R + 1
    corner_grid = corners[..., 0] + G * corners[..., 1] + G * G * corners[..., 2]
    return nb, local, corner_grid


def marching_cubes_blocks(block_coords: torch.Tensor, neighbour_slots: torch.Tensor, tsdf: torch.Tensor,
                          weight: torch.Tensor, color: torch.Tensor | None, classes: "callable | None",
                          instances: torch.Tensor | None, R: int, voxel_size_m: float,
                          min_weight: float = 1e-3) -> SemanticMesh:
    """Extract the zero level set of the cubes whose lower corner lies in the given blocks.

    ``neighbour_slots[b, n]`` is the slot of block ``coords[b] + CORNER_OFFSETS[n]`` (-1 if absent);
    ``classes(voxel_index)`` returns the class id of flat voxel indices.
    Shape: block_coords (B, 3) int64; neighbour_slots (B, 8) int64; tsdf, weight (N * R^3,) float32;
    color (N * R^3, 3) float32 or None; instances (N * R^3,) or None.
    """
    dev = tsdf.device
    if block_coords.shape[0] == 0:
        return SemanticMesh.empty()
    n_local = R ** 3
    # Skip blocks whose cubes cannot cross the surface: no observed negative voxel in the block or in
    # the +x/+y/+z neighbours its cubes read. Most re-meshed blocks are free space.
    need = torch.unique(neighbour_slots[neighbour_slots >= 0])
    t_b = tsdf.view(-1, n_local).index_select(0, need)
    w_b = weight.view(-1, n_local).index_select(0, need)
    neg_need = ((t_b < 0) & (w_b > min_weight)).any(dim=1)
    has_neg = torch.zeros(int(tsdf.shape[0]) // n_local, dtype=torch.bool, device=dev)
    has_neg[need] = neg_need
    cand = (has_neg[neighbour_slots.clamp(min=0)] & (neighbour_slots >= 0)).any(dim=1)
    keep_b = torch.nonzero(cand).flatten()
    all_coords = block_coords
    block_coords, neighbour_slots = block_coords[keep_b], neighbour_slots[keep_b]
    B = block_coords.shape[0]
    if B == 0:
        return SemanticMesh.empty()
    nb, local, corner_grid = (torch.as_tensor(a, device=dev) for a in _grid_tables(R))
    slot_grid = neighbour_slots[:, nb]  # (B, G^3)
    vox = slot_grid * n_local + local[None, :]
    ok = slot_grid >= 0
    vox = torch.where(ok, vox, torch.zeros_like(vox))
    f = tsdf[vox.reshape(-1)].view(B, -1)
    w = torch.where(ok, weight[vox.reshape(-1)].view(B, -1), torch.zeros_like(f))
    # Cube cases: corners gathered from the sample grid.
    fc = f[:, corner_grid]  # (B, R^3, 8)
    wc = w[:, corner_grid]
    valid = (wc > min_weight).all(dim=2)
    bits = (fc < 0).to(torch.int64) << torch.arange(8, device=dev)
    case = bits.sum(dim=2)
    active = valid & (case > 0) & (case < 255)
    b_idx, c_idx = torch.nonzero(active, as_tuple=True)
    if b_idx.numel() == 0:
        return SemanticMesh.empty()
    case = case[b_idx, c_idx]
    tri_edges_np, tri_count_np = marching_cubes_tables()
    tri_edges = torch.as_tensor(tri_edges_np, device=dev)
    tri_count = torch.as_tensor(tri_count_np, device=dev)
    n_tri = tri_count[case]
    cube_of_tri = torch.repeat_interleave(torch.arange(case.shape[0], device=dev), n_tri)
    first = torch.cumsum(n_tri, 0) - n_tri
    k = torch.arange(cube_of_tri.shape[0], device=dev) - first[cube_of_tri]
    edges = tri_edges[case[cube_of_tri], k]  # (F, 3)
    F = edges.shape[0]
    tb = b_idx[cube_of_tri]
    tc = c_idx[cube_of_tri]
    edge_corners = torch.as_tensor(EDGE_CORNERS, device=dev)
    ca = edge_corners[edges, 0]  # (F, 3) corner ids
    cb = edge_corners[edges, 1]
    tb3 = tb[:, None].expand(F, 3)
    tc3 = tc[:, None].expand(F, 3)
    ga = corner_grid[tc3, ca]  # grid index of the edge's lower end
    gb = corner_grid[tc3, cb]
    # Vertex key: global voxel of the lower end + axis.
    G = R + 1
    gxa = ga % G
    gya = (ga // G) % G
    gza = ga // (G * G)
    gvox = block_coords[tb3] * R + torch.stack([gxa, gya, gza], dim=-1)  # (F, 3, 3)
    axis = torch.div(edges, 4, rounding_mode="floor")
    off = 1 << 19
    key = ((((gvox[..., 0] + off) << 20 | (gvox[..., 1] + off)) << 20 | (gvox[..., 2] + off)) << 2) | axis
    uniq, inv = torch.unique(key.reshape(-1), return_inverse=True)
    V = uniq.shape[0]
    first_use = torch.full((V,), key.numel(), dtype=torch.int64, device=dev)
    first_use.scatter_reduce_(0, inv, torch.arange(key.numel(), device=dev), reduce="amin")
    # Attributes evaluated once per unique vertex.
    ga_v = ga.reshape(-1)[first_use]
    gb_v = gb.reshape(-1)[first_use]
    tb_v = tb3.reshape(-1)[first_use]
    fa = f[tb_v, ga_v]
    fb = f[tb_v, gb_v]
    t = (fa / (fa - fb)).clamp_(0.0, 1.0)
    pa = gvox.reshape(-1, 3)[first_use].to(torch.float32)
    step = torch.zeros_like(pa)
    step[torch.arange(V, device=dev), axis.reshape(-1)[first_use]] = 1.0
    verts = (pa + 0.5 + step * t[:, None]) * voxel_size_m
    va = vox[tb_v, ga_v]
    vb = vox[tb_v, gb_v]
    near = torch.where(t <= 0.5, va, vb)
    if color is not None:
        col = color[va] * (1.0 - t[:, None]) + color[vb] * t[:, None]
        col = col.round_().clamp_(0, 255).to(torch.uint8)
    else:
        col = torch.full((V, 3), 200, dtype=torch.uint8, device=dev)
    far = torch.where(t <= 0.5, vb, va)
    zeros = torch.zeros(V, dtype=torch.int64, device=dev)
    # The nearer end decides; the other end fills in when the nearer one has no label yet.
    cls = zeros
    if classes is not None:
        cls = classes(near).to(torch.int64)
        cls = torch.where(cls > 0, cls, classes(far).to(torch.int64))
    ins = zeros
    if instances is not None:
        ins = instances[near].to(torch.int64)
        ins = torch.where(ins > 0, ins, instances[far].to(torch.int64))
    tris = inv.view(F, 3)
    return SemanticMesh(
        vertices=verts.cpu().numpy(), triangles=tris.cpu().numpy(), colors=col.cpu().numpy(),
        classes=cls.to(torch.int64).cpu().numpy(), instances=ins.cpu().numpy(),
        triangle_block=keep_b[tb].cpu().numpy(), block_coords=all_coords.cpu().numpy(),
    )
