"""Chunked, resumable, atomic HDF5 output of inference.

``infer_volume_to_file`` writes the (C, Z, Y, X) uint8 maps to dataset ``main``
of ``temporary_name(output_path)`` one chunk at a time. After each chunk the
data is flushed and the chunk's cell of the small uint8 dataset ``done`` (the
chunk grid) is set and flushed. A run that is killed leaves only the temporary
file; the next run with the same settings continues at the first unfinished
chunk. When every chunk is done, ``done`` is removed and the file is renamed to
``output_path``, so the final name exists only for complete results.
"""
import hashlib
import json
import logging
import math
import os
import queue
import threading

import h5py
import numpy as np
import torch
from tqdm import tqdm

from connectomics.errors import ResumeError, VolumeError
from connectomics.inference.predictor import Workspace, check_volume
from connectomics.storage import h5_chunks, open_volume, temporary_name
from connectomics.storage.settings import SETTINGS, difference

logger = logging.getLogger(__name__)

SETTINGS_ATTR = SETTINGS  # the file's attribute: the partial file holds 'done' beside 'main'
H5_CHUNK = (16, 128, 128)  # (z, y, x) of the HDF5 chunks of 'main' (256 KiB per channel at uint8)
H5_CACHE = dict(rdcc_nbytes=4 * 2**20, rdcc_nslots=1009)  # HDF5 chunk cache: small, so memory stays flat


def model_fingerprint(model):
    """SHA-1 (hex) of the model's state dict: names, shapes, dtypes and values."""
    digest = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def run_settings(predictor, tiling, input_spec):
    """The dict stored with a (partial) output and compared when resuming: the predictor's
    settings, the tiling, the model's weights and the input's name and content identity
    (:func:`~connectomics.storage.identity.volume_identity`: a changed input is inferred again)."""
    from connectomics.storage.identity import volume_identity

    settings = dict(predictor.settings())
    settings.update(volume_shape=list(tiling.volume_shape), chunk_size=list(tiling.chunk_size),
                    input=os.path.abspath(os.fspath(input_spec)) if _is_spec(input_spec) else "<array>",
                    input_id=volume_identity(input_spec), model=model_fingerprint(predictor.model))
    return settings


def _is_spec(value):
    return isinstance(value, (str, os.PathLike))


def _stored_settings(f):
    text = f.attrs.get(SETTINGS_ATTR)
    return json.loads(text) if text is not None else None


def _open_partial(tmp, settings, grid_shape, overwrite):
    """Open (resume) or create the temporary file; returns an open ``h5py.File``."""
    if os.path.exists(tmp):
        try:
            f = h5py.File(tmp, "r+", **H5_CACHE)
        except OSError as err:
            logger.warning("partial output %s is unreadable (%s); starting again", tmp, err)
            os.remove(tmp)
        else:
            diff = difference(_stored_settings(f), settings)
            if not diff and ("done" in f or "main" in f):  # no 'done' but 'main': killed just before the rename
                n_done = int(f["done"][...].sum()) if "done" in f else "all"
                logger.info("resuming %s: %s of %d chunks done", tmp, n_done, math.prod(grid_shape))
                return f
            f.close()
            if not overwrite:
                raise ResumeError(f"partial output {tmp} was made with other settings ({diff or 'no chunk record'}); "
                                  "pass overwrite=True (--overwrite) to start again, or delete that file")
            os.remove(tmp)
    f = h5py.File(tmp, "w", **H5_CACHE)
    f.attrs[SETTINGS_ATTR] = json.dumps(settings, sort_keys=True)
    f.create_dataset("done", shape=grid_shape, dtype=np.uint8, fillvalue=0)
    f.flush()
    return f


