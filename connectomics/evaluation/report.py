"""Reports of an ``EvalResult``: console table, the official text files, JSON, PR curves, CSV row.

Files written by ``write_reports(result, prefix)``:
- ``PREFIX_map.txt``: the official 6 COCO-style lines (AP@[.50:.95], AP@.50, AP@.75 for 'all',
  then AP@.75 for small / medium / large); -1.000 where an area range has no GT;
- ``PREFIX_match_p.txt``: one row per prediction in evaluation order: id, size, then
  (gt id, gt size, IoU) of its best GT for all / small / medium / large (0 = none);
- ``PREFIX_match_fn.txt``: one row per false negative: best prediction id and size, GT id and
  size, IoU (0 when nothing overlaps it);
- ``PREFIX.json``: every number (summary, per-threshold AP, recall, precision curves, inputs);
- ``PREFIX_pr.png``: precision-recall curves at IoU 0.50 / 0.75 / 0.90 (area 'all');
- ``PREFIX_errors.csv``, ``PREFIX_matching.csv``, ``PREFIX_errors.png``: the error analysis
  (:mod:`connectomics.evaluation.error_report`).
"""
import json
import logging
import os

import numpy as np

from connectomics.evaluation.scores_csv import append_score
from connectomics.storage import atomic_path

logger = logging.getLogger(__name__)

TIE_ORDER = "descending score, then ascending prediction id"
_LINE = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
_MAP_ROWS = (("0.50:0.95", "all", "AP"), ("0.50", "all", "AP50"), ("0.75", "all", "AP75"),
             ("0.75", "small", "AP75_small"), ("0.75", "medium", "AP75_medium"),
             ("0.75", "large", "AP75_large"))
_P_HEADER = ("\tprediction  |\t\t gt all \t\t|\t\t gt small \t\t|\t\tgt medium \t\t|\t gt large",
             "ID\tSIZE\t| ID\tSIZE\tIoU\t\t| ID\tSIZE\tIoU\t\t| ID\tSIZE\tIoU\t\t| ID\tSIZE\tIoU",
             "-" * 108)
_FN_HEADER = ("\tprediction \t|\t\tgt \t", "ID\tSIZE\t| ID\tSIZE\tIoU ", "-" * 40)


def map_lines(summary):
    """The 6 lines of ``PREFIX_map.txt`` (official COCO format)."""
    return [_LINE.format("Average Precision", "(AP)", iou, area, 100, summary[key])
            for iou, area, key in _MAP_ROWS]


def _value(value):
    return f"{value:8.4f}" if value > -1 else f"{'-1':>8}"


def _range_text(ranges, a):
    lo, hi = ranges[a]
    if lo == 0:
        return f"size <= {hi}"
    return f"{lo} < size <= {hi}" if a < len(ranges) - 1 else f"size > {lo}"


def format_table(result):
    """A human-readable summary table (str) of an ``EvalResult``; -1 marks an undefined AP."""
    s, ranges = result.summary, result.area_ranges
    rows = [f"AP evaluation (MitoEM mAP_3Dvolume semantics; score order: {TIE_ORDER})",
            f"  ground truth : {result.gt_name}", f"  prediction   : {result.pred_name}",
            f"  {'AP@[.50:.95]':<14}{_value(s['AP'])}", f"  {'AP-50':<14}{_value(s['AP50'])}",
            f"  {'AP-75':<14}{_value(s['AP75'])}", f"  {'AP-90':<14}{_value(s['AP90'])}"]
    for a, name in enumerate(result.area_names[1:], start=1):
        value, n_gt = s[f"AP75_{name}"], s[f"n_gt_{name}"]
        undefined = ": undefined, no GT in this range" if value <= -1 else ""
        rows.append(f"  {'AP-75 ' + name:<14}{_value(value)}   {n_gt} GT, "
                    f"{_range_text(ranges, a)} voxels{undefined}")
    rows += [f"  {'GT instances':<14}{s['n_gt']:>8}   ({s['n_gt_crumbs']} crumbs < "
             f"{result.crumb_size} voxels removed)",
             f"  {'predictions':<14}{s['n_pred']:>8}",
             f"  {'TP @0.75':<14}{s['tp75']:>8}", f"  {'FP @0.75':<14}{s['fp75']:>8}",
             f"  {'FN @0.75':<14}{s['fn75']:>8}"]
    for name, other in result.other_rankings.items():
        rows.append(f"  {'AP-75':<14}{_value(other['AP75'])}   ranked by {name} (AP-50 {_value(other['AP50']).strip()}, "
                    f"TP {other['tp75']}, FP {other['fp75']})")
    if result.errors is not None:
        from connectomics.evaluation.error_report import error_lines

        rows += error_lines(result.errors)
    rows += [f"  note: {note}" for note in result.notes]
    return "\n".join(rows)


