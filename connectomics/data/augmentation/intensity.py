"""Image-only augmentations: grayscale, motion blur, cut-blur, cut-noise.

Each returns (new image float32 in [0, 1], the label unchanged).
"""
import numpy as np
from scipy import ndimage
from skimage.transform import resize

from connectomics.data.augmentation.base import Transform, check_pair, random_box


class Grayscale(Transform):
    """Contrast, brightness and gamma changes, for the whole volume or per slice.

    x <- clip(x * (1 + (r0 - .5) * contrast) + (r1 - .5) * brightness, 0, 1)
    ** 2^(2 r2 - 1) with r ~ U(0, 1): gamma in [0.5, 2]. ``mode`` '3d' draws
    once, '2d' once per slice, 'mix' picks one of the two with equal odds.
    """

    def __init__(self, p=0.75, contrast=0.3, brightness=0.3, mode="mix"):
        super().__init__(p)
        if mode not in ("2d", "3d", "mix"):
            raise ValueError(f"Grayscale: mode must be '2d', '3d' or 'mix', got {mode!r}")
        self.contrast, self.brightness, self.mode = float(contrast), float(brightness), mode

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        mode = self.mode if self.mode != "mix" else ("3d" if rng.random() < 0.5 else "2d")
        n = 1 if mode == "3d" else image.shape[0]
        r = rng.random((3, n, 1, 1)).astype(np.float32)
        out = image * (1 + (r[0] - 0.5) * self.contrast)
        out += (r[1] - 0.5) * self.brightness
        np.clip(out, 0, 1, out=out)
        np.power(out, np.float32(2.0) ** (2 * r[2] - 1), out=out)
        return out, label


class MotionBlur(Transform):
    """Blur ``sections`` random slices with a horizontal or vertical line kernel of ``kernel_size``."""

    def __init__(self, p=0.5, sections=2, kernel_size=11):
        super().__init__(p)
        if sections < 1 or kernel_size < 1:
            raise ValueError(f"MotionBlur: sections and kernel_size must be >= 1, got {sections!r}, {kernel_size!r}")
        self.sections, self.kernel_size = int(sections), int(kernel_size)

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        out = image.copy()
        chosen = rng.choice(image.shape[0], size=min(self.sections, image.shape[0]), replace=False)
        for z in chosen:
            axis = int(rng.integers(0, 2))  # 0: along y, 1: along x
            ndimage.uniform_filter1d(image[z], self.kernel_size, axis=axis, output=out[z], mode="reflect")
        return out, label


class CutBlur(Transform):
    """Replace a random cuboid (``length_ratio`` of each side) by a blocky low-resolution copy.

    The cuboid is downsampled in y-x (and z with ``downsample_z``) by a factor
    ~ U(down_min, down_max), anti-aliased, then upsampled back by nearest neighbour.
    """

    def __init__(self, p=0.5, length_ratio=0.4, down_min=2.0, down_max=8.0, downsample_z=False):
        super().__init__(p)
        if not 0 < length_ratio <= 1 or not 1 <= down_min <= down_max:
            raise ValueError(
                f"CutBlur: need 0 < length_ratio <= 1 and 1 <= down_min <= down_max, "
                f"got {length_ratio!r}, {down_min!r}, {down_max!r}")
        self.length_ratio, self.down_min, self.down_max = float(length_ratio), float(down_min), float(down_max)
        self.downsample_z = bool(downsample_z)

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        box = random_box(image.shape, self.length_ratio, rng)
        block = image[box]
        factor = rng.uniform(self.down_min, self.down_max)
        small = [max(1, int(n / factor)) for n in block.shape]
        if not self.downsample_z:
            small[0] = block.shape[0]
        low = resize(block, small, order=1, anti_aliasing=True, preserve_range=True, mode="reflect")
        index = np.ix_(*[(np.arange(n) * s // n) for n, s in zip(block.shape, small)])
        out = image.copy()
        out[box] = np.clip(low[index], 0, 1)
        return out, label


class CutNoise(Transform):
    """Add uniform noise U(-scale, scale) to a random cuboid (``length_ratio`` of each side)."""

    def __init__(self, p=0.75, length_ratio=0.4, scale=0.3):
        super().__init__(p)
        if not 0 < length_ratio <= 1 or scale < 0:
            raise ValueError(f"CutNoise: need 0 < length_ratio <= 1 and scale >= 0, got {length_ratio!r}, {scale!r}")
        self.length_ratio, self.scale = float(length_ratio), float(scale)

    def __call__(self, image, label, rng):
        image, label = check_pair(image, label)
        box = random_box(image.shape, self.length_ratio, rng)
        out = image.copy()
        block = out[box]
        block += rng.uniform(-self.scale, self.scale, size=block.shape).astype(np.float32)
        np.clip(block, 0, 1, out=block)
        return out, label
