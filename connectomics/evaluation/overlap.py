"""The GT x prediction overlap table, built in one streaming pass along z.

Each slab of ``chunk_slices`` slices is read once from both volumes and every voxel adds one
to the count of its (gt id, pred id) pair (the Cython kernel ``connectomics._ext.overlap``;
``count_pairs_numpy`` is its plain NumPy oracle and fallback). From the pair counts follow
the instance sizes (sum over the other id, background included) and the intersections
(pairs with both ids > 0). A reader thread fetches the next slab while the kernel counts the
current one. Memory: two slabs of each volume, about
``2 * chunk_slices * Y * X * (itemsize_gt + itemsize_pred)`` bytes (a slab is capped at
``max_slab_mib``, default 128 MiB, so at most ~0.5 GiB), plus the table, which grows with the
number of distinct pairs, not with the volume depth or the largest id.
"""
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from connectomics.evaluation.sources import open_pair

logger = logging.getLogger(__name__)

MAX_SLAB_MIB = 128  # default cap on one slab of one volume: 8 slices of 2048 x 2048 uint32

try:
    from connectomics._ext.overlap import PairCounter, count_pairs
except ImportError:  # pragma: no cover - exercised only without a build
    PairCounter = count_pairs = None


@dataclass
class OverlapTable:
    """Instance sizes and intersections of a GT and a prediction volume (ids > 0 only).

    ``gt_ids``/``pred_ids``: sorted unique uint64 ids; ``gt_sizes``/``pred_sizes``: int64 voxel
    counts; ``pair_gt``, ``pair_pred`` (uint64) and ``pair_voxels`` (int64): one entry per
    overlapping (gt, pred) pair, sorted by (pred, gt).
    """

    gt_ids: np.ndarray
    gt_sizes: np.ndarray
    pred_ids: np.ndarray
    pred_sizes: np.ndarray
    pair_gt: np.ndarray
    pair_pred: np.ndarray
    pair_voxels: np.ndarray
    shape: tuple = ()


def _sum_by_id(ids, counts):
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)


def table_from_pairs(gt, pred, counts, shape=()):
    """Build an ``OverlapTable`` from voxel counts per (gt id, pred id) pair (zeros included)."""
    gt = np.asarray(gt, np.uint64)
    pred = np.asarray(pred, np.uint64)
    counts = np.asarray(counts, np.int64)
    gt_ids, gt_sizes = _sum_by_id(gt[gt > 0], counts[gt > 0])
    pred_ids, pred_sizes = _sum_by_id(pred[pred > 0], counts[pred > 0])
    both = (gt > 0) & (pred > 0)
    order = np.lexsort((gt[both], pred[both]))
    return OverlapTable(gt_ids, gt_sizes, pred_ids, pred_sizes, gt[both][order],
                        pred[both][order], counts[both][order], tuple(shape))


