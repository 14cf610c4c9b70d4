"""Small-instance removal, relabelling, output dtype, the config door and the file entry point."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from connectomics.config import ConfigError, load_cfg
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.postprocess import (build_decoder, decoder_params, label_dtype, postprocess_file,
                                      remove_small_instances)
from connectomics.storage import VolumeError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_remove_small_to_background_relabels_consecutively():
    labels = np.zeros((1, 4, 10), np.uint32)
    labels[0, :, 0:4] = 9  # 16 voxels
    labels[0, :2, 5] = 4  # 2 voxels
    labels[0, :, 7:10] = 20  # 12 voxels
    out, n = remove_small_instances(labels, min_size=10)
    assert n == 2 and out.dtype == np.uint32
    assert out is labels  # in place
    np.testing.assert_array_equal(out[0, 0], [1, 1, 1, 1, 0, 0, 0, 2, 2, 2])  # order of the old ids kept


def test_remove_small_to_neighbour():
    labels = np.zeros((1, 5, 12), np.uint32)
    labels[0, :, :5] = 1
    labels[0, :, 7:] = 2
    labels[0, 1:4, 5] = 3  # touches 1 on 3 faces
    labels[0, 2, 6] = 3  # and 2 on one face
    labels[0, 0, 11] = 0
    labels[0, 4, 11] = 5  # a small instance touching only 2
    out, n = remove_small_instances(labels.copy(), min_size=6, mode="neighbor")
    assert n == 2
    assert (out[0, 1:4, 5] == 1).all() and out[0, 2, 6] == 1 and out[0, 4, 11] == 2
    isolated = np.zeros((1, 3, 3), np.uint32)
    isolated[0, 1, 1] = 7
    assert remove_small_instances(isolated, 2, "neighbor")[1] == 0  # nothing to join: background


def test_remove_small_accepts_other_dtypes_and_checks_arguments():
    out, n = remove_small_instances(np.array([[[3, 3, 0, -0]]], np.int64), min_size=1)
    assert n == 1 and out.dtype == np.uint32
    with pytest.raises(ValueError, match="background, neighbor"):
        remove_small_instances(np.zeros((1, 1, 1), np.uint32), 1, "merge")
    with pytest.raises(ValueError, match="non-negative integer"):
        remove_small_instances(np.array([[[-1, 2]]], np.int32), 1)
    with pytest.raises(ValueError, match="max_id = 1"):
        remove_small_instances(np.array([[[1, 2]]], np.uint32), 1, max_id=1)


def test_dense_sizes_and_groups_match_the_sparse_path():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 9, (4, 10, 10)).astype(np.uint32)
    sparse, n_sparse = remove_small_instances(labels.copy(), 45)
    dense, n_dense = remove_small_instances(labels.copy(), 45, max_id=8)
    np.testing.assert_array_equal(dense, sparse)
    groups = np.array([0, 1, 1, 2, 3, 3, 4, 5, 5])  # ids 1-2, 4-5 and 7-8 form one instance each
    grouped, n = remove_small_instances(labels.copy(), 100, max_id=8, groups=groups)
    expected, n_expected = remove_small_instances(groups[labels].astype(np.uint32), 100)
    assert n == n_expected
    np.testing.assert_array_equal(grouped, expected)


def test_output_dtype_selection():
    assert label_dtype(0) == np.uint32
    assert label_dtype(2 ** 32 - 1) == np.uint32
    assert label_dtype(2 ** 32) == np.uint64
    with pytest.raises(ValueError):
        label_dtype(-1)
    big = np.zeros((1, 1, 3), np.uint64)
    big[0, 0] = [2 ** 40, 2 ** 40, 5]
    out, n = remove_small_instances(big, 1)
    assert n == 2 and out.dtype == np.uint32  # fits after relabelling


def test_build_decoder_reads_the_config():
    cfg = load_cfg(opts=["POSTPROCESS.DECODER", "seed_agglomerate", "POSTPROCESS.CONTOUR_THRESHOLD", "0.75",
                         "POSTPROCESS.DILATION", "[1, 5, 5]"])
    name, params = decoder_params(cfg)
    assert name == "seed_agglomerate"
    assert params == {"seed_threshold": 0.9, "contour_threshold": 0.75, "min_size": 128,
                      "small_mode": "background", "dilation": (1, 5, 5), "dilation_mode": "background"}
    decode_fn = build_decoder(cfg)
    assert decode_fn(np.zeros((2, 2, 8, 8), np.uint8)).dtype == np.uint32


@pytest.mark.parametrize("opts, match", [
    (["POSTPROCESS.DECODER", "magic"], "POSTPROCESS.DECODER.*valid: bc_watershed"),
    (["POSTPROCESS.DECODER", "watershed_agglomerate", "POSTPROCESS.MERGE_FUNCTION", "median"], "quantileNN"),
    (["POSTPROCESS.DECODER", "bc_connected", "POSTPROCESS.DILATION", "[1, 4, 4]"], "odd"),
])
def test_build_decoder_errors_name_the_key(opts, match):
    with pytest.raises((ValueError, ConfigError), match=match):
        build_decoder(load_cfg(opts=opts))


@pytest.fixture(scope="module")
def probs_file(tmp_path_factory):
    rng = np.random.default_rng(5)
    labels = random_ellipsoids((16, 96, 96), 8, rng)
    path = str(tmp_path_factory.mktemp("pp") / "probs.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=maps_from_labels(labels, rng))
    return path


def test_postprocess_file_writes_uint32_atomically(probs_file, tmp_path):
    out = str(tmp_path / "instances.h5")
    assert postprocess_file(probs_file + ":main", out, build_decoder(load_cfg())) == out
    with h5py.File(out, "r") as f:
        labels = f["main"][...]
    assert labels.dtype == np.uint32 and labels.shape == (16, 96, 96) and labels.max() >= 3
    assert not any(name.endswith(".partial") for name in os.listdir(tmp_path))


def test_postprocess_file_rejects_bad_maps(tmp_path):
    path = str(tmp_path / "bad.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=np.zeros((3, 2, 4, 4), np.uint8))
    with pytest.raises(VolumeError, match="bad.h5.*expected 2 channels"):
        postprocess_file(path, str(tmp_path / "out.h5"), build_decoder(load_cfg()))
    assert not os.path.exists(tmp_path / "out.h5")


def test_script_end_to_end(probs_file, tmp_path):
    out = str(tmp_path / "instances.h5")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "postprocess.py"), "-i", probs_file, "-o", out,
           "--opts", "POSTPROCESS.DECODER", "bc_connected", "POSTPROCESS.MIN_SIZE", "50"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as f:
        assert f["main"].dtype == np.uint32 and f["main"][...].max() >= 3
    bad = subprocess.run(cmd[:-5] + ["--opts", "POSTPROCESS.DECODER", "nope"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "valid: bc_watershed" in bad.stderr


def test_postprocess_to_ome_zarr_label_is_refused_for_other_settings(probs_file, tmp_path):
    from connectomics.storage import ResumeError, read_volume
    from connectomics.storage.voxel import read_voxel_size

    out = str(tmp_path / "result.ome.zarr") + ":labels/instances"
    postprocess_file(probs_file + ":main", out, build_decoder(load_cfg()), attrs={"voxel_size": [30, 8, 8]})
    labels = read_volume(out)
    assert labels.dtype == np.uint32 and labels.max() >= 3 and read_voxel_size(out) == (30.0, 8.0, 8.0)
    other = build_decoder(load_cfg(opts=["POSTPROCESS.MIN_SIZE", "500"]))
    with pytest.raises(ResumeError, match="exists and was made with other settings.*--overwrite"):
        postprocess_file(probs_file + ":main", out, other, attrs={"voxel_size": [30, 8, 8]})
    assert np.array_equal(read_volume(out), labels)  # untouched
    postprocess_file(probs_file + ":main", out, other, overwrite=True, attrs={"voxel_size": [30, 8, 8]})
    assert read_volume(out).max() <= labels.max()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]


def test_postprocess_and_evaluate_commands_do_not_import_torch(probs_file, tmp_path):
    """The commands a user times (issue 19) start without torch (1.6 s of imports)."""
    out = str(tmp_path / "instances.h5")
    code = f"""
import runpy, sys
for argv in (["postprocess.py", "-i", {probs_file!r}, "-o", {out!r}],
             ["evaluate.py", "-gt", {out!r}, "-p", {out!r}, "-o", {str(tmp_path / "eval")!r}]):
    sys.argv = argv
    try:
        runpy.run_path({os.path.join(ROOT, "scripts")!r} + "/" + argv[0], run_name="__main__")
    except SystemExit as exit:
        assert not exit.code, exit.code
print("torch" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"
    with h5py.File(out, "r") as f:
        assert f["main"][...].max() >= 3
