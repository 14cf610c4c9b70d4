"""Where a volume is segmented: in this process, or block by block on Dask. Everything around it
(which volumes, the protected-output check, reports, the scores table, a checkpoint series) is
one path for both, which only calls the runner it is handed.

A runner is made for one checkpoint (:func:`make_runner`) and offers ``outputs(folder)`` (the
maps and instances it writes there), ``check_protected(jobs)`` (ResumeError before any work if
a run would replace results of other settings) and ``segment(image, folder, overwrite, attrs)`` (maps
and instances, plus the instances' confidence table; returns the instances' path). A Dask
runner's client comes from :func:`connect` (None in this process: also the 'inprocess'
scheduler).
"""
import contextlib
import logging
import os

import torch

from connectomics.checkpoint import checkpoint_iteration, latest_checkpoint, load_model_weights, read_checkpoint
from connectomics.engine.outputs import check_protected_outputs, output_names

logger = logging.getLogger(__name__)


def resolve_checkpoint(cfg, checkpoint):
    """``checkpoint``, or the newest one in DATASET.OUTPUT_PATH; FileNotFoundError if there is none."""
    checkpoint = checkpoint or latest_checkpoint(cfg.DATASET.OUTPUT_PATH)
    if not checkpoint:
        raise FileNotFoundError(
            f"no --checkpoint given and no checkpoint_*.pth.tar in DATASET.OUTPUT_PATH {cfg.DATASET.OUTPUT_PATH}")
    return checkpoint


def load_inference_model(cfg, checkpoint, device):
    """The model with the checkpoint's weights, in eval mode; the checkpoint's iteration."""
    from connectomics.model import build_model
    from connectomics.utils.precision import autocast_dtype, describe, stage_mode

    checkpoint = resolve_checkpoint(cfg, checkpoint)
    model = build_model(cfg).to(device)
    load_model_weights(model, read_checkpoint(checkpoint), cfg.MODEL.ARCHITECTURE, checkpoint)
    kind = torch.device(device).type
    mode = stage_mode(cfg.SYSTEM.CPU_BF16, "inference")
    dtype = autocast_dtype(kind, cfg.INFERENCE.AMP, mode)
    logger.info("inference with %s in %s", checkpoint, describe(kind, dtype, mode))
    return model, checkpoint_iteration(checkpoint)


class LocalRunner:
    """In this process: HDF5 maps (INFERENCE.OUTPUT_NAME) and instances; the model is loaded here."""

    blockwise = False

    def __init__(self, cfg, checkpoint, device):
        from connectomics.inference import build_predictor
        from connectomics.postprocess import build_decoder

        self.cfg = cfg
        model, self.iteration = load_inference_model(cfg, checkpoint, device)
        self.predictor = build_predictor(cfg, model, device)
        self.decode = build_decoder(cfg)

    def outputs(self, folder):
        return output_names(self.cfg, folder, blockwise=False)

    def check_protected(self, jobs):
        check_protected_outputs(self.cfg, jobs, predictor=self.predictor, decode=self.decode)

    def segment(self, image, folder, overwrite=False, attrs=None):
        from connectomics.inference import infer_volume_to_file
        from connectomics.postprocess import postprocess_file

        maps, instances = self.outputs(folder)
        os.makedirs(folder, exist_ok=True)
        infer_volume_to_file(self.predictor, image, maps, tuple(self.cfg.INFERENCE.CHUNK_SIZE), overwrite=overwrite,
                             attrs=attrs)
        postprocess_file(maps, instances, self.decode, overwrite=overwrite, attrs=attrs)  # and instances_scores.txt
        return instances


class DaskRunner:
    """Block by block on the Dask ``client`` (None: in this process): zarr maps (``probs.zarr``),
    blockwise post-processing into INFERENCE / POSTPROCESS.OUTPUT_NAME."""

    blockwise = True

    def __init__(self, cfg, checkpoint, device, client=None):
        self.cfg, self.checkpoint, self.device, self.client = cfg, resolve_checkpoint(cfg, checkpoint), device, client
        self.iteration = checkpoint_iteration(self.checkpoint)

    def outputs(self, folder):
        return output_names(self.cfg, folder, blockwise=True)

    def check_protected(self, jobs):
        check_protected_outputs(self.cfg, jobs, checkpoint=self.checkpoint, device=self.device)

    def segment(self, image, folder, overwrite=False, attrs=None):
        from connectomics.blockwise import infer_blockwise
        from connectomics.blockwise.build import postprocess_from_cfg

        maps, instances = self.outputs(folder)
        os.makedirs(folder, exist_ok=True)
        infer_blockwise(self.cfg, self.checkpoint, image, maps, self.client, device=str(self.device),
                        retries=self.cfg.BLOCKWISE.RETRIES, overwrite=overwrite, attrs=attrs)
        postprocess_from_cfg(self.cfg, maps, instances, self.client, overwrite=overwrite,
                             attrs=attrs)  # and instances_scores.txt
        return instances


def make_runner(cfg, checkpoint, device, blockwise, client=None):
    """The runner of ``checkpoint``: :class:`DaskRunner` when ``blockwise`` (on ``client``), else
    :class:`LocalRunner`."""
    return DaskRunner(cfg, checkpoint, device, client) if blockwise else LocalRunner(cfg, checkpoint, device)


@contextlib.contextmanager
def connect(cfg, blockwise, scheduler=None):
    """The Dask client of a blockwise run (``scheduler`` or SYSTEM.SCHEDULER; None in this process),
    closed (a local cluster shut down) on exit; None without ``blockwise``."""
    if not blockwise:
        yield None
        return
    from connectomics.blockwise.build import connect_from_cfg

    with connect_from_cfg(cfg, scheduler) as client:
        yield client
