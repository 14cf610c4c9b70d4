"""Evaluation: MitoEM AP-75 (official mAP_3Dvolume 2021 semantics), fast and streaming.

``evaluate_volumes(gt, pred, ...) -> EvalResult`` reads both volumes once, slab by slab along
z, builds the GT x prediction overlap table (Cython kernel), and computes the COCO-style AP from
it. ``format_table`` and ``write_reports`` present the result. ``reference_evaluate`` is the
straightforward per-instance implementation used as test oracle and benchmark baseline.
"""
from connectomics.evaluation.api import EvalResult, build_evaluation, evaluate_volumes
from connectomics.evaluation.average_precision import IOU_THRESHOLDS, RECALL_THRESHOLDS
from connectomics.evaluation.matching import AREA_NAMES, Matches, area_ranges, match_predictions
from connectomics.evaluation.overlap import OverlapTable, overlap_table
from connectomics.evaluation.reference import reference_evaluate
from connectomics.evaluation.report import format_table, map_lines, write_reports
from connectomics.evaluation.scores_csv import append_score, read_scores
from connectomics.evaluation.scores import ScoreError, load_scores, rank_predictions
from connectomics.evaluation.sources import LabelError

__all__ = [
    "AREA_NAMES", "EvalResult", "IOU_THRESHOLDS", "LabelError", "Matches", "OverlapTable",
    "RECALL_THRESHOLDS", "ScoreError", "append_score", "area_ranges", "build_evaluation", "evaluate_volumes",
    "format_table", "load_scores", "map_lines", "match_predictions", "overlap_table",
    "rank_predictions", "read_scores", "reference_evaluate", "write_reports",
]
