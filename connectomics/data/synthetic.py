"""Synthetic EM volumes with mitochondria: image/label pairs to train and score without downloads.

The geometry (tubes, touching pairs) lives in :mod:`connectomics.data.synthetic_shapes`;
this module paints the image: mid-grey cytoplasm split by thin dark cell
membranes (a warped, weighted Voronoi tessellation), small dark vesicles, dark
mitochondria with light cristae and a darker double-membrane rim, then blur,
a slow intensity drift across z/y/x, per-section brightness jitter, noise and,
on request, missing and misaligned sections.

Voxels are anisotropic like MitoEM (30 x 8 x 8 nm): objects span about 3.75
times more voxels in y/x than in z. Every random draw comes from
``numpy.random.default_rng(seed)``, so a seed fixes the pair.
"""
import logging
import os

import numpy as np
from scipy import ndimage as ndi

from connectomics.data.preview import save_overlay_png, save_preview_png
from connectomics.data.synthetic_shapes import (
    ANISOTROPY, keep_largest_parts, mean_instance_size, pack_tubes, resample_axis, smooth_field)

logger = logging.getLogger(__name__)

__all__ = [
    "ensure_synthetic", "make_synthetic_pair", "save_overlay_png", "save_preview_png",
    "size_statistics", "write_synthetic_pair",
]

CELL_SIZE = 55.0  # typical cell diameter (y/x voxels) of the background tessellation
COARSE = 4  # y/x step of the grid on which the tessellation is computed


def make_synthetic_pair(shape=(48, 192, 192), seed=0, n_instances=None, touching_fraction=0.3,
                        noise=0.06, blur=1.0, artefacts=False, density=0.12, min_size=2000):
    """An EM-like image and its mitochondria instance labels.

    Args:
        shape: (Z, Y, X) of both volumes; each at least 8.
        seed: fixes every random draw (same seed, same arrays).
        n_instances: instances to place; None: ``density * Z*Y*X / mean size`` (at least 3).
            Crowded volumes may hold fewer.
        touching_fraction: share of the instances in touching pairs (two ids sharing a face).
        noise: standard deviation of the additive noise, in units of the full grey range.
        blur: Gaussian blur sigma in y/x voxels (z gets 0.3 of it).
        artefacts: add a misaligned block of sections and 1-2 missing (near-black) sections.
        density: target foreground fraction used when ``n_instances`` is None.
        min_size: instances smaller than this (voxels, e.g. clipped by the border) become
            background. The default is the evaluator's crumb size: smaller ground truth is
            ignored there, while a prediction of it would count as a false positive.

    Returns:
        image: uint8 (Z, Y, X); mitochondria dark, cytoplasm mid-grey.
        label: uint32 (Z, Y, X); 0 background, instances numbered 1..N without gaps.
        Sizes span the evaluator's small (< 5e3), medium and large (> 3e4) bins.
    """
    shape = _check_args(shape, touching_fraction, noise, blur, density)
    rng = np.random.default_rng(seed)
    if n_instances is None:
        n_instances = max(3, int(round(density * np.prod(shape) / mean_instance_size())))
    canvas = pack_tubes(shape, rng, int(n_instances), touching_fraction)
    keep_largest_parts(canvas.label, min_size)
    image = cell_background(shape, rng)
    paint_mitochondria(image, canvas, rng)
    image = finish_image(image, rng, noise, blur)
    label = canvas.label
    if artefacts:
        add_artefacts(image, label, rng)
    image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image, renumber(label)


def _check_args(shape, touching_fraction, noise, blur, density):
    shape = tuple(int(n) for n in np.ravel(shape))
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"synthetic volume shape must be (Z, Y, X) with every size >= 8, got {shape}")
    if not 0.0 <= touching_fraction <= 1.0:
        raise ValueError(f"touching_fraction must lie in [0, 1], got {touching_fraction}")
    if noise < 0 or blur < 0 or density <= 0:
        raise ValueError(f"noise and blur must be >= 0 and density > 0, got {noise}, {blur}, {density}")
    return shape


