"""Prediction scores and the evaluation order of the predictions.

The official evaluator scores a prediction by its voxel count unless a score file is given
(N x 2 rows ``[id, score]``, txt or HDF5; a 2 x N array is transposed). Predictions are then
processed by descending score. Ties: the official code uses an unstable ``argsort(-score)``,
so its order among equal scores is arbitrary; here it is **descending score, then ascending
id** (a stable sort of the ascending ids), which makes every result reproducible.
"""
import logging
import os

import numpy as np

from connectomics.storage import format_of, parse_spec, read_volume

logger = logging.getLogger(__name__)


class ScoreError(ValueError):
    """A score file or array that is not N x 2 ``[id, score]``."""


def load_scores(path):
    """Read an N x 2 ``[id, score]`` array from ``.txt``/``.csv`` (whitespace or commas) or ``file.h5[:key]``."""
    file, _ = parse_spec(path)
    if not os.path.exists(file):
        raise FileNotFoundError(f"score file not found: {file}")
    if format_of(file) == "hdf5":
        return np.squeeze(read_volume(path))
    if file.lower().endswith((".txt", ".csv")):
        with open(file, encoding="utf-8") as f:
            text = f.read().replace(",", " ")
        rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        try:
            return np.array(rows, dtype=np.float64) if rows else np.zeros((0, 2))
        except ValueError as err:
            raise ScoreError(f"{file}: expected numeric rows 'id score': {err}") from None
    raise ScoreError(f"{file}: unknown score file format (expected .txt, .csv or .h5)")


def _integer_ids(ids, name):
    """Score-table ids as uint64; they must be non-negative integers (floats holding integers ok)."""
    if ids.dtype.kind == "O":  # e.g. from a dict: Python ints of any size
        if not all(isinstance(i, (int, np.integer)) for i in ids):
            raise ScoreError(f"{name}: prediction ids must be integers")
        if any(int(i) < 0 for i in ids):
            raise ScoreError(f"{name}: prediction ids must be >= 0")
        return np.array([int(i) for i in ids], dtype=np.uint64)
    if ids.dtype.kind not in "uif":
        raise ScoreError(f"{name}: prediction ids must be integers, got dtype {ids.dtype}")
    if ids.dtype.kind == "f" and not np.all(np.isfinite(ids) & (ids == np.floor(ids))):
        raise ScoreError(f"{name}: prediction ids must be integers")
    if ids.dtype.kind in "if" and np.any(ids < 0):
        raise ScoreError(f"{name}: prediction ids must be >= 0")
    return ids.astype(np.uint64)


def _as_score_table(scores, name):
    """Validate ``scores`` into (uint64 ids, float64 scores), ids > 0, last duplicate wins."""
    if isinstance(scores, dict):
        scores = np.array(list(scores.items()), dtype=object).reshape(-1, 2)
    array = np.asarray(scores)
    if array.ndim == 2 and array.shape[1] != 2 and array.shape[0] == 2:
        array = array.T
    if array.ndim != 2 or array.shape[1] != 2:
        raise ScoreError(f"{name}: prediction scores must be an N x 2 array [id, score], "
                         f"got shape {array.shape}")
    ids = _integer_ids(array[:, 0], name)
    values = array[:, 1].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ScoreError(f"{name}: scores must be finite numbers")
    keep = ids > 0
    ids, values = ids[keep], values[keep]
    # last occurrence wins, like the official id -> score lookup table
    unique, first_rev = np.unique(ids[::-1], return_index=True)
    if len(unique) < len(ids):
        logger.warning("%s: %d duplicate prediction ids; the last score of each is used",
                       name, len(ids) - len(unique))
    return unique, values[::-1][first_rev]


def rank_predictions(pred_ids, pred_sizes, scores=None, name="scores"):
    """The predictions to evaluate, in evaluation order.

    Args:
        pred_ids, pred_sizes: sorted uint64 ids (> 0) present in the prediction volume and
            their int64 voxel counts.
        scores: None (score = size), an N x 2 ``[id, score]`` array, a ``{id: score}`` dict or
            a score file path.
    Returns:
        ``(ids uint64, sizes int64, scores float64, notes)``, ordered by descending score then
        ascending id; ``notes`` lists what was dropped (strings for the report).
    """
    notes = []
    if scores is None:
        ids, sizes, values = pred_ids, pred_sizes, pred_sizes.astype(np.float64)
    else:
        if isinstance(scores, (str, os.PathLike)):
            name, scores = os.fspath(scores), load_scores(scores)
        ids, values = _as_score_table(scores, name)
        present = np.isin(ids, pred_ids)
        if not present.all():
            notes.append(f"{int((~present).sum())} scored ids are absent from the prediction volume "
                         f"and were ignored (e.g. {ids[~present][:3].tolist()})")
        ids, values = ids[present], values[present]
        unscored = len(pred_ids) - len(ids)
        if unscored:
            notes.append(f"{unscored} predicted instances have no score in {name} and are not "
                         "evaluated (official behaviour: only scored ids count)")
        sizes = pred_sizes[np.searchsorted(pred_ids, ids)]
    for note in notes:
        logger.warning(note)
    order = np.argsort(-values, kind="stable")
    return ids[order], sizes[order], values[order], notes
