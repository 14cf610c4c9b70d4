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
between them. The face must stand upright enough that a per-section contour
splits the pair (the 2D contour targets and seeded watershed of the pipeline).
"""
from dataclasses import dataclass

import numpy as np

from connectomics.data.synthetic_fields import smooth_field

ANISOTROPY = 30.0 / 8.0  # MitoEM voxel size (z, y, x) = (30, 8, 8) nm
# size class: (share of the instances, voxel-count range, y/x radius range)
SIZE_CLASSES = {
    "large": (0.2, (34000.0, 80000.0), (12.0, 22.0)),
    "medium": (0.45, (6500.0, 26000.0), (8.0, 16.0)),
    "small": (0.35, (2300.0, 4700.0), (5.0, 10.0)),
}
STEP = 4.0  # curve sampling step (metric voxels)
GAP = 3.0  # minimum background gap between instances that do not touch (y/x voxels)
# in-plane erosion (voxels) that stands for the seeds a per-section contour decoder keeps: a soft
# contour band of half-width 2, thresholded, leaves seeds about this far from the borders
SEED_MARGIN = 1


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
    size: list

    @classmethod
    def empty(cls, shape):
        shape = tuple(int(n) for n in shape)
        return cls(np.zeros(shape, np.uint32), np.ones(shape, np.float32), np.zeros(shape, np.float32),
                   [0.0], [0])


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


def _reach(radius):
    """How far (y/x voxels) from the axis a tube's fields are needed: outline wobble plus the gap test."""
    return 1.4 * radius + GAP + 1.0


