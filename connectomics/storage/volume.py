"""Open, read and write a volume by its name, whatever its format: HDF5 (``file.h5`` or ``file.h5:dataset``),
zarr (``dir.zarr[:array]``), TIFF stacks or image folders, JSON tile descriptors.

Reads are lazy (array-likes that read only what is sliced); writes are atomic: data goes to a
temporary name in the same folder and is renamed over the final name only when complete.
"""
import contextlib
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage.hdf5 import open_dataset, write_dataset
from connectomics.storage.images import read_image_stack
from connectomics.storage.paths import FORMATS, format_of, parse_spec
from connectomics.storage.tiles import read_tile_volume
from connectomics.storage.zarr_array import open_zarr_array


def _check_exists(path):
    if not any(c in path for c in "*?[") and not os.path.exists(path):
        raise FileNotFoundError(f"volume file not found: {path}")


@contextlib.contextmanager
def _open_hdf5(path, key):
    f, dataset = open_dataset(path, key)
    with f:
        yield dataset


def _plain(opener):
    """An opener of an array-like that needs no closing, as a context manager."""
    return lambda path, key: contextlib.nullcontext(opener(path, key))


# format -> opener(path, key): a context manager yielding the lazy array-like
OPENERS = {"hdf5": _open_hdf5, "zarr": _plain(open_zarr_array), "tiles": _plain(lambda p, k: read_tile_volume(p)),
           "tiff": _plain(lambda p, k: read_image_stack(p)), "images": _plain(lambda p, k: read_image_stack(p))}


def register_format(name, endings, opener):
    """Read the format ``name`` of files ending in ``endings`` with ``opener(path, key)`` (a context
    manager yielding a lazy array-like) wherever volumes are opened by name. Its endings are
    matched before those of the formats known so far (``.ome.zarr`` before ``.zarr``)."""
    others = {k: v for k, v in FORMATS.items() if k != name}
    FORMATS.clear()
    FORMATS.update({name: tuple(endings), **others})
    OPENERS[name] = opener


@contextlib.contextmanager
def open_volume(spec):
    """Yield an array-like (``.shape``, ``.dtype``, slicing) without reading the volume.

    HDF5 yields the ``h5py.Dataset``, zarr the ``zarr.Array``, JSON tiles a
    ``TileVolume`` and TIFF stacks / image folders an ``ImageStack`` (all read
    lazily; a format added with :func:`register_format`, what its opener yields).
    Raises FileNotFoundError / VolumeError naming the file and key.
    """
    path, key = parse_spec(spec)
    _check_exists(path)
    with OPENERS[format_of(path)](path, key) as volume:
        yield volume


def read_volume(spec, dtype=None, ndim=None):
    """Read a whole volume into memory as a NumPy array (optionally cast / checked).

    HDF5 gzip datasets are inflated on several threads (:mod:`~connectomics.storage.hdf5_direct`)."""
    from connectomics.storage.hdf5_direct import read_all

    with open_volume(spec) as vol:
        array = np.asarray(read_all(vol))
    if ndim is not None and array.ndim != ndim:
        raise VolumeError(f"{spec}: expected a {ndim}D volume, got shape {array.shape}")
    return array.astype(dtype, copy=False) if dtype is not None else array


def write_volume(spec, array, compression="gzip", level=4, attrs=None):
    """Write ``array`` to ``file.h5[:key]`` (default key ``main``; ``compression`` and gzip ``level``)
    or any other writable format (``store.zarr[:array]``, ``store.ome.zarr[:labels/NAME]``, see
    :func:`~connectomics.storage.output.create_output`) atomically, chunked and compressed.

    Other members already in the file / store are kept; ``attrs`` (a dict) become the array's
    attributes. Returns the final path.
    """
    from connectomics.storage.output import create_output

    path, key = parse_spec(spec)
    array = np.asarray(array)
    if format_of(path) == "hdf5":
        return write_dataset(path, key or "main", array, compression, level, attrs)
    with create_output(spec, array.shape, array.dtype, (32, 256, 256), attrs) as out:
        out[...] = array
    return path
