"""TIFF as an output: an uncompressed ImageJ hyperstack (one page per z slice, or per channel and
slice), filled through a memory map, so a volume larger than RAM is written slice by slice; the
voxel size (``voxel_size`` attribute, nm) goes into the ImageJ spacing and the X/Y resolution
tags in um, which ImageJ / Fiji and :mod:`connectomics.storage.voxel` read back.

ImageJ's own types (uint8, uint16, float32) are written as ImageJ TIFFs; other types up to 32 bits
(uint32 labels) as plain TIFFs with the same spacing in tifffile's JSON description; wider ones
are refused. One process writes it (``parallel`` is False); the file appears under its final
name only when complete.
"""
import contextlib
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage.output import Writer
from connectomics.storage.paths import remove_path, temporary_name


@contextlib.contextmanager
def _tiff_output(path, key, shape, dtype, chunks, attrs, level):
    import tifffile

    if key:
        raise VolumeError(f"{path}: a TIFF holds one volume; name it without ':{key}'")
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif" or dtype.itemsize > 4:
        raise VolumeError(f"{path}: TIFF output holds up to 32-bit values, not {dtype}; write HDF5 or zarr instead")
    voxel = attrs.get("voxel_size")
    options = {}
    if voxel:
        z, y, x = (float(v) / 1000 for v in voxel)  # nm -> um
        options = {"resolution": (1 / x, 1 / y), "metadata": {"spacing": z, "unit": "um",
                                                             "axes": "CZYX" if len(shape) == 4 else "ZYX"}}
    tmp = temporary_name(path) + ".tif"
    remove_path(tmp)
    try:
        imagej = dtype in (np.uint8, np.uint16, np.float32)
        array = tifffile.memmap(tmp, shape=tuple(shape), dtype=dtype, imagej=imagej, **options)
        yield array
        array.flush()
        del array
    except BaseException:
        remove_path(tmp)
        raise
    os.replace(tmp, path)


WRITER = Writer(_tiff_output)


def register():
    """Make TIFF a writable format (it is readable already)."""
    from connectomics.storage.output import register_writer

    register_writer("tiff", WRITER)
