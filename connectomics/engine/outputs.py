"""Protected inference outputs: refused up front, before any training or inference runs.

Outputs under an INFERENCE.OUTPUT_PATH outside the training run's folder were named by the user
(see :func:`owns_outputs`). A run that would replace one of them
(maps of another model or input, instances of other maps or thresholds) is refused unless
``--overwrite``, and that is checked here, from the settings stored with the outputs, before the
work starts: never after hours of training or inference.
"""
import os

from connectomics.storage import ResumeError, format_of, parse_spec, split_names, temporary_name
from connectomics.storage.settings import SETTINGS, difference, stored_settings


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


def _hint(cfg):
    return (f"pass --overwrite to replace them, or choose another INFERENCE.OUTPUT_PATH (results inside "
            f"DATASET.OUTPUT_PATH {cfg.DATASET.OUTPUT_PATH} follow the run's newest model)")


def _refuse(cfg, problems):
    raise ResumeError(f"INFERENCE.OUTPUT_PATH {cfg.INFERENCE.OUTPUT_PATH} holds results this run would replace: "
                      f"{'; '.join(problems)}; {_hint(cfg)}")


def _existing(spec):
    """The stored settings of an output (HDF5 dataset / zarr array), or ``'absent'``."""
    path, key = parse_spec(spec)
    exists, settings, readable = stored_settings(path, key)
    if not exists:
        return "absent"
    return settings if readable else {"unreadable": True}


def _partial(path):
    """The settings of the partial (temporary) output of ``path``, or ``'absent'``."""
    from connectomics.storage.partial import partial_settings

    return partial_settings(path)


OME_INSTANCES = "labels/instances"  # where instances named result.ome.zarr go


def output_names(cfg, folder, blockwise):
    """``(maps path, instances spec)`` of one volume's folder."""
    from connectomics.blockwise.build import zarr_name

    maps, instances = cfg.INFERENCE.OUTPUT_NAME, cfg.POSTPROCESS.OUTPUT_NAME
    path, key = parse_spec(instances)
    if format_of(path) == "ome-zarr" and not key:
        instances = f"{path}:{OME_INSTANCES}"  # a label of the image the run writes beside it
    return (os.path.join(folder, zarr_name(maps) if blockwise else maps), os.path.join(folder, instances))


def write_image_beside(image, instances, attrs):
    """When the instances are a label of an OME-Zarr (``result.ome.zarr:labels/instances``), the image
    ``image`` as that OME-Zarr's multiscale image (once per image content: its identity is recorded)."""
    from connectomics.storage import create_output, open_volume, volume_identity

    path, key = parse_spec(instances)
    if format_of(path) != "ome-zarr" or not key or not key.startswith("labels/"):
        return
    settings = {"image": os.path.abspath(parse_spec(image)[0]), "image_id": volume_identity(image), "attrs": attrs}
    exists, old, _ = stored_settings(path)
    if exists and os.path.isdir(os.path.join(path, "0")) and not difference(old, settings):
        return
    import json

    with open_volume(image) as volume:
        shape, slab = tuple(volume.shape), 32
        with create_output(path, shape, volume.dtype, (slab, 256, 256),
                           dict(attrs, **{SETTINGS: json.dumps(settings, sort_keys=True)})) as out:
            for z in range(0, shape[0], slab):
                out[z:z + slab] = volume[z:z + slab]


def output_attrs(cfg, image, gt=None):
    """The attributes every output of ``image`` records: ``voxel_size`` ((z, y, x) nm: DATASET.VOXEL_SIZE
    checked against what ``image`` and ``gt`` record, :func:`~connectomics.storage.voxel.resolve_voxel_size`),
    or {} when neither gives one. VolumeError when they disagree (unless DATASET.VOXEL_SIZE_OVERRIDE)."""
    from connectomics.storage.voxel import VOXEL_SIZE, resolve_voxel_size

    size = resolve_voxel_size(cfg.DATASET.VOXEL_SIZE, [image, gt], cfg.DATASET.VOXEL_SIZE_OVERRIDE)
    return {VOXEL_SIZE: list(size)} if size else {}


def check_protected_outputs(cfg, jobs, predictor=None, decode=None, checkpoint=None, device="cpu"):
    """ResumeError if a run of ``jobs`` (``volume_folders``) would replace an existing output.

    Single process: ``predictor`` and ``decode`` (the settings of its maps and instances);
    blockwise: ``checkpoint`` and ``device`` (the blockwise stores' settings).
    """
    from connectomics.inference.writer import run_settings

    blockwise = predictor is None
    problems = []
    for image, gt, folder in jobs:
        maps, instances = output_names(cfg, folder, blockwise)
        attrs = output_attrs(cfg, image, gt)
        extra = {"attrs": attrs} if attrs else {}
        if blockwise:
            from connectomics.blockwise.inference import blockwise_map_settings

            wanted = blockwise_map_settings(cfg, checkpoint, image, device)[0]
        else:
            from connectomics.storage import open_volume

            with open_volume(image) as volume:
                tiling = predictor.tiling(tuple(volume.shape), tuple(cfg.INFERENCE.CHUNK_SIZE))
            wanted = run_settings(predictor, tiling, image)
        wanted = dict(wanted, **extra)
        old_maps, partial = _existing(maps), _partial(maps)
        maps_kept = old_maps != "absent" and not difference(old_maps, wanted)
        if old_maps != "absent" and not maps_kept:
            problems.append(f"{maps} was made with other settings ({difference(old_maps, wanted)})")
        if partial != "absent" and difference(partial, wanted):
            problems.append(f"the partial {temporary_name(maps)} was made with other settings")
        old_instances = _existing(instances)
        if old_instances == "absent":
            continue
        if not maps_kept:
            problems.append(f"{instances} was decoded from other maps")
            continue
        diff = difference(old_instances, dict(_instance_settings(cfg, maps, instances, decode), **extra))
        if diff:
            problems.append(f"{instances} was made with other settings ({diff})")
    if problems:
        _refuse(cfg, problems)


def _instance_settings(cfg, maps, instances, decode):
    if decode is not None:
        from connectomics.postprocess.io import decode_settings

        return decode_settings(maps, decode)
    from connectomics.blockwise.postprocess import blockwise_settings
    from connectomics.postprocess.build import decoder_params

    name, params = decoder_params(cfg)
    b = cfg.BLOCKWISE
    return blockwise_settings(maps, instances, name, params, tuple(b.BLOCK_SIZE), tuple(b.HALO))[-1]


def check_outputs_before_training(cfg, overwrite):
    """Before a training run with SYSTEM.INFER_AFTER_TRAIN: ResumeError if its inference would
    replace protected results (any maps or instances there are of another model, since training
    changes the model), so the refusal does not come after the training."""
    from connectomics.blockwise.build import use_blockwise
    from connectomics.checkpoint import list_checkpoints

    if overwrite or not (cfg.SYSTEM.INFER_AFTER_TRAIN and cfg.INFERENCE.IMAGE_NAME) or owns_outputs(cfg):
        return
    done = list_checkpoints(cfg.DATASET.OUTPUT_PATH)
    if done and done[-1][0] >= cfg.SOLVER.ITERATION_TOTAL:
        return  # no training to do: inference checks its outputs itself, before it starts
    blockwise = use_blockwise(cfg)
    problems = []
    for _, _, folder in volume_folders(cfg):
        for path in output_names(cfg, folder, blockwise):
            if _existing(path) != "absent" or _partial(parse_spec(path)[0]) != "absent":
                problems.append(f"{path} exists (made by another model: training will make a new one)")
    if problems:
        _refuse(cfg, problems)
