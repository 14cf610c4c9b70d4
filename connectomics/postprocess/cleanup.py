"""Small-instance removal and consecutive relabelling, in place and without int64 copies.

Sizes come from one counting pass (a dense table when the largest id is
known, else ``fastremap.unique``): no sort and no intp cast of the volume,
unlike ``np.bincount`` / ``skimage.remove_small_objects``. The relabelling is
one in-place pass (a lookup table, or ``fastremap.remap``). Instances too wide to be what the
training labels hold (mean cross-section above a limit, ``remove_wide_instances``) go the same way.
"""
import logging

import cc3d
import fastremap
import numpy as np

from connectomics._ext import labels as _kernel

logger = logging.getLogger(__name__)

SMALL_MODES = ("background", "neighbor")
UINT32_MAX = np.iinfo(np.uint32).max


def label_dtype(n_labels):
    """The output dtype for ``n_labels`` instances: uint32, or uint64 above 2**32 - 1."""
    if n_labels < 0:
        raise ValueError(f"n_labels = {n_labels} must be >= 0")
    return np.dtype(np.uint32) if n_labels <= UINT32_MAX else np.dtype(np.uint64)


def instance_sizes(labels):
    """``(ids, sizes)`` of the nonzero ids of a label volume, ids ascending."""
    ids, counts = fastremap.unique(labels, return_counts=True)
    keep = ids != 0
    return ids[keep], counts[keep]


def _best_neighbours(labels, small, large, groups=None):
    """For each small id, the large id it shares the most faces with (6-connected), or 0.

    With ``groups``, ids of ``labels`` are first mapped through it (and
    ``small`` / ``large`` are group ids).
    """
    contacts = {}
    for (a, b), count in cc3d.contacts(labels, connectivity=6, surface_area=False).items():
        if groups is not None:
            a, b = int(groups[a]), int(groups[b])
        if a != b:
            contacts[a, b] = contacts.get((a, b), 0) + count
    small_set, large_set = set(small.tolist()), set(large.tolist())
    best = {}  # small id -> (contact count, -large id)
    for (a, b), count in contacts.items():
        for s, t in ((a, b), (b, a)):
            if s in small_set and t in large_set:
                key = (count, -t)  # most contact; ties to the lower id
                if s not in best or key > best[s]:
                    best[s] = key
    return {s: -key[1] for s, key in best.items()}


def dense_sizes(labels, max_id):
    """``sizes[id]`` (uint64) for ids 0..max_id in one pass; ValueError if an id exceeds max_id."""
    sizes = np.zeros(int(max_id) + 1, np.uint64)
    if _kernel.count_labels(labels.reshape(-1), sizes):
        raise ValueError(f"labels hold ids above max_id = {max_id}")
    return sizes


def _new_ids(sizes, min_size, mode, labels, groups):
    """Lookup table old id -> new id (kept instances 1..n in id order) and n, from dense sizes."""
    if groups is not None:
        group_sizes = np.zeros(int(groups.max()) + 1, np.uint64)
        np.add.at(group_sizes, groups, sizes)
        sizes = group_sizes
    present = sizes > 0
    present[0] = False
    large, small = np.flatnonzero(present & (sizes >= min_size)), np.flatnonzero(present & (sizes < min_size))
    table = np.zeros(len(sizes), np.int64)
    table[large] = np.arange(1, len(large) + 1)
    if mode == "neighbor" and len(small):
        for s, t in _best_neighbours(labels, small, large, groups).items():
            table[s] = table[t]
    return (table if groups is None else table[groups]), len(large), present


def _sparse_relabel(labels, min_size, mode):
    """The path for ids of unknown range: ``fastremap.unique`` and ``fastremap.remap``."""
    ids, sizes = instance_sizes(labels)
    small, large = ids[sizes < min_size], ids[sizes >= min_size]
    table = dict(zip(large.tolist(), range(1, len(large) + 1)))
    merge = _best_neighbours(labels, small, large) if mode == "neighbor" and len(small) else {}
    table.update({s: table.get(merge.get(s, 0), 0) for s in small.tolist()})
    if any(old != new for old, new in table.items()):
        fastremap.remap(labels, {0: 0, **table}, in_place=True)
    return len(large)


