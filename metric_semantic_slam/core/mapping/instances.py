"""Persistent map instances from per-frame instance segments (PanopticFusion-style association).

Association (Narita et al., "PanopticFusion", IROS 2019): the voxels a frame segment hits near the
surface already carry map instance ids; the segment joins the map instance holding the largest share
of them when that share is at least ``min_overlap`` and the classes agree, otherwise it founds a new
instance. Map instances that each hold at least ``merge_overlap`` of one segment are merged (the
segment shows they are one object). Each voxel keeps an instance id with a small confidence counter
(+1 when re-observed with its id, -1 otherwise; the id is replaced when the counter reaches 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .tsdf import to_device
from .voxel_blocks import BlockStore, to_numpy

__all__ = ["InstanceConfig", "MapInstance", "InstanceTracker"]

_MAX_CONF = 1000
_DENSE_MAX_TABLE = 1 << 22
"""Largest (segment id x map id) overlap table of the dense association path (32 MB of int64)."""


@dataclass(frozen=True)
class InstanceConfig:
    """Instance association parameters."""

    min_overlap: float = 0.2
    """Share of a segment's voxels a map instance must hold to absorb the segment."""
    merge_overlap: float = 0.3
    """Share of one segment that each of two map instances must hold to be merged."""
    min_segment_voxels: int = 8
    """Segments hitting fewer surface voxels are ignored (too small to trust)."""

    def validate(self) -> None:
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        if not 0.0 < self.merge_overlap <= 1.0:
            raise ValueError(f"merge_overlap must be in (0, 1], got {self.merge_overlap}")
        if not self.min_segment_voxels >= 1:
            raise ValueError(f"min_segment_voxels must be >= 1, got {self.min_segment_voxels}")


@dataclass
class MapInstance:
    """One persistent object of the map.

    Shape: class_votes (C,) int64 (frames that saw it as each class); bounds_min_m, bounds_max_m (3,).
    """

    id: int
    class_votes: np.ndarray
    first_seen: int
    last_seen: int
    bounds_min_m: np.ndarray
    bounds_max_m: np.ndarray
    voxel_count: int = 0
    merged_ids: list[int] = field(default_factory=list)

    @property
    def class_id(self) -> int:
        return int(np.argmax(self.class_votes))

    def to_dict(self) -> dict:
        return {"id": self.id, "class_votes": self.class_votes.tolist(), "first_seen": self.first_seen,
                "last_seen": self.last_seen, "bounds_min_m": self.bounds_min_m.tolist(),
                "bounds_max_m": self.bounds_max_m.tolist(), "voxel_count": self.voxel_count,
                "merged_ids": list(self.merged_ids)}

    @classmethod
    def from_dict(cls, d: dict) -> "MapInstance":
        return cls(id=int(d["id"]), class_votes=np.asarray(d["class_votes"], dtype=np.int64),
                   first_seen=int(d["first_seen"]), last_seen=int(d["last_seen"]),
                   bounds_min_m=np.asarray(d["bounds_min_m"], dtype=np.float64),
                   bounds_max_m=np.asarray(d["bounds_max_m"], dtype=np.float64),
                   voxel_count=int(d.get("voxel_count", 0)), merged_ids=[int(i) for i in d.get("merged_ids", [])])


