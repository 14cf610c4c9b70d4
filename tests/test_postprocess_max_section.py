"""The cross-section limit: instances wider than the training labels' widest one are removed, in every
decoder, blockwise as in one process, and derived from the labels through the config door."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import zarr

from connectomics.blockwise import postprocess_blockwise
from connectomics.config import load_cfg
from connectomics.postprocess import decode, decoder_params
from connectomics.postprocess.cleanup import mean_sections, remove_wide_instances, slice_spans
from connectomics.postprocess.label_prior import label_sections, max_section_from_labels
from connectomics.storage import read_volume

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scene():
    """(labels, probs): a wide flat sheet (4 slices of 40 x 60 = 2400 px), a tall narrow tube
    (12 slices of 12 x 12 = 144 px) and a medium blob (6 slices of 30 x 30 = 900 px), apart."""
    labels = np.zeros((16, 96, 128), np.uint32)
    labels[2:6, 4:44, 4:64] = 1
    labels[1:13, 60:72, 10:22] = 2
    labels[5:11, 55:85, 70:100] = 3
    probs = np.zeros((2,) + labels.shape, np.uint8)
    probs[0][labels > 0] = 255
    return labels, probs


def test_slice_spans_and_mean_sections():
    labels, _ = scene()
    ids, voxels, first, last = slice_spans(labels, z0=100)
    assert ids.tolist() == [1, 2, 3] and voxels.tolist() == [9600, 1728, 5400]
    assert first.tolist() == [102, 101, 105] and last.tolist() == [105, 112, 110]
    assert mean_sections(voxels, first, last).tolist() == [2400.0, 144.0, 900.0]
    assert [len(a) for a in slice_spans(np.zeros((3, 4, 4), np.uint32))] == [0, 0, 0, 0]


def test_remove_wide_instances_relabels_in_place():
    labels, _ = scene()
    out, n = remove_wide_instances(labels, 1000)
    assert out is labels and n == 2
    assert not (out[2:6, 4:44, 4:64]).any()  # the sheet is gone
    assert (out[1:13, 60:72, 10:22] == 1).all() and (out[5:11, 55:85, 70:100] == 2).all()  # consecutive ids
    same, _ = scene()
    assert remove_wide_instances(same, 0)[1] == 3 and np.array_equal(same, scene()[0])  # 0: nothing removed
    assert remove_wide_instances(scene()[0], 2400)[1] == 3  # at the limit: kept


@pytest.mark.parametrize("decoder, params", [
    ("bc_watershed", dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.5)),
    ("binary_watershed", dict(seed_threshold=0.9, foreground_threshold=0.5)),
    ("bc_connected", dict(seed_threshold=0.9, contour_threshold=0.8, dilation=(1, 3, 3))),
    ("seed_agglomerate", dict(seed_threshold=0.9, contour_threshold=0.8, dilation=(1, 3, 3))),
    ("watershed_agglomerate", dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.5)),
])
def test_every_decoder_removes_the_wide_instance(decoder, params):
    labels, probs = scene()
    full = decode(probs, decoder, min_size=100, **params)
    limited = decode(probs, decoder, min_size=100, max_section=1200, **params)
    assert full.max() == 3 and limited.max() == 2
    sheet = np.isin(full, np.unique(full[labels == 1]))  # the sheet's instance, grown by the dilation
    assert not limited[sheet].any() and np.array_equal(limited > 0, (full > 0) & ~sheet)
    with pytest.raises(ValueError, match="max_section = -1"):
        decode(probs, decoder, max_section=-1, **params)


@pytest.mark.parametrize("block", [(4, 32, 32), (16, 96, 128)])
def test_blockwise_judges_the_whole_instance(tmp_path, block):
    """The sheet cut by block borders is judged by its whole section and span, as in one process."""
    labels, probs = scene()
    path = str(tmp_path / "maps.zarr")
    zarr.create_array(store=path, shape=probs.shape, chunks=(2, 4, 32, 32), dtype="uint8")[...] = probs
    params = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.5, min_size=100,
                  max_section=1200)
    out = str(tmp_path / "out.h5")
    postprocess_blockwise(path, out, "bc_watershed", params, block=block, halo=(4, 16, 16))
    reference = decode(probs, "bc_watershed", **params)
    assert reference.max() == 2 and not reference[labels == 1].any()  # the sheet removed, the others kept
    assert np.array_equal(read_volume(out), reference)
    # a limit above the tube's mean section but below its voxel count per block keeps it whole
    out2 = str(tmp_path / "out2.h5")
    postprocess_blockwise(path, out2, "bc_watershed", dict(params, max_section=150), block=block, halo=(4, 16, 16))
    assert np.array_equal(read_volume(out2) > 0, labels == 2)


def test_label_sections_instances_and_binary_masks(tmp_path):
    labels, _ = scene()
    assert sorted(label_sections(labels).tolist()) == [144.0, 900.0, 2400.0]
    assert sorted(label_sections(labels[None]).tolist()) == [144.0, 900.0, 2400.0]  # (1, Z, Y, X)
    two = labels.copy()
    two[2:6, 4:44, 30] = 0  # the sheet cut into 40 x 26 and 40 x 33 pixels, given as a mask
    assert sorted(label_sections((two > 0).astype(np.uint8) * 255, binary=True).tolist()) == [
        144.0, 900.0, 1040.0, 1320.0]
    path = str(tmp_path / "labels.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=labels, chunks=(1, 96, 128))
    assert max_section_from_labels(1.5, path + ":main") == 3600.0
    with pytest.raises(ValueError, match="needs the training labels"):
        max_section_from_labels(1.5, "")
    empty = str(tmp_path / "empty.h5")
    with h5py.File(empty, "w") as f:
        f.create_dataset("main", data=np.zeros((2, 8, 8), np.uint16))
    with pytest.raises(ValueError, match="hold no instance"):
        max_section_from_labels(1.5, empty + ":main")


def test_config_door_derives_the_limit_and_keeps_old_identities(tmp_path):
    labels, _ = scene()
    path = str(tmp_path / "labels.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=labels)
    assert "max_section" not in decoder_params(load_cfg())[1]  # 0: outputs made before the key stay valid
    train = ["DATASET.IMAGE_NAME", path + ":main", "DATASET.LABEL_NAME", path + ":main"]
    cfg = load_cfg(opts=train + ["POSTPROCESS.MAX_SECTION_FROM_LABELS", "1.5"])
    assert decoder_params(cfg)[1]["max_section"] == 3600.0
    with h5py.File(path, "w") as f:  # other label content, same name: another limit
        f.create_dataset("main", data=(labels == 2).astype(np.uint32))
    assert decoder_params(cfg)[1]["max_section"] == 216.0
    assert decoder_params(load_cfg(opts=["POSTPROCESS.MAX_SECTION", "500"]))[1]["max_section"] == 500.0
    both = load_cfg(opts=train + ["POSTPROCESS.MAX_SECTION", "500", "POSTPROCESS.MAX_SECTION_FROM_LABELS", "1.5"])
    with pytest.raises(ValueError, match="set one of them"):
        decoder_params(both)


def test_script_without_training_labels_is_one_line_and_exit_2(tmp_path):
    _, probs = scene()
    maps = str(tmp_path / "probs.h5")
    with h5py.File(maps, "w") as f:
        f.create_dataset("main", data=probs)
    out = str(tmp_path / "instances.h5")
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "postprocess.py"), "-i", maps, "-o", out, "--opts",
           "POSTPROCESS.MAX_SECTION_FROM_LABELS", "1.5"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "needs the training labels (DATASET.LABEL_NAME)" in done.stderr
    assert "Traceback" not in done.stderr and not os.path.exists(out)
    done = subprocess.run(cmd[:-2] + ["POSTPROCESS.MAX_SECTION", "1200", "POSTPROCESS.MIN_SIZE", "100"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert read_volume(out).max() == 2
