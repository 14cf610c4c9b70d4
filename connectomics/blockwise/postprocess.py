"""Blockwise post-processing: (2, Z, Y, X) uint8 maps in zarr (or HDF5) -> one uint32 instance volume.

Stages, each a pass over the blocks with per-block done markers (a killed run
resumes at the first unfinished block of the unfinished stage):

============  ======================================================  ==========================
stage         per block                                               then, in the client
============  ======================================================  ==========================
seeds         local seed components -> ``seeds`` work store (uint32)  provisional id offsets
stitch        id pairs touching across the block's faces (saved by    union-find -> seed lookup
              the seeds stage: no seed-store read)
segment       watershed / growth over block + halo with global ids   global sizes -> final table
export        final ids -> output zarr (parallel) or HDF5 (client)    rename into place
============  ======================================================  ==========================

Peak memory per worker depends on the block plus its halo, never on the volume:
0.42 GiB per worker process for 64 x 512 x 512 blocks with an 8 x 64 x 64 halo, at
1.26 and at 2.52 G voxels (``benchmarks/bench_scale.py``). Decoders:
``bc_watershed``, ``binary_watershed``, ``bc_connected``, ``seed_agglomerate``
(``watershed_agglomerate`` merges fragments globally with waterz and has no
blockwise form). Small instances are removed by their global size
(``small_mode='background'``; ``'neighbor'`` is not available blockwise).
"""
import collections
import functools
import json
import logging
import os
import shutil
import time

import numpy as np
from tqdm import tqdm

from connectomics.blockwise.cluster import run_blocks
from connectomics.blockwise.components import face_pairs, label_block, provisional_offsets, resolve_ids
from connectomics.blockwise.segment import (final_block, global_sizes, global_spans, relabel_table, seed_block,
                                            segment_block, write_block)
from connectomics.blockwise.store import align_block, input_chunks
from connectomics.storage import Markers
from connectomics.geometry import BlockGrid
from connectomics.postprocess.decoders import check_params
from connectomics.postprocess.registry import (DECODERS, decoder_entry, decoder_keywords,
                                               recorded_params)
from connectomics.storage import (SETTINGS, VolumeError, check_existing, create_output, open_volume,
                                  parse_spec, remove_path, volume_identity)
from connectomics.storage.output import output_writer
from connectomics.storage.work_store import create_work_array

logger = logging.getLogger(__name__)

H5_CHUNK = (32, 256, 256)  # (z, y, x) chunks of an HDF5 output
STAGES_VERSION = 2  # bump when a stage's output changes meaning: old work folders are then refused


def check_blockwise(decoder, params):
    """The decoder's :class:`~connectomics.postprocess.registry.BlockPlan`; ValueError if ``decoder``
    with ``params`` has no blockwise form."""
    plan = decoder_entry(decoder).blockwise
    if plan is None:
        names = ", ".join(name for name, entry in DECODERS.items() if entry.blockwise is not None)
        why = decoder_entry(decoder).no_blockwise
        raise ValueError(f"decoder {decoder!r} has no blockwise form; blockwise decoders: {names}"
                         + (f" ({why})" if why else ""))
    if params.get("small_mode", "background") != "background":
        raise ValueError("POSTPROCESS.SMALL_MODE neighbor has no blockwise form (it needs contacts across "
                         "blocks); use background")
    check_params(**params)
    return plan


def decoder_defaults(decoder, params):
    """``params`` completed with the decoder's own defaults (every keyword it takes)."""
    full = decoder_keywords(decoder)
    unknown = set(params) - set(full)
    if unknown:
        raise ValueError(f"decoder {decoder} takes no {', '.join(sorted(unknown))}; it takes {', '.join(full)}")
    full.update(params)
    return full


def _check_maps(maps, name, channels):
    if maps.ndim != 4 or maps.shape[0] < channels:
        raise VolumeError(f"{name}: expected (C, Z, Y, X) maps with at least {channels} channels (0 foreground, "
                          f"1 instance contour), got shape {tuple(maps.shape)}")
    dtype = np.dtype(maps.dtype)
    if dtype.kind not in "uif":  # uint8 as inference writes them; floats in [0, 1] and ints in [0, 255] per block
        raise VolumeError(f"{name}: expected uint8 maps (0..255), float maps (0..1) or integer maps (0..255), "
                          f"got {dtype}")