def tube_box(tube, shape):
    """Voxel box (lo, hi) around ``tube`` and its gap margin, clipped to ``shape``; None if empty."""
    reach = _reach(tube.radii.max())
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
    not its bounding box. Outside the reach of the axis the distance is inf.
    """
    shape = tuple(hi - lo)
    dnorm = np.full(shape, np.inf, np.float32)
    arc = np.zeros(shape, np.float32)
    scale = np.array([tube.zscale, 1.0, 1.0])
    keep = coarse_vertices(tube)
    points, radii = tube.points[keep], tube.radii[keep]
    metric = points * scale
    seg_len = np.linalg.norm(np.diff(metric, axis=0), axis=1)
    arc0 = np.concatenate([[0.0], np.cumsum(seg_len)])
    for i, j in [(i, i + 1) for i in range(len(metric) - 1)] or [(0, 0)]:
        reach = _reach(max(radii[i], radii[j]))
        pad = np.array([reach / tube.zscale, reach, reach])
        slo = np.maximum(np.floor(np.minimum(points[i], points[j]) - pad).astype(int), lo)
        shi = np.minimum(np.ceil(np.maximum(points[i], points[j]) + pad).astype(int) + 1, hi)
        if np.any(shi <= slo):
            continue
        grids = np.ogrid[slo[0]:shi[0], slo[1]:shi[1], slo[2]:shi[2]]
        grids = [g.astype(np.float32) * np.float32(k) for g, k in zip(grids, scale)]
        d, t = _segment_fields(metric[i], metric[j], radii[i], radii[j], grids)
        view = tuple(slice(a - b, c - b) for a, b, c in zip(slo, lo, shi))
        closer = d < dnorm[view]
        np.copyto(dnorm[view], d, where=closer)
        np.copyto(arc[view], np.float32(arc0[i]) + t * np.float32(seg_len[i] if seg_len.size else 0.0),
                  where=closer)
    return dnorm, arc


def coarse_vertices(tube):
    """Indices of axis points kept for rasterising: about one per radius of arc, ends included.

    Longer segments mean less overlap between the segments' sub-boxes; the
    union of capsules stays smooth because the axis bends little per radius.
    """
    n = len(tube.points)
    stride = max(1, int(round(0.8 * tube.radii.mean() / STEP)))
    keep = list(range(0, n, stride))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return np.array(keep)


def axis_hits(canvas, tube, partner):
    """True if an axis point of ``tube`` lies in an instance other than ``partner`` (a cheap early reject)."""
    idx = np.round(tube.points).astype(int)
    inside = np.all((idx >= 0) & (idx < canvas.label.shape), axis=1)
    hit = canvas.label[tuple(idx[inside].T)]
    return bool(np.any((hit != 0) & (hit != partner)))


def shared_faces(a, b, axes=(0, 1, 2)):
    """Number of voxel pairs between boolean masks ``a`` and ``b`` (3D) adjacent along ``axes``."""
    total = 0
    for axis in axes:
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        total += int(np.count_nonzero(a[lo] & b[hi])) + int(np.count_nonzero(a[hi] & b[lo]))
    return total


def separable_in_plane(a, b, half_width=SEED_MARGIN):
    """True if per-section contours can split touching masks ``a`` and ``b`` (3D bool).

    The cores left after an in-plane erosion by ``half_width`` (what a contour
    band of that half-width leaves as seeds) must not touch across sections;
    otherwise a seeded watershed merges the two through an oblique face.
    """
    from scipy import ndimage as ndi

    window = np.ones((1, 2 * half_width + 1, 2 * half_width + 1), bool)
    core_a = ndi.binary_erosion(a, window, border_value=1)
    core_b = ndi.binary_erosion(b, window, border_value=1)
    return shared_faces(core_a, core_b) == 0


def place_tube(canvas, tube, wobble, wobble_amp, partner=0, min_voxels=300, min_shared=30):
    """Add ``tube`` to ``canvas`` if it keeps its distance from every instance but ``partner``.

    With ``partner`` > 0 the tube must overlap or touch that instance: shared voxels
    go to the tube they lie deeper in, and the two must end up sharing at least
    ``min_shared`` in-plane voxel faces, each keep half its voxels, and stay
    separable by a per-section contour (:func:`separable_in_plane`). Returns the new id, or 0.
    """
    box = tube_box(tube, canvas.label.shape)
    if box is None or axis_hits(canvas, tube, partner):
        return 0
    lo, hi = box
    view = tuple(slice(a, b) for a, b in zip(lo, hi))
    dnorm, arc = tube_fields(tube, lo, hi)
    dnorm += np.float32(wobble_amp) * wobble[view]
    radius = float(tube.radii.mean())
    inside = dnorm < 1.0
    labels = canvas.label[view]
    near = dnorm < 1.0 + GAP / radius
    near[1:] |= near[:-1].copy()  # and one more section above and below: a gap of ~2 sections in z
    near[:-1] |= near[1:].copy()
    near = labels[near]
    if np.any(near[near != partner]) or np.count_nonzero(inside) < min_voxels:
        return 0
    take = inside
    if partner:
        mine = labels == partner
        take = inside & (~mine | (dnorm < canvas.dnorm[view]))
        lost = int(np.count_nonzero(take & mine))
        kept = int(np.count_nonzero(take))
        if (kept < max(min_voxels, 0.5 * np.count_nonzero(inside)) or lost > 0.5 * canvas.size[partner]
                or shared_faces(take, mine & ~take, axes=(1, 2)) < min_shared
                or not separable_in_plane(take, mine & ~take)):
            return 0
        canvas.size[partner] -= lost
    new_id = len(canvas.radius)
    labels[take] = new_id
    canvas.dnorm[view][take] = dnorm[take]
    canvas.arc[view][take] = arc[take]
    canvas.radius.append(radius)
    canvas.size.append(int(np.count_nonzero(take)))
    return new_id


def _end_partner(rng, first, size_range, radius_range):
    """A tube that starts inside one end of ``first`` and continues roughly its way."""
    radius, length = tube_geometry(rng, size_range, radius_range)
    points = first.points * np.array([zscale_for(radius), 1.0, 1.0])  # in the new tube's metric
    radii = first.radii
    if rng.random() < 0.5:
        points, radii = points[::-1], radii[::-1]
    direction = points[-1] - points[-2] if len(points) > 1 else random_direction(rng)
    direction = direction * np.array([0.3, 1.0, 1.0])  # meet side by side in y/x: a face a 2D contour sees
    direction = direction / (np.linalg.norm(direction) or 1.0)
    start = points[-1] + direction * (radii[-1] + radius) * rng.uniform(0.5, 0.8)
    turn = direction + rng.normal(0.0, 0.4, 3)
    return make_tube(rng, random_axis(rng, length, start=start, direction=turn / np.linalg.norm(turn)), radius)


def _side_partner(rng, first):
    """A thinner tube that runs alongside part of ``first``, pressed against it."""
    radius = float(max(5.0, first.radii.mean() * rng.uniform(0.6, 1.0)))
    points = first.points * np.array([zscale_for(radius), 1.0, 1.0])
    k = int(rng.integers(3, len(points) + 1))
    k0 = int(rng.integers(0, len(points) - k + 1))
    window = points[k0:k0 + k]
    direction = window[-1] - window[0]
    direction /= np.linalg.norm(direction) or 1.0
    side = rng.standard_normal(3) * np.array([0.3, 1.0, 1.0])  # mostly beside it in y/x, like real pairs
    side -= (side @ direction) * direction
    side /= np.linalg.norm(side) or 1.0
    offset = side * (first.radii[k0:k0 + k].mean() + radius) * rng.uniform(0.6, 0.85)
    return make_tube(rng, window + offset, radius)


def partner_tube(rng, first, size_range, radius_range):
    """A tube meant to overlap ``first``: end to end, or (long tubes, half the time) side by side."""
    if len(first.points) >= 4 and rng.random() < 0.5:
        return _side_partner(rng, first)
    return _end_partner(rng, first, size_range, radius_range)


def draw_size_classes(rng, n):
    """``n`` size-class names in random order, counts proportional to the shares (stratified).

    With n >= 3 every class appears at least once.
    """
    names = list(SIZE_CLASSES)
    shares = np.array([SIZE_CLASSES[k][0] for k in names])
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(int)
    rest = exact - counts
    if n > counts.sum():
        extra = rng.choice(len(names), size=n - counts.sum(), replace=False, p=rest / rest.sum())
        counts[extra] += 1
    for k in range(len(names)):
        if n >= len(names) and counts[k] == 0:
            counts[k] += 1
            counts[np.argmax(counts)] -= 1
    drawn = [name for name, count in zip(names, counts) for _ in range(count)]
    return [drawn[i] for i in rng.permutation(n)]


def mean_instance_size():
    """Expected voxel count of one instance (log-uniform sizes in each class)."""
    total = 0.0
    for share, (a, b), _ in SIZE_CLASSES.values():
        total += share * (b - a) / np.log(b / a)
    return total / sum(share for share, _, _ in SIZE_CLASSES.values())


def pack_tubes(shape, rng, n_instances, touching_fraction=0.3, wobble_amp=0.12, tries=30):
    """A :class:`Canvas` with up to ``n_instances`` tubes; about ``touching_fraction`` of them in touching pairs.

    Tubes that cannot be placed after ``tries`` draws are skipped, so crowded
    volumes hold fewer instances than asked.
    """
    canvas = Canvas.empty(shape)
    wobble = smooth_field(canvas.label.shape, (2.0, 6.0, 6.0), rng)
    n_pairs = int(round(n_instances * touching_fraction / 2))
    n_primary = n_instances - n_pairs
    primary = sorted(draw_size_classes(rng, n_primary), key=list(SIZE_CLASSES).index)  # large first: they fit best
    partners = draw_size_classes(rng, n_pairs)
    paired = set(rng.choice(n_primary, size=min(n_pairs, n_primary), replace=False).tolist())
    lo, hi = 0.1 * np.array(shape), 0.9 * np.array(shape)
    for i, name in enumerate(primary):
        _, sizes, radii = SIZE_CLASSES[name]
        new = 0
        for _ in range(tries):
            radius, length = tube_geometry(rng, sizes, radii)
            tube = make_tube(rng, random_axis(rng, length), radius, center=rng.uniform(lo, hi))
            new = place_tube(canvas, tube, wobble, wobble_amp, min_voxels=0.9 * sizes[0])  # not clipped away
            if new:
                break
        if new and i in paired:
            _, sizes, radii = SIZE_CLASSES[partners.pop()]
            for _ in range(tries):
                if place_tube(canvas, partner_tube(rng, tube, sizes, radii), wobble, wobble_amp, partner=new,
                              min_voxels=min(sizes[0], 1500)):
                    break
    return canvas
