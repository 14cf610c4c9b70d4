"""COCO-style average precision from the matches (official ``VOL3Deval`` semantics).

For each area range ``(lo, hi]`` and IoU threshold t (0.50:0.05:0.95):
- a prediction's match is its best in-range GT, or its best GT overall when no in-range GT
  overlaps it; it is matched at t when that IoU >= t;
- a GT is ignored when its size is outside the range; a matched prediction is ignored when its
  GT is ignored, an unmatched one when its own size is outside the range;
- over the predictions in evaluation order: ``tp``/``fp`` cumulative sums of the non-ignored
  matched / unmatched ones, recall ``tp / n_gt``, precision ``tp / (tp + fp + eps)``; precision
  is made non-increasing from the right and sampled at 101 recall points (``searchsorted``
  left; 0 beyond the largest recall);
- an area range without GT is skipped: its precision and recall stay -1.
AP = mean of the sampled precision (over thresholds and recall points), -1 when all are -1.
"""
import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # exactly the official values (0.9 is 0.8999...)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)


def detection_outcomes(matches, area, ranges, thresholds=IOU_THRESHOLDS):
    """``(tp, fp, n_gt)`` for one area index: tp/fp bool (T, D) in evaluation order, n_gt int."""
    lo, hi = ranges[area]
    gt_id, gt_size, iou = matches.gt_ids[:, area], matches.gt_sizes[:, area], matches.ious[:, area]
    fallback = gt_id == 0  # no in-range GT overlaps: use the best GT of the 'all' range
    gt_id = np.where(fallback, matches.gt_ids[:, 0], gt_id)
    gt_size = np.where(fallback, matches.gt_sizes[:, 0], gt_size)
    iou = np.where(fallback, matches.ious[:, 0], iou)
    matched = (gt_id > 0)[None, :] & (iou[None, :] >= thresholds[:, None])
    gt_out = (gt_size <= lo) | (gt_size > hi)
    pred_out = (matches.pred_sizes <= lo) | (matches.pred_sizes > hi)
    ignored = np.where(matched, gt_out[None, :], pred_out[None, :])
    n_gt = int(((matches.all_gt_sizes > lo) & (matches.all_gt_sizes <= hi)).sum())
    return matched & ~ignored, ~matched & ~ignored, n_gt


def precision_recall(tp, fp, n_gt, recall_thresholds=RECALL_THRESHOLDS):
    """Interpolated precision (T, R) and final recall (T,) from tp/fp flags (T, D).

    Returns -1 arrays when ``n_gt == 0``.
    """
    n_thr, n_det = tp.shape
    precision = -np.ones((n_thr, len(recall_thresholds)))
    recall = -np.ones(n_thr)
    if n_gt == 0:
        return precision, recall
    tp_sum = np.cumsum(tp, axis=1).astype(np.float64)
    fp_sum = np.cumsum(fp, axis=1).astype(np.float64)
    rc = tp_sum / n_gt
    pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # non-increasing from the right
    for t in range(n_thr):
        idx = np.searchsorted(rc[t], recall_thresholds, side="left")
        valid = idx < n_det
        precision[t] = np.where(valid, pr[t][np.minimum(idx, n_det - 1)] if n_det else 0.0, 0.0)
        recall[t] = rc[t, -1] if n_det else 0.0
    return precision, recall


def accumulate(matches, ranges, thresholds=IOU_THRESHOLDS, recall_thresholds=RECALL_THRESHOLDS):
    """``precision`` (T, R, A), ``recall`` (T, A), ``n_gt`` (A,) and the tp/fp flags per area."""
    n_area = len(ranges)
    precision = -np.ones((len(thresholds), len(recall_thresholds), n_area))
    recall = -np.ones((len(thresholds), n_area))
    n_gt = np.zeros(n_area, np.int64)
    outcomes = []
    for a in range(n_area):
        tp, fp, n_gt[a] = detection_outcomes(matches, a, ranges, thresholds)
        precision[:, :, a], recall[:, a] = precision_recall(tp, fp, n_gt[a], recall_thresholds)
        outcomes.append((tp, fp))
    return precision, recall, n_gt, outcomes


def mean_precision(precision, threshold=None, area=0):
    """Official ``_summarize``: the mean of the entries > -1 (one threshold index or all); -1 if none."""
    values = precision[:, :, area] if threshold is None else precision[threshold, :, area]
    values = values[values > -1]
    return float(values.mean()) if values.size else -1.0
