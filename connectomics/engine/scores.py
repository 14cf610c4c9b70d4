"""The settings a checkpoint series's scores CSV (``sum_results_map75.csv``) was made with.

The table itself: :mod:`connectomics.evaluation.scores_csv`. Beside it,
``sum_results_map75.settings.json`` records what the scores depend on besides the iteration
(the training run the checkpoints belong to, image and ground truth with their content identity,
inference, post-processing and evaluation settings). When a run comes
with other settings, the old CSV is moved aside (``sum_results_map75.stale-N.csv``, nothing is
lost) and scoring starts again, so one table never mixes settings.
"""
import json
import logging
import os

from connectomics.config.compare import config_differences

logger = logging.getLogger(__name__)

SCORES_CSV = "sum_results_map75.csv"  # one row per scored checkpoint: iteration,AP75,AP50
SETTINGS_SUFFIX = ".settings.json"
_NOT_SCORES = {  # keys that only name files, bound memory or tune: they do not change a score
    "INFERENCE": ("INPUT_PATH", "IMAGE_NAME", "OUTPUT_PATH", "OUTPUT_NAME", "SAMPLES_PER_BATCH", "CHUNK_SIZE"),
    "POSTPROCESS": ("OUTPUT_NAME", "TUNE"), "EVAL": ("GT_NAME", "OUTPUT_PREFIX", "CHUNK_SLICES")}


def score_settings(cfg, image_spec, gt_spec, model=None):
    """A JSON-able dict of what a score depends on besides the checkpoint's iteration: the image and
    ground truth (names and content identity), the training run whose checkpoints are scored
    (``model``: :func:`~connectomics.checkpoint.model_identity`), and the inference,
    post-processing and evaluation keys (keys that only move files or bound memory left out)."""
    settings = {"image": os.fspath(image_spec), "image_id": _identity(image_spec),
                "gt": os.fspath(gt_spec) if gt_spec else None, "gt_id": _identity(gt_spec), "model": model}
    for section, skip in _NOT_SCORES.items():
        settings[section] = {k: v for k, v in json.loads(json.dumps(cfg[section])).items() if k not in skip}
    return settings


def _identity(spec):
    """The content identity of a volume (None: no volume, or not on disk)."""
    from connectomics.storage.identity import volume_identity

    try:
        return volume_identity(spec) if spec else None
    except FileNotFoundError:
        return None


def use_score_settings(csv_path, settings):
    """Make ``csv_path`` hold scores of ``settings`` only; True if older scores were moved aside.

    A CSV whose settings file names other settings is renamed to ``*.stale-N.csv`` (with its
    settings file), logging the keys that differ; then the settings file is (re)written. A CSV
    without a settings file (older runs, ``evaluate.py --csv``) is kept as it is.
    """
    from connectomics.storage import atomic_path

    path = os.fspath(csv_path) + SETTINGS_SUFFIX
    stale = False
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        diff = config_differences(old, settings)
        if diff and os.path.exists(csv_path):
            n = 1
            while os.path.exists(_stale_name(csv_path, n)):
                n += 1
            os.replace(csv_path, _stale_name(csv_path, n))
            os.replace(path, _stale_name(csv_path, n) + SETTINGS_SUFFIX)
            logger.warning("%s was scored with other settings (%s): moved to %s; scoring again", csv_path,
                           "; ".join(diff[:5]), _stale_name(csv_path, n))
            stale = True
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(settings, f, indent=1, sort_keys=True)
    return stale


def _stale_name(csv_path, n):
    root, ext = os.path.splitext(os.fspath(csv_path))
    return f"{root}.stale-{n}{ext}"
