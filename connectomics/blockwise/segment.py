"""Blockwise instances from global seed ids: watershed or growth per block, global sizes, relabel.

``segment_block`` reads its box plus a halo: the probability maps, and the
local seed ids of every block the halo reaches, translated to global ids
through their block's slice of the lookup table. It floods (or grows) the
seeds over that region exactly as the single-machine decoder would, then
writes only its own box. Inside the core the result equals the whole-volume
result wherever the flood that reaches a voxel stays within the halo; only
objects whose flooding paths run further than the halo can differ.

Sizes are counted per block (``{'ids', 'counts'}``) and summed over the volume
before small instances are removed (``relabel_table``): an instance cut by a
block border is judged by its whole size, never by its parts.
"""
import functools
import os

import fastremap
import numpy as np

from connectomics._ext import labels as _kernel
from connectomics.blockwise.components import read_maps
from connectomics.geometry import Box
from connectomics.postprocess.cleanup import mean_sections, slice_spans
from connectomics.storage.work_store import open_work_array
from connectomics.storage.output import write_region

_LUTS = {}  # per worker process: (path, mtime, size) -> memory-mapped lookup table


def _lut(path):
    # keyed by the file's identity too: workers of a remote cluster outlive a run, and a
    # rerun with --overwrite writes a new table under the same name
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _LUTS:
        _LUTS.clear()
        _LUTS[key] = np.load(path, mmap_mode="r")
    return _LUTS[key]


def global_seeds(seeds, grid, offsets, counts, lut, box):
    """The global seed ids of ``box``: (box shape) uint32, 0 where no seed."""
    origin = [a for a, _ in box]
    out = np.zeros(Box(box).shape, np.uint32)
    for owner, sub in grid.owners(box):
        part = np.ascontiguousarray(seeds[sub.slices()], dtype=np.uint32)
        first = int(offsets[owner])
        table = np.array(lut[first:first + int(counts[owner]) + 1], np.uint32)
        table[0] = 0
        if _kernel.apply_lut(part.reshape(-1), table):
            raise ValueError(f"block {owner}: seed ids above its count {int(counts[owner])}; the seed store "
                             "is out of date (rerun with --overwrite)")
        out[sub.slices(origin)] = part
    return out


def segment_block(index, maps_spec, seeds_path, out_path, grid, halo, offsets, counts, lut_path, grow, params,
                  foreground_path=None):
    """Stage 'segment' for one block -> ``{'ids', 'counts'}`` of the global ids in its own box (and, when
    ``params['max_section']`` is set, ``'first'`` / ``'last'``: the global z of their first / last slice).

    ``grow``: the decoder's :class:`~connectomics.postprocess.registry.BlockPlan` step, called as
    ``grow(labels, read_maps, params)`` on the global seeds of the block's box plus ``halo``.
    ``foreground_path``: the work store holding the foreground copy (read instead of the maps).
    """
    ext = grid.box(index, halo)
    labels = global_seeds(open_work_array(seeds_path), grid, offsets, counts, _lut(lut_path), ext)
    if foreground_path is not None:
        read = functools.partial(_read_foreground, foreground_path, ext)
    else:
        read = functools.partial(read_maps, maps_spec, ext)
    grow(labels, read, params)
    core = np.ascontiguousarray(labels[grid.box(index).slices(ext)])
    del labels
    open_work_array(out_path)[grid.box(index).slices()] = core
    if params.get("max_section"):
        ids, sizes, first, last = slice_spans(core, grid.box(index).begin[0])
        return {"ids": ids.astype(np.uint64), "counts": sizes, "first": first, "last": last}
    ids, sizes = fastremap.unique(core, return_counts=True)
    keep = ids != 0
    return {"ids": ids[keep].astype(np.uint64), "counts": sizes[keep].astype(np.uint64)}


def _read_foreground(path, box, channels=1):
    """(1, *box shape) uint8 foreground of ``box`` from the work store copy (``channels`` must be 1)."""
    if channels != 1:
        raise ValueError("the foreground copy holds one channel; this decoder's plan needs foreground=False")
    return open_work_array(path)[(slice(0, 1),) + Box(box).slices()]


def global_sizes(results, n_ids):
    """Dense uint64 sizes (``n_ids + 1``) summed over the blocks' ``{'ids', 'counts'}``."""
    sizes = np.zeros(int(n_ids) + 1, np.uint64)
    for result in results:
        np.add.at(sizes, result["ids"].astype(np.int64), result["counts"])
    return sizes


def global_spans(results, n_ids):
    """``(first, last)``: dense int64 (``n_ids + 1``) first / last z of each global id over the blocks' results."""
    first = np.full(int(n_ids) + 1, np.iinfo(np.int64).max, np.int64)
    last = np.full(int(n_ids) + 1, -1, np.int64)
    for result in results:
        ids = result["ids"].astype(np.int64)
        np.minimum.at(first, ids, result["first"])
        np.maximum.at(last, ids, result["last"])
    return first, last


def relabel_table(sizes, min_size, spans=None, max_section=0):
    """``(table, n)``: global id -> final id 1..n (instances of at least ``min_size`` voxels, in id order), 0 else.

    ``spans``: ``(first, last)`` z of each id (:func:`global_spans`): ids whose mean cross-section
    (voxels / slices spanned) exceeds ``max_section`` pixels are dropped too.
    """
    present = np.asarray(sizes) >= max(int(min_size), 1)
    if spans is not None and max_section > 0:
        present &= mean_sections(sizes, *spans) <= max_section
    present[0] = False
    kept = np.flatnonzero(present)
    n = len(kept)
    table = np.zeros(len(sizes), np.uint32 if n < 2**32 else np.uint64)
    table[kept] = np.arange(1, n + 1)
    return table, n


def final_block(index, src_path, grid, table_path):
    """The final ids of block ``index``: ``table[src[box]]`` (table dtype)."""
    table = np.asarray(_lut(table_path))
    labels = np.ascontiguousarray(open_work_array(src_path)[grid.box(index).slices()]).astype(table.dtype, copy=False)
    _kernel.apply_lut(labels.reshape(-1), table)
    return labels


def seed_block(index, seeds_path, grid, offsets, counts, lut_path):
    """The global seed ids of block ``index`` (uint32)."""
    return global_seeds(open_work_array(seeds_path), grid, offsets, counts, _lut(lut_path), grid.box(index))


def write_block(index, make_labels, dst_path, grid):
    """Export stage for one block of a zarr / OME-Zarr output: ``dst[box] = make_labels(index)``
    (:func:`~connectomics.storage.output.write_region`)."""
    write_region(dst_path, grid.box(index).slices(), make_labels(index))
    return {}
