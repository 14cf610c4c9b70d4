"""Growing instances by a box window (the seed decoders' final dilation).

Two modes:

* ``'background'`` (default, the fix): instances grow only into background
  (0) voxels, one voxel-ring per step, so each background voxel within the
  window takes the id of the nearest instance (Chebyshev distance, per axis
  radius ``(size - 1) // 2``); at equal distance the higher id wins. Instances
  never overwrite each other.
* ``'grey'`` (exact predecessor behaviour): a grey max-dilation,
  ``skimage.morphology.dilation(labels, np.ones(size))``: every voxel takes
  the largest id in its window, so a higher id overwrites a lower-id neighbour
  within the radius.

Windows with a z size of 1 are applied slice by slice (bounded temporaries);
others need two full-size temporaries.
"""
import numpy as np
from scipy import ndimage as ndi

GROW_MODES = ("background", "grey")


def check_window(size):
    """Validate a (z, y, x) window of odd positive sizes; return it as a tuple of ints."""
    size = tuple(int(s) for s in size)
    if len(size) != 3 or any(s < 1 or s % 2 == 0 for s in size):
        raise ValueError(f"dilation window {list(size)}: expected three odd positive sizes (z, y, x)")
    return size


def _grow_block(block, size, mode):
    """Grow one C-contiguous block in place."""
    if mode == "grey":
        block[...] = ndi.maximum_filter(block, size=size, mode="constant", cval=0)
        return
    radii = [(s - 1) // 2 for s in size]
    for step in range(max(radii)):
        footprint = tuple(3 if step < r else 1 for r in radii)
        grown = ndi.maximum_filter(block, size=footprint, mode="constant", cval=0)
        empty = block == 0
        block[empty] = grown[empty]


def grow_labels(labels, size=(1, 7, 7), mode="background"):
    """Grow the instances of a (Z, Y, X) label volume in place (see the module docstring).

    labels: (Z, Y, X) unsigned integer ids, 0 = background. Returns ``labels``.
    """
    size = check_window(size)
    if mode not in GROW_MODES:
        raise ValueError(f"dilation mode {mode!r}: must be one of {', '.join(GROW_MODES)}")
    if size == (1, 1, 1) or labels.size == 0:
        return labels
    if size[0] == 1:
        for z in range(labels.shape[0]):
            _grow_block(labels[z:z + 1], size, mode)
    else:
        _grow_block(labels, size, mode)
    return labels
