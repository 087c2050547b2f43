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

from .voxel_blocks import BlockStore

__all__ = ["InstanceConfig", "MapInstance", "InstanceTracker"]

_MAX_CONF = 1000


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
               centres_fn, frame_index: int) -> None:
        """Associate this frame's segments and update the voxels' ids.

        ``segment`` is the frame instance id of each voxel's pixel (0 = none / stuff) and
        ``segment_class`` its class id.
        ``centres_fn(voxel)`` gives world voxel centres (K, 3).
        Shape: voxel (K,), segment (K,) int64, segment_class (K,) int64.
        """
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
            if s == 0 or counts_np[i] < self.config.min_segment_voxels:
                continue
            share = pair[i] / counts_np[i]
            # Overlap first (vectorised): only a handful of map ids pass it, so the per-instance class
            # lookups below stay cheap.
            js = np.nonzero((share >= self.config.min_overlap) & (m_np > 0))[0]
            cand = [(share[j], int(m_np[j])) for j in js
                    if int(m_np[j]) in self.instances and self.instances[int(m_np[j])].class_id == cls_np[i]]
            if cand:
                cand.sort(reverse=True)
                best = cand[0][1]
                for sh, other in cand[1:]:
                    if sh >= self.config.merge_overlap and other in self.instances and best in self.instances:
                        self._merge(best, other)
            else:
                best = self.next_id
                self.next_id += 1
                self.instances[best] = MapInstance(best, np.zeros(C, np.int64), frame_index, frame_index,
                                                   np.full(3, np.inf), np.full(3, -np.inf))
            assigned[i] = best
            inst = self.instances[best]
            inst.class_votes[cls_np[i]] += 1
            inst.last_seen = frame_index
            inst.bounds_min_m = np.minimum(inst.bounds_min_m, lo[i])
            inst.bounds_max_m = np.maximum(inst.bounds_max_m, hi[i])
        target = torch.as_tensor(assigned, device=voxel.device)[inv]
        cur_after = id_v.index_select(0, voxel).to(torch.int64)  # merges may have renamed ids
        same = (cur_after == target) & (target > 0)
        new_conf = torch.where(same, conf + 1, conf - 1).clamp_(0, _MAX_CONF)
        take = (new_conf == 0) & (target > 0)
        new_id = torch.where(take, target, torch.where(new_conf > 0, cur_after, torch.zeros_like(cur_after)))
        new_conf = torch.where(take, torch.ones_like(new_conf), new_conf)
        id_v.index_copy_(0, voxel, new_id.to(torch.int32))
        conf_v.index_copy_(0, voxel, new_conf.to(torch.int16))

    def _merge(self, keep: int, gone: int) -> None:
        id_v = self.store.view("inst_id")
        id_v[id_v == gone] = keep
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
