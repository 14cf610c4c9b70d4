"""Synthetic instances and probability maps for the post-processing tests and benchmark.

Random ellipsoids stand in for mitochondria; the maps mimic a network's
output: a blurred foreground, a blurred contour band along every instance
border, and noise. Small, deterministic given the RNG, no files needed.
"""
import numpy as np
from scipy import ndimage as ndi


def random_ellipsoids(shape, n_objects, rng, radius_yx=(10, 32), radius_z=(4, 12)):
    """Paint ``n_objects`` randomly rotated (in-plane) ellipsoids; later ones overwrite earlier.

    Returns (Z, Y, X) uint32 labels, 0 = background, ids 1..n_objects (an id
    may be missing or split when others overwrite it; overlaps make touching
    instances).
    """
    labels = np.zeros(shape, np.uint32)
    shape = np.asarray(shape)
    for label in range(1, n_objects + 1):
        centre = rng.uniform(0, 1, 3) * shape
        radii = np.array([rng.uniform(*radius_z), rng.uniform(*radius_yx), rng.uniform(*radius_yx)])
        angle = rng.uniform(0, np.pi)
        lo = np.maximum(np.floor(centre - radii).astype(int), 0)
        hi = np.minimum(np.ceil(centre + radii).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        dz, dy, dx = z - centre[0], y - centre[1], x - centre[2]
        u = np.cos(angle) * dy + np.sin(angle) * dx
        v = -np.sin(angle) * dy + np.cos(angle) * dx
        inside = (dz / radii[0]) ** 2 + (u / radii[1]) ** 2 + (v / radii[2]) ** 2 <= 1
        labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][inside] = label
    return labels


def instance_borders(labels, half_width=1):
    """(Z, Y, X) bool: voxels within ``half_width`` in-plane (1 in z) of a change of label."""
    size = (3, 2 * half_width + 1, 2 * half_width + 1)
    border = np.empty(labels.shape, bool)
    for z in range(labels.shape[0]):  # per slice (with its z neighbours): bounded temporaries
        lo, hi = max(z - 1, 0), min(z + 2, labels.shape[0])
        block = labels[lo:hi]
        change = ndi.maximum_filter(block, size, mode="nearest") != ndi.minimum_filter(block, size, mode="nearest")
        border[z] = change[z - lo]
    return border


def maps_from_labels(labels, rng, sigma=(0.5, 1.0, 1.0), contour_sigma=(0.5, 0.7, 0.7), noise=0.04,
                     contour_width=2):
    """(2, Z, Y, X) uint8 maps: channel 0 foreground, channel 1 instance contour.

    Each channel is its blurred binary target (the contour target is the band
    of ``contour_width`` voxels, in-plane, around every change of label) plus
    Gaussian noise, clipped to [0, 1] and stored as ``floor(255 * p)``.
    """
    maps = np.empty((2,) + labels.shape, np.uint8)
    targets = ((labels > 0, sigma), (instance_borders(labels, contour_width), contour_sigma))
    for channel, (target, blur) in enumerate(targets):
        p = ndi.gaussian_filter(target.astype(np.float32), blur)
        p += noise * rng.standard_normal(p.shape, dtype=np.float32)
        np.clip(p, 0, 1, out=p)
        p *= 255
        maps[channel] = p.astype(np.uint8)
    return maps


def touching_pair(shape=(12, 40, 60)):
    """Two boxes that share a face in x, as labels 1 and 2 (a small exact fixture)."""
    labels = np.zeros(shape, np.uint32)
    z, y, x = shape
    labels[2:z - 2, 8:y - 8, 6:x // 2] = 1
    labels[2:z - 2, 8:y - 8, x // 2:x - 6] = 2
    return labels


def label_agreement(labels, reference):
    """Fraction of foreground voxels (either volume > 0) whose ids agree after id matching.

    Each id of ``labels`` is matched to the nonzero ``reference`` id it overlaps
    most, so a consistent renumbering scores 1.0; voxels that are background in
    one volume only never agree.
    """
    import fastremap

    union = (labels > 0) | (reference > 0)
    if not union.any():
        return 1.0
    keys = (labels[union].astype(np.uint64) << np.uint64(32)) | reference[union].astype(np.uint64)
    pairs, counts = fastremap.unique(keys, return_counts=True)
    own, ref = pairs >> np.uint64(32), pairs & np.uint64(0xFFFFFFFF)
    both = (own != 0) & (ref != 0)  # each own id maps to its largest nonzero overlap
    own, counts = own[both], counts[both].astype(np.int64)
    order = np.lexsort((-counts, own))
    first = np.ones(len(order), bool)
    first[1:] = own[order][1:] != own[order][:-1]
    return float(counts[order][first].sum()) / float(union.sum())


def skimage_bc_watershed(probs, seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85,
                         min_size=128, seed_connectivity=26, connectivity=6):
    """The bc_watershed decode composed from scikit-image (the predecessor's way): the oracle/baseline.

    ``measure.label`` of the seeds (default: its full connectivity, 26, as the
    predecessor called it), ``segmentation.watershed`` of the inverted
    foreground within the mask (default: its 6-connectivity),
    ``morphology.remove_small_objects``. Returns int32 labels (not relabelled).
    """
    from skimage import measure, segmentation

    fg, contour = probs[0], probs[1]
    seeds = (fg > int(255 * seed_threshold)) & (contour < int(255 * contour_threshold))
    markers = measure.label(seeds, connectivity=3 if seed_connectivity == 26 else 1)
    del seeds
    labels = segmentation.watershed(255 - fg, markers, mask=fg > int(255 * foreground_threshold),
                                    connectivity=3 if connectivity == 26 else 1)
    del markers
    return _remove_small_objects(labels, min_size)


def _remove_small_objects(labels, min_size):
    """``skimage.morphology.remove_small_objects`` removing sizes < min_size (API changed in 0.26)."""
    from skimage import morphology

    try:
        return morphology.remove_small_objects(labels, max_size=min_size - 1)
    except TypeError:  # scikit-image < 0.26
        return morphology.remove_small_objects(labels, min_size=min_size)
