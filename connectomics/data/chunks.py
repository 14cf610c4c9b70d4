"""Chunked training (``DATASET.DO_CHUNK_TITLE 1``): volumes too large for memory are
trained on one chunk at a time, ``DATA_CHUNK_ITER`` iterations per chunk.

Chunk geometry is the predecessor's: with ``n`` chunks on an axis of length
``L`` and ``s = 2`` when ``DATA_CHUNK_STRIDE`` (50% overlap) else ``s = 1``,
chunk ``i`` spans ``[floor(i / (n + s - 1) * L), floor((i + s) / (n + s - 1) * L))``::

    s = 2, n = 3:   |----0----|
                         |----1----|
                              |----2----|

Chunks are visited in rounds, each a random permutation of the chunk ids drawn
from ``(seed, round)``, so the schedule depends only on the iteration.
"""
import numpy as np

from connectomics.geometry import Box, read_box
from connectomics.storage import open_volume


def chunk_box(shape, chunk_num, chunk_id, overlap=True):
    """The :class:`~connectomics.geometry.Box` of chunk ``chunk_id`` in a grid of ``chunk_num`` chunks."""
    s = 2 if overlap else 1
    ny, nx = chunk_num[1], chunk_num[2]
    index = (chunk_id // (ny * nx), (chunk_id // nx) % ny, chunk_id % nx)
    box = []
    for length, n, i in zip(shape, chunk_num, index):
        box.append((int(np.floor(i / (n + s - 1) * length)), int(np.floor((i + s) / (n + s - 1) * length))))
    return Box(box)


def chunk_for_period(period, chunk_ids, seed):
    """The chunk id trained in ``period`` (= iteration // DATA_CHUNK_ITER)."""
    chunk_ids = list(chunk_ids)
    rnd, pos = divmod(int(period), len(chunk_ids))
    order = np.random.default_rng([int(seed), 7919, rnd]).permutation(chunk_ids)
    return int(order[pos])


def read_chunk(spec, box, pad):
    """The chunk ``box`` of volume ``spec`` plus ``pad`` voxels per side, mirrored at the volume border."""
    with open_volume(spec) as vol:
        return read_box(vol, Box(box).grow(pad))


def volume_shape(spec):
    with open_volume(spec) as vol:
        return tuple(vol.shape)
