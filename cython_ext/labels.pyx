# distutils: language = c++
"""Label bookkeeping loops: seed components from row runs (union-find), label counts, lookup tables.

The Python API (``connectomics.postprocess.seeds`` / ``.cleanup``) checks dtypes,
shapes and contiguity and allocates; this module only runs loops.
"""
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libcpp.vector cimport vector

import numpy as np


ctypedef fused label_t:
    uint32_t
    uint64_t


cdef struct Grid:
    Py_ssize_t nz, ny, nx, nyx, n


cdef Grid _grid(Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx) noexcept nogil:
    cdef Grid g
    g.nz, g.ny, g.nx, g.nyx, g.n = nz, ny, nx, ny * nx, nz * ny * nx
    return g


cdef struct Run:  # a run of seed voxels along x in one row
    Py_ssize_t start, end  # [start, end)
    uint64_t label  # provisional label


cdef inline uint64_t _find(vector[uint64_t]& parent, uint64_t a) noexcept nogil:
    while parent[a] != a:
        parent[a] = parent[parent[a]]  # path halving
        a = parent[a]
    return a


cdef inline void _union(vector[uint64_t]& parent, uint64_t a, uint64_t b) noexcept nogil:
    a, b = _find(parent, a), _find(parent, b)
    if a < b:  # the smaller label is the root: roots come in raster order of first voxel
        parent[b] = a
    elif b < a:
        parent[a] = b


cdef int _row_runs(const uint8_t* fg, const uint8_t* contour, Py_ssize_t base, Py_ssize_t nx,
                   int seed_level, int contour_level, vector[Run]& runs) except -1 nogil:
    """Append the seed runs of the row starting at flat index ``base`` (labels not yet set)."""
    cdef Py_ssize_t x = 0
    cdef Run run
    run.label = 0
    while x < nx:
        if fg[base + x] > seed_level and (contour == NULL or contour[base + x] < contour_level):
            run.start = x
            x += 1
            while x < nx and fg[base + x] > seed_level and (contour == NULL or contour[base + x] < contour_level):
                x += 1
            run.end = x
            runs.push_back(run)
        x += 1
    return 0


cdef void _link(vector[Run]& runs, Py_ssize_t first, Py_ssize_t stop, const vector[Run]& above,
                Py_ssize_t lo, Py_ssize_t hi, int reach, vector[uint64_t]& parent) noexcept nogil:
    """Join runs[first:stop] with the runs above[lo:hi] of a neighbouring row they touch."""
    cdef Py_ssize_t r, q
    for r in range(first, stop):
        while lo < hi and above[lo].end + reach <= runs[r].start:
            lo += 1
        q = lo
        while q < hi and above[q].start < runs[r].end + reach:
            if runs[r].label == 0:
                runs[r].label = above[q].label
            else:
                _union(parent, runs[r].label, above[q].label)
            q += 1


cdef int _label_runs(const uint8_t* fg, const uint8_t* contour, int seed_level, int contour_level,
                     label_t* labels, const Grid* g, int connectivity, vector[uint64_t]& parent) except -1 nogil:
    cdef vector[Run] previous, current  # the runs of the previous and of the current plane
    cdef vector[Py_ssize_t] previous_rows = vector[Py_ssize_t](g.ny + 1, 0), rows = vector[Py_ssize_t](g.ny + 1, 0)
    cdef Py_ssize_t z, y, r, x, first, dy
    cdef int reach = 1 if connectivity == 26 else 0  # diagonal contacts: runs touch one voxel further
    for z in range(g.nz):
        current.clear()
        for y in range(g.ny):
            first = current.size()
            _row_runs(fg, contour, z * g.nyx + y * g.nx, g.nx, seed_level, contour_level, current)
            rows[y + 1] = current.size()
            if y > 0:
                _link(current, first, rows[y + 1], current, rows[y - 1], rows[y], reach, parent)
            if z > 0:
                for dy in range(-reach, reach + 1):
                    if 0 <= y + dy < g.ny:
                        _link(current, first, rows[y + 1], previous, previous_rows[y + dy],
                              previous_rows[y + dy + 1], reach, parent)
            for r in range(first, rows[y + 1]):
                if current[r].label == 0:  # a new component (so far)
                    current[r].label = parent.size()
                    parent.push_back(parent.size())
                for x in range(current[r].start, current[r].end):
                    labels[z * g.nyx + y * g.nx + x] = <label_t>current[r].label
        previous.swap(current)
        previous_rows.swap(rows)
    return 0


def label_seed_runs(const uint8_t[:, :, ::1] foreground, const uint8_t[:, :, ::1] contour, int seed_level,
                    int contour_level, label_t[:, :, ::1] labels, int connectivity):
    """Components of ``foreground > seed_level & contour < contour_level`` (contour may be None).

    Writes provisional ids (one per run that starts a component or a branch)
    into ``labels`` (zeroed, same shape) and returns ``groups``, int64:
    provisional id -> component id, components numbered 1..n in raster order
    of their first voxel (as cc3d numbers them); ``groups[0] = 0``.
    Connectivity 6 or 26. One raster pass; no mask array.
    """
    cdef Grid g = _grid(foreground.shape[0], foreground.shape[1], foreground.shape[2])
    cdef const uint8_t* contour_ptr = NULL
    if contour is not None:
        contour_ptr = &contour[0, 0, 0]
    cdef vector[uint64_t] parent = vector[uint64_t](1, 0)  # id 0: background
    cdef Py_ssize_t p, n = 0
    with nogil:
        _label_runs(&foreground[0, 0, 0], contour_ptr, seed_level, contour_level, &labels[0, 0, 0], &g,
                    connectivity, parent)
    groups = np.zeros(parent.size(), np.int64)
    cdef long long[::1] out = groups
    for p in range(1, <Py_ssize_t>parent.size()):
        if _find(parent, p) == <uint64_t>p:
            n += 1
            out[p] = n
        else:
            out[p] = out[_find(parent, p)]
    return groups


def count_labels(const label_t[::1] labels, uint64_t[::1] counts):
    """``counts[id] += 1`` per voxel; returns the number of ids >= len(counts) (not counted)."""
    cdef Py_ssize_t i, n = counts.shape[0], missed = 0, zeros = 0
    cdef label_t value
    with nogil:
        for i in range(labels.shape[0]):
            value = labels[i]
            if value == 0:
                zeros += 1  # a register, not a chain of increments of counts[0] in memory
            elif value < <uint64_t>n:
                counts[value] += 1
            else:
                missed += 1
        if n:
            counts[0] += zeros
    return missed


def apply_lut(label_t[::1] labels, const label_t[::1] lut):
    """``labels = lut[labels]`` in place; returns the number of ids >= len(lut) (left unchanged)."""
    cdef Py_ssize_t i, n = lut.shape[0], missed = 0
    cdef label_t value
    with nogil:
        for i in range(labels.shape[0]):
            value = labels[i]
            if value < <uint64_t>n:
                labels[i] = lut[value]
            else:
                missed += 1
    return missed


def first_positions(const label_t[::1] labels, int64_t[::1] first):
    """``first[id]`` = flat index of the first voxel of each id, for ids numbered in raster order of
    their first voxel (``first`` holds n + 1 entries); returns the number of ids >= n (not recorded)."""
    cdef Py_ssize_t i, size = labels.shape[0], n = first.shape[0], missed = 0
    cdef label_t top = 0, value
    with nogil:
        for i in range(size):
            value = labels[i]
            if value > top:
                top = value
                if <Py_ssize_t>value < n:
                    first[value] = i
                else:
                    missed += 1
    return missed
