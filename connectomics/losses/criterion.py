"""The training criterion: per-target weighted losses plus regularisers, with a named breakdown.

``loss = sum_i sum_j LOSS_WEIGHT[i][j] * L_ij(logits[:, channels of target i], target_i, w_ij)
       + sum_k REGU_WEIGHT[k] * R_k(logits)``

Fixes of the predecessor: each LOSS_WEIGHT is applied once (it was squared), a loss whose weight
is 0 is not computed, and each loss of a target gets that target's weight map (the predecessor
passed only the first one, and only when it was not a placeholder).
"""
import torch

from connectomics.data.targets import target_channels, target_names
from connectomics.losses.losses import LOSS_REGISTRY, REGULARIZER_REGISTRY


def _lookup(registry, name, key):
    if name not in registry:
        raise ValueError(f"config key {key} has unknown name {name!r}; valid: {', '.join(registry)}")
    return registry[name]


class Criterion:
    """Callable ``criterion(logits, targets, weights) -> (total, breakdown)``.

    Args:
        target_names: one readable name per target, e.g. ``['foreground', 'contour']``.
        target_channels: channels of each target; the logits hold them in this order.
        loss_names: per target, loss names (``LOSS_REGISTRY``), e.g. ``[['WeightedBCE'], ['DiceLoss']]``.
        loss_weights: per target, one multiplier per loss; 0 skips the loss.
        regularizers, regularizer_weights: names (``REGULARIZER_REGISTRY``) and multipliers, applied
            to all the logits.

    Call with ``logits`` float ``(B, sum(target_channels), Z, Y, X)``; ``targets`` a list of float
    ``(B, C_i, Z, Y, X)`` in [0, 1]; ``weights`` ``None`` or a list with, per target, ``None``, a
    tensor broadcastable to the target (used by every loss of the target), or a list with one
    entry (``None`` or tensor) per loss of the target. Returns the scalar total (float32, with
    graph) and ``{'<target>/<loss>': float, 'regularizer/<name>': float, 'total': float}``: the
    weighted terms, which sum to the total.
    """

    def __init__(self, target_names, target_channels, loss_names, loss_weights, regularizers=(),
                 regularizer_weights=()):
        n = len(target_names)
        if not (len(target_channels) == len(loss_names) == len(loss_weights) == n):
            raise ValueError(f"need one channel count, loss list and loss-weight list per target ({n} "
                             f"targets): got {len(target_channels)}, {len(loss_names)}, {len(loss_weights)}")
        if len(regularizers) != len(regularizer_weights):
            raise ValueError(f"config keys MODEL.REGU_OPT {list(regularizers)} and MODEL.REGU_WEIGHT "
                             f"{list(regularizer_weights)} need the same length")
        self.target_names = list(target_names)
        self.channels = [int(c) for c in target_channels]
        self.losses_per_target = [len(names) for names in loss_names]
        self.terms = []  # (target index, loss index, breakdown name, function, weight)
        for i, (names, weights) in enumerate(zip(loss_names, loss_weights)):
            if len(names) != len(weights):
                raise ValueError(f"config key MODEL.LOSS_WEIGHT: target {self.target_names[i]} has "
                                 f"{len(names)} losses {list(names)} but {len(weights)} weights {list(weights)}")
            for j, (name, weight) in enumerate(zip(names, weights)):
                fn = _lookup(LOSS_REGISTRY, name, "MODEL.LOSS_OPTION")
                if float(weight) != 0.0:
                    self.terms.append((i, j, f"{self.target_names[i]}/{name}", fn, float(weight)))
        self.regularizers = [(f"regularizer/{name}", _lookup(REGULARIZER_REGISTRY, name, "MODEL.REGU_OPT"),
                              float(w)) for name, w in zip(regularizers, regularizer_weights) if float(w) != 0.0]
        if not self.terms and not self.regularizers:
            raise ValueError("every loss weight is 0 (MODEL.LOSS_WEIGHT, MODEL.REGU_WEIGHT): nothing to train")

    def __repr__(self):
        terms = [f"{w:g}*{name}" for _, _, name, _, w in self.terms]
        terms += [f"{w:g}*{name}" for name, _, w in self.regularizers]
        return f"Criterion({' + '.join(terms)})"

    def _check(self, logits, targets, weights):
        expected = sum(self.channels)
        if logits.dim() < 2 or logits.shape[1] != expected:
            raise ValueError(f"logits of shape {tuple(logits.shape)}: expected {expected} channels "
                             f"(targets {self.target_names} with {self.channels} channels; MODEL.OUT_PLANES)")
        if len(targets) != len(self.channels):
            raise ValueError(f"got {len(targets)} targets, expected {len(self.channels)} ({self.target_names})")
        if weights is not None and len(weights) != len(self.channels):
            raise ValueError(f"got {len(weights)} weight entries, expected one per target ({self.target_names})")
        shape = list(logits.shape)
        for i, target in enumerate(targets):
            shape[1] = self.channels[i]
            if list(target.shape) != shape:
                raise ValueError(f"target {self.target_names[i]} has shape {tuple(target.shape)}, "
                                 f"expected {tuple(shape)}")

    def _weight(self, weights, i, j, target):
        if weights is None or weights[i] is None:
            return None
        entry = weights[i]
        if isinstance(entry, (list, tuple)):
            if len(entry) != self.losses_per_target[i]:
                raise ValueError(f"target {self.target_names[i]}: {len(entry)} weight maps for "
                                 f"{self.losses_per_target[i]} losses")
            entry = entry[j]
            if entry is None:
                return None
        try:
            ok = torch.broadcast_shapes(entry.shape, target.shape) == target.shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"weight of target {self.target_names[i]} has shape {tuple(entry.shape)}, "
                             f"not broadcastable to the target's {tuple(target.shape)}")
        return entry.to(target.dtype)

    def __call__(self, logits, targets, weights=None):
        self._check(logits, targets, weights)
        logits = logits.float()  # losses in float32, also under autocast
        starts = [sum(self.channels[:i]) for i in range(len(self.channels))]
        names, values = [], []
        for i, j, name, fn, w in self.terms:
            x = logits[:, starts[i]:starts[i] + self.channels[i]]
            target = targets[i].to(torch.float32)
            names.append(name)
            values.append(w * fn(x, target, self._weight(weights, i, j, target)))
        for name, fn, w in self.regularizers:
            names.append(name)
            values.append(w * fn(logits))
        total = torch.stack(values).sum()
        floats = torch.stack([v.detach() for v in values] + [total.detach()]).tolist()  # one sync
        return total, dict(zip(names + ["total"], floats))


def build_criterion(cfg):
    """The :class:`Criterion` of ``cfg.MODEL`` (TARGET_OPT, LOSS_OPTION, LOSS_WEIGHT, REGU_*)."""
    m = cfg.MODEL
    return Criterion(target_names(m.TARGET_OPT), [target_channels(t) for t in m.TARGET_OPT],
                     m.LOSS_OPTION, m.LOSS_WEIGHT, m.REGU_OPT, m.REGU_WEIGHT)
