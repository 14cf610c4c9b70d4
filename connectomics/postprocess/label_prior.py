"""The size prior the training labels give: no instance much wider than the widest annotated one.

``POSTPROCESS.MAX_SECTION_FROM_LABELS f`` (> 0) sets the decoders' ``max_section`` to ``f`` times
the largest mean cross-section (voxels / slices spanned, in pixels) among the instances of the
training labels (``DATASET.LABEL_NAME``), so a prediction far wider than anything annotated (a
myelinated band taken for one long mitochondrion) is removed. The limit is a function of the
labels' content and ``f``; it enters the settings the instances are recorded with, so other labels
or another factor make new instances.
"""
import functools
import logging

import cc3d
import numpy as np

from connectomics.postprocess.cleanup import mean_sections, slice_spans
from connectomics.storage import open_volume, split_names, volume_identity

logger = logging.getLogger(__name__)


def label_sections(labels, binary=False):
    """Mean cross-section (float64 pixels, one per instance, any order) of a (Z, Y, X) label volume.

    labels: instance ids (0 = background), any integer dtype, read a slice at a time (an
    ``h5py`` / zarr array is never read whole); a (1, Z, Y, X) volume is taken as (Z, Y, X).
    binary: a mask (nonzero = foreground) whose 6-connected components are the instances (read whole,
    as uint8, then labelled).
    """
    if binary:
        labels = cc3d.connected_components(np.asarray(labels).reshape(labels.shape[-3:]) > 0, connectivity=6)
    if labels.ndim == 4:
        labels = _FirstChannel(labels)
    _, voxels, first, last = slice_spans(labels)
    return mean_sections(voxels, first, last)


class _FirstChannel:
    """A (1, Z, Y, X) array seen as (Z, Y, X), still read a slice at a time."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, tuple(array.shape[1:]), array.dtype

    def __getitem__(self, z):
        return self.array[0, z]


def largest_label_section(label_specs, binary=False):
    """The largest mean cross-section (pixels) among the instances of the label volumes ``label_specs``
    (a tuple of ``file.h5[:key]`` / zarr / TIFF specs); 0.0 when they hold no instance. Remembered
    per content (the volumes' identities), since every config door of one command asks again."""
    return _largest(tuple(label_specs), tuple(volume_identity(s) for s in label_specs), bool(binary))


@functools.lru_cache(maxsize=8)
def _largest(label_specs, identities, binary):
    best = 0.0
    for spec in label_specs:
        with open_volume(spec) as volume:
            sections = label_sections(volume, binary)
        if len(sections):
            best = max(best, float(sections.max()))
    logger.info("the widest instance of %s has a mean cross-section of %.0f pixels", "@".join(label_specs), best)
    return best


def max_section_from_labels(factor, label_names, binary=False):
    """``factor`` x :func:`largest_label_section` of the '@'-joined ``label_names``, rounded to a pixel (>= 1).

    ValueError if there are no label names or they hold no instance (the prior is then undefined).
    """
    specs = tuple(split_names(label_names))
    if not specs:
        raise ValueError(f"POSTPROCESS.MAX_SECTION_FROM_LABELS = {factor:g} needs the training labels "
                         "(DATASET.LABEL_NAME); or give the limit in pixels (POSTPROCESS.MAX_SECTION)")
    largest = largest_label_section(specs, bool(binary))
    if largest <= 0:
        raise ValueError(f"POSTPROCESS.MAX_SECTION_FROM_LABELS: the training labels {label_names} hold no "
                         "instance, so they give no size limit")
    return float(max(round(factor * largest), 1))  # >= 1 pixel: 0 would mean no limit
