"""The Cython bucket-queue watershed against scikit-image and a plain-Python heap oracle."""
import heapq
import itertools

import numpy as np
import pytest
from skimage.segmentation import watershed as skimage_watershed

from connectomics.fixtures.scenes import label_agreement, maps_from_labels, random_ellipsoids
from connectomics.postprocess import quantize, seeded_watershed


def heap_flood(level, seeds, mask=None, connectivity=6):
    """Plain-Python priority flood, scikit-image's rule with equal-level seeds taken in raster order."""
    labels = seeds.astype(np.int64).copy()
    mask = np.ones(level.shape, bool) if mask is None else mask
    labels[~mask] = 0
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]
    offsets.sort(key=lambda o: sum(map(abs, o)))
    offsets = offsets[:connectivity]
    heap, age = [], 0
    for index in zip(*np.nonzero(labels)):
        heap.append((int(level[index]), age, index))
        age += 1
    heapq.heapify(heap)
    while heap:
        _, _, (z, y, x) = heapq.heappop(heap)
        for dz, dy, dx in offsets:
            n = (z + dz, y + dy, x + dx)
            if all(0 <= c < s for c, s in zip(n, level.shape)) and mask[n] and labels[n] == 0:
                labels[n] = labels[z, y, x]
                heapq.heappush(heap, (int(level[n]), age, n))
                age += 1
    return labels


@pytest.fixture
def distinct_levels():
    """4 x 8 x 8 = 256 voxels, every level once: no ties, a unique flooding."""
    rng = np.random.default_rng(0)
    level = rng.permutation(256).astype(np.uint8).reshape(4, 8, 8)
    seeds = np.zeros(level.shape, np.uint32)
    seeds.flat[rng.choice(256, 6, replace=False)] = np.arange(1, 7)
    mask = rng.random(level.shape) < 0.85
    return level, seeds, mask


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("label_dtype", [np.uint32, np.uint64])
def test_equals_skimage_without_ties(distinct_levels, connectivity, use_mask, label_dtype):
    level, seeds, mask = distinct_levels
    mask = mask if use_mask else None
    expected = skimage_watershed(level, seeds.astype(np.int32), mask=mask, connectivity=connectivity // 13 + 1)
    ours = seeded_watershed(level, seeds.astype(label_dtype), mask=mask, connectivity=connectivity)
    assert ours.dtype == label_dtype
    np.testing.assert_array_equal(ours, expected)


def test_float32_levels_and_invert(distinct_levels):
    level, seeds, _ = distinct_levels
    probs = level.astype(np.float32) / 255  # quantises back to ``level`` exactly
    np.testing.assert_array_equal(quantize(probs), level)
    expected = skimage_watershed(level, seeds.astype(np.int32))
    np.testing.assert_array_equal(seeded_watershed(probs, seeds), expected)
    np.testing.assert_array_equal(seeded_watershed(255 - level, seeds, invert=True), expected)


def test_float_quantisation_rule_is_shared_by_python_and_kernel():
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.random(500), (np.arange(256) + 0.5) / 255, [0.0, 1.0]]).astype(np.float32)
    expected = np.floor(255 * values.astype(np.float64) + 0.5).astype(np.uint8)  # the documented rule
    np.testing.assert_array_equal(quantize(values), expected)
    image = values.reshape(1, 1, -1)
    every_voxel_a_seed = np.arange(1, values.size + 1, dtype=np.uint32).reshape(image.shape)
    for max_level in (0, 17, 128, 254):  # seeds above max_level are dropped: a per-voxel level check
        kept = seeded_watershed(image, every_voxel_a_seed, max_level=max_level) > 0
        np.testing.assert_array_equal(kept.ravel(), expected <= max_level)


@pytest.mark.parametrize("connectivity", [6, 26])
def test_equals_heap_oracle_with_ties(connectivity):
    rng = np.random.default_rng(1)
    level = rng.integers(0, 4, (6, 12, 12)).astype(np.uint8)  # few levels: ties everywhere
    seeds = np.zeros(level.shape, np.uint32)
    seeds.flat[rng.choice(level.size, 8, replace=False)] = rng.integers(1, 4, 8)
    mask = rng.random(level.shape) < 0.9
    expected = heap_flood(level, seeds, mask, connectivity)
    np.testing.assert_array_equal(seeded_watershed(level, seeds, mask=mask, connectivity=connectivity), expected)


def test_agrees_with_skimage_on_plateaus():
    rng = np.random.default_rng(2)
    labels = random_ellipsoids((24, 128, 128), 14, rng)
    fg = maps_from_labels(labels, rng)[0]
    seeds = np.zeros(labels.shape, np.uint32)
    core = fg > 250  # saturated plateaus: many ties
    seeds[core] = labels[core]
    mask = fg > 120
    expected = skimage_watershed(255 - fg, seeds.astype(np.int32), mask=mask)
    ours = seeded_watershed(fg, seeds, mask=mask, invert=True)
    assert set(np.unique(ours)) == set(np.unique(expected))
    assert label_agreement(ours, expected) >= 0.995


def test_max_level_is_a_free_mask_and_outside_seeds_are_dropped():
    rng = np.random.default_rng(3)
    fg = rng.integers(0, 256, (5, 20, 20)).astype(np.uint8)
    seeds = np.zeros(fg.shape, np.uint32)
    seeds.flat[rng.choice(fg.size, 10, replace=False)] = np.arange(1, 11)
    expected = heap_flood(255 - fg, seeds, mask=fg > 100)
    assert (expected[fg <= 100] == 0).all() and len(np.unique(expected)) > 2
    np.testing.assert_array_equal(seeded_watershed(fg, seeds, invert=True, max_level=254 - 100), expected)
    np.testing.assert_array_equal(seeded_watershed(fg, seeds, mask=fg > 100, invert=True), expected)


def test_inplace_and_copies():
    level = np.zeros((2, 3, 4), np.uint8)
    seeds = np.zeros(level.shape, np.uint32)
    seeds[0, 0, 0] = 7
    copy = seeded_watershed(level, seeds)
    assert seeds.sum() == 7 and (copy == 7).all()
    out = seeded_watershed(level, seeds, inplace=True)
    assert out is seeds and (seeds == 7).all()
    assert seeded_watershed(level, seeds.astype(np.int16)).dtype == np.uint32
    assert seeded_watershed(np.zeros((0, 3, 4), np.uint8), np.zeros((0, 3, 4), np.uint32)).size == 0


@pytest.mark.parametrize("image, seeds, kwargs, error, match", [
    (np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint32), {}, ValueError, "(Z, Y, X)"),
    (np.zeros((2, 3, 4), np.int16), np.zeros((2, 3, 4), np.uint32), {}, TypeError, "int16"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 5), np.uint32), {}, ValueError, "differs"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.float32), {}, TypeError, "integer"),
    (np.zeros((2, 3, 4), np.uint8), -np.ones((2, 3, 4), np.int32), {}, ValueError, ">= 0"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.int32), {"inplace": True}, ValueError, "inplace"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint32), {"connectivity": 18}, ValueError, "6 or 26"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint32), {"max_level": 300}, ValueError, "max_level"),
    (np.zeros((2, 3, 4), np.uint8), np.zeros((2, 3, 4), np.uint32), {"mask": np.ones((2, 3, 3))}, ValueError,
     "mask"),
])
def test_bad_input(image, seeds, kwargs, error, match):
    with pytest.raises(error, match=match):
        seeded_watershed(image, seeds, **kwargs)
