"""Synthetic EM generator: array contracts, size spread, touching pairs, determinism, files, config layer."""
import os

import h5py
import numpy as np
import pytest
from scipy import ndimage as ndi

from connectomics.config import load_cfg
from connectomics.data.synthetic import (ensure_synthetic, keep_largest_parts, make_synthetic_pair, renumber,
                                         save_overlay_png, save_preview_png, size_statistics, write_synthetic_pair)
from connectomics.data.synthetic_fields import smooth_field
from connectomics.storage import read_volume, write_volume

SMALL = (16, 64, 64)


@pytest.fixture(scope="module")
def default_pair():
    return make_synthetic_pair(seed=0)


def touching_ids(label):
    """Set of (a, b) id pairs, a < b, that are 6-adjacent somewhere."""
    pairs = set()
    for axis in range(3):
        a = np.moveaxis(label, axis, 0)[:-1].ravel()
        b = np.moveaxis(label, axis, 0)[1:].ravel()
        hit = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[hit].tolist(), b[hit].tolist())}
    return pairs


def test_contract(default_pair):
    image, label = default_pair
    assert image.shape == label.shape == (48, 192, 192)
    assert image.dtype == np.uint8 and label.dtype == np.uint32
    ids = np.unique(label)
    assert ids[0] == 0 and np.array_equal(ids, np.arange(ids.size))  # consecutive 1..N
    assert ids.size - 1 >= 8


def test_sizes_span_all_bins_and_foreground(default_pair):
    stats = size_statistics(default_pair[1])
    assert stats["small"] >= 1 and stats["medium"] >= 1 and stats["large"] >= 1, stats
    assert 0.05 <= stats["foreground"] <= 0.15, stats


def test_touching_pairs_exist(default_pair):
    assert touching_ids(default_pair[1])


def test_instances_survive_thinning(default_pair):
    """Every instance keeps voxels whose (3, 5, 5) neighbourhood lies inside it (not too thin)."""
    label = default_pair[1]
    size = (3, 5, 5)
    core = (ndi.minimum_filter(label, size) == ndi.maximum_filter(label, size)) & (label > 0)
    assert set(np.unique(label[core]).tolist()) == set(range(1, int(label.max()) + 1))


def test_anisotropic_objects(default_pair):
    """Instances span more voxels in y/x than in z (30 x 8 x 8 nm voxels)."""
    label = default_pair[1]
    extents = np.array([[s.stop - s.start for s in box] for box in ndi.find_objects(label)])
    assert np.median(np.maximum(extents[:, 1], extents[:, 2]) / extents[:, 0]) > 2.0


def test_mitochondria_darker_but_not_a_threshold(default_pair):
    image, label = default_pair
    inside, outside = image[label > 0].astype(float), image[label == 0].astype(float)
    assert inside.mean() < outside.mean() - 40
    # membranes and vesicles are dark too: some background is as dark as a typical mitochondrion
    assert np.mean(outside < np.median(inside)) > 0.001