def count_pairs_numpy(gt, pred):
    """NumPy oracle of the kernel: ``(gt_ids, pred_ids, counts)`` of the voxel pairs of two arrays."""
    gt = np.asarray(gt).ravel()
    pred = np.asarray(pred).ravel()
    gt_u, gt_i = np.unique(gt, return_inverse=True)
    pred_u, pred_i = np.unique(pred, return_inverse=True)
    key = gt_i.astype(np.int64) * len(pred_u) + pred_i
    keys, counts = np.unique(key, return_counts=True)
    return (gt_u[keys // len(pred_u)].astype(np.uint64), pred_u[keys % len(pred_u)].astype(np.uint64),
            counts.astype(np.int64))


class _NumpyCounter:
    """Fallback accumulator with the ``PairCounter`` interface (slow; for tests and no-build use)."""

    def __init__(self):
        self.parts = []

    def add(self, gt, pred):
        self.parts.append(count_pairs_numpy(gt, pred))

    def items(self):
        if not self.parts:
            return tuple(np.zeros(0, t) for t in (np.uint64, np.uint64, np.int64))
        gt, pred, counts = (np.concatenate(p) for p in zip(*self.parts))
        return count_pairs_numpy_weighted(gt, pred, counts)


def count_pairs_numpy_weighted(gt, pred, counts):
    """Merge duplicate (gt, pred) pairs by summing their counts."""
    pairs = np.stack([gt, pred], axis=1)
    unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
    total = np.bincount(inverse.ravel(), weights=counts, minlength=len(unique)).astype(np.int64)
    return unique[:, 0], unique[:, 1], total


def new_counter(use_kernel=True):
    """A pair accumulator: the Cython ``PairCounter`` when built, else the NumPy fallback."""
    if use_kernel and PairCounter is not None:
        return _KernelCounter()
    if use_kernel:
        logger.warning("connectomics._ext.overlap is not built; using the slow NumPy overlap "
                       "path (build it: python setup.py build_ext --inplace)")
    return _NumpyCounter()


class _KernelCounter:
    def __init__(self):
        self.table = PairCounter()

    def add(self, gt, pred):
        count_pairs(self.table, gt.reshape(-1), pred.reshape(-1))

    def items(self):
        return self.table.items()


def slab_depth(chunk_slices, shape, itemsizes, max_slab_mib=MAX_SLAB_MIB):
    """Slices per read: ``chunk_slices``, capped so one slab of one volume is <= ``max_slab_mib``."""
    if int(chunk_slices) < 1:
        raise ValueError(f"chunk_slices must be >= 1, got {chunk_slices}")
    if max_slab_mib is None:
        return int(chunk_slices)
    slice_bytes = int(np.prod(shape[1:])) * max(max(itemsizes), 4)
    return max(1, min(int(chunk_slices), int(max_slab_mib * 2**20) // max(slice_bytes, 1)))


def overlap_table(gt, pred, chunk_slices=100, slices=None, use_kernel=True, progress=None,
                  max_slab_mib=MAX_SLAB_MIB):
    """Stream both volumes slab by slab along z and return their ``OverlapTable``.

    Args:
        gt, pred: (Z, Y, X) (or (1, Z, Y, X)) integer label volumes: arrays, h5py datasets or
            ``file.h5[:key]`` specs, of equal shape; 0 = background.
        chunk_slices: slices read per slab (official ``-cz``); sets the memory.
        slices: optional (z0, z1) sub-range (official ``-sl``); None = all slices.
        use_kernel: False forces the NumPy path (testing).
        progress: tqdm switch (None: only on a terminal).
        max_slab_mib: cap on one slab of one volume (MiB), so a large ``chunk_slices`` on wide
            slices cannot exhaust memory; None = no cap.
    """
    counter = new_counter(use_kernel)
    with open_pair(gt, pred, slices) as (gt_src, pred_src, (z0, z1)):
        step = slab_depth(chunk_slices, gt_src.shape, (gt_src.dtype.itemsize, pred_src.dtype.itemsize),
                          max_slab_mib)
        if step < int(chunk_slices):
            logger.info("reading %d slices at a time (chunk_slices %s capped at %s MiB per slab)",
                        step, chunk_slices, max_slab_mib)

        def read(start):
            stop = min(start + step, z1)
            return gt_src.read(start, stop), pred_src.read(start, stop)

        starts = list(range(z0, z1, step))
        # a reader thread fetches slab k + 1 while the kernel (GIL released) counts slab k
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(read, starts[0]) if starts else None
            for k in tqdm(range(len(starts)), desc="overlap", unit="slab",
                          disable=None if progress is None else not progress):
                gt_slab, pred_slab = pending.result()
                if k + 1 < len(starts):
                    pending = reader.submit(read, starts[k + 1])
                counter.add(gt_slab, pred_slab)
                del gt_slab, pred_slab
        shape = (z1 - z0,) + gt_src.shape[1:]
    return table_from_pairs(*counter.items(), shape=shape)
