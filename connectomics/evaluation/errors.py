"""Which errors a segmentation makes, from the streaming overlap table (no second pass).

**Associations.** Each instance is associated with what covers most of it: a prediction with
the GT instance it overlaps most, or with the background if more of its voxels lie on
background than on any one GT instance (then it is a *background false positive*); a GT instance
likewise with a prediction or the background. Then each GT instance is:

- ``one-to-one``: its prediction is associated with it alone (and no other prediction with it);
- ``missing``: the background covers most of it and no prediction is associated with it;
- ``split`` (over-segmented): two or more predictions are associated with it;
- ``merged`` (under-segmented): the prediction that covers most of it covers most of another GT
  instance too;
- ``many-to-many``: split and merged at once.

**Matching metrics** at IoU thresholds (0.3, 0.5, 0.75): an optimal one-to-one matching of GT
and predictions among the pairs of IoU >= the threshold (most matches first, then the largest
sum of IoU; unique above 0.5, Hungarian below): TP, FP = predictions unmatched, FN = GT
unmatched, precision, recall, accuracy TP / (TP + FP + FN) (the MitoEM leaderboard's), F1,
panoptic quality sum(IoU of matches) / (TP + FP/2 + FN/2), mean matched IoU. In total and per
size bin (the evaluator's: TP and FN by the GT size, FP by the prediction size), and per
category of any other measure given (skeleton length: ``value_categories``). The same numbers as
StarDist's ``matching`` (tests/test_evaluation_errors.py; where a denominator is 0 we report NaN,
printed '-', and StarDist 0).

GT instances below the crumb size are left out, as in the AP; a prediction associated with a
crumb is neither a TP nor a FP.
"""
from dataclasses import dataclass, field

import numpy as np

THRESHOLDS = (0.3, 0.5, 0.75)
ASSOCIATIONS = ("one-to-one", "missing", "split", "merged", "many-to-many")
METRICS = ("tp", "fp", "fn", "precision", "recall", "accuracy", "f1", "pq", "mean_iou")


@dataclass
class ErrorAnalysis:
    """``gt``: per GT instance (ids ascending; crumbs left out) ``ids``, ``sizes``, ``bins``
    (size-bin names), ``association``, ``n_preds`` (predictions associated with it),
    ``best_pred`` / ``best_iou`` (the prediction of the highest IoU; 0 / 0.0 if none).
    ``background_fp``: ``ids`` and ``sizes`` of the background false positives.
    ``matching``: rows ``{threshold, bin, tp, fp, fn, precision, recall, accuracy, f1, pq, mean_iou}``."""

    gt: dict
    background_fp: dict
    matching: list = field(default_factory=list)

    def counts(self):
        """``{association: GT count}`` plus ``background FP``."""
        values, counts = np.unique(self.gt["association"], return_counts=True)
        out = {name: 0 for name in ASSOCIATIONS}
        out.update({str(v): int(c) for v, c in zip(values, counts)})
        out["background FP"] = int(len(self.background_fp["ids"]))
        return out


def _best(ids_a, sizes_a, pair_a, pair_b, pair_voxels):
    """Per id of ``ids_a``: the partner id covering most of it (0: the background wins) and that overlap."""
    index = np.searchsorted(ids_a, pair_a)
    best = np.zeros(len(ids_a), np.uint64)
    best_voxels = np.zeros(len(ids_a), np.int64)
    covered = np.bincount(index, weights=pair_voxels, minlength=len(ids_a)).astype(np.int64)
    order = np.lexsort((pair_b, -pair_voxels, index))  # per id: largest overlap first, ties: smaller partner id
    first = np.ones(len(order), bool)
    first[1:] = index[order][1:] != index[order][:-1]
    chosen = order[first]
    best[index[chosen]], best_voxels[index[chosen]] = pair_b[chosen], pair_voxels[chosen]
    background = sizes_a - covered
    best[background >= best_voxels] = 0  # the background covers at least as much
    return best, best_voxels


def _bins(sizes, ranges, names):
    bins = np.full(len(sizes), names[0], dtype=object)
    for (lo, hi), name in zip(ranges[1:], names[1:]):
        bins[(sizes > lo) & (sizes <= hi)] = name
    return bins


