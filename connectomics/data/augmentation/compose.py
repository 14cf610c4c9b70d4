"""Compose: read an enlarged sample, augment it, crop it to the network input.

Data flow for one sample (each transform fires with its own probability)::

    sample_size (z + section z-margin, warp input y, x)
      -> warp: Rotate / Rescale / Elastic fused into ONE resampling of the
         output grid (z, y + d, x + d); the identity map is a centre crop
      -> section: Misalignment (y, x shrink by d), MissingSection (z shrinks)
      -> crop to input_size (y-x centre, z random)
      -> intensity: image-only transforms (on the small crop)
      -> flip / transpose -> label edge smoothing

``sample_size`` reserves the worst-case margin of every enabled transform,
so no transform ever reads outside the sample (no zero-filled borders).
"""
import numpy as np

from connectomics.data.augmentation.base import center_slices, check_pair
from connectomics.data.augmentation.geometric import Elastic, Rescale, Rotate, warp, warp_source_size
from connectomics.data.augmentation.smooth import smooth_label_edges

_STAGES = ("warp", "section", "intensity", "flip")


class Compose:
    """Apply ``transforms`` to (image, label) and crop to ``input_size`` (z, y, x).

    Within a stage transforms run in list order. ``smooth`` runs the label
    edge smoothing at the end. Call as ``compose(image, label, rng)`` with
    image float32 (Z, Y, X) in [0, 1] (or uint8, read as value / 255, which
    spares converting the whole enlarged sample) and label integer (Z, Y, X),
    both of ``sample_size``; returns image float32 in [0, 1] and label (same
    dtype) of ``input_size``, aligned, label ids a subset of the input's,
    C-contiguous.
    """

    def __init__(self, transforms, input_size, smooth=True):
        self.input_size = tuple(int(s) for s in input_size)
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(f"Compose: input_size must be three positive integers (z, y, x), got {input_size!r}")
        self.transforms = list(transforms)
        for t in self.transforms:
            if getattr(t, "stage", None) not in _STAGES:
                raise TypeError(f"Compose: {t!r} is not an augmentation Transform")
        self.smooth = bool(smooth)
        self.stages = {s: [t for t in self.transforms if t.stage == s] for s in _STAGES}
        margin = np.sum([t.margin() for t in self.stages["section"]] or [[0, 0, 0]], axis=0)
        self.warp_size = tuple(int(a + m) for a, m in zip(self.input_size, margin))
        self.sample_size = (self.warp_size[0], *self._warp_source(self.warp_size[1:]))

    def _warp_source(self, out_yx):
        warps = self.stages["warp"]
        rotate = any(isinstance(t, Rotate) for t in warps)
        scale = min([t.low for t in warps if isinstance(t, Rescale)] or [1.0])
        shift = sum(t.alpha for t in warps if isinstance(t, Elastic))
        unknown = [t for t in warps if not isinstance(t, (Rotate, Rescale, Elastic))]
        if unknown:
            raise TypeError(f"Compose: no margin rule for warp transform(s) {unknown}")
        return warp_source_size(out_yx, rotate=rotate, min_scale=scale, max_shift=shift)

    def __repr__(self):
        names = ", ".join(type(t).__name__ for t in self.transforms)
        return (f"Compose([{names}], input_size={self.input_size}, sample_size={self.sample_size}, "
                f"smooth={self.smooth})")

    def _warp(self, image, label, rng):
        matrix, field = np.eye(2), None
        for t in self.stages["warp"]:
            if rng.random() < t.p:
                m, d = t.draw(rng, self.warp_size[1:])
                if m is not None:
                    matrix = matrix @ m
                if d is not None:
                    field = d if field is None else field + d
        if field is None and np.array_equal(matrix, np.eye(2)):
            crop = center_slices(image.shape, self.warp_size)
            if image.dtype == np.uint8:
                return image[crop] * np.float32(1 / 255), label[crop]
            return image[crop], label[crop]
        return warp(image, label, matrix, field, self.warp_size[1:])

    def _crop(self, image, label, rng):
        z = image.shape[0] - self.input_size[0]
        z0 = int(rng.integers(0, z + 1))
        yx = center_slices(image.shape[1:], self.input_size[1:])
        box = (slice(z0, z0 + self.input_size[0]), *yx)
        return image[box], label[box]

    def __call__(self, image, label, rng):
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Compose: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        image, label = check_pair(image, label, keep_uint8=True)
        if image.shape != self.sample_size:
            raise ValueError(
                f"Compose: expected image and label of sample_size {self.sample_size} "
                f"(input_size {self.input_size} plus augmentation margins), got {image.shape}")
        image, label = self._warp(image, label, rng)
        for t in self.stages["section"]:
            if rng.random() < t.p:
                image, label = t(image, label, rng)
        image, label = self._crop(image, label, rng)
        for t in self.stages["intensity"] + self.stages["flip"]:
            if rng.random() < t.p:
                image, label = t(image, label, rng)
        if self.smooth:
            label = smooth_label_edges(label)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
