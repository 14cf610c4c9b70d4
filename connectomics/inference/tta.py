"""Test-time augmentation: flip / y-x transpose variants with exact inverses and a merge.

A variant is ``(flips, transpose)``: ``flips`` a tuple of tensor dims among
(2, 3, 4) = (z, y, x) of a (B, C, Z, Y, X) tensor, ``transpose`` swaps y and x.
Forward: flip, then transpose; inverse: transpose, then flip (the predecessor's
order). Variant sets (AUG_NUM):

* 0  -> identity only;
* 4  -> z-flip x y-x transpose;
* 16 -> every x / y / z flip x y-x transpose.

The transpose needs equal y and x window sizes; otherwise the transposed
variants are dropped (4 -> 2, 16 -> 8) and a warning is logged.
"""
import itertools
import logging

import torch

logger = logging.getLogger(__name__)

AUG_NUMS = (0, 4, 16)
AUG_MODES = ("mean", "min", "max")
_Z, _Y, _X = 2, 3, 4


def tta_variants(aug_num, window=None):
    """List of ``(flips, transpose)`` for ``aug_num`` in (0, 4, 16); identity first.

    ``window`` (z, y, x): when given with y != x, transposes are dropped (warning).
    """
    if aug_num not in AUG_NUMS:
        raise ValueError(f"AUG_NUM must be one of {AUG_NUMS}, got {aug_num!r}")
    if aug_num == 0:
        return [((), False)]
    xy = (False, True) if aug_num == 16 else (False,)
    variants = []
    for fx, fy, fz, tr in itertools.product(xy, xy, (False, True), (False, True)):
        flips = tuple(d for d, on in ((_X, fx), (_Y, fy), (_Z, fz)) if on)
        variants.append((flips, tr))
    if window is not None and window[1] != window[2]:
        logger.warning("test-time augmentation: window y %d != x %d, so the y-x transpose is impossible; "
                       "using the %d flip variants only", window[1], window[2], len(variants) // 2)
        variants = [v for v in variants if not v[1]]
    return variants


def apply_variant(x, variant):
    """``x`` (B, C, Z, Y, X) tensor transformed by ``variant`` (flip, then transpose)."""
    flips, transpose = variant
    if flips:
        x = torch.flip(x, flips)
    return x.transpose(_Y, _X) if transpose else x


def invert_variant(x, variant):
    """Undo :func:`apply_variant` (transpose, then flip); ``invert(apply(x)) == x`` exactly."""
    flips, transpose = variant
    if transpose:
        x = x.transpose(_Y, _X)
    return torch.flip(x, flips) if flips else x


def predict_tta(forward, x, variants, mode="mean"):
    """Merge ``forward`` over ``variants`` of ``x``; each output mapped back before merging.

    ``forward``: callable (B, 1, Z, Y, X) -> (B, C, Z, Y, X) float32 (probabilities);
    ``mode``: 'mean' | 'min' | 'max'. Returns (B, C, Z, Y, X) float32.
    """
    if mode not in AUG_MODES:
        raise ValueError(f"AUG_MODE must be one of {AUG_MODES}, got {mode!r}")
    merged = None
    for variant in variants:
        out = invert_variant(forward(apply_variant(x, variant).contiguous()), variant)
        if merged is None:
            merged = out.contiguous() if len(variants) > 1 else out
        elif mode == "mean":
            merged.add_(out)
        elif mode == "min":
            torch.minimum(merged, out, out=merged)
        else:
            torch.maximum(merged, out, out=merged)
    if mode == "mean" and len(variants) > 1:
        merged.div_(len(variants))
    return merged
