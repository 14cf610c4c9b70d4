"""The scores CSV of a checkpoint series (``sum_results_map75.csv``) and the settings it was made with.

One row per scored checkpoint: ``iteration,AP75,AP50``. Beside it,
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
from connectomics.evaluation.report import SCORES_HEADER

logger = logging.getLogger(__name__)

SCORES_CSV = "sum_results_map75.csv"  # one row per scored checkpoint: iteration,AP75,AP50
SETTINGS_SUFFIX = ".settings.json"
_NOT_SCORES = {  # keys that only name files, bound memory or tune: they do not change a score
    "INFERENCE": ("INPUT_PATH", "IMAGE_NAME", "OUTPUT_PATH", "OUTPUT_NAME", "SAMPLES_PER_BATCH", "CHUNK_SIZE"),
    "POSTPROCESS": ("OUTPUT_NAME", "TUNE"), "EVAL": ("GT_NAME", "OUTPUT_PREFIX", "CHUNK_SLICES")}


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


def append_score(csv_path, iteration, summary):
    """Record ``iteration,AP75,AP50`` (header written with the first row); an older row of the
    same iteration is replaced, so a rerun does not leave duplicates. Written atomically."""
    from connectomics.storage import atomic_path

    lines = []
    if os.path.exists(csv_path):
        with open(csv_path, encoding="utf-8") as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    lines = [ln for ln in lines if ln.split(",")[0].strip() != str(int(iteration))]
    if not lines:
        lines = [SCORES_HEADER]
    lines.append(f"{int(iteration)},{summary['AP75']:.6f},{summary['AP50']:.6f}")
    with atomic_path(csv_path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


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
