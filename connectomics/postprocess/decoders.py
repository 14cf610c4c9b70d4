"""Decoders: (2, Z, Y, X) probability maps -> (Z, Y, X) instance labels.

Every decoder takes ``probs`` (C, Z, Y, X), channel 0 foreground, channel 1
instance contour, uint8 0..255 (float in [0, 1] is quantised with
``floor(255 * p + 0.5)``, see ``maps``), plus plain keyword thresholds (fractions
of 1, applied as ``int(255 * t)``). Each returns uint32 labels (uint64 only above
2**32 - 1 instances), 0 = background, ids 1..N consecutive. No seed at all
gives an all-zero volume and a logged warning. Every decoder also takes ``max_section``
(pixels; 0, the default, keeps all): instances whose mean cross-section (voxels / slices
spanned) exceeds it are removed after the small ones (``cleanup.remove_wide_instances``).

Defaults are the MitoEM 2021 predecessor's, per decoder (the config has one
set of keys for all of them, with bc_watershed's values). Like the predecessor,
seeds are labelled 26-connected (scikit-image ``label``'s full connectivity,
``seed_connectivity``) and flooded 6-connected (``watershed``'s default,
``connectivity``); ``seed_agglomerate`` keeps the 6-connected seeds of its
affinity graph:

============================  ===== ======= ===== ========  ============================
decoder                       seed  contour fg    dilation  steps
============================  ===== ======= ===== ========  ============================
bc_watershed                  0.9   0.8     0.85  -         seeds, watershed, cleanup
binary_watershed              0.98  -       0.85  -         seeds (fg only), watershed, cleanup
bc_connected                  0.8   0.5     -     (1,5,5)   seeds, dilation, cleanup
seed_agglomerate              0.9   0.8     -     (1,7,7)   6-conn. seeds (no singletons), dilation, cleanup
watershed_agglomerate         0.9   0.5     0.85  -         fragments, waterz merge, cleanup
============================  ===== ======= ===== ========  ============================
"""
import logging

import numpy as np

from connectomics.postprocess.agglomerate import interior_map, map_affinities, merge_fragments, scoring_function
from connectomics.postprocess.cleanup import SMALL_MODES, remove_small_instances, remove_wide_instances
from connectomics.postprocess.grow import GROW_MODES, check_window, grow_labels
from connectomics.postprocess.maps import check_maps, threshold_level
from connectomics.postprocess.registry import (CONTOUR_THRESHOLDS, FOREGROUND_THRESHOLDS, THRESHOLDS, BlockPlan,
                                               Decoder, register_decoder)
from connectomics.postprocess.seeds import label_seeds, seed_components
from connectomics.postprocess.watershed import seeded_watershed

logger = logging.getLogger(__name__)


def check_params(small_mode="background", connectivity=6, min_size=128, dilation=None, dilation_mode=None,
                 merge_function=None, seed_connectivity=26, max_section=0.0, **others):
    """Raise ValueError naming the first bad decoder argument (of the built-in decoders' keywords:
    ``*_threshold`` ones are fractions of 1; a registered decoder checks its own other keywords)."""
    for name, value in others.items():
        if name.endswith("_threshold"):
            threshold_level(value, name)
    if small_mode not in SMALL_MODES:
        raise ValueError(f"small_mode = {small_mode!r}: must be one of {', '.join(SMALL_MODES)}")
    for name, value in (("connectivity", connectivity), ("seed_connectivity", seed_connectivity)):
        if value not in (6, 26):
            raise ValueError(f"{name} = {value!r}: must be 6 or 26")
    if min_size < 0:
        raise ValueError(f"min_size = {min_size!r}: must be >= 0")
    if not max_section >= 0:
        raise ValueError(f"max_section = {max_section!r}: must be >= 0 (pixels; 0 keeps every instance)")
    if dilation is not None:
        check_window(dilation)
    if dilation_mode is not None and dilation_mode not in GROW_MODES:
        raise ValueError(f"dilation_mode = {dilation_mode!r}: must be one of {', '.join(GROW_MODES)}")
    if merge_function is not None:
        scoring_function(merge_function)


def _seeds(fg, contour, seed_threshold, contour_threshold, connectivity, join=True):
    """Seed components: ``(labels, n)``, or unjoined ``(labels, n_provisional, groups)``."""
    label = label_seeds if join else seed_components
    result = label(fg, contour, seed_threshold, contour_threshold, connectivity)
    if result[1] == 0:
        logger.warning("no seeds: no voxel has foreground > %d%s; the output is empty",
                       threshold_level(seed_threshold),
                       "" if contour is None else f" and contour < {threshold_level(contour_threshold)}")
    return result


