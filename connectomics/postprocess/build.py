"""The config door of post-processing: ``cfg.POSTPROCESS.*`` -> a decoder with plain arguments."""
import functools
import inspect

from connectomics.postprocess.decoders import check_params, get_decoder

# decoder keyword -> POSTPROCESS key
PARAM_KEYS = {
    "seed_threshold": "SEED_THRESHOLD",
    "contour_threshold": "CONTOUR_THRESHOLD",
    "foreground_threshold": "FOREGROUND_THRESHOLD",
    "min_size": "MIN_SIZE",
    "small_mode": "SMALL_MODE",
    "connectivity": "CONNECTIVITY",
    "seed_connectivity": "SEED_CONNECTIVITY",
    "dilation": "DILATION",
    "dilation_mode": "DILATION_MODE",
    "merge_threshold": "MERGE_THRESHOLD",
    "merge_function": "MERGE_FUNCTION",
}


def decoder_params(cfg, name=None):
    """``(name, {keyword: value})`` of the decoder that ``cfg.POSTPROCESS`` selects.

    Only the keywords the decoder accepts are taken from the config.
    """
    post = cfg.POSTPROCESS
    name = name or post.DECODER
    try:
        decoder = get_decoder(name)
    except ValueError as err:
        raise ValueError(f"config key POSTPROCESS.DECODER: {err}") from None
    accepted = inspect.signature(decoder).parameters
    params = {arg: post[key] for arg, key in PARAM_KEYS.items() if arg in accepted}
    if "dilation" in params:
        params["dilation"] = tuple(params["dilation"])
    try:
        check_params(**params)
    except ValueError as err:
        raise ValueError(f"config section POSTPROCESS (decoder {name}): {err}") from None
    return name, params


def build_decoder(cfg):
    """``callable(probs) -> labels`` for the decoder and thresholds in ``cfg.POSTPROCESS``.

    probs: (2, Z, Y, X) uint8 or float in [0, 1]; labels: (Z, Y, X) uint32.
    Bad keys fail here, before any data is read.
    """
    name, params = decoder_params(cfg)
    decode_fn = functools.partial(get_decoder(name), **params)
    decode_fn.__name__ = name
    return decode_fn
