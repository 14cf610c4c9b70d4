"""The config door of blockwise runs: ``SYSTEM.SCHEDULER`` and ``BLOCKWISE.*`` -> plain arguments."""
from connectomics.blockwise.cluster import connect
from connectomics.blockwise.postprocess import postprocess_blockwise
from connectomics.storage import format_of


def use_blockwise(cfg, scheduler=None):
    """True when a scheduler is set (``--scheduler`` or ``SYSTEM.SCHEDULER``)."""
    return bool(scheduler or cfg.SYSTEM.SCHEDULER)


def connect_from_cfg(cfg, scheduler=None):
    """``connect`` (a context manager yielding a Dask client or None) for the configured scheduler."""
    return connect(scheduler or cfg.SYSTEM.SCHEDULER, cfg.BLOCKWISE.WORKERS, cfg.BLOCKWISE.THREADS_PER_WORKER)


def zarr_name(name):
    """``probs.h5`` -> ``probs.zarr``: the blockwise store of an output name (a name whose format
    workers can share, ``probs.zarr`` / ``probs.ome.zarr``, is kept)."""
    from connectomics.storage import WRITERS

    writer = WRITERS.get(format_of(name))
    if writer is not None and writer.parallel:
        return name
    stem = name.rsplit(".", 1)[0] if format_of(name) == "hdf5" else name
    return stem + ".zarr"


def postprocess_from_cfg(cfg, input_spec, output_spec, client, overwrite=False, attrs=None):
    """Blockwise post-processing with the decoder of ``cfg.POSTPROCESS`` and the blocks of ``cfg.BLOCKWISE``,
    then the instances' confidence table (``scores_path(output_spec)``, read back block by block)."""
    from connectomics.postprocess.build import decoder_params
    from connectomics.postprocess.confidence import scores_path, write_instance_confidence
    from connectomics.storage import parse_spec

    name, params = decoder_params(cfg)
    b = cfg.BLOCKWISE
    scores = scores_path(output_spec)
    result = postprocess_blockwise(input_spec, output_spec, name, params, client, block=tuple(b.BLOCK_SIZE),
                                   halo=tuple(b.HALO), work_dir=b.WORK_DIR or None, retries=b.RETRIES,
                                   overwrite=overwrite, stale_files=[scores], attrs=attrs)
    path, key = parse_spec(output_spec)
    if not key and format_of(path) == "hdf5":
        key = "main"  # the dataset the export wrote, not the file's first one
    write_instance_confidence(f"{path}:{key}" if key else path, input_spec, path=scores)
    return result
