"""``evaluate_volumes``: MitoEM AP (official mAP_3Dvolume, 2021) of a prediction against GT.

Pipeline: one streaming pass -> ``OverlapTable`` (sizes + intersections) -> evaluation order
(``rank_predictions``) -> best matches (``match_predictions``) -> AP (``accumulate``).
"""
import functools
import logging
from dataclasses import dataclass, field

import numpy as np

from connectomics.evaluation.errors import analyse_errors
from connectomics.evaluation.average_precision import IOU_THRESHOLDS, RECALL_THRESHOLDS, accumulate, mean_precision
from connectomics.evaluation.matching import AREA_NAMES, Matches, area_ranges, match_predictions
from connectomics.evaluation.overlap import MAX_SLAB_MIB, overlap_table
from connectomics.evaluation.scores import rank_predictions
from connectomics.evaluation.sources import source_name

logger = logging.getLogger(__name__)

T50, T75, T90 = 0, 5, 8  # indices of IoU 0.50, 0.75 and 0.90 in IOU_THRESHOLDS


@dataclass
class EvalResult:
    """Everything an evaluation produced.

    ``summary``: dict of floats / ints: 'AP' (IoU .50:.95), 'AP50', 'AP75', 'AP90',
    'AP75_small', 'AP75_medium', 'AP75_large' (-1 where the area range has no GT, like the
    official code), 'n_gt' (crumbs removed), 'n_pred', 'tp75', 'fp75', 'fn75' (at IoU 0.75,
    area 'all'), plus 'n_gt_crumbs' and 'n_gt_<area>'.
    ``precision``: (T=10, R=101, A=4) interpolated precision, -1 for areas without GT.
    ``recall``: (T, A) final recall. ``matches``: per-prediction and FN tables.
    ``area_ranges``: (A, 2) int64; ``notes``: remarks for the report (empty prediction, ...).
    """

    summary: dict
    precision: np.ndarray
    recall: np.ndarray
    matches: Matches
    area_ranges: np.ndarray
    gt_name: str = ""
    pred_name: str = ""
    crumb_size: int = 2000
    notes: list = field(default_factory=list)
    iou_thresholds: np.ndarray = field(default_factory=lambda: IOU_THRESHOLDS.copy())
    recall_thresholds: np.ndarray = field(default_factory=lambda: RECALL_THRESHOLDS.copy())
    area_names: tuple = AREA_NAMES
    other_rankings: dict = field(default_factory=dict)  # {name: summary} of the same match, ranked otherwise
    errors: object = None  # ErrorAnalysis (connectomics.evaluation.errors): associations and matching metrics


def evaluate_volumes(gt, pred, scores=None, area_thresholds=(5e3, 3e4), crumb_size=2000,
                     chunk_slices=100, slices=None, progress=None, max_slab_mib=MAX_SLAB_MIB, other_rankings=None,
                     categories=None):
    """AP of an instance prediction against ground truth, official MitoEM semantics.

    Args:
        gt, pred: (Z, Y, X) or (1, Z, Y, X) integer label volumes of equal shape (0 =
            background): NumPy arrays, h5py datasets or ``file.h5[:key]`` specs. Any unsigned or
            non-negative signed integer dtype; ids up to 2**64 - 1; floats holding integers are
            accepted with a warning.
        scores: None (score = voxel count), an N x 2 ``[id, score]`` array, ``{id: score}`` or a
            score file (txt / h5). Only scored ids are evaluated.
        area_thresholds: small/medium and medium/large voxel bounds (official ``-th``).
        crumb_size: GT instances below this many voxels are removed (official ``-thc``).
        chunk_slices: z-slices read at a time (official ``-cz``); memory ~ 2 slabs per volume.
        slices: optional (z0, z1) range to evaluate (official ``-sl``).
        progress: show a progress bar (None: only on a terminal).
        max_slab_mib: cap on one slab of one volume in MiB (None: no cap); see ``overlap_table``.
        other_rankings: ``{name: scores}`` (as ``scores``): the same prediction ranked otherwise, from
            the same streaming pass (e.g. ``{'size': None}`` beside a confidence ranking); their
            summaries land in ``EvalResult.other_rankings``.
        categories: further bins of the error analysis, ``(names, gt {id: name}, pred {id: name})``
            (skeleton-length categories: ``connectomics.measure.length_categories``).
    Returns:
        ``EvalResult``.
    """
    ranges = area_ranges(area_thresholds)
    table = overlap_table(gt, pred, chunk_slices=chunk_slices, slices=slices, progress=progress,
                          max_slab_mib=max_slab_mib)
    summary, precision, recall, matches, notes = _ranked(table, scores, ranges, crumb_size)
    notes = notes + _notes(summary, ranges)
    for note in notes:
        logger.info(note)
    others = {name: _ranked(table, other, ranges, crumb_size)[0] for name, other in (other_rankings or {}).items()}
    errors = analyse_errors(table, ranges, AREA_NAMES, crumb_size, categories=categories)  # the same table
    return EvalResult(summary, precision, recall, matches, ranges, source_name(gt, "ground-truth array"),
                      source_name(pred, "prediction array"), int(crumb_size), notes, other_rankings=others,
                      errors=errors)


