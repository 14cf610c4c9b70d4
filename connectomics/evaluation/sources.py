"""Label volumes for the evaluator: open, check, and read z-slabs as uint32/uint64.

A source is a NumPy array, an ``h5py.Dataset`` or a spec string ``file.h5[:key]`` (anything
``connectomics.storage.open_volume`` reads). Leading singleton axes are dropped, so a
(1, Z, Y, X) volume is a (Z, Y, X) one. Slabs are returned as C-contiguous uint32 (labels of
<= 4 bytes) or uint64 arrays, the two dtypes the overlap kernel takes:

- unsigned integers: as they are (widened to uint32 when smaller);
- signed integers: must be >= 0, then reinterpreted / widened;
- floats holding integers: accepted with a warning, converted to uint64;
- anything else (fractional floats, negative ids, strings): ``LabelError`` naming the source.
"""
import contextlib
import logging

import numpy as np

from connectomics.storage import VolumeError, open_volume

logger = logging.getLogger(__name__)


class LabelError(VolumeError):
    """A label volume that cannot be evaluated (wrong shape, dtype or values)."""


def source_name(volume, default):
    """A human-readable name: the spec string, ``file.h5:/key`` for a dataset, else ``default``."""
    if isinstance(volume, str):
        return volume
    file = getattr(volume, "file", None)
    if file is not None and hasattr(volume, "name"):
        return f"{file.filename}:{volume.name}"
    return default


class LabelSource:
    """A (Z, Y, X) label volume read in z-slabs. ``volume`` is an array or an h5py dataset."""

    def __init__(self, volume, name):
        self.name = name
        self.volume = volume
        shape = tuple(volume.shape)
        lead = 0
        while len(shape) - lead > 3 and shape[lead] == 1:
            lead += 1
        if len(shape) - lead != 3:
            raise LabelError(f"{name}: expected a (Z, Y, X) label volume, got shape {shape}")
        self.lead = (0,) * lead
        self.shape = shape[lead:]
        self.dtype = np.dtype(volume.dtype)
        if self.dtype.kind not in "uibf":
            raise LabelError(f"{name}: labels must be integers, got dtype {self.dtype}")
        self._warned = False
        self._buffers = [None, None]
        self._turn = 0

    def read(self, z0, z1):
        """Slab ``[z0, z1)`` as a C-contiguous (z1 - z0, Y, X) uint32 or uint64 array.

        For HDF5 datasets the slab lives in one of two buffers used in turn, so it stays valid
        until the second-next ``read`` call (one slab can be processed while the next is read).
        """
        index = self.lead + (slice(z0, z1),)
        if not hasattr(self.volume, "read_direct"):
            return self._normalise(np.ascontiguousarray(self.volume[index]), z0, z1)
        shape = (z1 - z0,) + self.shape[1:]
        self._turn = 1 - self._turn
        buffer = self._buffers[self._turn]
        if buffer is None or buffer.shape[0] < shape[0]:
            self._buffers[self._turn] = None  # free the old one before allocating
            buffer = self._buffers[self._turn] = np.empty(shape, self.dtype.newbyteorder("="))
        slab = buffer[: shape[0]]
        self.volume.read_direct(slab, source_sel=index)
        return self._normalise(slab, z0, z1)

    def read_box(self, box):
        """The region ``box`` = (slice z, slice y, slice x) as uint32/uint64 (a fresh array)."""
        region = np.ascontiguousarray(self.volume[self.lead + tuple(box)])
        return self._normalise(region, box[0].start, box[0].stop)

    def _normalise(self, slab, z0, z1):
        if not slab.dtype.isnative:  # e.g. big-endian data: reinterpreting it would garble ids
            slab = slab.astype(slab.dtype.newbyteorder("="))
        kind, size = slab.dtype.kind, slab.dtype.itemsize
        if kind == "b":
            return slab.astype(np.uint32)
        if kind == "f":
            return self._from_float(slab, z0, z1)
        if kind == "i" and slab.size:
            low = slab.min()
            if low < 0:
                raise LabelError(f"{self.name}: label ids must be >= 0, found {low} in slices "
                                 f"[{z0}, {z1})")
        if size == 8:
            return slab.view(np.uint64)
        if size == 4:
            return slab.view(np.uint32)
        return slab.astype(np.uint32)

    def _from_float(self, slab, z0, z1):
        if not self._warned:
            logger.warning("%s holds float labels (%s); converting them to integer ids",
                           self.name, self.dtype)
            self._warned = True
        bad = (slab < 0) | (slab != np.floor(slab)) | ~np.isfinite(slab) | (slab >= 2.0**64)
        if bad.any():
            value = float(slab[bad].flat[0])
            raise LabelError(f"{self.name}: labels must be non-negative integers, found {value} "
                             f"in slices [{z0}, {z1}) of a {self.dtype} volume")
        return slab.astype(np.uint64)


@contextlib.contextmanager
def open_labels(volume, default_name):
    """Yield a ``LabelSource`` for an array, an h5py dataset or a ``file.h5[:key]`` spec."""
    name = source_name(volume, default_name)
    if isinstance(volume, str) or hasattr(volume, "__fspath__"):
        with open_volume(volume) as handle:
            yield LabelSource(handle, source_name(handle, str(volume)))
        return
    if not hasattr(volume, "shape") or not hasattr(volume, "dtype"):
        volume = np.asarray(volume)
    yield LabelSource(volume, name)


@contextlib.contextmanager
def open_pair(gt, pred, slices=None):
    """Yield ``(gt_source, pred_source, (z0, z1))`` after checking shapes and the slice range."""
    with open_labels(gt, "ground-truth array") as gt_src, open_labels(pred, "prediction array") as pred_src:
        if gt_src.shape != pred_src.shape:
            raise LabelError(f"shape mismatch: the ground truth {gt_src.name} has shape {gt_src.shape}, "
                             f"the prediction {pred_src.name} has shape {pred_src.shape}")
        yield gt_src, pred_src, check_slices(slices, gt_src.shape[0])


def check_slices(slices, depth):
    """``None``/``-1`` -> (0, depth); otherwise a validated (z0, z1) with 0 <= z0 < z1 <= depth."""
    if slices is None or (np.ndim(slices) == 0 and int(slices) == -1):
        return 0, depth
    z0, z1 = (int(s) for s in slices)
    if z1 == -1:
        z1 = depth
    if not 0 <= z0 < z1 <= depth:
        raise ValueError(f"slice range {tuple(slices)} is not within [0, {depth}] with z0 < z1")
    return z0, z1
