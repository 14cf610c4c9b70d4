"""Optimizers, learning-rate schedules and gradient clipping."""
import math
from bisect import bisect_right

import torch

_NORM_TYPES = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.modules.instancenorm._InstanceNorm,
               torch.nn.LayerNorm)


def parameter_groups(model, base_lr, weight_decay, bias_lr_factor=1.0, weight_decay_bias=0.0,
                     weight_decay_norm=0.0):
    """Three groups: weights, biases and normalisation parameters, each with its lr and decay."""
    weights, biases, norms = [], [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, _NORM_TYPES):
                norms.append(param)
            elif name == "bias":
                biases.append(param)
            else:
                weights.append(param)
    groups = [
        {"params": weights, "lr": base_lr, "weight_decay": weight_decay},
        {"params": biases, "lr": base_lr * bias_lr_factor, "weight_decay": weight_decay_bias},
        {"params": norms, "lr": base_lr, "weight_decay": weight_decay_norm},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg, model):
    """Adam (coupled L2, as the predecessor), AdamW or SGD from ``cfg.SOLVER``."""
    s = cfg.SOLVER
    groups = parameter_groups(model, s.BASE_LR, s.WEIGHT_DECAY, s.BIAS_LR_FACTOR, s.WEIGHT_DECAY_BIAS,
                              s.WEIGHT_DECAY_NORM)
    if s.NAME == "Adam":
        return torch.optim.Adam(groups, lr=s.BASE_LR, betas=tuple(s.BETAS))
    if s.NAME == "AdamW":
        return torch.optim.AdamW(groups, lr=s.BASE_LR, betas=tuple(s.BETAS))
    return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM)


def warmup_factor(iteration, warmup_iters, start_factor, method):
    """Multiplier during warmup: ``start_factor`` at 0 rising to 1 at ``warmup_iters``."""
    if iteration >= warmup_iters:
        return 1.0
    if method == "constant":
        return start_factor
    alpha = iteration / warmup_iters
    return start_factor * (1 - alpha) + alpha


def multistep_lambda(milestones, gamma, warmup_iters=0, start_factor=1.0, method="linear"):
    """lr(it) / base = warmup(it) * gamma ** (number of milestones <= it)."""
    milestones = sorted(milestones)

    def factor(it):
        return warmup_factor(it, warmup_iters, start_factor, method) * gamma ** bisect_right(milestones, it)

    return factor


def cosine_lambda(total_iters, warmup_iters=0, start_factor=1.0, method="linear"):
    """Half-cosine decay from 1 to 0 over ``factor.total`` iterations (``total_iters`` at first), after
    a warmup. ``factor.total`` may be changed later (a time budget plans it after timing the first
    steps); being a plain function, the factor is not part of the scheduler's saved state, so a
    resumed run takes the total of its own config or plan."""

    def factor(it):
        total = factor.total
        cosine = 0.5 * (1 + math.cos(math.pi * min(it, total) / max(total, 1)))
        return warmup_factor(it, warmup_iters, start_factor, method) * cosine

    factor.total = total_iters
    return factor


def schedule_length(scheduler):
    """The cosine factor of a scheduler built by :func:`build_lr_scheduler` (its ``total`` can be set),
    or None for the step schedules."""
    factor = scheduler.lr_lambdas[0]
    return factor if hasattr(factor, "total") else None


def build_lr_scheduler(cfg, optimizer):
    """A LambdaLR stepped once per training iteration (its state is saved in checkpoints).

    SOLVER.STEPS, WARMUP_ITERS and ITERATION_TOTAL count iterations, with gradient accumulation
    (SOLVER.ITERATION_STEP > 1) too, so the schedule is the same whatever the accumulation.
    """
    s = cfg.SOLVER
    if s.LR_SCHEDULER_NAME == "MultiStepLR":
        factor = multistep_lambda(s.STEPS, s.GAMMA)
    elif s.LR_SCHEDULER_NAME == "WarmupMultiStepLR":
        factor = multistep_lambda(s.STEPS, s.GAMMA, s.WARMUP_ITERS, s.WARMUP_FACTOR, s.WARMUP_METHOD)
    else:
        factor = cosine_lambda(s.ITERATION_TOTAL, s.WARMUP_ITERS, s.WARMUP_FACTOR, s.WARMUP_METHOD)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def clip_gradients(parameters, clip_type, value, norm_type=2.0):
    """Clip by value or by total norm (``clip_type`` 'value' or 'norm')."""
    if clip_type == "value":
        torch.nn.utils.clip_grad_value_(parameters, value)
    else:
        torch.nn.utils.clip_grad_norm_(parameters, value, norm_type)
