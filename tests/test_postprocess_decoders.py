"""Every decoder on synthetic touching objects, against its scikit-image / waterz oracle."""
import logging

import cc3d
import fastremap
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import measure, morphology, segmentation

from connectomics.fixtures.scenes import (_remove_small_objects, label_agreement, maps_from_labels, random_ellipsoids,
                                          skimage_bc_watershed, touching_pair)
from connectomics.postprocess import (DECODERS, bc_connected, bc_watershed, binary_watershed, decode, grow_labels,
                                      label_seeds, remove_small_instances, seed_agglomerate, seed_components,
                                      seeded_watershed, watershed_agglomerate)
from connectomics.postprocess.agglomerate import agglomerate_seeds, interior_map, map_affinities


@pytest.fixture(scope="module")
def scene():
    """Touching random ellipsoids and their (2, Z, Y, X) uint8 maps."""
    rng = np.random.default_rng(7)
    labels = random_ellipsoids((32, 160, 160), 20, rng)
    return labels, maps_from_labels(labels, rng)


def matched_fraction(gt, pred, iou=0.75):
    """Fraction of GT instances with a predicted instance at IoU >= ``iou`` (a plain AP-75 proxy)."""
    gt_ids, gt_sizes = fastremap.unique(gt, return_counts=True)
    pred_ids, pred_sizes = fastremap.unique(pred, return_counts=True)
    sizes_g, sizes_p = dict(zip(gt_ids.tolist(), gt_sizes)), dict(zip(pred_ids.tolist(), pred_sizes))
    both = (gt > 0) & (pred > 0)
    keys, counts = np.unique((gt[both].astype(np.uint64) << np.uint64(32)) | pred[both], return_counts=True)
    best = {}
    for key, count in zip(keys.tolist(), counts):
        g, p = key >> 32, key & 0xFFFFFFFF
        best[g] = max(best.get(g, 0), count / (sizes_g[g] + sizes_p[p] - count))
    return np.mean([best.get(g, 0) >= iou for g in gt_ids.tolist() if g])


def assert_consecutive(labels):
    assert labels.dtype == np.uint32
    ids = fastremap.unique(labels)
    np.testing.assert_array_equal(ids[ids > 0], np.arange(1, len(ids[ids > 0]) + 1))


def n_instances(labels):
    return int(np.count_nonzero(fastremap.unique(labels)))


@pytest.mark.parametrize("name", list(DECODERS))
def test_every_decoder_recovers_the_scene(scene, name):
    labels, maps = scene
    out = decode(maps, name, **({} if name == "binary_watershed" else {"seed_threshold": 0.9,
                                                                        "contour_threshold": 0.8}))
    assert_consecutive(out)
    floor = 0.2 if name == "binary_watershed" else 0.85  # no contour: touching objects merge
    assert matched_fraction(labels, out) >= floor


def test_bc_watershed_matches_skimage(scene):
    _, maps = scene
    ours, reference = bc_watershed(maps), skimage_bc_watershed(maps)
    assert n_instances(ours) == n_instances(reference)
    assert label_agreement(ours, reference) >= 0.995


@pytest.mark.parametrize("small_mode", ["background", "neighbor"])
@pytest.mark.parametrize("seed_connectivity", [6, 26])
def test_deferred_seed_join_gives_the_same_result(scene, small_mode, seed_connectivity):
    """bc_watershed floods provisional seed ids and joins them at the final relabelling."""
    _, maps = scene
    assert seed_components(maps[0], maps[1], connectivity=seed_connectivity)[2] is not None  # seeds that branch
    labels, n = label_seeds(maps[0], maps[1], connectivity=seed_connectivity)  # joined first
    seeded_watershed(maps[0], labels, max_level=254 - 216, invert=True, inplace=True)
    expected = remove_small_instances(labels, 400, small_mode)[0]
    np.testing.assert_array_equal(bc_watershed(maps, min_size=400, small_mode=small_mode,
                                               seed_connectivity=seed_connectivity), expected)


def test_waterz_prints_nothing(scene, capfd):
    watershed_agglomerate(scene[1][:, :8])
    agglomerate_seeds(np.ones((2, 3, 3), bool))
    assert capfd.readouterr().out == ""


