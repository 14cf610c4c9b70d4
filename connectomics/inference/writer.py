"""Chunked, resumable, atomic output of inference.

``infer_volume_to_file`` writes the (C, Z, Y, X) uint8 maps one chunk at a time into the partial
output of ``output_path`` (:func:`connectomics.storage.partial.open_partial`: HDF5 ``main``, or a
zarr array), each chunk recorded done once its data is on disk. A run that is killed leaves only
the temporary output; the next run with the same settings continues at the first unfinished
chunk. When every chunk is done the result is published under ``output_path``, so the final name
exists only for complete results.
"""
import hashlib
import logging
import os
import queue
import threading

import numpy as np
import torch
from tqdm import tqdm

from connectomics.errors import VolumeError
from connectomics.inference.predictor import Workspace, check_volume
from connectomics.storage import check_existing, open_volume
from connectomics.storage.partial import open_partial

logger = logging.getLogger(__name__)


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


def _predict_chunks(predictor, volume, input_spec, tiling, todo, partial, bar, on_chunk_done):
    """Predict the chunks ``todo`` (grid indices, in order) into ``partial`` (:func:`open_partial`).

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

    writer = ChunkWriter(partial)
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
    """Writes predicted chunks into the partial output on one background thread, in order.

    HDF5 compresses with the GIL released, so a chunk's write overlaps the next chunk's
    forward passes (on an H100 the gzip writes were ~30% of the inference wall time when
    done in line). Memory: at most two (C, *chunk) uint8 blocks wait or are being written.
    An error in the thread is raised again by the next :meth:`submit`, :meth:`completed`
    or :meth:`close`; a chunk counts as done only once it is recorded done.
    """

    def __init__(self, partial):
        self.partial = partial
        self.queue, self.finished, self.error = queue.Queue(maxsize=1), queue.SimpleQueue(), None
        self.thread = threading.Thread(target=self._run, name="chunk-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after an error the rest is dropped; the thread only drains
                try:
                    block, chunk = item
                    self.partial.write(chunk.index, chunk.write, block)
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
                         compression="gzip", on_chunk_done=None, attrs=None):
    """Predict a volume chunk by chunk into ``output_path`` (HDF5 ``probs.h5``, dataset ``main``, or
    any format with a parallel writer: ``probs.zarr`` ...).

    ``input_spec``: ``file.h5[:key]`` / TIFF / JSON spec, or a (Z, Y, X) array-like
    (uint8, or float in [0, 1]); only each chunk's read box is read.
    ``chunk_size``: (z, y, x) output chunk, None -> the predictor's. Output: (C,
    Z, Y, X) uint8 0..255, chunked; HDF5 ``compression`` 'gzip' (level 1) or 'lzf'.
    Resumes a killed run (same settings, see module docstring); a partial or
    final file made with other settings raises :class:`ResumeError` unless
    ``overwrite``. ``on_chunk_done(chunk, n_done, n_total)`` is called after each
    chunk is on disk. ``attrs``: the maps' attributes (``voxel_size``). Returns ``output_path``.
    """
    if compression not in ("gzip", "lzf"):
        raise ValueError(f"compression must be 'gzip' or 'lzf', got {compression!r}")
    if _is_spec(input_spec):
        with open_volume(input_spec) as volume:
            check_volume(volume, os.fspath(input_spec))
            return _infer(predictor, volume, input_spec, output_path, chunk_size, overwrite, compression,
                          on_chunk_done, attrs)
    check_volume(input_spec)
    return _infer(predictor, input_spec, input_spec, output_path, chunk_size, overwrite, compression, on_chunk_done,
                  attrs)


def _infer(predictor, volume, input_spec, output_path, chunk_size, overwrite, compression, on_chunk_done, attrs):
    tiling = predictor.tiling(volume.shape, chunk_size)
    settings = dict(run_settings(predictor, tiling, input_spec), **({"attrs": attrs} if attrs else {}))
    if check_existing(output_path, settings, overwrite, what="probability maps"):
        return output_path
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    logger.info("inference of %s: %d chunks of %s, %d windows (%d with chunk borders), into %s",
                input_spec if _is_spec(input_spec) else "an array", tiling.num_chunks, tiling.chunk_size,
                tiling.num_windows, tiling.windows_computed(), output_path)
    partial = open_partial(output_path, settings, tiling.volume_shape, tiling.chunk_size, tiling.grid_shape,
                           overwrite, compression, attrs)
    try:
        todo = [index for index in tiling.chunk_indices() if not partial.done[index]]
        with tqdm(total=tiling.num_chunks, initial=tiling.num_chunks - len(todo), unit="chunk", disable=None,
                  desc="inference") as bar:
            _predict_chunks(predictor, volume, input_spec, tiling, todo, partial, bar, on_chunk_done)
        return partial.publish()
    finally:
        partial.close()
