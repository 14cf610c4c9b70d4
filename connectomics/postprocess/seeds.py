"""Seeds: the connected components of thresholded uint8 maps, in one raster pass.

The seed mask ``foreground > int(255 * seed) & contour < int(255 * contour)``
is never built: the Cython kernel scans each row for runs of seed voxels,
joins runs that touch in the previous row and the previous plane with a
union-find, and writes provisional ids straight into the label volume (the
only full-size allocation, 4 B/voxel). ``groups`` maps the provisional ids to
components 1..n numbered in raster order of their first voxel, exactly as
cc3d numbers them; it can be applied at once (``label_seeds``) or folded into
a later relabelling (``seed_components``: the watershed and the size filter
give the same result on provisional ids).
"""
import numpy as np

from connectomics._ext import labels as _kernel
from connectomics.postprocess.maps import SLAB, threshold_level

UINT32_MAX = np.iinfo(np.uint32).max


def seed_mask(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8):
    """(Z, Y, X) bool: ``foreground > int(255 * seed_threshold)`` and ``contour < int(255 * contour_threshold)``.

    foreground, contour: (Z, Y, X) uint8 maps (contour optional). For tests
    and inspection; the decoders label seeds without building it.
    """
    seed_level = threshold_level(seed_threshold, "seed_threshold")
    contour_level = None if contour is None else threshold_level(contour_threshold, "contour_threshold")
    mask = np.empty(foreground.shape, bool)
    for z in range(0, foreground.shape[0], SLAB):
        part = mask[z:z + SLAB]
        np.greater(foreground[z:z + SLAB], seed_level, out=part)
        if contour_level is not None:
            part &= contour[z:z + SLAB] < contour_level
    return mask


def _check_map(array, name, shape):
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or (shape is not None and array.shape != shape):
        raise ValueError(f"{name}: expected a (Z, Y, X) uint8 map{f' of shape {shape}' if shape else ''}, "
                         f"got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)


def seed_components(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8, connectivity=6):
    """Provisional components of the seed mask -> ``(labels, n_provisional, groups)``.

    foreground, contour: (Z, Y, X) uint8 maps (contour optional).
    labels: (Z, Y, X) uint32 (uint64 for volumes of more than 2**32 - 1
    voxels), provisional ids 1..n_provisional; groups: int64 map provisional
    id -> component id, or None when the provisional ids are already final.
    """
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity = {connectivity!r}: must be 6 or 26")
    foreground = _check_map(foreground, "foreground", None)
    contour = None if contour is None else _check_map(contour, "contour", foreground.shape)
    seed_level = threshold_level(seed_threshold, "seed_threshold")
    contour_level = 0 if contour is None else threshold_level(contour_threshold, "contour_threshold")
    labels = np.zeros(foreground.shape, np.uint32 if foreground.size <= UINT32_MAX else np.uint64)
    if labels.size == 0:
        return labels, 0, None
    groups = _kernel.label_seed_runs(foreground, contour, seed_level, contour_level, labels, connectivity)
    n = len(groups) - 1
    return labels, n, (None if np.array_equal(groups, np.arange(n + 1)) else groups)


def label_seeds(foreground, contour=None, seed_threshold=0.9, contour_threshold=0.8, connectivity=6):
    """Components of the seed mask (see ``seed_mask``) -> ``(labels, n)``, ids 1..n in raster order."""
    labels, n, groups = seed_components(foreground, contour, seed_threshold, contour_threshold, connectivity)
    if groups is None:
        return labels, n
    _kernel.apply_lut(labels.reshape(-1), groups.astype(labels.dtype))
    return labels, int(groups.max())
