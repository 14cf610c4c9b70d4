"""Smooth random fields for the synthetic volumes (outline wobble, cell background, shading)."""
import numpy as np


def smooth_field(shape, spacing, rng):
    """Smooth Gaussian random field, float32 of ``shape``, mean 0 and unit variance at every voxel.

    White noise on a coarse grid (node distance ``spacing`` voxels per axis) is
    interpolated with Gaussian weights, one matrix product per axis (cheap:
    about ``shape.size * coarse_z`` multiply-adds).
    """
    spacing = np.broadcast_to(np.asarray(spacing, float), (3,))
    coarse = [int(np.ceil(n / sp)) + 4 for n, sp in zip(shape, spacing)]
    field = rng.standard_normal(coarse, dtype=np.float32)
    for axis in (2, 1, 0):
        n, sp = shape[axis], spacing[axis]
        nodes = (np.arange(coarse[axis]) - 2.0) * sp
        weights = np.exp(-0.5 * ((np.arange(n)[:, None] - nodes[None, :]) / sp) ** 2)
        weights /= np.sqrt((weights ** 2).sum(axis=1, keepdims=True))  # unit variance per voxel
        field = resample_axis(field, weights.astype(np.float32), axis)
    return field


def resample_axis(volume, weights, axis):
    """``volume`` (3D) with ``axis`` mapped through ``weights`` (new_n, old_n) by a matrix product."""
    volume = np.ascontiguousarray(volume)
    if axis == 2:
        flat = volume.reshape(-1, volume.shape[2]) @ np.ascontiguousarray(weights.T)
        return flat.reshape(volume.shape[:2] + (weights.shape[0],))
    if axis == 1:  # one large product: batched small ones are slow with a threaded BLAS
        return np.ascontiguousarray(np.tensordot(weights, volume, axes=(1, 1)).transpose(1, 0, 2))
    return (weights @ volume.reshape(volume.shape[0], -1)).reshape((weights.shape[0],) + volume.shape[1:])
