"""mIoU (2D / 3D) and panoptic quality on hand-built label images with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from metric_semantic_slam.eval.semantic_metrics import (
    PqAccumulator,
    compute_miou,
    compute_pq,
    confusion_matrix,
    miou_3d,
)

# Classes: 0 unknown, 1 floor (stuff), 2 wall (stuff), 6 table (thing), 7 chair (thing).
THING = np.zeros(8, dtype=bool)
THING[[6, 7]] = True


def _two_halves() -> np.ndarray:
    gt = np.ones((4, 4), dtype=np.uint16)
    gt[:, 2:] = 2
    return gt


def test_confusion_rows_are_gt_and_ignore_drops_gt_pixels():
    gt = np.array([[0, 1, 1], [2, 2, 2]], dtype=np.uint16)
    pred = np.array([[2, 1, 0], [2, 2, 1]], dtype=np.uint16)
    M = confusion_matrix(gt, pred)
    assert M.sum() == 5  # the GT-0 pixel is dropped
    assert M[1, 1] == 1 and M[1, 0] == 1 and M[2, 2] == 2 and M[2, 1] == 1
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(gt, pred[:, :2])


def test_miou_perfect_swapped_and_partial():
    gt = _two_halves()
    assert compute_miou(gt, gt).miou == 1.0
    swapped = np.where(gt == 1, 2, 1).astype(np.uint16)
    assert compute_miou(gt, swapped).miou == 0.0
    pred = gt.copy()
    pred[0, 2] = 1  # one wall pixel called floor
    res = compute_miou(gt, pred)
    assert res.per_class_iou[1] == pytest.approx(8 / 9)
    assert res.per_class_iou[2] == pytest.approx(7 / 8)
    assert res.miou == pytest.approx((8 / 9 + 7 / 8) / 2)
    assert res.pixel_accuracy == pytest.approx(15 / 16)


def test_miou_classes_only_in_prediction_count_and_unknown_prediction_is_a_miss():
    gt = _two_halves()
    pred = gt.copy()
    pred[0, 0] = 6  # a class absent from GT appears: IoU 0 for it, lowers the mean
    res = compute_miou(gt, pred)
    assert set(res.per_class_iou) == {1, 2, 6}
    assert res.per_class_iou[6] == 0.0
    pred = gt.copy()
    pred[:, 0] = 0  # "unknown" on floor pixels: misses, but class 0 itself is not scored
    res = compute_miou(gt, pred)
    assert set(res.per_class_iou) == {1, 2}
    assert res.per_class_iou[1] == pytest.approx(0.5)
    # Ignore ids are configurable: ignoring wall leaves only floor.
    assert set(compute_miou(gt, gt, ignore_ids=(0, 2)).per_class_iou) == {1}


def test_miou_3d_nearest_neighbour_transfer():
    g = np.linspace(0, 1, 11)
    xx, yy = np.meshgrid(g, g)
    pts = np.c_[xx.ravel(), yy.ravel(), np.zeros(xx.size)]
    labels = np.where(pts[:, 0] < 0.5, 1, 2).astype(np.uint16)
    assert miou_3d(pts + [0, 0, 0.01], labels, pts, labels, max_dist_m=0.05).miou == 1.0
    swapped = np.where(labels == 1, 2, 1)
    assert miou_3d(pts, swapped, pts, labels, max_dist_m=0.05).miou == 0.0
    # Predicting only the floor half: GT wall points are missed (FN), floor stays perfect.
    half = labels == 1
    res = miou_3d(pts[half], labels[half], pts, labels, max_dist_m=0.05)
    assert res.per_class_iou[1] == 1.0 and res.per_class_iou[2] == 0.0
    # Predicted points far from any GT do not vote (they are a geometry error, not a label error).
    far = np.r_[pts, pts[:5] + [0, 0, 1.0]]
    far_labels = np.r_[labels, np.full(5, 6)]
    res = miou_3d(far, far_labels, pts, labels, max_dist_m=0.05)
    assert res.miou == 1.0 and 6 not in res.per_class_iou


def _frame_one_table():
    sem = np.ones((10, 10), dtype=np.uint16)  # floor everywhere
    inst = np.zeros((10, 10), dtype=np.uint16)
    sem[0:2, 0:5] = 6  # a 10-pixel table, instance 3
    inst[0:2, 0:5] = 3
    return sem, inst


def test_pq_perfect_and_instance_ids_need_not_agree():
    sem, inst = _frame_one_table()
    res = compute_pq(sem, inst * 7, sem, inst, THING)  # other ids, same segments
    assert res.pq == 1.0 and res.sq == 1.0 and res.rq == 1.0
    assert res.pq_things == 1.0 and res.pq_stuff == 1.0
    assert res.per_class[6].tp == 1 and res.per_class[1].tp == 1


def test_pq_swapped_classes_is_zero():
    sem = np.ones((4, 4), dtype=np.uint16)
    sem[:, 2:] = 2
    swapped = np.where(sem == 1, 2, 1).astype(np.uint16)
    zeros = np.zeros_like(sem)
    res = compute_pq(swapped, zeros, sem, zeros, THING)
    assert res.pq == 0.0
    assert res.per_class[1].fp == 1 and res.per_class[1].fn == 1


def test_pq_split_instance():
    sem, inst = _frame_one_table()
    p_inst = inst.copy()
    p_inst[0:2, 3:5] = 4  # 6 pixels stay instance 3 (IoU 0.6), 4 pixels become an extra instance
    res = compute_pq(sem, p_inst, sem, inst, THING)
    table = res.per_class[6]
    assert (table.tp, table.fp, table.fn) == (1, 1, 0)
    assert table.sq == pytest.approx(0.6)
    assert table.rq == pytest.approx(1 / 1.5)
    assert table.pq == pytest.approx(0.6 / 1.5)
    assert res.per_class[1].pq == 1.0
    assert res.pq == pytest.approx((0.4 + 1.0) / 2)
    assert res.pq_things == pytest.approx(0.4) and res.pq_stuff == 1.0


def test_pq_iou_exactly_half_is_unmatched():
    sem, inst = _frame_one_table()
    p_sem, p_inst = sem.copy(), inst.copy()
    p_sem[0:2, 0:5] = 1  # drop the table ...
    p_inst[0:2, 0:5] = 0
    p_sem[0, 0:5] = 6  # ... and predict only its first row: IoU = 5 / 10 = 0.5, not > 0.5
    p_inst[0, 0:5] = 3
    res = compute_pq(p_sem, p_inst, sem, inst, THING)
    table = res.per_class[6]
    assert (table.tp, table.fp, table.fn) == (0, 1, 1) and table.pq == 0.0
    # One more pixel tips it over: IoU 6 / 10.
    p_sem[1, 0] = 6
    p_inst[1, 0] = 3
    assert compute_pq(p_sem, p_inst, sem, inst, THING).per_class[6].tp == 1


def test_pq_void_pixels_do_not_penalise():
    sem, inst = _frame_one_table()
    gt_sem = sem.copy()
    gt_sem[5:, :] = 0  # the bottom half of the GT is unknown (void)
    p_sem = sem.copy()  # floor also predicted over rows 5-7 (void), which must not lower its IoU
    p_sem[8:, :] = 7  # a chair predicted entirely inside void: not a false positive
    p_inst = inst.copy()
    p_inst[8:, :] = 1
    res = compute_pq(p_sem, p_inst, gt_sem, inst, THING)
    assert 7 not in res.per_class
    # Floor: intersection 40, pred area 70 of which 30 void -> IoU 40 / (40 + 70 - 40 - 30) = 1.
    assert res.per_class[1].sq == 1.0 and res.pq == 1.0


def test_pq_accumulator_pools_frames_and_rejects_bad_masks():
    sem, inst = _frame_one_table()
    acc = PqAccumulator(THING)
    acc.add(sem, inst, sem, inst)
    acc.add(np.ones_like(sem), np.zeros_like(inst), sem, inst)  # table missed in frame 2
    table = acc.result().per_class[6]
    assert (table.tp, table.fp, table.fn) == (1, 0, 1)
    with pytest.raises(ValueError, match="outside thing_mask"):
        compute_pq(sem + 10, inst, sem, inst, THING)


def test_confusion_matrix_png(tmp_path):
    from PIL import Image

    from metric_semantic_slam.eval.plots import plot_confusion_matrix

    gt = _two_halves()
    pred = gt.copy()
    pred[0, 2] = 1
    res = compute_miou(gt, pred)
    out = plot_confusion_matrix(res.confusion, tmp_path / "conf.png", class_names={1: "floor", 2: "wall"})
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[0] > 200
    # Not a blank canvas: the blue cells are there.
    assert np.any((img[..., 2].astype(int) - img[..., 0].astype(int)) > 100)
    with pytest.raises(ValueError, match="outside"):
        plot_confusion_matrix(res.confusion, tmp_path / "bad.png", class_ids=[5])
