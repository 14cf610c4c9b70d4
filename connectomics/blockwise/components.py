"""Blockwise connected components with globally consistent ids (seeds, or any thresholded map).

1. ``label_block``: each block labels its own seed mask
   ``foreground > int(255 * seed) & contour < int(255 * contour)`` (contour
   optional) with the raster union-find kernel, numbering identical to
   ``cc3d.connected_components``; local ids 1..n_b go to a uint32 zarr store.
2. Block b's local id i becomes the provisional id ``offset[b] + i``
   (offsets: the running sum of the n_b in raster block order).
3. ``face_pairs``: each block reads its box plus the one-voxel layer its
   backward neighbours lie in, and lists the pairs of provisional ids that
   touch across its faces (6-connectivity: the three backward face
   neighbours; 26: the thirteen backward neighbours), so every voxel
   adjacency that crosses a block face is seen exactly once.
4. ``resolve_ids``: a union-find over those pairs (``scipy.sparse.csgraph``)
   and a consecutive relabel give the lookup table provisional id -> global id
   1..K, numbered in raster order of each component's first voxel.

The result is the same labelling, ids included, as ``cc3d`` on the whole volume.
"""
import itertools

import numpy as np

from connectomics.geometry import Box, slices
from connectomics.postprocess.cleanup import dense_sizes
from connectomics.postprocess.maps import check_maps
from connectomics.postprocess.seeds import label_seeds
from connectomics.storage import open_array, open_volume


def backward_offsets(connectivity):
    """Neighbour offsets (dz, dy, dx) that precede a voxel in raster order: 3 (6-conn.) or 13 (26-conn.)."""
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity = {connectivity!r}: must be 6 or 26")
    steps = [o for o in itertools.product((-1, 0, 1), repeat=3) if o < (0, 0, 0)]
    return [o for o in steps if connectivity == 26 or sum(map(abs, o)) == 1]


def read_maps(maps_spec, box, channels=2):
    """The first ``channels`` maps of ``box`` from a (C, Z, Y, X) store: (channels, *box shape) uint8.

    Float maps in [0, 1] are quantised and integer maps in [0, 255] cast, block by
    block, as the single-process decoders do with whole volumes.
    """
    with open_volume(maps_spec) as maps:
        block = np.asarray(maps[(slice(0, channels),) + slices(box)])
    return block if block.dtype == np.uint8 else check_maps(block, None, f"{maps_spec} box {list(box)}")


def label_block(index, maps_spec, seeds_path, grid, seed_threshold, contour_threshold, connectivity):
    """Stage 1 for one block: local seed ids -> ``seeds_path``; returns ``{'sizes': voxels per local id}``.

    Thresholds are fractions of 1 as in the decoders; ``contour_threshold``
    None labels ``foreground > int(255 * seed_threshold)`` alone.
    """
    box = grid.box(index)
    maps = read_maps(maps_spec, box, 1 if contour_threshold is None else 2)
    contour = None if contour_threshold is None else maps[1]
    labels, n = label_seeds(maps[0], contour, seed_threshold, contour_threshold or 0.0, connectivity)
    del maps, contour
    if labels.dtype != np.uint32:
        raise ValueError(f"block {index} holds more than 2**32 - 1 voxels; use smaller blocks")
    open_array(seeds_path, "r+")[slices(box)] = labels
    return {"sizes": dense_sizes(labels, n), "first": first_voxels(labels, box, grid.shape)}


def first_voxels(labels, box, shape):
    """(n + 1) uint64: the global raster index of each local id's first voxel ([0] unused).

    Local ids are numbered in raster order of their first voxel, so the first
    voxels are where the running maximum of the nonzero ids grows.
    """
    flat = labels.reshape(-1)
    where = np.flatnonzero(flat)
    ids = flat[where]
    grows = np.ones(len(ids), bool)
    grows[1:] = ids[1:] > np.maximum.accumulate(ids)[:-1]
    z, y, x = np.unravel_index(where[grows], labels.shape)
    origin = [a for a, _ in box]
    first = np.zeros(len(z) + 1, np.uint64)
    first[1:] = np.ravel_multi_index((z + origin[0], y + origin[1], x + origin[2]), shape)
    return first


