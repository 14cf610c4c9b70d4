"""Blockwise post-processing equals the single-machine result (in-process runs, several block sizes)."""
import cc3d
import numpy as np
import pytest
import zarr

from connectomics.blockwise import postprocess_blockwise
from connectomics.blockwise.components import backward_offsets, resolve_ids
from connectomics.blockwise.postprocess import check_blockwise, components_blockwise
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.geometry import BlockGrid
from connectomics.postprocess import decode
from connectomics.storage import read_volume

SHAPE = (40, 160, 160)
PARAMS = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85, min_size=128,
              small_mode="background", connectivity=6)
BLOCKS = [(16, 64, 64), (8, 32, 48), (40, 160, 160)]  # objects reach 24 x 64 x 64: most blocks are smaller


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    rng = np.random.default_rng(0)
    probs = maps_from_labels(random_ellipsoids(SHAPE, 40, rng), rng)
    path = str(tmp_path_factory.mktemp("maps") / "maps.zarr")
    zarr.create_array(store=path, shape=probs.shape, chunks=(2, 8, 32, 16), dtype="uint8")[...] = probs
    return probs, path


def same_partition(a, b):
    """True when a and b have the same background and the same grouping of foreground voxels."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]).astype(np.uint64), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def matched_agreement(labels, reference):
    """Per voxel: does ``labels`` agree with ``reference`` after mapping each id to its best reference match."""
    fg = (labels > 0) | (reference > 0)
    keys = np.stack([labels[fg], reference[fg]]).astype(np.int64)
    pairs, counts = np.unique(keys, axis=1, return_counts=True)
    best = {}
    for (own, ref), count in zip(pairs.T.tolist(), counts.tolist()):
        if own and ref and count > best.get(own, (0, 0))[0]:
            best[own] = (count, ref)
    mapped = np.array([best.get(own, (0, -1))[1] for own in keys[0].tolist()])
    agree = np.zeros(labels.shape, bool)
    agree[fg] = (mapped == keys[1]) & (keys[0] > 0)
    return agree, fg


def test_backward_offsets_cover_each_neighbour_pair_once():
    for conn, n in ((6, 3), (26, 13)):
        offsets = backward_offsets(conn)
        assert len(offsets) == n and not set(offsets) & {tuple(-v for v in o) for o in offsets}


def test_resolve_ids_unions_and_orders_by_first_member():
    lut, k = resolve_ids(6, [(5, 2), (3, 6)])
    assert k == 4 and lut.tolist() == [0, 1, 2, 3, 4, 2, 3]
    lut, k = resolve_ids(4, [(1, 2)], sizes=[0, 1, 1, 1, 5], min_seed_size=2)
    assert k == 2 and lut.tolist() == [0, 1, 1, 0, 2]
    lut, k = resolve_ids(4, [(1, 4)], first=[0, 50, 10, 30, 5])  # numbered by first voxel
    assert k == 3 and lut.tolist() == [0, 1, 2, 3, 1]


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("connectivity", [6, 26])
def test_seed_components_are_the_whole_volume_partition(maps, tmp_path, block, connectivity):
    probs, path = maps
    out = str(tmp_path / "seeds.h5")
    components_blockwise(path, out, threshold=0.9, contour_threshold=0.8, connectivity=connectivity, block=block)
    mask = (probs[0] > int(255 * 0.9)) & (probs[1] < int(255 * 0.8))
    reference = cc3d.connected_components(mask, connectivity=connectivity)
    got = read_volume(out)
    assert got.dtype == np.uint32 and got.max() == reference.max() > 20
    assert same_partition(got, reference)
    assert np.array_equal(got, reference)  # even the ids: numbered in raster order of first voxel, as cc3d


def test_foreground_components_into_zarr(maps, tmp_path):
    probs, path = maps
    out = str(tmp_path / "fg.zarr")
    components_blockwise(path, out, threshold=0.5, connectivity=26, block=(8, 32, 32))
    reference = cc3d.connected_components(probs[0] > 127, connectivity=26)
    assert same_partition(read_volume(out), reference)


@pytest.mark.parametrize("block", [BLOCKS[0], BLOCKS[2]])
@pytest.mark.parametrize("seed_connectivity", [6, 26])  # 26: the default, the predecessor's seeds
def test_watershed_with_a_full_halo_is_identical(maps, tmp_path, block, seed_connectivity):
    probs, path = maps
    params = dict(PARAMS, seed_connectivity=seed_connectivity)
    reference = decode(probs, "bc_watershed", **params)
    out = str(tmp_path / "instances.h5")
    postprocess_blockwise(path, out, "bc_watershed", params, block=block, halo=SHAPE)
    assert np.array_equal(read_volume(out), reference)


@pytest.mark.parametrize("block", BLOCKS[:2])
def test_watershed_with_a_small_halo_differs_only_where_the_halo_is_too_small(maps, tmp_path, block):
    probs, path = maps
    halo = (4, 16, 16)
    reference = decode(probs, "bc_watershed", **PARAMS)
    out = str(tmp_path / "instances.zarr")
    postprocess_blockwise(path, out, "bc_watershed", PARAMS, block=block, halo=halo)
    got = read_volume(out)
    agree, fg = matched_agreement(got, reference)
    assert agree[fg].mean() >= 0.999
    # every differing voxel belongs (in either result) to an object that leaves its block's halo box
    grid = BlockGrid(SHAPE, block)
    boxes = {}
    for volume in (reference, got):
        for label, box in enumerate(cc3d.statistics(volume.astype(np.uint32))["bounding_boxes"]):
            boxes[id(volume), label] = box
    for z, y, x in zip(*np.nonzero(fg & ~agree)):
        index = (z // grid.block[0], y // grid.block[1], x // grid.block[2])
        ext = grid.box(index, halo)
        outside = False
        for volume in (reference, got):
            label = int(volume[z, y, x])
            if label:
                box = boxes[id(volume), label]
                outside |= any(s.start < a or s.stop > b for s, (a, b) in zip(box, ext))
        assert outside, f"voxel {(z, y, x)} differs although its objects lie within the halo of block {index}"


@pytest.mark.parametrize("decoder", ["binary_watershed", "bc_connected", "seed_agglomerate"])
def test_other_decoders_match(maps, tmp_path, decoder):
    probs, path = maps
    params = {"binary_watershed": dict(seed_threshold=0.98, foreground_threshold=0.85, min_size=128),
              "bc_connected": dict(seed_threshold=0.8, contour_threshold=0.5, dilation=(1, 5, 5), min_size=128),
              "seed_agglomerate": dict(seed_threshold=0.9, contour_threshold=0.8, dilation=(1, 7, 7),
                                       min_size=128)}[decoder]
    reference = decode(probs, decoder, **params)
    out = str(tmp_path / "instances.h5")
    block, halo = ((16, 64, 64), SHAPE) if "watershed" in decoder else ((8, 32, 32), (0, 0, 0))
    postprocess_blockwise(path, out, decoder, params, block=block, halo=halo)  # growth takes its radius as halo
    assert np.array_equal(read_volume(out), reference)


def test_sizes_are_global_not_per_block(tmp_path):
    """An instance split over 8 blocks keeps all its parts although each part is below min_size."""
    labels = np.zeros((16, 64, 64), np.uint32)
    labels[4:12, 16:48, 16:48] = 1  # 8192 voxels, 1024 per block of (8, 32, 32)
    probs = np.zeros((2,) + labels.shape, np.uint8)
    probs[0][labels > 0] = 255
    path = str(tmp_path / "maps.zarr")
    zarr.create_array(store=path, shape=probs.shape, chunks=(2, 8, 32, 32), dtype="uint8")[...] = probs
    out = str(tmp_path / "out.h5")
    postprocess_blockwise(path, out, "bc_watershed", dict(PARAMS, min_size=2000), block=(8, 32, 32))
    got = read_volume(out)
    assert got.max() == 1 and np.array_equal(got > 0, labels > 0)


def test_decoders_without_a_blockwise_form_are_refused():
    with pytest.raises(ValueError, match="no blockwise form"):
        check_blockwise("watershed_agglomerate", {})
    with pytest.raises(ValueError, match="neighbor"):
        check_blockwise("bc_watershed", dict(PARAMS, small_mode="neighbor"))
