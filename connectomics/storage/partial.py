"""Resumable outputs: a result written chunk by chunk under its temporary name, with a record of
the chunks that are done, published under its final name only when complete.

:func:`open_partial` opens (resumes) or creates the partial output of ``path`` for a grid of
chunks; :meth:`write` puts one chunk's block in place and records it done only once its data is
on disk; :meth:`publish` renames the complete result to ``path``. A run that is killed leaves only
the temporary output; the next run with the same settings continues at the first unfinished chunk,
one with other settings is refused (ResumeError) unless ``overwrite``.

- HDF5 (``probs.h5``): one temporary file holding the dataset ``main``, the small uint8 dataset
  ``done`` (the chunk grid) and the settings as a file attribute; ``done`` is removed before the
  rename, so ``main`` is the file's only dataset.
- Formats whose :class:`~connectomics.storage.output.Writer` is ``parallel`` (zarr, and what
  registers such a writer): the writer's temporary array plus
  :class:`~connectomics.storage.markers.Markers` beside it.
"""
import json
import logging
import math
import os

import numpy as np

from connectomics.errors import ResumeError
from connectomics.storage.hdf5 import h5_chunks
from connectomics.storage.markers import Markers
from connectomics.storage.output import output_writer, write_region
from connectomics.storage.paths import format_of, remove_path, temporary_name
from connectomics.storage.settings import SETTINGS, difference

logger = logging.getLogger(__name__)

H5_CHUNK = (16, 128, 128)  # (z, y, x) of the HDF5 chunks of 'main' (256 KiB per channel at uint8)
H5_CACHE = dict(rdcc_nbytes=4 * 2**20, rdcc_nslots=1009)  # HDF5 chunk cache: small, so memory stays flat


class HDF5Partial:
    """The partial HDF5 output of ``path`` (see the module docstring). ``compression``: 'gzip'
    (level 1) or 'lzf'. The dataset is made at the first :meth:`write` (its channel count is
    the first block's)."""

    def __init__(self, path, settings, grid_shape, overwrite, compression="gzip"):
        self.path, self.tmp, self.compression = path, temporary_name(path), compression
        self.f = self._open(settings, grid_shape, overwrite)
        self.done = self.f["done"][...].astype(bool) if "done" in self.f else np.ones(grid_shape, bool)

    def _open(self, settings, grid_shape, overwrite):
        import h5py

        tmp = self.tmp
        if os.path.exists(tmp):
            try:
                f = h5py.File(tmp, "r+", **H5_CACHE)
            except OSError as err:
                logger.warning("partial output %s is unreadable (%s); starting again", tmp, err)
                os.remove(tmp)
            else:
                text = f.attrs.get(SETTINGS)
                diff = difference(json.loads(text) if text is not None else None, settings)
                if not diff and ("done" in f or "main" in f):  # no 'done' but 'main': killed just before the rename
                    n_done = int(f["done"][...].sum()) if "done" in f else "all"
                    logger.info("resuming %s: %s of %d chunks done", tmp, n_done, math.prod(grid_shape))
                    return f
                f.close()
                _refuse(tmp, diff or "no chunk record", overwrite)
                os.remove(tmp)
        f = h5py.File(tmp, "w", **H5_CACHE)
        f.attrs[SETTINGS] = json.dumps(settings, sort_keys=True)
        f.create_dataset("done", shape=grid_shape, dtype=np.uint8, fillvalue=0)
        f.flush()
        return f

    def write(self, index, box, block):
        """``main[:, box] = block`` ((C, *box shape) uint8), flushed, then chunk ``index`` marked done."""
        f = self.f
        if "main" not in f:
            shape = (block.shape[0],) + self.volume_shape
            opts = {"compression": self.compression}
            if self.compression == "gzip":
                opts["compression_opts"] = 1
            f.create_dataset("main", shape=shape, dtype=np.uint8, chunks=h5_chunks(shape, H5_CHUNK), **opts)
            f["main"].attrs.update(self.attrs)
        dset = f["main"]
        _check_channels(f.filename, dset.shape[0], block.shape[0])
        dset[(slice(None),) + box.slices()] = block
        f.flush()
        f["done"][index] = 1
        f.flush()

    def publish(self):
        if "done" in self.f:
            del self.f["done"]  # so that 'main' is the file's only dataset
        self.close()
        os.replace(self.tmp, self.path)
        return self.path

    def close(self):
        if self.f.id.valid:
            self.f.close()