def _associations(gt_ids, gt_best, pred_ids, pred_best):
    """Association names per GT and the number of predictions associated with each."""
    n_preds = np.bincount(np.searchsorted(gt_ids, pred_best[pred_best > 0]), minlength=len(gt_ids))
    claimed = gt_best[gt_best > 0]  # predictions covering most of some GT: how many GT each covers
    unique, counts = np.unique(claimed, return_counts=True)
    covers = dict(zip(unique.tolist(), counts.tolist()))
    names = []
    for g, p in zip(gt_best.tolist(), n_preds.tolist()):
        split, merged = p >= 2, g > 0 and covers.get(g, 0) >= 2
        if split and merged:
            names.append("many-to-many")
        elif split:
            names.append("split")
        elif merged:
            names.append("merged")
        elif g == 0 and p == 0:
            names.append("missing")
        else:
            names.append("one-to-one")
    return np.array(names, dtype=object), n_preds


def one_to_one(pair_gt, pair_pred, ious, threshold):
    """Indices of the pairs an optimal one-to-one matching keeps among those of IoU >= ``threshold``:
    the most matches, then the largest sum of IoU (above 0.5 the candidates are disjoint already)."""
    candidates = np.flatnonzero(ious >= threshold)
    if threshold > 0.5 or len(candidates) == 0:
        return candidates
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g_ids, g = np.unique(pair_gt[candidates], return_inverse=True)
    p_ids, p = np.unique(pair_pred[candidates], return_inverse=True)
    n_g = len(g_ids)
    graph = coo_matrix((np.ones(len(candidates)), (g, n_g + p)), shape=(n_g + len(p_ids),) * 2)
    _, component = connected_components(graph, directed=False)
    kept = []
    for c in np.unique(component[g]):
        inside = np.flatnonzero(component[g] == c)
        if len(inside) == 1:
            kept.append(candidates[inside[0]])
            continue
        rows, r = np.unique(g[inside], return_inverse=True)
        cols, k = np.unique(p[inside], return_inverse=True)
        weight = np.zeros((len(rows), len(cols)))
        bonus = min(len(rows), len(cols)) + 1  # one more match outweighs any IoU sum
        weight[r, k] = bonus + ious[candidates[inside]]
        chosen_r, chosen_k = linear_sum_assignment(weight, maximize=True)
        lookup = {(a, b): candidates[i] for a, b, i in zip(r, k, inside)}
        kept += [lookup[(a, b)] for a, b in zip(chosen_r, chosen_k) if (a, b) in lookup]
    return np.sort(np.array(kept, np.int64))