class _Run:
    """One blockwise run: its grid, work folder, markers and stage runner."""

    def __init__(self, input_spec, out_path, shape, block, settings, client, work_dir, retries, overwrite,
                 on_block_done, wrap):
        self.input_spec, self.out_path, self.settings, self.client = input_spec, out_path, settings, client
        self.work_dir = work_dir or os.path.join(os.path.dirname(os.path.abspath(out_path)),
                                                 f".{os.path.basename(out_path)}.blocks")
        self.markers = Markers(self.work_dir, settings, overwrite)
        self.grid = BlockGrid(shape, block)
        self.run = functools.partial(run_blocks, client, markers=self.markers, retries=retries,
                                     on_done=on_block_done, wrap=wrap)

    def store(self, name, dtype=np.uint32, channels=None):
        """A work store of the grid's shape (``channels``: a leading axis of that size)."""
        path = os.path.join(self.work_dir, name)
        lead = () if channels is None else (int(channels),)
        return create_work_array(path, lead + self.grid.shape, lead + self.grid.block, dtype, self.settings)

    def where(self):
        return "in this process" if self.client is None else f"on {self.client.scheduler.address}"


def _open_input(input_spec, output_spec, channels, block):
    """Check the maps and the output name.

    Returns ``(out_path, out_key, shape, block aligned to the input chunks, input id)``
    (the id: :func:`~connectomics.storage.identity.volume_identity`, so maps rewritten since,
    even one chunk in place, are decoded again).
    """
    out_path, out_key = parse_spec(output_spec)
    output_writer(out_path).check(out_path, out_key)  # fail now, not after the run (e.g. an array store in the way)
    with open_volume(input_spec) as maps:
        _check_maps(maps, str(input_spec), channels)
        shape = tuple(int(n) for n in maps.shape[1:])
        block = align_block(block, input_chunks(maps, str(input_spec)), shape)
    identity = volume_identity(input_spec)
    return out_path, out_key, shape, block, identity


def _settings(input_spec, identity, shape, block, **extra):
    path, key = parse_spec(input_spec)
    return dict(stages=STAGES_VERSION, input=os.path.abspath(path), input_key=key, input_id=identity,
                shape=list(shape), block=list(block), **extra)


def blockwise_settings(input_spec, output_spec, decoder="bc_watershed", params=None, block=(64, 512, 512),
                       halo=(8, 64, 64)):
    """What :func:`postprocess_blockwise` with these arguments records with its output.

    Returns ``(out_path, out_key, shape, block, halo, params, settings)``: the block rounded up
    to the input's chunks, the halo grown to the dilation radius, the decoder's full keywords.
    """
    plan = check_blockwise(decoder, params or {})
    params = decoder_defaults(decoder, params or {})
    out_path, out_key, shape, block, identity = _open_input(input_spec, output_spec, 2 if plan.contour else 1,
                                                            block)
    halo = tuple(int(h) for h in halo)
    if plan.halo is not None:
        halo = tuple(max(h, g) for h, g in zip(halo, plan.halo(params)))
    settings = _settings(input_spec, identity, shape, block, decoder=decoder, params=recorded_params(params),
                         halo=list(halo))
    return out_path, out_key, shape, block, halo, params, settings


