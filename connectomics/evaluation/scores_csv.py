"""The scores table of a checkpoint series (``sum_results_map75.csv``): one writer, one reader.

Rows are ``iteration,AP75,AP50`` under that header (``main.py --inference``, ``eval_iter.sh``,
training-time validation), or the official headerless ``iteration,AP75`` rows
(``scripts/evaluate.py --csv`` into a new file); a file keeps the layout it started with, and both
read back the same way.
"""
import math
import os

from connectomics.storage import atomic_path

SCORES_HEADER = "iteration,AP75,AP50"


def read_scores(csv_path):
    """``{iteration: {'AP75': .., 'AP50': ..}}`` from a scores CSV (empty if absent).

    Reads the rows :func:`append_score` writes (header ``iteration,AP75,AP50``) and the official
    headerless ``iteration,AP75`` rows that ``scripts/evaluate.py --csv`` appends (AP50 NaN), mixed
    in one file too. A later row of an iteration wins. A malformed row raises ValueError naming the
    file and the line.
    """
    if not os.path.exists(csv_path):
        return {}
    import csv

    scores = {}
    with open(csv_path, encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].lower() == "iteration":
                continue  # blank line or header
            try:
                if len(cells) not in (2, 3):
                    raise ValueError(f"{len(cells)} columns")
                ap50 = float(cells[2]) if len(cells) == 3 and cells[2] else float("nan")
                scores[int(cells[0])] = {"AP75": float(cells[1]), "AP50": ap50}
            except ValueError as err:
                raise ValueError(f"{csv_path}, line {line}: expected 'iteration,AP75[,AP50]', got "
                                 f"{','.join(row)!r} ({err})") from None
    return scores


def append_score(csv_path, iteration, summary, header=True):
    """Record ``summary['AP75']`` (and ``'AP50'``) of ``iteration``; an older row of the same iteration
    is replaced, so a rerun leaves no duplicate. Written atomically.

    A file with the header gets ``iteration,AP75,AP50`` rows, a headerless one ``iteration,AP75``
    rows; a new file gets the header when ``header``.
    """
    lines = []
    if os.path.exists(csv_path):
        with open(csv_path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    with_header = lines[0].replace(" ", "") == SCORES_HEADER if lines else header
    lines = [ln for ln in lines if ln.split(",")[0].strip() != str(int(iteration))]
    if with_header and not lines:
        lines = [SCORES_HEADER]
    row = f"{int(iteration)},{summary['AP75']:.6f}"
    if with_header:
        ap50 = summary.get("AP50")
        row += "," + ("" if ap50 is None or math.isnan(ap50) else f"{ap50:.6f}")
    with atomic_path(csv_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines + [row]) + "\n")
