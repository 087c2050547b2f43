"""``oracle`` backend: ground-truth labels with optional, seeded, controlled noise.

For evaluating the rest of the system (mapper, scene graph) with known label quality. Reads
``PanopticInput.gt_semantic`` / ``gt_instance``. Noise:

- ``noise_fraction``: that fraction of the frame's segments (a stuff class region, or one thing
  instance) gets a uniformly drawn wrong class (any non-unknown class of the label space other than the
  true one); the number of corrupted segments is ``round(noise_fraction * n_segments)``;
- ``pixel_noise_fraction``: that fraction of the labelled pixels independently gets a wrong class
  (salt noise; their instance id is cleared).

A segment relabelled to a stuff class loses its instance id; a stuff region relabelled to a thing
class stays instance 0 (a thing without an instance, as from a semantic-only model). One generator
seeded by ``seed`` is advanced frame by frame, so a sequence of frames is reproducible.
"""
from __future__ import annotations

import numpy as np

from ..labels import LabelSpace
from .types import PanopticInput, PanopticResult, validate_input

__all__ = ["OracleBackend"]


class OracleBackend:
    """Ground truth (+ noise) as a panoptic backend. See the module doc for the noise model."""

    name = "oracle"

    def __init__(self, label_space: LabelSpace, noise_fraction: float = 0.0, pixel_noise_fraction: float = 0.0,
                 seed: int = 0, **unused) -> None:
        for nm, v in (("noise_fraction", noise_fraction), ("pixel_noise_fraction", pixel_noise_fraction)):
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{nm} must be in [0, 1], got {v}")
        self.label_space = label_space
        self.noise_fraction = float(noise_fraction)
        self.pixel_noise_fraction = float(pixel_noise_fraction)
        self._rng = np.random.default_rng(seed)
        self._classes = np.array([lab.id for lab in label_space.labels if lab.id != 0], dtype=np.int64)
        self._thing = label_space.thing_mask

    def _wrong_class(self, true_ids: np.ndarray) -> np.ndarray:
        """A uniformly drawn class != true id (and != 0) for every entry. Shape: (N,) -> (N,)."""
        n = len(self._classes)
        if n < 2:
            return true_ids.copy()
        # draw among n - 1 choices and skip the true class's slot
        pos = np.searchsorted(self._classes, true_ids)
        true_in = (pos < n) & (self._classes[np.minimum(pos, n - 1)] == true_ids)
        draw = self._rng.integers(0, n - 1, size=len(true_ids))
        draw = np.where(true_in & (draw >= pos), draw + 1, draw)
        return self._classes[np.minimum(draw, n - 1)]

    def predict(self, inp: PanopticInput) -> PanopticResult:
        validate_input(inp, need_gt=True)
        max_id = self.label_space.max_id
        sem = inp.gt_semantic.astype(np.int64)
        sem = np.where((sem >= 0) & (sem <= max_id), sem, 0)
        known = np.zeros(max_id + 1, bool)
        known[[lab.id for lab in self.label_space.labels]] = True
        sem = np.where(known[sem], sem, 0)
        if inp.gt_instance is not None:
            inst = np.where(self._thing[sem], inp.gt_instance.astype(np.int64), 0)
        else:
            inst = np.zeros_like(sem)

        if self.noise_fraction > 0:
            key = sem * 65536 + inst
            seg_keys, inverse = np.unique(key, return_inverse=True)
            labelled = seg_keys // 65536 != 0
            cand = np.flatnonzero(labelled)
            n_bad = int(round(self.noise_fraction * len(cand)))
            if n_bad > 0:
                bad = self._rng.choice(cand, size=n_bad, replace=False)
                new_cls = seg_keys // 65536
                new_cls[bad] = self._wrong_class(new_cls[bad])
                new_inst = seg_keys % 65536
                new_inst = np.where(self._thing[new_cls], new_inst, 0)
                sem = new_cls[inverse].reshape(sem.shape)
                inst = new_inst[inverse].reshape(sem.shape)
        if self.pixel_noise_fraction > 0:
            lab_idx = np.flatnonzero(sem.reshape(-1) != 0)
            n_bad = int(round(self.pixel_noise_fraction * len(lab_idx)))
            if n_bad > 0:
                idx = self._rng.choice(lab_idx, size=n_bad, replace=False)
                flat_s, flat_i = sem.reshape(-1), inst.reshape(-1)
                flat_s[idx] = self._wrong_class(flat_s[idx])
                flat_i[idx] = 0

        # one class per instance id (majority, ties to the lower class id), ids unique in the frame: one
        # (instance, class) histogram instead of np.unique + a mask per instance (~30 ms at 640x480)
        instance = inst.astype(np.uint16)
        classes: dict[int, int] = {}
        flat_i, flat_s = inst.reshape(-1).astype(np.int64), sem.reshape(-1).astype(np.int64)
        labelled = flat_i > 0
        if labelled.any():
            n_cls = int(flat_s.max()) + 1
            hist = np.bincount(flat_i[labelled] * n_cls + flat_s[labelled],
                               minlength=(int(flat_i.max()) + 1) * n_cls).reshape(-1, n_cls)
            for iid in np.flatnonzero(hist.any(axis=1)):
                classes[int(iid)] = int(hist[iid].argmax())
        return PanopticResult(sem.astype(np.uint16), instance, None, classes, {k: 1.0 for k in classes})

    def predict_batch(self, inputs: list[PanopticInput]) -> list[PanopticResult]:
        return [self.predict(i) for i in inputs]
