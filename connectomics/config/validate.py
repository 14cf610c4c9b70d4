"""Up-front checks of config values: each error names the key, the value and the rule."""
import glob
import os
import re
import time

from connectomics.data.targets import WEIGHT_CODES, parse_weight_opt, target_channels, target_of
from connectomics.storage import split_names

_LOSSES = ("WeightedBCE", "DiceLoss")
# valid MODEL.* names, spelled out so that loading a config needs no torch import; tests/test_config.py
# checks them against connectomics.model (MODEL_REGISTRY, blocks.NORMS / ACTIVATIONS / PAD_MODES)
MODEL_NAMES = {
    "ARCHITECTURE": ("rsunet", "unet_residual_3d"),
    "NORM_MODE": ("none", "bn", "gn", "in"),
    "ACT_MODE": ("elu", "relu", "leaky_relu"),
    "PAD_MODE": ("zeros", "rep", "replicate", "reflect", "circular"),
}


SCORES = ("size", "foreground")  # EVAL.SCORE: voxel count (the challenge) | mean foreground probability


def _fail(key, value, rule):
    raise ValueError(f"config key {key} = {value!r}: {rule}")


def _check_size(key, value, divisible_yx):
    if len(value) != 3 or any(not isinstance(v, int) or v < 1 for v in value):
        _fail(key, value, "expected three positive integers (z, y, x)")
    if divisible_yx and (value[1] % 16 or value[2] % 16):
        _fail(key, value, "y and x must be divisible by 16 for the U-Nets (four (1,2,2) poolings)")


def _validate_model(m):
    _check_size("MODEL.INPUT_SIZE", list(m.INPUT_SIZE), divisible_yx=True)
    if list(m.OUTPUT_SIZE) != list(m.INPUT_SIZE):
        _fail("MODEL.OUTPUT_SIZE", m.OUTPUT_SIZE, f"must equal MODEL.INPUT_SIZE {list(m.INPUT_SIZE)}")
    for code in m.TARGET_OPT:
        try:
            target_of(code)
        except ValueError as err:
            _fail("MODEL.TARGET_OPT", list(m.TARGET_OPT), str(err))
    n = len(m.TARGET_OPT)
    for key in ("WEIGHT_OPT", "LOSS_OPTION", "LOSS_WEIGHT"):
        if len(m[key]) != n:
            _fail(f"MODEL.{key}", m[key], f"needs one entry per target ({n} targets in MODEL.TARGET_OPT)")
    for i, (losses, weights) in enumerate(zip(m.LOSS_OPTION, m.LOSS_WEIGHT)):
        if len(losses) != len(weights):
            _fail("MODEL.LOSS_WEIGHT", m.LOSS_WEIGHT, f"target {i} has {len(losses)} losses but {len(weights)} weights")
        valid = target_of(m.TARGET_OPT[i])[0].losses if i < len(m.TARGET_OPT) else _LOSSES
        for name in losses:
            if name not in _LOSSES:
                _fail("MODEL.LOSS_OPTION", m.LOSS_OPTION, f"unknown loss {name!r}; valid: {', '.join(_LOSSES)}")
            if name not in valid:
                _fail("MODEL.LOSS_OPTION", m.LOSS_OPTION,
                      f"loss {name!r} does not apply to target {m.TARGET_OPT[i]!r}; valid: {', '.join(valid)}")
    for codes in m.WEIGHT_OPT:
        for code in codes:
            try:
                parse_weight_opt(code)
            except ValueError:
                _fail("MODEL.WEIGHT_OPT", m.WEIGHT_OPT, f"unknown weight code {code!r}; valid: {', '.join(WEIGHT_CODES)}")
    channels = sum(target_channels(t) for t in m.TARGET_OPT)
    if m.OUT_PLANES != channels:
        _fail("MODEL.OUT_PLANES", m.OUT_PLANES, f"MODEL.TARGET_OPT {list(m.TARGET_OPT)} gives {channels} channels")
    if len(m.FILTERS) < 2:
        _fail("MODEL.FILTERS", m.FILTERS, "needs at least two levels")
    if m.CONV_Z not in (1, 3):
        _fail("MODEL.CONV_Z", m.CONV_Z, "must be 3 (3D convs) or 1 (a 2D network on each slice)")
    if m.CONV_Z != 3 and m.ARCHITECTURE != "unet_residual_3d":
        _fail("MODEL.CONV_Z", m.CONV_Z, f"only MODEL.ARCHITECTURE unet_residual_3d has it, not {m.ARCHITECTURE!r}")
    _validate_model_names(m)


