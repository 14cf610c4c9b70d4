"""Shape measures of one instance, from its mask in a crop, in physical units on the anisotropic grid.

- principal axes: the full axis lengths (nm) of the ellipsoid with the same second moments
  (``2 sqrt(5 lambda)`` for the eigenvalues ``lambda`` of the coordinate covariance; the same
  convention as scikit-image's ``axis_major_length``), longest first; elongation = longest /
  shortest (1 for a sphere; a single voxel or a flat instance: the shortest is the voxel's extent).
- surface area (um^2): marching cubes (scikit-image) on the mask, smoothed first so that the voxel
  staircase does not inflate it (unsmoothed: +18% on a ball at 30 x 8 x 8 nm; a Gaussian of
  ``SMOOTH`` x the largest voxel side, the same in nm along every axis: within 2.5% on balls of
  radius 120-400 nm at 30 x 8 x 8 and 8 x 8 x 8 nm), at the voxel size; sphericity =
  pi^(1/3) (6 V)^(2/3) / A (1 for a ball).
- skeleton (kimimaro TEASAR, at the voxel size): the centre line's length and its branch count
  (segments between end points and junctions; 1 for a rod, 0 for a blob too small to skeletonize);
  see :func:`skeleton_measures`.
"""
import math

import numpy as np

TEASAR = {"scale": 1.5, "const": 300, "pdrf_scale": 100000, "pdrf_exponent": 4}  # kimimaro's, const in nm
SMOOTH = 0.4  # sigma of the Gaussian on the mask before marching cubes, in units of the largest voxel side


def covariance(record):
    """The (3, 3) covariance (voxel units) of an instance's voxel coordinates from its exact integer
    sums (``count``, ``sum_z`` ..., ``sum_zz`` ...), computed in integers, so no cancellation."""
    n = int(record["count"])
    first = [int(record[f"sum_{a}"]) for a in "zyx"]
    cov = np.zeros((3, 3))
    for i, a in enumerate("zyx"):
        for j, b in enumerate("zyx"):
            key = f"sum_{a}{b}" if f"sum_{a}{b}" in record else f"sum_{b}{a}"
            cov[i, j] = (n * int(record[key]) - first[i] * first[j]) / (n * n)  # Python ints: exact
    return cov


def principal_axes(cov, voxel=(1.0, 1.0, 1.0)):
    """``(lengths (3,) longest first, elongation)`` of the covariance ``cov`` (voxel units) at ``voxel``."""
    cov = np.asarray(cov, np.float64) * np.outer(voxel, voxel)
    if not np.any(cov):
        return np.zeros(3), 1.0
    eig = np.clip(np.linalg.eigvalsh(cov)[::-1], 0, None)
    lengths = 2 * np.sqrt(5 * eig)
    return lengths, float(lengths[0] / lengths[2]) if lengths[2] > 0 else math.inf


def surface_area(mask, voxel):
    """Surface area (in ``voxel``'s unit, squared) of the binary ``mask`` ((Z, Y, X)) at ``voxel``
    ((z, y, x) sizes)."""
    from scipy.ndimage import gaussian_filter
    from skimage.measure import marching_cubes, mesh_surface_area

    if mask.sum() == 0:
        return 0.0
    sigma_nm = SMOOTH * max(voxel)
    padded = np.pad(mask.astype(np.float32), [(int(math.ceil(3 * sigma_nm / v)) + 1,) * 2 for v in voxel])
    smooth = gaussian_filter(padded, sigma=[sigma_nm / v for v in voxel])
    if smooth.max() <= 0.5:  # thinner than the smoothing: the unsmoothed mask
        smooth = padded
    verts, faces, _, _ = marching_cubes(smooth, level=0.5, spacing=tuple(float(v) for v in voxel))
    return float(mesh_surface_area(verts, faces))


def sphericity(volume, area):
    """pi^(1/3) (6 V)^(2/3) / A (same length unit in both); 1 for a ball."""
    return float(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area) if area > 0 else float("nan")


def skeleton_measures(mask, voxel):
    """``(length in voxel's unit, branches)`` of the centre line of ``mask`` at ``voxel``.

    The TEASAR skeleton (kimimaro) is cut into its segments between end points and junctions
    (``branches``: how many; 1 for a rod). Its raw cable length overstates a rod's length (+70% on a
    rod of radius 180 nm at 30 x 8 x 8 nm): the path zig-zags between voxel rows of the coarse
    axis, and each end starts on the rim of the cap, not at the end of the centre line. So each
    segment is smoothed (a running mean over ``2 ceil(max/min voxel side) + 1`` vertices), and at
    each free end the vertices closer to the surface than 0.9 x the segment's largest radius are
    replaced by that radius (exact for flat and for hemispherical caps): within 10 nm on rods of
    1,400 nm and 16 nm on a 1,600 nm capsule at 30 x 8 x 8 nm.
    """
    import kimimaro
    from scipy.ndimage import uniform_filter1d

    skeletons = kimimaro.skeletonize(np.ascontiguousarray(mask, np.uint8), anisotropy=tuple(float(v) for v in voxel),
                                     teasar_params=TEASAR, dust_threshold=0, fix_branching=True, fix_borders=False,
                                     progress=False, parallel=1)
    skeleton = skeletons.get(1)
    if skeleton is None or len(skeleton.vertices) < 2:
        return 0.0, 0
    index = {tuple(v): i for i, v in enumerate(skeleton.vertices)}
    degree = np.bincount(skeleton.edges.reshape(-1), minlength=len(skeleton.vertices))
    window = 2 * int(math.ceil(max(voxel) / min(voxel))) + 1
    segments = skeleton.interjoint_paths()
    total = 0.0
    for path in segments:
        ids = [index[tuple(v)] for v in path]
        radius = np.asarray(skeleton.radius, np.float64)[ids]
        lo, hi, ends = 0, len(ids), 0.0
        if degree[ids[0]] == 1:
            lo = int(np.argmax(radius >= 0.9 * radius.max()))
            ends += radius[lo]
        if degree[ids[-1]] == 1 and len(ids) > 1:
            hi = len(ids) - int(np.argmax(radius[::-1] >= 0.9 * radius.max()))
            ends += radius[hi - 1]
        line = np.asarray(path[lo:max(hi, lo + 1)], np.float64)
        if len(line) > 2:
            line = uniform_filter1d(line, size=min(window, len(line)), axis=0, mode="nearest")
        total += float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum()) + ends
    return total, len(segments)
