"""Seed labelling (Cython runs + union-find) against cc3d, and the uint8 threshold rule."""
import cc3d
import numpy as np
import pytest

from connectomics.postprocess import label_seeds, seed_components, seed_mask, threshold_level


@pytest.mark.parametrize("connectivity", [6, 26])
def test_equals_cc3d_on_random_maps(connectivity):
    rng = np.random.default_rng(connectivity)
    for shape in [(1, 1, 1), (1, 7, 1), (3, 1, 9), (17, 20, 24), (6, 33, 5)]:
        fg, contour = rng.integers(0, 256, (2,) + shape, dtype=np.uint8)
        mask = seed_mask(fg, contour, 0.4, 0.6)
        expected, n_expected = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
        labels, n = label_seeds(fg, contour, 0.4, 0.6, connectivity)
        assert n == n_expected and labels.dtype == np.uint32
        np.testing.assert_array_equal(labels, expected)  # same ids: raster order of first voxel


def test_provisional_ids_and_groups():
    fg = np.zeros((2, 4, 6), np.uint8)
    fg[0, 0, :] = 255  # one run ...
    fg[0, 2, 0] = fg[0, 2, 4] = 255  # ... two separate voxels below it ...
    fg[0, 1, 0] = fg[0, 1, 4] = 255  # ... joined to it through row 1 ...
    fg[1, 3, 2] = 255  # and a component of its own
    labels, n, groups = seed_components(fg, None, 0.5)
    assert n >= 2 and groups is None or groups.max() == 2
    joined = labels if groups is None else groups[labels]
    np.testing.assert_array_equal(joined, cc3d.connected_components(fg > 127, connectivity=6))
    u_shape = np.zeros((1, 3, 5), np.uint8)
    u_shape[0, :, 0] = u_shape[0, :, 4] = u_shape[0, 2, :] = 255  # two arms met late: a merge
    labels, n, groups = seed_components(u_shape, None, 0.5)
    assert n == 2 and list(groups) == [0, 1, 1]


def test_seed_mask_rule_and_errors():
    rng = np.random.default_rng(0)
    fg, contour = rng.integers(0, 256, (2, 6, 30, 30), dtype=np.uint8)
    np.testing.assert_array_equal(seed_mask(fg, contour, 0.6, 0.5), (fg > 153) & (contour < 127))
    assert [threshold_level(t) for t in (0.0, 0.75, 0.8, 0.85, 0.9, 1.0)] == [0, 191, 204, 216, 229, 255]
    with pytest.raises(ValueError, match="seed_threshold = 1.2"):
        threshold_level(1.2, "seed_threshold")
    with pytest.raises(ValueError, match="6 or 26"):
        seed_components(fg, contour, connectivity=4)
    with pytest.raises(ValueError, match="contour: expected a .* uint8 map of shape"):
        seed_components(fg, contour[:, :5])
    labels, n, groups = seed_components(np.zeros((2, 0, 3), np.uint8))
    assert n == 0 and labels.shape == (2, 0, 3)
