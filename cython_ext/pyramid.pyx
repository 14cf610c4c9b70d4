# distutils: language = c++
"""2 x 2 downsampling of label blocks for the OME-Zarr pyramid: the most frequent label of each
2 x 2 group in the last two axes (ties: the first in the order (0,0), (0,1), (1,0), (1,1)).

The Python API (``connectomics.storage.ome_zarr.downsample``) pads odd sizes and allocates; this
module only runs the loop.
"""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

import numpy as np


ctypedef fused label_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t


def mode_2x2(const label_t[:, :, ::1] block, label_t[:, :, ::1] out):
    """``out[z, y, x]`` = the mode of ``block[z, 2y:2y+2, 2x:2x+2]`` (even y, x sizes)."""
    cdef Py_ssize_t nz = out.shape[0], ny = out.shape[1], nx = out.shape[2], z, y, x
    cdef label_t a, b, c, d
    with nogil:
        for z in range(nz):
            for y in range(ny):
                for x in range(nx):
                    a = block[z, 2 * y, 2 * x]
                    b = block[z, 2 * y, 2 * x + 1]
                    c = block[z, 2 * y + 1, 2 * x]
                    d = block[z, 2 * y + 1, 2 * x + 1]
                    if a == b or a == c or a == d:  # a twice or more: nothing else has more, a comes first
                        out[z, y, x] = a
                    elif b == c or b == d:
                        out[z, y, x] = b
                    elif c == d:
                        out[z, y, x] = c
                    else:
                        out[z, y, x] = a
