"""The inference config door: probability maps -> instances -> AP-75 report, per volume."""
import logging
import os

import numpy as np
import torch

from connectomics.config import split_names
from connectomics.engine.checkpoint import (checkpoint_iteration, latest_checkpoint, load_model_weights,
                                            read_checkpoint)
from connectomics.engine.scores import SCORES_CSV, append_score, score_settings, use_score_settings

logger = logging.getLogger(__name__)


def volume_folders(cfg):
    """``[(image_spec, gt_spec or None, output_folder)]``: one subfolder per volume when several."""
    images = split_names(cfg.INFERENCE.IMAGE_NAME)
    gts = split_names(cfg.EVAL.GT_NAME)
    if gts and len(gts) != len(images):
        raise ValueError(f"EVAL.GT_NAME names {len(gts)} volumes but INFERENCE.IMAGE_NAME names {len(images)}")
    out = cfg.INFERENCE.OUTPUT_PATH
    jobs = []
    for i, spec in enumerate(images):
        folder = out if len(images) == 1 else os.path.join(out, f"volume{i:02d}")
        jobs.append((spec, gts[i] if gts else None, folder))
    return jobs


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

    checkpoint = resolve_checkpoint(cfg, checkpoint)
    model = build_model(cfg).to(device)
    load_model_weights(model, read_checkpoint(checkpoint), cfg.MODEL.ARCHITECTURE, checkpoint)
    from connectomics.utils.precision import autocast_dtype, describe

    kind = torch.device(device).type
    dtype = autocast_dtype(kind, cfg.INFERENCE.AMP, cfg.SYSTEM.CPU_BF16)
    logger.info("inference with %s in %s", checkpoint, describe(kind, dtype, cfg.SYSTEM.CPU_BF16))
    return model, checkpoint_iteration(checkpoint)


def save_overlay(image_spec, instances_path, gt_spec, png_path, slices=4):
    """PNG of a few slices: image, predicted instances, ground truth (if any)."""
    from connectomics.data.io import open_volume
    from connectomics.data.synthetic import save_overlay_png

    with open_volume(image_spec) as vol:
        depth = vol.shape[0]
        zs = np.linspace(0, depth - 1, min(slices, depth) + 2).round().astype(int)[1:-1]
        image = np.stack([np.asarray(vol[int(z)]) for z in zs])
    labels, titles = [], ["image"]
    for spec, title in ((instances_path, "prediction"), (gt_spec, "ground truth")):
        if spec:
            with open_volume(spec) as vol:
                data = np.stack([np.asarray(vol[int(z)]) for z in zs])
            labels.append(data.reshape(image.shape))
            titles.append(title)
    save_overlay_png(image, labels, png_path, titles=titles, slices=list(range(len(zs))),
                     z_offsets=[int(z) for z in zs])
    return png_path


def run_volume(cfg, predictor, decode, image_spec, gt_spec, folder, iteration=None, overwrite=False, model=None):
    """Inference -> post-processing -> evaluation for one volume; returns the summary or None.

    ``overwrite``: replace maps / instances made with other settings (else ResumeError);
    ``model``: the checkpoint's :func:`~connectomics.engine.checkpoint.model_identity` (scores CSV).
    """
    from connectomics.inference import infer_volume_to_file
    from connectomics.postprocess import postprocess_file

    os.makedirs(folder, exist_ok=True)
    probs = os.path.join(folder, cfg.INFERENCE.OUTPUT_NAME)
    infer_volume_to_file(predictor, image_spec, probs, tuple(cfg.INFERENCE.CHUNK_SIZE), overwrite=overwrite)
    instances = os.path.join(folder, cfg.POSTPROCESS.OUTPUT_NAME)
    postprocess_file(probs, instances, decode, overwrite=overwrite)  # and instances_scores.txt
    return report_volume(cfg, image_spec, instances, gt_spec, folder, iteration, model)


