"""Look at augmented samples: a training crop (or a synthetic pair) through a Compose, drawn to PNG.

Used by ``scripts/show_augmentation.py``. The training volume is read as
stored: DATA_SCALE, PAD_SIZE and LABEL_EROSION are not applied here.
"""
import logging
import os
import textwrap

import numpy as np

logger = logging.getLogger(__name__)


def synthetic_pair(shape, rng, n_objects=None):
    """Dark ellipsoids on grey with noise: (uint8 image, uint32 label) of ``shape`` (Z, Y, X).

    ``n_objects`` defaults to about one per 60 x 60 pixels of slice area.
    """
    n_objects = n_objects or max(4, shape[1] * shape[2] // 3600)
    z, y, x = (np.arange(n, dtype=np.float32) for n in shape)
    label = np.zeros(shape, np.uint32)
    for obj in range(1, n_objects + 1):
        centre = rng.uniform(0, 1, 3) * shape
        radii = np.array([max(2.0, shape[0] / 4), *rng.uniform(0.04, 0.12, 2) * min(shape[1:])])
        inside = (((z[:, None, None] - centre[0]) / radii[0]) ** 2
                  + ((y[None, :, None] - centre[1]) / radii[1]) ** 2
                  + ((x[None, None, :] - centre[2]) / radii[2]) ** 2) < 1
        label[inside] = obj
    image = 150 - 80 * (label > 0) + rng.normal(0, 12, shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _padded_crop(volume, corner, size):
    """``volume[corner:corner+size]``, mirror-padded where the volume is smaller than ``size``."""
    box = tuple(slice(c, c + min(s, n)) for c, s, n in zip(corner, size, volume.shape))
    crop = np.asarray(volume[box])
    pad = [(0, s - c) for s, c in zip(size, crop.shape)]
    return np.pad(crop, pad, mode="symmetric") if any(p[1] for p in pad) else crop


def training_pair(image_spec, label_spec, size, rng):
    """A random ``size`` crop of a training image / label (image scaled to float32 [0, 1])."""
    from connectomics.storage import open_volume

    with open_volume(image_spec) as image_vol, open_volume(label_spec) as label_vol:
        if tuple(image_vol.shape) != tuple(label_vol.shape):
            raise ValueError(f"{image_spec} has shape {image_vol.shape} but {label_spec} has {label_vol.shape}")
        corner = [int(rng.integers(0, max(n - s, 0) + 1)) for n, s in zip(image_vol.shape, size)]
        image = _padded_crop(image_vol, corner, size)
        label = _padded_crop(label_vol, corner, size)
    if np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / 255.0
    return np.clip(image, 0, 1).astype(np.float32), label.astype(np.uint32)


def _overlay(image, label):
    """RGB (Y, X, 3) float: grey image with each id in its own colour at 40 %."""
    rgb = np.repeat(image[..., None], 3, axis=2).astype(np.float32)
    ids = label.astype(np.int64)
    palette = np.random.default_rng(0).uniform(0.2, 1.0, (256, 3)).astype(np.float32)
    colours = palette[ids % 256]
    mask = (ids > 0)[..., None]
    return np.where(mask, 0.6 * rgb + 0.4 * colours, rgb)


def render_samples(samples, path, title=""):
    """Write a PNG: one row per (image, label) sample, its middle z slice, image | overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from connectomics.utils.plots import save_figure

    fig, axes = plt.subplots(len(samples), 2, figsize=(6, 3 * len(samples)), squeeze=False)
    for row, (image, label) in enumerate(samples):
        z = image.shape[0] // 2
        axes[row, 0].imshow(image[z], cmap="gray", vmin=0, vmax=1)
        axes[row, 1].imshow(_overlay(image[z], label[z]))
        axes[row, 0].set_title(f"sample {row}: image (z={z})", fontsize=8)
        axes[row, 1].set_title(f"label overlay ({len(np.unique(label[z])) - 1} ids)", fontsize=8)
        for ax in axes[row]:
            ax.axis("off")
    if title:
        fig.suptitle(textwrap.fill(title, 90), fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    logger.info("wrote %d augmented samples to %s", len(samples), path)
    return path
