"""Random training windows from one or more volumes.

A sample is drawn by a generator seeded from ``(seed, sample_index)``: the
stream of samples depends only on the seed and the global sample index, not on
the number of loader workers, so a resumed run sees exactly the samples an
uninterrupted run would have seen. No permutation of the whole volume is built.
"""
import logging

import numpy as np

from connectomics.storage import VolumeError

logger = logging.getLogger(__name__)


def sample_rng(seed, index):
    """The generator of sample ``index``: independent streams per (seed, index)."""
    return np.random.default_rng([int(seed), int(index)])


class WindowSampler:
    """Draws aligned (image, label) windows of ``sample_size`` from padded volumes.

    Args:
        images: list of (Z, Y, X) uint8 arrays (already mirror-padded).
        labels: list of (Z, Y, X) integer arrays, same shapes as ``images``.
        sample_size: (z, y, x) window read before augmentation.
        masks: optional list of (Z, Y, X) bool/uint8 arrays, 1 = labelled voxel.
        reject_size: a window needs more than this many foreground voxels (-1: off).
        reject_p: probability of rejecting a window at or under ``reject_size``.
        invalid_fraction, invalid_trials: with ``masks``, windows with a larger
            fraction of unlabelled voxels are redrawn, at most ``invalid_trials`` times.
    """

    def __init__(self, images, labels, sample_size, masks=None, reject_size=-1, reject_p=0.95,
                 invalid_fraction=0.0, invalid_trials=0):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        for i, (im, lb) in enumerate(zip(images, labels)):
            if im.shape != lb.shape:
                raise ValueError(f"volume {i}: image shape {im.shape} != label shape {lb.shape}")
            if any(s < w for s, w in zip(im.shape, sample_size)):
                raise VolumeError(
                    f"volume {i} of shape {im.shape} is smaller than the sampled window {tuple(sample_size)}; "
                    "increase DATASET.PAD_SIZE or reduce MODEL.INPUT_SIZE / the augmentations")
        self.images, self.labels, self.masks = images, labels, masks
        self.sample_size = tuple(int(s) for s in sample_size)
        self.reject_size, self.reject_p = reject_size, reject_p
        self.invalid_fraction, self.invalid_trials = invalid_fraction, invalid_trials
        sizes = np.array([im.size for im in images], dtype=np.float64)
        self.volume_p = sizes / sizes.sum()

    def _draw(self, rng):
        vid = int(rng.choice(len(self.images), p=self.volume_p))
        shape = self.images[vid].shape
        corner = [int(rng.integers(0, s - w + 1)) for s, w in zip(shape, self.sample_size)]
        box = tuple(slice(c, c + w) for c, w in zip(corner, self.sample_size))
        return vid, box

    def _acceptable(self, vid, box, rng):
        if self.masks is not None and self.invalid_trials > 0:
            invalid = 1.0 - float(np.count_nonzero(self.masks[vid][box])) / np.prod(self.sample_size)
            if invalid > self.invalid_fraction:
                return False
        if self.reject_size >= 0:
            if np.count_nonzero(self.labels[vid][box]) <= self.reject_size:
                return rng.random() >= self.reject_p
        return True

    def sample(self, rng, max_trials=50):
        """One window: ``(image uint8 (Z,Y,X), label (Z,Y,X), volume index, box)``."""
        for _ in range(max(max_trials, self.invalid_trials + 1)):
            vid, box = self._draw(rng)
            if self._acceptable(vid, box, rng):
                break
        return self.images[vid][box], self.labels[vid][box], vid, box
