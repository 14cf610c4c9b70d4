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

Windows with a z size of 1 are applied a few slices at a time, as separable
max filters of shifted ``np.maximum`` (bounded temporaries); windows that
grow in z use ``scipy.ndimage.maximum_filter`` on the whole volume (two
full-size temporaries).
"""
import numpy as np

GROW_MODES = ("background", "grey")
SLICES = 4  # z-slices grown at a time when the window is flat in z (bounds the temporaries)


def check_window(size):
    """Validate a (z, y, x) window of odd positive sizes; return it as a tuple of ints."""
    size = tuple(int(s) for s in size)
    if len(size) != 3 or any(s < 1 or s % 2 == 0 for s in size):
        raise ValueError(f"dilation window {list(size)}: expected three odd positive sizes (z, y, x)")
    return size


def _shift_max(block, radius, axis):
    """Max over a window of ``2 * radius + 1`` along ``axis`` (zero outside), by shifted np.maximum."""
    out = block.copy()
    length = block.shape[axis]
    for d in range(1, min(radius, length - 1) + 1):
        ahead = [slice(None)] * block.ndim
        behind = [slice(None)] * block.ndim
        ahead[axis], behind[axis] = slice(d, None), slice(None, length - d)
        np.maximum(out[tuple(ahead)], block[tuple(behind)], out=out[tuple(ahead)])
        np.maximum(out[tuple(behind)], block[tuple(ahead)], out=out[tuple(behind)])
    return out


def _box_max(block, radii):
    """Max filter of a box of half-sizes ``radii`` (z, y, x); separable, zero padding."""
    if radii[0]:  # only when the window grows in z (then over the whole block)
        from scipy import ndimage as ndi  # here: post-processing commands start without scipy.ndimage

        return ndi.maximum_filter(block, size=tuple(2 * r + 1 for r in radii), mode="constant", cval=0)
    return _shift_max(_shift_max(block, radii[1], 1), radii[2], 2)


def _grow_block(block, size, mode):
    """Grow one block in place."""
    radii = [(s - 1) // 2 for s in size]
    if mode == "grey":
        block[...] = _box_max(block, radii)
        return
    for step in range(max(radii)):
        grown = _box_max(block, [1 if step < r else 0 for r in radii])
        np.copyto(block, grown, where=block == 0)


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
        for z in range(0, labels.shape[0], SLICES):
            _grow_block(labels[z:z + SLICES], size, mode)
    else:
        _grow_block(labels, size, mode)
    return labels
