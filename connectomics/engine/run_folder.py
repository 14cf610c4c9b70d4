"""A training run's folder: what its checkpoints were made with, checked before a run resumes them.

``DATASET.OUTPUT_PATH`` holds one training run. When a run starts, ``run.json`` records the
settings its checkpoints depend on (every config key except the ones listed in ``RESUMABLE``)
and the content identity of its training volumes; ``config.yaml`` (the whole merged config)
is written beside it. Both are written only once the run is known to start (its checkpoint
loaded), so a run that fails early never leaves a config that does not describe the
checkpoints.

A later command that would resume those checkpoints with other settings or other training
data (``DATASET.SYNTHETIC.SEED 10`` where seed-0 volumes trained the model, a changed label
file, another learning rate) is refused with the keys that differ; with ``--overwrite`` the old
run is moved aside to ``<folder>.previous-N`` (nothing is deleted) and a new run starts.
Training longer (``SOLVER.ITERATION_TOTAL``) and changing how results are made or shown
(inference, post-processing, evaluation, logging, workers) resume as before.
"""
import json
import logging
import os

from connectomics.config.compare import config_differences
from connectomics.storage import ResumeError, atomic_path

logger = logging.getLogger(__name__)

RECORD = "run.json"
# keys a resumed run may change: they do not change what the checkpoints hold
RESUMABLE = {
    "SYSTEM": ("NUM_GPUS", "NUM_CPUS", "ROOT_DIR", "DEVICE", "CPU_BF16", "INFER_AFTER_TRAIN", "NUM_THREADS",
               "SCHEDULER"),
    "SOLVER": ("ITERATION_TOTAL", "ITERATION_SAVE", "ITERATION_VAL", "ITERATION_RESTART", "TIME_BUDGET"),
    # the training volumes are compared by content (``training_inputs``), not by path: a moved project resumes
    "DATASET": ("OUTPUT_PATH", "INPUT_PATH", "INFERENCE_PATH", "VAL_IMAGE_NAME", "VAL_LABEL_NAME", "IMAGE_NAME",
                "LABEL_NAME", "VALID_MASK_NAME"),
    "DATASET.SYNTHETIC": ("ENABLED",),
    "MODEL": ("PRE_MODEL", "PRE_MODEL_ITER", "OUTPUT_ACT"),
    "MONITOR": None, "INFERENCE": None, "POSTPROCESS": None, "EVAL": None, "BLOCKWISE": None,
}
TRAINING_VOLUMES = ("IMAGE_NAME", "LABEL_NAME", "VALID_MASK_NAME")


def training_settings(cfg):
    """The config as a nested dict without the ``RESUMABLE`` keys."""
    settings = json.loads(json.dumps(cfg))
    for section, keys in RESUMABLE.items():
        *parents, name = section.split(".")
        node = settings
        for part in parents:
            node = node[part]
        if keys is None:
            node.pop(name, None)
        else:
            for key in keys:
                node[name].pop(key, None)
    return settings


def training_inputs(cfg):
    """``{KEY: [content identity of each volume, in order]}`` of the training volumes
    (DATASET.IMAGE_NAME / LABEL_NAME / VALID_MASK_NAME).

    Synthetic volumes are identified by their seed and shape (what they are generated from), so
    volumes generated again with the same settings still belong to the run; others by
    :func:`~connectomics.storage.identity.volume_identity`, which a move or a copy that keeps
    the time stamps does not change.
    """
    from connectomics.data.synthetic import synthetic_identities
    from connectomics.storage import split_names
    from connectomics.storage.identity import volume_identity

    synthetic = synthetic_identities(cfg)
    return {key: [synthetic.get(spec) or (volume_identity(spec) if os.path.exists(_file(spec)) else None)
                  for spec in split_names(cfg.DATASET[key])] for key in TRAINING_VOLUMES}


def _file(spec):
    from connectomics.storage import parse_spec

    return parse_spec(spec)[0]


def _has_checkpoints(folder):
    from connectomics.checkpoint import list_checkpoints

    return bool(list_checkpoints(folder))


def _read_record(folder):
    """``(settings, inputs or None)`` the folder's checkpoints were made with, or None if unknown."""
    path = os.path.join(folder, RECORD)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        return record["settings"], record.get("inputs")
    legacy = os.path.join(folder, "config.yaml")  # runs made before run.json: their merged config
    if os.path.exists(legacy):
        import yaml

        with open(legacy, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        if isinstance(data, dict):
            from connectomics.config import get_cfg_defaults

            return training_settings(_merged(get_cfg_defaults(), data)), None
    return None


def _merged(defaults, data):
    out = json.loads(json.dumps(defaults))
    for key, value in data.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_differences(cfg):
    """``['KEY: old -> new', ...]`` between the run in DATASET.OUTPUT_PATH and ``cfg`` (empty: none,
    or the folder holds no checkpoints yet)."""
    folder = cfg.DATASET.OUTPUT_PATH
    if not _has_checkpoints(folder):
        return []
    record = _read_record(folder)
    if record is None:
        logger.warning("%s holds checkpoints but no record of their settings; resuming them as they are", folder)
        return []
    settings, inputs = record
    diff = config_differences(settings, training_settings(cfg))
    if inputs is not None:
        now = training_inputs(cfg)
        diff += [f"DATASET.{key}: other volumes (content) than the run's" for key in TRAINING_VOLUMES
                 if key in inputs and inputs[key] != now[key]]
    return diff


def check_run_folder(cfg, overwrite=False):
    """Before training: ResumeError if DATASET.OUTPUT_PATH holds checkpoints of other settings or data.

    With ``overwrite`` the old run is moved to ``<folder>.previous-N`` instead (logged), and the
    new run starts in an empty folder. Returns the folder the old run was moved to, or None.
    """
    diff = run_differences(cfg)
    if not diff:
        return None
    folder = cfg.DATASET.OUTPUT_PATH
    shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    if not overwrite:
        raise ResumeError(f"DATASET.OUTPUT_PATH {folder} holds the checkpoints of a run with other settings "
                          f"({shown}); choose another DATASET.OUTPUT_PATH, or pass --overwrite to move that run "
                          f"to {folder}.previous-N and start a new one")
    n = 1
    while os.path.exists(f"{folder}.previous-{n}"):
        n += 1
    aside = f"{folder}.previous-{n}"
    os.replace(folder, aside)
    logger.warning("%s held a run with other settings (%s): moved to %s; starting a new run", folder, shown, aside)
    return aside


def write_run_record(cfg):
    """Record the run's settings (``run.json``) and merged config (``config.yaml``), atomically."""
    from connectomics.config import save_cfg

    folder = cfg.DATASET.OUTPUT_PATH
    os.makedirs(folder, exist_ok=True)
    record = {"settings": training_settings(cfg), "inputs": training_inputs(cfg)}
    with atomic_path(os.path.join(folder, RECORD)) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    return save_cfg(cfg, folder)
