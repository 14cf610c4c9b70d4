"""The config door of post-processing: ``cfg.POSTPROCESS.*`` -> a decoder with plain arguments."""
import functools

from connectomics.postprocess.decoders import check_params
from connectomics.postprocess.registry import decoder_keywords, get_decoder, recorded_params


def decoder_params(cfg, name=None):
    """``(name, {keyword: value})`` of the decoder that ``cfg.POSTPROCESS`` selects.

    Keyword ``k`` of the decoder takes the value of ``POSTPROCESS.<K upper-case>`` where that key
    exists (the decoder's own default otherwise); lists become tuples; a keyword at its neutral value
    (``registry.NEUTRAL``: MAX_SECTION 0) is left to the decoder's default. MAX_SECTION_FROM_LABELS > 0
    derives ``max_section`` from the training labels (:mod:`connectomics.postprocess.label_prior`).
    """
    post = cfg.POSTPROCESS
    name = name or post.DECODER
    try:
        keywords = decoder_keywords(name)
    except ValueError as err:
        raise ValueError(f"config key POSTPROCESS.DECODER: {err}") from None
    values = {k: config_value(post[config_key(k)]) for k in keywords if config_key(k) in post}
    try:
        if post.MAX_SECTION_FROM_LABELS:
            if "max_section" not in keywords:
                raise ValueError("MAX_SECTION_FROM_LABELS: this decoder takes no max_section")
            values["max_section"] = _max_section(cfg)
        params = recorded_params(values)
        check_params(**params)
    except ValueError as err:
        raise ValueError(f"config section POSTPROCESS (decoder {name}): {err}") from None
    return name, params


def _max_section(cfg):
    """POSTPROCESS.MAX_SECTION as POSTPROCESS.MAX_SECTION_FROM_LABELS derives it from DATASET.LABEL_NAME."""
    from connectomics.postprocess.label_prior import max_section_from_labels

    post = cfg.POSTPROCESS
    if post.MAX_SECTION:
        raise ValueError(f"MAX_SECTION = {post.MAX_SECTION:g} and MAX_SECTION_FROM_LABELS = "
                         f"{post.MAX_SECTION_FROM_LABELS:g}: set one of them (the other to 0)")
    if post.MAX_SECTION_FROM_LABELS < 0:
        raise ValueError(f"MAX_SECTION_FROM_LABELS = {post.MAX_SECTION_FROM_LABELS:g}: must be >= 0")
    return max_section_from_labels(post.MAX_SECTION_FROM_LABELS, cfg.DATASET.LABEL_NAME, cfg.DATASET.LABEL_BINARY)


def config_value(value):
    """A POSTPROCESS value as a decoder keyword: lists (a dilation window) become tuples."""
    return tuple(value) if isinstance(value, list) else value


def config_key(keyword):
    """The POSTPROCESS key of a decoder keyword: ``seed_threshold`` -> ``SEED_THRESHOLD``."""
    return keyword.upper()


def build_decoder(cfg):
    """``callable(probs) -> labels`` for the decoder and thresholds in ``cfg.POSTPROCESS``.

    probs: (2, Z, Y, X) uint8 or float in [0, 1]; labels: (Z, Y, X) uint32.
    Bad keys fail here, before any data is read.
    """
    name, params = decoder_params(cfg)
    decode_fn = functools.partial(get_decoder(name), **params)
    decode_fn.__name__ = name
    return decode_fn