def _validate_model_names(m):
    """Architecture, normalisation, activation and padding names, checked before any data is made."""
    for key, valid in MODEL_NAMES.items():
        if m[key] not in valid:
            _fail(f"MODEL.{key}", m[key], f"valid: {', '.join(valid)}")


def _validate_inference(inf):
    _check_size("INFERENCE.INPUT_SIZE", list(inf.INPUT_SIZE), divisible_yx=True)
    if list(inf.OUTPUT_SIZE) != list(inf.INPUT_SIZE):
        _fail("INFERENCE.OUTPUT_SIZE", inf.OUTPUT_SIZE, f"must equal INFERENCE.INPUT_SIZE {list(inf.INPUT_SIZE)}")
    _check_size("INFERENCE.STRIDE", list(inf.STRIDE), divisible_yx=False)
    for axis, (s, w) in enumerate(zip(inf.STRIDE, inf.INPUT_SIZE)):
        if s > w:
            _fail("INFERENCE.STRIDE", inf.STRIDE,
                  f"stride {s} on axis {'zyx'[axis]} is larger than the window {w} (voxels would be skipped)")
    _check_size("INFERENCE.CHUNK_SIZE", list(inf.CHUNK_SIZE), divisible_yx=False)
    if len(inf.PAD_SIZE) != 3 or any(p < 0 for p in inf.PAD_SIZE):
        _fail("INFERENCE.PAD_SIZE", inf.PAD_SIZE, "expected three non-negative integers")
    if inf.AUG_NUM not in (0, 4, 16):
        _fail("INFERENCE.AUG_NUM", inf.AUG_NUM, "must be 0, 4 or 16")
    if inf.AUG_MODE not in ("mean", "min", "max"):
        _fail("INFERENCE.AUG_MODE", inf.AUG_MODE, "must be mean, min or max")
    if inf.BLENDING not in ("gaussian", "bump"):
        _fail("INFERENCE.BLENDING", inf.BLENDING, "must be gaussian or bump")
    if inf.SAMPLES_PER_BATCH < 1:
        _fail("INFERENCE.SAMPLES_PER_BATCH", inf.SAMPLES_PER_BATCH, "must be at least 1")


