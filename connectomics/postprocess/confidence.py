"""Instance confidence: the mean foreground probability over each instance's voxels.

The MitoEM evaluator ranks predictions by voxel count unless it is given a score table (N x 2
``[id, score]``). A large false positive (a myelinated axon taken for a mitochondrion) then
comes first and costs precision at every recall level. Post-processing therefore also writes the
mean foreground probability of every instance beside the instance volume
(``instances_scores.txt``); ``EVAL.SCORE foreground`` (or ``scripts/evaluate.py -ps``) ranks the
predictions by it, as COCO ranks detections by confidence. ``size`` (the default) keeps the
challenge's ranking, so numbers stay comparable with the MitoEM leaderboard.

Memory: one block of labels and foreground at a time (4 Mi voxels, or one storage chunk where a
chunk is larger: the 64 x 512 x 512 chunks of blockwise outputs are 16 Mi voxels), worked through
in pieces of 4 Mi voxels (int64 and float64 copies and count arrays of at most the piece's length,
~100 MiB), plus three numbers per instance and block. Time: about 15 ns per voxel on one core, the
CPU time of the ``bc_watershed`` decode (``benchmarks/bench_postprocess.py``). Ids must stay below
2**53, the integers the float64 table holds exactly (our decoders write uint32).
"""
import logging
import os

import fastremap
import numpy as np
from tqdm import tqdm

from connectomics.geometry import BlockGrid
from connectomics.storage import VolumeError, atomic_path, open_volume, parse_spec, remove_path

logger = logging.getLogger(__name__)

BLOCK_VOXELS = 1 << 22  # voxels per block read (labels' storage chunks are grown up to this)
MAX_ID = 1 << 53  # float64 holds every integer below this exactly
_KERNEL_LABELS = (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64))  # count_and_sum's label types
SCORE_HEADER = "# id mean_foreground  (instance confidence in [0, 1]: mean foreground probability over its voxels)"


