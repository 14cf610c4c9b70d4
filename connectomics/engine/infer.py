"""The inference config door: probability maps -> instances -> AP-75 report, per volume."""
import logging
import os

import numpy as np

from connectomics.engine.outputs import output_attrs, owns_outputs, volume_folders, write_image_beside
from connectomics.engine.runner import connect, make_runner, resolve_checkpoint
from connectomics.engine.scores import SCORES_CSV, score_settings, use_score_settings
from connectomics.evaluation.scores_csv import append_score

logger = logging.getLogger(__name__)


def save_overlay(image_spec, instances_path, gt_spec, png_path, slices=4):
    """PNG of a few slices: image, predicted instances, ground truth (if any)."""
    from connectomics.data.synthetic import save_overlay_png
    from connectomics.storage import open_volume

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


def run_volume(cfg, runner, image_spec, gt_spec, folder, iteration=None, overwrite=False, model=None):
    """Segment one volume with ``runner`` (:mod:`connectomics.engine.runner`), then report it
    (:func:`report_volume`: ``iteration`` given, a scores CSV row in ``folder`` too); returns the
    summary or None.

    ``overwrite``: replace maps / instances made with other settings (else ResumeError);
    ``model``: the checkpoint's :func:`~connectomics.checkpoint.model_identity` (scores CSV).
    """
    attrs = output_attrs(cfg, image_spec, gt_spec)
    instances = runner.segment(image_spec, folder, overwrite, attrs)
    write_image_beside(image_spec, instances, attrs)  # an OME-Zarr label gets its image
    measure_volume(cfg, image_spec, instances, folder, attrs, getattr(runner, "client", None))
    return report_volume(cfg, image_spec, instances, gt_spec, folder, iteration, model)


def measure_volume(cfg, image_spec, instances, folder, attrs, client=None):
    """MEASURE.ENABLED: the morphometrics table and PNG of ``instances`` in ``folder`` (remade only when
    the instances, the image or the voxel size changed); on the Dask ``client`` when given."""
    if not cfg.MEASURE.ENABLED:
        return None
    from connectomics.measure.api import measure_to_files

    maps = maps_beside(cfg, folder)
    csv_path, png, _ = measure_to_files(instances, os.path.join(folder, cfg.MEASURE.OUTPUT_NAME), image_spec, maps,
                                        attrs.get("voxel_size"), cfg.MEASURE.SKELETON, client)
    logger.info("morphometrics: %s, %s", csv_path, png)
    return csv_path


def report_volume(cfg, image_spec, instances, gt_spec, folder, iteration=None, model=None):
    """Overlay PNG, then AP-75 (table, reports, scores CSV row) if there is ground truth; the summary or None.

    EVAL.SCORE foreground ranks the predictions by the score file post-processing wrote beside
    ``instances`` (mean foreground probability); size by voxel count. The other ranking's AP is
    reported too (same matching pass; table, eval.json). The scores CSV row is
    keyed by ``model`` (the training run) besides the settings, so one table never mixes runs.
    """
    from connectomics.evaluation import build_evaluation, format_table, write_reports
    from connectomics.postprocess.confidence import scores_path
    from connectomics.storage.voxel import read_voxel_size
    from connectomics.viewer import view_command

    logger.info("instances: %s", instances)
    save_overlay(image_spec, instances, gt_spec, os.path.join(folder, "overlay.png"))
    print(f"view the result: {view_command(image_spec, instances, maps_beside(cfg, folder), gt_spec)}",
          flush=True)
    if not gt_spec:
        return None
    confidence = scores_path(instances)
    scores = confidence if cfg.EVAL.SCORE == "foreground" else None
    other = {"size (the challenge's)": None} if scores else (
        {"confidence (mean foreground)": confidence} if os.path.exists(confidence) else {})
    result = build_evaluation(cfg)(gt_spec, instances, scores=scores, other_rankings=other)
    result.notes.append(score_note(cfg.EVAL.SCORE))
    voxel = read_voxel_size(instances)
    if voxel:
        result.notes.append(f"voxel size (z, y, x) {' x '.join(f'{v:g}' for v in voxel)} nm")
    write_reports(result, os.path.join(folder, cfg.EVAL.OUTPUT_PREFIX), iteration=iteration)
    print(format_table(result), flush=True)
    if iteration is not None:
        csv_path = os.path.join(folder, SCORES_CSV)
        use_score_settings(csv_path, score_settings(cfg, image_spec, gt_spec, model))
        append_score(csv_path, iteration, result.summary)
    return result.summary


