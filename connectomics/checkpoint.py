"""Checkpoints and weights: strict loading, atomic saves, discovery, full-state resume.

Loading is strict: the predecessor kept only the checkpoint keys that the model happened to have,
so a checkpoint of another architecture loaded nothing and left a random model without a word.
Here every missing key, unexpected key and shape difference is reported, and by default it is
an error. Weights are a bare state dict or a dict with ``'state_dict'`` and, optionally,
``'architecture'`` (the registry name of the model that wrote it). Keys written through
``nn.DataParallel`` / DDP (``module.`` prefix) or ``torch.compile`` (``_orig_mod.``) load as well.

A training checkpoint is ``checkpoint_XXXXXX.pth.tar`` holding the model weights, the
optimizer, the scheduler, the AMP scaler, the RNG states, the iteration it
resumes at, the architecture name and the run id: a random id drawn when a
training run starts from scratch (or from other weights) and carried over by
every resume, so the checkpoints of one run share it and results made from
them can say which run's model they scored (``model_identity``).
"""
import glob
import logging
import os
import random
import uuid
from collections import namedtuple
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from connectomics.errors import CheckpointMismatchError
from connectomics.storage import atomic_path, parse_iteration

logger = logging.getLogger(__name__)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOW = 5  # keys listed per kind of mismatch

LoadResult = namedtuple("LoadResult", "loaded missing unexpected mismatched")
LoadResult.__doc__ = """Keys loaded; keys the model has and the checkpoint lacks; keys the checkpoint
has and the model lacks; ``(key, checkpoint_shape, model_shape)`` of the shape differences."""


def unwrap(model):
    """The bare module under DataParallel / DistributedDataParallel wrappers."""
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
    model = unwrap(model)
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




def checkpoint_path(folder, iteration):
    """``folder/checkpoint_XXXXXX.pth.tar`` for ``iteration`` (the number of finished iterations)."""
    return os.path.join(folder, f"checkpoint_{iteration:06d}.pth.tar")


def checkpoint_iteration(path):
    """The iteration of a checkpoint: from its name if it follows the pattern, else from its content."""
    iteration = parse_iteration(path, leading_digits=False)
    if iteration is not None:
        return iteration
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "iteration" not in state:
        raise ValueError(f"{path} is not a training checkpoint (no 'iteration' entry)")
    return int(state["iteration"])


def list_checkpoints(folder):
    """``[(iteration, path), ...]`` sorted by iteration."""
    found = []
    for path in glob.glob(os.path.join(folder, "checkpoint_*.pth.tar")):
        iteration = parse_iteration(path, leading_digits=False)
        if iteration is not None:
            found.append((iteration, path))
    return sorted(found)


def latest_checkpoint(folder):
    """The path of the newest checkpoint in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1][1] if found else None


def new_run_id():
    """A fresh run id (hex)."""
    return uuid.uuid4().hex


def model_identity(path):
    """Which run's model the checkpoint ``path`` holds: ``'run:<id>'``, or for a checkpoint saved
    without a run id (older versions, other code) ``'folder:<its folder>'``."""
    state = read_checkpoint(path, bare=True)
    run_id = state.get("run_id")
    return f"run:{run_id}" if run_id else f"folder:{os.path.dirname(os.path.abspath(path))}"


def rng_state():
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, model, optimizer, scheduler, iteration, architecture, scaler=None, extra=None):
    """Write the full training state atomically (temporary name, then rename)."""
    state = {
        "iteration": int(iteration),
        "architecture": architecture,
        "state_dict": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "lr_scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
    }
    state.update(extra or {})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def export_weights(checkpoint, output, made_with=""):
    """Write the weights of ``checkpoint`` (state dict, architecture, iteration, ``made_with``) to
    ``output`` atomically, without the optimizer, scheduler and RNG states. Returns ``output``."""
    state = read_checkpoint(checkpoint)
    weights = {"state_dict": state["state_dict"], "architecture": state.get("architecture"),
               "iteration": state.get("iteration"), "made_with": made_with}
    with atomic_path(output) as tmp:
        torch.save(weights, tmp)
    return output


def read_checkpoint(path, bare=False):
    """The checkpoint dict; a clear error if the file is missing or not a checkpoint.

    ``bare``: also accept a plain state dict (weights saved by other code, for MODEL.PRE_MODEL),
    returned as ``{'state_dict': it}``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointMismatchError(f"{path} is not a readable checkpoint: {err}") from err
    if bare and isinstance(state, dict) and "state_dict" not in state and state and \
            all(isinstance(v, torch.Tensor) for v in state.values()):
        state = {"state_dict": state}
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointMismatchError(f"{path} is not a connectomics checkpoint (no 'state_dict')")
    return state


def load_model_weights(model, state, architecture=None, source="checkpoint"):
    """Load weights strictly: another architecture, mismatched keys or shapes raise, naming them."""
    saved_arch = state.get("architecture")
    if architecture and saved_arch and saved_arch != architecture:
        raise CheckpointMismatchError(
            f"{source} holds a {saved_arch!r} model but MODEL.ARCHITECTURE is {architecture!r}; "
            "use the config the checkpoint was trained with")
    load_weights(unwrap(model), state, source=source)


def pending_gradients(model):
    """CPU copies of the gradients ``model`` holds (one entry per parameter, None where unset), or None.

    With gradient accumulation (SOLVER.ITERATION_STEP > 1) a checkpoint written between two
    optimizer steps must keep them: without them the resumed run would take its next step on
    part of the accumulated batch only.
    """
    grads = [None if p.grad is None else p.grad.detach().cpu().clone() for p in unwrap(model).parameters()]
    return grads if any(g is not None for g in grads) else None


def restore_gradients(model, grads, source="checkpoint"):
    """Put ``grads`` (from :func:`pending_gradients`) back on ``model``'s parameters; None clears them."""
    params = list(unwrap(model).parameters())
    if grads is None:
        for p in params:
            p.grad = None
        return
    if len(grads) != len(params):
            raise CheckpointMismatchError(f"{source} holds pending gradients of {len(grads)} parameters, "
                                      f"the model has {len(params)}")
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)


def restore_training_state(state, optimizer, scheduler, scaler=None, restart=False, model=None):
    """Restore optimizer, scheduler, scaler, RNGs and (given ``model``) pending accumulated gradients.

    Returns the iteration to resume at.
    """
    if restart:
        return 0
    if model is not None:
        restore_gradients(model, state.get("pending_grads"))
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("lr_scheduler"):
        scheduler.load_state_dict(state["lr_scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if state.get("rng"):
        set_rng_state(state["rng"])
    return int(state.get("iteration", 0))
