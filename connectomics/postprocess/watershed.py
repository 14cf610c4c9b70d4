"""Seeded watershed: the Python API over the Cython bucket-queue kernel.

This module owns the checks (dtypes, shapes, contiguity); the kernel
(``cython_ext/watershed.pyx``) owns the loop. The result equals
``skimage.segmentation.watershed(level, seeds, mask=..., connectivity=...)`` on
the uint8 level map, up to the order in which equal-level seeds are taken
(scikit-image breaks those ties by heap position, we by raster order).
"""
import numpy as np

from connectomics._ext import watershed as _kernel

UINT32_MAX = np.iinfo(np.uint32).max


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image: expected a (Z, Y, X) volume, got shape {image.shape}")
    if image.dtype == np.float64:
        image = image.astype(np.float32)
    if image.dtype not in (np.uint8, np.float32):
        raise TypeError(f"image: expected uint8 levels (0..255) or float32 in [0, 1], got {image.dtype}")
    return np.ascontiguousarray(image)


def _check_seeds(seeds, shape, inplace):
    seeds = np.asarray(seeds)
    if seeds.shape != shape:
        raise ValueError(f"seeds: shape {seeds.shape} differs from the image shape {shape}")
    if seeds.dtype == bool or not np.issubdtype(seeds.dtype, np.integer):
        raise TypeError(f"seeds: expected integer labels (0 = unlabelled), got {seeds.dtype}")
    usable = seeds.dtype in (np.uint32, np.uint64) and seeds.flags.c_contiguous and seeds.flags.writeable
    if inplace:
        if not usable:
            raise ValueError("seeds: inplace=True needs a writeable C-contiguous uint32 or uint64 array, "
                             f"got {seeds.dtype} (C-contiguous: {seeds.flags.c_contiguous})")
        return seeds
    if usable:
        return seeds.copy()
    if seeds.size and seeds.min() < 0:
        raise ValueError(f"seeds: labels must be >= 0, found {seeds.min()}")
    big = seeds.size and seeds.max() > UINT32_MAX
    return np.ascontiguousarray(seeds, dtype=np.uint64 if big else np.uint32).copy()


def _check_mask(mask, shape):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"mask: shape {mask.shape} differs from the image shape {shape}")
    if mask.dtype not in (bool, np.uint8):
        mask = mask != 0
    return np.ascontiguousarray(mask).view(np.uint8)


def _check_sizes(sizes):
    if sizes is None:
        return None
    if not (isinstance(sizes, np.ndarray) and sizes.dtype == np.uint64 and sizes.ndim == 1
            and sizes.flags.c_contiguous and sizes.flags.writeable):
        raise TypeError("sizes: expected a writeable 1-D C-contiguous uint64 array")
    return sizes


def seeded_watershed(image, seeds, mask=None, connectivity=6, max_level=255, invert=False, inplace=False,
                     sizes=None):
    """Flood ``seeds`` over ``image``, lowest level first.

    image: (Z, Y, X) uint8 levels, or float32 in [0, 1] taken as
        ``floor(255 * p + 0.5)`` (float64 is cast to float32).
    seeds: (Z, Y, X) integer labels >= 0, 0 = to be flooded. Seeds outside the
        mask (or above ``max_level``) are dropped, as in scikit-image.
    mask: optional (Z, Y, X) bool / uint8; only nonzero voxels are flooded.
    connectivity: 6 (faces) or 26 (faces, edges, corners).
    max_level: voxels whose level exceeds it are not flooded (a mask that
        costs no memory: ``foreground > L`` is ``invert=True, max_level=254 - L``).
    invert: flood ``255 - level`` (bright voxels first).
    inplace: flood ``seeds`` itself (must be C-contiguous uint32 / uint64).
    sizes: optional zeroed uint64 array, longer than the largest seed id: it
        receives the voxel count of each id in the result (no extra pass).

    Returns the (Z, Y, X) uint32 (or uint64) labels; 0 where nothing reached.
    """
    if connectivity not in (6, 26):
        raise ValueError(f"connectivity = {connectivity!r}: must be 6 or 26")
    if not -1 <= int(max_level) <= 255:
        raise ValueError(f"max_level = {max_level!r}: must be in -1..255")
    image = _check_image(image)
    labels = _check_seeds(seeds, image.shape, inplace)
    mask = _check_mask(mask, image.shape)
    if labels.size:
        open_bits = np.zeros(_kernel.open_bitmap_words(*labels.shape), np.uint64)
        frontier_bits = np.zeros((labels.size + 63) // 64, np.uint64)
        missed = _kernel.flood(image, labels, mask, int(max_level), bool(invert), int(connectivity), open_bits,
                               frontier_bits, _check_sizes(sizes))
        if missed:
            raise ValueError(f"sizes: {missed} labelled voxels have ids >= len(sizes) = {len(sizes)}")
    return labels
