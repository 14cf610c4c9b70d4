"""waterz routes: seed affinities (the predecessor's route, kept as an oracle) and fragment merging.

Affinity layout (as malis / waterz): float32 (3, Z, Y, X); channel d holds
the edge between voxel v and v - e_d for the offsets (-1,0,0), (0,-1,0),
(0,0,-1); the first plane along d has no edge (0).

Only scoring functions that waterz ships prebuilt are used, so no compiler or
Boost is needed at run time.
"""
import contextlib
import ctypes
import io
import os
import sys

import numpy as np

from connectomics.postprocess.maps import SLAB

MEAN = "OneMinus<MeanAffinity<RegionGraphType, ScoreValue>>"
QUANTILE = "OneMinus<HistogramQuantileAffinity<RegionGraphType,{q},ScoreValue,256,false>>"
MERGE_FUNCTIONS = {"mean": MEAN, **{f"quantile{q}": QUANTILE.format(q=q) for q in range(10, 100, 5)}}
QUEUE_BINS = 256  # waterz ships each function prebuilt with a 256-bin queue


def scoring_function(name):
    """The waterz scoring-function string for ``'mean'`` or ``'quantileNN'`` (NN = 10, 15, ..., 95)."""
    if name not in MERGE_FUNCTIONS:
        raise ValueError(f"merge function {name!r}: must be 'mean' or 'quantileNN' with NN one of "
                         "10, 15, ..., 95 (the functions waterz ships prebuilt)")
    return MERGE_FUNCTIONS[name]


def _flush_c_stdout():
    ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _quiet_stdout():
    """Silence waterz's progress lines: Python prints and C++ output (C stdio on descriptor 1)."""
    sys.stdout.flush()
    _flush_c_stdout()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(devnull.fileno(), 1)
            yield
            _flush_c_stdout()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _agglomerate(affs, threshold, fragments=None, function=MEAN):
    """One waterz threshold; with ``fragments`` given they are overwritten and returned."""
    import waterz

    with _quiet_stdout():
        result = next(waterz.agglomerate(affs, [float(threshold)], fragments=fragments,
                                         scoring_function=function, discretize_queue=QUEUE_BINS))
    return fragments if fragments is not None else result.copy()  # waterz owns its own buffer


def seed_affinities(seed):
    """NumPy ``seg_to_affgraph`` of a binary seed map: 1.0 where both ends are seeds.

    seed: (Z, Y, X) bool. Returns float32 (3, Z, Y, X) (12 B/voxel).
    """
    affs = np.zeros((3,) + seed.shape, np.float32)
    affs[0, 1:] = seed[1:] & seed[:-1]
    affs[1, :, 1:] = seed[:, 1:] & seed[:, :-1]
    affs[2, :, :, 1:] = seed[:, :, 1:] & seed[:, :, :-1]
    return affs


def agglomerate_seeds(seed, threshold=0.5):
    """The predecessor's route: waterz on binary seed affinities -> uint64 (Z, Y, X) ids.

    Equal (up to ids) to the 6-connected components of ``seed`` without the
    single-voxel ones; about 27 B/voxel, so only used as the test oracle.
    """
    return _agglomerate(seed_affinities(seed), threshold)


def interior_map(foreground, contour):
    """uint8 (Z, Y, X) ``round(foreground * (255 - contour) / 255)``: high inside instances."""
    out = np.empty(foreground.shape, np.uint8)
    for z in range(0, foreground.shape[0], SLAB):
        product = foreground[z:z + SLAB].astype(np.uint16) * (255 - contour[z:z + SLAB].astype(np.uint16))
        product += 127
        product //= 255
        out[z:z + SLAB] = product
    return out


def map_affinities(interior):
    """float32 (3, Z, Y, X) affinities ``min(interior[v], interior[v - e_d]) / 255``."""
    affs = np.zeros((3,) + interior.shape, np.float32)
    affs[0, 1:] = np.minimum(interior[1:], interior[:-1])
    affs[1, :, 1:] = np.minimum(interior[:, 1:], interior[:, :-1])
    affs[2, :, :, 1:] = np.minimum(interior[:, :, 1:], interior[:, :, :-1])
    affs *= np.float32(1 / 255)
    return affs


def merge_fragments(affs, fragments, threshold=0.5, merge_function="mean"):
    """Merge fragments with waterz until the cheapest merge scores ``threshold`` or more.

    affs: float32 (3, Z, Y, X) in [0, 1]; fragments: (Z, Y, X) integer ids,
    0 = background (stays 0). With ``OneMinus<...>`` scores two fragments
    merge while 1 - (mean / quantile of their boundary affinities) < threshold.
    Returns uint64 (Z, Y, X) ids (not consecutive).
    """
    function = scoring_function(merge_function)
    fragments = np.array(fragments, dtype=np.uint64, order="C")  # a copy: waterz overwrites it
    return _agglomerate(np.ascontiguousarray(affs, dtype=np.float32), threshold, fragments, function)