def test_deterministic():
    a = make_synthetic_pair(SMALL, seed=3, n_instances=4)
    b = make_synthetic_pair(SMALL, seed=3, n_instances=4)
    c = make_synthetic_pair(SMALL, seed=4, n_instances=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_artefacts():
    image, label = make_synthetic_pair((24, 96, 96), seed=1, artefacts=True)
    clean, clean_label = make_synthetic_pair((24, 96, 96), seed=1)
    assert np.array_equal(np.unique(label), np.arange(label.max() + 1))
    assert (image.reshape(24, -1).mean(axis=1) < 30).sum() >= 1  # a missing (near-black) section
    assert not np.array_equal(label, clean_label)  # a misaligned block moves the labels too


@pytest.mark.parametrize("kwargs", [dict(shape=(64, 64)), dict(shape=(4, 64, 64)), dict(touching_fraction=1.5),
                                    dict(noise=-1.0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic_pair(**kwargs)


def test_smooth_field_unit_variance_and_seeded():
    field = smooth_field((20, 40, 40), (2.0, 6.0, 6.0), np.random.default_rng(0))
    assert field.dtype == np.float32 and field.shape == (20, 40, 40)
    assert abs(field.mean()) < 0.3 and 0.6 < field.std() < 1.4
    assert np.array_equal(field, smooth_field((20, 40, 40), (2.0, 6.0, 6.0), np.random.default_rng(0)))


def test_keep_largest_parts_and_renumber():
    label = np.zeros((3, 10, 10), np.uint32)
    label[1, 1:4, 1:4] = 5  # 9 voxels
    label[1, 6:8, 6:8] = 5  # 4 voxels, a second part of id 5
    label[1, 8:9, 1:3] = 7  # 2 voxels: below min_size
    keep_largest_parts(label, min_size=3)
    assert (label == 5).sum() == 9 and (label == 7).sum() == 0
    assert np.array_equal(np.unique(renumber(label)), [0, 1])


def test_preview_and_overlay_png(tmp_path, default_pair):
    image, label = default_pair
    path = save_preview_png(image, label, str(tmp_path / "sub" / "preview.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10000
    probs = (label[:4] > 0).astype(np.float32)
    out = save_overlay_png(image[:4], [label[:4], probs], str(tmp_path / "o.png"), titles=["a", "b", "c"])
    assert os.path.getsize(out) > 1000
    with pytest.raises(ValueError, match="titles"):
        save_overlay_png(image[:4], [label[:4]], str(tmp_path / "x.png"), titles=["a"])
    with pytest.raises(ValueError, match="shape"):
        save_overlay_png(image[:4], label[:3], str(tmp_path / "x.png"))


def test_write_pair_into_one_file(tmp_path):
    spec = str(tmp_path / "train.h5")
    stats = write_synthetic_pair(spec + ":image", spec + ":label", SMALL, 2, n_instances=4)
    image, label = make_synthetic_pair(SMALL, seed=2, n_instances=4)
    assert np.array_equal(read_volume(spec + ":image"), image)
    assert np.array_equal(read_volume(spec + ":label"), label)
    assert stats["n_instances"] == label.max()
    with pytest.raises(ValueError, match="HDF5"):
        write_synthetic_pair(str(tmp_path / "a.tif"), "", SMALL, 0)


def _cfg(tmp_path, enabled=True):
    t = str(tmp_path)
    return load_cfg(None, opts=[
        "DATASET.SYNTHETIC.ENABLED", str(enabled), "DATASET.SYNTHETIC.SHAPE", "[16, 64, 64]",
        "DATASET.SYNTHETIC.SEED", "7",
        "DATASET.IMAGE_NAME", f"{t}/train.h5:image", "DATASET.LABEL_NAME", f"{t}/train.h5:label",
        "DATASET.VAL_IMAGE_NAME", f"{t}/val_im.h5", "DATASET.VAL_LABEL_NAME", f"{t}/val_gt.h5",
        "INFERENCE.IMAGE_NAME", f"{t}/test_im.h5", "EVAL.GT_NAME", f"{t}/test_gt.h5",
    ])


def test_ensure_synthetic_generates_missing_only(tmp_path):
    assert ensure_synthetic(_cfg(tmp_path, enabled=False)) == []
    cfg = _cfg(tmp_path)
    written = ensure_synthetic(cfg)
    assert len(written) == 6
    t = str(tmp_path)
    train = read_volume(f"{t}/train.h5:image")
    val, test = read_volume(f"{t}/val_im.h5"), read_volume(f"{t}/test_im.h5")
    assert train.shape == (16, 64, 64) and read_volume(f"{t}/test_gt.h5").dtype == np.uint32
    assert not np.array_equal(train, val) and not np.array_equal(val, test)  # seeds 7, 8, 9
    assert np.array_equal(val, make_synthetic_pair((16, 64, 64), seed=8)[0])
    stamps = {name: os.stat(tmp_path / name).st_mtime_ns for name in os.listdir(tmp_path)}
    assert ensure_synthetic(cfg) == []  # nothing missing: nothing rewritten
    assert stamps == {name: os.stat(tmp_path / name).st_mtime_ns for name in os.listdir(tmp_path)}
    os.remove(tmp_path / "val_gt.h5")  # half a pair missing: that pair is regenerated, identically
    assert ensure_synthetic(cfg) == [f"{t}/val_im.h5", f"{t}/val_gt.h5"]
    assert np.array_equal(read_volume(f"{t}/val_im.h5"), val)
    assert os.stat(tmp_path / "train.h5").st_mtime_ns == stamps["train.h5"]


def test_ensure_synthetic_keeps_user_data(tmp_path):
    write_volume(str(tmp_path / "val_im.h5"), np.zeros((4, 8, 8), np.uint8))  # a user's volume, no label
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f.create_dataset("other", data=np.zeros(3))  # the file exists but the named keys do not
    with pytest.raises(FileExistsError, match="val_im.h5"):
        ensure_synthetic(_cfg(tmp_path))
    assert read_volume(str(tmp_path / "val_im.h5")).shape == (4, 8, 8)
    assert read_volume(str(tmp_path / "train.h5:image")).shape == (16, 64, 64)  # missing keys were written
    assert read_volume(str(tmp_path / "train.h5:other")).shape == (3,)


def test_ensure_synthetic_bad_shape_and_shared_dataset(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.defrost()
    cfg.DATASET.SYNTHETIC.SHAPE = [16, 64]
    with pytest.raises(ValueError, match="DATASET.SYNTHETIC.SHAPE"):
        ensure_synthetic(cfg)
    spec = str(tmp_path / "both.h5")
    with pytest.raises(ValueError, match="share one dataset"):
        write_synthetic_pair(spec, spec + ":main", SMALL, 0)


def test_blank_image_name_turns_a_pair_off(tmp_path):
    """``--opts DATASET.VAL_IMAGE_NAME ''`` turns validation off: its label name alone is no error."""
    cfg = _cfg(tmp_path)
    cfg.defrost()
    cfg.DATASET.VAL_IMAGE_NAME = ""
    cfg.INFERENCE.IMAGE_NAME = ""
    written = ensure_synthetic(cfg)
    t = str(tmp_path)
    assert written == [f"{t}/train.h5:image", f"{t}/train.h5:label"]
    assert not os.path.exists(f"{t}/val_gt.h5") and not os.path.exists(f"{t}/test_gt.h5")


def test_other_seed_or_myelin_regenerates_only_synthetic_files(tmp_path, caplog):
    """Files of another DATASET.SYNTHETIC seed / myelin count are made again (with a warning)."""
    import h5py

    t = str(tmp_path)
    ensure_synthetic(_cfg(tmp_path))
    cfg = _cfg(tmp_path)
    cfg.defrost()
    cfg.DATASET.SYNTHETIC.SEED = 17
    with caplog.at_level("WARNING"):
        assert len(ensure_synthetic(cfg)) == 6
    assert "hold synthetic data of other settings" in caplog.text
    with h5py.File(f"{t}/train.h5", "r") as f:
        assert f["image"].attrs["synthetic_seed"] == 17
    assert np.array_equal(read_volume(f"{t}/val_im.h5"), make_synthetic_pair((16, 64, 64), seed=18)[0])
    cfg.DATASET.SYNTHETIC.MYELIN = 3
    assert len(ensure_synthetic(cfg)) == 6
    image, label = make_synthetic_pair((16, 64, 64), seed=18, myelin=3)
    plain_image, plain_label = make_synthetic_pair((16, 64, 64), seed=18)
    assert np.array_equal(read_volume(f"{t}/val_im.h5"), image)
    assert np.array_equal(label, plain_label)  # axons are background: the labels do not change
    from scipy import ndimage as ndi

    changed = image != plain_image
    core = ndi.binary_erosion(label > 0, np.ones((3, 11, 11), bool))  # the blur (4 sigma) spreads edges
    assert core.any() and changed.any() and not (changed & core).any()  # painted on background only
    assert image[changed].mean() < plain_image[changed].mean()  # dark sheaths dominate
    cfg.DATASET.SYNTHETIC.MYELIN = -1
    with pytest.raises(ValueError, match="DATASET.SYNTHETIC.MYELIN"):
        ensure_synthetic(cfg)


def test_hard_negatives_are_background_and_part_of_the_files_identity(tmp_path, caplog):
    """Grey thick sheaths and dense bodies: painted on background only, labels unchanged; files made
    with other hard-negative settings are made again, files of the same settings are kept."""
    hard = dict(myelin=3, myelin_sheath=(0.15, 0.4), myelin_radius=(12.0, 30.0), dense_bodies=10)
    image, label = make_synthetic_pair(SMALL, seed=5, **hard)
    plain_image, plain_label = make_synthetic_pair(SMALL, seed=5, myelin=3)
    assert np.array_equal(label, plain_label)
    changed = image != plain_image
    core = ndi.binary_erosion(label > 0, np.ones((3, 11, 11), bool))
    assert changed.any() and not (changed & core).any()
    grey_sheath, _ = make_synthetic_pair(SMALL, seed=5, myelin=3, myelin_sheath=(0.3, 0.4))
    moved = grey_sheath != plain_image
    assert moved.any() and grey_sheath[moved].mean() > plain_image[moved].mean() + 20  # lighter than the 0.08-0.2 default
    bodies_only, _ = make_synthetic_pair(SMALL, seed=5, dense_bodies=10)
    base, _ = make_synthetic_pair(SMALL, seed=5)
    darker = bodies_only.astype(int) < base.astype(int) - 60  # near-black blobs on mid-grey cytoplasm
    assert darker.any() and not (darker & core).any()
    assert np.percentile(bodies_only[darker], 50) < np.percentile(base[label > 0], 5)  # darker than mitochondria

    cfg = _cfg(tmp_path)
    assert len(ensure_synthetic(cfg)) == 6
    cfg.defrost()
    cfg.DATASET.SYNTHETIC.MYELIN = 3
    cfg.DATASET.SYNTHETIC.MYELIN_SHEATH = [0.15, 0.4]
    cfg.DATASET.SYNTHETIC.MYELIN_RADIUS = [12.0, 30.0]
    cfg.DATASET.SYNTHETIC.DENSE_BODIES = 10
    with caplog.at_level("WARNING"):
        assert len(ensure_synthetic(cfg)) == 6  # other settings than the plain files: made again
    assert "hold synthetic data of other settings" in caplog.text
    assert np.array_equal(read_volume(f"{tmp_path}/val_im.h5"), make_synthetic_pair(SMALL, seed=8, **hard)[0])
    assert ensure_synthetic(cfg) == []  # same settings: kept
    cfg.DATASET.SYNTHETIC.DENSE_BODIES = 11
    assert len(ensure_synthetic(cfg)) == 6
    for key, bad in (("DENSE_BODIES", -1), ("MYELIN_SHEATH", [0.5, 0.2]), ("MYELIN_RADIUS", [1.0])):
        wrong = cfg.clone()
        wrong.DATASET.SYNTHETIC[key] = bad
        with pytest.raises(ValueError, match=f"DATASET.SYNTHETIC.{key}"):
            ensure_synthetic(wrong)


def test_files_of_the_first_myelin_stage_keep_their_identity(tmp_path):
    """A file written before the other hard negatives existed (only ``synthetic_myelin``) is the
    plain-myelin setting: not made again for a config of that setting."""
    from connectomics.data.synthetic import SETTINGS_ATTRIBUTE

    cfg = _cfg(tmp_path)
    cfg.defrost()
    cfg.DATASET.SYNTHETIC.MYELIN = 2
    ensure_synthetic(cfg)
    for name in ("train.h5", "val_im.h5", "val_gt.h5", "test_im.h5", "test_gt.h5"):
        with h5py.File(f"{tmp_path}/{name}", "a") as f:
            for key in f:
                del f[key].attrs[SETTINGS_ATTRIBUTE]
    assert ensure_synthetic(cfg) == []