def renumber(label):
    """Ids made consecutive (1..N, 0 stays 0), same dtype uint32."""
    present = np.bincount(label.reshape(-1)) > 0
    present[0] = False
    lut = np.zeros(present.size, np.uint32)
    lut[present] = np.arange(1, int(present.sum()) + 1, dtype=np.uint32)
    return lut[label]


def _upsample_yx(coarse, shape):
    """Linear interpolation of a (Z, Yc, Xc) grid (nodes every COARSE voxels) to (Z, Y, X) float32."""
    out = coarse
    for axis in (2, 1):
        n, nc = shape[axis], coarse.shape[axis]
        pos = np.clip((np.arange(n) - (COARSE - 1) / 2.0) / COARSE, 0, nc - 1)
        weights = np.maximum(0.0, 1.0 - np.abs(pos[:, None] - np.arange(nc)[None, :])).astype(np.float32)
        out = resample_axis(out, weights, axis)
    return out


def _tessellation(shape, rng):
    """Cell walls on the coarse grid: distance to the nearest wall (y/x voxels), the wall's
    tilt towards the section plane (0 upright .. 1 lying in the section) and a per-cell grey offset.

    Cells are a multiplicatively weighted Voronoi diagram (curved walls) of a
    smoothly warped space, measured in physical units (z scaled by ANISOTROPY).
    """
    coarse = (shape[0], -(-shape[1] // COARSE), -(-shape[2] // COARSE))
    extent = np.array([shape[0] * ANISOTROPY, shape[1], shape[2]])
    n_cells = max(4, int(round(np.prod(extent + CELL_SIZE) / CELL_SIZE ** 3)))
    seeds = rng.uniform(0.0, 1.0, (n_cells, 3)) * (extent + CELL_SIZE) - CELL_SIZE / 2
    weights = rng.uniform(0.75, 1.3, n_cells).astype(np.float32)
    offsets = rng.normal(0.0, 0.035, n_cells).astype(np.float32)
    grid = np.meshgrid(np.arange(coarse[0]) * ANISOTROPY, np.arange(coarse[1]) * COARSE + (COARSE - 1) / 2.0,
                       np.arange(coarse[2]) * COARSE + (COARSE - 1) / 2.0, indexing="ij")
    coords = [(g + 7.0 * smooth_field(coarse, (4.0, 6.0, 6.0), rng)).astype(np.float32) for g in grid]
    best = np.full(coarse, np.inf, np.float32)
    second = np.full(coarse, np.inf, np.float32)
    owner = np.zeros(coarse, np.int32)
    for k in range(n_cells):
        d = ((coords[0] - seeds[k, 0]) ** 2 + (coords[1] - seeds[k, 1]) ** 2
             + (coords[2] - seeds[k, 2]) ** 2) / weights[k] ** 2
        closer = d < best
        np.copyto(second, np.where(closer, best, np.minimum(second, d)))
        np.copyto(owner, k, where=closer)
        np.minimum(best, d, out=best)
    wall = 0.5 * (np.sqrt(second) - np.sqrt(best)) * weights[owner]
    # one-sided z slopes: the larger one survives the kink of the distance at the wall itself
    step = np.abs(np.diff(wall, axis=0)) / ANISOTROPY
    tilt = np.zeros_like(wall)
    tilt[1:] = step
    np.maximum(tilt[:-1], step, out=tilt[:-1])
    return wall, np.minimum(tilt, 1.0), offsets[owner]


def cell_background(shape, rng, vesicles_per_voxel=1.0 / 2500):
    """Cytoplasm (about 0.65), thin dark membranes and small dark vesicles, float32 (Z, Y, X).

    A section integrates a wall over its thickness, so walls lying in the
    section plane are drawn wider and fainter (same integral).
    """
    wall, tilt, offset = (_upsample_yx(v, shape) for v in _tessellation(shape, rng))
    image = 0.66 + offset
    width = np.sqrt(0.6 ** 2 + (1.1 * tilt) ** 2)
    image -= (0.4 * 0.6) / width * np.exp(-0.5 * (wall / width) ** 2)
    # fine grain and vesicles share one Gaussian filter: white noise plus scaled deltas
    sigma = (0.5, 1.6, 1.6)
    peak = (2 * np.pi) ** 1.5 * np.prod(sigma)  # a unit delta's peak after filtering is 1 / peak
    grain = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.22)
    n_vesicles = rng.poisson(np.prod(shape) * vesicles_per_voxel)
    where = tuple(rng.integers(0, n, n_vesicles) for n in shape)
    grain[where] -= rng.uniform(0.1, 0.35, n_vesicles).astype(np.float32) * np.float32(peak)
    image += ndi.gaussian_filter(grain, sigma, mode="reflect")
    return image.astype(np.float32, copy=False)


def _interfaces(label):
    """Boolean (Z, Y, X): voxels with a 6-neighbour of another non-zero id (faces of touching pairs)."""
    out = np.zeros(label.shape, bool)
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        differ = (label[a] != label[b]) & (label[a] > 0) & (label[b] > 0)
        out[a] |= differ
        out[b] |= differ
    return out


def paint_mitochondria(image, canvas, rng):
    """Paint every labelled voxel of ``canvas`` into ``image`` (float32, in place).

    Dark matrix (0.26..0.38), light cristae across the long axis (bands of the
    arc length, bent by the distance to the axis), a dark outer and fainter
    inner membrane near the surface and on faces shared with a touching instance.
    """
    n_ids = len(canvas.radius)
    base = rng.uniform(0.26, 0.38, n_ids).astype(np.float32)
    period = rng.uniform(5.0, 9.0, n_ids).astype(np.float32)
    phase = rng.uniform(0.0, 2 * np.pi, n_ids).astype(np.float32)
    cristae = rng.uniform(0.1, 0.25, n_ids).astype(np.float32)
    inside = canvas.label > 0
    ids = canvas.label[inside]
    depth = (1.0 - canvas.dnorm[inside]) * np.asarray(canvas.radius, np.float32)[ids]
    np.maximum(depth, 0.0, out=depth)
    depth[_interfaces(canvas.label)[inside]] = 0.3
    band = np.cos(2 * np.pi * canvas.arc[inside] / period[ids] + phase[ids] + 2.5 * canvas.dnorm[inside] ** 2)
    band = np.clip((band - 0.3) / 0.7, 0.0, 1.0) ** 2 * np.clip((depth - 3.0) / 2.0, 0.0, 1.0)
    value = base[ids] + cristae[ids] * band
    value -= 0.2 * np.exp(-0.5 * ((depth - 0.6) / 0.7) ** 2) + 0.07 * np.exp(-0.5 * ((depth - 2.6) / 0.5) ** 2)
    image[inside] = value


def finish_image(image, rng, noise, blur):
    """Blur, slow drift across z/y/x, per-section brightness jitter and noise; float32 (Z, Y, X)."""
    shape = image.shape
    if noise > 0:  # part of the noise is added before the blur: EM noise is slightly correlated
        image += rng.standard_normal(shape, dtype=np.float32) * np.float32(1.2 * noise)
    if blur > 0:
        image = ndi.gaussian_filter(image, (0.3 * blur, blur, blur), mode="reflect")
    drift = 0.05 * smooth_field(shape, np.maximum(np.array(shape) / 2.0, 4.0), rng)
    for axis, slope in enumerate(rng.uniform(-0.1, 0.1, 3)):
        ramp = np.linspace(-slope, slope, shape[axis], dtype=np.float32)
        drift += ramp.reshape([-1 if k == axis else 1 for k in range(3)])
    drift += rng.normal(0.0, 0.015, shape[0]).astype(np.float32)[:, None, None]
    image *= 1.0 + drift
    if noise > 0:
        image += rng.standard_normal(shape, dtype=np.float32) * np.float32(noise)
    return image


def add_artefacts(image, label, rng, max_shift=4):
    """In place: the sections from a random z on are shifted in y/x (image and label alike)
    by up to ``max_shift`` voxels, and 1 (2 if Z >= 32) other sections go near-black (image only)."""
    depth = image.shape[0]
    start = int(rng.integers(depth // 4, max(depth // 4 + 1, 3 * depth // 4)))
    dy, dx = 0, 0
    while dy == 0 and dx == 0:
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, 2))
    for volume in (image, label):
        pad = np.pad(volume[start:], ((0, 0), (max_shift, max_shift), (max_shift, max_shift)), mode="reflect")
        volume[start:] = pad[:, max_shift - dy:max_shift - dy + volume.shape[1],
                             max_shift - dx:max_shift - dx + volume.shape[2]]
    n_missing = 2 if depth >= 32 else 1
    for z in rng.choice(np.arange(1, depth - 1), size=n_missing, replace=False):
        image[z] = rng.uniform(0.02, 0.08) + rng.normal(0.0, 0.02, image.shape[1:])
    logger.debug("artefacts: sections %d.. shifted by (%d, %d)", start, dy, dx)


def size_statistics(label, area_thresholds=(5e3, 3e4)):
    """Instance count, size-bin counts and foreground fraction of a label volume.

    Returns a dict: n_instances, small (< thresholds[0] voxels), medium, large
    (> thresholds[1]), min / median / max size (voxels), foreground (fraction).
    """
    sizes = np.bincount(np.asarray(label).reshape(-1))[1:]
    sizes = sizes[sizes > 0]
    low, high = area_thresholds
    return {
        "n_instances": int(sizes.size),
        "small": int(np.sum(sizes < low)),
        "medium": int(np.sum((sizes >= low) & (sizes <= high))),
        "large": int(np.sum(sizes > high)),
        "min": int(sizes.min()) if sizes.size else 0,
        "median": float(np.median(sizes)) if sizes.size else 0.0,
        "max": int(sizes.max()) if sizes.size else 0,
        "foreground": float(sizes.sum() / max(1, np.asarray(label).size)),
    }


SEED_ATTRIBUTE = "synthetic_seed"  # HDF5 attribute marking a dataset this module wrote


def write_synthetic_pair(image_spec, label_spec, shape, seed, png=None, **kwargs):
    """Generate a pair and write it: ``image_spec`` / ``label_spec`` are ``file.h5[:key]`` (key default 'main').

    Each write is atomic (:func:`connectomics.data.io.write_volume`); image and
    label may be two keys of one file. ``label_spec`` may be empty (image only).
    The datasets get an HDF5 attribute ``synthetic_seed``. ``png``: also write a
    preview PNG there. ``kwargs`` go to :func:`make_synthetic_pair`.
    Returns :func:`size_statistics` of the label.
    """
    from connectomics.data.io import H5_EXTENSIONS, parse_spec, write_volume

    for spec in (image_spec, label_spec):
        if spec and not parse_spec(spec)[0].lower().endswith(H5_EXTENSIONS):
            raise ValueError(f"synthetic volumes are written as HDF5: {spec} must name a .h5 file")
    image, label = make_synthetic_pair(shape, seed, **kwargs)
    for spec, volume in ((image_spec, image), (label_spec, label)):
        if spec:
            write_volume(spec, volume)
            _mark_synthetic(spec, seed)
    if png:
        save_preview_png(image, label, png)
    return size_statistics(label)


def _mark_synthetic(spec, seed):
    import h5py

    from connectomics.data.io import parse_spec

    path, key = parse_spec(spec)
    with h5py.File(path, "a") as f:
        f[key or "main"].attrs[SEED_ATTRIBUTE] = int(seed)


def _dataset_state(spec):
    """'missing', 'synthetic' (written by this module) or 'user' for the volume ``spec``."""
    import h5py

    from connectomics.data.io import H5_EXTENSIONS, parse_spec

    path, key = parse_spec(spec)
    if not os.path.exists(path):
        return "missing"
    if not path.lower().endswith(H5_EXTENSIONS):
        return "user"
    with h5py.File(path, "r") as f:
        if key is None:
            names = list(f.keys())
            key = "main" if "main" in f or not names else names[0]
        if key not in f:
            return "missing"
        return "synthetic" if SEED_ATTRIBUTE in f[key].attrs else "user"


def synthetic_jobs(cfg):
    """(image_spec, label_spec, seed, config keys) of every volume pair the config names.

    Training volumes use ``SYNTHETIC.SEED``, validation ``SEED + 1``, inference
    ``SEED + 2``; the j-th of several '@'-joined volumes adds ``3 * j``.
    """
    from connectomics.config import split_names

    groups = (("DATASET", "IMAGE_NAME", "DATASET", "LABEL_NAME", 0),
              ("DATASET", "VAL_IMAGE_NAME", "DATASET", "VAL_LABEL_NAME", 1),
              ("INFERENCE", "IMAGE_NAME", "EVAL", "GT_NAME", 2))
    jobs = []
    for sec_i, key_i, sec_l, key_l, offset in groups:
        images, labels = split_names(cfg[sec_i][key_i]), split_names(cfg[sec_l][key_l])
        keys = f"{sec_i}.{key_i} / {sec_l}.{key_l}"
        if labels and len(labels) != len(images):
            raise ValueError(f"config keys {keys}: {len(images)} image(s) but {len(labels)} label(s); "
                             "synthetic data needs one label per image")
        for j, image in enumerate(images):
            jobs.append((image, labels[j] if labels else "", cfg.DATASET.SYNTHETIC.SEED + offset + 3 * j, keys))
    return jobs


def ensure_synthetic(cfg):
    """Write the synthetic volumes a config names but that do not exist yet.

    Only when ``cfg.DATASET.SYNTHETIC.ENABLED``. For each pair of
    (DATASET.IMAGE_NAME, DATASET.LABEL_NAME), (DATASET.VAL_IMAGE_NAME,
    DATASET.VAL_LABEL_NAME) and (INFERENCE.IMAGE_NAME, EVAL.GT_NAME) (paths
    already absolute) whose image or label is missing, a pair of shape
    ``SYNTHETIC.SHAPE`` is generated and both are written; an empty label name
    means image only, an empty image name skips the pair. A pair is never
    regenerated over a volume this module did not write: that raises
    FileExistsError naming it. Returns the list of specs written.
    """
    syn = cfg.DATASET.SYNTHETIC
    if not syn.ENABLED:
        return []
    written = []
    for image_spec, label_spec, seed, keys in synthetic_jobs(cfg):
        specs = [s for s in (image_spec, label_spec) if s]
        states = {spec: _dataset_state(spec) for spec in specs}
        if "missing" not in states.values():
            continue
        users = [spec for spec, state in states.items() if state == "user"]
        if users:
            raise FileExistsError(
                f"config keys {keys}: {', '.join(users)} exists but its partner is missing; synthetic "
                "data (DATASET.SYNTHETIC.ENABLED) would overwrite it: name both or neither")
        stats = write_synthetic_pair(image_spec, label_spec, tuple(syn.SHAPE), seed)
        logger.info("synthetic data for %s: wrote %s (shape %s, seed %d): %d instances "
                    "(%d small, %d medium, %d large), foreground %.1f%%", keys, " and ".join(specs),
                    tuple(syn.SHAPE), seed, stats["n_instances"], stats["small"], stats["medium"],
                    stats["large"], 100 * stats["foreground"])
        written.extend(specs)
    return written
