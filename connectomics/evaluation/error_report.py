"""Reports of the error analysis (:mod:`connectomics.evaluation.errors`): the lines printed beside
the AP table, ``PREFIX_errors.csv`` (one row per GT instance, then the background false
positives), ``PREFIX_matching.csv`` (one row per IoU threshold and size bin or category) and ``PREFIX_errors.png``."""
import csv
import math

import numpy as np

from connectomics.evaluation.errors import ASSOCIATIONS, METRICS
from connectomics.storage import atomic_path


def _fmt(value):
    return "-" if isinstance(value, float) and math.isnan(value) else (f"{value:.3f}" if isinstance(value, float)
                                                                          else str(value))


def error_lines(analysis):
    """Text lines: the association counts and the matching table (bin 'all')."""
    counts = analysis.counts()
    lines = ["  errors (each GT instance): " + ", ".join(f"{name} {counts[name]}" for name in ASSOCIATIONS)
             + f"; background FP {counts['background FP']}",
             "  matching (optimal one-to-one)  " + " ".join(f"{m:>9}" for m in ("IoU",) + METRICS)]
    for row in analysis.matching:
        if row["bin"] == "all":
            lines.append("  " + " " * 31 + " ".join(f"{_fmt(row[k]):>9}" for k in ("threshold",) + METRICS))
    by_bin = [row for row in analysis.matching if row["bin"] != "all" and row["threshold"] == 0.75]
    if by_bin:
        lines.append("  accuracy at IoU 0.75 (TP/FP/FN) by bin: " + "; ".join(
            f"{row['bin']} {_fmt(row['accuracy'])} ({row['tp']}/{row['fp']}/{row['fn']})" for row in by_bin))
    return lines


def write_error_files(analysis, prefix):
    """Write ``PREFIX_errors.csv``, ``PREFIX_matching.csv`` and ``PREFIX_errors.png``; their paths."""
    paths = [f"{prefix}_errors.csv", f"{prefix}_matching.csv", f"{prefix}_errors.png"]
    gt = analysis.gt
    with atomic_path(paths[0]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["kind", "id", "size", "size_bin", "association", "n_preds", "best_pred", "best_iou"])
        for i in range(len(gt["ids"])):
            writer.writerow(["gt", int(gt["ids"][i]), int(gt["sizes"][i]), gt["bins"][i], gt["association"][i],
                             int(gt["n_preds"][i]), int(gt["best_pred"][i]), f"{gt['best_iou'][i]:.4f}"])
        for pid, size in zip(analysis.background_fp["ids"], analysis.background_fp["sizes"]):
            writer.writerow(["prediction", int(pid), int(size), "", "background FP", "", "", ""])
    with atomic_path(paths[1]) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["iou_threshold", "bin"] + list(METRICS))  # size bins, then any other categories
        for row in analysis.matching:
            writer.writerow([row["threshold"], row["bin"]] + [_fmt(row[m]) if isinstance(row[m], float) else row[m]
                                                            for m in METRICS])
    plot_errors(analysis, paths[2])
    return paths


def plot_errors(analysis, path):
    """Bars of the association counts; accuracy, F1 and PQ against the IoU threshold."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    counts = analysis.counts()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    names = list(ASSOCIATIONS) + ["background FP"]
    colours = ["#4caf50", "#e53935", "#fb8c00", "#8e24aa", "#6d4c41", "#fdd835"]
    left.bar(range(len(names)), [counts[n] for n in names], color=colours)
    left.set_xticks(range(len(names)), names, rotation=20)
    left.set_title(f"{len(analysis.gt['ids'])} GT instances: what became of each")
    rows = [r for r in analysis.matching if r["bin"] == "all"]
    for metric in ("accuracy", "f1", "pq", "precision", "recall"):
        right.plot([r["threshold"] for r in rows], [r[metric] for r in rows], marker="o", label=metric)
    right.set(xlabel="IoU threshold", ylim=(0, 1.02), title="optimal one-to-one matching")
    right.legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def error_dict(analysis):
    """JSON-ready counts and matching rows."""
    return {"counts": analysis.counts(),
            "matching": [{k: (None if isinstance(v, float) and math.isnan(v) else
                              (float(v) if isinstance(v, (float, np.floating)) else v)) for k, v in row.items()}
                         for row in analysis.matching]}
