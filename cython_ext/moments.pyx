# distutils: language = c++
"""Per-label sums in one pass over a block: voxel count, bounding box, coordinate sums and
second moments, image and foreground sums (the morphometrics' first pass).

The Python API (``connectomics.measure.sums``) checks dtypes and contiguity, maps ids to dense
indices and allocates; this module only runs the loop. All sums are exact int64.
"""
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

import numpy as np


ctypedef fused label_t:
    uint16_t
    uint32_t
    uint64_t


def label_sums(const label_t[:, :, ::1] labels, Py_ssize_t n, const uint8_t[:, :, ::1] image,
               const uint8_t[:, :, ::1] fg, bint has_image, bint has_fg):
    """Sums per label 1..n-1 of ``labels`` (dense ids < n; 0 is background).

    Returns ``(count (n,), lo (n, 3), hi (n, 3), first (n, 3), second (n, 6), image (n,), fg (n,))``
    int64; ``second`` = sums of zz, yy, xx, zy, zx, yx; ``lo`` / ``hi``: inclusive bounding box
    (n for ids absent: lo = max int, hi = -1). ``image`` / ``fg``: same-shape uint8 (ignored unless
    ``has_image`` / ``has_fg``; pass any 3D uint8 array then).
    """
    cdef Py_ssize_t nz = labels.shape[0], ny = labels.shape[1], nx = labels.shape[2]
    count_a = np.zeros(n, np.int64)
    lo_a = np.full((n, 3), np.iinfo(np.int64).max, np.int64)
    hi_a = np.full((n, 3), -1, np.int64)
    first_a = np.zeros((n, 3), np.int64)
    second_a = np.zeros((n, 6), np.int64)
    image_a = np.zeros(n, np.int64)
    fg_a = np.zeros(n, np.int64)
    cdef int64_t[::1] count = count_a, isum = image_a, fsum = fg_a
    cdef int64_t[:, ::1] lo = lo_a, hi = hi_a, first = first_a, second = second_a
    cdef Py_ssize_t z, y, x, l
    cdef label_t v
    with nogil:
        for z in range(nz):
            for y in range(ny):
                for x in range(nx):
                    v = labels[z, y, x]
                    if v == 0:
                        continue
                    l = <Py_ssize_t>v
                    count[l] += 1
                    if z < lo[l, 0]:
                        lo[l, 0] = z
                    if z > hi[l, 0]:
                        hi[l, 0] = z
                    if y < lo[l, 1]:
                        lo[l, 1] = y
                    if y > hi[l, 1]:
                        hi[l, 1] = y
                    if x < lo[l, 2]:
                        lo[l, 2] = x
                    if x > hi[l, 2]:
                        hi[l, 2] = x
                    first[l, 0] += z
                    first[l, 1] += y
                    first[l, 2] += x
                    second[l, 0] += z * z
                    second[l, 1] += y * y
                    second[l, 2] += x * x
                    second[l, 3] += z * y
                    second[l, 4] += z * x
                    second[l, 5] += y * x
                    if has_image:
                        isum[l] += image[z, y, x]
                    if has_fg:
                        fsum[l] += fg[z, y, x]
    return count_a, lo_a, hi_a, first_a, second_a, image_a, fg_a


def count_and_sum(const label_t[::1] labels, Py_ssize_t n, const uint8_t[::1] values):
    """Voxel count and sum of ``values`` per label 0..n-1 of the flat ``labels`` (all ids < n).

    Returns ``(count (n,), sums (n,))`` int64 (exact); label 0 is counted like any other.
    The instance-confidence table's loop: one pass, no index or weight copies.
    """
    cdef Py_ssize_t i, size = labels.shape[0]
    count_a = np.zeros(n, np.int64)
    sums_a = np.zeros(n, np.int64)
    cdef int64_t[::1] count = count_a, sums = sums_a
    cdef Py_ssize_t l
    with nogil:
        for i in range(size):
            l = <Py_ssize_t>labels[i]
            count[l] += 1
            sums[l] += values[i]
    return count_a, sums_a
