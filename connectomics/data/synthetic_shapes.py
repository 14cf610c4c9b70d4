"""Geometry of synthetic mitochondria: smooth random tubes packed into a volume.

Each instance is a tube around a random smooth curve (a capsule when the curve
is short). Distances are measured in *metric* coordinates ``(z * s, y, x)``
where the tube is round with radius ``r`` (y/x voxels); in voxels it is
``r`` wide in y/x and ``r / s`` thick in z, with ``s = min(ANISOTROPY, r / 2)``
so that no instance is thinner than 2 sections. A voxel belongs to the tube
when its normalised distance ``distance / radius`` (plus a smooth wobble that
roughens the outline) is below 1.

Touching pairs are made by placing a second tube that overlaps the first
(end to end, or side by side along it) and giving each shared voxel to the
tube it is deeper inside: the two instances share a face, with no background
between them.
"""
from dataclasses import dataclass

import numpy as np

ANISOTROPY = 30.0 / 8.0  # MitoEM voxel size (z, y, x) = (30, 8, 8) nm
# size class: (share of the instances, voxel-count range, y/x radius range)
SIZE_CLASSES = {
    "large": (0.17, (34000.0, 80000.0), (12.0, 22.0)),
    "medium": (0.38, (6500.0, 26000.0), (8.0, 16.0)),
    "small": (0.45, (2300.0, 4700.0), (5.0, 10.0)),
}
STEP = 4.0  # curve sampling step (metric voxels)
GAP = 3.0  # minimum background gap between instances that do not touch (y/x voxels)


@dataclass
class Tube:
    """A tube in voxel coordinates: ``points`` (n, 3) float (z, y, x), ``radii`` (n,) y/x voxels."""

    points: np.ndarray
    radii: np.ndarray
    zscale: float  # s: metric z = voxel z * s


@dataclass
class Canvas:
    """The label volume being filled and, per labelled voxel, where it lies in its tube.

    ``label`` uint32 (Z, Y, X), 0 = background; ``dnorm`` float32 normalised
    distance to the owner's axis (0 on the axis, 1 on the surface); ``arc``
    float32 arc length (y/x voxels) of the nearest axis point; ``radius`` the
    y/x radius of each id (index 0 unused).
    """

    label: np.ndarray
    dnorm: np.ndarray
    arc: np.ndarray
    radius: list

    @classmethod
    def empty(cls, shape):
        return cls(np.zeros(shape, np.uint32), np.ones(shape, np.float32), np.zeros(shape, np.float32), [0.0])


def zscale_for(radius):
    """Metric z scale of a tube of y/x ``radius``: physical, but at least 2 sections thick."""
    return float(min(ANISOTROPY, max(1.0, radius / 2.0)))


def tube_size(radius, length):
    """Voxel count of a capsule with y/x ``radius`` and axis ``length`` (metric voxels)."""
    return (np.pi * radius ** 2 * length + 4.0 / 3.0 * np.pi * radius ** 3) / zscale_for(radius)


def tube_geometry(rng, size_range, radius_range):
    """Draw (radius, length) of a tube whose voxel count lies in ``size_range``."""
    target = np.exp(rng.uniform(np.log(size_range[0]), np.log(size_range[1])))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(9.0)))  # axis length / radius
    radius = 8.0
    for _ in range(3):  # zscale depends on the radius: a short fixed-point iteration
        radius = (target * zscale_for(radius) / (np.pi * (aspect + 4.0 / 3.0))) ** (1.0 / 3.0)
    radius = float(np.clip(radius, *radius_range))
    s = zscale_for(radius)
    length = max(0.0, (target * s - 4.0 / 3.0 * np.pi * radius ** 3) / (np.pi * radius ** 2))
    return radius, length


def random_direction(rng):
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def random_axis(rng, length, start=None, direction=None, bend=None):
    """Metric points (n, 3) of a smooth random curve of ``length`` (a direction random walk)."""
    n = max(1, int(np.ceil(length / STEP)))
    step = length / n
    bend = rng.uniform(0.04, 0.2) if bend is None else bend
    d = random_direction(rng) if direction is None else np.asarray(direction, float)
    points = [np.zeros(3) if start is None else np.asarray(start, float)]
    for _ in range(n):
        d = d + rng.normal(0.0, bend, 3)
        d /= np.linalg.norm(d)
        points.append(points[-1] + step * d)
    return np.array(points)