class BlockPartial:
    """The partial output of ``path`` in a format with a parallel writer (zarr ...): the writer's
    temporary array and per-chunk markers in ``<temporary name>.blocks``."""

    def __init__(self, path, settings, grid_shape, overwrite, compression=None):
        self.path, self.settings, self.writer = path, settings, output_writer(path, parallel=True)
        self.markers = Markers(temporary_name(path) + ".blocks", settings, overwrite)
        done = self.markers.done("chunks")
        if not done:  # nothing recorded: an array left by a killed run (or other settings) is not trusted
            remove_path(temporary_name(path))
        else:
            logger.info("resuming %s: %d of %d chunks done", temporary_name(path), len(done), math.prod(grid_shape))
        self.done = np.zeros(grid_shape, bool)
        for index in done:
            self.done[index] = True
        self.tmp = self.array = None

    def write(self, index, box, block):
        """``array[:, box] = block``, then chunk ``index`` marked done (the array made at the first call)."""
        if self.array is None:
            self._start(block.shape[0])
        _check_channels(self.path, self.array.shape[0], block.shape[0])
        write_region(self.where, (slice(0, block.shape[0]),) + box.slices(), block)
        self.markers.write("chunks", index, {"channels": block.shape[0]})

    def _start(self, channels):
        from connectomics.storage.zarr_array import open_array

        shape = (channels,) + self.volume_shape
        self.tmp, self.where = self.writer.start(self.path, None, shape, np.uint8, (channels,) + self.chunk,
                                                 self.settings, self.attrs)
        self.array = open_array(self.where, "r+")

    def publish(self):
        if self.array is None:  # every chunk was done before this run: reopen the array (same settings)
            index = next(iter(self.markers.done("chunks")))
            self._start(int(self.markers.read("chunks", index)["channels"]))
        self.writer.finish(self.tmp, self.path)
        remove_path(self.markers.folder)
        return self.path

    def close(self):
        pass


def partial_settings(path):
    """The settings the partial output of ``path`` records: a dict, None (none recorded),
    ``{'unreadable': True}``, or ``'absent'`` when there is no partial output."""
    from connectomics.storage.settings import stored_settings

    tmp = temporary_name(path)
    if not os.path.exists(tmp):
        return "absent"
    if format_of(path) != "hdf5":  # the writer's temporary array / group
        exists, settings, readable = stored_settings(tmp)
        return (settings if readable else {"unreadable": True}) if exists else "absent"
    import h5py

    try:
        with h5py.File(tmp, "r") as f:
            text = f.attrs.get(SETTINGS)
    except OSError:
        return {"unreadable": True}
    return json.loads(text) if text is not None else None


def _refuse(tmp, diff, overwrite):
    if not overwrite:
        raise ResumeError(f"partial output {tmp} was made with other settings ({diff}); "
                          "pass overwrite=True (--overwrite) to start again, or delete that file")


def _check_channels(name, stored, given):
    if stored != given:
        raise ResumeError(f"{name}: dataset 'main' has {stored} channels, the model gives {given}")


def open_partial(path, settings, volume_shape, chunk, grid_shape, overwrite=False, compression="gzip", attrs=None):
    """The partial output of ``path`` for (C, *``volume_shape``) uint8 written in ``chunk``-sized
    pieces on a ``grid_shape`` grid: an :class:`HDF5Partial` or a :class:`BlockPartial`. ``attrs``:
    the array's attributes (e.g. ``voxel_size``)."""
    kind = HDF5Partial if format_of(path) == "hdf5" else BlockPartial
    partial = kind(path, settings, tuple(grid_shape), overwrite, compression)
    partial.volume_shape, partial.chunk, partial.attrs = tuple(volume_shape), tuple(chunk), dict(attrs or {})
    return partial