def maps_beside(cfg, folder):
    """The probability maps of ``folder`` (single-process or blockwise name), or None."""
    from connectomics.engine.outputs import output_names
    from connectomics.storage import parse_spec

    found = [output_names(cfg, folder, blockwise)[0] for blockwise in (False, True)]
    return next((maps for maps in found if os.path.exists(parse_spec(maps)[0])), None)


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
    """Raise ConfigError unless the output names can be written: the maps in a format that resumes
    chunk by chunk (HDF5, or one workers share: zarr, OME-Zarr; with ``blockwise`` ``probs.h5``
    becomes ``probs.zarr``), the instances in any writable format (:data:`connectomics.storage.WRITERS`)."""
    from connectomics.config import ConfigError
    from connectomics.storage import VolumeError, format_of, parse_spec
    from connectomics.storage.output import output_writer

    maps = cfg.INFERENCE.OUTPUT_NAME
    names = [("INFERENCE.OUTPUT_NAME", maps, format_of(maps) != "hdf5"),
             ("POSTPROCESS.OUTPUT_NAME", parse_spec(cfg.POSTPROCESS.OUTPUT_NAME)[0], False)]  # 'x.h5:key' names a dataset
    for key, name, parallel in names:
        try:
            output_writer(name, parallel)
        except VolumeError as err:
            raise ConfigError(f"config key {key} = {name!r}: {err}") from None


def run_inference(cfg, checkpoint=None, device=None, overwrite=False, scheduler=None, save_config=True):
    """Segment every INFERENCE.IMAGE_NAME volume; returns ``[summary or None, ...]``.

    With a scheduler (``scheduler`` or SYSTEM.SCHEDULER) the volumes run blockwise on Dask.
    Outputs made otherwise are replaced with ``overwrite`` or inside the run folder
    (:func:`owns_outputs`); elsewhere they are refused before any inference starts. The merged
    config is saved to INFERENCE.OUTPUT_PATH once the run is known to start (``save_config``).
    """
    from connectomics.blockwise.build import use_blockwise
    from connectomics.checkpoint import model_identity
    from connectomics.engine.train import select_device

    blockwise = use_blockwise(cfg, scheduler)
    check_decoder(cfg, blockwise)  # a bad POSTPROCESS key fails now, not after the whole inference
    check_output_names(cfg, blockwise)
    replace = overwrite or owns_outputs(cfg)
    device = device or select_device(cfg)
    checkpoint = resolve_checkpoint(cfg, checkpoint)
    model = model_identity(checkpoint)
    jobs = volume_folders(cfg)
    for image, gt, _ in jobs:
        output_attrs(cfg, image, gt)  # a voxel size the files contradict fails now
    runner = make_runner(cfg, checkpoint, device, blockwise)
    if not replace:
        runner.check_protected(jobs)  # before any work (and before a Dask cluster starts)
    _save_config(cfg, save_config)
    with connect(cfg, blockwise, scheduler) as client:
        runner.client = client
        return [run_volume(cfg, runner, image, gt, folder, runner.iteration, replace, model)
                for image, gt, folder in jobs]


def _save_config(cfg, save):
    if save:
        from connectomics.config import save_cfg

        path = save_cfg(cfg, cfg.INFERENCE.OUTPUT_PATH)
        logger.info("merged config saved to %s", path)