def _check_final(output_path, settings, overwrite):
    """True if ``output_path`` already holds this exact result; raise if it holds another one
    (unless ``overwrite``: then it is replaced when the new one is complete)."""
    if not os.path.exists(output_path):
        return False
    try:
        with h5py.File(output_path, "r") as f:
            diff = difference(_stored_settings(f), settings)
    except OSError as err:
        if overwrite:
            return False
        raise ResumeError(f"{output_path} exists and is not a readable HDF5 file ({err}); "
                          "pass overwrite=True (--overwrite) to replace it") from err
    if not diff:
        logger.info("%s is already complete; nothing to do", output_path)
        return True
    if not overwrite:
        raise ResumeError(f"{output_path} exists and was made with other settings ({diff}); "
                          "pass overwrite=True (--overwrite) to replace it")
    logger.warning("replacing %s (made with other settings: %s)", output_path, diff)
    return False


def _write_chunk(f, block, chunk, volume_shape, compression):
    if "main" not in f:
        shape = (block.shape[0],) + tuple(volume_shape)
        opts = {"compression": compression}
        if compression == "gzip":
            opts["compression_opts"] = 1
        f.create_dataset("main", shape=shape, dtype=np.uint8, chunks=h5_chunks(shape, H5_CHUNK), **opts)
    dset = f["main"]
    if dset.shape[0] != block.shape[0]:
        raise ResumeError(f"{f.filename}: dataset 'main' has {dset.shape[0]} channels, "
                          f"the model gives {block.shape[0]}")
    dset[(slice(None),) + tuple(slice(a, b) for a, b in chunk.write)] = block
    f.flush()
    f["done"][chunk.index] = 1
    f.flush()


def _predict_chunks(predictor, volume, input_spec, tiling, todo, f, compression, bar, on_chunk_done):
    """Predict the chunks ``todo`` (grid indices, in order) into the open partial file ``f``.

    Pipelined: the next chunk's input is read, then the finished chunk is handed to a
    :class:`ChunkWriter`, whose gzip write runs while the next chunk is computed (the
    read comes first because h5py lets one thread at a time into HDF5). Progress and
    ``on_chunk_done`` follow the chunks that are on disk.
    """
    workspace = Workspace(predictor.device, tiling.max_chunk_shape)
    n_done = tiling.num_chunks - len(todo)

    def report(chunks):
        nonlocal n_done
        for chunk in chunks:
            n_done += 1
            bar.update(1)
            if on_chunk_done is not None:
                on_chunk_done(chunk, n_done, tiling.num_chunks)

    def read(k):
        return _named(input_spec, predictor.read_chunk, volume, tiling.chunk(todo[k])) if k < len(todo) else None

    writer = ChunkWriter(f, tiling.volume_shape, compression)
    try:
        source = read(0)
        for k, index in enumerate(todo):
            chunk = tiling.chunk(index)
            block = predictor.predict_chunk(volume, chunk, workspace, source)  # ``source`` is read and checked
            source = read(k + 1)
            writer.submit(np.array(block), chunk)  # a copy: ``block`` views the reused workspace
            report(writer.completed())
        writer.close()
        report(writer.completed())
    finally:
        writer.join()  # also after an error: the chunks already computed still reach the disk


def _named(input_spec, fn, *args):
    """``fn(*args)``; a VolumeError (e.g. float input outside [0, 1]) is re-raised naming the input."""
    try:
        return fn(*args)
    except VolumeError as err:
        raise VolumeError(f"{input_spec if _is_spec(input_spec) else 'input array'}: {err}") from None