def run_volume_blockwise(cfg, client, checkpoint, device, image_spec, gt_spec, folder, iteration=None,
                         overwrite=False, model=None):
    """:func:`run_volume` on Dask: zarr maps (``probs.zarr``) and blockwise post-processing."""
    from connectomics.blockwise import infer_blockwise
    from connectomics.blockwise.build import postprocess_from_cfg, zarr_name

    os.makedirs(folder, exist_ok=True)
    probs = os.path.join(folder, zarr_name(cfg.INFERENCE.OUTPUT_NAME))
    infer_blockwise(cfg, checkpoint, image_spec, probs, client, device=str(device), retries=cfg.BLOCKWISE.RETRIES,
                    overwrite=overwrite)
    instances = os.path.join(folder, cfg.POSTPROCESS.OUTPUT_NAME)
    postprocess_from_cfg(cfg, probs, instances, client, overwrite=overwrite)  # and instances_scores.txt
    return report_volume(cfg, image_spec, instances, gt_spec, folder, iteration, model)


def report_volume(cfg, image_spec, instances, gt_spec, folder, iteration=None, model=None):
    """Overlay PNG, then AP-75 (table, reports, scores CSV row) if there is ground truth; the summary or None.

    EVAL.SCORE foreground ranks the predictions by the score file post-processing wrote beside
    ``instances`` (mean foreground probability); size by voxel count. The other ranking's AP is
    reported too (same matching pass; table, eval.json). The scores CSV row is
    keyed by ``model`` (the training run) besides the settings, so one table never mixes runs.
    """
    from connectomics.evaluation import evaluate_volumes, format_table, write_reports
    from connectomics.postprocess.confidence import scores_path

    logger.info("instances: %s", instances)
    save_overlay(image_spec, instances, gt_spec, os.path.join(folder, "overlay.png"))
    if not gt_spec:
        return None
    confidence = scores_path(instances)
    scores = confidence if cfg.EVAL.SCORE == "foreground" else None
    other = {"size (the challenge's)": None} if scores else (
        {"confidence (mean foreground)": confidence} if os.path.exists(confidence) else {})
    result = evaluate_volumes(gt_spec, instances, scores=scores, area_thresholds=tuple(cfg.EVAL.AREA_THRESHOLDS),
                              crumb_size=cfg.EVAL.CRUMB_SIZE, chunk_slices=cfg.EVAL.CHUNK_SLICES,
                              other_rankings=other)
    result.notes.append(score_note(cfg.EVAL.SCORE))
    write_reports(result, os.path.join(folder, cfg.EVAL.OUTPUT_PREFIX), iteration=iteration)
    print(format_table(result), flush=True)
    if iteration is not None:
        csv_path = os.path.join(folder, SCORES_CSV)
        use_score_settings(csv_path, score_settings(cfg, image_spec, gt_spec, model))
        append_score(csv_path, iteration, result.summary)
    return result.summary


def score_note(score):
    """The report line that says how predictions were ranked (EVAL.SCORE)."""
    if score == "foreground":
        return "predictions ranked by mean foreground probability (EVAL.SCORE foreground; the challenge ranks by size)"
    return "predictions ranked by voxel count (EVAL.SCORE size, as the challenge)"


def check_decoder(cfg, blockwise=False):
    """Raise ConfigError (printed without a traceback) if ``cfg.POSTPROCESS`` names an unknown decoder
    or a bad value, or, with ``blockwise``, a decoder / SMALL_MODE that has no blockwise form."""
    from connectomics.config import ConfigError
    from connectomics.postprocess.build import decoder_params

    try:
        name, params = decoder_params(cfg)
        if blockwise:
            from connectomics.blockwise.postprocess import check_blockwise

            check_blockwise(name, params)
    except ValueError as err:
        raise ConfigError(f"{err}{' (--scheduler: blockwise post-processing)' if blockwise else ''}") from None