def _metrics(tp, fp, fn, iou_sum):
    def ratio(a, b):
        return a / b if b else float("nan")

    return {"tp": tp, "fp": fp, "fn": fn, "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "accuracy": ratio(tp, tp + fp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "pq": ratio(iou_sum, tp + fp / 2 + fn / 2), "mean_iou": ratio(iou_sum, tp)}


def value_categories(values_gt, values_pred, edges, label="length", unit="um"):
    """Categories of instances by a measure (e.g. skeleton length): ``(names, gt {id: name}, pred {id: name})``.

    ``values_gt`` / ``values_pred``: ``{id: value}``; ``edges``: ascending bounds; names such as
    ``length<=1um``, ``length 1-3um``, ``length>3um`` (a value on a bound goes to the lower category).
    """
    edges = [float(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"category bounds {edges} must be ascending and non-empty")

    def fmt(v):
        return f"{v:g}"

    names = [f"{label}<={fmt(edges[0])}{unit}"] + [f"{label} {fmt(a)}-{fmt(b)}{unit}" for a, b in zip(edges, edges[1:])]
    names.append(f"{label}>{fmt(edges[-1])}{unit}")

    def name_of(value):
        return names[int(np.searchsorted(edges, float(value), side="left"))]

    return (names, {int(k): name_of(v) for k, v in values_gt.items()},
            {int(k): name_of(v) for k, v in values_pred.items()})


def analyse_errors(table, ranges, names, crumb_size=0, thresholds=THRESHOLDS, categories=None):
    """The :class:`ErrorAnalysis` of an :class:`~connectomics.evaluation.overlap.OverlapTable`.

    ``ranges`` / ``names``: the evaluator's size bins (``area_ranges``, ``AREA_NAMES``; the first
    is 'all'); ``crumb_size``: GT instances below it are left out (see the module docstring).
    ``categories``: optional further bins ``(names, gt {id: name}, pred {id: name})`` (e.g.
    :func:`value_categories` of skeleton lengths, TIMISE's categories): matching rows per name,
    TP and FN by the GT instance's category, FP by the prediction's (ids missing from a dict are
    in none).
    """
    kept_gt = table.gt_sizes >= crumb_size
    gt_ids, gt_sizes = table.gt_ids[kept_gt], table.gt_sizes[kept_gt]
    pred_best_any, _ = _best(table.pred_ids, table.pred_sizes, table.pair_pred, table.pair_gt, table.pair_voxels)
    crumbs = table.gt_ids[~kept_gt]
    pairs = np.isin(table.pair_gt, gt_ids)
    pair_gt, pair_pred, voxels = table.pair_gt[pairs], table.pair_pred[pairs], table.pair_voxels[pairs]
    gt_best, _ = _best(table.gt_ids, table.gt_sizes, table.pair_gt, table.pair_pred, table.pair_voxels)
    gt_best = gt_best[kept_gt]
    pred_best = np.where(np.isin(pred_best_any, crumbs), 0, pred_best_any)
    association, n_preds = _associations(gt_ids, gt_best, table.pred_ids, pred_best)
    g_size = gt_sizes[np.searchsorted(gt_ids, pair_gt)]
    p_index = np.searchsorted(table.pred_ids, pair_pred)
    ious = voxels / (g_size + table.pred_sizes[p_index] - voxels)
    best_pred, best_iou = np.zeros(len(gt_ids), np.uint64), np.zeros(len(gt_ids))
    order = np.lexsort((pair_pred, -ious))
    for i in order[::-1]:  # the highest IoU written last
        j = np.searchsorted(gt_ids, pair_gt[i])
        best_pred[j], best_iou[j] = pair_pred[i], ious[i]
    eligible = ~np.isin(pred_best_any, crumbs)  # predictions on crumbs: neither TP nor FP
    gt_bins = _bins(gt_sizes, ranges, names)
    pred_bins = _bins(table.pred_sizes, ranges, names)
    background = eligible & (pred_best_any == 0)
    groups = [(name, gt_bins, pred_bins, name == names[0]) for name in names]
    if categories is not None:
        cat_names, cat_gt, cat_pred = categories
        gt_cat = np.array([cat_gt.get(int(i)) for i in gt_ids], dtype=object)
        pred_cat = np.array([cat_pred.get(int(i)) for i in table.pred_ids], dtype=object)
        groups += [(name, gt_cat, pred_cat, False) for name in cat_names]
    rows = []
    for t in thresholds:
        matched = one_to_one(pair_gt, pair_pred, ious, t)
        gt_hit = np.isin(gt_ids, pair_gt[matched])
        pred_hit = np.isin(table.pred_ids, pair_pred[matched])
        match_gt = np.searchsorted(gt_ids, pair_gt[matched])
        for name, of_gt, of_pred, everything in groups:
            in_gt = np.ones(len(gt_ids), bool) if everything else of_gt == name
            in_pred = np.ones(len(table.pred_ids), bool) if everything else of_pred == name
            in_match = np.ones(len(matched), bool) if everything else of_gt[match_gt] == name
            tp = int(in_match.sum())
            rows.append(dict(threshold=t, bin=name, **_metrics(tp, int((eligible & in_pred & ~pred_hit).sum()),
                                                                int((in_gt & ~gt_hit).sum()),
                                                                float(ious[matched][in_match].sum()))))
    gt = {"ids": gt_ids, "sizes": gt_sizes, "bins": gt_bins, "association": association, "n_preds": n_preds,
          "best_pred": best_pred, "best_iou": best_iou}
    return ErrorAnalysis(gt, {"ids": table.pred_ids[background], "sizes": table.pred_sizes[background]}, rows)