def _watershed_decode(fg, contour, seed_threshold, contour_threshold, foreground_threshold,
                      min_size, small_mode, connectivity, seed_connectivity, max_section):
    # provisional seed ids flood exactly as joined ones would: the join is folded into
    # the final relabelling, and the watershed counts the sizes (no extra passes)
    labels, n, groups = _seeds(fg, contour, seed_threshold, contour_threshold, seed_connectivity, join=False)
    sizes = np.zeros(n + 1, np.uint64)
    if n:
        # foreground > L  <=>  level (255 - foreground) <= 254 - L: the mask costs no memory
        max_level = 254 - threshold_level(foreground_threshold, "foreground_threshold")
        seeded_watershed(fg, labels, max_level=max_level, invert=True, connectivity=connectivity, inplace=True,
                         sizes=sizes)
    labels, n = remove_small_instances(labels, min_size, small_mode, sizes=sizes, groups=groups)
    return remove_wide_instances(labels, max_section, n)[0]


def bc_watershed(probs, seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85,
                 min_size=128, small_mode="background", connectivity=6, seed_connectivity=26, max_section=0.0):
    """Seeds = ``seed_connectivity``-connected components of (fg > seed) & (contour < contour);
    ``connectivity``-connected watershed of the inverted foreground from them within
    fg > foreground_threshold; small instances removed, and (``max_section`` > 0) those whose mean
    cross-section exceeds ``max_section`` pixels."""
    check_params(small_mode, connectivity, min_size, seed_connectivity=seed_connectivity, max_section=max_section,
                 seed_threshold=seed_threshold, contour_threshold=contour_threshold,
                 foreground_threshold=foreground_threshold)
    maps = check_maps(probs, channels=2)
    return _watershed_decode(maps[0], maps[1], seed_threshold, contour_threshold, foreground_threshold,
                             min_size, small_mode, connectivity, seed_connectivity, max_section)


def binary_watershed(probs, seed_threshold=0.98, foreground_threshold=0.85, min_size=128,
                     small_mode="background", connectivity=6, seed_connectivity=26, max_section=0.0):
    """Like bc_watershed on the foreground channel alone (any channel count; channel 0 used)."""
    check_params(small_mode, connectivity, min_size, seed_connectivity=seed_connectivity, max_section=max_section,
                 seed_threshold=seed_threshold, foreground_threshold=foreground_threshold)
    maps = check_maps(probs, channels=None)
    return _watershed_decode(maps[0], None, seed_threshold, None, foreground_threshold,
                             min_size, small_mode, connectivity, seed_connectivity, max_section)


def _grow_decode(labels, n, dilation, dilation_mode, min_size, small_mode, max_section):
    grow_labels(labels, dilation, dilation_mode)
    labels, n = remove_small_instances(labels, min_size, small_mode, max_id=n)
    return remove_wide_instances(labels, max_section, n)[0]


def bc_connected(probs, seed_threshold=0.8, contour_threshold=0.5, dilation=(1, 5, 5),
                 dilation_mode="background", min_size=128, small_mode="background", seed_connectivity=26,
                 max_section=0.0):
    """``seed_connectivity``-connected components of (fg > seed) & (contour < contour), grown by
    ``dilation``, small (and too wide, ``max_section``) removed."""
    check_params(small_mode, 6, min_size, dilation, dilation_mode, seed_connectivity=seed_connectivity,
                 max_section=max_section,
                 seed_threshold=seed_threshold, contour_threshold=contour_threshold)
    maps = check_maps(probs, channels=2)
    labels, n = _seeds(maps[0], maps[1], seed_threshold, contour_threshold, seed_connectivity)
    return _grow_decode(labels, n, dilation, dilation_mode, min_size, small_mode, max_section)


def seed_agglomerate(probs, seed_threshold=0.9, contour_threshold=0.8, dilation=(1, 7, 7),
                     dilation_mode="background", min_size=128, small_mode="background", max_section=0.0):
    """The MitoEM 2021 winner's decoder (``malis_watershed``), computed directly.

    Its waterz agglomeration of binary seed affinities equals the 6-connected
    components of the seed map minus single-voxel components (tested against
    ``agglomerate.agglomerate_seeds``); then the ``dilation`` window
    (``dilation_mode='grey'`` is the predecessor's max-dilation) and the size
    filter. Labels stay uint32 (the predecessor overflowed uint16).
    """
    check_params(small_mode, 6, min_size, dilation, dilation_mode, max_section=max_section,
                 seed_threshold=seed_threshold, contour_threshold=contour_threshold)
    maps = check_maps(probs, channels=2)
    labels, n = _seeds(maps[0], maps[1], seed_threshold, contour_threshold, 6)
    if n:
        labels, n = remove_small_instances(labels, 2, max_id=n)  # waterz leaves isolated seed voxels unlabelled
    return _grow_decode(labels, n, dilation, dilation_mode, min_size, small_mode, max_section)


