"""Blockwise connected components with globally consistent ids (seeds, or any thresholded map).

1. ``label_block``: each block labels its own seed mask
   ``foreground > int(255 * seed) & contour < int(255 * contour)`` (contour
   optional) with the raster union-find kernel, numbering identical to
   ``cc3d.connected_components``; local ids 1..n_b go to a uint32 work store.
2. Block b's local id i becomes the provisional id ``offset[b] + i``
   (offsets: the running sum of the n_b in raster block order).
3. ``face_pairs``: each block lists the pairs of provisional ids that touch
   across its faces (6-connectivity: the three backward face neighbours; 26:
   the thirteen backward neighbours), so every voxel adjacency that crosses a
   block face is seen exactly once. It reads only the blocks' boundary layers,
   which ``label_block`` saved beside the seed store (``save_faces``): the seed
   store itself, chunk-compressed, would be decoded whole for a one-voxel layer.
4. ``resolve_ids``: a union-find over those pairs (``scipy.sparse.csgraph``)
   and a consecutive relabel give the lookup table provisional id -> global id
   1..K, numbered in raster order of each component's first voxel.

The result is the same labelling, ids included, as ``cc3d`` on the whole volume.
"""
import itertools
import os

import numpy as np

from connectomics.geometry import Box, slices
from connectomics.postprocess.cleanup import dense_sizes
from connectomics.postprocess.maps import check_maps
from connectomics.postprocess.seeds import label_seeds
from connectomics.storage import open_volume
from connectomics.storage.work_store import open_work_array


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


def label_block(index, maps_spec, seeds_path, grid, seed_threshold, contour_threshold, connectivity, faces_dir=None,
                foreground_path=None):
    """Stage 1 for one block: local seed ids -> ``seeds_path`` (and its boundary layers -> ``faces_dir``,
    see :func:`save_faces`; its uint8 foreground -> ``foreground_path``, a (1, Z, Y, X) work store in
    small chunks that the next stage reads with its halo); returns ``{'sizes': voxels per local id,
    'first': first voxels}``.

    Thresholds are fractions of 1 as in the decoders; ``contour_threshold``
    None labels ``foreground > int(255 * seed_threshold)`` alone.
    """
    box = grid.box(index)
    maps = read_maps(maps_spec, box, 1 if contour_threshold is None else 2)
    contour = None if contour_threshold is None else maps[1]
    if foreground_path is not None:
        open_work_array(foreground_path)[(slice(0, 1),) + slices(box)] = maps[:1]
    labels, n = label_seeds(maps[0], contour, seed_threshold, contour_threshold or 0.0, connectivity)
    del maps, contour
    if labels.dtype != np.uint32:
        raise ValueError(f"block {index} holds more than 2**32 - 1 voxels; use smaller blocks")
    open_work_array(seeds_path)[slices(box)] = labels
    if faces_dir is not None:
        save_faces(faces_dir, grid, index, labels)
    return {"sizes": dense_sizes(labels, n), "first": first_voxels(labels, box, grid.shape, n)}


FACE_NAMES = ("z0", "z1", "y0", "y1", "x0", "x1")  # axis, 0 = first layer, 1 = last layer


def _face_file(faces_dir, grid, index):
    return os.path.join(faces_dir, f"{grid.flat(index)}.npz")


def save_faces(faces_dir, grid, index, labels):
    """Save the six boundary layers of block ``index``'s local ids (``labels``: its whole box).

    One ``.npz`` per block (2.5 MB for 64 x 512 x 512 uint32; uncompressed: the stitch reads each
    layer up to four times), written under a temporary name and renamed: a file present is complete.
    """
    os.makedirs(faces_dir, exist_ok=True)
    layers = {}
    for axis in range(3):
        for end, at in ((0, 0), (1, labels.shape[axis] - 1)):
            layers[FACE_NAMES[2 * axis + end]] = np.take(labels, at, axis=axis)
    path = _face_file(faces_dir, grid, index)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **layers)
    os.replace(tmp, path)