def _validate_solver(s):
    for key in ("ITERATION_TOTAL", "ITERATION_SAVE", "ITERATION_STEP", "ITERATION_VAL", "SAMPLES_PER_BATCH"):
        if s[key] < 1:
            _fail(f"SOLVER.{key}", s[key], "must be at least 1")
    if s.TIME_BUDGET < 0:
        _fail("SOLVER.TIME_BUDGET", s.TIME_BUDGET, "must be >= 0 minutes (0: train SOLVER.ITERATION_TOTAL iterations)")
    if s.TIME_BUDGET > 0 and s.LR_SCHEDULER_NAME != "WarmupCosineLR":
        _fail("SOLVER.TIME_BUDGET", s.TIME_BUDGET, "needs SOLVER.LR_SCHEDULER_NAME WarmupCosineLR (a schedule that "
              f"stretches to the planned length), not {s.LR_SCHEDULER_NAME}")
    if s.ITERATION_TOTAL % s.ITERATION_STEP:
        _fail("SOLVER.ITERATION_TOTAL", s.ITERATION_TOTAL, f"must be a multiple of SOLVER.ITERATION_STEP "
              f"({s.ITERATION_STEP}): the gradients of the last iterations would never be applied")
    if s.BASE_LR <= 0:
        _fail("SOLVER.BASE_LR", s.BASE_LR, "must be positive")
    if s.NAME not in ("Adam", "AdamW", "SGD"):
        _fail("SOLVER.NAME", s.NAME, "must be Adam, AdamW or SGD")
    if s.LR_SCHEDULER_NAME not in ("MultiStepLR", "WarmupMultiStepLR", "WarmupCosineLR"):
        _fail("SOLVER.LR_SCHEDULER_NAME", s.LR_SCHEDULER_NAME, "must be MultiStepLR, WarmupMultiStepLR or WarmupCosineLR")
    if s.WARMUP_METHOD not in ("linear", "constant"):
        _fail("SOLVER.WARMUP_METHOD", s.WARMUP_METHOD, "must be linear or constant")
    if s.CLIP_GRADIENTS.CLIP_TYPE not in ("value", "norm"):
        _fail("SOLVER.CLIP_GRADIENTS.CLIP_TYPE", s.CLIP_GRADIENTS.CLIP_TYPE, "must be value or norm")


def _validate_monitor(mon):
    if len(mon.ITERATION_NUM) != 2 or any(not isinstance(n, int) or n < 1 for n in mon.ITERATION_NUM):
        _fail("MONITOR.ITERATION_NUM", mon.ITERATION_NUM, "expected two positive integers [log every N, montage every M]")
    for key in ("LOG_OPT", "VIS_OPT"):
        if len(mon[key]) < 2:
            _fail(f"MONITOR.{key}", mon[key], "too few entries (see connectomics/config/defaults.py)")


def _validate_dataset(d):
    """Training-data keys: padding, scale, masks, validation pair and chunk mode."""
    if len(d.PAD_SIZE) != 3 or any(p < 0 for p in d.PAD_SIZE):
        _fail("DATASET.PAD_SIZE", d.PAD_SIZE, "expected three non-negative integers")
    if len(d.DATA_SCALE) != 3 or any(s <= 0 for s in d.DATA_SCALE):
        _fail("DATASET.DATA_SCALE", d.DATA_SCALE, "expected three positive zoom factors (z, y, x)")
    if d.VOXEL_SIZE and (len(d.VOXEL_SIZE) != 3 or min(float(v) for v in d.VOXEL_SIZE) <= 0):
        _fail("DATASET.VOXEL_SIZE", d.VOXEL_SIZE, "expected three positive sizes in nm (z, y, x), or [] to read them "
              "from the input files")
    images, labels = split_names(d.IMAGE_NAME), split_names(d.LABEL_NAME)
    if labels and len(labels) != len(images):
        _fail("DATASET.LABEL_NAME", d.LABEL_NAME, f"needs one label per image ({len(images)} images)")
    masks = split_names(d.VALID_MASK_NAME)
    if masks and len(masks) != len(images):
        _fail("DATASET.VALID_MASK_NAME", d.VALID_MASK_NAME, f"needs one mask per image ({len(images)} images)")
    if d.VAL_IMAGE_NAME and not d.VAL_LABEL_NAME:
        _fail("DATASET.VAL_LABEL_NAME", d.VAL_LABEL_NAME,
              f"DATASET.VAL_IMAGE_NAME {d.VAL_IMAGE_NAME} is set: training-time validation needs its ground truth "
              "(or set DATASET.VAL_IMAGE_NAME to '' to turn validation off)")
    if d.DO_CHUNK_TITLE:
        if d.DATA_CHUNK_ITER < 1:
            _fail("DATASET.DATA_CHUNK_ITER", d.DATA_CHUNK_ITER, "must be at least 1")
        if len(d.DATA_CHUNK_NUM) != 3 or any(not isinstance(n, int) or n < 1 for n in d.DATA_CHUNK_NUM):
            _fail("DATASET.DATA_CHUNK_NUM", d.DATA_CHUNK_NUM, "expected three positive integers (z, y, x)")
        count = d.DATA_CHUNK_NUM[0] * d.DATA_CHUNK_NUM[1] * d.DATA_CHUNK_NUM[2]
        if any(not isinstance(i, int) or not 0 <= i < count for i in d.DATA_CHUNK_NUM_IND):
            _fail("DATASET.DATA_CHUNK_NUM_IND", d.DATA_CHUNK_NUM_IND, f"chunk ids must lie in 0..{count - 1}")


