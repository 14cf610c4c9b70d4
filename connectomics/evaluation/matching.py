"""Match each prediction to its best ground-truth instance (official ``seg_iou3d`` semantics).

Rules (MitoEM challenge evaluator, 2021):
- GT instances smaller than ``crumb_size`` voxels are removed from the GT set; a prediction that
  overlaps only such crumbs has no match (it becomes a false positive).
- ``iou = inter / (|P| + |G| - inter)`` over voxel counts.
- For each area range ``(lo, hi]`` (on the GT size), each prediction independently takes the
  overlapping in-range GT with the highest IoU (ties: the smaller GT id). There is no one-to-one
  assignment: two predictions may take the same GT.
- A GT is a false negative when no prediction takes it in the 'all' range; the FN table records
  the prediction with the highest IoU on it (ties: the earlier prediction in score order).
"""
from dataclasses import dataclass

import numpy as np

AREA_NAMES = ("all", "small", "medium", "large")
AREA_MAX = 10**10  # the official open upper bound (1e10 voxels)


def area_ranges(thresholds=(5e3, 3e4)):
    """(4, 2) int64 ``[lo, hi]`` for all / small / medium / large; membership is ``lo < size <= hi``.

    Like the official code the thresholds are stored as integers (``int(5e3) = 5000``).
    """
    t = [int(v) for v in thresholds]
    if len(t) != 2 or not 0 < t[0] < t[1] < AREA_MAX:
        raise ValueError(f"area thresholds must be two increasing positive sizes (small/medium, "
                         f"medium/large), got {tuple(thresholds)}")
    return np.array([[0, AREA_MAX], [0, t[0]], [t[0], t[1]], [t[1], AREA_MAX]], dtype=np.int64)


@dataclass
class Matches:
    """Per-prediction best matches and the false-negative table.

    Predictions (D rows, in evaluation order): ``pred_ids`` uint64, ``pred_sizes`` int64,
    ``pred_scores`` float64; per area range (A columns, ``AREA_NAMES`` order): ``gt_ids``
    uint64 (0 = no overlapping GT in range), ``gt_sizes`` int64, ``ious`` float64.
    GT set (G, sorted by id): ``all_gt_ids`` uint64, ``all_gt_sizes`` int64 (crumbs removed).
    False negatives (F rows, by GT id): ``fn_gt_ids``, ``fn_gt_sizes``, ``fn_pred_ids`` (best
    overlapping prediction, 0 if none), ``fn_pred_sizes``, ``fn_ious``.
    """

    pred_ids: np.ndarray
    pred_sizes: np.ndarray
    pred_scores: np.ndarray
    gt_ids: np.ndarray
    gt_sizes: np.ndarray
    ious: np.ndarray
    all_gt_ids: np.ndarray
    all_gt_sizes: np.ndarray
    fn_gt_ids: np.ndarray
    fn_gt_sizes: np.ndarray
    fn_pred_ids: np.ndarray
    fn_pred_sizes: np.ndarray
    fn_ious: np.ndarray
    n_crumbs: int = 0


def _first_per_group(keys):
    """Indices of the first element of each run of equal values in a sorted array."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _pairs(table, pred_ids, crumb_size):
    """Overlaps with kept GT and ranked predictions: (rank, gt id, gt size, pred size, iou)."""
    keep_gt = table.gt_sizes >= crumb_size
    rank_of = np.argsort(pred_ids, kind="stable")  # positions of the ranked ids, by id
    sorted_ids = pred_ids[rank_of]
    pos = np.searchsorted(sorted_ids, table.pair_pred)
    pos = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    ranked = (sorted_ids[pos] == table.pair_pred) if len(sorted_ids) else np.zeros(len(pos), bool)
    gpos = np.searchsorted(table.gt_ids, table.pair_gt)
    use = ranked & keep_gt[gpos]
    rank = rank_of[pos[use]]
    gt = table.pair_gt[use]
    gsize = table.gt_sizes[gpos[use]]
    psize = table.pred_sizes[np.searchsorted(table.pred_ids, table.pair_pred[use])]
    inter = table.pair_voxels[use]
    iou = inter.astype(np.float64) / (psize + gsize - inter)
    return rank, gt, gsize, iou


def match_predictions(table, pred_ids, pred_sizes, pred_scores, ranges, crumb_size=2000):
    """Best GT per prediction and area range, and the FN table (see module docstring).

    Args:
        table: ``OverlapTable`` of the two volumes.
        pred_ids, pred_sizes, pred_scores: the predictions in evaluation order (``rank_predictions``).
        ranges: (A, 2) area ranges from ``area_ranges``.
        crumb_size: GT instances with fewer voxels are removed (official ``-thc``).
    """
    n_pred, n_area = len(pred_ids), len(ranges)
    rank, gt, gsize, iou = _pairs(table, pred_ids, crumb_size)
    gt_ids = np.zeros((n_pred, n_area), np.uint64)
    gt_sizes = np.zeros((n_pred, n_area), np.int64)
    ious = np.zeros((n_pred, n_area), np.float64)
    for a, (lo, hi) in enumerate(ranges):
        inside = np.flatnonzero((gsize > lo) & (gsize <= hi))
        order = inside[np.lexsort((gt[inside], -iou[inside], rank[inside]))]
        best = order[_first_per_group(rank[order])]
        gt_ids[rank[best], a] = gt[best]
        gt_sizes[rank[best], a] = gsize[best]
        ious[rank[best], a] = iou[best]
    keep = table.gt_sizes >= crumb_size
    all_ids, all_sizes = table.gt_ids[keep], table.gt_sizes[keep]
    fn = ~np.isin(all_ids, gt_ids[:, 0])
    fn_ids = all_ids[fn]
    # best prediction per GT: highest IoU, then earliest in evaluation order
    order = np.lexsort((rank, -iou, gt))
    best = order[_first_per_group(gt[order])]
    where = np.searchsorted(gt[best], fn_ids)
    found = (where < len(best)) & (gt[best][np.minimum(where, max(len(best) - 1, 0))] == fn_ids) \
        if len(best) else np.zeros(len(fn_ids), bool)
    hit = best[where[found]]
    fn_pred = np.zeros(len(fn_ids), np.uint64)
    fn_psize = np.zeros(len(fn_ids), np.int64)
    fn_iou = np.zeros(len(fn_ids), np.float64)
    fn_pred[found] = pred_ids[rank[hit]]
    fn_psize[found] = pred_sizes[rank[hit]]
    fn_iou[found] = iou[hit]
    return Matches(pred_ids, pred_sizes, pred_scores, gt_ids, gt_sizes, ious, all_ids, all_sizes,
                   fn_ids, all_sizes[fn], fn_pred, fn_psize, fn_iou, int((~keep).sum()))
