# distutils: language = c++
"""Voxel-pair counting for the evaluator: how many voxels carry each (gt id, pred id) pair.

One pass over two flat label arrays of equal length. Runs of identical pairs (background,
the inside of an instance along x) are collapsed first, so the hash table sees one update
per run rather than per voxel. The table is an open-addressing hash (linear probing,
power-of-two capacity, load <= 1/2) keyed on the full 64-bit ids, so any uint64 id works
and memory depends on the number of distinct pairs, not on the largest id.

Python owns the checks (dtype, contiguity, equal length); see
``connectomics.evaluation.overlap`` for the caller and the NumPy oracle.
"""
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libcpp.vector cimport vector

import numpy as np

ctypedef fused gt_t:
    uint32_t
    uint64_t

ctypedef fused pred_t:
    uint32_t
    uint64_t

cdef struct Entry:
    uint64_t gt
    uint64_t pred
    int64_t count  # 0 marks an empty slot: stored counts are always >= 1


cdef inline uint64_t _hash(uint64_t g, uint64_t p) noexcept nogil:
    # splitmix64 finaliser over a combination of both ids
    cdef uint64_t h = g * <uint64_t>0x9E3779B97F4A7C15 + p * <uint64_t>0xC2B2AE3D27D4EB4F
    h ^= h >> 30
    h *= <uint64_t>0xBF58476D1CE4E5B9
    h ^= h >> 27
    h *= <uint64_t>0x94D049BB133111EB
    h ^= h >> 31
    return h


cdef class PairCounter:
    """Accumulates voxel counts per (gt id, pred id) pair over any number of chunks."""
    cdef vector[Entry] _slots
    cdef size_t _mask
    cdef size_t _size

    def __cinit__(self, size_t capacity=4096):
        cdef size_t cap = 16
        while cap < 2 * capacity:
            cap <<= 1
        self._slots.resize(cap)  # value-initialised: all counts 0
        self._mask = cap - 1
        self._size = 0

    def __len__(self):
        return self._size

    cdef void _add(self, uint64_t g, uint64_t p, int64_t n) noexcept nogil:
        cdef Entry* slots = self._slots.data()
        cdef size_t i = _hash(g, p) & self._mask
        while slots[i].count != 0:
            if slots[i].gt == g and slots[i].pred == p:
                slots[i].count += n
                return
            i = (i + 1) & self._mask
        slots[i].gt = g
        slots[i].pred = p
        slots[i].count = n
        self._size += 1
        if 2 * self._size > self._mask + 1:
            self._grow()

    cdef void _grow(self) noexcept nogil:
        cdef vector[Entry] old
        old.swap(self._slots)
        cdef size_t cap = 2 * old.size()
        self._slots.resize(cap)
        self._mask = cap - 1
        self._size = 0
        cdef size_t k
        for k in range(old.size()):
            if old[k].count != 0:
                self._add(old[k].gt, old[k].pred, old[k].count)

    def items(self):
        """``(gt_ids uint64 (N,), pred_ids uint64 (N,), counts int64 (N,))``, unordered."""
        gt = np.empty(self._size, np.uint64)
        pred = np.empty(self._size, np.uint64)
        counts = np.empty(self._size, np.int64)
        cdef uint64_t[::1] gv = gt
        cdef uint64_t[::1] pv = pred
        cdef int64_t[::1] cv = counts
        cdef size_t k, j = 0
        for k in range(self._slots.size()):
            if self._slots[k].count != 0:
                gv[j] = self._slots[k].gt
                pv[j] = self._slots[k].pred
                cv[j] = self._slots[k].count
                j += 1
        return gt, pred, counts


cdef void _scan(PairCounter table, const gt_t[::1] gt, const pred_t[::1] pred) noexcept nogil:
    cdef Py_ssize_t i, n = gt.shape[0]
    if n == 0:
        return
    cdef uint64_t cur_g = gt[0], cur_p = pred[0], g, p
    cdef int64_t run = 1
    for i in range(1, n):
        g = gt[i]
        p = pred[i]
        if g == cur_g and p == cur_p:
            run += 1
        else:
            table._add(cur_g, cur_p, run)
            cur_g = g
            cur_p = p
            run = 1
    table._add(cur_g, cur_p, run)


def count_pairs(PairCounter table, const gt_t[::1] gt, const pred_t[::1] pred):
    """Add the voxel pairs of two flat, equally long uint32/uint64 label arrays to ``table``.

    Releases the GIL, so a reader thread can fetch the next chunk meanwhile.
    """
    if gt.shape[0] != pred.shape[0]:
        raise ValueError(f"label arrays differ in length: {gt.shape[0]} != {pred.shape[0]}")
    with nogil:
        _scan(table, gt, pred)
