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

    HDF5 yields the ``h5py.Dataset``, zarr the ``zarr.Array``, JSON tiles a
    ``TileVolume`` and TIFF stacks / image folders an ``ImageStack`` (all read
    lazily). Raises FileNotFoundError / VolumeError naming the file and key.
    """
    path, key = parse_spec(spec)
    _check_exists(path)
    lower = path.lower()
    if lower.endswith(H5_EXTENSIONS):
        if os.path.isdir(path):
            raise VolumeError(f"{path} is a folder, not an HDF5 file")
        try:
            f = h5py.File(path, "r")
        except OSError as err:  # truncated, corrupt, or not HDF5 at all
            raise VolumeError(f"{path} is not a readable HDF5 file ({err}); was it written completely?") from None
        with f:
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
    if key and "/" in key.strip("/"):  # a nested member: group/array
        try:
            member = node[key.strip("/")]
        except KeyError:
            member = None
        if isinstance(member, zarr.Array):
            return member
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
    """A lazy (Z, Y, X) :class:`ImageStack` of a TIFF file (multi-page), or a glob / folder of 2D images."""
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*"))
                       if os.path.isfile(f) and not os.path.basename(f).startswith("."))
    elif any(c in path for c in "*?["):
        files = sorted(f for f in glob.glob(path) if os.path.isfile(f))
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"no image files match {path}")
    return ImageStack(path, files)


def index_box(key, shape, name):
    """``(box, squeeze)`` of a NumPy-style ``key`` into a (Z, Y, X) volume of ``shape``.

    ``key``: integers, step-1 slices or Ellipsis (per axis); ``box``: ((z0, z1),
    (y0, y1), (x0, x1)); ``squeeze``: the axes an integer index removes. Raises
    IndexError naming the volume for anything else.
    """
    if key is Ellipsis:
        key = ()
    if not isinstance(key, tuple):
        key = (key,)
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (3 - len(key) + 1) + key[at + 1:]
    if len(key) > 3:
        raise IndexError(f"{name}: too many indices for a 3D volume: {key}")
    key = key + (slice(None),) * (3 - len(key))
    box, squeeze = [], []
    for axis, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"{name}: index {int(k)} is out of range for axis {axis} of size {n}")
            box.append((i, i + 1))
            squeeze.append(axis)
            continue
        if not isinstance(k, slice) or k.step not in (None, 1):
            raise IndexError(f"{name}: only integers and step-1 slices can index this volume, got {k!r}")
        start, stop, _ = k.indices(n)
        box.append((start, max(start, stop)))
    return box, tuple(squeeze)


class ImageStack:
    """Array-like (Z, Y, X) view of image slices: ``.shape``, ``.dtype``, ``vol[z0:z1, y0:y1, x0:x1]``.

    ``files``: one multi-page TIFF (one page per z slice; a single 2D image is
    a 1-slice volume), or one 2D image per z slice. Each read loads only the
    slices it touches, so a block of a huge stack never needs the whole stack
    in memory. Integer indices drop their axis, as in NumPy.
    """

    def __init__(self, path, files):
        self.path, self.files, self.ndim = path, list(files), 3
        self._whole = None  # a TIFF whose pages are not its z slices is read once, whole
        self._tiff = len(self.files) == 1 and self.files[0].lower().endswith(TIFF_EXTENSIONS)
        if self._tiff:
            self._tiff_layout(self.files[0])
        else:
            first = self._slice(0)
            self.shape, self.dtype = (len(self.files),) + first.shape, first.dtype

    def _tiff_layout(self, path):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, self.dtype, n_pages = tuple(series.shape), np.dtype(series.dtype), len(series.pages)
        self.shape = (1,) + shape if len(shape) == 2 else shape
        if len(self.shape) != 3:
            raise VolumeError(f"{path}: expected a (Z, Y, X) grey-value stack, got TIFF data of shape {shape}")
        if n_pages != self.shape[0]:  # e.g. a volume in one ImageJ page
            self._whole = tifffile.imread(path).reshape(self.shape)

    def check_slices(self):
        """VolumeError naming the first slice (or TIFF page) whose shape differs from the others.

        Reads the file headers only (no pixels), so a stack is checked before a long run reads it.
        """
        first = tuple(self.shape[1:])
        if self._tiff:
            import tifffile

            with tifffile.TiffFile(self.files[0]) as tif:
                pages = len(tif.pages)
                for z, page in enumerate(tif.pages):
                    if self._whole is None and tuple(page.shape)[:2] != first:
                        raise VolumeError(f"{self.files[0]}: page {z} has shape {tuple(page.shape)}, page 0 "
                                          f"{first}: every z slice must have one shape")
            if self._whole is None and pages != self.shape[0]:
                raise VolumeError(f"{self.files[0]}: {pages} pages but a stack of {self.shape[0]} slices: "
                                  "pages of other shapes or kinds are mixed in")
            return
        for z, path in enumerate(self.files[1:], start=1):
            shape = _image_shape(path)
            if shape != first:
                raise VolumeError(f"images under {self.path} differ in shape: {path} (slice {z}) is {shape}, "
                                  f"{self.files[0]} is {first}")

    def _slice(self, z):
        image = _read_image(self.files[z])
        if image.ndim != 2:
            raise VolumeError(f"{self.files[z]}: expected a 2D image, got shape {image.shape}")
        if z and image.shape != self.shape[1:]:
            raise VolumeError(f"images under {self.path} differ in shape: {self.files[z]} is {image.shape}, "
                              f"{self.files[0]} is {self.shape[1:]}")
        return image

    def __getitem__(self, key):
        box, squeeze = index_box(key, self.shape, self.path)
        (z0, z1), (y0, y1), (x0, x1) = box
        if self._whole is not None:
            out = self._whole[z0:z1, y0:y1, x0:x1]
        else:
            out = np.empty((z1 - z0, y1 - y0, x1 - x0), self.dtype)
            if self._tiff and z1 > z0:
                import tifffile

                with tifffile.TiffFile(self.files[0]) as tif:
                    pages = tif.series[0].pages
                    for z in range(z0, z1):
                        out[z - z0] = pages[z].asarray().reshape(self.shape[1:])[y0:y1, x0:x1]
            else:
                for z in range(z0, z1):
                    out[z - z0] = self._slice(z)[y0:y1, x0:x1]
        return out.squeeze(axis=squeeze) if squeeze else out

    def __array__(self, dtype=None, copy=None):
        data = self[...]
        return data.astype(dtype) if dtype is not None else data


def _image_shape(path):
    """(height, width) of a 2D image file, from its header."""
    if path.lower().endswith(TIFF_EXTENSIONS):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return tuple(tif.pages[0].shape)[:2]
    from PIL import Image

    with Image.open(path) as image:
        return image.size[::-1]


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


def write_volume(spec, array, compression="gzip", level=4, attrs=None):
    """Write ``array`` to ``file.h5[:key]`` (default key ``main``) atomically, chunked and compressed.

    Other datasets already in the file are kept; ``attrs`` (a dict) become the dataset's
    attributes. Returns the final path.
    """
    path, key = parse_spec(spec)
    key = key or "main"
    array = np.asarray(array)
    if not path.lower().endswith(H5_EXTENSIONS):
        raise VolumeError(f"can only write HDF5 volumes (.h5), not {path}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as out:
            copy_other_datasets(path, out, key)
            opts = {"compression": compression, "compression_opts": level} if compression == "gzip" else {
                "compression": compression}
            chunks = h5_chunks(array.shape) if array.ndim >= 3 and array.size else None
            dset = out.create_dataset(key, data=array, chunks=chunks, **(opts if chunks else {}))
            dset.attrs.update(attrs or {})
    return path
