"""Checks that run before training or inference starts: what can fail later is made to fail now.

From metadata: input files exist, output folders can be written, inference volumes are 3D uint8
or float and have the ground truth's shape, slice stacks have one slice shape, the decoder and
output names are valid, protected results would not be replaced. Scans, where a scan is the only
way: a float input's value range (one streaming pass, much cheaper than the inference it saves).
Every failure is a ConfigError / VolumeError / ResumeError naming the key, file and value.
"""
import logging
import os
import tempfile

import numpy as np
from tqdm import tqdm

from connectomics.config import ConfigError, check_input_files
from connectomics.storage import VolumeError, open_volume, split_names

logger = logging.getLogger(__name__)

SCAN_VOXELS = 1 << 24  # voxels per slab of the float range scan


def check_writable_folder(path, key):
    """Create ``path`` (a folder) if needed and write a test file there; ConfigError if that fails."""
    existing = path
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing and not os.path.isdir(existing):
        raise ConfigError(f"config key {key} = {path}: {existing} is a file, not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ConfigError(f"config key {key} = {path}: cannot write there ({err.strerror or err})") from None


def check_image_stack(volume, name):
    """VolumeError if the slices of a lazily read stack differ in shape (read from the file headers)."""
    check = getattr(volume, "check_slices", None)
    if check is not None:
        check()


def scan_float_range(volume, name):
    """VolumeError unless a float volume's values lie in [0, 1] (uint8: nothing to scan)."""
    if np.dtype(volume.dtype) == np.uint8:
        return
    depth, plane = volume.shape[0], int(np.prod(volume.shape[1:]))
    step = max(1, SCAN_VOXELS // max(plane, 1))
    lo, hi = np.inf, -np.inf
    for z in tqdm(range(0, depth, step), unit="slab", desc="checking input range", disable=None, leave=False):
        slab = np.asarray(volume[z:z + step])
        lo, hi = min(lo, float(np.min(slab))), max(hi, float(np.max(slab)))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise VolumeError(f"{name}: float inference input must lie in [0, 1], found values in "
                              f"[{lo:g}, {hi:g}] by slice {min(z + step, depth)}; store the image as uint8 "
                              "(0..255) or divide it by its maximum")


def check_inference_volumes(cfg):
    """Every INFERENCE.IMAGE_NAME volume can be segmented, and its EVAL.GT_NAME has its shape."""
    from connectomics.engine.outputs import volume_folders
    from connectomics.inference.predictor import check_volume

    try:
        jobs = volume_folders(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for image, gt, _ in jobs:
        with open_volume(image) as volume:
            check_volume(volume, f"INFERENCE.IMAGE_NAME {image}")
            check_image_stack(volume, image)
            scan_float_range(volume, f"INFERENCE.IMAGE_NAME {image}")
            shape = tuple(volume.shape)
        if gt:
            with open_volume(gt) as labels:
                gt_shape = tuple(labels.shape)
                check_image_stack(labels, gt)
            squeezed = gt_shape[1:] if len(gt_shape) == 4 and gt_shape[0] == 1 else gt_shape
            if squeezed != shape:
                raise VolumeError(f"EVAL.GT_NAME {gt} has shape {gt_shape}, its image {image} has {shape}: "
                                  "the ground truth must cover the image voxel for voxel")


def preflight(cfg, mode, overwrite=False, scheduler=None):
    """Everything that can be checked before ``mode`` ('train' or 'test') starts its work."""
    from connectomics.blockwise.build import use_blockwise
    from connectomics.engine.infer import check_decoder, check_output_names
    from connectomics.engine.outputs import check_outputs_before_training

    check_input_files(cfg, mode)
    infer = mode == "test" or bool(cfg.SYSTEM.INFER_AFTER_TRAIN and cfg.INFERENCE.IMAGE_NAME)
    if mode == "train":
        check_writable_folder(cfg.DATASET.OUTPUT_PATH, "DATASET.OUTPUT_PATH")
        for spec in split_names(cfg.DATASET.IMAGE_NAME) + split_names(cfg.DATASET.LABEL_NAME):
            with open_volume(spec) as volume:
                check_image_stack(volume, spec)
    if infer:
        if mode == "train":
            check_input_files(cfg, "test")
        check_writable_folder(cfg.INFERENCE.OUTPUT_PATH, "INFERENCE.OUTPUT_PATH")
        blockwise = use_blockwise(cfg, scheduler)
        check_decoder(cfg, blockwise)
        check_output_names(cfg, blockwise)
        check_inference_volumes(cfg)
    if mode == "train":
        check_outputs_before_training(cfg, overwrite)
