"""Blockwise bookkeeping: input chunk checks and block alignment.

A blockwise stage writes into a zarr array (:func:`connectomics.storage.create_array`) whose
chunks tile the blocks, so two blocks never write the same chunk file; its done blocks are
recorded by :class:`connectomics.storage.Markers`.
"""
import logging

import numpy as np

from connectomics.errors import VolumeError

logger = logging.getLogger(__name__)
MAX_READ_CHUNK_MIB = 256  # an input chunk larger than this would blow the per-block memory bound


def input_chunks(volume, name):
    """The (z, y, x) chunk shape of an input (zarr or HDF5), or None when unchunked.

    Raises VolumeError when one chunk is so large that reading any block would
    need more than ``MAX_READ_CHUNK_MIB`` for it: such a store must be rechunked.
    """
    chunks = getattr(volume, "chunks", None)
    if not chunks:
        return None
    chunks = tuple(int(c) for c in chunks)
    nbytes = int(np.prod(chunks)) * np.dtype(volume.dtype).itemsize
    if nbytes > MAX_READ_CHUNK_MIB * 2**20:
        raise VolumeError(
            f"{name} is stored in chunks of {list(chunks)} ({nbytes / 2**20:.0f} MiB each): every block would "
            f"read whole chunks, beyond the {MAX_READ_CHUNK_MIB} MiB bound. Rechunk it first, e.g. "
            f"`python scripts/convert_volume.py {name} OUT.zarr --chunks 64 512 512`")
    return chunks[-3:]


def align_block(block, chunks, shape):
    """``block`` rounded up to a multiple of the input's chunk shape (reads then decode each chunk once)."""
    if chunks is None:
        return tuple(int(b) for b in block)
    out = tuple(min(n, max(c, -(-int(b) // c) * c)) for b, c, n in zip(block, chunks, shape))
    if out != tuple(block):
        logger.info("block size %s rounded to %s, a multiple of the input's chunks %s", list(block), list(out),
                    list(chunks))
    return out
