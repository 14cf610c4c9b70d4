"""Slab-wise seed labelling against cc3d on the whole volume, and the uint8 threshold rule."""
import cc3d
import numpy as np
import pytest

from connectomics.postprocess import label_components, label_seeds, seed_mask, threshold_level


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("slab_voxels", [1, 3 * 20 * 24, 10 ** 6])
def test_slabs_join_into_the_whole_volume_labelling(connectivity, slab_voxels):
    rng = np.random.default_rng(connectivity + slab_voxels)
    mask = rng.random((17, 20, 24)) < 0.3  # many components crossing every slab face
    expected, n_expected = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    labels, n = label_components(lambda z0, z1: mask[z0:z1], mask.shape, connectivity, slab_voxels)
    assert n == n_expected and labels.dtype == np.uint32
    np.testing.assert_array_equal(labels, expected)  # same ids: raster order of first voxel


def test_label_seeds_equals_components_of_the_seed_mask():
    rng = np.random.default_rng(0)
    fg, contour = rng.integers(0, 256, (2, 6, 30, 30), dtype=np.uint8)
    mask = seed_mask(fg, contour, 0.6, 0.5)
    np.testing.assert_array_equal(mask, (fg > 153) & (contour < 127))
    labels, n = label_seeds(fg, contour, 0.6, 0.5, connectivity=6)
    np.testing.assert_array_equal(labels, cc3d.connected_components(mask, connectivity=6))
    assert label_seeds(fg, None, 0.6)[1] == cc3d.connected_components(fg > 153, connectivity=6, return_N=True)[1]


def test_threshold_levels_and_errors():
    assert [threshold_level(t) for t in (0.0, 0.75, 0.8, 0.85, 0.9, 1.0)] == [0, 191, 204, 216, 229, 255]
    with pytest.raises(ValueError, match="seed_threshold = 1.2"):
        threshold_level(1.2, "seed_threshold")
    with pytest.raises(ValueError, match="6 or 26"):
        label_components(lambda z0, z1: None, (1, 1, 1), connectivity=4)
    labels, n = label_components(lambda z0, z1: np.zeros((z1 - z0, 0, 3), bool), (2, 0, 3))
    assert n == 0 and labels.shape == (2, 0, 3)
