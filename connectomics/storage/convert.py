"""Copy a volume between formats (HDF5, zarr, TIFF / JSON tiles in) and rechunk it, slab by slab.

Memory: one slab of ``chunks[-3]`` z-slices (all channels) at a time, whatever the volume size.
"""
import logging
import os

import numpy as np
from tqdm import tqdm

from connectomics.errors import VolumeError
from connectomics.storage.output import create_output
from connectomics.storage.paths import format_of, parse_spec
from connectomics.storage.volume import open_volume

logger = logging.getLogger(__name__)


def convert_volume(src_spec, dst_spec, chunks=(64, 512, 512), overwrite=False, voxel_size=None,
                   override_voxel_size=False):
    """Copy ``src_spec`` to ``dst_spec`` (``out.zarr[:array]``, ``out.h5[:key]``, ``out.ome.zarr`` (an
    image) or ``out.ome.zarr:labels/NAME`` (a label of it)) with (z, y, x) ``chunks``.

    Leading axes (channels) are kept whole in each chunk. The voxel size ((z, y, x) nm: ``voxel_size``,
    else what the source records) goes with it; a ``voxel_size`` the source contradicts is a
    VolumeError unless ``override_voxel_size``. The destination appears under its final name only
    when complete. Returns the destination path.
    """
    from connectomics.storage.voxel import VOXEL_SIZE, resolve_voxel_size

    path, key = parse_spec(dst_spec)
    target = os.path.join(path, key or "0") if format_of(path) == "ome-zarr" else path  # an image: its level 0
    if os.path.exists(target) and not overwrite:
        raise VolumeError(f"{dst_spec} exists; pass overwrite=True (--overwrite) to replace it")
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) != 3 or min(chunks) < 1:
        raise ValueError(f"chunks must be three positive integers (z, y, x), got {list(chunks)}")
    voxel = resolve_voxel_size(voxel_size, [src_spec], override_voxel_size, key="--voxel-size")
    attrs = {VOXEL_SIZE: list(voxel)} if voxel else {}
    with open_volume(src_spec) as src:
        shape, dtype = tuple(src.shape), np.dtype(src.dtype)
        if len(shape) < 3:
            raise VolumeError(f"{src_spec}: expected a (..., Z, Y, X) volume, got shape {shape}")
        lead = shape[:-3]
        full_chunks = lead + tuple(min(c, n) for c, n in zip(chunks, shape[-3:]))
        with create_output(dst_spec, shape, dtype, full_chunks, attrs) as dst:  # the container's other members kept
            _copy(src, dst, full_chunks[-3])
    logger.info("%s -> %s: %s %s in chunks of %s", src_spec, dst_spec, shape, dtype, list(full_chunks))
    return path


def _copy(src, dst, slab):
    lead = (slice(None),) * (len(src.shape) - 3)
    depth = src.shape[-3]
    for z in tqdm(range(0, depth, slab), unit="slab", desc="convert", disable=None):
        index = lead + (slice(z, min(z + slab, depth)),)
        dst[index] = np.asarray(src[index])
