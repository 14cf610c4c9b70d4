"""TIFF stacks and folders / globs of 2D images as lazy (Z, Y, X) volumes."""
import glob
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.geometry import index_box
from connectomics.storage.paths import TIFF_EXTENSIONS


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
        image = read_image(self.files[z])
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


def read_image(path):
    if path.lower().endswith(TIFF_EXTENSIONS):
        import tifffile

        return tifffile.imread(path)
    from skimage import io as skio

    image = skio.imread(path)
    return image[..., 0] if image.ndim == 3 else image