def _ranked(table, scores, ranges, crumb_size):
    """``(summary, precision, recall, matches, notes)`` of an overlap table under one ranking."""
    ids, sizes, values, notes = rank_predictions(table.pred_ids, table.pred_sizes, scores)
    matches = match_predictions(table, ids, sizes, values, ranges, crumb_size)
    precision, recall, n_gt, outcomes = accumulate(matches, ranges)
    return summarize(matches, precision, n_gt, outcomes), precision, recall, matches, notes


def summarize(matches, precision, n_gt, outcomes):
    """The summary dict of ``EvalResult`` (see there)."""
    tp, fp = outcomes[0]
    matched_gt = np.unique(matches.gt_ids[tp[T75], 0]) if len(tp[T75]) else np.zeros(0)
    summary = {
        "AP": mean_precision(precision),
        "AP50": mean_precision(precision, T50),
        "AP75": mean_precision(precision, T75),
        "AP90": mean_precision(precision, T90),
    }
    for a, name in enumerate(AREA_NAMES[1:], start=1):
        summary[f"AP75_{name}"] = mean_precision(precision, T75, a)
    summary.update(n_gt=int(n_gt[0]), n_pred=int(len(matches.pred_ids)), tp75=int(tp[T75].sum()),
                   fp75=int(fp[T75].sum()), fn75=int(n_gt[0] - len(matched_gt)),
                   n_gt_crumbs=int(matches.n_crumbs))
    for a, name in enumerate(AREA_NAMES[1:], start=1):
        summary[f"n_gt_{name}"] = int(n_gt[a])
    return summary


def _notes(summary, ranges):
    notes = []
    if summary["n_pred"] == 0:
        notes.append("the prediction holds no instances: AP is 0 wherever there is GT")
    if summary["n_gt"] == 0:
        notes.append("the ground truth holds no instance of >= crumb size: every AP is -1 (undefined)")
    for a, name in enumerate(AREA_NAMES[1:], start=1):
        if summary[f"n_gt_{name}"] == 0 and summary["n_gt"] > 0:
            lo, hi = ranges[a]
            bounds = f"size > {lo}" if a == len(ranges) - 1 else f"{lo} < size <= {hi}"
            notes.append(f"no {name} GT instance ({bounds} voxels): AP75_{name} is -1 (undefined), "
                         "as in the official evaluator")
    return notes


def build_evaluation(cfg):
    """The config door of evaluation: :func:`evaluate_volumes` with ``cfg.EVAL``'s size bins
    (AREA_THRESHOLDS), crumb size (CRUMB_SIZE) and slab length (CHUNK_SLICES) bound; called as
    ``evaluate(gt, pred, scores=None, **other keywords)``."""
    return functools.partial(evaluate_volumes, area_thresholds=tuple(cfg.EVAL.AREA_THRESHOLDS),
                             crumb_size=cfg.EVAL.CRUMB_SIZE, chunk_slices=cfg.EVAL.CHUNK_SLICES)
