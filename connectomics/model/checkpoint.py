"""Strict loading of model weights.

The predecessor kept only the checkpoint keys that the model happened to have, so a checkpoint
of another architecture loaded nothing and left a random model without a word. Here every
missing key, unexpected key and shape difference is reported, and by default it is an error.

A checkpoint is either a bare state dict or a dict with ``'state_dict'`` and, optionally,
``'architecture'`` (the registry name of the model that wrote it). Keys written through
``nn.DataParallel`` / DDP (``module.`` prefix) or ``torch.compile`` (``_orig_mod.``) load as well.
"""
import logging
import os
from collections import namedtuple
from collections.abc import Mapping

import torch
from torch import nn

logger = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOW = 5  # keys listed per kind of mismatch

LoadResult = namedtuple("LoadResult", "loaded missing unexpected mismatched")
LoadResult.__doc__ = """Keys loaded; keys the model has and the checkpoint lacks; keys the checkpoint
has and the model lacks; ``(key, checkpoint_shape, model_shape)`` of the shape differences."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's keys or shapes do not match the model's."""


def _unwrap_model(model):
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def _strip_prefixes(state_dict):
    changed = True
    while changed and state_dict:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
                changed = True
    return state_dict


def split_checkpoint(checkpoint):
    """``(state_dict, architecture or None)`` of a checkpoint dict or a bare state dict."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"expected a state dict or a checkpoint dict, got {type(checkpoint).__name__}")
    if isinstance(checkpoint.get("state_dict"), Mapping):
        return dict(checkpoint["state_dict"]), checkpoint.get("architecture")
    return dict(checkpoint), None


def compare_state_dicts(model_state, state_dict):
    """Missing keys, unexpected keys and ``(key, checkpoint_shape, model_shape)`` differences."""
    missing = [k for k in model_state if k not in state_dict]
    unexpected = [k for k in state_dict if k not in model_state]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(v.shape)) for k, v in model_state.items()
                  if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    return missing, unexpected, mismatched


def _listing(items, what):
    shown = ", ".join(items[:_SHOW]) + (", ..." if len(items) > _SHOW else "")
    return f"{len(items)} {what}: {shown}"


def describe_mismatch(missing, unexpected, mismatched, model_arch=None, checkpoint_arch=None, source=None):
    """A message naming a few keys and shapes of each kind and the counts of all."""
    where = f"checkpoint {source}" if source else "checkpoint"
    archs = f"model architecture {model_arch!r}" if model_arch else "the model"
    if checkpoint_arch:
        archs += f", checkpoint written by {checkpoint_arch!r}"
    parts = []
    if missing:
        parts.append(_listing(missing, "keys missing from the checkpoint"))
    if unexpected:
        parts.append(_listing(unexpected, "unexpected keys in the checkpoint"))
    if mismatched:
        shapes = [f"{k} (checkpoint {c} vs model {m})" for k, c, m in mismatched]
        parts.append(_listing(shapes, "shape differences"))
    hint = ("set MODEL.ARCHITECTURE to the checkpoint's architecture" if checkpoint_arch and model_arch
            and checkpoint_arch != model_arch else
            "check MODEL.ARCHITECTURE, FILTERS, IN_PLANES, OUT_PLANES, TARGET_OPT and NORM_MODE "
            "against the run that wrote it")
    return f"{where} does not fit {archs}: " + "; ".join(parts) + f". Hint: {hint}."


def load_weights(model, checkpoint, strict=True, source=None):
    """Copy the weights of ``checkpoint`` into ``model`` (in place) and return a :class:`LoadResult`.

    Args:
        model: the module (``nn.DataParallel`` / DDP wrappers are unwrapped).
        checkpoint: a state dict, or a dict with ``'state_dict'`` (and optionally ``'architecture'``).
        strict: True: any missing key, unexpected key or shape difference raises
            :class:`CheckpointMismatchError` and nothing is loaded. False: the keys with equal names
            and shapes are loaded and the rest is logged as a warning; it still raises when no key
            matches at all.
        source: a name for messages, e.g. the file path.
    """
    model = _unwrap_model(model)
    state_dict, checkpoint_arch = split_checkpoint(checkpoint)
    state_dict = _strip_prefixes(state_dict)
    model_state = model.state_dict()
    missing, unexpected, mismatched = compare_state_dicts(model_state, state_dict)
    model_arch = getattr(model, "architecture", type(model).__name__)
    if missing or unexpected or mismatched:
        message = describe_mismatch(missing, unexpected, mismatched, model_arch, checkpoint_arch, source)
        bad = {k for k, _, _ in mismatched}
        usable = {k: v for k, v in state_dict.items() if k in model_state and k not in bad}
        if strict or not usable:
            raise CheckpointMismatchError(message if strict else "no key matches; " + message)
        logger.warning("loading only the matching %d of %d model keys: %s", len(usable), len(model_state), message)
        model.load_state_dict(usable, strict=False)
        return LoadResult(sorted(usable), missing, unexpected, mismatched)
    model.load_state_dict(state_dict, strict=True)
    return LoadResult(list(state_dict), [], [], [])


def load_weights_file(model, path, strict=True):
    """:func:`load_weights` from a file written by ``torch.save`` (read on the CPU, tensors only)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return load_weights(model, checkpoint, strict=strict, source=path)
