"""File in, file out: probability maps (HDF5, zarr ...) -> instance labels (any writable format,
:func:`connectomics.storage.create_output`: published only when complete) and their confidence table (``instances_scores.txt``, see :mod:`connectomics.postprocess.confidence`).

The instances record what made them (decoder, its keywords, the maps' name and content
identity) in the dataset attribute ``connectomics_settings``, as the blockwise export does: a
rerun with the same settings on unchanged maps reuses them; other settings or changed maps are
refused unless ``overwrite`` (see :mod:`connectomics.storage.settings`).
"""
import logging
import os
import time
import uuid

from connectomics.postprocess.confidence import (instance_confidence, scores_path, write_instance_confidence,
                                                 write_scores)
from connectomics.storage import VolumeError, create_output, format_of, parse_spec, read_volume, remove_path
from connectomics.storage.hdf5_direct import write_all
from connectomics.storage.output import output_writer

logger = logging.getLogger(__name__)
LABEL_CHUNKS = (32, 256, 256)  # (z, y, x) chunks of the instances (HDF5 gzip level 1: 3x faster than 4)


def decode_settings(input_spec, decode_fn):
    """The settings an instance volume decoded from ``input_spec`` by ``decode_fn`` is keyed by.

    ``decode_fn``: ``functools.partial(decoder, **keywords)`` (as ``build_decoder`` makes); any
    other callable gets a one-off id, so its output is never taken for another's.
    """
    from connectomics.storage.identity import volume_identity

    path, key = parse_spec(input_spec)
    keywords = getattr(decode_fn, "keywords", None)
    name = getattr(decode_fn, "__name__", None) or getattr(getattr(decode_fn, "func", None), "__name__", "?")
    return {"decoder": name, "params": dict(keywords) if keywords is not None else f"callable {uuid.uuid4().hex}",
            "input": os.path.abspath(path), "input_key": key, "input_id": volume_identity(input_spec)}


def check_maps_name(input_spec):
    """VolumeError unless ``input_spec`` names maps in a format outputs are written in (HDF5, zarr ...;
    a folder or a TIFF is not maps)."""
    from connectomics.storage.output import WRITERS

    path = parse_spec(input_spec)[0]
    if format_of(path) not in WRITERS:
        what = "a folder" if os.path.isdir(path) else "not HDF5 or zarr"
        raise VolumeError(f"{input_spec} is {what}: probability maps are read from probs.h5[:key] or "
                          "probs.zarr[:key] ((C, Z, Y, X), as inference writes them)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"probability maps not found: {path}")


def postprocess_file(input_spec, output_spec, decode_fn, overwrite=False, attrs=None):
    """Decode ``input_spec`` (``file.h5[:key]`` / ``store.zarr[:key]``, (C, Z, Y, X)) and write ``output_spec``.

    decode_fn: ``callable(probs) -> labels`` (e.g. ``build_decoder(cfg)``).
    The output (HDF5 key ``main`` unless named, zarr ...) appears only once complete; then the mean
    foreground probability of every instance is written to ``scores_path(output_spec)``.
    An output made with the same settings from the same maps is kept (its score table made
    if missing); one made otherwise raises ResumeError unless ``overwrite``. ``attrs``: the instances'
    attributes (``voxel_size``). Returns the output path.
    """
    from connectomics.storage.settings import SETTINGS, check_existing

    started = time.perf_counter()
    check_maps_name(input_spec)
    out_path, out_key = parse_spec(output_spec)
    output_writer(out_path)  # a name no format writes fails before the decode
    settings = dict(decode_settings(input_spec, decode_fn), **({"attrs": attrs} if attrs else {}))
    if check_existing(out_path, settings, overwrite, what="instances", key=out_key):
        if not os.path.exists(scores_path(output_spec)):  # killed between the volume and its table
            write_instance_confidence(output_spec if out_key else f"{out_path}:main", input_spec,
                                      path=scores_path(output_spec))
        return out_path
    probs = read_volume(input_spec)
    if probs.ndim != 4:
        raise VolumeError(f"{input_spec}: expected (C, Z, Y, X) probability maps (channel 0 foreground, "
                          f"channel 1 instance contour), got shape {probs.shape}")
    try:
        labels = decode_fn(probs)
    except (ValueError, TypeError) as err:
        raise VolumeError(f"{input_spec}: {err}") from err
    scores = instance_confidence(labels, probs)
    del probs
    import json

    remove_path(scores_path(output_spec))  # a kill before the new table exists leaves none, not a stale one
    with create_output(output_spec, labels.shape, labels.dtype, LABEL_CHUNKS, level=1,
                       attrs=dict(attrs or {}, **{SETTINGS: json.dumps(settings, sort_keys=True)})) as array:
        write_all(array, labels)  # HDF5: chunks compressed on several threads
    path = out_path
    write_scores(scores_path(output_spec), scores)
    logger.info("%s: %d instances (%s) in %.1f s -> %s", input_spec, int(labels.max(initial=0)),
                labels.dtype, time.perf_counter() - started, path)
    return path