def test_default_seeds_are_26_connected_and_the_flood_6_connected_as_the_predecessor():
    """Two seed blobs that touch only at an edge are one seed (skimage ``label``'s full connectivity),
    and the flood does not cross a diagonal gap (``watershed``'s 6-connectivity)."""
    fg = np.zeros((3, 12, 12), np.uint8)
    contour = np.zeros_like(fg)
    fg[1, 2:5, 2:5] = fg[1, 5:8, 5:8] = 250  # seeds meeting corner to corner in y/x
    fg[1, 9:11, 9:11] = 200  # mask only, touching the second blob diagonally: not flooded
    maps = np.stack([fg, contour])
    params = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.7, min_size=1)
    default = bc_watershed(maps, **params)
    assert n_instances(default) == 1 and default[1, 9, 9] == 0
    assert n_instances(bc_watershed(maps, seed_connectivity=6, **params)) == 2
    assert default[1, 9, 9] == 0 and bc_watershed(maps, connectivity=26, **params)[1, 8, 8] == 0  # gap stays
    np.testing.assert_array_equal(default > 0, skimage_bc_watershed(maps, **params) > 0)
    assert n_instances(skimage_bc_watershed(maps, **params)) == 1


def test_bc_watershed_separates_a_touching_pair():
    labels = touching_pair()
    maps = maps_from_labels(labels, np.random.default_rng(0), noise=0.0)
    out = bc_watershed(maps, min_size=10)
    assert n_instances(out) == 2
    assert matched_fraction(labels, out) == 1.0


def test_binary_watershed_matches_skimage(scene):
    _, maps = scene
    fg = maps[0]
    markers = measure.label(fg > int(255 * 0.98))  # the predecessor's call: full (26-) connectivity
    reference = segmentation.watershed(255 - fg, markers, mask=fg > int(255 * 0.85))
    reference = _remove_small_objects(reference, 128)
    ours = binary_watershed(maps[:1])  # one channel is enough
    assert n_instances(ours) == n_instances(reference)
    assert label_agreement(ours, reference) >= 0.995


def test_bc_connected_grey_equals_the_predecessor(scene):
    _, maps = scene
    seeds = (maps[0] > int(255 * 0.8)) & (maps[1] < int(255 * 0.5))
    reference = morphology.dilation(measure.label(seeds), np.ones((1, 5, 5)))
    reference = _remove_small_objects(reference, 128)
    ours = bc_connected(maps, dilation_mode="grey")
    assert n_instances(ours) == n_instances(reference)
    assert label_agreement(ours, reference) == 1.0


def test_grow_into_background_never_overwrites():
    labels = np.zeros((1, 9, 12), np.uint32)
    labels[0, 4, 2] = 1
    labels[0, 4, 6] = 2  # three background voxels between 1 and 2
    grown = grow_labels(labels.copy(), (1, 7, 7), "background")
    np.testing.assert_array_equal(grown[0, 4, :10], [1, 1, 1, 1, 2, 2, 2, 2, 2, 2])  # nearest; tie (x=4): higher id
    np.testing.assert_array_equal(grown > 0, ndi.maximum_filter(labels, (1, 7, 7)) > 0)  # same support
    grey = grow_labels(labels.copy(), (1, 7, 7), "grey")
    assert grey[0, 4, 3] == 2 and grey[0, 4, 2] == 1  # the predecessor's max-dilation: higher id overwrites
    np.testing.assert_array_equal(grey, morphology.dilation(labels, np.ones((1, 7, 7))))


def test_grow_in_z_and_bad_windows():
    labels = np.zeros((5, 5, 5), np.uint32)
    labels[2, 2, 2] = 3
    assert (grow_labels(labels.copy(), (3, 1, 1))[1:4, 2, 2] == 3).all()
    for bad in [(1, 6, 6), (1, 7), (0, 3, 3)]:
        with pytest.raises(ValueError, match="odd positive"):
            grow_labels(labels, bad)
    with pytest.raises(ValueError, match="background, grey"):
        grow_labels(labels, (1, 3, 3), "max")


def test_seed_agglomerate_affinity_route_is_components_without_singletons(scene):
    _, maps = scene
    seed = (maps[0] > int(255 * 0.9)) & (maps[1] < int(255 * 0.8))
    seed[0, :3, :3] = [[1, 0, 1], [0, 0, 0], [1, 0, 0]]  # some isolated voxels
    components = cc3d.connected_components(seed, connectivity=6)
    sizes = np.bincount(components.ravel())
    components[sizes[components] == 1] = 0
    oracle = agglomerate_seeds(seed)
    assert n_instances(oracle) == n_instances(components) > 5
    assert label_agreement(components, oracle) == 1.0 and label_agreement(oracle, components) == 1.0


def test_seed_agglomerate_grey_equals_the_predecessor_chain(scene):
    _, maps = scene
    seed = (maps[0] > int(255 * 0.9)) & (maps[1] < int(255 * 0.8))
    chain = morphology.dilation(agglomerate_seeds(seed).astype(np.uint32), np.ones((1, 7, 7)))
    chain = _remove_small_objects(chain, 128)
    ours = seed_agglomerate(maps, dilation_mode="grey")
    assert_consecutive(ours)
    assert n_instances(ours) == n_instances(chain)
    assert label_agreement(ours, chain) == 1.0


