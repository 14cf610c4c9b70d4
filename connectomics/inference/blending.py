"""Blending weights of overlapping windows and the uint8 finalisation.

Output voxel value = sum_k p_k * ww_k / sum_k ww_k over the windows k covering
it, accumulated in float32 (the predecessor used float16 and truncated).
"""
import numpy as np
import torch

BLENDINGS = ("gaussian", "bump")


def gaussian_weights(size, sigma=0.2):
    """(Z, Y, X) float32 window weights ``1e-4 + exp(-d^2 / (2 sigma^2))``.

    ``d^2 = z^2 + y^2 + x^2`` with per-axis coordinates ``linspace(-1, 1, n)``:
    1 + 1e-4 at the centre, about 1e-4 at the faces (the predecessor's 'gaussian').
    """
    axes = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in size], indexing="ij")
    d2 = sum(a * a for a in axes)
    return (1e-4 + np.exp(-d2 / (2.0 * sigma * sigma))).astype(np.float32)


def bump_weights(size, t=1.5):
    """(Z, Y, X) float32 'bump' weights (Lee et al. 2017): ``1e-4 + exp(d - max d)``.

    ``d = -sum_axes (u (1 - u))^(-t)`` with ``u = linspace(0, 1, n + 2)[1:-1]``.
    """
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, n + 2)[1:-1] for n in size], indexing="ij")
    d = -sum(np.power(u * (1.0 - u), -t) for u in axes)
    return (1e-4 + np.exp(d - d.max())).astype(np.float32)


def blending_weights(size, mode="gaussian"):
    """Window weights for ``mode`` in BLENDINGS; (Z, Y, X) float32, strictly positive."""
    if mode == "gaussian":
        return gaussian_weights(size)
    if mode == "bump":
        return bump_weights(size)
    raise ValueError(f"unknown blending {mode!r}; valid: {', '.join(BLENDINGS)}")


def finalize_uint8(acc, weight, out=None):
    """Blend and round in place: ``rint(255 * acc / weight)`` clipped to 0..255, as uint8.

    ``acc``: (C, Z, Y, X) float32 torch tensor of weighted sums (overwritten);
    ``weight``: (Z, Y, X) float32 tensor of weight sums (> 0 everywhere), same
    device; ``out``: optional (C, Z, Y, X) uint8 tensor to fill. Returns the
    uint8 tensor on that device (round half to even, as ``np.rint``; the
    predecessor truncated).
    """
    acc.div_(weight).mul_(255.0).round_().clamp_(0.0, 255.0)
    if out is None:
        return acc.to(torch.uint8)
    return out.copy_(acc)  # exact: the values are integers in 0..255


def probability_to_uint8(prob):
    """(…) float probabilities in [0, 1] -> uint8 ``rint(255 p)`` (the same rounding as inference)."""
    return np.clip(np.rint(np.asarray(prob, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