def _validate_eval(e):
    if len(e.AREA_THRESHOLDS) != 2 or not 0 < e.AREA_THRESHOLDS[0] < e.AREA_THRESHOLDS[1]:
        _fail("EVAL.AREA_THRESHOLDS", e.AREA_THRESHOLDS, "expected two increasing positive sizes")
    if e.CHUNK_SLICES < 1:
        _fail("EVAL.CHUNK_SLICES", e.CHUNK_SLICES, "must be >= 1 (slices read at a time)")
    if e.CRUMB_SIZE < 0:
        _fail("EVAL.CRUMB_SIZE", e.CRUMB_SIZE, "must be >= 0 (voxels)")
    if e.SCORE not in SCORES:
        _fail("EVAL.SCORE", e.SCORE, f"must be {' or '.join(SCORES)} (how predictions are ranked)")


def _validate_augmentor(aug):
    """Every AUGMENTOR.<NAME>.P is a probability."""
    for name, node in aug.items():
        if isinstance(node, dict) and "P" in node and not 0.0 <= node["P"] <= 1.0:
            _fail(f"AUGMENTOR.{name}.P", node["P"], "is a probability: expected a value in [0, 1]")


def _validate_postprocess(p):
    for key in ("SEED_THRESHOLD", "CONTOUR_THRESHOLD", "FOREGROUND_THRESHOLD", "MERGE_THRESHOLD"):
        if not 0.0 <= p[key] <= 1.0:
            _fail(f"POSTPROCESS.{key}", p[key], "is a fraction of 1 (applied as int(255 * t) to uint8 maps)")
    for key in ("CONNECTIVITY", "SEED_CONNECTIVITY"):
        if p[key] not in (6, 26):
            _fail(f"POSTPROCESS.{key}", p[key], "must be 6 or 26")
    if p.SMALL_MODE not in ("background", "neighbor"):
        _fail("POSTPROCESS.SMALL_MODE", p.SMALL_MODE, "must be background or neighbor")
    if p.MIN_SIZE < 0:
        _fail("POSTPROCESS.MIN_SIZE", p.MIN_SIZE, "must be >= 0")


INPROCESS, LOCAL = "inprocess", "local"  # SYSTEM.SCHEDULER: Dask in this process / a local cluster
_ADDRESS = re.compile(r"^((tcp|tls|ucx|inproc)://)?[\w.\-\[\]:]+:\d+$")


def check_scheduler(scheduler):
    """Raise ValueError unless ``scheduler`` is '', 'inprocess', 'local' or a scheduler address."""
    if scheduler in ("", INPROCESS, LOCAL) or _ADDRESS.match(str(scheduler)):
        return scheduler
    raise ValueError(f"expected '' (no Dask), '{INPROCESS}', '{LOCAL}' or a scheduler address such as "
                     "tcp://host:8786")


def _validate_blockwise(b, scheduler):
    try:
        check_scheduler(scheduler)
    except ValueError as err:
        _fail("SYSTEM.SCHEDULER", scheduler, str(err))
    _check_size("BLOCKWISE.BLOCK_SIZE", list(b.BLOCK_SIZE), divisible_yx=False)
    if len(b.HALO) != 3 or any(int(h) != h or h < 0 for h in b.HALO):
        _fail("BLOCKWISE.HALO", b.HALO, "expected three non-negative integers (z, y, x)")
    for key, low in (("WORKERS", 0), ("THREADS_PER_WORKER", 1), ("RETRIES", 0)):
        if b[key] < low:
            _fail(f"BLOCKWISE.{key}", b[key], f"must be >= {low}")


