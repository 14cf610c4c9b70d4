"""The decoder table: one entry per decoder, from which every stage takes what it needs.

An entry (:class:`Decoder`) carries the single-process function (``(C, Z, Y, X)`` maps and plain
keywords -> ``(Z, Y, X)`` uint32 labels), its blockwise plan (:class:`BlockPlan`, or why it has
none), the keywords tuning searches with their default grids, and the two of them that make
the tuning heat map. The stages derive from it: ``decode`` and the config door
(``POSTPROCESS.<KEYWORD>`` feeds keyword ``<keyword>``), the blockwise stages, the threshold
search. A decoder registered from outside the package (:func:`register_decoder`) works in all
of them.
"""
import inspect
from dataclasses import dataclass, field
from typing import Callable, Optional

THRESHOLDS = (0.6, 0.7, 0.8, 0.85, 0.9, 0.95)  # default search grid of a seed threshold
CONTOUR_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FOREGROUND_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)


@dataclass(frozen=True)
class BlockPlan:
    """How a decoder runs block by block on the Dask runner.

    The seed stages label ``foreground > seed_threshold`` (and ``contour < contour_threshold``
    when ``contour``) into global seed ids, dropping seeds under ``min_seed`` voxels; then every
    block calls ``grow(labels, read_maps, params)``: ``labels`` the block's box plus its halo,
    global seed ids (uint32), grown in place; ``read_maps(channels)`` returns that box's first
    ``channels`` maps as (channels, Z, Y, X) uint8; ``params`` the decoder's full keywords.
    ``halo(params)``: the smallest (z, y, x) halo the growth needs (None: the configured halo).
    ``grow`` must be a module-level function (workers import it by name). ``foreground``: ``grow``
    reads only the foreground (``read_maps(1)``): the seeds stage then copies it into a work store
    in small chunks, so the halo reads decode little (the maps' own chunks may be whole blocks).
    """

    grow: Callable
    contour: bool = True
    min_seed: int = 0
    halo: Optional[Callable] = None
    foreground: bool = False


@dataclass(frozen=True)
class Decoder:
    """One decoder: ``function(probs, **keywords)``; ``channels`` of maps it reads; ``grids``:
    tunable keyword -> default search values; ``axes``: the two keywords of the tuning heat map;
    ``blockwise``: its :class:`BlockPlan`, or None with the reason in ``no_blockwise``."""

    name: str
    function: Callable
    channels: int = 2
    grids: dict = field(default_factory=dict)
    axes: tuple = ("seed_threshold", "contour_threshold")
    blockwise: Optional[BlockPlan] = None
    no_blockwise: str = ""


DECODERS = {}  # name -> Decoder

# keywords added after outputs were first recorded, whose value here changes nothing: left out of the
# settings outputs are keyed by, so outputs made before the keyword existed stay valid
NEUTRAL = {"max_section": 0.0}


def recorded_params(params):
    """``params`` without the keywords at their :data:`NEUTRAL` value (what an output records)."""
    return {k: v for k, v in params.items() if not (k in NEUTRAL and v == NEUTRAL[k])}


def register_decoder(decoder):
    """Add (or replace) a decoder entry; returns it."""
    DECODERS[decoder.name] = decoder
    return decoder


def decoder_entry(name):
    """The :class:`Decoder` registered as ``name``; an unknown name lists the valid ones."""
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; valid: {', '.join(DECODERS)}")
    return DECODERS[name]


def get_decoder(name):
    """The single-process function of decoder ``name``."""
    return decoder_entry(name).function


def decoder_keywords(name):
    """``{keyword: default}`` of every keyword decoder ``name`` takes."""
    signature = inspect.signature(get_decoder(name)).parameters
    return {k: p.default for k, p in signature.items() if p.default is not inspect.Parameter.empty}


def decode(probs, decoder="bc_watershed", **params):
    """Decode ``probs`` (C, Z, Y, X) with the named decoder and its keyword thresholds."""
    return get_decoder(decoder)(probs, **params)
