"""A straightforward per-instance evaluator: the test oracle and the benchmark baseline.

It follows the official MitoEM evaluator's structure, written independently of the fast path:
instance sizes by ``np.unique`` per slab, prediction bounding boxes by ``np.unique`` per slice,
row and column, then for each prediction (in score order) its bounding box is read from both
volumes and the GT ids under it are counted. Matching and AP use plain Python loops over the
rules stated in ``matching.py`` and ``average_precision.py`` (same tie order: descending score,
then ascending id). It is slow by design; only the label reading/checking is shared
(``sources.py``).
"""
import bisect
import time

import numpy as np

from connectomics.evaluation.sources import open_pair

IOUS = [float(t) for t in np.linspace(0.5, 0.95, 10)]
RECALLS = [float(r) for r in np.linspace(0.0, 1.0, 101)]


def _sizes(src, z0, z1, chunk):
    sizes = {}
    for start in range(z0, z1, chunk):
        ids, counts = np.unique(src.read(start, min(start + chunk, z1)), return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
            if i:
                sizes[i] = sizes.get(i, 0) + c
    return sizes


def _grow(boxes, ids, axis, index):
    for i in ids.tolist():
        if i in boxes:
            lo, hi = boxes[i][axis]
            boxes[i][axis] = [min(lo, index), max(hi, index + 1)]


def _bounding_boxes(src, ids, z0, z1, chunk):
    """{id: [[z0, z1], [y0, y1], [x0, x1]]} (half-open) via ``np.unique`` per slice, row, column."""
    big = 1 << 62
    boxes = {i: [[big, -1], [big, -1], [big, -1]] for i in ids}
    for start in range(z0, z1, chunk):
        slab = src.read(start, min(start + chunk, z1))
        for z in range(slab.shape[0]):
            _grow(boxes, np.unique(slab[z]), 0, start + z)
        for y in range(slab.shape[1]):
            _grow(boxes, np.unique(slab[:, y]), 1, y)
        for x in range(slab.shape[2]):
            _grow(boxes, np.unique(slab[:, :, x]), 2, x)
    return boxes


def _order(pred_sizes, scores):
    table = {i: float(s) for i, s in pred_sizes.items()}
    if scores is not None:
        table = {}
        for i, s in np.asarray(scores).reshape(-1, 2).tolist():
            if int(i) > 0 and int(i) in pred_sizes:
                table[int(i)] = float(s)
    return sorted(table, key=lambda i: (-table[i], i)), table


def _best_in_ranges(overlaps, ranges):
    """Per area range: (gt id, gt size, iou) of the best in-range GT, or (0, 0, 0.0)."""
    row = []
    for lo, hi in ranges:
        best = (0, 0, 0.0)
        for g, gsize, iou in overlaps:  # ascending gt id: the first maximum wins ties
            if lo < gsize <= hi and iou > best[2]:
                best = (g, gsize, iou)
        row.append(best)
    return row


def _match(gt_src, pred_src, order, pred_sizes, gt_kept, boxes, ranges, limit):
    result_p, gt_best = [], {}
    for pid in order[:limit]:
        box = tuple(slice(lo, hi) for lo, hi in boxes[pid])
        gt_box, pred_box = gt_src.read_box(box), pred_src.read_box(box)
        ids, inter = np.unique(gt_box[pred_box == pid], return_counts=True)
        overlaps = []
        for g, n in zip(ids.tolist(), inter.tolist()):
            if g in gt_kept:
                iou = n / (pred_sizes[pid] + gt_kept[g] - n)
                overlaps.append((g, gt_kept[g], iou))
                if iou > gt_best.get(g, (0, 0.0))[1]:
                    gt_best[g] = (pid, iou)
        result_p.append((pid, pred_sizes[pid], _best_in_ranges(overlaps, ranges)))
    return result_p, gt_best


def _outcomes(result_p, area, lo, hi, thr):
    flags = []
    for _, psize, row in result_p:
        g, gsize, iou = row[area] if row[area][0] else row[0]
        if g and iou >= thr:
            flags.append(None if not lo < gsize <= hi else "tp")
        else:
            flags.append(None if not lo < psize <= hi else "fp")
    return flags


def _precision_curve(flags, n_gt):
    tp = fp = 0
    rc, pr = [], []
    for f in flags:
        tp += f == "tp"
        fp += f == "fp"
        rc.append(tp / n_gt)
        pr.append(tp / (tp + fp + np.spacing(1)))
    for i in range(len(pr) - 1, 0, -1):
        pr[i - 1] = max(pr[i - 1], pr[i])
    out = []
    for r in RECALLS:
        k = bisect.bisect_left(rc, r)
        out.append(pr[k] if k < len(pr) else 0.0)
    return out


def _mean(values):
    values = [v for v in values if v > -1]
    return sum(values) / len(values) if values else -1.0


def _summary(result_p, gt_kept, ranges):
    curves = {}
    for a, (lo, hi) in enumerate(ranges):
        n_gt = sum(1 for s in gt_kept.values() if lo < s <= hi)
        for t, thr in enumerate(IOUS):
            flags = _outcomes(result_p, a, lo, hi, thr)
            curves[t, a] = _precision_curve(flags, n_gt) if n_gt else [-1.0] * len(RECALLS)
    flags75 = _outcomes(result_p, 0, *ranges[0], IOUS[5])
    hit = {row[0][0] for (_, _, row), f in zip(result_p, flags75) if f == "tp"}
    summary = {"AP": _mean([p for t in range(10) for p in curves[t, 0]]),
               "AP50": _mean(curves[0, 0]), "AP75": _mean(curves[5, 0]), "AP90": _mean(curves[8, 0])}
    for a, name in ((1, "small"), (2, "medium"), (3, "large")):
        summary[f"AP75_{name}"] = _mean(curves[5, a])
    summary.update(n_gt=len(gt_kept), n_pred=len(result_p), tp75=flags75.count("tp"),
                   fp75=flags75.count("fp"), fn75=len(gt_kept) - len(hit))
    return summary, curves


def reference_evaluate(gt, pred, scores=None, area_thresholds=(5e3, 3e4), crumb_size=2000,
                       chunk_slices=100, slices=None, max_predictions=None):
    """Per-instance evaluation with the official semantics (see ``evaluate_volumes`` for the args;
    ``scores`` here is None or an N x 2 ``[id, score]`` array).

    ``max_predictions`` limits the per-prediction loop to the first K predictions in score
    order (for timing only; the AP is then not meaningful). Returns a dict with 'summary',
    'result_p' (rows ``(pid, psize, [(gid, gsize, iou)] * 4)``), 'result_fn' (rows
    ``(best_pid, best_psize, gid, gsize, iou)``), 'precision' {(t, a): 101 values}, 'n_pred'
    (all predictions) and 'seconds' per stage.
    """
    t = [int(v) for v in area_thresholds]
    ranges = [(0, 10**10), (0, t[0]), (t[0], t[1]), (t[1], 10**10)]
    seconds = {}
    with open_pair(gt, pred, slices) as (gt_src, pred_src, (z0, z1)):
        start = time.perf_counter()
        pred_sizes = _sizes(pred_src, z0, z1, chunk_slices)
        gt_sizes = _sizes(gt_src, z0, z1, chunk_slices)
        gt_kept = {g: s for g, s in gt_sizes.items() if s >= crumb_size}
        order, _ = _order(pred_sizes, scores)
        seconds["sizes"] = time.perf_counter() - start
        boxes = _bounding_boxes(pred_src, order, z0, z1, chunk_slices)
        seconds["boxes"] = time.perf_counter() - start - seconds["sizes"]
        start = time.perf_counter()
        result_p, gt_best = _match(gt_src, pred_src, order, pred_sizes, gt_kept, boxes, ranges,
                                   max_predictions)
        seconds["match"] = time.perf_counter() - start
    start = time.perf_counter()
    matched = {row[0][0] for _, _, row in result_p}
    result_fn = [(gt_best.get(g, (0, 0.0))[0], pred_sizes.get(gt_best.get(g, (0, 0.0))[0], 0), g,
                  gt_kept[g], gt_best.get(g, (0, 0.0))[1]) for g in sorted(gt_kept) if g not in matched]
    summary, curves = _summary(result_p, gt_kept, ranges)
    seconds["ap"] = time.perf_counter() - start
    return {"summary": summary, "result_p": result_p, "result_fn": result_fn, "precision": curves,
            "n_pred": len(order), "seconds": seconds}
