# distutils: language = c++
"""Seeded watershed on 256-level maps with a bucket queue (linear time).

The Python API (``connectomics.postprocess.watershed``) checks dtypes, shapes
and contiguity and allocates; this module only runs loops. Seed labelling and
label counting live in ``labels.pyx``.

Flooding order, identical to scikit-image's heap watershed: the queue holds
labelled voxels keyed by (level, insertion order); the lowest level pops
first, first in first out within a level. Popping a voxel labels each of its
unlabelled in-mask neighbours at once with the popped label and queues it at
its own level (which may be below the current one). With 256 levels the
priority queue is one FIFO per level: O(1) per voxel. Seeds are queued in
raster order, and only those with a neighbour left to flood.

Levels: uint8 maps use their value; float32 maps in [0, 1] use
``floor(255 * p + 0.5)`` computed in double precision (values below 0 count as
0, above 1 as 255). ``invert`` floods ``255 - level`` instead (bright first).

Memory, besides the labels (flooded in place):

* the "open" bitmap, 1 bit per voxel still to be flooded, in 4 x 4 x 4 blocks
  of one 64-bit word each, so that a voxel's neighbours (z +- 1 included)
  mostly share its word: the random neighbour tests stay in cache and never
  touch the labels, the image or the mask;
* the "frontier" bitmap (1 bit/voxel, raster order): the seeds to queue;
* one ``std::deque`` per level, holding only the current frontier. A queued
  voxel carries its label (8 B: index and label packed when the volume has
  fewer than 2**32 voxels and the labels are uint32; 16 B otherwise), so
  popping it reads no label.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libcpp.deque cimport deque
from libcpp.vector cimport vector

import numpy as np


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    void __builtin_prefetch(const void*) nogil

cdef enum:
    AHEAD = 32  # the queue entry whose neighbourhood is prefetched while popping

ctypedef fused image_t:
    uint8_t
    float

ctypedef fused label_t:
    uint32_t
    uint64_t

cdef struct WideEntry:  # a queued voxel: flat index and label
    uint64_t index
    uint64_t label

ctypedef fused entry_t:
    uint64_t  # packed (label << 32) | index
    WideEntry

cdef struct Grid:
    Py_ssize_t nz, ny, nx, nyx, n
    Py_ssize_t by, bx  # 4 x 4 x 4 blocks along y and x
    double inv_nyx, inv_nx

# Neighbour offsets (dz, dy, dx) in scikit-image's order: raster order, stably
# sorted by L1 distance. The first 6 are the faces (6-connectivity).
cdef int[26] DZ
cdef int[26] DY
cdef int[26] DX


def _init_offsets():
    import itertools
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]
    offsets.sort(key=lambda o: abs(o[0]) + abs(o[1]) + abs(o[2]))  # stable
    for k, (dz, dy, dx) in enumerate(offsets):
        DZ[k], DY[k], DX[k] = dz, dy, dx


_init_offsets()


cdef inline Py_ssize_t _blocks(Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx) noexcept nogil:
    return ((nz + 3) // 4) * ((ny + 3) // 4) * ((nx + 3) // 4)


def open_bitmap_words(Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx):
    """Words of the blocked open bitmap of a (nz, ny, nx) volume."""
    return _blocks(nz, ny, nx)


cdef Grid _grid(Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx) noexcept nogil:
    cdef Grid g
    g.nz, g.ny, g.nx, g.nyx, g.n = nz, ny, nx, ny * nx, nz * ny * nx
    g.by, g.bx = (ny + 3) // 4, (nx + 3) // 4
    g.inv_nyx, g.inv_nx = 1.0 / g.nyx, 1.0 / nx
    return g


cdef inline int _level(image_t value, bint invert) noexcept nogil:
    cdef int q
    if image_t is uint8_t:
        q = value
    else:
        if value <= 0:
            q = 0
        elif value >= 1:
            q = 255
        else:
            q = <int>(<double>value * 255.0 + 0.5)
    return 255 - q if invert else q


cdef inline Py_ssize_t _word(const Grid* g, Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    return ((z >> 2) * g.by + (y >> 2)) * g.bx + (x >> 2)


cdef inline uint64_t _bit(Py_ssize_t z, Py_ssize_t y, Py_ssize_t x) noexcept nogil:
    return 1ULL << (((z & 3) << 4) | ((y & 3) << 2) | (x & 3))


cdef inline int _lowest(const uint64_t* occupied) noexcept nogil:
    """The lowest level whose FIFO is non-empty, 256 when all are empty."""
    cdef int w
    for w in range(4):
        if occupied[w]:
            return 64 * w + __builtin_ctzll(occupied[w])
    return 256


cdef inline Py_ssize_t _quotient(Py_ssize_t a, Py_ssize_t b, double inverse_b) noexcept nogil:
    """``a // b`` for 0 <= a < 2**52 by a multiplication (a division costs ~40 cycles), corrected."""
    cdef Py_ssize_t q = <Py_ssize_t>(a * inverse_b)
    cdef Py_ssize_t r = a - q * b
    if r < 0:
        q -= 1
    elif r >= b:
        q += 1
    return q


