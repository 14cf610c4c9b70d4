"""Blockwise post-processing outputs: named keys in zarr groups and HDF5 files, and maps rewritten since a run."""
import os

import h5py
import numpy as np
import pytest
import zarr

from connectomics.blockwise import ResumeError, postprocess_blockwise
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.postprocess import decode
from connectomics.storage import SETTINGS, read_volume

SHAPE = (16, 64, 64)
PARAMS = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85, min_size=32,
              small_mode="background", connectivity=6)
RUN = dict(block=(8, 32, 32), halo=SHAPE)


def make_maps(path, seed, settings=None):
    """(2, Z, Y, X) uint8 maps of random ellipsoids in a zarr store, optionally with recorded run settings."""
    rng = np.random.default_rng(seed)
    probs = maps_from_labels(random_ellipsoids(SHAPE, 8, rng), rng)
    array = zarr.create_array(store=path, shape=probs.shape, chunks=(2, 8, 32, 32), dtype="uint8", overwrite=True)
    array[...] = probs
    if settings is not None:
        array.attrs[SETTINGS] = settings
    return probs


@pytest.mark.parametrize("recorded", [None, {"model": "a"}])
def test_maps_rewritten_since_the_run_are_not_reused(tmp_path, recorded):
    """Maps rewritten under the same name (inference with another checkpoint) never reuse old instances."""
    path, out = str(tmp_path / "probs.zarr"), str(tmp_path / "instances.h5")
    make_maps(path, 0, recorded)
    postprocess_blockwise(path, out, "bc_watershed", PARAMS, **RUN)
    postprocess_blockwise(path, out, "bc_watershed", PARAMS, **RUN)  # same maps: reused
    probs = make_maps(path, 1, None if recorded is None else {"model": "b"})
    if recorded is None:  # no recorded settings: the metadata file's time tells
        os.utime(os.path.join(path, "zarr.json"), ns=(1, 1))
    with pytest.raises(ResumeError, match="input_id"):
        postprocess_blockwise(path, out, "bc_watershed", PARAMS, **RUN)
    postprocess_blockwise(path, out, "bc_watershed", PARAMS, overwrite=True, **RUN)
    assert np.array_equal(read_volume(out), decode(probs, "bc_watershed", **PARAMS))


def test_hdf5_output_key_keeps_the_other_datasets(tmp_path):
    path, out = str(tmp_path / "probs.zarr"), str(tmp_path / "volume.h5")
    probs = make_maps(path, 0)
    image = np.arange(np.prod(SHAPE), dtype=np.uint32).reshape(SHAPE)
    with h5py.File(out, "w") as f:
        f.create_dataset("image", data=image)
    postprocess_blockwise(path, out + ":seg", "bc_watershed", PARAMS, **RUN)
    reference = decode(probs, "bc_watershed", **PARAMS)
    postprocess_blockwise(path, out + ":seg", "bc_watershed", PARAMS, **RUN)  # complete: nothing to do
    other = dict(PARAMS, min_size=1)
    with pytest.raises(ResumeError, match="min_size"):
        postprocess_blockwise(path, out + ":seg", "bc_watershed", other, **RUN)
    postprocess_blockwise(path, out + ":seg", "bc_watershed", other, overwrite=True, **RUN)
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["image", "seg"]
        np.testing.assert_array_equal(f["image"][...], image)
    np.testing.assert_array_equal(read_volume(out + ":seg"), decode(probs, "bc_watershed", **other))
    assert reference.max() > 1


def test_zarr_output_key_is_an_array_of_a_group(tmp_path):
    path, out = str(tmp_path / "probs.zarr"), str(tmp_path / "seg.zarr")
    probs = make_maps(path, 0)
    reference = decode(probs, "bc_watershed", **PARAMS)
    postprocess_blockwise(path, out + ":seg", "bc_watershed", PARAMS, **RUN)
    postprocess_blockwise(path, out + ":cc", "bc_connected", dict(seed_threshold=0.8, contour_threshold=0.5),
                          block=(8, 32, 32))
    np.testing.assert_array_equal(read_volume(out + ":seg"), reference)
    assert read_volume(out + ":cc").max() > 1
    assert sorted(zarr.open_group(out, mode="r").array_keys()) == ["cc", "seg"]
    assert sorted(os.listdir(tmp_path)) == ["probs.zarr", "seg.zarr"]  # no temporary or work folders left
    postprocess_blockwise(path, str(tmp_path / "plain.zarr"), "bc_watershed", PARAMS, **RUN)
    with pytest.raises(ValueError, match="not a zarr group"):  # an array store in the way: refused up front
        postprocess_blockwise(path, str(tmp_path / "plain.zarr:seg"), "bc_watershed", PARAMS, **RUN)


def test_float_maps_are_quantised_per_block_as_in_one_process(tmp_path):
    """Float maps in [0, 1] (scripts/postprocess.py accepts them) decode as the single-process decoder does."""
    path, out = str(tmp_path / "probs.zarr"), str(tmp_path / "instances.h5")
    probs = make_maps(str(tmp_path / "u8.zarr"), 0).astype(np.float32) / 255
    zarr.create_array(store=path, shape=probs.shape, chunks=(2, 8, 32, 32), dtype="float32")[...] = probs
    postprocess_blockwise(path, out, "bc_watershed", PARAMS, **RUN)
    reference = decode(probs, "bc_watershed", **PARAMS)
    assert reference.max() > 1
    np.testing.assert_array_equal(read_volume(out), reference)
    postprocess_blockwise(path, str(tmp_path / "defaults.h5"))  # params default to the decoder's own


def _cfg(*opts):
    from connectomics.config import load_cfg

    return load_cfg(None, ["BLOCKWISE.BLOCK_SIZE", "[8, 32, 32]", "BLOCKWISE.HALO", str(list(SHAPE)),
                           "POSTPROCESS.MIN_SIZE", "32", *opts])


def test_confidence_table_follows_the_written_dataset_and_survives_a_refused_run(tmp_path):
    """The table is of the dataset the export wrote (not the file's first one), of nested zarr members
    too, and a run refused for other settings keeps the table of the instances it left untouched."""
    from connectomics.blockwise.build import postprocess_from_cfg
    from connectomics.evaluation import load_scores
    from connectomics.postprocess.confidence import instance_confidence

    path = str(tmp_path / "probs.zarr")
    probs = make_maps(path, 0)
    out = tmp_path / "both.h5"
    with h5py.File(out, "w") as f:
        f.create_dataset("image", data=np.arange(16 * 64 * 64, dtype=np.uint32).reshape(SHAPE) % 251)
    postprocess_from_cfg(_cfg(), path, str(out), None)
    labels = read_volume(str(out) + ":main")
    expected = instance_confidence(labels, probs)
    assert len(expected) > 1
    scores = tmp_path / "both_scores.txt"
    np.testing.assert_allclose(load_scores(str(scores)), expected, atol=1e-6)
    with pytest.raises(ResumeError):
        postprocess_from_cfg(_cfg("POSTPROCESS.MIN_SIZE", "64"), path, str(out), None)
    np.testing.assert_allclose(load_scores(str(scores)), expected, atol=1e-6)
    nested = str(tmp_path / "store.zarr") + ":grp/seg"
    postprocess_from_cfg(_cfg(), path, nested, None)
    np.testing.assert_array_equal(read_volume(nested), labels)
    np.testing.assert_allclose(load_scores(str(tmp_path / "store_grp_seg_scores.txt")), expected, atol=1e-6)