def block_grid(shape, chunks=None, max_voxels=BLOCK_VOXELS):
    """Boxes (tuples of slices) tiling a (Z, Y, X) ``shape``, aligned to the storage ``chunks``.

    With chunks (an HDF5 / zarr array) a box is whole chunks, grown along z, then y, then x up
    to ``max_voxels`` (one chunk at least); without (an in-memory array) boxes are z-slabs of
    whole slices (rows of a slice where one slice exceeds ``max_voxels``).
    """
    if chunks is None:
        unit, order = [1, 1, 1], (2, 1, 0)
    else:
        unit, order = [max(1, min(int(c), s)) for c, s in zip(tuple(chunks)[-3:], shape)], (0, 1, 2)
    block = list(unit)
    for axis in order:
        others = int(np.prod(block)) // block[axis]
        block[axis] = min(shape[axis], unit[axis] * max(1, max_voxels // (others * unit[axis])))
    return [box.slices() for box in BlockGrid(shape, block).boxes()]


def block_sums(labels, foreground, max_voxels=BLOCK_VOXELS):
    """``(ids uint64 > 0, foreground sums float64, voxel counts int64)`` of one block.

    labels: integer array (0 = background); foreground: array of the same shape. Worked through
    in pieces of ``max_voxels`` (bincount makes a float64 copy of its weights).
    """
    labels, foreground = np.asarray(labels).reshape(-1), np.asarray(foreground).reshape(-1)
    parts = []
    for start in range(0, len(labels), max_voxels):
        piece, weights = np.ascontiguousarray(labels[start: start + max_voxels]), foreground[start: start + max_voxels]
        top = int(piece.max(initial=0))
        if piece.dtype.kind == "i" and piece.size and piece.min() < 0:
            raise VolumeError(f"instance confidence: negative instance id {int(piece.min())}")
        if top >= MAX_ID:
            raise VolumeError(f"instance confidence: instance id {top} is above 2**53, which the float64 score "
                              "table cannot hold exactly; relabel the instances (e.g. fastremap.renumber)")
        if top <= len(piece) and piece.dtype in _KERNEL_LABELS and weights.dtype == np.uint8:
            from connectomics._ext.moments import count_and_sum  # one pass, exact integer sums

            counts, sums = count_and_sum(piece, top + 1, np.ascontiguousarray(weights))
            ids = np.flatnonzero(counts)
            counts, sums = counts[ids], sums[ids].astype(np.float64)
        elif top <= len(piece):  # small ids (sequential labels): count them directly, arrays <= the piece
            index = piece.astype(np.intp)  # what bincount casts to anyway: once, not twice
            counts = np.bincount(index, minlength=top + 1)
            sums = np.bincount(index, weights=weights, minlength=top + 1)
            ids = np.flatnonzero(counts)
            counts, sums = counts[ids], sums[ids]
        else:
            ids, inverse, counts = fastremap.unique(piece, return_inverse=True, return_counts=True)
            sums = np.bincount(inverse.reshape(-1), weights=weights, minlength=len(ids))
        keep = ids != 0
        parts.append((ids[keep].astype(np.uint64), sums[keep], counts[keep].astype(np.int64)))
    return _reduce(parts) if len(parts) != 1 else parts[0]


def instance_confidence(labels, maps, max_voxels=BLOCK_VOXELS, progress=False):
    """Mean foreground probability of every instance.

    Args:
        labels: (Z, Y, X) integer instance volume, 0 = background: a NumPy array or an h5py /
            zarr array (read block by block).
        maps: (C, Z, Y, X) probability maps with the same (Z, Y, X), channel 0 foreground, uint8
            0..255 (as inference writes them) or float in [0, 1]; array or lazy array.
        max_voxels: voxels per block read.
        progress: show a tqdm bar (True / False; None: only on a terminal).
    Returns:
        (N, 2) float64 ``[id, mean foreground in [0, 1]]`` for the N instances, by ascending id
        (the score table :func:`connectomics.evaluation.evaluate_volumes` takes).
    """
    shape = tuple(labels.shape)
    if len(shape) != 3 or len(maps.shape) != 4 or tuple(maps.shape[1:]) != shape:
        raise VolumeError(f"instance confidence: labels {shape} must be (Z, Y, X) and the maps {tuple(maps.shape)} "
                          "(C, Z, Y, X) of the same Z, Y, X")
    if np.dtype(labels.dtype).kind not in "ui":
        raise VolumeError(f"instance confidence: instance labels must be integers, got dtype {labels.dtype}")
    scale = 1.0 if np.dtype(maps.dtype).kind == "f" else 1.0 / 255.0
    parts = []
    boxes = block_grid(shape, getattr(labels, "chunks", None), max_voxels)
    for box in tqdm(boxes, desc="instance confidence", unit="block", leave=False,
                    disable=None if progress is None else not progress):
        parts.append(block_sums(labels[box], maps[(0,) + box], max_voxels))
        if len(parts) > 256:  # keep the per-block tables short: reduce as we go
            parts = [_reduce(parts)]
    ids, sums, counts = _reduce(parts)
    return np.stack([ids.astype(np.float64), sums / np.maximum(counts, 1) * scale], axis=1)


def _reduce(parts):
    """One ``(ids, sums, counts)`` table, ids unique and ascending, from several (or none)."""
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0), np.zeros(0, np.int64)
    ids = np.concatenate([p[0] for p in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.bincount(inverse, weights=np.concatenate([p[1] for p in parts]), minlength=len(unique))
    counts = np.bincount(inverse, weights=np.concatenate([p[2] for p in parts]), minlength=len(unique))
    return unique, sums, counts.astype(np.int64)


def scores_path(instances_spec):
    """The score file written beside an instance volume: ``instances.h5`` -> ``instances_scores.txt``
    (``file.h5:key`` -> ``file_key_scores.txt``, ``store.zarr`` -> ``store_scores.txt``)."""
    path, key = parse_spec(instances_spec)
    stem = os.path.splitext(path.rstrip("/\\"))[0]
    if key:
        stem += "_" + key.strip("/").replace("/", "_")
    return stem + "_scores.txt"


def write_scores(path, table):
    """Write an (N, 2) ``[id, score]`` table as text (header line, ``id score`` rows), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(SCORE_HEADER + "\n")
            for instance, score in table:
                f.write(f"{int(instance)} {score:.6f}\n")
    return path


def write_instance_confidence(instances_spec, maps_spec, path=None, progress=None):
    """Compute :func:`instance_confidence` of two files (read block by block) and write the score
    file (``scores_path(instances_spec)`` unless ``path``); returns its path. An older score file
    is removed first, so a kill leaves none rather than one of other instances."""
    path = path or scores_path(instances_spec)
    remove_path(path)
    with open_volume(instances_spec) as labels, open_volume(maps_spec) as maps:
        try:
            table = instance_confidence(labels, maps, progress=progress)
        except VolumeError as err:
            raise VolumeError(f"{instances_spec} / {maps_spec}: {err}") from None
    write_scores(path, table)
    logger.info("instance confidence of %d instances: %s", len(table), path)
    return path