def postprocess_blockwise(input_spec, output_spec, decoder="bc_watershed", params=None, client=None,
                          block=(64, 512, 512), halo=(8, 64, 64), work_dir=None, retries=2, overwrite=False,
                          keep_work=False, on_block_done=None, wrap=None, stale_files=(), attrs=None):
    """Decode ``input_spec`` block by block into ``output_spec`` (``.h5[:key]``, ``.zarr``, ``.ome.zarr`` ...).

    input_spec: (C, Z, Y, X) uint8 maps, ``store.zarr[:array]`` or ``file.h5[:key]``.
    decoder, params: as :func:`connectomics.postprocess.decode` (plain keywords).
    client: ``distributed.Client`` or None (blocks run in this process).
    block: (z, y, x) block size, rounded up to the input's chunks; halo:
    (z, y, x) context of the watershed (growth uses at least its radius).
    work_dir: intermediate stores and markers (default: a hidden sibling of
    the output), removed at the end unless ``keep_work``. ``on_block_done``,
    ``wrap``: see :func:`~connectomics.blockwise.cluster.run_blocks`. ``stale_files``:
    files derived from an earlier output (a score table), removed once the output is to be
    rebuilt (not when it is complete already, nor when a run is refused). ``attrs``: the output's
    attributes (``voxel_size``). Returns the output path.
    """
    out_path, out_key, shape, block, halo, params, settings = blockwise_settings(input_spec, output_spec, decoder,
                                                                                 params, block, halo)
    if attrs:
        settings = dict(settings, attrs=dict(attrs))
    plan = decoder_entry(decoder).blockwise
    if check_existing(out_path, settings, overwrite, key=out_key):
        return out_path
    for path in stale_files:
        remove_path(path)
    ctx = _Run(input_spec, out_path, shape, block, settings, client, work_dir, retries, overwrite, on_block_done,
               wrap)
    logger.info("blockwise %s of %s: %s, halo %s, %s", decoder, input_spec, ctx.grid, list(halo), ctx.where())
    started = time.perf_counter()
    # the flood reads the foreground with a halo: from a copy in small chunks, made by the seeds stage
    foreground = ctx.store("foreground", np.uint8, channels=1) if plan.foreground else None
    seeds = _seed_stages(ctx, params["seed_threshold"], params["contour_threshold"] if plan.contour else None,
                         params.get("seed_connectivity", 6), plan.min_seed, foreground)

    segment_path = ctx.store("segment")
    segment = functools.partial(segment_block, maps_spec=input_spec, foreground_path=foreground, seeds_path=seeds.path,
                                out_path=segment_path,
                                grid=ctx.grid, halo=halo, offsets=seeds.offsets, counts=seeds.counts,
                                lut_path=seeds.lut_path, grow=plan.grow, params=params)
    results = list(ctx.run(segment, ctx.grid.indices(), stage="segment").values())
    sizes = global_sizes(results, seeds.n)
    spans = global_spans(results, seeds.n) if params.get("max_section") else None
    table, n = relabel_table(sizes, params.get("min_size", 0), spans, params.get("max_section", 0))
    table_path = ctx.markers.save_array("final_table", table)
    logger.info("%d instances of >= %d voxels%s (of %d seeds)", n, params.get("min_size", 0),
                f" and a mean cross-section of <= {params['max_section']:g} pixels" if spans is not None else "",
                seeds.n)

    make = functools.partial(final_block, src_path=segment_path, grid=ctx.grid, table_path=table_path)
    _export(ctx, out_key, make, table.dtype)
    if not keep_work:
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
    logger.info("blockwise post-processing: %d instances in %.1f s -> %s", n, time.perf_counter() - started,
                out_path)
    return out_path


def components_blockwise(input_spec, output_spec, threshold=0.5, contour_threshold=None, connectivity=6,
                         client=None, block=(64, 512, 512), work_dir=None, retries=2, overwrite=False,
                         keep_work=False, on_block_done=None, wrap=None):
    """Connected components of ``foreground > int(255 * threshold)`` (and ``contour < ...`` if given), blockwise.

    The same partition as ``cc3d.connected_components`` of that mask over the
    whole volume (ids 1..K numbered by block order, then raster order within
    the first block a component appears in). Arguments as
    :func:`postprocess_blockwise`. Returns the output path.
    """
    channels = 1 if contour_threshold is None else 2
    out_path, out_key, shape, block, identity = _open_input(input_spec, output_spec, channels, block)
    settings = _settings(input_spec, identity, shape, block, components=[threshold, contour_threshold, connectivity])
    if check_existing(out_path, settings, overwrite, key=out_key):
        return out_path
    ctx = _Run(input_spec, out_path, shape, block, settings, client, work_dir, retries, overwrite, on_block_done,
               wrap)
    logger.info("blockwise connected components of %s: %s, %s", input_spec, ctx.grid, ctx.where())
    seeds = _seed_stages(ctx, threshold, contour_threshold, connectivity, 0)
    make = functools.partial(seed_block, seeds_path=seeds.path, grid=ctx.grid, offsets=seeds.offsets,
                             counts=seeds.counts, lut_path=seeds.lut_path)
    _export(ctx, out_key, make, np.dtype(np.uint32))
    if not keep_work:
        shutil.rmtree(ctx.work_dir, ignore_errors=True)
    return out_path


