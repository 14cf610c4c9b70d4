"""Training targets and loss weights computed from an instance label volume.

Every function takes plain arrays. Labels are integer (or bool) arrays (Z, Y, X)
with 0 = background; targets and weights are float32 (C, Z, Y, X) in [0, 1]
(weights >= 1). The config codes of MODEL.TARGET_OPT / MODEL.WEIGHT_OPT are
mapped to these named functions only in :func:`build_targets` and
:func:`build_weights`.

Border handling of the in-plane windows: the predecessor reflect-padded each
slice before taking the window max / min. For a max or min over a window that
is centred on the voxel, any mirror padding (NumPy 'reflect' or 'symmetric',
SciPy 'mirror' or 'reflect') only repeats values that already lie inside the
clipped window, so all of them give the max / min over the part of the window
inside the slice. We use SciPy's ``mode='reflect'`` and test against that
clipped-window definition.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

WEIGHT_CODES = {"0": "no weight", "1": "binary class-ratio weight",
                "2-G": "class-ratio weight, times 1 + G (default 10) where two instances nearly touch",
                "3-G": "1 + G (default 4) within 1 voxel of an instance outline (no class ratio)"}
CONTACT_HALF_WIDTH = 3  # contact emphasis reach: the 2-voxel gap of an eroded face (LABEL_EROSION 1) and 1 voxel beside


_MAX_ID = np.iinfo(np.int64).max


def _check_label(label, name="label"):
    label = np.asarray(label)
    if label.ndim != 3:
        raise ValueError(f"{name} must be a (Z, Y, X) volume, got shape {label.shape}")
    if label.dtype == bool:
        return label.view(np.uint8)
    if not np.issubdtype(label.dtype, np.integer):
        raise TypeError(f"{name} must hold integer instance ids, got dtype {label.dtype}")
    if np.issubdtype(label.dtype, np.signedinteger) and label.size and label.min() < 0:
        raise ValueError(f"{name} has negative ids (min {label.min()}); ids must be >= 0, 0 = background")
    if label.dtype == np.uint64 and label.size and label.max() > _MAX_ID:
        # scipy's rank filters compute uint64 as int64
        raise ValueError(f"{name} has an id above 2**63 - 1 ({label.max()}); relabel it first")
    return label


def _window(half_width):
    if int(half_width) != half_width or half_width < 0:
        raise ValueError(f"half_width must be a non-negative integer, got {half_width!r}")
    return (1, 2 * int(half_width) + 1, 2 * int(half_width) + 1)


def _window_max_min(label, half_width, ignore_zero):
    """Per-slice window max and min; with ``ignore_zero`` the min skips background.

    Windows with only background get min = the largest id value (a sentinel
    that is harmless even when it is a real id). Computed in the label dtype
    (no int64 copy).
    """
    from scipy import ndimage  # imported here: loading a config (which checks target names) needs no scipy

    size = _window(half_width)
    wmax = ndimage.maximum_filter(label, size=size, mode="reflect")
    source = label
    if ignore_zero:
        source = label.copy()
        source[label == 0] = min(np.iinfo(label.dtype).max, _MAX_ID)
    wmin = ndimage.minimum_filter(source, size=size, mode="reflect")
    return wmax, wmin


def _contacts(label, half_width):
    """bool (Z, Y, X): the in-plane window holds two different non-zero ids."""
    wmax, wmin = _window_max_min(label, half_width, ignore_zero=True)
    # wmin is the smallest non-zero id when the window holds one (wmax > 0)
    return (wmax != 0) & (wmax != wmin)


def foreground(label):
    """Binary foreground: label (Z, Y, X) int -> (1, Z, Y, X) float32 in {0, 1}."""
    label = _check_label(label)
    return (label > 0)[None].astype(np.float32)


def instance_contour(label, half_width=2, include_background=True):
    """Contour band around instances, per z slice: (Z, Y, X) int -> (1, Z, Y, X) float32 {0, 1}.

    A voxel is 1 when its (2S+1) x (2S+1) in-plane window (S = ``half_width``)
    holds a non-zero id and is not uniform, i.e. a band of S voxels on both
    sides of every border. With ``include_background=False`` only contacts of
    two different instances count (instance-background borders are ignored).
    Predecessor code '4-S-B'.
    """
    label = _check_label(label)
    if include_background:
        wmax, wmin = _window_max_min(label, half_width, ignore_zero=False)
        band = (wmax > 0) & (wmax != wmin)
    else:
        band = _contacts(label, half_width)
    return band[None].astype(np.float32)


def widen_border(label, half_width):
    """Set to 0 every voxel whose in-plane (2h+1)^2 window holds two different ids.

    label (Z, Y, X) int -> a new array of the same shape and dtype (the input is
    not modified). Touching instances end up separated by a background gap of
    about 2h voxels; borders with background are unchanged. ``half_width`` 0
    returns a copy. Works in slabs of 8 slices, so the temporaries stay small
    for whole volumes. Config DATASET.LABEL_EROSION (predecessor seg_widen_border).
    """
    label = _check_label(label)
    _window(half_width)
    out = label.copy()
    if half_width == 0:
        return out
    for z0 in range(0, label.shape[0], 8):  # slabs: whole training volumes pass through here
        out[z0:z0 + 8][_contacts(label[z0:z0 + 8], half_width)] = 0
    return out


def binary_ratio_weight(target):
    """Weights that balance the two classes of a binary target (any shape, float32 out).

    ``f`` = fraction of non-zero voxels clipped to [0.05, 0.99]; the minority
    class gets weight (1-f)/f or f/(1-f) (at most 19) and the majority 1. A
    constant target gives ones. The target values t in [0, 1] interpolate
    between the two class weights: w = t * w1 + (1 - t) * w0.
    """
    target = np.asarray(target, dtype=np.float32)
    if target.size == 0 or target.min() == target.max():
        return np.ones(target.shape, np.float32)
    f = float(np.clip(np.count_nonzero(target) / target.size, 0.05, 0.99))
    w1, w0 = (1.0, f / (1.0 - f)) if f > 0.5 else ((1.0 - f) / f, 1.0)
    return (target * np.float32(w1 - w0) + np.float32(w0)).astype(np.float32)


def contact_weight(label, gain=10.0, half_width=CONTACT_HALF_WIDTH):
    """Emphasis of the places where two instances nearly touch: (Z, Y, X) int -> (1, Z, Y, X) float32.

    1 + ``gain`` where the in-plane (2h+1)^2 window (h = ``half_width``) holds two
    different non-zero ids, 1 elsewhere. Such faces are a tiny share of the
    voxels but decide whether two touching instances are split, like the
    border weight of the U-Net paper (Ronneberger et al. 2015).
    """
    label = _check_label(label)
    if gain < 0:
        raise ValueError(f"contact weight gain must be >= 0, got {gain!r} (MODEL.WEIGHT_OPT '2-G')")
    return (1.0 + np.float32(gain) * _contacts(label, half_width))[None].astype(np.float32)


def outline_weight(label, gain=4.0, half_width=1):
    """Emphasis of instance outlines: (Z, Y, X) int -> (1, Z, Y, X) float32, 1 + ``gain`` on the band of
    :func:`instance_contour` (``half_width`` voxels on both sides of every border, in-plane), 1 elsewhere."""
    if gain < 0:
        raise ValueError(f"outline weight gain must be >= 0, got {gain!r} (MODEL.WEIGHT_OPT '3-G')")
    return (1.0 + np.float32(gain) * instance_contour(label, half_width)).astype(np.float32)


def smooth_labels(target, eps):
    """Label smoothing of a binary target: 0 -> eps, 1 -> 1 - eps, other values kept.

    Returns a new float32 array of the same shape. Apply it after the weights
    (DATASET.USE_LABEL_SMOOTH / LABEL_SMOOTH).
    """
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"label smoothing eps must be in [0, 0.5), got {eps!r} (DATASET.LABEL_SMOOTH)")
    target = np.array(target, dtype=np.float32)
    out = target.copy()
    out[target == 0] = eps
    out[target == 1] = 1.0 - eps
    return out


@dataclass(frozen=True)
class Target:
    """One kind of training target: its MODEL.TARGET_OPT code, what it is, and how it is made.

    ``head``: the code before the first ``-`` (``'0'``, ``'4'``); ``name``: a readable name (loss
    breakdowns, logs); ``channels``: output channels of the model for it; ``function(label, **kwargs)``:
    (Z, Y, X) int labels -> (channels, Z, Y, X) float32 in [0, 1]; ``parse(parts)``: the code's
    ``-``-separated numbers -> the function's kwargs (ValueError if invalid); ``losses``: the loss
    names (MODEL.LOSS_OPTION) that apply to it; ``activation``: what inference applies to its
    channels' logits (``'sigmoid'``, or ``'none'`` for a model that outputs values in [0, 1] itself);
    ``code``, ``description``: the code's form and meaning, for messages.
    """

    head: str
    name: str
    channels: int
    function: Callable
    parse: Callable
    losses: tuple = ("WeightedBCE", "DiceLoss")
    activation: str = "sigmoid"
    code: str = ""
    description: str = ""


TARGETS = {}  # code head -> Target: the one target table (config validation, criterion, model heads)


def register_target(target):
    """Add (or replace) a target kind; codes with its ``head`` then work in every stage."""
    TARGETS[str(target.head)] = target
    return target


def _no_numbers(parts):
    if parts:
        raise ValueError("takes no numbers")
    return {}


def _contour_numbers(parts):
    numbers = [int(p) for p in parts] + [2, 1][len(parts):]
    if len(parts) > 2 or numbers[0] < 0 or numbers[1] not in (0, 1):
        raise ValueError("expects 4-S-B with S >= 0, B 0 or 1")
    return {"half_width": numbers[0], "include_background": bool(numbers[1])}


def target_of(code):
    """``(Target, kwargs)`` of a MODEL.TARGET_OPT code such as ``'0'`` or ``'4-2-1'``; ValueError naming
    the valid codes otherwise."""
    head, *parts = str(code).split("-")
    target = TARGETS.get(head)
    if target is not None:
        try:
            return target, target.parse(parts)
        except ValueError:
            pass
    valid = "; ".join(f"{(t.code or t.head)!r}: {t.description or t.name}" for t in TARGETS.values())
    raise ValueError(f"unknown target code {code!r} (MODEL.TARGET_OPT); valid codes: {valid}")


def target_channels(code):
    """Output channels of a MODEL.TARGET_OPT code."""
    return target_of(code)[0].channels


def target_names(codes):
    """Readable, unique names of MODEL.TARGET_OPT codes: ``['0', '4-2-1'] -> ['foreground', 'contour']``."""
    names = []
    for code in codes:
        base, k = target_of(code)[0].name, 1
        name = base
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


def parse_target_opt(code):
    """``(function, kwargs)`` of a MODEL.TARGET_OPT code: ``'0'`` -> (foreground, {}). Raises ValueError."""
    target, kwargs = target_of(code)
    return target.function, kwargs


def build_targets(label, target_opts):
    """One (C_i, Z, Y, X) float32 target per code of ``target_opts`` (MODEL.TARGET_OPT)."""
    label = _check_label(label)
    targets = []
    for code in target_opts:
        func, kwargs = parse_target_opt(code)
        targets.append(func(label, **kwargs))
    return targets


def _ratio_times_contacts(target, label, gain):
    return binary_ratio_weight(target) * contact_weight(label, gain)


def _outlines(target, label, gain):
    return outline_weight(label, gain)


# weight codes made from the instance label: head -> (weight of (target, label, gain), default gain)
_LABEL_WEIGHTS = {"2": (_ratio_times_contacts, 10.0), "3": (_outlines, 4.0)}


def parse_weight_opt(code):
    """``'0'`` -> (None, {}); ``'1'`` -> (binary_ratio_weight, {}); ``'2-G'`` / ``'3-G'`` (G optional) ->
    (a function of (target, label, gain), {'gain': G}): the class ratio times :func:`contact_weight`, or
    :func:`outline_weight` alone. Raises ValueError naming the valid codes."""
    head, *numbers = str(code).split("-")
    try:
        if not numbers and head in ("0", "1"):
            return (None if head == "0" else binary_ratio_weight), {}
        if head in _LABEL_WEIGHTS and len(numbers) <= 1:
            func, gain = _LABEL_WEIGHTS[head]
            gain = float(numbers[0]) if numbers else gain
            if 0 <= gain < float("inf"):
                return func, {"gain": gain}
    except ValueError:
        pass
    valid = "; ".join(f"{k!r}: {v}" for k, v in WEIGHT_CODES.items())
    raise ValueError(f"unknown weight code {code!r} (MODEL.WEIGHT_OPT); valid codes: {valid}")


def build_weights(targets, weight_opts, label=None):
    """One weight per target (MODEL.WEIGHT_OPT): a float32 array like the target, or None.

    ``weight_opts[i]`` is a list of codes (or one code); its first code decides:
    '0' -> None (unweighted), '1' -> :func:`binary_ratio_weight`, '2-G' ->
    :func:`binary_ratio_weight` times :func:`contact_weight` of ``label`` (the
    (Z, Y, X) instance label the targets were made from) with gain G, '3-G' ->
    :func:`outline_weight` of ``label`` with gain G.
    """
    if len(weight_opts) != len(targets):
        raise ValueError(
            f"MODEL.WEIGHT_OPT has {len(weight_opts)} entries for {len(targets)} targets; "
            "give one list of weight codes per target"
        )
    weights = []
    for target, codes in zip(targets, weight_opts):
        code = str(codes if isinstance(codes, (str, int)) else (codes[0] if len(codes) else "0"))
        func, kwargs = parse_weight_opt(code)
        if func is None:
            weights.append(None)
        elif func is binary_ratio_weight:
            weights.append(binary_ratio_weight(target))
        elif label is None:
            raise ValueError(f"weight code {code!r} (MODEL.WEIGHT_OPT) needs the instance label")
        else:
            weights.append(func(target, label, **kwargs))
    return weights


register_target(Target("0", "foreground", 1, foreground, _no_numbers, code="0", description="foreground"))
register_target(Target("4", "contour", 1, instance_contour, _contour_numbers, code="4-S-B",
                       description="instance contour (S half-width, B 1 = with background)"))
