"""Blockwise inference on Dask: each block predicts its chunk of a zarr store of uint8 maps.

The blocks are the chunks of an ALIGNED tiling (borders at the multiples of
``INFERENCE.CHUNK_SIZE``) and the output store ``(C, Z, Y, X)`` is chunked
``(C, *CHUNK_SIZE)``: every block reads its windows (its box plus the halo the
windows need, mirrored at the volume border) and writes exactly one chunk, so
parallel writes never overlap. Each voxel is blended from exactly the windows
that cover it, as without blocks: the maps equal the single-process ones.

Each worker process builds the model once (``worker_predictor``, cached per
process by config text, checkpoint and device) and reuses it for all its
blocks. The store is built under a temporary name with per-block markers and
renamed when complete; a killed run resumes at the first unfinished block.
"""
import functools
import logging
import os
import shutil

from connectomics.blockwise.cluster import run_blocks
from connectomics.storage import Markers
from connectomics.storage import check_existing, open_volume, temporary_name
from connectomics.storage.output import output_writer

logger = logging.getLogger(__name__)

_PREDICTORS = {}  # per process: (config text, checkpoint, its mtime, device) -> (predictor, workspace)
LOADS = {"count": 0}  # models built by this process (tests check: once per worker)


def _worker_device(device):
    """A worker's device: CUDA workers take GPUs round-robin by worker name."""
    import torch

    if device != "cuda" or torch.cuda.device_count() < 2:
        return torch.device(device)
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return torch.device("cuda")
    rank = name if isinstance(name, int) else sum(map(ord, str(name)))
    return torch.device("cuda", rank % torch.cuda.device_count())


def worker_predictor(cfg_text, checkpoint, device):
    """The predictor of this process for a config (YAML text) and checkpoint, built on first use."""
    key = (cfg_text, checkpoint, os.stat(checkpoint).st_mtime_ns, device)  # a rewritten checkpoint reloads
    if key not in _PREDICTORS:
        from yacs.config import CfgNode

        from connectomics.checkpoint import load_model_weights, read_checkpoint
        from connectomics.inference import build_predictor
        from connectomics.inference.predictor import Workspace
        from connectomics.model import build_model

        _PREDICTORS.clear()  # one model per process
        threads = int(os.environ.get("CONNECTOMICS_WORKER_THREADS", 0))
        if threads:  # a Dask worker (see cluster.worker_setup)
            import torch

            torch.set_num_threads(threads)
        cfg = CfgNode.load_cfg(cfg_text)
        torch_device = _worker_device(device)
        model = build_model(cfg).to(torch_device)
        load_model_weights(model, read_checkpoint(checkpoint), cfg.MODEL.ARCHITECTURE, checkpoint)
        LOADS["count"] += 1
        predictor = build_predictor(cfg, model, torch_device)
        _PREDICTORS[key] = (predictor, Workspace(torch_device))
    return _PREDICTORS[key]


def predict_block(index, cfg_text, checkpoint, device, input_spec, out_path, tiling):
    """One block: predict chunk ``index`` of ``tiling`` and write it into the store at ``out_path``."""
    from connectomics.storage import open_array
    from connectomics.storage.output import write_region

    predictor, workspace = worker_predictor(cfg_text, checkpoint, device)
    chunk = tiling.chunk(index)
    with open_volume(input_spec) as volume:
        block = predictor.predict_chunk(volume, chunk, workspace)
    out = open_array(out_path, "r+")
    if block.shape[0] != out.shape[0]:
        raise ValueError(f"the model gives {block.shape[0]} channels, the store {out_path} has {out.shape[0]}")
    write_region(out_path, (slice(0, block.shape[0]),) + chunk.write.slices(), block)
    return {"pid": os.getpid(), "loads": LOADS["count"]}


def blockwise_map_settings(cfg, checkpoint, input_spec, device="cpu"):
    """``(settings, tiling, shape)`` of the maps :func:`infer_blockwise` makes of ``input_spec``:
    what it records with its store (the single-process settings, aligned chunks, channels)."""
    from connectomics.inference.predictor import check_volume
    from connectomics.inference.writer import run_settings

    predictor, _ = worker_predictor(cfg.dump(), os.path.abspath(checkpoint), str(device))
    with open_volume(input_spec) as volume:
        check_volume(volume, str(input_spec))
        shape = tuple(int(n) for n in volume.shape)
    tiling = predictor.tiling(shape, tuple(cfg.INFERENCE.CHUNK_SIZE), aligned=True)
    settings = dict(run_settings(predictor, tiling, input_spec), aligned=True, channels=cfg.MODEL.OUT_PLANES)
    return settings, tiling, shape


def infer_blockwise(cfg, checkpoint, input_spec, output_path, client=None, device="cpu", retries=2,
                    overwrite=False, on_block_done=None, attrs=None):
    """Predict ``input_spec`` (Z, Y, X) into the zarr store ``output_path`` ((C, Z, Y, X) uint8), block by block.

    ``cfg``: the frozen config (INFERENCE.*, MODEL.*); ``checkpoint``: weights
    path, read by every worker; ``client``: ``distributed.Client`` or None (in
    this process). Returns ``(output_path, {block index: result})``.
    """
    writer = output_writer(output_path, parallel=True)  # the workers write their blocks into one store
    cfg_text = cfg.dump()
    checkpoint = os.path.abspath(checkpoint)
    settings, tiling, shape = blockwise_map_settings(cfg, checkpoint, input_spec, device)
    if attrs:
        settings = dict(settings, attrs=dict(attrs))
    if check_existing(output_path, settings, overwrite, what="probability maps"):
        return output_path, {}
    markers = Markers(temporary_name(output_path) + ".blocks", settings, overwrite)
    tmp, where = writer.start(output_path, None, (cfg.MODEL.OUT_PLANES,) + shape,
                              "uint8", (cfg.MODEL.OUT_PLANES,) + tiling.chunk_size, settings, attrs)
    logger.info("blockwise inference of %s: %d blocks of %s, %s", input_spec, tiling.num_chunks,
                tiling.chunk_size, "in this process" if client is None else f"on {client.scheduler.address}")
    fn = functools.partial(predict_block, cfg_text=cfg_text, checkpoint=checkpoint, device=str(device),
                           input_spec=str(input_spec), out_path=where, tiling=tiling)
    results = run_blocks(client, fn, tiling.chunk_indices(), markers, "inference", retries, on_block_done)
    writer.finish(tmp, output_path)
    shutil.rmtree(markers.folder, ignore_errors=True)
    return output_path, results
