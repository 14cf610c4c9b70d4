"""Synthetic GT / prediction label pairs with known error types, for tests and the benchmark.

Ground truth: anisotropic ellipsoids (short in z, like mitochondria at 30 x 8 x 8 nm voxels)
with random, non-consecutive ids. The prediction copies each GT instance with one of these
errors: exact copy, shifted, eroded, dilated, split in two along x, merged with a touching
neighbour GT instance (one id over both), or missed; plus false-positive blobs and GT "crumbs"
(instances smaller than the crumb size) that a prediction covers.
"""
import numpy as np

ERRORS = ("copy", "shift", "erode", "dilate", "split", "merge", "miss")
DEFAULT_ERRORS = {"copy": 0.3, "shift": 0.2, "erode": 0.1, "dilate": 0.1, "split": 0.1, "merge": 0.1,
                  "miss": 0.1}


def _ellipsoid(center, radii, shape):
    """Bounding-box slices and boolean mask of an ellipsoid clipped to ``shape``."""
    lo = [max(0, int(c - r)) for c, r in zip(center, radii)]
    hi = [min(s, int(c + r) + 1) for c, r, s in zip(center, radii, shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return None, None
    grids = np.ogrid[tuple(slice(l, h) for l, h in zip(lo, hi))]
    dist = sum(((g - c) / max(r, 0.5)) ** 2 for g, c, r in zip(grids, center, radii))
    return tuple(slice(l, h) for l, h in zip(lo, hi)), dist <= 1.0


def _paint(volume, center, radii, label, overwrite=False, half=None):
    box, mask = _ellipsoid(center, radii, volume.shape)
    if box is None:
        return
    if half is not None:  # keep one side of the plane x = center[2]
        xs = np.arange(box[2].start, box[2].stop)[None, None, :]
        mask = mask & ((xs < center[2]) if half == 0 else (xs >= center[2]))
    region = volume[box]
    region[mask if overwrite else mask & (region == 0)] = label


def _unique_ids(rng, n, high):
    """``n`` distinct random ids in [1, high), shuffled."""
    if high - 1 < n:
        raise ValueError(f"cannot draw {n} distinct ids below {high}")
    if high < 4 * n + 64:
        return rng.permutation(np.arange(1, high, dtype=np.int64))[:n]
    ids = np.unique(rng.integers(1, high, size=2 * n + 16, dtype=np.int64))
    return rng.permutation(ids)[:n]


def make_label_pair(shape, n_instances, rng, radius_z=(2, 6), radius_xy=(6, 24), n_false=None,
                    n_crumbs=None, dtype=np.uint32, max_id=2**31 - 1, errors=None):
    """A (gt, pred) pair of (Z, Y, X) label volumes of ``dtype`` (0 = background).

    Args:
        shape: (Z, Y, X).
        n_instances: GT instances (ellipsoids; later ones do not overwrite earlier ones). A
            "merge" adds a second GT instance touching the first, both under one predicted id.
        rng: ``numpy.random.Generator``.
        radius_z, radius_xy: (low, high) radii in voxels, drawn uniformly.
        n_false: false-positive prediction blobs (default ``n_instances // 10``).
        n_crumbs: tiny GT blobs, each covered by a prediction (default ``n_instances // 20``).
        max_id: ids are drawn without replacement from [1, max_id).
        errors: {error type: probability} (see ``ERRORS``; default ``DEFAULT_ERRORS``).
    """
    errors = DEFAULT_ERRORS if errors is None else errors
    n_false = n_instances // 10 if n_false is None else n_false
    n_crumbs = n_instances // 20 if n_crumbs is None else n_crumbs
    gt = np.zeros(shape, dtype)
    pred = np.zeros(shape, dtype)
    n_blobs = n_instances + n_crumbs + n_false
    gt_ids = iter(_unique_ids(rng, 2 * n_instances + n_crumbs, max_id).tolist())
    pred_ids = iter(_unique_ids(rng, 2 * n_instances + n_crumbs + n_false, max_id).tolist())
    centers = rng.uniform(0, 1, (n_blobs, 3)) * np.array(shape)
    radii = np.column_stack([rng.uniform(*radius_z, n_blobs), rng.uniform(*radius_xy, n_blobs),
                             rng.uniform(*radius_xy, n_blobs)])
    weights = np.array(list(errors.values()), float)
    kinds = rng.choice(list(errors), size=n_instances, p=weights / weights.sum())
    for k in range(n_instances):
        _paint_instance(gt, pred, kinds[k], centers[k], radii[k], gt_ids, pred_ids, rng)
    for k in range(n_instances, n_instances + n_crumbs):  # crumbs: small GT blobs, exactly predicted
        rad = np.array([1.0, 3.0, 3.0])
        _paint(gt, centers[k], rad, next(gt_ids))
        _paint(pred, centers[k], rad, next(pred_ids))
    for k in range(n_instances + n_crumbs, n_blobs):
        _paint(pred, centers[k], radii[k], next(pred_ids))
    return gt, pred


def _paint_instance(gt, pred, kind, center, rad, gt_ids, pred_ids, rng):
    """Paint one GT instance and its prediction with error ``kind``."""
    _paint(gt, center, rad, next(gt_ids))
    if kind == "miss":
        return
    label = next(pred_ids)
    if kind == "shift":
        _paint(pred, center + rng.uniform(-1, 1, 3) * np.array([0.5, 1, 1]), rad, label)
    elif kind == "erode":
        _paint(pred, center, rad * 0.8, label)
    elif kind == "dilate":
        _paint(pred, center, rad * 1.15, label)
    elif kind == "split":
        _paint(pred, center, rad, label, half=0)
        _paint(pred, center, rad, next(pred_ids), half=1)
    elif kind == "merge":  # a touching neighbour along x, predicted together
        other = rad * rng.uniform(0.6, 1.0, 3)
        beside = center + np.array([0.0, 0.0, rad[2] + other[2]])
        _paint(gt, beside, other, next(gt_ids))
        _paint(pred, center, rad, label)
        _paint(pred, beside, other, label)
    else:
        _paint(pred, center, rad, label)