def validate_cfg(cfg):
    """Raise ValueError naming the first bad key; return None when all is well."""
    _validate_model(cfg.MODEL)
    _validate_blockwise(cfg.BLOCKWISE, cfg.SYSTEM.SCHEDULER)
    _validate_inference(cfg.INFERENCE)
    _validate_solver(cfg.SOLVER)
    _validate_postprocess(cfg.POSTPROCESS)
    _validate_monitor(cfg.MONITOR)
    _validate_dataset(cfg.DATASET)
    if not cfg.MEASURE.OUTPUT_NAME.endswith(".csv") or os.sep in cfg.MEASURE.OUTPUT_NAME:
        _fail("MEASURE.OUTPUT_NAME", cfg.MEASURE.OUTPUT_NAME, "expected a file name ending in .csv (written beside "
              "the instances; the PNG takes its name)")
    if cfg.DATASET.DO_2D and cfg.MODEL.INPUT_SIZE[0] != 1:
        _fail("DATASET.DO_2D", cfg.DATASET.DO_2D, f"2D windows need MODEL.INPUT_SIZE z = 1, got {cfg.MODEL.INPUT_SIZE}")
    _validate_eval(cfg.EVAL)
    _validate_augmentor(cfg.AUGMENTOR)
    if cfg.SYSTEM.DEVICE not in ("auto", "cpu", "cuda"):
        _fail("SYSTEM.DEVICE", cfg.SYSTEM.DEVICE, "must be auto, cpu or cuda")
    if cfg.SYSTEM.CPU_BF16 not in ("", "auto", "on", "off"):
        _fail("SYSTEM.CPU_BF16", cfg.SYSTEM.CPU_BF16, "must be '' (training float32, inference auto), auto, on or off")


def _missing(key, spec):
    from connectomics.storage import parse_spec

    path = parse_spec(spec)[0]
    unset = re.findall(r"\$\{?(\w+)\}?", path)
    if unset:
        return f"config key {key}: environment variable {unset[0]} is not set (path {path})"
    if any(c in path for c in "*?["):  # a glob of image slices (see connectomics.storage.read_image_stack)
        return None if glob.glob(path) else f"config key {key}: no input files match {path}"
    return None if os.path.exists(path) else f"config key {key}: input file not found: {path}"


def check_input_files(cfg, mode, wait_seconds=0):
    """Raise FileNotFoundError if a file needed for ``mode`` ('train' or 'test') is missing.

    ``wait_seconds``: keep checking that long for files another process is still writing.
    """
    deadline = time.time() + wait_seconds
    while True:
        try:
            return _check_input_files(cfg, mode)
        except FileNotFoundError:
            if time.time() >= deadline:
                raise
            time.sleep(1)


def _check_input_files(cfg, mode):
    keys = ["INFERENCE.IMAGE_NAME", "EVAL.GT_NAME"] if mode == "test" else [
        "DATASET.IMAGE_NAME", "DATASET.LABEL_NAME", "DATASET.VALID_MASK_NAME",
        "DATASET.VAL_IMAGE_NAME", "DATASET.VAL_LABEL_NAME", "MODEL.PRE_MODEL"]
    if mode == "train" and not cfg.DATASET.IMAGE_NAME:
        raise FileNotFoundError("config key DATASET.IMAGE_NAME is empty: name the training volume(s)")
    if mode == "test" and not cfg.INFERENCE.IMAGE_NAME:
        raise FileNotFoundError("config key INFERENCE.IMAGE_NAME is empty: name the volume(s) to segment")
    for key in keys:
        section, name = key.split(".")
        for spec in split_names(cfg[section][name]):
            problem = _missing(key, spec)
            if problem:
                raise FileNotFoundError(problem)
