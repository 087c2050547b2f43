"""Semantic and panoptic quality: confusion matrix, 2D / 3D mIoU, panoptic quality (PQ).

Label conventions follow ``core/labels.py``: class id 0 is "unknown"; instance id 0 is "no
instance" (stuff, or a thing pixel without an instance).

**2D mIoU.** Pixels whose GROUND-TRUTH class is in ``ignore_ids`` are dropped. A prediction of an
ignored class (e.g. 0 = "don't know") on a valid GT pixel still counts as a miss (a false
negative of the GT class). Per class ``IoU_c = TP / (TP + FP + FN)``; mIoU averages over the
classes (not ignored) present in the GT or the prediction.

**3D mIoU** (:func:`miou_3d`), defined symmetrically on labeled point sets:

- each predicted point with a GT point within ``max_dist_m`` votes ``(gt label of its nearest GT
  point, its own label)``; predicted points farther than that are geometry errors, left to the
  mesh metrics, and do not vote;
- each GT point votes ``(its label, label of its nearest predicted point)``, or
  ``(its label, 0 = missed)`` when no predicted point lies within ``max_dist_m``.

Both vote sets are summed into one confusion matrix and IoU is computed from it as in 2D. A
perfect labelling gives 1, a map missing half the scene loses recall only through the GT votes.

**Panoptic quality** (Kirillov et al., "Panoptic Segmentation", CVPR 2019): a thing segment is a
``(class, instance != 0)`` region, a stuff segment the whole region of a stuff class. GT and
predicted segments of the same class match when ``IoU > 0.5`` (unique by construction). Per
class ``PQ = sum(IoU of matches) / (TP + FP/2 + FN/2) = SQ * RQ`` with
``SQ = sum IoU / TP`` and ``RQ = TP / (TP + FP/2 + FN/2)``. As in the COCO panoptic evaluation,
GT pixels of an ignored class (and thing pixels without an instance) are *void*: they are removed
from a predicted segment's union when computing IoU, and an unmatched predicted segment lying more
than half in void is not a false positive. PQ, SQ and RQ are averaged over the classes with at
least one GT or predicted segment; ``pq_things`` / ``pq_stuff`` over those subsets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "SemanticResult",
    "PqClassResult",
    "PqResult",
    "PqAccumulator",
    "confusion_matrix",
    "miou_from_confusion",
    "compute_miou",
    "miou_3d",
    "compute_pq",
]

_MISSED = 0  # predicted label given to a GT point that no prediction covers


@dataclass
class SemanticResult:
    """Per-class IoU and mIoU from a confusion matrix (rows = GT class, columns = predicted class).

    Shape: confusion (C, C) int64 with C = max class id + 1; class_ids (K,) the evaluated classes.
    """

    miou: float
    per_class_iou: dict[int, float]
    pixel_accuracy: float
    confusion: np.ndarray = field(repr=False)
    class_ids: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "per_class_iou": {str(k): v for k, v in self.per_class_iou.items()}}


@dataclass(frozen=True)
class PqClassResult:
    """Panoptic quality of one class."""

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int
    is_thing: bool


@dataclass
class PqResult:
    """Panoptic quality averaged over classes, and per class (module docstring).

    ``pq_things`` / ``pq_stuff`` are NaN when no class of that kind was evaluated.
    """

    pq: float
    sq: float
    rq: float
    pq_things: float
    pq_stuff: float
    per_class: dict[int, PqClassResult]

    def to_dict(self) -> dict:
        return {"pq": self.pq, "sq": self.sq, "rq": self.rq, "pq_things": self.pq_things,
                "pq_stuff": self.pq_stuff,
                "per_class": {str(k): asdict(v) for k, v in self.per_class.items()}}


def _as_labels(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} has negative class ids")
    return a.astype(np.int64, copy=False)


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int | None = None,
                     ignore_ids: Iterable[int] = (0,)) -> np.ndarray:
    """Counts ``M[g, p]`` of elements with GT class g and predicted class p (GT in ``ignore_ids`` dropped).

    Shape: gt (...), pred (...) same shape -> (C, C) int64, C = ``num_classes`` or max id + 1.
    """
    gt = _as_labels(gt, "gt")
    pred = _as_labels(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}")
    gt, pred = gt.ravel(), pred.ravel()
    keep = ~np.isin(gt, np.asarray(list(ignore_ids), dtype=np.int64))
    gt, pred = gt[keep], pred[keep]
    c = int(max(gt.max(initial=0), pred.max(initial=0))) + 1
    if num_classes is None:
        num_classes = c
    elif c > num_classes:
        raise ValueError(f"class id {c - 1} does not fit num_classes={num_classes}")
    return np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def miou_from_confusion(confusion: np.ndarray, ignore_ids: Iterable[int] = (0,)) -> SemanticResult:
    """Per-class IoU and mIoU over classes present in GT or prediction (module docstring).

    Shape: confusion (C, C) -> SemanticResult.
    """
    M = np.asarray(confusion, dtype=np.int64)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"confusion must be square, got {M.shape}")
    ignore = set(int(i) for i in ignore_ids)
    tp = np.diag(M)
    gt_count = M.sum(axis=1)
    pred_count = M.sum(axis=0)
    ids = np.array([c for c in range(len(M)) if c not in ignore and (gt_count[c] + pred_count[c]) > 0],
                   dtype=np.int64)
    per_class = {int(c): float(tp[c] / (gt_count[c] + pred_count[c] - tp[c])) for c in ids}
    total = M.sum()
    return SemanticResult(
        miou=float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        per_class_iou=per_class,
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        confusion=M,
        class_ids=ids,
    )


def compute_miou(gt: np.ndarray, pred: np.ndarray, ignore_ids: Iterable[int] = (0,),
                 num_classes: int | None = None) -> SemanticResult:
    """2D (or any-D) mIoU of a predicted label image against GT.

    Shape: gt (H, W), pred (H, W) (or any equal shapes; a stack (N, H, W) pools all frames).
    """
    ignore_ids = tuple(ignore_ids)
    return miou_from_confusion(confusion_matrix(gt, pred, num_classes, ignore_ids), ignore_ids)


def miou_3d(pred_points: np.ndarray, pred_labels: np.ndarray, gt_points: np.ndarray,
            gt_labels: np.ndarray, max_dist_m: float = 0.05, ignore_ids: Iterable[int] = (0,),
            num_classes: int | None = None) -> SemanticResult:
    """3D mIoU between labeled point sets by nearest-neighbour transfer (module docstring).

    Predicted points labeled with an ignored id still vote (as that id) when near GT, so labelling
    known surface as "unknown" costs recall.
    Shape: pred_points (N, 3), pred_labels (N,), gt_points (M, 3), gt_labels (M,).
    """
    pp = np.asarray(pred_points, dtype=np.float64)
    gp = np.asarray(gt_points, dtype=np.float64)
    pl = _as_labels(pred_labels, "pred_labels")
    gl = _as_labels(gt_labels, "gt_labels")
    if pp.ndim != 2 or pp.shape[1] != 3 or pl.shape != (len(pp),):
        raise ValueError(f"pred_points (N, 3) and pred_labels (N,) expected, got {pp.shape}, {pl.shape}")
    if gp.ndim != 2 or gp.shape[1] != 3 or gl.shape != (len(gp),):
        raise ValueError(f"gt_points (M, 3) and gt_labels (M,) expected, got {gp.shape}, {gl.shape}")
    if len(gp) == 0:
        raise ValueError("gt_points is empty")
    if not max_dist_m > 0:
        raise ValueError(f"max_dist_m must be positive, got {max_dist_m}")
    ignore_ids = tuple(ignore_ids)
    c = int(max(pl.max(initial=0), gl.max(initial=0))) + 1
    num_classes = c if num_classes is None else num_classes
    # GT -> prediction: every GT point votes, uncovered ones as "missed".
    transferred = np.full(len(gp), _MISSED, dtype=np.int64)
    if len(pp):
        d, j = cKDTree(pp).query(gp, k=1, distance_upper_bound=max_dist_m, workers=-1)
        near = np.isfinite(d)
        transferred[near] = pl[j[near]]
    M = confusion_matrix(gl, transferred, num_classes, ignore_ids)
    # Prediction -> GT: only predicted points that lie on (near) the GT surface vote.
    if len(pp):
        d, i = cKDTree(gp).query(pp, k=1, distance_upper_bound=max_dist_m, workers=-1)
        near = np.isfinite(d)
        M = M + confusion_matrix(gl[i[near]], pl[near], num_classes, ignore_ids)
    return miou_from_confusion(M, ignore_ids)


def _segment_keys(sem: np.ndarray, inst: np.ndarray, thing_lut: np.ndarray, ignore: np.ndarray
                  ) -> np.ndarray:
    """Key ``class << 32 | instance`` per pixel (instance 0 for stuff), -1 for no segment."""
    if sem.size and sem.max() >= len(thing_lut):
        raise ValueError(f"class id {int(sem.max())} is outside thing_mask (length {len(thing_lut)})")
    is_thing = thing_lut[sem]
    key = (sem << 32) | np.where(is_thing, inst, 0)
    invalid = np.isin(sem, ignore) | (is_thing & (inst == 0))
    return np.where(invalid, -1, key)


class PqAccumulator:
    """Accumulates panoptic matches over many frames; :meth:`result` gives the PQ over all of them.

    Instance ids only need to be unique within one frame.
    """

    def __init__(self, thing_mask: np.ndarray, ignore_ids: Iterable[int] = (0,)) -> None:
        self.thing_lut = np.asarray(thing_mask, dtype=bool)
        if self.thing_lut.ndim != 1:
            raise ValueError(f"thing_mask must be a 1-D lookup indexed by class id, got {self.thing_lut.shape}")
        self.ignore = np.asarray(sorted(set(int(i) for i in ignore_ids)), dtype=np.int64)
        self.tp: dict[int, int] = {}
        self.fp: dict[int, int] = {}
        self.fn: dict[int, int] = {}
        self.iou_sum: dict[int, float] = {}

    def _bump(self, table: dict, cls: int, value: float = 1) -> None:
        table[cls] = table.get(cls, 0) + value

    def add(self, pred_semantic: np.ndarray, pred_instance: np.ndarray, gt_semantic: np.ndarray,
            gt_instance: np.ndarray) -> None:
        """Add one frame. Shape: all four (H, W) (or any equal shape) integer arrays."""
        arrays = [_as_labels(a, n) for a, n in ((pred_semantic, "pred_semantic"), (pred_instance, "pred_instance"),
                                                (gt_semantic, "gt_semantic"), (gt_instance, "gt_instance"))]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"label arrays differ in shape: {[a.shape for a in arrays]}")
        ps, pi, gs, gi = (a.ravel() for a in arrays)
        gk = _segment_keys(gs, gi, self.thing_lut, self.ignore)
        pk = _segment_keys(ps, pi, self.thing_lut, self.ignore)
        gt_keys, gt_area = np.unique(gk[gk >= 0], return_counts=True)
        pr_keys, pr_area = np.unique(pk[pk >= 0], return_counts=True)
        gt_area_of = dict(zip(gt_keys.tolist(), gt_area.tolist()))
        pr_area_of = dict(zip(pr_keys.tolist(), pr_area.tolist()))
        void_keys, void_area = np.unique(pk[(pk >= 0) & (gk < 0)], return_counts=True)
        pr_void_of = dict(zip(void_keys.tolist(), void_area.tolist()))
        both = (gk >= 0) & (pk >= 0)
        pairs, inter = np.unique(np.stack([gk[both], pk[both]], axis=1), axis=0, return_counts=True)
        matched_gt: set[int] = set()
        matched_pr: set[int] = set()
        for (g, p), n in zip(pairs.tolist(), inter.tolist()):
            if g >> 32 != p >> 32:
                continue  # segments only match within one class
            union = gt_area_of[g] + pr_area_of[p] - n - pr_void_of.get(p, 0)
            iou = n / union
            if iou > 0.5:
                matched_gt.add(g)
                matched_pr.add(p)
                self._bump(self.tp, g >> 32)
                self._bump(self.iou_sum, g >> 32, iou)
        for g in gt_area_of:
            if g not in matched_gt:
                self._bump(self.fn, g >> 32)
        for p, area in pr_area_of.items():
            if p not in matched_pr and pr_void_of.get(p, 0) / area <= 0.5:
                self._bump(self.fp, p >> 32)

    def result(self) -> PqResult:
        """PQ / SQ / RQ per class and averaged (NaN averages when nothing was evaluated)."""
        per_class: dict[int, PqClassResult] = {}
        for c in sorted(set(self.tp) | set(self.fp) | set(self.fn)):
            tp, fp, fn = self.tp.get(c, 0), self.fp.get(c, 0), self.fn.get(c, 0)
            iou = self.iou_sum.get(c, 0.0)
            denom = tp + 0.5 * fp + 0.5 * fn
            per_class[c] = PqClassResult(
                pq=iou / denom, sq=iou / tp if tp else 0.0, rq=tp / denom,
                tp=tp, fp=fp, fn=fn, is_thing=bool(self.thing_lut[c]))

        def avg(attr: str, keep) -> float:
            vals = [getattr(r, attr) for r in per_class.values() if keep(r)]
            return float(np.mean(vals)) if vals else float("nan")

        return PqResult(
            pq=avg("pq", lambda r: True), sq=avg("sq", lambda r: True), rq=avg("rq", lambda r: True),
            pq_things=avg("pq", lambda r: r.is_thing), pq_stuff=avg("pq", lambda r: not r.is_thing),
            per_class=per_class,
        )


def compute_pq(pred_semantic: np.ndarray, pred_instance: np.ndarray, gt_semantic: np.ndarray,
               gt_instance: np.ndarray, thing_mask: np.ndarray, ignore_ids: Iterable[int] = (0,)) -> PqResult:
    """Panoptic quality of one frame (Kirillov et al. 2019; module docstring).

    ``thing_mask`` is a boolean lookup indexed by class id (e.g. ``LabelSpace.thing_mask``).
    Shape: all label arrays (H, W) integer; thing_mask (C,) bool.
    """
    acc = PqAccumulator(thing_mask, ignore_ids)
    acc.add(pred_semantic, pred_instance, gt_semantic, gt_instance)
    return acc.result()
