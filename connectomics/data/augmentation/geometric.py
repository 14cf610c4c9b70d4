"""In-plane geometric augmentations: rotation, rescale, elastic warp; flips and transposes.

Rotation, rescale and elastic warp are coordinate maps from the output grid to
the input grid, the same for every z slice. :class:`Compose` multiplies their
matrices and adds their displacement fields, then resamples once (image
bilinear, label nearest-neighbour) and only on the output grid, which is far
cheaper than warping the whole enlarged sample three times. Called alone, each
keeps the array shape; points mapped outside the input read 0 (image and
label). Labels are only ever copied by nearest-neighbour lookup, so no new id
appears.
"""
import math

import numpy as np
from scipy import ndimage

from connectomics.data.augmentation.base import Transform, check_pair


def warp(image, label, matrix=None, displacement=None, out_shape=None):
    """Resample every z slice on an affine + displacement map of the output grid.

    A point p of the output grid (y, x), relative to the output centre, reads
    the input at ``centre_in + matrix @ p + displacement[:, p]``.

    Args:
        image: float32 (Z, H, W), or uint8 (read as value / 255).
        label: integer (Z, H, W) or None.
        matrix: 2x2 (output -> input), None = identity.
        displacement: float32 (2, h, w) in input voxels (dy, dx), or None.
        out_shape: (h, w) of the output, None = (H, W).
    Returns:
        (image float32 (Z, h, w) bilinear, label (Z, h, w) nearest or None).
        Points outside the input read 0. With the identity map and H - h, W - w
        even, the result is exactly the centre crop.
    """
    Z, H, W = image.shape
    h, w = out_shape or (H, W)
    m = np.eye(2) if matrix is None else np.asarray(matrix, dtype=np.float64)
    py = np.arange(h, dtype=np.float32)[:, None] - np.float32((h - 1) / 2)
    px = np.arange(w, dtype=np.float32)[None, :] - np.float32((w - 1) / 2)
    sy = np.float32((H - 1) / 2) + np.float32(m[0, 0]) * py + np.float32(m[0, 1]) * px
    sx = np.float32((W - 1) / 2) + np.float32(m[1, 0]) * py + np.float32(m[1, 1]) * px
    if displacement is not None:
        sy = sy + displacement[0]
        sx = sx + displacement[1]
    sy, sx = np.broadcast_to(sy, (h, w)), np.broadcast_to(sx, (h, w))
    inside = (sy > -0.5) & (sy < H - 0.5) & (sx > -0.5) & (sx < W - 0.5)
    outside = None if inside.all() else ~inside.ravel()
    out_image = _bilinear(image, sy, sx, outside)
    out_label = None if label is None else _nearest(label, sy, sx, outside)
    return out_image, out_label


def _bilinear(image, sy, sx, outside):
    Z, H, W = image.shape
    y0 = np.clip(np.floor(sy), 0, max(H - 2, 0)).astype(np.intp)
    x0 = np.clip(np.floor(sx), 0, max(W - 2, 0)).astype(np.intp)
    fy = np.clip(sy - y0, 0, 1).astype(np.float32).ravel()
    fx = np.clip(sx - x0, 0, 1).astype(np.float32).ravel()
    i00 = (y0 * W + x0).ravel()
    i01, i10 = i00 + (1 if W > 1 else 0), i00 + (W if H > 1 else 0)
    i11 = i10 + (i01 - i00)
    out = np.empty((Z, i00.size), np.float32)
    for z in range(Z):  # slice by slice: the gathers stay in cache
        flat = image[z].ravel()
        a, b, c, d = (flat.take(i).astype(np.float32, copy=False) for i in (i00, i01, i10, i11))
        b -= a
        b *= fx
        a += b  # top row
        d -= c
        d *= fx
        c += d  # bottom row
        c -= a
        c *= fy
        np.add(a, c, out=out[z])
    if image.dtype == np.uint8:
        out *= np.float32(1 / 255)
    if outside is not None:
        out[:, outside] = 0
    return out.reshape(Z, *sy.shape)


def _nearest(label, sy, sx, outside):
    Z, H, W = label.shape
    iy = np.clip(np.rint(sy), 0, H - 1).astype(np.intp)
    ix = np.clip(np.rint(sx), 0, W - 1).astype(np.intp)
    out = label.reshape(Z, -1).take((iy * W + ix).ravel(), axis=1)
    if outside is not None:
        out[:, outside] = 0
    return out.reshape(Z, *sy.shape)


