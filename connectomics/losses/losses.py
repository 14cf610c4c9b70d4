"""Loss functions on logits and the binary regulariser.

Every loss takes ``(logits, target, weight=None)``: ``logits`` float ``(B, C, Z, Y, X)`` (any
shape ``(B, ...)``), ``target`` of the same shape in [0, 1], ``weight`` ``None`` or a non-negative
tensor broadcastable to ``target`` (per-voxel weights, e.g. the class-ratio weight). Each returns
a scalar tensor.
"""
import torch
import torch.nn.functional as F


def weighted_bce(logits, target, weight=None):
    """Mean over all voxels of ``w * BCE(sigmoid(logits), target)``, computed on the logits.

    Equals the predecessor's ``F.binary_cross_entropy(sigmoid(x), t, w)`` (mean of ``w * BCE``, not
    normalised by the sum of ``w``) but is stable for large logits.
    """
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def dice_loss(logits, target, weight=None, smooth=100.0):
    """Soft Dice loss on ``p = sigmoid(logits)``, averaged over the batch.

    Per sample (all channels and voxels together):
    ``1 - (2 * sum(w p t) + smooth) / (sum(w p) + sum(w t) + smooth)``; ``w = 1`` without a weight,
    which is the predecessor's ``DiceLoss(smooth=100)``.
    """
    p = torch.sigmoid(logits)
    if weight is not None:
        weight = weight.expand_as(p)
        p_w, t_w = p * weight, target * weight
    else:
        p_w, t_w = p, target
    intersection = (p_w * target).flatten(1).sum(1)
    total = p_w.flatten(1).sum(1) + t_w.flatten(1).sum(1)
    return (1.0 - (2.0 * intersection + smooth) / (total + smooth)).mean()


def binary_reg(logits, alpha=0.1):
    """``alpha * mean(1 / max(|sigmoid(logits) - 0.5|, 0.01))``: pushes predictions away from 0.5."""
    distance = (torch.sigmoid(logits) - 0.5).abs().clamp_min(1e-2)
    return alpha * distance.reciprocal().mean()


LOSS_REGISTRY = {
    "WeightedBCE": weighted_bce,
    "DiceLoss": dice_loss,
}

REGULARIZER_REGISTRY = {
    "BinaryReg": binary_reg,
}
