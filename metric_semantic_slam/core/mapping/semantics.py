"""Per-voxel semantic class fusion, pluggable by a string key (``SEMANTIC_FUSIONS``).

Bayesian fusion as in Kimera-Semantics (Rosinol et al., ICRA 2020): a pixel labelled ``l`` is a
measurement with likelihood ``p`` for class ``l`` and ``(1 - p) / (C - 1)`` for every other class
(``p`` = ``measurement_probability``). In log space the update adds the same constant to every class
except ``l``, so only the *difference* matters: we add
``delta = log(p) - log((1 - p) / (C - 1))`` to class ``l`` alone. When the model gives per-pixel
probabilities ``q``, the update adds ``log(q) - min(log(q))``. Scores are unnormalised log-posteriors
(posterior = softmax of scores, uniform prior = all zero).

Memory bound: scores are float16 and kept in ``[0, max_log_odds]``: when a class would exceed the
cap, the whole voxel row is shifted down (floored at 0), which keeps class differences exact up to
the cap and lets the map change its mind after a bounded number of contrary observations.

Strategies:

- ``bayesian``: dense float16 scores for every class (``2 C`` bytes per voxel).
- ``bayesian_topk``: only the ``k`` best classes per voxel (``3 k`` bytes per voxel); a new class
  replaces the weakest entry, which starts from that entry's score (an upper bound of what it had).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .voxel_blocks import BlockStore

__all__ = ["SemanticConfig", "SemanticFusion", "DenseBayesianFusion", "TopKBayesianFusion",
           "SEMANTIC_FUSIONS", "make_semantic_fusion"]


@dataclass(frozen=True)
class SemanticConfig:
    """Semantic fusion parameters."""

    method: str = "bayesian"
    """Key in ``SEMANTIC_FUSIONS``: ``bayesian`` (dense fp16) or ``bayesian_topk``."""
    measurement_probability: float = 0.7
    """Likelihood that a pixel's label is right (Kimera's ``semantic_measurement_probability``)."""
    max_log_odds: float = 60.0
    """Cap of a class score above the weakest class (float16 keeps ~0.03 resolution up to 64)."""
    top_k: int = 4
    """Classes kept per voxel by ``bayesian_topk``."""
    band_voxels: float = 2.0
    """Only voxels within this many voxels of the observed surface receive the pixel's label."""
    min_margin: float = 1.5
    """A voxel reports its best class only when it leads the runner-up by this many single-label
    measurements (``min_margin * delta`` in score); otherwise it reports 0 (unknown). 1.5 means a
    class seen once, or tied, stays unknown: one noisy pixel cannot paint the map."""

    def validate(self) -> None:
        if self.method not in SEMANTIC_FUSIONS:
            raise ValueError(f"unknown semantic fusion {self.method!r}; available: {sorted(SEMANTIC_FUSIONS)}")
        if not 0.0 < self.measurement_probability < 1.0:
            raise ValueError(f"measurement_probability must be in (0, 1), got {self.measurement_probability}")
        if not 0.0 < self.max_log_odds <= 1000.0:
            raise ValueError(f"max_log_odds must be in (0, 1000], got {self.max_log_odds}")
        if not self.top_k >= 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not self.min_margin >= 0:
            raise ValueError(f"min_margin must be >= 0, got {self.min_margin}")
        if not self.band_voxels > 0:
            raise ValueError(f"band_voxels must be > 0, got {self.band_voxels}")


