"""The image of a synthetic EM volume, painted from the geometry of :mod:`synthetic_shapes`.

Mid-grey cytoplasm split by thin dark cell membranes (a warped, weighted
Voronoi tessellation), small dark vesicles, dark mitochondria with light
cristae and a darker double-membrane rim; then blur, a slow intensity drift
across z/y/x, per-section brightness jitter, noise and, on request, missing and
misaligned sections. Images are float32 (Z, Y, X), about 0..1, until the caller
converts them to uint8.
"""
import logging

import numpy as np
from scipy import ndimage as ndi

from connectomics.data.synthetic_fields import resample_axis, smooth_field
from connectomics.data.synthetic_shapes import ANISOTROPY, SEED_MARGIN

logger = logging.getLogger(__name__)

MYELIN_SHEATH_GREY = (0.08, 0.2)  # grey range of a myelin sheath (the first myelin pretraining stage's)
MYELIN_RADIUS = (8.0, 22.0)  # outer y/x radius range of a myelinated axon (voxels), the same stage's
CELL_SIZE = 55.0  # typical cell diameter (y/x voxels) of the background tessellation
COARSE = 4  # y/x step of the grid on which the tessellation is computed


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
    # faces shared by touching instances get both membranes too: a dark band ~2 voxels deep per side
    face = _interfaces(canvas.label)
    beside = ndi.binary_dilation(face, np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool)) & inside
    np.minimum(depth, np.where(beside[inside], 1.3, np.inf).astype(np.float32), out=depth)
    depth[face[inside]] = 0.3
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


def _shift_sections(volume, dy, dx, pad):
    """(n, Y, X) sections moved by (dy, dx) voxels; the uncovered rim mirrors the sections."""
    padded = np.pad(volume, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    return padded[:, pad - dy:pad - dy + volume.shape[1], pad - dx:pad - dx + volume.shape[2]]


def _seed_cores(section, half_width=SEED_MARGIN):
    """Ids of a 2D label section where its (2h+1)^2 window is uniform (what a contour band leaves)."""
    size = 2 * half_width + 1
    uniform = ndi.minimum_filter(section, size) == ndi.maximum_filter(section, size)
    return np.where(uniform, section, 0)


def _shift_keeps_instances(below, above):
    """True if, across a misaligned plane, no two ids' seed cores stack and no id's cores part."""
    a, b = _seed_cores(below), _seed_cores(above)
    if np.any((a != b) & (a > 0) & (b > 0)):
        return False
    both = np.intersect1d(a[a > 0], b[b > 0])
    return np.isin(both, a[(a == b) & (a > 0)]).all()


def add_artefacts(image, label, rng, max_shift=4, tries=20):
    """In place: the sections from a random z on are shifted in y/x (image and label alike)
    by up to ``max_shift`` voxels, and 1 (2 if Z >= 32) other sections go near-black (image only).

    The plane and shift are redrawn (up to ``tries`` times) until the shift neither
    stacks two instances nor tears one apart for a per-section contour decoder.
    """
    depth = image.shape[0]
    for _ in range(tries):
        start = int(rng.integers(max(1, depth // 4), max(2, 3 * depth // 4)))
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, 2))
        moved = _shift_sections(label[start:start + 1], dy, dx, max_shift)[0]
        if (dy or dx) and _shift_keeps_instances(label[start - 1], moved):
            break
    for volume in (image, label):
        volume[start:] = _shift_sections(volume[start:], dy, dx, max_shift)
    n_missing = 2 if depth >= 32 else 1
    for z in rng.choice(np.arange(1, depth - 1), size=n_missing, replace=False):
        image[z] = rng.uniform(0.02, 0.08) + rng.normal(0.0, 0.02, image.shape[1:])
    logger.debug("artefacts: sections %d.. shifted by (%d, %d)", start, dy, dx)


def paint_myelin(image, label, rng, count, sheath_grey=MYELIN_SHEATH_GREY, radius_range=MYELIN_RADIUS):
    """Myelinated axons, hard negatives: in place, on background voxels only (``label`` == 0).

    Each axon is a long, gently bending tube (outer y/x radius in ``radius_range``, default 8-22 voxels) crossing the
    volume in a random direction: a section cuts it as a dark ring (across) or as a pair of
    long dark bands (along) - the structures a model learns to tell from mitochondria. The
    sheath (its outer 25-45%) has a grey drawn from ``sheath_grey`` (default very dark, 0.08-0.2;
    (0.15, 0.4) overlaps the mitochondria's matrix, as in SBEM stacks) with faint lamellae; the
    axoplasm inside is light. Labels are not changed: an axon is background.
    """
    from connectomics.data.synthetic_shapes import make_tube, random_axis, random_direction, tube_box, tube_fields

    shape = np.array(image.shape)
    for _ in range(int(count)):
        radius = rng.uniform(*radius_range)
        sheath = rng.uniform(0.25, 0.45)
        axis = random_axis(rng, 2.5 * float(shape[1:].max()), direction=random_direction(rng),
                           bend=rng.uniform(0.02, 0.08))
        tube = make_tube(rng, axis, radius, center=rng.uniform(0.2, 0.8, 3) * shape)
        box = tube_box(tube, tuple(shape))
        if box is None:
            continue
        lo, hi = box
        dnorm, _ = tube_fields(tube, lo, hi)
        view = tuple(slice(a, b) for a, b in zip(lo, hi))
        free = label[view] == 0
        ring = (dnorm >= 1.0 - sheath) & (dnorm <= 1.0) & free
        inside = (dnorm < 1.0 - sheath) & free
        region = image[view]
        lamellae = np.float32(0.03) * np.cos(np.float32(2 * np.pi * radius / 1.8) * dnorm[ring])
        region[ring] = np.float32(rng.uniform(*sheath_grey)) + lamellae
        axoplasm = np.float32(rng.uniform(0.62, 0.78))  # drawn even for an empty inside: the same random stream
        if inside.any():
            region[inside] = axoplasm + (region[inside] - region[inside].mean()) * 0.3


def paint_dense_bodies(image, label, rng, count):
    """Dense bodies (lysosomes, lipid droplets), hard negatives: in place, on background only.

    Each is a near-black (0.03-0.15), homogeneous ellipsoid of y/x radius 6-16 voxels (z radius
    a quarter of it, at least 1.5 sections) with a slightly lighter rim and no cristae: darker and
    plainer than a mitochondrion. Labels are not changed.
    """
    shape = np.array(image.shape)
    for _ in range(int(count)):
        ry = rng.uniform(6.0, 16.0)
        rx = ry * rng.uniform(0.7, 1.3)
        rz = max(1.5, ry / ANISOTROPY * rng.uniform(0.8, 1.2))
        center = rng.uniform(0.0, 1.0, 3) * shape
        grey = np.float32(rng.uniform(0.03, 0.15))
        lo = np.maximum(0, np.floor(center - (rz, ry, rx)).astype(int))
        hi = np.minimum(shape, np.ceil(center + (rz, ry, rx)).astype(int) + 1)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        d = np.sqrt(((zz - center[0]) / rz) ** 2 + ((yy - center[1]) / ry) ** 2 + ((xx - center[2]) / rx) ** 2)
        view = tuple(slice(a, b) for a, b in zip(lo, hi))
        body = (d <= 1.0) & (label[view] == 0)
        region = image[view]
        region[body] = grey + np.float32(0.08) * np.clip((d[body] - 0.75) / 0.25, 0.0, 1.0)