def watershed_agglomerate(probs, seed_threshold=0.9, contour_threshold=0.5, foreground_threshold=0.85,
                          merge_threshold=0.5, merge_function="mean", min_size=128,
                          small_mode="background", connectivity=6, seed_connectivity=26, max_section=0.0):
    """Over-segment, then merge with waterz.

    Fragments: the seeded watershed of the interior map ``fg * (1 - contour)``
    (bright first) from the components of (fg > seed) & (contour < contour)
    (a strict contour threshold splits instances into fragments), within
    fg > foreground_threshold. Merging: waterz on affinities
    ``min(interior[v], interior[v - e_d])`` with ``merge_function`` until the
    score reaches ``merge_threshold``. Memory: about 25 B/voxel (float32
    affinities and uint64 fragments, as waterz needs them).
    """
    check_params(small_mode, connectivity, min_size, merge_function=merge_function, max_section=max_section,
                 seed_connectivity=seed_connectivity, seed_threshold=seed_threshold,
                 contour_threshold=contour_threshold, foreground_threshold=foreground_threshold,
                 merge_threshold=merge_threshold)
    maps = check_maps(probs, channels=2)
    fg, contour = maps[0], maps[1]
    labels, n = _seeds(fg, contour, seed_threshold, contour_threshold, seed_connectivity)
    if n:
        interior = interior_map(fg, contour)
        mask = fg > threshold_level(foreground_threshold)
        seeded_watershed(interior, labels, mask=mask, invert=True, connectivity=connectivity, inplace=True)
        del mask
        labels = merge_fragments(map_affinities(interior), labels, merge_threshold, merge_function)
    labels, n = remove_small_instances(labels, min_size, small_mode)
    return remove_wide_instances(labels, max_section, n)[0]


def flood_block(labels, read_maps, params):
    """Blockwise step of bc_watershed / binary_watershed: the foreground flood from the seeds."""
    foreground = read_maps(1)[0]
    max_level = 254 - threshold_level(params["foreground_threshold"], "foreground_threshold")
    seeded_watershed(foreground, labels, max_level=max_level, invert=True, connectivity=params["connectivity"],
                     inplace=True)


def grow_block(labels, read_maps, params):
    """Blockwise step of bc_connected / seed_agglomerate: growth by the dilation window."""
    grow_labels(labels, tuple(params["dilation"]), params["dilation_mode"])


def grow_halo(params):
    """The halo growth needs: the dilation window's radius."""
    return tuple((d - 1) // 2 for d in params["dilation"])


_SEED, _CONTOUR, _FOREGROUND = ("seed_threshold", THRESHOLDS), ("contour_threshold", CONTOUR_THRESHOLDS), \
    ("foreground_threshold", FOREGROUND_THRESHOLDS)
register_decoder(Decoder("bc_watershed", bc_watershed, grids=dict([_SEED, _CONTOUR, _FOREGROUND]),
                         blockwise=BlockPlan(flood_block, foreground=True)))
register_decoder(Decoder("binary_watershed", binary_watershed, channels=1, grids=dict([_SEED, _FOREGROUND]),
                         axes=("seed_threshold", "foreground_threshold"),
                         blockwise=BlockPlan(flood_block, contour=False, foreground=True)))
register_decoder(Decoder("bc_connected", bc_connected, grids=dict([_SEED, _CONTOUR]),
                         blockwise=BlockPlan(grow_block, halo=grow_halo)))
register_decoder(Decoder("seed_agglomerate", seed_agglomerate, grids=dict([_SEED, _CONTOUR]),
                         blockwise=BlockPlan(grow_block, min_seed=2, halo=grow_halo)))  # waterz drops 1-voxel seeds
_MERGE = ("merge_threshold", (0.2, 0.3, 0.4, 0.5, 0.6, 0.7))
register_decoder(Decoder("watershed_agglomerate", watershed_agglomerate,
                         grids=dict([_SEED, _CONTOUR, _FOREGROUND, _MERGE]),
                         no_blockwise="watershed_agglomerate merges fragments across the whole volume"))
