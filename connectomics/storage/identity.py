"""Content identity of a volume: what every result made from it is keyed by.

A result (probability maps, instances, a scores table) records the identity of
the volumes it was made from; a rerun whose input has another identity makes
the result again instead of reusing it. The identity of a volume on disk is a
SHA-1 of

* the size and modification time (ns) of every file that holds its voxels: the
  HDF5 file; every chunk and metadata file of a zarr array; every TIFF / image
  slice; the JSON descriptor of a tiled stack and each of its tiles. A file
  rewritten in place (an HDF5 dataset, one zarr chunk) changes its mtime;
* the dataset / array name, shape and dtype;
* a hash of a sample of its voxels (the central 64 x 64 patch of its first,
  middle and last slices), so a file swapped for another of the same size and
  time stamp (``cp -p``, ``rsync -t``) is caught as well.

Files are named relative to the volume's folder, so a volume moved or copied
with its time stamps (``cp -p``, ``rsync -a``, ``shutil.copytree``) keeps its
identity. It costs a ``stat`` per file and three small reads, whatever the
volume's size (a zarr store of 10^5 chunk files: well under a second). A copy
of the same voxels under a new time stamp counts as new input: its results
are made again, never reused wrongly. An in-memory NumPy array is identified
by a hash of all its bytes.
"""
import glob
import hashlib
import os

import numpy as np

from connectomics.storage.paths import parse_spec
from connectomics.storage.volume import open_volume

SAMPLE = 64  # y/x side of the sampled patch of each sampled slice


def volume_identity(source):
    """A hex id of ``source``'s content: a spec (``file.h5[:key]``, ``store.zarr[:key]``, TIFF,
    slice folder or glob, ``.json`` tiles) or an array-like (NumPy: hash of its bytes; an open
    h5py dataset / zarr array: as its file or store; anything else: None, meaning unknown).

    Raises FileNotFoundError / VolumeError as :func:`connectomics.storage.volume.open_volume`.
    """

    if isinstance(source, np.ndarray):
        digest = hashlib.sha1(f"array:{source.shape}:{source.dtype}".encode())
        digest.update(np.ascontiguousarray(source).view(np.uint8).reshape(-1).data)
        return digest.hexdigest()
    if not isinstance(source, (str, os.PathLike)):
        return _open_identity(source)
    path, key = parse_spec(source)
    with open_volume(source) as volume:
        return _identity(volume, _files(volume, path), key)


def _open_identity(volume):
    """The identity of an already opened h5py dataset or zarr array; None for other array-likes."""
    h5file = getattr(getattr(volume, "file", None), "filename", None)
    if h5file:
        return _identity(volume, [h5file], getattr(volume, "name", None))
    if getattr(volume, "store_path", None) is not None:
        return _identity(volume, _files(volume, None), getattr(volume, "path", None))
    return None


def _identity(volume, files, key):
    digest = hashlib.sha1(f"{key}:{tuple(volume.shape)}:{np.dtype(volume.dtype)}".encode())
    base = os.path.commonpath([os.path.abspath(f) for f in files]) if len(files) > 1 else None
    for name in files:
        stat = os.stat(name)
        # names relative to the volume's folder: a volume moved or copied with its time stamps is the same
        where = os.path.relpath(os.path.abspath(name), base) if base else os.path.basename(name)
        digest.update(f"{where}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    digest.update(_sample_digest(volume))
    return digest.hexdigest()


def _files(volume, path):
    """The files holding ``volume``'s voxels (opened from ``path``), sorted."""
    store = getattr(volume, "store_path", None)
    if store is not None:  # zarr: every file under the array's folder (chunks + metadata)
        root = getattr(getattr(store, "store", None), "root", None)
        if root is None:
            raise ValueError(f"{path}: only zarr stores in a local folder can be used")
        return _walk(os.path.join(str(root), volume.path))
    h5file = getattr(getattr(volume, "file", None), "filename", None)
    if h5file:
        return [h5file]
    files = getattr(volume, "files", None)
    if callable(files):  # TileVolume: descriptor + tiles
        return list(files())
    if files is not None:  # ImageStack: slices
        return list(files)
    return sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]


def _walk(folder):
    found = []
    for here, dirs, names in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(here, n) for n in sorted(names))
    return found


def _sample_digest(volume):
    """SHA-1 bytes of the central SAMPLE x SAMPLE patch of the first, middle and last slice."""
    shape = tuple(volume.shape)
    digest = hashlib.sha1()
    if len(shape) < 3 or min(shape) < 1:
        return digest.digest()
    lead = (slice(None),) * (len(shape) - 3)
    depth, height, width = shape[-3:]
    ys = slice(max(0, height // 2 - SAMPLE // 2), min(height, height // 2 + SAMPLE // 2))
    xs = slice(max(0, width // 2 - SAMPLE // 2), min(width, width // 2 + SAMPLE // 2))
    for z in sorted({0, depth // 2, depth - 1}):
        patch = np.ascontiguousarray(volume[lead + (slice(z, z + 1), ys, xs)])
        digest.update(patch.view(np.uint8).reshape(-1).data)
    return digest.digest()