class ChunkWriter:
    """Writes predicted chunks into the partial file on one background thread, in order.

    HDF5 compresses with the GIL released, so a chunk's write overlaps the next chunk's
    forward passes (on an H100 the gzip writes were ~30% of the inference wall time when
    done in line). Memory: at most two (C, *chunk) uint8 blocks wait or are being written.
    An error in the thread is raised again by the next :meth:`submit`, :meth:`completed`
    or :meth:`close`; a chunk counts as done only once its ``done`` flag is flushed.
    """

    def __init__(self, f, volume_shape, compression):
        self.f, self.volume_shape, self.compression = f, volume_shape, compression
        self.queue, self.finished, self.error = queue.Queue(maxsize=1), queue.SimpleQueue(), None
        self.thread = threading.Thread(target=self._run, name="chunk-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after an error the rest is dropped; the thread only drains
                try:
                    _write_chunk(self.f, *item, self.volume_shape, self.compression)
                    self.finished.put(item[1])
                except BaseException as err:  # noqa: B902 (handed to the main thread)
                    self.error = err

    def _check(self):
        if self.error is not None:
            raise self.error

    def submit(self, block, chunk):
        """Queue ``block`` (C, *chunk.write_shape) uint8 for ``chunk``; waits while two are pending."""
        self._check()
        self.queue.put((block, chunk))

    def completed(self):
        """The chunks written since the last call, in order."""
        chunks = []
        while not self.finished.empty():
            chunks.append(self.finished.get())
        self._check()
        return chunks

    def close(self):
        """Wait until every queued chunk is on disk; raise the thread's error if it had one."""
        self.join()
        self._check()

    def join(self):
        """Finish the chunks already queued (they are computed) and stop the thread; raises
        nothing, so it serves as cleanup after an error elsewhere. A failed thread has dropped them."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


def infer_volume_to_file(predictor, input_spec, output_path, chunk_size=None, overwrite=False,
                         compression="gzip", on_chunk_done=None):
    """Predict a volume chunk by chunk into ``output_path`` (HDF5, dataset ``main``).

    ``input_spec``: ``file.h5[:key]`` / TIFF / JSON spec, or a (Z, Y, X) array-like
    (uint8, or float in [0, 1]); only each chunk's read box is read.
    ``chunk_size``: (z, y, x) output chunk, None -> the predictor's. Output: (C,
    Z, Y, X) uint8 0..255, HDF5-chunked, ``compression`` 'gzip' (level 1) or 'lzf'.
    Resumes a killed run (same settings, see module docstring); a partial or
    final file made with other settings raises :class:`ResumeError` unless
    ``overwrite``. ``on_chunk_done(chunk, n_done, n_total)`` is called after each
    chunk is on disk. Returns ``output_path``.
    """
    if compression not in ("gzip", "lzf"):
        raise ValueError(f"compression must be 'gzip' or 'lzf', got {compression!r}")
    if _is_spec(input_spec):
        with open_volume(input_spec) as volume:
            check_volume(volume, os.fspath(input_spec))
            return _infer(predictor, volume, input_spec, output_path, chunk_size, overwrite, compression,
                          on_chunk_done)
    check_volume(input_spec)
    return _infer(predictor, input_spec, input_spec, output_path, chunk_size, overwrite, compression, on_chunk_done)


def _infer(predictor, volume, input_spec, output_path, chunk_size, overwrite, compression, on_chunk_done):
    tiling = predictor.tiling(volume.shape, chunk_size)
    settings = run_settings(predictor, tiling, input_spec)
    if _check_final(output_path, settings, overwrite):
        return output_path
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    tmp = temporary_name(output_path)
    logger.info("inference of %s: %d chunks of %s, %d windows (%d with chunk borders), into %s",
                input_spec if _is_spec(input_spec) else "an array", tiling.num_chunks, tiling.chunk_size,
                tiling.num_windows, tiling.windows_computed(), output_path)
    with _open_partial(tmp, settings, tiling.grid_shape, overwrite) as f:
        done = f["done"][...].astype(bool) if "done" in f else np.ones(tiling.grid_shape, bool)
        todo = [index for index in tiling.chunk_indices() if not done[index]]
        with tqdm(total=tiling.num_chunks, initial=tiling.num_chunks - len(todo), unit="chunk", disable=None,
                  desc="inference") as bar:
            _predict_chunks(predictor, volume, input_spec, tiling, todo, f, compression, bar, on_chunk_done)
        if "done" in f:
            del f["done"]  # so that 'main' is the file's only dataset
    os.replace(tmp, output_path)
    return output_path