def warp_source_size(out_yx, rotate=False, min_scale=1.0, max_shift=0.0):
    """In-plane (y, x) input size that a warp of an ``out_yx`` output never reads past.

    Worst cases: any rotation (the output corners sweep a circle of the
    half-diagonal), a zoom-out to ``min_scale`` and a displacement of at most
    ``max_shift`` voxels. The margins are even, so the identity map is an exact
    centre crop.
    """
    half = [(n - 1) / 2 for n in out_yx]
    if rotate:
        half = [math.hypot(*half)] * 2
    scale = min(float(min_scale), 1.0)
    size = []
    for n, e in zip(out_yx, half):
        need = max(n, math.ceil(2 * (e / scale + max_shift) + 1 - 1e-6))
        size.append(need + (need - n) % 2)
    return tuple(size)


class Rotate(Transform):
    """Rotation in-plane by an angle ~ U(0, 360) degrees about the slice centre."""

    stage = "warp"

    def draw(self, rng, shape_yx=None):
        """(2x2 output -> input matrix, None)."""
        theta = rng.uniform(0.0, 2.0 * np.pi)
        c, s = math.cos(theta), math.sin(theta)
        return np.array([[c, -s], [s, c]]), None

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        return warp(image, label, *self.draw(rng, image.shape[1:]))


class Rescale(Transform):
    """In-plane zoom by s ~ U(low, high) per axis (s > 1 magnifies); one s if fix_aspect."""

    stage = "warp"

    def __init__(self, p=0.5, low=0.8, high=1.2, fix_aspect=False):
        super().__init__(p)
        if not 0 < low <= high:
            raise ValueError(f"Rescale: need 0 < low <= high, got low={low!r}, high={high!r}")
        self.low, self.high, self.fix_aspect = float(low), float(high), bool(fix_aspect)

    def draw(self, rng, shape_yx=None):
        sy = rng.uniform(self.low, self.high)
        sx = sy if self.fix_aspect else rng.uniform(self.low, self.high)
        return np.diag([1.0 / sy, 1.0 / sx]), None

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        return warp(image, label, *self.draw(rng, image.shape[1:]))


class Elastic(Transform):
    """Smooth random in-plane displacement, shared by all slices.

    Field: gaussian_filter(U(-1, 1), sigma) * alpha per axis, so no voxel moves
    by more than ``alpha`` (the margin Compose reserves).
    """

    stage = "warp"

    def __init__(self, p=0.75, alpha=16.0, sigma=4.0):
        super().__init__(p)
        if alpha < 0 or sigma <= 0:
            raise ValueError(f"Elastic: need alpha >= 0 and sigma > 0, got alpha={alpha!r}, sigma={sigma!r}")
        self.alpha, self.sigma = float(alpha), float(sigma)

    def draw(self, rng, shape_yx):
        field = rng.uniform(-1.0, 1.0, size=(2, *shape_yx)).astype(np.float32)
        for axis in range(2):
            ndimage.gaussian_filter(field[axis], self.sigma, output=field[axis], mode="reflect")
        field *= np.float32(self.alpha)
        return None, field

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        return warp(image, label, *self.draw(rng, image.shape[1:]))


class Flip(Transform):
    """Random z / y / x flips and y-x transpose (z-x transpose with ``do_ztrans``).

    Transposes that would change the shape (Y != X, or Z != X) are skipped, so
    non-square slices keep their shape. Outputs are C-contiguous.
    """

    stage = "flip"

    def __init__(self, p=1.0, do_ztrans=False):
        super().__init__(p)
        self.do_ztrans = bool(do_ztrans)

    def draw(self, rng):
        return rng.integers(0, 2, size=5 if self.do_ztrans else 4).astype(bool)

    @staticmethod
    def apply(volume, rule):
        if rule[0]:
            volume = volume[::-1]
        if rule[1]:
            volume = volume[:, ::-1]
        if rule[2]:
            volume = volume[:, :, ::-1]
        if rule[3] and volume.shape[1] == volume.shape[2]:
            volume = volume.transpose(0, 2, 1)
        if len(rule) > 4 and rule[4] and volume.shape[0] == volume.shape[2]:
            volume = volume.transpose(2, 1, 0)
        return np.ascontiguousarray(volume)

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        rule = self.draw(rng)
        return self.apply(image, rule), self.apply(label, rule)