def remove_small_instances(labels, min_size=128, mode="background", max_id=None, sizes=None, groups=None):
    """Remove instances with fewer than ``min_size`` voxels and relabel 1..n, in place.

    labels: (Z, Y, X) uint32 / uint64 (other integer dtypes are converted),
        0 = background.
    mode: ``'background'``: small instances become 0; ``'neighbor'``: a small
        instance joins the instance (of at least ``min_size`` voxels) it shares
        the most 6-connected faces with (ties to the lower id), or becomes 0 if
        it touches none. (The predecessor counted its in-plane 3x3 ring instead.)
    max_id: the largest id present, when known: sizes are then counted in one
        pass into a dense table, and relabelled with one lookup-table pass;
        otherwise ``fastremap.unique`` / ``fastremap.remap``.
    sizes: the dense table itself when already known (``sizes[id]`` = voxels,
        e.g. from ``seeded_watershed(..., sizes=...)``): no counting pass.
    groups: dense map id -> instance (e.g. ``seeds.provisional_components``):
        the ids of a group form one instance.

    Returns ``(labels, n)``: consecutive ids 1..n in the order of the old ids
    (of the groups), dtype ``label_dtype(n)`` (the input array when it fits).
    """
    if mode not in SMALL_MODES:
        raise ValueError(f"small-instance mode {mode!r}: must be one of {', '.join(SMALL_MODES)}")
    if min_size < 0:
        raise ValueError(f"min_size = {min_size} must be >= 0")
    if labels.dtype not in (np.uint32, np.uint64) or not labels.flags.c_contiguous:
        if not np.issubdtype(labels.dtype, np.integer) or labels.min(initial=0) < 0:
            raise ValueError(f"labels: expected non-negative integer ids, got dtype {labels.dtype}")
        labels = np.ascontiguousarray(labels, dtype=np.uint64 if labels.max(initial=0) > UINT32_MAX else np.uint32)
    if sizes is None and max_id is not None and max_id <= max(labels.size // 8, 1024):  # table <= 1 B/voxel
        sizes = dense_sizes(labels, max_id)
    if sizes is None:
        if groups is not None:
            raise ValueError("groups need dense sizes: pass max_id or sizes")
        n = _sparse_relabel(labels, min_size, mode)
    else:
        table, n, present = _new_ids(np.asarray(sizes, np.uint64), min_size, mode, labels, groups)
        ids = np.flatnonzero(present) if groups is None else np.flatnonzero(sizes)
        if not np.array_equal(table[ids], ids):
            _kernel.apply_lut(labels.reshape(-1), table.astype(labels.dtype))
    dtype = label_dtype(n)
    return (labels if labels.dtype == dtype else labels.astype(dtype)), n


def slice_spans(labels, z0=0):
    """``(ids, voxels, first, last)`` of the nonzero ids of a (Z, Y, X) label volume, one slice read at a time.

    ids: ascending (the labels' dtype); voxels: uint64 counts; first / last: int64 z of the first and last
    slice holding each id, counted from ``z0`` (a block's global z). ``labels`` may be a lazily read
    array (``h5py`` / zarr): only one slice is in memory at a time.
    """
    per_slice = []
    for z in range(labels.shape[0]):
        ids, counts = fastremap.unique(np.asarray(labels[z]), return_counts=True)
        keep = ids != 0
        per_slice.append((ids[keep], counts[keep]))
    ids = np.unique(np.concatenate([i for i, _ in per_slice])) if per_slice else np.zeros(0, labels.dtype)
    voxels = np.zeros(len(ids), np.uint64)
    first = np.full(len(ids), np.iinfo(np.int64).max, np.int64)
    last = np.full(len(ids), -1, np.int64)
    for z, (present, counts) in enumerate(per_slice):
        at = np.searchsorted(ids, present)
        voxels[at] += counts.astype(np.uint64)
        first[at] = np.minimum(first[at], z0 + z)
        last[at] = z0 + z
    return ids, voxels, first, last


def mean_sections(voxels, first, last):
    """Mean cross-section (float64 pixels) per id: voxels / slices spanned (last - first + 1); 0 for absent ids.

    A 3D-connected instance occupies every slice between its first and last one, so this is its
    mean area per slice."""
    span = np.maximum(np.asarray(last) - np.asarray(first) + 1, 1)
    return np.where(np.asarray(voxels) > 0, np.asarray(voxels, np.float64) / span, 0.0)


def remove_wide_instances(labels, max_section, n=None):
    """Remove instances whose mean cross-section (voxels / slices spanned) exceeds ``max_section`` pixels.

    labels: (Z, Y, X) uint32 / uint64 with consecutive ids 1..n (a decoder's output), changed in place;
    ``n``: that count when known (else one pass finds it). ``max_section`` <= 0 removes nothing and
    reads nothing more. Returns ``(labels, n)`` relabelled 1..n in id order.
    """
    if n is None:
        n = int(labels.max(initial=0))
    if max_section <= 0 or n == 0:
        return labels, n
    ids, voxels, first, last = slice_spans(labels)
    wide = np.zeros(n + 1, bool)
    wide[ids.astype(np.int64)] = mean_sections(voxels, first, last) > max_section
    if not wide.any():
        return labels, n
    table = np.zeros(n + 1, labels.dtype)
    kept = np.flatnonzero(~wide)[1:]
    table[kept] = np.arange(1, len(kept) + 1, dtype=labels.dtype)
    logger.info("removed %d instance(s) with a mean cross-section above %g pixels (POSTPROCESS.MAX_SECTION)",
                int(wide.sum()), max_section)
    _kernel.apply_lut(labels.reshape(-1), table)
    return labels, len(kept)
