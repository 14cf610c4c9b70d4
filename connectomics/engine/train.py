"""The training config door: build everything from the config, resume, run the loop."""
import logging
import os

import torch

from connectomics.checkpoint import (latest_checkpoint, load_model_weights, new_run_id, read_checkpoint,
                                     restore_training_state, unwrap)
from connectomics.engine.distributed import (RankIndices, cleanup, init_distributed, is_main_process, per_rank_batch,
                                             wrap_model)
from connectomics.engine.hooks import CheckpointHook, LoggingHook, ValidationHook
from connectomics.engine.solver import build_lr_scheduler, build_optimizer
from connectomics.engine.trainer import Trainer
from connectomics.storage import split_names
from connectomics.utils.precision import autocast_dtype, describe, stage_mode

logger = logging.getLogger(__name__)


def select_device(cfg):
    """``torch.device`` from SYSTEM.DEVICE ('auto' = CUDA when available and NUM_GPUS > 0)."""
    if cfg.SYSTEM.NUM_THREADS:
        torch.set_num_threads(cfg.SYSTEM.NUM_THREADS)
    if cfg.SYSTEM.DEVICE == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("SYSTEM.DEVICE is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    use_cuda = cfg.SYSTEM.DEVICE == "cuda" or (
        cfg.SYSTEM.DEVICE == "auto" and torch.cuda.is_available() and cfg.SYSTEM.NUM_GPUS > 0)
    return torch.device("cuda" if use_cuda else "cpu")


def iterate_batches(cfg, start_iter, build_dataset, total=None):
    """Batches for iterations ``start_iter .. total - 1`` (default ITERATION_TOTAL).

    ``build_dataset(chunk_id)`` gives the samples of a chunk (None: whole volumes). In chunked
    mode (DATASET.DO_CHUNK_TITLE) a new chunk is loaded every DATASET.DATA_CHUNK_ITER iterations.
    Sample indices are global, so the batches do not depend on where a run was resumed.
    """
    from connectomics.data.chunks import chunk_for_period
    from connectomics.data.dataset import sample_loader

    batch, workers = cfg.SOLVER.SAMPLES_PER_BATCH, cfg.SYSTEM.NUM_CPUS
    total = cfg.SOLVER.ITERATION_TOTAL if total is None else total
    local = per_rank_batch(batch)
    if not cfg.DATASET.DO_CHUNK_TITLE:
        yield from sample_loader(build_dataset(None), local, RankIndices(start_iter, total, batch), workers)
        return
    period_len = cfg.DATASET.DATA_CHUNK_ITER
    num = cfg.DATASET.DATA_CHUNK_NUM
    ids = list(cfg.DATASET.DATA_CHUNK_NUM_IND) or list(range(num[0] * num[1] * num[2]))
    it = start_iter
    while it < total:
        period = it // period_len
        end = min(total, (period + 1) * period_len)
        chunk_id = chunk_for_period(period, ids, cfg.SYSTEM.SEED)
        logger.info("iterations %d..%d on chunk %d", it, end - 1, chunk_id)
        yield from sample_loader(build_dataset(chunk_id), local, RankIndices(it, end, batch), workers)
        it = end


def make_validator(cfg, device):
    """``validate(model) -> summary`` on DATASET.VAL_IMAGE_NAME, or None if no validation volume."""
    if not cfg.DATASET.VAL_IMAGE_NAME:
        return None
    from connectomics.data.dataset import prepare_image
    from connectomics.evaluation import build_evaluation
    from connectomics.inference import build_predictor, predict_volume
    from connectomics.postprocess import build_decoder
    from connectomics.postprocess.confidence import instance_confidence
    from connectomics.storage import read_volume

    spec = split_names(cfg.DATASET.VAL_IMAGE_NAME)[0]
    gt_spec = split_names(cfg.DATASET.VAL_LABEL_NAME)[0]
    if not has_scorable_instance(gt_spec, cfg.EVAL.CRUMB_SIZE):
        logger.warning("DATASET.VAL_LABEL_NAME %s holds no instance of at least EVAL.CRUMB_SIZE = %d voxels: "
                       "AP cannot be computed there, so training runs without validation (and best.pth.tar)",
                       gt_spec, cfg.EVAL.CRUMB_SIZE)
        return None
    image = prepare_image(read_volume(spec), spec)
    decode, evaluate = build_decoder(cfg), build_evaluation(cfg)

    def validate(model):
        predictor = build_predictor(cfg, unwrap(model), device)
        probs = predict_volume(predictor, image)
        pred = decode(probs)
        scores = instance_confidence(pred, probs) if cfg.EVAL.SCORE == "foreground" else None
        del probs
        return evaluate(gt_spec, pred, scores=scores).summary

    return validate


