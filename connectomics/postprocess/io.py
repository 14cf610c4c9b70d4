"""File in, file out: probability maps (HDF5) -> instance labels (HDF5, written atomically) and their
confidence table (``instances_scores.txt``, see :mod:`connectomics.postprocess.confidence`)."""
import logging
import time

from connectomics.data.io import VolumeError, read_volume, remove_path, write_volume
from connectomics.postprocess.confidence import instance_confidence, scores_path, write_scores

logger = logging.getLogger(__name__)


def postprocess_file(input_spec, output_spec, decode_fn):
    """Decode ``input_spec`` (``file.h5[:key]``, (C, Z, Y, X)) and write ``output_spec``.

    decode_fn: ``callable(probs) -> labels`` (e.g. ``build_decoder(cfg)``).
    The output (key ``main`` unless named) appears only once complete; then the mean foreground
    probability of every instance is written to ``scores_path(output_spec)``.
    Returns the output path.
    """
    started = time.perf_counter()
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
    remove_path(scores_path(output_spec))  # a kill before the new table exists leaves none, not a stale one
    path = write_volume(output_spec, labels)
    write_scores(scores_path(output_spec), scores)
    logger.info("%s: %d instances (%s) in %.1f s -> %s", input_spec, int(labels.max(initial=0)),
                labels.dtype, time.perf_counter() - started, path)
    return path
