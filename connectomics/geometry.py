"""Boxes and block grids of (z, y, x) volumes: pure geometry, the bottom of the package layers.

A :class:`Box` is ``((z0, z1), (y0, y1), (x0, x1))``, half-open, in volume coordinates (voxel 0
is the first voxel of the volume); it may leave the volume (negative coordinates lie in a mirror
padding, see :func:`read_box`). A :class:`BlockGrid` cuts a volume into blocks at the multiples
of a block size; inference chunks, blockwise blocks, the confidence table's read blocks and
chunked training all describe their regions with boxes::

        |<- halo ->|<------- block (owned) ------->|<- halo ->|
    ----+----------+-------------------------------+----------+----
        read box = block.grow(halo).clip(shape)

No I/O beyond :func:`read_box`, no imports from the rest of the package.
"""
import itertools
import math

import numpy as np


def triple(value, name, low=1):
    """``value`` as three ints >= ``low`` (z, y, x); ValueError naming ``name`` otherwise."""
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be three integers (z, y, x), got {value!r}") from None
    if len(out) != 3 or any(v < low for v in out) or any(int(v) != v for v in value):
        raise ValueError(f"{name} must be three integers >= {low} (z, y, x), got {value!r}")
    return out


def _per_axis(value):
    return (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)


class Box(tuple):
    """Immutable ``((z0, z1), (y0, y1), (x0, x1))`` of ints; equal to the plain tuple of pairs."""

    def __new__(cls, pairs):
        return super().__new__(cls, tuple((int(a), int(b)) for a, b in pairs))

    @classmethod
    def of_shape(cls, shape):
        """The whole volume of ``shape``: ``[0, n)`` per axis."""
        return cls((0, n) for n in shape)

    @classmethod
    def at(cls, start, size):
        """The box of ``size`` whose first corner is ``start``."""
        return cls((a, a + n) for a, n in zip(start, size))

    @property
    def begin(self):
        return tuple(a for a, _ in self)

    @property
    def end(self):
        return tuple(b for _, b in self)

    @property
    def shape(self):
        return tuple(b - a for a, b in self)

    @property
    def size(self):
        """Voxels in the box (0 if empty)."""
        return math.prod(max(0, n) for n in self.shape)

    @property
    def empty(self):
        return any(b <= a for a, b in self)

    def grow(self, amount):
        """The box grown by ``amount`` voxels on both sides (int or per axis; negative shrinks)."""
        return Box((a - g, b + g) for (a, b), g in zip(self, _per_axis(amount)))

    def shift(self, offset):
        return Box((a + o, b + o) for (a, b), o in zip(self, _per_axis(offset)))

    def intersect(self, other):
        """The common part (possibly empty: then ``end <= begin`` on some axis)."""
        return Box((max(a, c), min(b, d)) for (a, b), (c, d) in zip(self, other))

    def clip(self, shape):
        """The part inside a volume of ``shape``."""
        return self.intersect(Box.of_shape(shape))

    def contains(self, other):
        return all(a <= c and d <= b for (a, b), (c, d) in zip(self, other))

    def slices(self, origin=(0, 0, 0)):
        """Slices of the box in an array whose first voxel is at ``origin`` (a corner, or a box: its begin)."""
        origin = Box(origin).begin if len(origin) and isinstance(origin[0], (tuple, list)) else origin
        return tuple(slice(a - o, b - o) for (a, b), o in zip(self, origin))

    def __repr__(self):
        return f"Box({tuple(self)})"


def slices(box, origin=(0, 0, 0)):
    """``box`` (any sequence of pairs) as a tuple of slices relative to ``origin``."""
    return Box(box).slices(origin)


