"""Work stores of a blockwise run: chunked, compressed arrays written block by block and read with halos.

Intermediate arrays (seed ids, the foreground copy, the segment ids) are written once per block
and read by the next stage with a halo. zarr-python 3 spent 2.5-3.5x the codec's own time per
block write there (its async pipeline, an all-fill check per chunk), a third of the blockwise
post-processing's CPU. A work store is a folder: ``array.json`` (shape, chunks, dtype, the run's
settings) and one file per chunk (``i.j.k``, Blosc LZ4 with byte shuffle, numcodecs), each written
under a temporary name and renamed, so a chunk file present is complete; chunks never written read
as zeros. It lives in the run's work folder and is removed with it: not a format for users (outputs
are zarr / OME-Zarr / HDF5).

Writes must cover whole chunks (a block writes its own box: the chunks tile it, see
:func:`~connectomics.storage.zarr_array.sub_chunks`); reads may take any box.
"""
import itertools
import json
import os

import numpy as np

from connectomics.storage.paths import remove_path
from connectomics.storage.settings import normalise
from connectomics.storage.zarr_array import sub_chunks

META = "array.json"
SUB_CHUNK = (16, 128, 128)  # target (z, y, x) chunks: the next stage reads them with a halo


def _codec():
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)


class WorkArray:
    """A work store opened for reading and writing (``shape``, ``dtype``, ``chunks``, box slicing)."""

    def __init__(self, path):
        with open(os.path.join(path, META)) as f:
            meta = json.load(f)
        self.path, self.settings = path, meta["settings"]
        self.shape, self.chunks = tuple(meta["shape"]), tuple(meta["chunks"])
        self.dtype, self.ndim = np.dtype(meta["dtype"]), len(meta["shape"])
        self._codec = _codec()

    def _box(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if Ellipsis in key:  # arr[...] / arr[..., a:b]
            at = key.index(Ellipsis)
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        box = []
        for axis, (item, n) in enumerate(zip(key, self.shape)):
            if not isinstance(item, slice) or item.step not in (None, 1):
                raise IndexError(f"work store {self.path}: only step-1 slices, got {item!r} on axis {axis}")
            start, stop, _ = item.indices(n)
            box.append((start, max(start, stop)))
        return box

    def _chunk_file(self, index):
        return os.path.join(self.path, ".".join(str(i) for i in index))

    def _touched(self, box):
        return itertools.product(*[range(a // c, -(-b // c)) for (a, b), c in zip(box, self.chunks)])

    def _chunk_box(self, index):
        return [(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, self.chunks, self.shape)]

    def __getitem__(self, key):
        box = self._box(key)
        out = np.zeros([b - a for a, b in box], self.dtype)
        for index in self._touched(box):
            path = self._chunk_file(index)
            if not os.path.exists(path):
                continue  # never written: zeros
            own = self._chunk_box(index)
            with open(path, "rb") as f:
                chunk = np.frombuffer(self._codec.decode(f.read()), self.dtype).reshape([b - a for a, b in own])
            part = [(max(a, c), min(b, d)) for (a, b), (c, d) in zip(box, own)]
            out[tuple(slice(p - a, q - a) for (p, q), (a, _) in zip(part, box))] = \
                chunk[tuple(slice(p - c, q - c) for (p, q), (c, _) in zip(part, own))]
        return out

    def __setitem__(self, key, data):
        box = self._box(key)
        data = np.broadcast_to(np.asarray(data, self.dtype), [b - a for a, b in box])
        for (a, b), c, n in zip(box, self.chunks, self.shape):
            if a % c or (b % c and b != n):
                raise ValueError(f"work store {self.path}: writes must cover whole chunks {list(self.chunks)}, "
                                 f"got {box}")
        for index in self._touched(box):
            own = self._chunk_box(index)
            chunk = np.ascontiguousarray(data[tuple(slice(c - a, d - a) for (c, d), (a, _) in zip(own, box))])
            path = self._chunk_file(index)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(self._codec.encode(chunk))
            os.replace(tmp, path)


def create_work_array(path, shape, block, dtype, settings):
    """Create (or reopen, if made with the same ``settings``) the work store ``path`` of ``shape`` and
    ``dtype``, chunked by :func:`sub_chunks` of ``block`` (the blockwise grid's block, leading axes
    whole). Returns ``path``."""
    settings = normalise(settings)
    meta_path = os.path.join(path, META)
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f).get("settings") == settings:
                return path
    remove_path(path)
    os.makedirs(path)
    meta = {"shape": [int(n) for n in shape], "chunks": list(sub_chunks(block, SUB_CHUNK)),
            "dtype": np.dtype(dtype).str, "settings": settings}
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f)
    os.replace(meta_path + ".tmp", meta_path)
    return path


def open_work_array(path):
    """The :class:`WorkArray` at ``path``."""
    return WorkArray(path)
