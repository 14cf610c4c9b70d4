# distutils: language = c++
"""Seeded watershed on 256-level maps with a bucket queue (linear time), and label bookkeeping loops.

The Python API (``connectomics.postprocess.watershed`` / ``.cleanup`` /
``.seeds``) checks dtypes, shapes and contiguity; this module only runs loops.

Flooding order, identical to scikit-image's heap watershed: the queue holds
labelled voxels keyed by (level, insertion order); the lowest level pops
first, first in first out within a level. Popping a voxel labels each of its
unlabelled in-mask neighbours at once with the popped label and queues it at
its own level (which may be below the current one). With 256 levels the
priority queue is one FIFO per level: O(1) per voxel.

Levels: uint8 maps use their value; float32 maps in [0, 1] use
``floor(255 * p + 0.5)`` computed in double precision (values below 0 count as
0, above 1 as 255). ``invert`` floods ``255 - level`` instead (bright first).

Memory (besides the labels, flooded in place): a bitmap of the voxels still
open to flooding (1 bit/voxel; neighbour tests touch it instead of the labels,
the image and the mask, which keeps the random accesses in cache), and one
``std::deque`` of flat indices per level (uint32 when the volume has fewer than
2**32 voxels, else uint64) that only holds the current frontier. Seeds without
an open neighbour are never queued.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libcpp.deque cimport deque
from libcpp.vector cimport vector


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    void __builtin_prefetch(const void*) nogil

cdef enum:
    PREFETCH_AHEAD = 8  # queue entries ahead whose label and z-neighbour bits are prefetched

ctypedef fused image_t:
    uint8_t
    float

ctypedef fused label_t:
    uint32_t
    uint64_t

ctypedef fused index_t:
    uint32_t
    uint64_t

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


cdef inline bint _bit(const uint64_t* bits, Py_ssize_t i) noexcept nogil:
    return (bits[i >> 6] >> (i & 63)) & 1


cdef inline int _lowest(const uint64_t* occupied) noexcept nogil:
    """The lowest level whose FIFO is non-empty, 256 when all are empty."""
    cdef int w
    for w in range(4):
        if occupied[w]:
            return 64 * w + __builtin_ctzll(occupied[w])
    return 256


cdef inline Py_ssize_t _neighbour(Py_ssize_t z, Py_ssize_t y, Py_ssize_t x, int k,
                                  Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx) noexcept nogil:
    """Flat index of neighbour ``k`` of (z, y, x), -1 outside the volume."""
    z += DZ[k]
    y += DY[k]
    x += DX[k]
    if 0 <= z < nz and 0 <= y < ny and 0 <= x < nx:
        return (z * ny + y) * nx + x
    return -1


cdef inline bint _inside(const image_t* image, const uint8_t* mask, Py_ssize_t i, const uint8_t* floodable,
                         int max_level, bint invert) noexcept nogil:
    """Voxel ``i`` may hold a label: in the mask and not above ``max_level``."""
    if mask != NULL and mask[i] == 0:
        return False
    if image_t is uint8_t:
        return floodable[image[i]]
    else:
        return _level(image[i], invert) <= max_level


cdef void _mark_open(const image_t* image, label_t* labels, const uint8_t* mask, Py_ssize_t n,
                     int max_level, bint invert, uint64_t* bits) noexcept nogil:
    """Set the bit of every unlabelled floodable voxel; drop seeds outside the mask."""
    cdef uint8_t floodable[256]  # uint8 images: level test by table
    cdef Py_ssize_t w, b, i, end
    cdef uint64_t word
    cdef bint inside
    for b in range(256):
        floodable[b] = _level(<uint8_t>b, invert) <= max_level
    for w in range((n + 63) // 64):
        word = 0
        end = min(64, n - 64 * w)
        for b in range(end):
            i = 64 * w + b
            inside = _inside(image, mask, i, floodable, max_level, invert)
            if labels[i] == 0:
                word |= (<uint64_t>inside) << b
            elif not inside:
                labels[i] = 0  # as scikit-image: markers outside the mask are dropped
        bits[w] = word


cdef void _mark_frontier(const label_t* labels, const uint64_t* bits, uint64_t* frontier,
                         Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx, int connectivity) noexcept nogil:
    """Set the bit of every seed next to an open voxel (work in proportion to the open voxels)."""
    cdef Py_ssize_t w, i, j, z, y, x, nyx = ny * nx
    cdef uint64_t word
    cdef int k
    for w in range((nz * nyx + 63) // 64):
        word = bits[w]
        while word:
            j = 64 * w + __builtin_ctzll(word)
            word &= word - 1
            z = j // nyx
            y = (j - z * nyx) // nx
            x = j - z * nyx - y * nx
            for k in range(connectivity):
                i = _neighbour(z, y, x, k, nz, ny, nx)
                if i >= 0 and labels[i] != 0:
                    frontier[i >> 6] |= 1ULL << (i & 63)


cdef inline void _prefetch(const label_t* labels, const uint64_t* bits, Py_ssize_t i,
                           Py_ssize_t n, Py_ssize_t nyx) noexcept nogil:
    """Start loading what popping voxel ``i`` will read: its label and the bits around it."""
    __builtin_prefetch(&labels[i])
    __builtin_prefetch(&bits[i >> 6])
    if i >= nyx:
        __builtin_prefetch(&bits[(i - nyx) >> 6])
    if i + nyx < n:
        __builtin_prefetch(&bits[(i + nyx) >> 6])


cdef int _flood(const image_t* image, label_t* labels, const uint8_t* mask,
                Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx, int max_level, bint invert,
                int connectivity, index_t index_kind) except -1 nogil:
    cdef Py_ssize_t n = nz * ny * nx, nyx = ny * nx
    cdef vector[uint64_t] open_bits = vector[uint64_t]((n + 63) // 64, 0)
    cdef uint64_t* bits = open_bits.data()
    cdef vector[deque[index_t]] queue = vector[deque[index_t]](256)
    cdef uint64_t occupied[4]  # bit l: queue[l] is non-empty
    cdef Py_ssize_t i, j, z, y, x, w
    cdef uint64_t word
    cdef int k, lv, current
    cdef label_t label
    occupied[0] = occupied[1] = occupied[2] = occupied[3] = 0
    _mark_open(image, labels, mask, n, max_level, invert, bits)

    # queue, in raster order, the seeds with an open neighbour
    cdef vector[uint64_t] frontier_bits = vector[uint64_t]((n + 63) // 64, 0)
    _mark_frontier(labels, bits, frontier_bits.data(), nz, ny, nx, connectivity)
    for w in range(<Py_ssize_t>frontier_bits.size()):
        word = frontier_bits[w]
        while word:
            i = 64 * w + __builtin_ctzll(word)
            word &= word - 1
            lv = _level(image[i], invert)
            queue[lv].push_back(<index_t>i)
            occupied[lv >> 6] |= 1ULL << (lv & 63)
    vector[uint64_t]().swap(frontier_bits)  # free it before flooding

    current = _lowest(occupied)
    while current < 256:
        i = <Py_ssize_t>queue[current].front()
        queue[current].pop_front()
        if queue[current].empty():
            occupied[current >> 6] &= ~(1ULL << (current & 63))
        elif queue[current].size() > PREFETCH_AHEAD:
            _prefetch(labels, bits, <Py_ssize_t>queue[current][PREFETCH_AHEAD], n, nyx)
        label = labels[i]
        z = i // nyx
        y = (i - z * nyx) // nx
        x = i - z * nyx - y * nx
        for k in range(connectivity):
            j = _neighbour(z, y, x, k, nz, ny, nx)
            if j >= 0 and _bit(bits, j):
                bits[j >> 6] &= ~(1ULL << (j & 63))
                labels[j] = label
                lv = _level(image[j], invert)
                queue[lv].push_back(<index_t>j)
                occupied[lv >> 6] |= 1ULL << (lv & 63)
        current = _lowest(occupied)
    return 0


def flood(const image_t[:, :, ::1] image, label_t[:, :, ::1] labels, const uint8_t[:, :, ::1] mask,
          int max_level, bint invert, int connectivity):
    """Flood ``labels`` (seeds != 0) in place over ``image``; see the module docstring.

    image (Z, Y, X) uint8 or float32, labels (Z, Y, X) uint32/uint64 C-contiguous
    and non-empty, mask (Z, Y, X) uint8 or None; connectivity 6 or 26.
    Voxels with a level above ``max_level`` are never flooded.
    """
    cdef Py_ssize_t nz = image.shape[0], ny = image.shape[1], nx = image.shape[2]
    cdef const uint8_t* mask_ptr = NULL
    if mask is not None:
        mask_ptr = &mask[0, 0, 0]
    cdef const image_t* image_ptr = &image[0, 0, 0]
    cdef label_t* labels_ptr = &labels[0, 0, 0]
    if nz * ny * nx < 2 ** 32:
        with nogil:
            _flood(image_ptr, labels_ptr, mask_ptr, nz, ny, nx, max_level, invert,
                   connectivity, <uint32_t>0)
    else:
        with nogil:
            _flood(image_ptr, labels_ptr, mask_ptr, nz, ny, nx, max_level, invert,
                   connectivity, <uint64_t>0)


def add_offset(const uint32_t[::1] source, label_t[::1] target, label_t offset):
    """``target = source + offset`` where ``source != 0``, else 0 (equal lengths)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(source.shape[0]):
            target[i] = source[i] + offset if source[i] != 0 else 0


def count_labels(const label_t[::1] labels, uint64_t[::1] counts):
    """``counts[id] += 1`` per voxel; returns the number of ids >= len(counts) (not counted)."""
    cdef Py_ssize_t i, n = counts.shape[0], missed = 0
    cdef label_t value
    with nogil:
        for i in range(labels.shape[0]):
            value = labels[i]
            if value < <uint64_t>n:
                counts[value] += 1
            else:
                missed += 1
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