class BlockGrid:
    """Blocks of size ``block`` over a volume of ``shape`` (both (z, y, x)).

    A block OWNS its box: the last block of an axis may be shorter; blockwise stores align their
    chunks to this grid, so the owner of a box is its only writer.
    """

    def __init__(self, shape, block):
        self.shape = triple(shape, "volume shape", 1)
        self.block = tuple(min(b, n) for b, n in zip(triple(block, "block size", 1), self.shape))
        self.grid_shape = tuple(math.ceil(n / b) for n, b in zip(self.shape, self.block))

    def __len__(self):
        return math.prod(self.grid_shape)

    def __repr__(self):
        return f"BlockGrid(shape={self.shape}, block={self.block}, grid={self.grid_shape})"

    def indices(self):
        """Block indices (z, y, x) in raster order."""
        return list(itertools.product(*(range(g) for g in self.grid_shape)))

    def flat(self, index):
        """The raster position of a block index."""
        (i, j, k), (_, gy, gx) = index, self.grid_shape
        return (i * gy + j) * gx + k

    def box(self, index, halo=(0, 0, 0)):
        """The owned :class:`Box` of block ``index``, grown by ``halo`` and clipped to the volume."""
        own = Box((i * b, (i + 1) * b) for i, b in zip(index, self.block))
        return own.grow(halo).clip(self.shape)

    def boxes(self):
        """The owned boxes of all blocks in raster order."""
        return [self.box(index) for index in self.indices()]

    def owners(self, box):
        """``[(index, sub_box)]``: the blocks that own parts of ``box``, and those parts."""
        ranges = [range(a // b, (c - 1) // b + 1) for (a, c), b in zip(box, self.block)]
        return [(index, self.box(index).intersect(box)) for index in itertools.product(*ranges)]


def index_box(key, shape, name):
    """``(box, squeeze)`` of a NumPy-style ``key`` into a (Z, Y, X) volume of ``shape``.

    ``key``: integers, step-1 slices or Ellipsis (per axis); ``box``: ((z0, z1),
    (y0, y1), (x0, x1)); ``squeeze``: the axes an integer index removes. Raises
    IndexError naming the volume for anything else.
    """
    if key is Ellipsis:
        key = ()
    if not isinstance(key, tuple):
        key = (key,)
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1:]
    if len(key) > 3:
        raise IndexError(f"{name}: too many indices for a 3D volume: {key}")
    key = key + (slice(None),) * (3 - len(key))
    box, squeeze = [], []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"{name}: index {int(k)} is out of range for axis {axis} of size {n}")
            box.append((i, i + 1))
            squeeze.append(axis)
            continue
        if not isinstance(k, slice) or k.step not in (None, 1):
            raise IndexError(f"{name}: only integers and step-1 slices can index this volume, got {k!r}")
        start, stop, _ = k.indices(n)
        box.append((start, max(start, stop)))
    return box, tuple(squeeze)


def reflect_index(index, length):
    """Map integer coordinates (any range) into ``[0, length)`` by mirror reflection.

    Same as ``np.pad(..., mode='reflect')`` (the border voxel is not repeated),
    extended periodically so that pads longer than the volume work too.
    ``index``: int or integer ndarray; returns the same type.
    """
    if length < 1:
        raise ValueError(f"cannot reflect into an empty axis (length {length})")
    if length == 1:
        return np.zeros_like(index) if isinstance(index, np.ndarray) else 0
    period = 2 * (length - 1)
    m = np.mod(index, period)
    return np.where(m >= length, period - m, m) if isinstance(m, np.ndarray) else (
        period - m if m >= length else m)


def read_box(volume, box):
    """Read ``box`` (may leave the volume) from ``volume``, mirrored outside it.

    ``volume``: any (Z, Y, X) array-like with ``.shape`` and slicing (NumPy array, h5py / zarr
    array). Only the voxels the box needs are read (one slice); voxels outside the volume are
    mirrored in global coordinates (:func:`reflect_index`), so the result equals padding the whole
    volume first, whatever the box. Returns a NumPy array of the box shape and the volume's dtype.
    """
    shape = tuple(volume.shape)
    indices = [reflect_index(np.arange(a, b), n) for (a, b), n in zip(box, shape)]
    src = tuple(slice(int(i.min()), int(i.max()) + 1) for i in indices)
    block = np.asarray(volume[src])
    for axis, ((a, b), n, i, s) in enumerate(zip(box, shape, indices, src)):
        if a < 0 or b > n:  # mirrored axis: one gather along it (cheaper than a 3D fancy index)
            block = np.take(block, i - s.start, axis=axis)
    return block
