"""Section artefacts of serial-section EM: missing sections, misaligned sections, missing parts.

MissingSection and Misalignment change the array extent (they consume the
z / y-x margin that :class:`Compose` reserves through ``margin()``) and move
image and label together. MissingParts touches the image only.
"""
import math

import numpy as np

from connectomics.data.augmentation.base import Transform, center_slices, check_pair
from connectomics.data.augmentation.geometric import warp


def _interior_index(n, rng):
    """A random slice index in 1..n-2 (any index when n < 3)."""
    return int(rng.integers(1, n - 1)) if n >= 3 else int(rng.integers(0, n))


class MissingSection(Transform):
    """Delete ``num_sections`` random slices (never the first or last) from image and label.

    (Z, Y, X) -> (Z - num_sections, Y, X).
    """

    stage = "section"

    def __init__(self, p=0.5, num_sections=2):
        super().__init__(p)
        if num_sections < 1:
            raise ValueError(f"MissingSection: num_sections must be >= 1, got {num_sections!r}")
        self.num_sections = int(num_sections)

    def margin(self):
        return (self.num_sections, 0, 0)

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        z = image.shape[0]
        if z <= self.num_sections:
            raise ValueError(f"MissingSection: cannot delete {self.num_sections} of {z} slices")
        candidates = np.arange(1, z - 1) if z - 2 >= self.num_sections else np.arange(z)
        drop = rng.choice(candidates, size=self.num_sections, replace=False)
        keep = np.setdiff1d(np.arange(z), drop)
        return image[keep], label[keep]


class Misalignment(Transform):
    """Shift or rotate one slice (slip) or all slices from a random index (step).

    (Z, Y, X) -> (Z, Y - d, X - d), d = ``displacement``. Translation variant:
    two offsets in [0, d]^2. Rotation variant (probability ``rotate_ratio``):
    an angle bounded so that the rotated output box stays inside the input.
    """

    stage = "section"

    def __init__(self, p=0.5, displacement=16, rotate_ratio=0.5):
        super().__init__(p)
        if displacement < 1:
            raise ValueError(f"Misalignment: displacement must be >= 1, got {displacement!r}")
        if not 0.0 <= rotate_ratio <= 1.0:
            raise ValueError(f"Misalignment: rotate_ratio must be in [0, 1], got {rotate_ratio!r}")
        self.displacement, self.rotate_ratio = int(displacement), float(rotate_ratio)

    def margin(self):
        return (0, self.displacement, self.displacement)

    def max_angle(self, out_yx):
        """Largest angle (radians) that keeps the rotated ``out_yx`` box inside (+d)."""
        hy, hx = [(n - 1) / 2 for n in out_yx]
        radius = math.hypot(hy, hx)
        if radius == 0:
            return 0.0
        bounds = []
        for h_out, h_other in ((hy, hx), (hx, hy)):
            limit = (h_out + self.displacement / 2) / radius
            bounds.append(math.pi / 2 if limit >= 1 else math.asin(limit) - math.atan2(h_out, h_other))
        return max(0.0, min(bounds))

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        z, y, x = image.shape
        d = self.displacement
        if y <= d or x <= d:
            raise ValueError(f"Misalignment: slices {y}x{x} are too small for displacement {d}")
        out_yx = (y - d, x - d)
        idx = _interior_index(z, rng)
        moved = slice(idx, idx + 1) if rng.random() < 0.5 else slice(idx, z)
        if rng.random() < self.rotate_ratio:
            theta = rng.uniform(-1.0, 1.0) * self.max_angle(out_yx)
            crop = center_slices(image.shape, (z, *out_yx))
            out_image, out_label = image[crop].copy(), label[crop].copy()
            c, s = math.cos(theta), math.sin(theta)
            out_image[moved], out_label[moved] = warp(
                image[moved], label[moved], np.array([[c, -s], [s, c]]), None, out_yx)
            return out_image, out_label
        (y0, x0), (y1, x1) = rng.integers(0, d + 1, size=(2, 2))
        out_image = image[:, y0:y0 + out_yx[0], x0:x0 + out_yx[1]].copy()
        out_label = label[:, y0:y0 + out_yx[0], x0:x0 + out_yx[1]].copy()
        out_image[moved] = image[moved, y1:y1 + out_yx[0], x1:x1 + out_yx[1]]
        out_label[moved] = label[moved, y1:y1 + out_yx[0], x1:x1 + out_yx[1]]
        return out_image, out_label


class MissingParts(Transform):
    """Per slice, with probability ``slice_p``, a thick straight band of missing data.

    The band joins two opposite slice edges and is filled with the slice mean;
    its half-width is measured along y (or x) for a band running along x (or
    y), like the predecessor's cross dilations of a 1-px line. After a hit the
    next ``skip`` slices are left alone. Image only.
    """

    def __init__(self, p=0.9, slice_p=0.9, half_width=40, skip=2):
        super().__init__(p)
        if not 0.0 <= slice_p <= 1.0 or half_width < 0 or skip < 0:
            raise ValueError(
                f"MissingParts: need slice_p in [0, 1], half_width >= 0, skip >= 0; "
                f"got {slice_p!r}, {half_width!r}, {skip!r}")
        self.slice_p, self.half_width, self.skip = float(slice_p), float(half_width), int(skip)

    def band_mask(self, shape_yx, rng):
        """bool (Y, X): a band around a line between two opposite edges."""
        h, w = shape_yx
        along_x = rng.random() < 0.5  # the line runs from the left edge to the right edge
        n_across, n_along = (h, w) if along_x else (w, h)
        a0, a1 = rng.uniform(0, n_across - 1, size=2)
        # across-coordinate of the line at each along-position, then |distance| across
        t = np.arange(n_along, dtype=np.float32) / max(n_along - 1, 1)
        line = a0 + (a1 - a0) * t
        across = np.arange(n_across, dtype=np.float32)[:, None]
        band = np.abs(across - line[None, :]) <= self.half_width
        return band if along_x else band.T

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        out = image.copy()
        z = 0
        while z < out.shape[0]:
            if rng.random() < self.slice_p:
                mask = self.band_mask(out.shape[1:], rng)
                out[z][mask] = out[z].mean()
                z += self.skip
            z += 1
        return out, label