def _write_table(path, header, rows):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("".join(f"# {line}\n" for line in header))
        f.writelines(row + "\n" for row in rows)


def _gt_cells(m, j, a):
    return f"{int(m.gt_ids[j, a])}\t{int(m.gt_sizes[j, a]):4d}\t{m.ious[j, a]:.4f}"


def write_match_files(result, prefix):
    """``PREFIX_match_p.txt`` and ``PREFIX_match_fn.txt`` in the official layouts."""
    m = result.matches
    rows = [f"{int(m.pred_ids[j])}\t\t{int(m.pred_sizes[j]):4d}\t\t"
            + "\t\t".join(_gt_cells(m, j, a) for a in range(m.gt_ids.shape[1]))
            for j in range(len(m.pred_ids))]
    _write_table(f"{prefix}_match_p.txt", _P_HEADER, rows)
    rows = [f"{int(p)}\t\t{int(ps):4d}\t\t{int(g)}\t{int(gs):4d}\t{iou:.4f}" for p, ps, g, gs, iou
            in zip(m.fn_pred_ids, m.fn_pred_sizes, m.fn_gt_ids, m.fn_gt_sizes, m.fn_ious)]
    _write_table(f"{prefix}_match_fn.txt", _FN_HEADER, rows)


def result_dict(result, iteration=None):
    """Every number of an ``EvalResult`` as JSON-ready Python types."""
    names = result.area_names
    return {
        "ground_truth": result.gt_name, "prediction": result.pred_name, "iteration": iteration,
        "summary": result.summary,
        "parameters": {"area_ranges": result.area_ranges.tolist(), "crumb_size": result.crumb_size,
                       "iou_thresholds": result.iou_thresholds.tolist(),
                       "recall_thresholds": result.recall_thresholds.tolist(), "tie_order": TIE_ORDER,
                       "undefined_value": -1},
        "ap_per_iou": {n: [float(np.mean(p)) if p.min() > -1 else -1.0 for p in result.precision[:, :, a]]
                       for a, n in enumerate(names)},
        "recall": {n: result.recall[:, a].tolist() for a, n in enumerate(names)},
        "precision": {n: result.precision[:, :, a].tolist() for a, n in enumerate(names)},
        "notes": list(result.notes),
        "other_rankings": result.other_rankings,
        "errors": _errors(result),
    }


def _errors(result):
    if result.errors is None:
        return None
    from connectomics.evaluation.error_report import error_dict

    return error_dict(result.errors)


def plot_pr_curves(result, path):
    """PNG of interpolated precision vs recall at IoU 0.50 / 0.75 / 0.90, area 'all'."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for t, label in ((0, "IoU 0.50"), (5, "IoU 0.75"), (8, "IoU 0.90")):
        curve = result.precision[t, :, 0]
        if curve.min() > -1:
            ap = float(np.mean(curve))
            ax.plot(result.recall_thresholds, curve, label=f"{label} (AP {ap:.3f})")
    if result.summary["n_gt"] == 0:
        ax.text(0.5, 0.5, "no ground truth: AP undefined (-1)", ha="center")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"area 'all': {os.path.basename(result.pred_name)[:50]}")
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_reports(result, prefix, iteration=None, csv_path=None):
    """Write the report files next to ``prefix`` (see module docstring); return their paths.

    With ``csv_path``, appends ``iteration,AP75``; ``iteration`` must then be known (pass it, or
    use ``parse_iteration`` on the checkpoint / prediction file name).
    """
    prefix = os.fspath(prefix)
    if os.path.dirname(prefix):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
    paths = [f"{prefix}_map.txt", f"{prefix}_match_p.txt", f"{prefix}_match_fn.txt",
             f"{prefix}.json", f"{prefix}_pr.png"]
    with atomic_path(paths[0]) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(map_lines(result.summary)) + "\n")
    write_match_files(result, prefix)
    with atomic_path(paths[3]) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(result_dict(result, iteration), f, indent=1)
    plot_pr_curves(result, paths[4])
    if result.errors is not None:
        from connectomics.evaluation.error_report import write_error_files

        paths += write_error_files(result.errors, prefix)
    if csv_path is not None:
        if iteration is None:
            raise ValueError(f"appending to {csv_path} needs the model iteration: pass it "
                             "explicitly (e.g. --iteration N)")
        append_score(csv_path, int(iteration), result.summary, header=False)
        paths.append(os.fspath(csv_path))
    logger.info("evaluation reports written: %s", ", ".join(paths))
    return paths