def _unique_small(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.unique(values, return_inverse=True, return_counts=True)`` for small non-negative ids.

    A histogram instead of a sort: linear in the number of values (ids here are frame segment ids and
    map instance ids, far below the value count). Falls back to ``torch.unique`` for large ids.
    Shape: values (K,) int64 -> unique (U,), inverse (K,), counts (U,).
    """
    top = int(values.max()) if values.numel() else 0
    if top > 4 * values.numel() + 65536:
        return torch.unique(values, return_inverse=True, return_counts=True)
    hist = torch.bincount(values, minlength=top + 1)
    present = hist > 0
    uniq = torch.nonzero(present).flatten()
    rank = torch.cumsum(present, 0) - 1
    return uniq, rank.index_select(0, values), hist.index_select(0, uniq)


class InstanceTracker:
    """Per-voxel instance ids (layers ``inst_id``, ``inst_conf``) and the table of map instances."""

    def __init__(self, store: BlockStore, num_classes: int, config: InstanceConfig = InstanceConfig()) -> None:
        config.validate()
        self.store = store
        self.num_classes = int(num_classes)
        self.config = config
        store.add_layer("inst_id", (), torch.int32, 0)
        store.add_layer("inst_conf", (), torch.int16, 0)
        self.instances: dict[int, MapInstance] = {}
        self.next_id = 1

    def reset(self) -> None:
        self.instances.clear()
        self.next_id = 1

    def update(self, voxel: torch.Tensor, segment: torch.Tensor, segment_class: torch.Tensor,
               centres_fn, frame_index: int, max_segment_id: int | None = None, dense: bool | None = None) -> None:
        """Associate this frame's segments and update the voxels' ids.

        ``segment`` is the frame instance id of each voxel's pixel (0 = none / stuff) and
        ``segment_class`` its class id.
        ``centres_fn(voxel)`` gives world voxel centres (K, 3).
        ``max_segment_id`` (an upper bound of ``segment``, known on the host) enables the dense path
        (default on CUDA): per-id tables of fixed size, one device->host copy and no other sync; the
        sparse path (CPU default) compacts first, which is cheaper there. Both give the same result.
        Shape: voxel (K,), segment (K,) int64, segment_class (K,) int64.
        """
        if dense is None:
            dense = voxel.device.type == "cuda"
        if (dense and max_segment_id is not None and 0 <= max_segment_id < 65536
                and (max_segment_id + 1) * max(self.next_id, 1) <= _DENSE_MAX_TABLE):
            self._update_dense(voxel, segment, segment_class, centres_fn, frame_index, int(max_segment_id))
            return
        id_v, conf_v = self.store.view("inst_id"), self.store.view("inst_conf")
        conf = conf_v.index_select(0, voxel)
        cur = torch.where(conf > 0, id_v.index_select(0, voxel), 0).to(torch.int64)
        # Only voxels that see a segment or hold an id have anything to update (stuff is most of a frame).
        rel = torch.nonzero((segment > 0) | (cur > 0)).flatten()
        if rel.numel() == 0:
            return
        voxel, segment, segment_class = voxel[rel], segment[rel], segment_class[rel]
        centres_m = centres_fn(voxel)
        cur, conf = cur[rel], conf[rel]
        target = torch.zeros_like(cur)
        segs, inv, counts = _unique_small(segment)
        C = self.num_classes
        # Majority class per segment in one bincount over (segment, class) pairs.
        cls_hist = torch.bincount(inv * C + segment_class, minlength=segs.shape[0] * C).view(-1, C)
        seg_cls = cls_hist.argmax(dim=1)
        # Overlap of each segment with each current map id.
        m_ids, m_inv, _ = _unique_small(cur)
        pair = torch.bincount(inv * m_ids.shape[0] + m_inv, minlength=segs.shape[0] * m_ids.shape[0])
        pair = pair.view(segs.shape[0], m_ids.shape[0]).cpu().numpy()
        segs_np, counts_np, cls_np, m_np = (segs.cpu().numpy(), counts.cpu().numpy(), seg_cls.cpu().numpy(),
                                            m_ids.cpu().numpy())
        assigned = np.zeros(len(segs_np), dtype=np.int64)
        # Per-segment bounds in two scatter reductions (a Python loop with masks costs ~1 ms/segment).
        n_seg = segs.shape[0]
        idx3 = inv[:, None].expand(-1, 3)
        lo = torch.full((n_seg, 3), float("inf"), device=voxel.device).scatter_reduce_(
            0, idx3, centres_m, reduce="amin").cpu().numpy()
        hi = torch.full((n_seg, 3), float("-inf"), device=voxel.device).scatter_reduce_(
            0, idx3, centres_m, reduce="amax").cpu().numpy()
        for i, s in enumerate(segs_np):
            assigned[i] = self._associate(int(s), int(counts_np[i]), pair[i], m_np, int(cls_np[i]), lo[i], hi[i],
                                          frame_index)
        target = torch.as_tensor(assigned, device=voxel.device)[inv]
        new_id, new_conf = self._vote(id_v.index_select(0, voxel), conf, target)
        id_v.index_copy_(0, voxel, new_id)
        conf_v.index_copy_(0, voxel, new_conf)

    def _associate(self, s: int, count: int, pair_row: np.ndarray, map_ids: np.ndarray, cls: int, lo: np.ndarray,
                   hi: np.ndarray, frame_index: int) -> int:
        """The map instance segment ``s`` joins (0 for none), creating or merging instances as needed.

        ``pair_row[j]`` is the number of the segment's voxels holding map id ``map_ids[j]``.
        """
        if s == 0 or count < self.config.min_segment_voxels:
            return 0
        share = pair_row / count
        # Overlap first (vectorised): only a handful of map ids pass it, so the per-instance class
        # lookups below stay cheap.
        js = np.nonzero((share >= self.config.min_overlap) & (map_ids > 0))[0]
        cand = [(share[j], int(map_ids[j])) for j in js
                if int(map_ids[j]) in self.instances and self.instances[int(map_ids[j])].class_id == cls]
        if cand:
            cand.sort(reverse=True)
            best = cand[0][1]
            for sh, other in cand[1:]:
                if sh >= self.config.merge_overlap and other in self.instances and best in self.instances:
                    self._merge(best, other)
        else:
            best = self.next_id
            self.next_id += 1
            self.instances[best] = MapInstance(best, np.zeros(self.num_classes, np.int64), frame_index, frame_index,
                                               np.full(3, np.inf), np.full(3, -np.inf))
        inst = self.instances[best]
        inst.class_votes[cls] += 1
        inst.last_seen = frame_index
        inst.bounds_min_m = np.minimum(inst.bounds_min_m, lo)
        inst.bounds_max_m = np.maximum(inst.bounds_max_m, hi)
        return best

    @staticmethod
    def _vote(id_now: torch.Tensor, conf: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """New (id int32, confidence int16) of voxels holding ``id_now`` (after any merge) seeing ``target``."""
        cur_after = id_now.to(torch.int64)
        same = (cur_after == target) & (target > 0)
        new_conf = torch.where(same, conf + 1, conf - 1).clamp_(0, _MAX_CONF)
        take = (new_conf == 0) & (target > 0)
        new_id = torch.where(take, target, torch.where(new_conf > 0, cur_after, torch.zeros_like(cur_after)))
        new_conf = torch.where(take, torch.ones_like(new_conf), new_conf)
        return new_id.to(torch.int32), new_conf.to(torch.int16)

    def _update_dense(self, voxel: torch.Tensor, segment: torch.Tensor, segment_class: torch.Tensor, centres_fn,
                      frame_index: int, max_segment_id: int) -> None:
        """:meth:`update` with tables indexed by segment id and map id (sizes known on the host).

        Every voxel takes part; the ones with no segment and no id (the sparse path's skipped ones)
        fall in row/column 0, which the association ignores, and are written back unchanged.
        """
        dev = voxel.device
        S, M, C = max_segment_id + 1, max(self.next_id, 1), self.num_classes
        id_v, conf_v = self.store.view("inst_id"), self.store.view("inst_conf")
        conf = conf_v.index_select(0, voxel)
        cur = torch.where(conf > 0, id_v.index_select(0, voxel), 0).to(torch.int64)
        rel = (segment > 0) | (cur > 0)
        ones = torch.ones_like(segment)
        counts = torch.zeros(S, dtype=torch.int64, device=dev).scatter_add_(0, segment, ones)
        cls_hist = torch.zeros(S * C, dtype=torch.int64, device=dev).scatter_add_(0, segment * C + segment_class, ones)
        seg_cls = cls_hist.view(S, C).argmax(dim=1)
        pair = torch.zeros(S * M, dtype=torch.int64, device=dev).scatter_add_(0, segment * M + cur, ones).view(S, M)
        centres_m = centres_fn(voxel)
        idx3 = segment[:, None].expand(-1, 3)
        lo = torch.full((S, 3), float("inf"), device=dev).scatter_reduce_(0, idx3, centres_m, reduce="amin")
        hi = torch.full((S, 3), float("-inf"), device=dev).scatter_reduce_(0, idx3, centres_m, reduce="amax")
        counts_np, cls_np, pair_np, lo_np, hi_np = to_numpy([counts, seg_cls, pair, lo, hi])  # the one sync
        map_ids = np.arange(M)
        assigned = np.zeros(S, dtype=np.int64)
        for s in np.nonzero(counts_np)[0]:  # ascending ids: the sparse path's order
            assigned[s] = self._associate(int(s), int(counts_np[s]), pair_np[s], map_ids, int(cls_np[s]), lo_np[s],
                                          hi_np[s], frame_index)
        target = to_device(torch.from_numpy(assigned), dev).index_select(0, segment)
        id_now = id_v.index_select(0, voxel)  # merges may have renamed ids
        new_id, new_conf = self._vote(id_now, conf, target)
        id_v.index_copy_(0, voxel, torch.where(rel, new_id, id_now))
        conf_v.index_copy_(0, voxel, torch.where(rel, new_conf, conf))

    def _merge(self, keep: int, gone: int) -> None:
        id_v = self.store.view("inst_id")
        id_v.masked_fill_(id_v == gone, keep)  # no data-dependent size: no host sync
        a, b = self.instances[keep], self.instances.pop(gone)
        a.class_votes += b.class_votes
        a.first_seen = min(a.first_seen, b.first_seen)
        a.last_seen = max(a.last_seen, b.last_seen)
        a.bounds_min_m = np.minimum(a.bounds_min_m, b.bounds_min_m)
        a.bounds_max_m = np.maximum(a.bounds_max_m, b.bounds_max_m)
        a.merged_ids += [gone] + b.merged_ids

    def refresh_counts(self, n_blocks: int) -> None:
        """Recount each instance's voxels (instances left with none are dropped, e.g. after eviction)."""
        n = n_blocks * self.store.voxels_per_block
        ids = self.store.view("inst_id")[:n].to(torch.int64)
        conf = self.store.view("inst_conf")[:n]
        ids = ids[conf > 0]
        counts = torch.bincount(ids, minlength=self.next_id).cpu().numpy() if ids.numel() else np.zeros(
            self.next_id, np.int64)
        for k in list(self.instances):
            c = int(counts[k]) if k < len(counts) else 0
            if c == 0:
                del self.instances[k]
            else:
                self.instances[k].voxel_count = c
