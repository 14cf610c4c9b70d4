# distutils: language = c++
"""Seeded watershed on 256-level maps with a bucket queue (linear time).

The Python API (``connectomics.postprocess.watershed``) checks dtypes, shapes
and contiguity; this module only runs the loop.

Flooding order, identical to scikit-image's heap watershed: the queue holds
labelled voxels keyed by (level, insertion order); the lowest level pops
first, first in first out within a level. Popping a voxel labels each of its
unlabelled in-mask neighbours at once with the popped label and queues it at
its own level (which may be below the current one). With 256 levels the
priority queue is one FIFO per level: O(1) per voxel.

Levels: uint8 maps use their value; float32 maps in [0, 1] use
``floor(255 * p + 0.5)`` computed in double precision (values below 0 count as
0, above 1 as 255). ``invert`` floods ``255 - level`` instead (bright first).

Memory: the labels are flooded in place; each level's FIFO is a
``std::deque`` of flat indices (uint32 when the volume has fewer than 2**32
voxels, else uint64) that only ever holds the current frontier. Seeds whose
neighbours are all labelled or outside the mask are never queued.
"""
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libcpp.deque cimport deque
from libcpp.vector cimport vector


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

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


cdef inline bint _open(const image_t* image, const label_t* labels, const uint8_t* mask,
                       Py_ssize_t i, int max_level, bint invert) noexcept nogil:
    """An unlabelled voxel that may be flooded."""
    if labels[i] != 0:
        return False
    if mask != NULL and mask[i] == 0:
        return False
    return _level(image[i], invert) <= max_level


cdef inline int _lowest(const unsigned long long* occupied) noexcept nogil:
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


cdef int _flood(const image_t* image, label_t* labels, const uint8_t* mask,
                Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx, int max_level, bint invert,
                int connectivity, index_t index_kind) except -1 nogil:
    cdef vector[deque[index_t]] queue = vector[deque[index_t]](256)
    cdef unsigned long long occupied[4]  # bit l: queue[l] is non-empty
    cdef Py_ssize_t n = nz * ny * nx, nyx = ny * nx
    cdef Py_ssize_t i, j, z, y, x, r
    cdef int k, lv, current
    cdef label_t label
    occupied[0] = occupied[1] = occupied[2] = occupied[3] = 0

    # Seeds: drop those outside the mask (as scikit-image does); queue, in
    # raster order, those with a neighbour left to flood.
    for i in range(n):
        if labels[i] == 0:
            continue
        lv = _level(image[i], invert)
        if (mask != NULL and mask[i] == 0) or lv > max_level:
            labels[i] = 0
            continue
        z = i // nyx
        r = i - z * nyx
        y = r // nx
        x = r - y * nx
        for k in range(connectivity):
            j = _neighbour(z, y, x, k, nz, ny, nx)
            if j >= 0 and _open(image, labels, mask, j, max_level, invert):
                queue[lv].push_back(<index_t>i)
                occupied[lv >> 6] |= 1ULL << (lv & 63)
                break

    current = _lowest(occupied)
    while current < 256:
        i = <Py_ssize_t>queue[current].front()
        queue[current].pop_front()
        if queue[current].empty():
            occupied[current >> 6] &= ~(1ULL << (current & 63))
        label = labels[i]
        z = i // nyx
        r = i - z * nyx
        y = r // nx
        x = r - y * nx
        for k in range(connectivity):
            j = _neighbour(z, y, x, k, nz, ny, nx)
            if j >= 0 and _open(image, labels, mask, j, max_level, invert):
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
