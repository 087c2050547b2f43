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

from .voxel_blocks import to_numpy

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


@lru_cache(maxsize=8)
def _device_tables(R: int, device: str) -> dict[str, torch.Tensor]:
    """The constant tables of :func:`marching_cubes_blocks` on ``device``, built once (no per-call uploads).

    Per (cube, edge) of a block: grid index of the edge's two ends (``edge_grid_a``/``_b``, (R^3, 12)),
    and the lower end's contribution to a vertex key (``edge_key``, (R^3, 12)): the packed key of a
    vertex is ``block_key(block) + edge_key(cube, edge)`` (bit fields that never carry into each other).
    """
    dev = torch.device(device)
    nb, local, corner_grid = _grid_tables(R)
    tri_edges, tri_count = marching_cubes_tables()
    G = R + 1
    ga = corner_grid[:, EDGE_CORNERS[:, 0]]  # (R^3, 12)
    gb = corner_grid[:, EDGE_CORNERS[:, 1]]
    lx, ly, lz = ga % G, (ga // G) % G, ga // (G * G)
    axis = np.arange(12)[None, :] // 4
    edge_key = (lx << 42) + (ly << 22) + (lz << 2) + axis
    t = {"nb": nb, "local": local, "tri_edges": tri_edges, "tri_count": tri_count,
         "edge_grid_a": ga, "edge_grid_b": gb, "edge_key": edge_key, "edge_lower": np.stack([lx, ly, lz], axis=-1),
         "edge_axis": np.broadcast_to(axis, ga.shape).copy(), "axes": np.arange(3),
         "key_shift": np.array([42, 22, 2])}
    return {k: torch.as_tensor(np.ascontiguousarray(v, dtype=np.int64), device=dev) for k, v in t.items()}


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` along dim 0 through ``index_select`` (on a CPU several times faster than advanced
    indexing). Shape: t (N, ...), idx (...) int64 -> (..., ...)."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def _take2(t: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """``t[i, j]`` of a contiguous 2D tensor as one flat ``index_select``; i, j broadcast."""
    flat = i * t.shape[1] + j
    return t.view(-1).index_select(0, flat.reshape(-1)).view(flat.shape)


def marching_cubes_blocks(block_coords: torch.Tensor, neighbour_slots: torch.Tensor, tsdf: torch.Tensor,
                          weight: torch.Tensor, color: torch.Tensor | None, classes: "callable | None",
                          instances: torch.Tensor | None, R: int, voxel_size_m: float,
                          min_weight: float = 1e-3, scan_all_blocks: bool | None = None) -> SemanticMesh:
    """Extract the zero level set of the cubes whose lower corner lies in the given blocks.

    ``neighbour_slots[b, n]`` is the slot of block ``coords[b] + CORNER_OFFSETS[n]`` (-1 if absent);
    ``classes(voxel_index)`` returns the class id of flat voxel indices.
    Shape: block_coords (B, 3) int64; neighbour_slots (B, 8) int64; tsdf, weight (N * R^3,) float32;
    color (N * R^3, 3) float32 or None; instances (N * R^3,) or None.

    Device work is shape-static except for the counts that need the host (blocks worth meshing,
    triangles, unique vertices) and the one copy of the results: each is one sync.
    ``scan_all_blocks`` (default: on CUDA) tests every stored block for surface voxels instead of
    gathering the neighbours' first: more arithmetic, one sync less (the same result).
    """
    dev = tsdf.device
    if block_coords.shape[0] == 0:
        return SemanticMesh.empty()
    n_local = R ** 3
    tab = _device_tables(R, str(dev))
    # Skip blocks whose cubes cannot cross the surface: no observed negative voxel in the block or in
    # the +x/+y/+z neighbours its cubes read. Most re-meshed blocks are free space. The blocks read
    # are marked in a bitmap (absent neighbours on a spare last entry): one nonzero, no sort.
    n_blocks = int(tsdf.shape[0]) // n_local
    if scan_all_blocks is None:
        scan_all_blocks = dev.type == "cuda"
    has_neg = torch.zeros(n_blocks + 1, dtype=torch.bool, device=dev)  # the spare entry stays False
    if scan_all_blocks:
        has_neg[:-1] = ((tsdf.view(-1, n_local) < 0) & (weight.view(-1, n_local) > min_weight)).any(dim=1)
    else:
        read = torch.zeros(n_blocks + 1, dtype=torch.bool, device=dev)
        read[torch.where(neighbour_slots >= 0, neighbour_slots, n_blocks).view(-1)] = True
        need = torch.nonzero(read[:-1]).flatten()
        t_b = tsdf.view(-1, n_local).index_select(0, need)
        w_b = weight.view(-1, n_local).index_select(0, need)
        has_neg[need] = ((t_b < 0) & (w_b > min_weight)).any(dim=1)
    cand = has_neg[torch.where(neighbour_slots >= 0, neighbour_slots, n_blocks)].any(dim=1)
    keep_b = torch.nonzero(cand).flatten()
    all_coords = block_coords
    block_coords, neighbour_slots = block_coords[keep_b], neighbour_slots[keep_b]
    B = block_coords.shape[0]
    if B == 0:
        return SemanticMesh.empty()
    slot_grid = neighbour_slots.index_select(1, tab["nb"])  # (B, G^3)
    ok = slot_grid >= 0
    # Absent neighbours read voxel 0 with weight 0: their cubes are invalid, their values never used.
    vox = torch.where(ok, slot_grid * n_local + tab["local"], 0)
    # index_select: on a CPU several times faster than advanced indexing for a flat gather
    f = tsdf.index_select(0, vox.view(-1)).view(B, -1)
    w = torch.where(ok, weight.index_select(0, vox.view(-1)).view(B, -1), 0.0)
    # Cube cases from the sample grid viewed as (B, z, y, x): corner i of every cube is one strided
    # slice (offset CORNER_OFFSETS[i]), in the cubes' order (x fastest) -- no gather of 8 corners per cube.
    # One int32 sum over the corners holds both: bit i = corner i inside, plus 256 * 2^i for every
    # unobserved corner i (a cube is valid when its sum is < 256).
    G = R + 1
    f4, w4 = f.view(B, G, G, G), w.view(B, G, G, G)
    code = (f4 < 0).to(torch.int32)
    code.masked_fill_(w4 <= min_weight, 256)  # an unobserved sample's inside bit does not matter
    acc = torch.zeros((B, R, R, R), dtype=torch.int32, device=dev)
    for i, (ox, oy, oz) in enumerate(CORNER_OFFSETS.tolist()):
        acc.add_(code[:, oz:oz + R, oy:oy + R, ox:ox + R], alpha=1 << i)
    # Cubes the surface crosses (cases 0 and 255 have no triangle), then their triangle slots in the
    # order of a cube-by-cube expansion: (block, cube, triangle).
    acc = acc.view(B, -1)
    cb, cc = torch.nonzero((acc > 0) & (acc < 255), as_tuple=True)
    if cb.numel() == 0:
        return SemanticMesh.empty()
    case_c = _take2(acc, cb, cc).to(torch.int64)
    counts = _take(tab["tri_count"], case_c)
    cube_of_tri = torch.repeat_interleave(torch.arange(cb.numel(), device=dev), counts)
    first_tri = torch.cumsum(counts, 0) - counts
    tb, tc = _take(cb, cube_of_tri), _take(cc, cube_of_tri)
    k = torch.arange(cube_of_tri.numel(), device=dev) - _take(first_tri, cube_of_tri)
    # (F, 3): row k of the case's triangle table, the table viewed as (256, 5 * 3)
    edges = _take2(tab["tri_edges"].view(256, -1), _take(case_c, cube_of_tri)[:, None],
                   k[:, None] * 3 + torch.arange(3, device=dev))
    F = edges.shape[0]
    # Vertex key: global voxel of the edge's lower end + axis, as bit fields (see _device_tables).
    off = 1 << 19
    bkey = ((block_coords * R + off) << tab["key_shift"]).sum(dim=1)  # (B,)
    tc3 = tc[:, None].expand(F, 3)
    key = _take(bkey, tb)[:, None] + _take2(tab["edge_key"], tc3, edges)
    uniq, inv = torch.unique(key.view(-1), return_inverse=True)
    V = uniq.shape[0]
    first_use = torch.full((V,), key.numel(), dtype=torch.int64, device=dev)
    first_use.scatter_reduce_(0, inv, torch.arange(key.numel(), device=dev), reduce="amin")
    # Attributes evaluated once per unique vertex.
    tri_v = torch.div(first_use, 3, rounding_mode="floor")
    tb_v = _take(tb, tri_v)
    tc_v = _take(tc, tri_v)
    e_v = _take(edges.view(-1), first_use)
    ga_v = _take2(tab["edge_grid_a"], tc_v, e_v)
    gb_v = _take2(tab["edge_grid_b"], tc_v, e_v)
    fa = _take2(f, tb_v, ga_v)
    fb = _take2(f, tb_v, gb_v)
    t = (fa / (fa - fb)).clamp_(0.0, 1.0)
    pa = (_take(block_coords, tb_v) * R + _take(tab["edge_lower"].view(-1, 3), tc_v * 12 + e_v)).to(torch.float32)
    step = (_take2(tab["edge_axis"], tc_v, e_v)[:, None] == tab["axes"]).to(torch.float32)
    verts = (pa + 0.5 + step * t[:, None]) * voxel_size_m
    va = _take2(vox, tb_v, ga_v)
    vb = _take2(vox, tb_v, gb_v)
    lower_near = (t <= 0.5)[:, None]
    near_far = torch.where(lower_near, torch.stack([va, vb], dim=1), torch.stack([vb, va], dim=1)).T.reshape(-1)
    if color is not None:
        col = _take(color, va) * (1.0 - t[:, None]) + _take(color, vb) * t[:, None]
        col = col.round_().clamp_(0, 255).to(torch.uint8)
    else:
        col = torch.full((V, 3), 200, dtype=torch.uint8, device=dev)
    zeros = torch.zeros(V, dtype=torch.int64, device=dev)
    # The nearer end decides; the other end fills in when the nearer one has no label yet. Both ends
    # are looked up in one call (near ends first).
    cls = zeros
    if classes is not None:
        both = classes(near_far).to(torch.int64)
        cls = torch.where(both[:V] > 0, both[:V], both[V:])
    ins = zeros
    if instances is not None:
        both = _take(instances, near_far).to(torch.int64)
        ins = torch.where(both[:V] > 0, both[:V], both[V:])
    verts_np, tris_np, col_np, cls_np, ins_np, tblk_np, coords_np = to_numpy(
        [verts, inv.view(F, 3), col, cls, ins, keep_b[tb], all_coords])
    return SemanticMesh(vertices=verts_np, triangles=tris_np, colors=col_np, classes=cls_np, instances=ins_np,
                        triangle_block=tblk_np, block_coords=coords_np)
