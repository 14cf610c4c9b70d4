"""Seeds: thresholded uint8 maps and their connected components, labelled slab by slab.

The seed mask is never built for the whole volume: each z-slab is thresholded
and labelled with cc3d, its ids are offset into the output, and components
that continue across slab faces are joined afterwards (a union-find over the
face pairs, ``scipy.sparse.csgraph``). The only full-size allocation is the
label volume itself (4 B/voxel).
"""
import cc3d
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from connectomics._ext import watershed as _kernel
from connectomics.postprocess.maps import SLAB, threshold_level

UINT32_MAX = np.iinfo(np.uint32).max
SLAB_VOXELS = 2 ** 22  # voxels labelled per cc3d call (bounds cc3d's ~6 B/voxel working memory)


def seed_mask(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8):
    """(Z, Y, X) bool: ``foreground > int(255 * seed_threshold)`` and ``contour < int(255 * contour_threshold)``.

    foreground, contour: (Z, Y, X) uint8 maps (contour optional).
    """
    seed_level = threshold_level(seed_threshold, "seed_threshold")
    contour_level = None if contour is None else threshold_level(contour_threshold, "contour_threshold")
    mask = np.empty(foreground.shape, bool)
    for z in range(0, foreground.shape[0], SLAB):
        part = mask[z:z + SLAB]
        np.greater(foreground[z:z + SLAB], seed_level, out=part)
        if contour_level is not None:
            part &= contour[z:z + SLAB] < contour_level
    return mask


def _face_pairs(upper, lower, connectivity):
    """(a, b) id pairs of touching voxels across a z-face (upper = last plane of a slab)."""
    shifts = [(0, 0)] if connectivity == 6 else [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    pairs = []
    ny, nx = upper.shape
    for dy, dx in shifts:
        a = upper[max(dy, 0):ny + min(dy, 0), max(dx, 0):nx + min(dx, 0)]
        b = lower[max(-dy, 0):ny + min(-dy, 0), max(-dx, 0):nx + min(-dx, 0)]
        touching = (a != 0) & (b != 0)
        pairs.append(np.stack([a[touching], b[touching]]).astype(np.uint64))
    pairs = np.concatenate(pairs, axis=1)
    if pairs.size and pairs.max() <= UINT32_MAX:  # one sortable key per pair: far faster than axis=1
        keys = np.unique((pairs[0] << np.uint64(32)) | pairs[1])
        return np.stack([keys >> np.uint64(32), keys & np.uint64(UINT32_MAX)]).astype(np.int64)
    return np.unique(pairs, axis=1).astype(np.int64)


def _groups(n, pairs):
    """Map provisional id -> component id (consecutive, raster order of first voxel); None if no pairs."""
    if pairs.shape[1] == 0:
        return None
    graph = sparse.coo_matrix((np.ones(pairs.shape[1], np.int8), (pairs[0], pairs[1])), shape=(n + 1, n + 1))
    n_comp, comp = csgraph.connected_components(graph, directed=False)
    first = np.full(n_comp, n + 1, np.int64)  # smallest provisional id of a component = its first voxel
    np.minimum.at(first, comp, np.arange(n + 1))
    rank = np.empty(n_comp, np.int64)
    rank[np.argsort(first)] = np.arange(n_comp)  # the component of id 0 ranks 0
    return rank[comp]


def provisional_components(mask_of_slab, shape, connectivity=6, slab_voxels=None):
    """Slab-wise components before joining across slab faces -> (labels, n_provisional, groups).

    mask_of_slab: ``callable(z0, z1) -> (z1 - z0, Y, X) bool``; shape: (Z, Y, X).
    labels: (Z, Y, X) uint32 (uint64 for volumes of more than 2**32 - 1
    voxels), ids 1..n_provisional; groups: int64 array mapping each
    provisional id to its component id, or None when no component crosses a
    face (the ids are then final). Applying ``groups`` can wait: the watershed
    and the size filter give the same result on provisional ids.
    slab_voxels: voxels per cc3d call (default ``SLAB_VOXELS``).
    """
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity = {connectivity!r}: must be 6 or 26")
    dtype = np.uint32 if int(np.prod(shape)) <= UINT32_MAX else np.uint64
    labels = np.zeros(shape, dtype)
    # at most SLAB_VOXELS and at most 1/8 of the volume per cc3d call
    depth = max(1, min((slab_voxels or SLAB_VOXELS) // max(1, shape[1] * shape[2]), -(-shape[0] // 8)))
    n, pairs = 0, []
    for z0 in range(0, shape[0], depth):
        z1 = min(z0 + depth, shape[0])
        part, count = cc3d.connected_components(mask_of_slab(z0, z1), connectivity=connectivity,
                                                return_N=True, out_dtype=np.uint32)
        if count:
            _kernel.add_offset(part.reshape(-1), labels[z0:z1].reshape(-1), n)
        n += int(count)
        if z0 and count:
            pairs.append(_face_pairs(labels[z0 - 1], labels[z0], connectivity))
    pairs = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), np.int64)
    return labels, n, _groups(n, pairs)


def label_components(mask_of_slab, shape, connectivity=6, slab_voxels=None):
    """Connected components of a mask given slab by slab -> (labels, n).

    Returns (Z, Y, X) labels (see ``provisional_components``), 0 = background,
    ids 1..n in raster order of first voxel (as cc3d numbers them).
    """
    labels, n, groups = provisional_components(mask_of_slab, shape, connectivity, slab_voxels)
    if groups is None:
        return labels, n
    _kernel.apply_lut(labels.reshape(-1), groups.astype(labels.dtype))
    return labels, int(groups.max())


def seed_slabs(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8):
    """``callable(z0, z1)`` giving the seed mask (see ``seed_mask``) slab by slab."""
    seed_level = threshold_level(seed_threshold, "seed_threshold")
    contour_level = None if contour is None else threshold_level(contour_threshold, "contour_threshold")

    def mask_of_slab(z0, z1):
        mask = foreground[z0:z1] > seed_level
        if contour_level is not None:
            mask &= contour[z0:z1] < contour_level
        return mask

    return mask_of_slab


def label_seeds(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8, connectivity=6):
    """Components of the seed mask (see ``seed_mask``) without building it -> (labels, n)."""
    mask_of_slab = seed_slabs(foreground, contour, seed_threshold, contour_threshold)
    return label_components(mask_of_slab, foreground.shape, connectivity)