def radius_profile(rng, radius, n):
    """Radii along an axis of ``n`` points: ``radius`` with a gentle bulge or taper."""
    t = np.linspace(0.0, 1.0, n)
    wave = np.sin(2 * np.pi * (rng.uniform(0.3, 1.2) * t + rng.uniform(0, 1)))
    return radius * (1.0 + rng.uniform(0.0, 0.15) * wave)


def make_tube(rng, metric_points, radius, center=None):
    """A :class:`Tube` from metric points; ``center`` (voxel z, y, x) moves the curve's centroid there."""
    s = zscale_for(radius)
    points = metric_points / np.array([s, 1.0, 1.0])
    if center is not None:
        points = points - points.mean(axis=0) + np.asarray(center, float)
    return Tube(points, radius_profile(rng, radius, len(points)), s)


def tube_box(tube, shape, margin):
    """Voxel box (lo, hi) around ``tube`` plus ``margin`` (y/x voxels), clipped to ``shape``; None if empty."""
    reach = tube.radii.max() + margin
    pad = np.array([reach / tube.zscale, reach, reach])
    lo = np.maximum(np.floor(tube.points.min(axis=0) - pad), 0).astype(int)
    hi = np.minimum(np.ceil(tube.points.max(axis=0) + pad) + 1, shape).astype(int)
    return None if np.any(hi <= lo) else (lo, hi)


def _segment_fields(a, b, ra, rb, grids):
    """Normalised distance and segment parameter of every grid voxel to the capsule a-b (metric)."""
    gz, gy, gx = grids
    ab = b - a
    length2 = float(ab @ ab)
    pz, py, px = gz - np.float32(a[0]), gy - np.float32(a[1]), gx - np.float32(a[2])
    if length2 > 0:
        t = (pz * np.float32(ab[0]) + py * np.float32(ab[1]) + px * np.float32(ab[2])) / np.float32(length2)
        np.clip(t, 0.0, 1.0, out=t)
    else:
        t = np.zeros(np.broadcast_shapes(pz.shape, py.shape, px.shape), np.float32)
    d2 = (pz - t * np.float32(ab[0])) ** 2 + (py - t * np.float32(ab[1])) ** 2 + (px - t * np.float32(ab[2])) ** 2
    return np.sqrt(d2) / (np.float32(ra) + t * np.float32(rb - ra)), t


def tube_fields(tube, lo, hi):
    """Normalised distance and arc length, float32 arrays of the box ``lo:hi`` (voxel z, y, x).

    Each segment only visits its own sub-box, so the cost follows the tube's volume,
    not its bounding box.
    """
    shape = tuple(hi - lo)
    dnorm = np.full(shape, np.inf, np.float32)
    arc = np.zeros(shape, np.float32)
    scale = np.array([tube.zscale, 1.0, 1.0])
    metric = tube.points * scale
    seg_len = np.linalg.norm(np.diff(metric, axis=0), axis=1) if len(metric) > 1 else np.zeros(0)
    arc0 = np.concatenate([[0.0], np.cumsum(seg_len)])
    pairs = [(i, i + 1) for i in range(len(metric) - 1)] or [(0, 0)]
    for i, j in pairs:
        reach = max(tube.radii[i], tube.radii[j]) * 1.5  # 1.5: room for the outline wobble
        pad = np.array([reach / tube.zscale, reach, reach])
        slo = np.maximum(np.floor(np.minimum(tube.points[i], tube.points[j]) - pad).astype(int), lo)
        shi = np.minimum(np.ceil(np.maximum(tube.points[i], tube.points[j]) + pad).astype(int) + 1, hi)
        if np.any(shi <= slo):
            continue
        grids = np.ogrid[slo[0]:shi[0], slo[1]:shi[1], slo[2]:shi[2]]
        grids = [g.astype(np.float32) * np.float32(k) for g, k in zip(grids, scale)]
        d, t = _segment_fields(metric[i], metric[j], tube.radii[i], tube.radii[j], grids)
        view = tuple(slice(a - b, c - b) for a, b, c in zip(slo, lo, shi))
        closer = d < dnorm[view]
        dnorm[view][closer] = d[closer]
        arc[view][closer] = (arc0[i] + t * seg_len[i] if seg_len.size else t)[closer]
    return dnorm, arc