def check_output_names(cfg, blockwise=False):
    """Raise ConfigError unless the output names can be written: HDF5 maps and instances in one
    process; with ``blockwise`` the maps are always zarr and the instances HDF5 or zarr."""
    from connectomics.config import ConfigError
    from connectomics.data.io import H5_EXTENSIONS, ZARR_EXTENSIONS, parse_spec

    instances = parse_spec(cfg.POSTPROCESS.OUTPUT_NAME)[0]  # 'instances.h5:key' names a dataset
    names = [("POSTPROCESS.OUTPUT_NAME", instances, H5_EXTENSIONS + ZARR_EXTENSIONS * blockwise)]
    if not blockwise:
        names.insert(0, ("INFERENCE.OUTPUT_NAME", cfg.INFERENCE.OUTPUT_NAME, H5_EXTENSIONS))
    for key, name, allowed in names:
        if not name.lower().endswith(allowed):
            raise ConfigError(f"config key {key} = {name!r}: must end with {' / '.join(allowed)}"
                              f"{'' if blockwise else ' (zarr outputs need --scheduler)'}")


def owns_outputs(cfg):
    """True when INFERENCE.OUTPUT_PATH lies inside DATASET.OUTPUT_PATH (its default).

    Results there belong to that training run and follow its newest model: maps and instances
    made with other settings (another model, changed input, other thresholds) are replaced.
    Results elsewhere were named by the user and are protected: a run that would replace them
    is refused before any work, unless ``--overwrite``.
    """
    run = os.path.abspath(cfg.DATASET.OUTPUT_PATH)
    out = os.path.abspath(cfg.INFERENCE.OUTPUT_PATH)
    return os.path.commonpath([run, out]) == run


def run_inference(cfg, checkpoint=None, device=None, overwrite=False, scheduler=None, save_config=True):
    """Segment every INFERENCE.IMAGE_NAME volume; returns ``[summary or None, ...]``.

    With a scheduler (``scheduler`` or SYSTEM.SCHEDULER) the volumes run blockwise on Dask.
    Outputs made otherwise are replaced with ``overwrite`` or inside the run folder
    (:func:`owns_outputs`); elsewhere they are refused before any inference starts. The merged
    config is saved to INFERENCE.OUTPUT_PATH once the run is known to start (``save_config``).
    """
    from connectomics.blockwise.build import connect_from_cfg, use_blockwise
    from connectomics.engine.checkpoint import model_identity
    from connectomics.engine.outputs import check_protected_outputs
    from connectomics.engine.train import select_device
    from connectomics.inference import build_predictor
    from connectomics.postprocess import build_decoder

    blockwise = use_blockwise(cfg, scheduler)
    check_decoder(cfg, blockwise)  # a bad POSTPROCESS key fails now, not after the whole inference
    check_output_names(cfg, blockwise)
    replace = overwrite or owns_outputs(cfg)
    device = device or select_device(cfg)
    checkpoint = resolve_checkpoint(cfg, checkpoint)
    model = model_identity(checkpoint)
    jobs = volume_folders(cfg)
    if blockwise:
        iteration = checkpoint_iteration(checkpoint)
        if not replace:
            check_protected_outputs(cfg, jobs, checkpoint=checkpoint, device=device)
        _save_config(cfg, save_config)
        with connect_from_cfg(cfg, scheduler) as client:
            return [run_volume_blockwise(cfg, client, checkpoint, device, image, gt, folder, iteration, replace, model)
                    for image, gt, folder in jobs]
    net, iteration = load_inference_model(cfg, checkpoint, device)
    predictor = build_predictor(cfg, net, device)
    decode = build_decoder(cfg)
    if not replace:
        check_protected_outputs(cfg, jobs, predictor=predictor, decode=decode)
    _save_config(cfg, save_config)
    return [run_volume(cfg, predictor, decode, image, gt, folder, iteration, replace, model)
            for image, gt, folder in jobs]


def _save_config(cfg, save):
    if save:
        from connectomics.config import save_cfg

        path = save_cfg(cfg, cfg.INFERENCE.OUTPUT_PATH)
        logger.info("merged config saved to %s", path)