cdef inline bint _inside(const image_t* image, const uint8_t* mask, Py_ssize_t i, const uint8_t* floodable,
                         int max_level, bint invert) noexcept nogil:
    """Voxel ``i`` may hold a label: in the mask and not above ``max_level``."""
    if mask != NULL and mask[i] == 0:
        return False
    if image_t is uint8_t:
        return floodable[image[i]]
    else:
        return _level(image[i], invert) <= max_level


cdef inline void _count(uint64_t* sizes, Py_ssize_t n_sizes, uint64_t label, Py_ssize_t* missed) noexcept nogil:
    if sizes != NULL:
        if label < <uint64_t>n_sizes:
            sizes[label] += 1
        else:
            missed[0] += 1


cdef void _mark_open(const image_t* image, label_t* labels, const uint8_t* mask, const Grid* g,
                     int max_level, bint invert, uint64_t* bits, uint64_t* sizes, Py_ssize_t n_sizes,
                     Py_ssize_t* missed) noexcept nogil:
    """Set the bit of every unlabelled floodable voxel; drop seeds outside the mask, count the others."""
    cdef uint8_t floodable[256]  # uint8 images: the level test by table
    cdef Py_ssize_t z, y, x, i = 0, row
    cdef uint64_t shift
    cdef bint inside
    for x in range(256):
        floodable[x] = _level(<uint8_t>x, invert) <= max_level
    for z in range(g.nz):
        for y in range(g.ny):
            row = ((z >> 2) * g.by + (y >> 2)) * g.bx
            shift = ((z & 3) << 4) | ((y & 3) << 2)
            for x in range(g.nx):
                inside = _inside(image, mask, i, floodable, max_level, invert)
                if labels[i] == 0:
                    bits[row + (x >> 2)] |= (<uint64_t>inside) << (shift | (x & 3))
                elif not inside:
                    labels[i] = 0  # as scikit-image: markers outside the mask are dropped
                else:
                    _count(sizes, n_sizes, labels[i], missed)
                i += 1


cdef void _mark_frontier(const label_t* labels, const uint64_t* bits, uint64_t* frontier, const Grid* g,
                         int connectivity) noexcept nogil:
    """Set the (raster) bit of every seed next to an open voxel: work in proportion to the open voxels."""
    cdef Py_ssize_t w, bz, by, bx, z, y, x, zz, yy, xx, i
    cdef uint64_t word
    cdef int b, k
    for w in range(_blocks(g.nz, g.ny, g.nx)):
        word = bits[w]
        if not word:
            continue
        bz, by, bx = w // (g.by * g.bx), (w // g.bx) % g.by, w % g.bx
        while word:
            b = __builtin_ctzll(word)
            word &= word - 1
            z, y, x = 4 * bz + (b >> 4), 4 * by + ((b >> 2) & 3), 4 * bx + (b & 3)
            for k in range(connectivity):
                zz, yy, xx = z + DZ[k], y + DY[k], x + DX[k]
                if 0 <= zz < g.nz and 0 <= yy < g.ny and 0 <= xx < g.nx:
                    i = zz * g.nyx + yy * g.nx + xx
                    if labels[i] != 0:
                        frontier[i >> 6] |= 1ULL << (i & 63)


cdef inline entry_t _entry(Py_ssize_t i, label_t label, entry_t kind) noexcept nogil:
    cdef entry_t entry
    if entry_t is uint64_t:
        entry = (<uint64_t>label << 32) | <uint64_t>i
    else:
        entry.index = i
        entry.label = label
    return entry


cdef inline void _prefetch(const image_t* image, const uint64_t* bits, const Grid* g, entry_t entry) noexcept nogil:
    """Start loading what popping ``entry`` will read: its bitmap word and the image around it."""
    cdef Py_ssize_t i, z, y
    if entry_t is uint64_t:
        i = <Py_ssize_t>(entry & 0xFFFFFFFFULL)
    else:
        i = <Py_ssize_t>entry.index
    z = _quotient(i, g.nyx, g.inv_nyx)
    y = _quotient(i - z * g.nyx, g.nx, g.inv_nx)
    __builtin_prefetch(&bits[_word(g, z, y, i - z * g.nyx - y * g.nx)])
    __builtin_prefetch(&image[i])
    if z > 0:
        __builtin_prefetch(&image[i - g.nyx])
    if z + 1 < g.nz:
        __builtin_prefetch(&image[i + g.nyx])
    if y > 0:
        __builtin_prefetch(&image[i - g.nx])
    if y + 1 < g.ny:
        __builtin_prefetch(&image[i + g.nx])


