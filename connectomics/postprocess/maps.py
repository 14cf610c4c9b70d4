"""Probability maps in, uint8 maps out: checks, quantisation and threshold levels.

The decoders work on uint8 maps (0..255), as inference writes them. Float
maps in [0, 1] are quantised first with ``q = floor(255 * p + 0.5)`` (round
half up, computed in float64), the same rule the watershed kernel applies to
float32 images. Thresholds are fractions of 1 turned into uint8 levels with
``int(255 * t)`` exactly as the MitoEM 2021 predecessor did, so published
settings carry over: ``foreground > int(255 * t)``, ``contour < int(255 * t)``.
"""
import numpy as np

SLAB = 8  # z-slices per step of the slab-wise passes (bounds their temporaries)


def threshold_level(threshold, name="threshold"):
    """``int(255 * threshold)`` for a fraction ``threshold`` in [0, 1]."""
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"{name} = {threshold!r} must be a fraction in [0, 1] (applied as int(255 * t))")
    return int(255 * float(threshold))


def quantize(values, out=None):
    """Float values in [0, 1] -> uint8 ``floor(255 * p + 0.5)``, slab by slab along axis 0.

    Works on any shape; ``out`` (uint8, same shape) is filled when given.
    """
    values = np.asarray(values)
    out = np.empty(values.shape, np.uint8) if out is None else out
    flat_in = values.reshape((-1,) + values.shape[-2:]) if values.ndim >= 2 else values.reshape(1, -1)
    flat_out = out.reshape(flat_in.shape)
    for start in range(0, flat_in.shape[0], SLAB):
        level = flat_in[start:start + SLAB].astype(np.float64)
        level *= 255.0
        level += 0.5
        np.floor(level, out=level)
        flat_out[start:start + SLAB] = level
    return out


def check_maps(probs, channels=2, name="probs"):
    """Validate a (C, Z, Y, X) map stack and return it as uint8 (no copy when already uint8).

    ``channels``: the exact channel count required, or ``None`` for "at least
    one". Accepted: uint8 (used as is), float in [0, 1] (quantised), other
    integer dtypes with values in [0, 255] (cast). Raises ValueError /
    TypeError naming what was found and what was expected.
    """
    probs = np.asarray(probs)
    expected = f"(C, Z, Y, X) with C = {channels}" if channels else "(C, Z, Y, X)"
    if probs.ndim != 4:
        raise ValueError(f"{name}: expected a 4D map stack {expected} (channel 0 foreground, "
                         f"channel 1 instance contour), got shape {probs.shape}")
    if (channels and probs.shape[0] != channels) or probs.shape[0] < 1:
        raise ValueError(f"{name}: expected {channels or 'at least 1'} channels "
                         f"(0 foreground, 1 instance contour), got {probs.shape[0]} (shape {probs.shape})")
    if probs.dtype == np.uint8:
        return probs
    if probs.size == 0:
        return probs.astype(np.uint8)
    if np.issubdtype(probs.dtype, np.floating):
        lo, hi = probs.min(), probs.max()
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise ValueError(f"{name}: float maps must lie in [0, 1]; found values in [{lo}, {hi}]"
                             " (NaN or inf included if shown)")
        return quantize(probs)
    if np.issubdtype(probs.dtype, np.integer):
        lo, hi = probs.min(), probs.max()
        if lo < 0 or hi > 255:
            raise ValueError(f"{name}: integer maps must lie in [0, 255]; found values in [{lo}, {hi}] "
                             f"(dtype {probs.dtype})")
        return probs.astype(np.uint8)
    raise TypeError(f"{name}: expected uint8 maps (0..255) or float maps in [0, 1], got dtype {probs.dtype}")
