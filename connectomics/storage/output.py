"""Writable outputs by name: one writer per writable format, chosen by :func:`format_of`.

``create_output(spec, shape, dtype, chunks)`` yields an empty array to fill (slab by slab, block by
block) under a temporary name; when the block ends without an error the array is published under
its final name, the container's other members kept (an HDF5 file's other datasets, a zarr group's
other arrays); on an error nothing is left behind.

A format whose arrays many processes may write at once (zarr: one file per chunk) is a
:class:`Writer` with ``parallel`` set: :meth:`Writer.start` makes the empty array under a temporary
name (reopened when its settings match, so a killed run resumes), workers open it by path
(:func:`~connectomics.storage.zarr_array.open_array`) and write their blocks, and
:meth:`Writer.finish` publishes it. Adding a writable format = its module and an entry in ``WRITERS``
(:func:`register_writer`).
"""
import contextlib
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage.hdf5 import copy_other_datasets, h5_chunks
from connectomics.storage.paths import FORMATS, atomic_path, format_of, parse_spec, publish, remove_path, temporary_name
from connectomics.storage.zarr_array import create_array


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


class Writer:
    """A writable format. ``create(path, key, shape, dtype, chunks, attrs, level)``: the sequential
    writer (a context manager yielding the array); ``parallel``: workers may write blocks into the
    array :meth:`start` made, by path."""

    parallel = False

    def __init__(self, create):
        self.create = create

    def check(self, path, key=None):
        """VolumeError now if ``path[:key]`` cannot be written (before long work starts)."""

    def start(self, path, key, shape, dtype, block, settings, attrs=None):
        """Make (or reopen, same ``settings``) the empty array of ``path[:key]`` under a temporary
        name, in chunks that tile ``block``, with the attributes ``attrs``; returns ``(tmp, array_path)``:
        what :meth:`finish` publishes and where workers write."""
        raise NotImplementedError(f"{type(self).__name__} writes from one process only")

    def finish(self, tmp, path, key=None):
        """Publish the completed array started as ``tmp`` under ``path[:key]``."""
        raise NotImplementedError(f"{type(self).__name__} writes from one process only")


class ZarrWriter(Writer):
    """zarr: a store (or a group's member) whose chunks workers write in parallel."""

    parallel = True

    def check(self, path, key=None):
        if key and os.path.exists(path):
            require_group(path)  # an array store in the way of a member

    def start(self, path, key, shape, dtype, block, settings, attrs=None):
        tmp = zarr_member_temporary(path, key)
        array = create_array(tmp, shape, block, dtype, settings)
        array.attrs.update(attrs or {})
        return tmp, tmp

    def finish(self, tmp, path, key=None):
        return publish_zarr(tmp, path, key)


def write_region(where, slices, data):
    """What a worker does with its block: ``array[slices] = data`` into the array ``where`` a
    parallel :meth:`Writer.start` made (plus, for an OME-Zarr, the block's share of every level).
    ``slices``: absolute, all axes (channels included), with explicit starts and stops."""
    from connectomics.storage.zarr_array import open_array

    array = open_array(where, "r+")
    array[slices] = data
    for hook in REGION_HOOKS:
        hook(array, where, slices, data)


REGION_HOOKS = []  # hook(array, where, slices, data) after a block's write: a format's extra work (OME-Zarr levels)


WRITERS = {"hdf5": Writer(_hdf5_output), "zarr": ZarrWriter(_zarr_output)}  # format -> Writer


def register_writer(name, writer):
    """Write the format ``name`` (registered for reading with ``register_format``) with ``writer``."""
    WRITERS[name] = writer


def output_writer(path, parallel=False):
    """The :class:`Writer` of ``path``'s format (``parallel``: one that workers can share);
    VolumeError naming the writable endings otherwise."""
    kind = format_of(path)
    names = [name for name, writer in WRITERS.items() if writer.parallel or not parallel]
    if kind not in names:
        endings = [ending for name in names for ending in FORMATS[name]]
        raise VolumeError(f"can write {', '.join(names)} volumes{' from many workers' if parallel else ''} "
                          f"({', '.join(endings)}), not {path}")
    return WRITERS[kind]


def create_output(spec, shape, dtype, chunks, attrs=None, level=1):
    """Context manager yielding an empty ``shape`` array of ``dtype`` for ``spec`` (``out.h5[:key]``,
    default key ``main``, or ``out.zarr[:array]``), chunked by ``chunks`` (leading axes whole;
    HDF5 gzip ``level``); published complete when the block ends. ``attrs``: the array's attributes."""
    path, key = parse_spec(spec)
    writer = output_writer(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    shape = tuple(int(n) for n in shape)
    chunks = shape[:len(shape) - len(chunks)] + tuple(int(c) for c in chunks)  # leading axes whole
    return writer.create(path, key, shape, np.dtype(dtype), chunks, dict(attrs or {}), level)