cdef int _flood(const image_t* image, label_t* labels, const uint8_t* mask, const Grid* g,
                int max_level, bint invert, int connectivity, uint64_t* bits, uint64_t* frontier,
                uint64_t* sizes, Py_ssize_t n_sizes, Py_ssize_t* missed, entry_t entry_kind) except -1 nogil:
    cdef vector[deque[entry_t]] queue = vector[deque[entry_t]](256)
    cdef uint64_t occupied[4]  # bit l: queue[l] is non-empty
    cdef entry_t entry
    cdef Py_ssize_t i, j, z, y, x, zz, yy, xx, w
    cdef uint64_t word, bit
    cdef int k, lv, current
    cdef label_t label
    occupied[0] = occupied[1] = occupied[2] = occupied[3] = 0
    _mark_open(image, labels, mask, g, max_level, invert, bits, sizes, n_sizes, missed)
    _mark_frontier(labels, bits, frontier, g, connectivity)
    for w in range((g.n + 63) // 64):  # queue the frontier seeds in raster order
        word = frontier[w]
        while word:
            i = 64 * w + __builtin_ctzll(word)
            word &= word - 1
            lv = _level(image[i], invert)
            queue[lv].push_back(_entry(i, labels[i], entry_kind))
            occupied[lv >> 6] |= 1ULL << (lv & 63)

    current = _lowest(occupied)
    while current < 256:
        entry = queue[current].front()
        queue[current].pop_front()
        if queue[current].empty():
            occupied[current >> 6] &= ~(1ULL << (current & 63))
        elif queue[current].size() > AHEAD:
            _prefetch(image, bits, g, queue[current][AHEAD])
        if entry_t is uint64_t:
            i = <Py_ssize_t>(entry & 0xFFFFFFFFULL)
            label = <label_t>(entry >> 32)
        else:
            i = <Py_ssize_t>entry.index
            label = <label_t>entry.label
        z = _quotient(i, g.nyx, g.inv_nyx)
        y = _quotient(i - z * g.nyx, g.nx, g.inv_nx)
        x = i - z * g.nyx - y * g.nx
        for k in range(connectivity):
            zz, yy, xx = z + DZ[k], y + DY[k], x + DX[k]
            if not (0 <= zz < g.nz and 0 <= yy < g.ny and 0 <= xx < g.nx):
                continue
            w = _word(g, zz, yy, xx)
            bit = _bit(zz, yy, xx)
            if bits[w] & bit:
                bits[w] &= ~bit
                j = zz * g.nyx + yy * g.nx + xx
                labels[j] = label
                _count(sizes, n_sizes, label, missed)
                lv = _level(image[j], invert)
                queue[lv].push_back(_entry(j, label, entry_kind))
                occupied[lv >> 6] |= 1ULL << (lv & 63)
        current = _lowest(occupied)
    return 0


def flood(const image_t[:, :, ::1] image, label_t[:, :, ::1] labels, const uint8_t[:, :, ::1] mask,
          int max_level, bint invert, int connectivity, uint64_t[::1] open_bits, uint64_t[::1] frontier_bits,
          uint64_t[::1] sizes):
    """Flood ``labels`` (seeds != 0) in place over ``image``; see the module docstring.

    image (Z, Y, X) uint8 or float32, labels (Z, Y, X) uint32/uint64 C-contiguous
    and non-empty, mask (Z, Y, X) uint8 or None; connectivity 6 or 26.
    Voxels with a level above ``max_level`` are never flooded.
    open_bits: zeroed, ``open_bitmap_words(Z, Y, X)`` words; frontier_bits:
    zeroed, ceil(Z * Y * X / 64) words (NumPy backs both with huge pages).
    sizes: None, or zeroed counters that receive the voxel count of each id
    (the result's sizes, background excepted). Returns the number of labelled
    voxels whose id is beyond ``sizes`` (not counted).
    """
    cdef Grid g = _grid(image.shape[0], image.shape[1], image.shape[2])
    cdef const uint8_t* mask_ptr = NULL
    if mask is not None:
        mask_ptr = &mask[0, 0, 0]
    cdef const image_t* image_ptr = &image[0, 0, 0]
    cdef label_t* labels_ptr = &labels[0, 0, 0]
    cdef uint64_t* bits = &open_bits[0]
    cdef uint64_t* frontier = &frontier_bits[0]
    cdef uint64_t* sizes_ptr = NULL
    cdef Py_ssize_t n_sizes = 0, missed = 0
    if sizes is not None and sizes.shape[0]:
        sizes_ptr, n_sizes = &sizes[0], sizes.shape[0]
    cdef WideEntry wide
    if label_t is uint32_t and g.n < 2 ** 32:
        with nogil:
            _flood(image_ptr, labels_ptr, mask_ptr, &g, max_level, invert, connectivity, bits, frontier,
                   sizes_ptr, n_sizes, &missed, <uint64_t>0)
    else:
        with nogil:
            _flood(image_ptr, labels_ptr, mask_ptr, &g, max_level, invert, connectivity, bits, frontier,
                   sizes_ptr, n_sizes, &missed, wide)
    return missed