SeedIds = collections.namedtuple("SeedIds", "path offsets counts lut_path n")


def _seed_stages(ctx, seed_threshold, contour_threshold, connectivity, min_seed, foreground_path=None):
    """Stages 'seeds' and 'stitch', then the global seed lookup table (``foreground_path``: a work
    store the seeds stage copies the foreground into)."""
    grid = ctx.grid
    seeds_path = ctx.store("seeds")
    faces_dir = os.path.join(ctx.work_dir, "faces")  # the blocks' boundary layers, for the stitch
    label = functools.partial(label_block, maps_spec=ctx.input_spec, seeds_path=seeds_path, grid=grid,
                              seed_threshold=seed_threshold, contour_threshold=contour_threshold,
                              connectivity=connectivity, faces_dir=faces_dir, foreground_path=foreground_path)
    seed_sizes = ctx.run(label, grid.indices(), stage="seeds")
    counts = {index: len(result["sizes"]) - 1 for index, result in seed_sizes.items()}
    offsets = provisional_offsets(grid, counts)
    count_grid = np.array([counts[i] for i in grid.indices()], np.uint64).reshape(grid.grid_shape)
    n_provisional = int(count_grid.sum())
    stitch = functools.partial(face_pairs, faces_dir=faces_dir, grid=grid, offsets=offsets,
                               connectivity=connectivity)
    pairs = ctx.run(stitch, grid.indices(), stage="stitch")
    lut = ctx.markers.load_array("seed_lut")
    if lut is None:
        all_pairs = [r["pairs"] for r in pairs.values() if len(r["pairs"])]
        all_pairs = np.concatenate(all_pairs) if all_pairs else np.zeros((0, 2), np.uint64)
        sizes, first = np.zeros(n_provisional + 1, np.uint64), np.zeros(n_provisional + 1, np.uint64)
        for index, result in seed_sizes.items():
            start, end = int(offsets[index]) + 1, int(offsets[index]) + len(result["sizes"])
            sizes[start:end], first[start:end] = result["sizes"][1:], result["first"][1:]
        lut, _ = resolve_ids(n_provisional, all_pairs, sizes, min_seed, first)
        ctx.markers.save_array("seed_lut", lut)
    n = int(lut.max(initial=0))
    logger.info("seeds: %d provisional ids in %d blocks -> %d global seeds", n_provisional, len(grid), n)
    return SeedIds(seeds_path, offsets, count_grid, os.path.join(ctx.markers.folder, "seed_lut.npy"), n)


def _export(ctx, key, make_labels, dtype):
    """Write ``make_labels(index)`` of every block to the output: in parallel by the workers where its
    format allows (zarr), else from this process (HDF5).

    ``key``: the array of a zarr group / the dataset of an HDF5 file (default
    ``main``); the group's or file's other members are kept.
    """
    grid = ctx.grid
    writer = output_writer(ctx.out_path)
    if writer.parallel:  # the workers write their blocks
        tmp, where = writer.start(ctx.out_path, key, grid.shape, dtype, grid.block, ctx.settings,
                                  ctx.settings.get("attrs"))
        export = functools.partial(write_block, make_labels=make_labels, dst_path=where, grid=grid)
        ctx.run(export, grid.indices(), stage="export")
        writer.finish(tmp, ctx.out_path, key)
        return
    spec = f"{ctx.out_path}:{key}" if key else ctx.out_path
    attrs = dict(ctx.settings.get("attrs", {}), **{SETTINGS: json.dumps(ctx.settings, sort_keys=True)})
    with create_output(spec, grid.shape, dtype, H5_CHUNK, attrs) as dset:  # the file's other datasets kept
        for index in tqdm(grid.indices(), unit="block", desc="export", disable=None):
            dset[grid.box(index).slices()] = make_labels(index)
