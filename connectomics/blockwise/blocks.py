"""The block grid of blockwise processing: pure geometry, no I/O.

A (Z, Y, X) volume is cut into blocks at the multiples of ``block`` (the last
block of an axis may be shorter). A block OWNS its box: it is the only writer
of that region of every output store, and the stores' chunk grid is aligned to
the block grid, so parallel writes never touch the same chunk. Reads may reach
beyond: the box plus a halo, clipped to the volume::

        |<- halo ->|<------- block (owned) ------->|<- halo ->|
    ----+----------+-------------------------------+----------+----
        read box = owned box grown by the halo, clipped to [0, shape)

Boxes are ``((z0, z1), (y0, y1), (x0, x1))`` in volume coordinates.
"""
import itertools
import math


def _triple(value, name, low):
    out = tuple(int(v) for v in value)
    if len(out) != 3 or any(v < low for v in out) or any(int(v) != v for v in value):
        raise ValueError(f"{name} must be three integers >= {low} (z, y, x), got {list(value)}")
    return out


class BlockGrid:
    """Blocks of size ``block`` over a volume of ``shape`` (both (z, y, x))."""

    def __init__(self, shape, block):
        self.shape = _triple(shape, "volume shape", 1)
        self.block = tuple(min(b, n) for b, n in zip(_triple(block, "block size", 1), self.shape))
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
        """The owned box of block ``index``, grown by ``halo`` and clipped to the volume."""
        return tuple((max(0, i * b - h), min(n, (i + 1) * b + h))
                     for i, b, h, n in zip(index, self.block, halo, self.shape))

    def owners(self, box):
        """``[(index, sub_box)]``: the blocks that own parts of ``box``, and those parts."""
        ranges = [range(a // b, (c - 1) // b + 1) for (a, c), b in zip(box, self.block)]
        out = []
        for index in itertools.product(*ranges):
            own = self.box(index)
            out.append((index, tuple((max(a, o0), min(c, o1)) for (a, c), (o0, o1) in zip(box, own))))
        return out


def slices(box, origin=(0, 0, 0)):
    """``box`` as a tuple of slices, relative to ``origin``."""
    return tuple(slice(a - o, b - o) for (a, b), o in zip(box, origin))


def box_shape(box):
    return tuple(b - a for a, b in box)