def test_seed_agglomerate_default_keeps_seed_instances_intact(scene):
    _, maps = scene
    seed = (maps[0] > int(255 * 0.9)) & (maps[1] < int(255 * 0.8))
    ours = seed_agglomerate(maps, min_size=0)
    components = cc3d.connected_components(seed, connectivity=6)
    inside = components > 0
    assert label_agreement(np.where(inside, ours, 0), components) > 0.999  # no seed voxel changes owner


def test_watershed_agglomerate_merges_fragments_across_weak_contours():
    labels = np.zeros((10, 40, 60), np.uint32)
    labels[2:8, 8:32, 6:54] = 1  # one object ...
    maps = maps_from_labels(labels, np.random.default_rng(0), noise=0.0)
    maps[1, :, :, 29:31] = 100  # ... with a weak contour across it
    fragments = bc_watershed(maps, contour_threshold=0.3)
    assert n_instances(fragments) == 2  # a strict contour threshold splits it
    assert n_instances(watershed_agglomerate(maps, contour_threshold=0.3, merge_threshold=0.5)) == 1
    assert n_instances(watershed_agglomerate(maps, contour_threshold=0.3, merge_threshold=0.2)) == 2
    pair = maps_from_labels(touching_pair(), np.random.default_rng(0), noise=0.0)
    assert n_instances(watershed_agglomerate(pair, contour_threshold=0.3, min_size=10)) == 2  # strong contour


def test_map_affinities_layout():
    interior = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    affs = map_affinities(interior)
    assert affs.shape == (3, 2, 3, 4) and affs.dtype == np.float32
    assert affs[0, 0].max() == 0 and affs[1, :, 0].max() == 0 and affs[2, :, :, 0].max() == 0
    assert affs[2, 1, 2, 3] == pytest.approx(min(interior[1, 2, 3], interior[1, 2, 2]) / 255)
    assert affs[0, 1, 1, 1] == pytest.approx(min(interior[1, 1, 1], interior[0, 1, 1]) / 255)
    fg, contour = np.full((1, 1, 2), 255, np.uint8), np.array([[[0, 255]]], np.uint8)
    np.testing.assert_array_equal(interior_map(fg, contour), [[[255, 0]]])


def test_uint8_thresholds_are_the_predecessors():
    fg = np.array([229, 230, 230, 230], np.uint8).reshape(1, 1, 4)
    contour = np.array([0, 0, 203, 204], np.uint8).reshape(1, 1, 4)
    out = bc_connected(np.stack([fg, contour]), seed_threshold=0.9, contour_threshold=0.8,
                       dilation=(1, 1, 1), min_size=0)
    np.testing.assert_array_equal(out.ravel() > 0, [False, True, True, False])  # fg > 229, contour < 204


def test_float_maps_are_quantised_first(scene):
    _, maps = scene
    probs = maps.astype(np.float32) / 255
    np.testing.assert_array_equal(bc_watershed(probs), bc_watershed(maps))
    np.testing.assert_array_equal(bc_watershed(maps.astype(np.int64)), bc_watershed(maps))


def test_no_seeds_gives_an_empty_volume_and_a_warning(caplog):
    maps = np.zeros((2, 4, 8, 8), np.uint8)
    for name in DECODERS:
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            out = decode(maps, name)
        assert out.shape == (4, 8, 8) and out.dtype == np.uint32 and not out.any()
        assert "no seeds" in caplog.text


@pytest.mark.parametrize("probs, match", [
    (np.zeros((8, 8, 8), np.uint8), "4D map stack"),
    (np.zeros((3, 4, 8, 8), np.uint8), "expected 2 channels"),
    (np.zeros((2, 4, 8, 8), np.float32) + 1.5, r"\[0, 1\]"),
    (np.full((2, 4, 8, 8), np.nan, np.float32), r"\[0, 1\]"),
    (np.full((2, 4, 8, 8), 300, np.int16), r"\[0, 255\]"),
    (np.full((2, 4, 8, 8), -1, np.int16), r"\[0, 255\]"),
])
def test_bad_maps(probs, match):
    with pytest.raises(ValueError, match=match):
        bc_watershed(probs)


def test_bad_dtype_and_arguments():
    with pytest.raises(TypeError, match="complex"):
        bc_watershed(np.zeros((2, 2, 4, 4), np.complex64))
    maps = np.zeros((2, 2, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="unknown decoder 'nope'; valid: bc_watershed"):
        decode(maps, "nope")
    with pytest.raises(ValueError, match="seed_threshold"):
        decode(maps, "bc_watershed", seed_threshold=1.5)
    with pytest.raises(ValueError, match="quantileNN"):
        decode(maps, "watershed_agglomerate", merge_function="median")
    with pytest.raises(ValueError, match="small_mode"):
        decode(maps, "bc_watershed", small_mode="merge")