def read_layer(faces_dir, grid, offsets, box, axis, cache):
    """Provisional ids (uint64) of ``box``, one voxel thick along ``axis`` and lying on the first or
    last layer (along ``axis``) of every block it crosses, from the saved faces."""
    origin = Box(box).begin
    out = np.zeros(Box(box).shape, np.uint64)
    for owner, sub in grid.owners(box):
        own = grid.box(owner)
        end = 0 if sub[axis][0] == own[axis][0] else 1
        if end and sub[axis][0] != own[axis][1] - 1:
            raise ValueError(f"box {list(box)} is not on a boundary layer of block {owner}")
        name = FACE_NAMES[2 * axis + end]
        if (owner, name) not in cache:  # only the layers this block's stitch touches
            with np.load(_face_file(faces_dir, grid, owner)) as stored:
                cache[(owner, name)] = stored[name]
        layer = cache[(owner, name)]
        rest = [(a - o, b - o) for ax, ((a, b), o) in enumerate(zip(sub, own.begin)) if ax != axis]
        part = layer[tuple(slice(a, b) for a, b in rest)].astype(np.uint64)
        part[part > 0] += offsets[owner]
        out[sub.slices(origin)] = np.expand_dims(part, axis)
    return out


def first_voxels(labels, box, shape, n=None):
    """(n + 1) uint64: the global raster index of each local id's first voxel ([0] unused).

    Local ids 1..n are numbered in raster order of their first voxel, so the first voxels are
    where the running maximum of the ids grows (one pass of a Cython loop). ``n``: the id count
    (default: the largest id).
    """
    from connectomics._ext import labels as kernel

    flat = np.ascontiguousarray(labels).reshape(-1)
    n = int(flat.max(initial=0)) if n is None else int(n)
    local = np.zeros(n + 1, np.int64)
    if kernel.first_positions(flat, local):
        raise ValueError(f"labels of box {list(box)} hold ids above their count {n}")
    z, y, x = np.unravel_index(local[1:], labels.shape)
    origin = [a for a, _ in box]
    first = np.zeros(n + 1, np.uint64)
    first[1:] = np.ravel_multi_index((z + origin[0], y + origin[1], x + origin[2]), shape)
    return first


def provisional_offsets(grid, counts):
    """(grid shape) uint64 offsets: block b's local id i is provisional id ``offset[b] + i``."""
    flat = np.array([counts[index] for index in grid.indices()], np.uint64)
    return (np.cumsum(flat) - flat).reshape(grid.grid_shape)


def face_pairs(index, faces_dir, grid, offsets, connectivity):
    """Stage 3 for one block: ``{'pairs': (P, 2) uint64}`` provisional ids that touch across its faces."""
    core = grid.box(index)
    # backward neighbours lie one voxel below in z, and one voxel either side in y / x (26-conn. only)
    after = 0 if connectivity == 6 else 1
    ext = tuple((max(0, a - 1), min(n, b + (after if axis else 0)))
                for axis, ((a, b), n) in enumerate(zip(core, grid.shape)))
    found, cache = [], {}
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
            if Box(box).empty:
                continue
            here = read_layer(faces_dir, grid, offsets, box, axis, cache)
            there = read_layer(faces_dir, grid, offsets, Box(box).shift(offset), axis, cache)
            touch = (here != 0) & (there != 0) & (here != there)
            if touch.any():
                found.append(np.stack([here[touch], there[touch]], axis=1))
    if not found:
        return {"pairs": np.zeros((0, 2), np.uint64)}
    pairs = np.concatenate(found)
    # unique rows, sorted as np.unique(axis=0) sorts them, without its slow row sort
    order = np.lexsort((pairs[:, 1], pairs[:, 0]))
    pairs = pairs[order]
    keep = np.ones(len(pairs), bool)
    keep[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    return {"pairs": pairs[keep]}


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
