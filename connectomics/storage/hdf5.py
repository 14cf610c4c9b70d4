"""HDF5 volumes: open a dataset, chunk shapes, atomic writes that keep a file's other datasets."""
import logging
import os

import h5py

from connectomics.errors import VolumeError
from connectomics.storage.paths import atomic_path

logger = logging.getLogger(__name__)


def _first_dataset(h5file):
    names = []
    h5file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if not names:
        raise VolumeError(f"{h5file.filename} holds no dataset")
    return names[0]


def open_dataset(path, key=None):
    """The open HDF5 file and its dataset ``key`` (default: the first dataset), read-only.

    Returns ``(file, dataset)``; the caller closes the file. Raises VolumeError naming the
    file and the datasets it has.
    """
    if os.path.isdir(path):
        raise VolumeError(f"{path} is a folder, not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:  # truncated, corrupt, or not HDF5 at all
        raise VolumeError(f"{path} is not a readable HDF5 file ({err}); was it written completely?") from None
    name = key or _first_dataset(f)
    if name not in f or not isinstance(f[name], h5py.Dataset):
        available = []
        f.visititems(lambda n, o: available.append(n) if isinstance(o, h5py.Dataset) else None)
        f.close()
        raise VolumeError(f"{path} has no dataset {name!r}; it has: {', '.join(available) or 'none'}")
    return f, f[name]


def h5_chunks(shape, target=(32, 256, 256)):
    """HDF5 chunk shape: the trailing (z, y, x) dims capped by ``target``, leading dims 1."""
    lead = len(shape) - 3
    return tuple([1] * lead + [max(1, min(s, t)) for s, t in zip(shape[lead:], target)])


def copy_other_datasets(path, out, key):
    """Copy the members of the existing HDF5 file ``path`` other than ``key`` into the open file ``out``.

    How an HDF5 output ``file.h5:key`` is replaced atomically without losing the file's
    other datasets: they go into the temporary file first. Nothing happens if ``path``
    does not exist.
    """
    if not os.path.exists(path):
        return
    try:
        old = h5py.File(path, "r")
    except OSError as err:
        logger.warning("%s is not a readable HDF5 file (%s): it is replaced and its other datasets are lost", path, err)
        return
    with old:
        for name in old:
            if name != key:
                old.copy(name, out)
    if key in out:  # a nested key ('group/seg') came with its group
        del out[key]


def write_dataset(path, key, array, compression="gzip", level=4, attrs=None):
    """Write ``array`` to dataset ``key`` of ``path`` atomically, chunked and compressed.

    Other datasets already in the file are kept; ``attrs`` (a dict) become the dataset's
    attributes. Returns the final path.
    """
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            copy_other_datasets(path, out, key)
            opts = {"compression": compression, "compression_opts": level} if compression == "gzip" else {
                "compression": compression}
            chunks = h5_chunks(array.shape) if array.ndim >= 3 and array.size else None
            dset = out.create_dataset(key, data=array, chunks=chunks, **(opts if chunks else {}))
            dset.attrs.update(attrs or {})
    return path
