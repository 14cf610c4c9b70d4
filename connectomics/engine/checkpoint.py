"""Training checkpoints: atomic save, discovery of the latest one, full-state resume.

A checkpoint is ``checkpoint_XXXXXX.pth.tar`` holding the model weights, the
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
import re
import uuid

import numpy as np
import torch

logger = logging.getLogger(__name__)

_NAME = re.compile(r"checkpoint_(\d+)\.pth\.tar$")


def checkpoint_path(folder, iteration):
    """``folder/checkpoint_XXXXXX.pth.tar`` for ``iteration`` (the number of finished iterations)."""
    return os.path.join(folder, f"checkpoint_{iteration:06d}.pth.tar")


def checkpoint_iteration(path):
    """The iteration of a checkpoint: from its name if it follows the pattern, else from its content."""
    match = _NAME.search(os.path.basename(path))
    if match:
        return int(match.group(1))
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "iteration" not in state:
        raise ValueError(f"{path} is not a training checkpoint (no 'iteration' entry)")
    return int(state["iteration"])


def list_checkpoints(folder):
    """``[(iteration, path), ...]`` sorted by iteration."""
    found = []
    for path in glob.glob(os.path.join(folder, "checkpoint_*.pth.tar")):
        match = _NAME.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
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


def unwrap(model):
    """The bare module under DataParallel / DistributedDataParallel."""
    return model.module if hasattr(model, "module") else model


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
    from connectomics.data.io import atomic_path

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
    from connectomics.model.checkpoint import CheckpointMismatchError

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
    from connectomics.model.checkpoint import CheckpointMismatchError, load_weights

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
        from connectomics.model.checkpoint import CheckpointMismatchError

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