class SemanticFusion:
    """Interface of a per-voxel class fusion strategy; its state lives in ``store`` layers."""

    def __init__(self, store: BlockStore, num_classes: int, config: SemanticConfig) -> None:
        self.store = store
        self.num_classes = int(num_classes)
        self.config = config
        self.delta = math.log(config.measurement_probability) - math.log(
            (1.0 - config.measurement_probability) / max(self.num_classes - 1, 1))

    def update_labels(self, voxel: torch.Tensor, labels: torch.Tensor) -> None:
        """Fuse one class id per voxel (0 = unknown is skipped). Shape: voxel (K,), labels (K,) int64."""
        raise NotImplementedError

    def update_probabilities(self, voxel: torch.Tensor, probs: torch.Tensor) -> None:
        """Fuse a class distribution per voxel. Shape: voxel (K,), probs (K, C) float."""
        raise NotImplementedError

    def labels(self, voxel: torch.Tensor) -> torch.Tensor:
        """Most probable class per voxel; 0 where it does not lead by ``min_margin``. Shape: (K,) -> (K,) int64."""
        raise NotImplementedError

    def _decide(self, ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Best class of each row of (ids, scores), 0 where it does not lead by the margin."""
        if scores.shape[1] > 1:
            # best and runner-up by two max passes: topk(2) is several times slower on a CPU; a tie gives
            # lead 0 (no label) whichever of the tied classes max picks
            s = scores.to(torch.float32, copy=True)  # written below: never the caller's tensor
            first, best = s.max(dim=1)
            s.scatter_(1, best[:, None], float("-inf"))
            lead = first - s.max(dim=1).values
        else:
            lead = scores[:, 0].to(torch.float32)
            best = torch.zeros_like(lead, dtype=torch.int64)
        lab = ids.gather(1, best[:, None]).squeeze(1) if ids is not None else best
        ok = (lead >= self.config.min_margin * self.delta - 1e-2) & (lead > 0)
        return torch.where(ok, lab, torch.zeros_like(lab))

    def _log_increment(self, probs: torch.Tensor) -> torch.Tensor:
        lp = torch.log(probs.to(torch.float32).clamp(min=1e-6))
        return lp - lp.min(dim=1, keepdim=True).values


def _cap_rows(rows: torch.Tensor, cap: float) -> torch.Tensor:
    """Shift rows whose maximum exceeds ``cap`` down so the maximum equals ``cap`` (floor 0)."""
    over = (rows.max(dim=1, keepdim=True).values - cap).clamp(min=0.0)
    return (rows - over).clamp_(min=0.0)


class DenseBayesianFusion(SemanticFusion):
    """Kimera-style Bayesian fusion with a float16 score for every class."""

    def __init__(self, store: BlockStore, num_classes: int, config: SemanticConfig) -> None:
        super().__init__(store, num_classes, config)
        store.add_layer("sem_scores", (self.num_classes,), torch.float16, 0.0)

    def update_labels(self, voxel: torch.Tensor, labels: torch.Tensor) -> None:
        if voxel.numel() == 0:
            return
        flat = self.store.layers["sem_scores"].view(-1)
        pos = voxel * self.num_classes + labels
        # Unknown (0) labels add 0 to class 0: the score is written back unchanged, which is cheaper
        # than filtering them out first (voxels are unique within one update, so no write collides).
        new = flat.index_select(0, pos).to(torch.float32).add_((labels > 0).to(torch.float32), alpha=self.delta)
        cap = self.config.max_log_odds
        sat = new > cap
        flat.index_copy_(0, pos, new.clamp(max=cap).to(torch.float16))
        # Saturated voxels (most of a well observed map): shift the whole row so the other classes
        # keep their distance. One index list serves every gather (its size is the one host sync).
        si = torch.nonzero(sat).flatten()
        if si.numel():
            sv = voxel.index_select(0, si)
            view = self.store.view("sem_scores")
            rows = view.index_select(0, sv).to(torch.float32)
            rows.sub_(new.index_select(0, si).sub_(cap)[:, None]).clamp_(min=0.0)
            rows.scatter_(1, labels.index_select(0, si)[:, None], cap)
            view.index_copy_(0, sv, rows.to(torch.float16))

    def update_probabilities(self, voxel: torch.Tensor, probs: torch.Tensor) -> None:
        if voxel.numel() == 0:
            return
        view = self.store.view("sem_scores")
        rows = view.index_select(0, voxel).to(torch.float32) + self._log_increment(probs)
        view.index_copy_(0, voxel, _cap_rows(rows, self.config.max_log_odds).to(torch.float16))

    def labels(self, voxel: torch.Tensor) -> torch.Tensor:
        return self._decide(None, self.store.view("sem_scores").index_select(0, voxel))

    def probabilities(self, voxel: torch.Tensor) -> torch.Tensor:
        """Posterior class probabilities. Shape: (K,) -> (K, C) float32."""
        return torch.softmax(self.store.view("sem_scores").index_select(0, voxel).to(torch.float32), dim=1)


class TopKBayesianFusion(SemanticFusion):
    """Bayesian fusion keeping only the ``k`` strongest classes of each voxel (bounded memory)."""

    def __init__(self, store: BlockStore, num_classes: int, config: SemanticConfig) -> None:
        super().__init__(store, num_classes, config)
        if num_classes > 255:
            raise ValueError("bayesian_topk stores class ids as uint8; use at most 255 classes")
        self.k = int(config.top_k)
        store.add_layer("sem_topk_ids", (self.k,), torch.uint8, 0)
        store.add_layer("sem_topk_scores", (self.k,), torch.float16, 0.0)

    def update_labels(self, voxel: torch.Tensor, labels: torch.Tensor) -> None:
        keep = labels > 0
        voxel, labels = voxel[keep], labels[keep]
        if voxel.numel() == 0:
            return
        ids_v, sc_v = self.store.view("sem_topk_ids"), self.store.view("sem_topk_scores")
        ids = ids_v.index_select(0, voxel).to(torch.int64)
        sc = sc_v.index_select(0, voxel).to(torch.float32)
        hit = (ids == labels[:, None]) & (sc > 0)
        has = hit.any(dim=1)
        # Without a slot for the label, take the weakest one (keeping its score as the new prior).
        slot = torch.where(has, hit.to(torch.int8).argmax(dim=1), sc.argmin(dim=1))
        ids.scatter_(1, slot[:, None], labels[:, None])
        sc.scatter_add_(1, slot[:, None], torch.full_like(sc[:, :1], self.delta))
        ids_v.index_copy_(0, voxel, ids.to(torch.uint8))
        sc_v.index_copy_(0, voxel, _cap_rows(sc, self.config.max_log_odds).to(torch.float16))

    def update_probabilities(self, voxel: torch.Tensor, probs: torch.Tensor) -> None:
        # Top-k of the measurement, fused one class at a time with its own log increment.
        inc = self._log_increment(probs)
        top = inc.topk(min(self.k, inc.shape[1]), dim=1)
        for j in range(top.indices.shape[1]):
            self._add(voxel, top.indices[:, j], top.values[:, j])

    def _add(self, voxel: torch.Tensor, labels: torch.Tensor, amount: torch.Tensor) -> None:
        ids_v, sc_v = self.store.view("sem_topk_ids"), self.store.view("sem_topk_scores")
        ids = ids_v.index_select(0, voxel).to(torch.int64)
        sc = sc_v.index_select(0, voxel).to(torch.float32)
        hit = (ids == labels[:, None]) & (sc > 0)
        slot = torch.where(hit.any(dim=1), hit.to(torch.int8).argmax(dim=1), sc.argmin(dim=1))
        ids.scatter_(1, slot[:, None], labels[:, None])
        sc.scatter_add_(1, slot[:, None], amount[:, None])
        ids_v.index_copy_(0, voxel, ids.to(torch.uint8))
        sc_v.index_copy_(0, voxel, _cap_rows(sc, self.config.max_log_odds).to(torch.float16))

    def labels(self, voxel: torch.Tensor) -> torch.Tensor:
        ids = self.store.view("sem_topk_ids").index_select(0, voxel).to(torch.int64)
        return self._decide(ids, self.store.view("sem_topk_scores").index_select(0, voxel))


SEMANTIC_FUSIONS: dict[str, type[SemanticFusion]] = {
    "bayesian": DenseBayesianFusion,
    "bayesian_topk": TopKBayesianFusion,
}


def make_semantic_fusion(store: BlockStore, num_classes: int, config: SemanticConfig) -> SemanticFusion:
    """Build the strategy named by ``config.method`` (raises ValueError for an unknown key)."""
    config.validate()
    return SEMANTIC_FUSIONS[config.method](store, num_classes, config)