def provisional_offsets(grid, counts):
    """(grid shape) uint64 offsets: block b's local id i is provisional id ``offset[b] + i``."""
    flat = np.array([counts[index] for index in grid.indices()], np.uint64)
    return (np.cumsum(flat) - flat).reshape(grid.grid_shape)


def read_provisional(seeds, grid, offsets, box):
    """Local seed ids of ``box`` (any box) as provisional ids, uint64."""
    origin = [a for a, _ in box]
    out = np.zeros(tuple(b - a for a, b in box), np.uint64)
    for owner, sub in grid.owners(box):
        part = np.asarray(seeds[sub.slices()]).astype(np.uint64)
        part[part > 0] += offsets[owner]
        out[sub.slices(origin)] = part
    return out


def face_pairs(index, seeds_path, grid, offsets, connectivity):
    """Stage 3 for one block: ``{'pairs': (P, 2) uint64}`` provisional ids that touch across its faces."""
    seeds = open_array(seeds_path)
    core = grid.box(index)
    # backward neighbours lie one voxel below in z, and one voxel either side in y / x (26-conn. only)
    after = 0 if connectivity == 6 else 1
    ext = tuple((max(0, a - 1), min(n, b + (after if axis else 0)))
                for axis, ((a, b), n) in enumerate(zip(core, grid.shape)))
    labels = read_provisional(seeds, grid, offsets, ext)
    origin = [a for a, _ in ext]
    found = []
    for offset in backward_offsets(connectivity):
        for axis, step in enumerate(offset):
            if step == 0:
                continue
            # voxels p of the core whose neighbour p + offset leaves the core through this axis
            face = core[axis][0] if step < 0 else core[axis][1] - 1
            if not ext[axis][0] <= face + step < ext[axis][1]:
                continue  # volume border: no neighbour block there
            box = []
            for b, ((c0, c1), (e0, e1), o) in enumerate(zip(core, ext, offset)):
                box.append((face, face + 1) if b == axis else (max(c0, e0 - o), min(c1, e1 - o)))
            here = labels[slices(box, origin)]
            there = labels[Box(box).shift(offset).slices(origin)]
            touch = (here != 0) & (there != 0) & (here != there)
            if touch.any():
                found.append(np.stack([here[touch], there[touch]], axis=1))
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.zeros((0, 2), np.uint64)
    return {"pairs": pairs.astype(np.uint64)}


def resolve_ids(n_provisional, pairs, sizes=None, min_seed_size=0, first=None):
    """Lookup table provisional id -> global id (0..K) and K, from the cross-face pairs.

    ``pairs``: (P, 2) provisional ids that belong together. ``sizes``: optional
    voxels per provisional id; components with fewer than ``min_seed_size``
    voxels in all map to 0. ``first``: optional global raster index of each
    provisional id's first voxel: global ids then follow the raster order of
    each component's first voxel, exactly as ``cc3d`` numbers a whole volume;
    without it, the order of each component's smallest provisional id.
    Returns ``(lut, K)``, lut uint32 (uint64 above 2**32 - 1 components) of
    length ``n_provisional + 1``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = int(n_provisional) + 1
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # renumber components by their smallest member (connected_components does not promise an order)
    key = np.arange(n, dtype=np.uint64) if first is None else np.asarray(first, np.uint64).copy()
    key[0] = 0
    first = np.full(component.max() + 1, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(first, component, key)
    keep = np.ones(len(first), bool)
    keep[component[0]] = False  # the background node 0
    if sizes is not None and min_seed_size > 0:
        totals = np.bincount(component, weights=np.asarray(sizes, np.float64), minlength=len(first))
        keep &= totals >= min_seed_size
    order = np.argsort(first, kind="stable")
    order = order[keep[order]]
    new_id = np.zeros(len(first), np.int64)
    new_id[order] = np.arange(1, len(order) + 1)
    k = len(order)
    return new_id[component].astype(np.uint32 if k < 2**32 else np.uint64), k
