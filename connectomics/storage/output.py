"""Writable outputs by name: one writer per writable format, chosen by :func:`format_of`.

``create_output(spec, shape, dtype, chunks)`` yields an empty array to fill (slab by slab, block by
block) under a temporary name; when the block ends without an error the array is published under
its final name, the container's other members kept (an HDF5 file's other datasets, a zarr group's
other arrays); on an error nothing is left behind. Adding a writable format = its module and an
entry in ``WRITERS``.
"""
import contextlib
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage.hdf5 import copy_other_datasets, h5_chunks
from connectomics.storage.paths import FORMATS, atomic_path, format_of, parse_spec, publish, remove_path, temporary_name


@contextlib.contextmanager
def _hdf5_output(path, key, shape, dtype, chunks, attrs, level):
    import h5py

    key = key or "main"
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            copy_other_datasets(path, f, key)  # the file's other datasets are kept
            dset = f.create_dataset(key, shape=shape, dtype=dtype, chunks=h5_chunks(shape, chunks[-3:]),
                                    compression="gzip", compression_opts=level)
            dset.attrs.update(attrs)
            yield dset


def require_group(path, member=""):
    """Make ``path`` (and ``path/member``) a zarr group; VolumeError if ``path`` is an array."""
    import zarr

    try:
        group = zarr.open_group(path, mode="a")
    except Exception as err:  # noqa: BLE001 - zarr raises several types for an array in the way
        raise VolumeError(f"output {path} exists and is not a zarr group ({type(err).__name__}: {err}); "
                          "name the output store.zarr without a key, or another store") from err
    if member:
        group.require_group(member)


def zarr_member_temporary(path, key=None):
    """Where the array of ``path[:key]`` is built before :func:`publish_zarr` moves it in place."""
    return temporary_name(path) + (f".{key.replace('/', '.')}" if key else "")


def publish_zarr(tmp, path, key=None):
    """Move the completed array store ``tmp`` to ``path`` (an array store) or to member ``key`` of the
    group ``path`` (made if missing; its other members kept)."""
    if key:
        require_group(path, os.path.dirname(key))
    return publish(tmp, os.path.join(path, key) if key else path)


@contextlib.contextmanager
def _zarr_output(path, key, shape, dtype, chunks, attrs, level):
    import zarr

    tmp = zarr_member_temporary(path, key)
    remove_path(tmp)
    try:
        array = zarr.create_array(store=tmp, shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        array.attrs.update(attrs)
        yield array
    except BaseException:
        remove_path(tmp)
        raise
    publish_zarr(tmp, path, key)


WRITERS = {"hdf5": _hdf5_output, "zarr": _zarr_output}  # format -> writer(path, key, shape, dtype, chunks, ...)


def create_output(spec, shape, dtype, chunks, attrs=None, level=1):
    """Context manager yielding an empty ``shape`` array of ``dtype`` for ``spec`` (``out.h5[:key]``,
    default key ``main``, or ``out.zarr[:array]``), chunked by ``chunks`` (leading axes whole;
    HDF5 gzip ``level``); published complete when the block ends. ``attrs``: the array's attributes."""
    path, key = parse_spec(spec)
    kind = format_of(path)
    if kind not in WRITERS:
        endings = [ending for name in WRITERS for ending in FORMATS[name]]
        raise VolumeError(f"can write {' or '.join(WRITERS)} volumes ({', '.join(endings)}), not {path}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    chunks = tuple(int(c) for c in chunks)
    return WRITERS[kind](path, key, tuple(int(n) for n in shape), np.dtype(dtype), chunks, dict(attrs or {}), level)