def has_scorable_instance(spec, crumb_size, slab_voxels=1 << 24):
    """True if the label volume ``spec`` holds an instance of at least ``crumb_size`` voxels (the
    evaluator drops smaller ground truth); read in z-slabs, so memory stays bounded."""
    import fastremap
    import numpy as np

    from connectomics.storage import open_volume

    sizes = {}
    with open_volume(spec) as labels:
        shape = labels.shape[-3:]
        lead = (0,) * (len(labels.shape) - 3)
        step = max(1, slab_voxels // max(1, int(np.prod(shape[1:]))))
        for z in range(0, shape[0], step):
            ids, counts = fastremap.unique(np.asarray(labels[lead + (slice(z, z + step),)]), return_counts=True)
            for i, n in zip(ids.tolist(), counts.tolist()):
                if i:
                    sizes[i] = sizes.get(i, 0) + n
                    if sizes[i] >= max(1, crumb_size):
                        return True
    return False


def _tensorboard(cfg, folder):
    if not cfg.MONITOR.LOG_OPT[1]:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(os.path.join(folder, "tensorboard"))


def _resume(cfg, checkpoint, model, optimizer, scheduler, scaler):
    """Load the starting state; return ``(iteration to start at, run id, time-budget plan or None)``
    (the resumed checkpoint's run id and plan, or a new id for a run that starts from scratch or
    other weights).

    The output folder's own newest checkpoint wins when ``checkpoint`` is None, and also
    under SOLVER.ITERATION_RESTART: a restarted run that has saved checkpoints resumes them
    when the same command is run again (after a kill), instead of restarting once more.
    """
    folder = cfg.DATASET.OUTPUT_PATH
    own, restart = latest_checkpoint(folder), cfg.SOLVER.ITERATION_RESTART
    if restart and own:
        logger.info("SOLVER.ITERATION_RESTART: %s already holds checkpoints of this run; resuming %s "
                    "(use another DATASET.OUTPUT_PATH to restart again)", folder, own)
        checkpoint, restart = own, False
    elif checkpoint is None and not restart:
        checkpoint = own
        if checkpoint:
            logger.info("resuming from the latest checkpoint in the output folder: %s", checkpoint)
    if checkpoint:
        state = read_checkpoint(checkpoint)
        load_model_weights(model, state, cfg.MODEL.ARCHITECTURE, checkpoint)
        start = restore_training_state(state, optimizer, scheduler, scaler, restart, model)
        if restart:
            return start, new_run_id(), None
        return start, state.get("run_id") or new_run_id(), state.get("budget")
    if cfg.MODEL.PRE_MODEL:
        state = read_checkpoint(cfg.MODEL.PRE_MODEL, bare=True)
        load_model_weights(model, state, cfg.MODEL.ARCHITECTURE, cfg.MODEL.PRE_MODEL)
        made_with = state.get("made_with")
        logger.info("starting from the weights %s%s", cfg.MODEL.PRE_MODEL, f" ({made_with})" if made_with else "")
        return cfg.MODEL.PRE_MODEL_ITER, new_run_id(), None
    return 0, new_run_id(), None


def run_training(cfg, checkpoint=None, started=None):
    """Train per ``cfg`` (resuming from ``checkpoint`` or the newest one in the output folder).

    ``started``: when the command started (``time.time()``), the origin of SOLVER.TIME_BUDGET
    (default: now). Returns the path of the last checkpoint.
    """
    from connectomics.data.dataset import build_train_dataset
    from connectomics.losses import build_criterion
    from connectomics.model import build_model

    folder = cfg.DATASET.OUTPUT_PATH
    torch.manual_seed(cfg.SYSTEM.SEED)
    device = init_distributed(select_device(cfg))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one window size: let cuDNN pick its fastest kernels
    model = build_model(cfg).to(device)
    criterion = build_criterion(cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    bf16_mode = stage_mode(cfg.SYSTEM.CPU_BF16, "train")
    dtype = autocast_dtype(device.type, cfg.SOLVER.AMP, bf16_mode)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    start, run_id, plan = _resume(cfg, checkpoint, model, optimizer, scheduler, scaler)
    if is_main_process():  # the checkpoint loaded: the run starts, its folder now describes it
        from connectomics.engine.run_folder import write_run_record

        logger.info("merged config saved to %s", write_run_record(cfg))
    budget = cfg.SOLVER.TIME_BUDGET > 0
    total = (plan or {}).get("planned_total") if budget else cfg.SOLVER.ITERATION_TOTAL
    if total is not None and start >= total:
        logger.info("training already finished (%d of %d iterations)", start, total)
        return latest_checkpoint(folder) or checkpoint
    main = is_main_process()
    writer = _tensorboard(cfg, folder) if main else None
    validate = make_validator(cfg, device) if main else None
    hooks, checkpointer = _hooks(cfg, folder, run_id, writer, validate, main)
    if budget:
        from connectomics.engine.budget import build_budget_hook

        hooks.insert(0, build_budget_hook(cfg, model, device, scheduler, total, started, validate is not None))
        checkpointer.extra = lambda: {"budget": hooks[0].state()}
        total = total or start + BUDGET_BOUND  # until planned: the loader's bound
    logger.info("training %s on %s in %s: iterations %d..%s, %d parameters", cfg.MODEL.ARCHITECTURE, device,
                describe(device.type, dtype, bf16_mode), start,
                total if not budget or plan else f"(fitted to SOLVER.TIME_BUDGET {cfg.SOLVER.TIME_BUDGET:g} min)",
                sum(p.numel() for p in model.parameters()))
    batches = iterate_batches(cfg, start, lambda chunk_id: build_train_dataset(cfg, chunk_id), total)
    model = wrap_model(model, device)
    clip = None
    if cfg.SOLVER.CLIP_GRADIENTS.ENABLED:
        c = cfg.SOLVER.CLIP_GRADIENTS
        clip = (c.CLIP_TYPE, c.CLIP_VALUE, c.NORM_TYPE)
    trainer = Trainer(model, criterion, optimizer, scheduler, batches, start, total, device,
                      cfg.SOLVER.ITERATION_STEP, clip, dtype, scaler, hooks, progress=None if main else False)
    trainer.train()
    if writer is not None:
        writer.close()
    cleanup()
    return checkpointer.last_path


BUDGET_BOUND = 10**8  # iterations the loader may serve before a time budget's plan is made


def _hooks(cfg, folder, run_id, writer, validate, main):
    """``(hooks, checkpoint hook)``: logging, checkpoints and (with a validator) validation; other
    ranks than the main one get none."""
    checkpointer = CheckpointHook(folder, cfg.SOLVER.ITERATION_SAVE, cfg.MODEL.ARCHITECTURE, run_id)
    if not main:
        return [], checkpointer
    hooks = [LoggingHook(cfg.MONITOR.ITERATION_NUM[0], writer, folder,
                         cfg.MONITOR.ITERATION_NUM[1] if cfg.MONITOR.VIS_OPT[0] else 0, cfg.MONITOR.VIS_OPT[1]),
             checkpointer]
    if validate is not None:
        from connectomics.engine.scores import score_settings, use_score_settings

        # rows of other validation settings (thresholds, ranking, volume) are moved aside, not mixed
        use_score_settings(os.path.join(folder, "validation.csv"),
                           score_settings(cfg, split_names(cfg.DATASET.VAL_IMAGE_NAME)[0],
                                          split_names(cfg.DATASET.VAL_LABEL_NAME)[0], f"run:{run_id}"))
        hooks.append(ValidationHook(cfg.SOLVER.ITERATION_VAL, validate, folder, checkpointer, writer))
    return hooks, checkpointer
