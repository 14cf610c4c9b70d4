"""The config door of post-processing: ``cfg.POSTPROCESS.*`` -> a decoder with plain arguments."""
import functools

from connectomics.postprocess.decoders import check_params
from connectomics.postprocess.registry import decoder_keywords, get_decoder


def decoder_params(cfg, name=None):
    """``(name, {keyword: value})`` of the decoder that ``cfg.POSTPROCESS`` selects.

    Keyword ``k`` of the decoder takes the value of ``POSTPROCESS.<K upper-case>`` where that key
    exists (the decoder's own default otherwise); lists become tuples.
    """
    post = cfg.POSTPROCESS
    name = name or post.DECODER
    try:
        keywords = decoder_keywords(name)
    except ValueError as err:
        raise ValueError(f"config key POSTPROCESS.DECODER: {err}") from None
    params = {k: config_value(post[config_key(k)]) for k in keywords if config_key(k) in post}
    try:
        check_params(**params)
    except ValueError as err:
        raise ValueError(f"config section POSTPROCESS (decoder {name}): {err}") from None
    return name, params


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
