"""Volume I/O: HDF5 (``file.h5`` or ``file.h5:dataset``), zarr (``dir.zarr[:array]``), TIFF stacks,
JSON tile descriptors.

Writes are atomic: data goes to a temporary name in the same folder and is
renamed over the final name only when complete, so a killed run never leaves a
half-written file under the final name.
"""
import contextlib
import glob
import logging
import os

import h5py
import numpy as np

logger = logging.getLogger(__name__)

H5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
TIFF_EXTENSIONS = (".tif", ".tiff")
ZARR_EXTENSIONS = (".zarr",)


class VolumeError(ValueError):
    """A volume file that cannot be used as asked (missing key, wrong shape or dtype)."""


class ResumeError(ValueError):
    """An output (or partial output) that exists from a run with other settings."""


def parse_spec(spec):
    """Split ``'file.h5:key'`` into ``('file.h5', 'key')``; ``'file.h5'`` -> ``('file.h5', None)``."""
    spec = os.fspath(spec)
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(H5_EXTENSIONS + ZARR_EXTENSIONS):
        return head, tail.strip("/") or None
    return spec, None


def _first_dataset(h5file):
    names = []
    h5file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    if not names:
        raise VolumeError(f"{h5file.filename} holds no dataset")
    return names[0]


def _check_exists(path):
    if not any(c in path for c in "*?[") and not os.path.exists(path):
        raise FileNotFoundError(f"volume file not found: {path}")


@contextlib.contextmanager
def open_volume(spec):
    """Yield an array-like (``.shape``, ``.dtype``, slicing) without reading the volume.

    HDF5 yields the ``h5py.Dataset`` and JSON tiles a ``TileVolume`` (both read
    lazily); TIFF stacks yield a NumPy array. Raises FileNotFoundError / VolumeError naming the file and key.
    """
    path, key = parse_spec(spec)
    _check_exists(path)
    lower = path.lower()
    if lower.endswith(H5_EXTENSIONS):
        with h5py.File(path, "r") as f:
            name = key or _first_dataset(f)
            if name not in f or not isinstance(f[name], h5py.Dataset):
                available = []
                f.visititems(lambda n, o: available.append(n) if isinstance(o, h5py.Dataset) else None)
                raise VolumeError(f"{path} has no dataset {name!r}; it has: {', '.join(available) or 'none'}")
            yield f[name]
    elif lower.endswith(ZARR_EXTENSIONS):
        yield open_zarr_array(path, key)
    elif lower.endswith(".json"):
        from connectomics.data.tiles import read_tile_volume

        yield read_tile_volume(path)
    else:
        yield read_image_stack(path)


def open_zarr_array(path, key=None):
    """The zarr array at ``path`` (an array store) or ``path``'s member ``key`` (a group).

    A group opened without a key yields its array ``main``, else its only array.
    Read-only; raises VolumeError naming the store and the arrays it has.
    """
    import zarr

    try:
        node = zarr.open(path.rstrip("/"), mode="r")
    except Exception as err:  # zarr raises several types for a folder that is not a store
        raise VolumeError(f"{path} is not a readable zarr store ({type(err).__name__}: {err})") from err
    if isinstance(node, zarr.Array):
        if key:
            raise VolumeError(f"{path} is a zarr array, not a group: it has no member {key!r}")
        return node
    names = sorted(node.array_keys())
    name = key or ("main" if "main" in names else (names[0] if len(names) == 1 else None))
    if name is None or name not in names:
        what = f"no array {key!r}" if key else "several arrays and none called 'main'; name one as store.zarr:key"
        raise VolumeError(f"{path} has {what}; it has: {', '.join(names) or 'none'}")
    return node[name]


def read_volume(spec, dtype=None, ndim=None):
    """Read a whole volume into memory as a NumPy array (optionally cast / checked)."""
    with open_volume(spec) as vol:
        array = np.asarray(vol[...])
    if ndim is not None and array.ndim != ndim:
        raise VolumeError(f"{spec}: expected a {ndim}D volume, got shape {array.shape}")
    return array.astype(dtype, copy=False) if dtype is not None else array


def read_image_stack(path):
    """A TIFF file (multi-page), or a glob / folder of 2D images, as a (Z, Y, X) array."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*")))
    elif any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"no image files match {path}")
    if len(files) == 1 and files[0].lower().endswith(TIFF_EXTENSIONS):
        import tifffile

        return tifffile.imread(files[0])
    slices = [_read_image(f) for f in files]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise VolumeError(f"images under {path} differ in shape: {sorted(shapes)}")
    return np.stack(slices)


def _read_image(path):
    if path.lower().endswith(TIFF_EXTENSIONS):
        import tifffile

        return tifffile.imread(path)
    from skimage import io as skio

    image = skio.imread(path)
    return image[..., 0] if image.ndim == 3 else image


def temporary_name(path):
    """The temporary sibling of ``path`` that atomic writes use."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.partial")


def remove_path(path):
    """Remove a file or a folder (a zarr store) if it exists."""
    if os.path.isdir(path):
        import shutil

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path; rename it to ``path`` if the block succeeds, else remove it.

    Works for files and for folders (zarr stores); an existing ``path`` is replaced.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    remove_path(tmp)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if os.path.isdir(tmp):
        remove_path(path)  # os.replace cannot replace a non-empty folder
    os.replace(tmp, path)


def h5_chunks(shape, target=(32, 256, 256)):
    """HDF5 chunk shape: the trailing (z, y, x) dims capped by ``target``, leading dims 1."""
    lead = len(shape) - 3
    return tuple([1] * lead + [max(1, min(s, t)) for s, t in zip(shape[lead:], target)])


def write_volume(spec, array, compression="gzip", level=4):
    """Write ``array`` to ``file.h5[:key]`` (default key ``main``) atomically, chunked and compressed.

    Other datasets already in the file are kept. Returns the final path.
    """
    path, key = parse_spec(spec)
    key = key or "main"
    array = np.asarray(array)
    if not path.lower().endswith(H5_EXTENSIONS):
        raise VolumeError(f"can only write HDF5 volumes (.h5), not {path}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            if os.path.exists(path):
                with h5py.File(path, "r") as old:
                    for name in old:
                        if name != key:
                            old.copy(name, out)
            opts = {"compression": compression, "compression_opts": level} if compression == "gzip" else {
                "compression": compression}
            chunks = h5_chunks(array.shape) if array.ndim >= 3 and array.size else None
            out.create_dataset(key, data=array, chunks=chunks, **(opts if chunks else {}))
    return path
