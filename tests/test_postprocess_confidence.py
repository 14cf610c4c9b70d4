"""Instance confidence (mean foreground probability) and ranking predictions by it."""
import json

import h5py
import numpy as np
import pytest
from scipy import ndimage as ndi

from connectomics.config import ConfigError, load_cfg
from connectomics.evaluation import evaluate_volumes, load_scores
from connectomics.postprocess.confidence import block_grid, instance_confidence, scores_path, write_instance_confidence
from connectomics.storage import ResumeError, VolumeError, read_volume, write_volume


def brute_force(labels, foreground):
    ids = np.unique(labels)
    ids = ids[ids > 0]
    return ids, ndi.mean(foreground.astype(np.float64), labels, ids)


@pytest.mark.parametrize("shape,chunks,max_voxels", [
    ((7, 30, 41), None, 500), ((7, 30, 41), None, 10), ((7, 30, 41), (3, 8, 16), 700),
    ((5, 9, 9), (5, 9, 9), 1), ((4, 6, 5), (8, 64, 64), 1 << 22)])
def test_block_grid_tiles_the_volume_once(shape, chunks, max_voxels):
    count = np.zeros(shape, np.int64)
    for box in block_grid(shape, chunks, max_voxels):
        count[box] += 1
    assert np.all(count == 1)


def test_block_grid_follows_storage_chunks_and_the_voxel_budget():
    boxes = block_grid((150, 8192, 8192), (64, 512, 512))
    assert boxes[0] == (slice(0, 64), slice(0, 512), slice(0, 512)) and len(boxes) == 3 * 16 * 16
    assert block_grid((10, 1024, 1024))[0] == (slice(0, 4), slice(0, 1024), slice(0, 1024))  # 4 Mi voxels


@pytest.mark.parametrize("max_voxels", [1 << 22, 333])
def test_mean_foreground_matches_brute_force(max_voxels):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, size=(6, 33, 47)).astype(np.uint64)
    labels[labels > 30] = 0
    labels[labels == 7] = 2**53 - 1  # large ids are fine (below 2**53)
    maps = rng.integers(0, 256, size=(2,) + labels.shape).astype(np.uint8)
    table = instance_confidence(labels, maps, max_voxels=max_voxels)
    ids, means = brute_force(labels, maps[0])
    assert table.shape == (len(ids), 2)
    np.testing.assert_array_equal(table[:, 0], ids.astype(np.float64))
    np.testing.assert_allclose(table[:, 1], means / 255.0, rtol=1e-12)
    floats = maps.astype(np.float32) / 255.0  # float maps are probabilities already
    np.testing.assert_allclose(instance_confidence(labels, floats, max_voxels=max_voxels)[:, 1], means / 255.0,
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_compiled_count_equals_the_numpy_count(dtype):
    """Unsigned labels with uint8 maps take the Cython loop; signed labels the bincount: same table."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 300, size=(5, 31, 29))
    labels[labels > 250] = 0
    maps = rng.integers(0, 256, size=(2,) + labels.shape).astype(np.uint8)
    compiled = instance_confidence(labels.astype(dtype), maps, max_voxels=1000)
    np.testing.assert_array_equal(compiled, instance_confidence(labels.astype(np.int32), maps, max_voxels=1000))
    ids, means = brute_force(labels, maps[0])
    np.testing.assert_allclose(compiled[:, 1], means / 255.0, rtol=1e-12)


def test_chunked_hdf5_is_read_block_by_block_with_the_same_result(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 12, size=(9, 40, 40)).astype(np.uint32)
    maps = rng.integers(0, 256, size=(2, 9, 40, 40)).astype(np.uint8)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("labels", data=labels, chunks=(2, 16, 16))
        f.create_dataset("maps", data=maps, chunks=(1, 3, 16, 16))
    with h5py.File(tmp_path / "v.h5", "r") as f:
        lazy = instance_confidence(f["labels"], f["maps"], max_voxels=600)
    np.testing.assert_allclose(lazy, instance_confidence(labels, maps))


def test_empty_prediction_and_bad_shapes():
    assert instance_confidence(np.zeros((2, 8, 8), np.uint32), np.zeros((2, 2, 8, 8), np.uint8)).shape == (0, 2)
    with pytest.raises(VolumeError, match=r"labels \(2, 8, 8\).*maps \(2, 2, 8, 9\)"):
        instance_confidence(np.zeros((2, 8, 8), np.uint32), np.zeros((2, 2, 8, 9), np.uint8))
    with pytest.raises(VolumeError, match="must be integers"):
        instance_confidence(np.zeros((2, 8, 8), np.float32), np.zeros((2, 2, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match="negative instance id -3"):
        instance_confidence(np.full((2, 8, 8), -3, np.int32), np.zeros((2, 2, 8, 8), np.uint8))
    with pytest.raises(VolumeError, match=r"above 2\*\*53.*relabel"):
        instance_confidence(np.full((2, 8, 8), 2**53 + 1, np.uint64), np.zeros((2, 2, 8, 8), np.uint8))
    signed = np.arange(128, dtype=np.int64).reshape(2, 8, 8)
    np.testing.assert_array_equal(instance_confidence(signed, np.full((2, 2, 8, 8), 255, np.uint8)),
                                  np.stack([np.arange(1, 128), np.ones(127)], 1))


def test_score_file_names():
    assert scores_path("out/instances.h5") == "out/instances_scores.txt"
    assert scores_path("out/seg.h5:run/a") == "out/seg_run_a_scores.txt"
    assert scores_path("out/instances.zarr/") == "out/instances_scores.txt"


def ranking_case():
    """Two true instances (confident) and one large false positive (doubtful)."""
    gt = np.zeros((4, 40, 60), np.uint32)
    gt[:, 2:20, 2:20] = 1
    gt[:, 22:38, 2:20] = 2
    pred = gt.copy()
    pred[:, :, 30:60] = 3  # 4,800 voxels, larger than both true ones: ranked first by size
    maps = np.zeros((2,) + gt.shape, np.uint8)
    maps[0][gt > 0] = 240
    maps[0][pred == 3] = 140
    return gt, pred, maps


def test_ranking_by_confidence_puts_a_large_doubtful_false_positive_last(tmp_path):
    gt, pred, maps = ranking_case()
    write_volume(str(tmp_path / "instances.h5"), pred)
    write_volume(str(tmp_path / "probs.h5"), maps)
    path = write_instance_confidence(str(tmp_path / "instances.h5"), str(tmp_path / "probs.h5"))
    assert path == str(tmp_path / "instances_scores.txt")
    assert open(path).readline().startswith("# id mean_foreground")
    np.testing.assert_allclose(load_scores(path), [[1, 240 / 255], [2, 240 / 255], [3, 140 / 255]], atol=1e-6)
    by_size = evaluate_volumes(gt, pred, crumb_size=0).summary
    by_confidence = evaluate_volumes(gt, pred, scores=path, crumb_size=0).summary
    # size: FP, TP, TP -> precision 2/3 at every recall; confidence: TP, TP, FP -> 1
    assert by_size["AP75"] == pytest.approx(2 / 3, abs=1e-6)
    assert by_confidence["AP75"] == pytest.approx(1.0)


def test_inference_report_ranks_by_the_configured_score(tmp_path):
    from connectomics.engine.infer import report_volume

    gt, pred, maps = ranking_case()
    for name, data in (("image.h5", (maps[0] // 2).astype(np.uint8)), ("gt.h5", gt), ("instances.h5", pred),
                       ("probs.h5", maps)):
        write_volume(str(tmp_path / name), data)
    write_instance_confidence(str(tmp_path / "instances.h5"), str(tmp_path / "probs.h5"))
    results = {}
    for score in ("size", "foreground"):
        cfg = load_cfg(None, ["EVAL.SCORE", score, "EVAL.CRUMB_SIZE", "0"])
        folder = tmp_path / score
        results[score] = report_volume(cfg, str(tmp_path / "image.h5"), str(tmp_path / "instances.h5"),
                                       str(tmp_path / "gt.h5"), str(folder), iteration=5)
        assert f"EVAL.SCORE {score}" in (folder / "eval_map.txt").read_text() + (folder / "eval.json").read_text()
    assert results["size"]["AP75"] == pytest.approx(2 / 3, abs=1e-6)
    assert results["foreground"]["AP75"] == pytest.approx(1.0)
    # each report also gives the other ranking, from the same matching pass
    other = json.loads((tmp_path / "size" / "eval.json").read_text())["other_rankings"]
    assert other["confidence (mean foreground)"]["AP75"] == pytest.approx(1.0)
    other = json.loads((tmp_path / "foreground" / "eval.json").read_text())["other_rankings"]
    assert other["size (the challenge's)"]["AP75"] == pytest.approx(2 / 3, abs=1e-6)


def test_postprocess_script_writes_the_score_file(tmp_path):
    import importlib.util
    import os

    gt, _, maps = ranking_case()
    maps[1] = 0
    write_volume(str(tmp_path / "probs.h5"), maps)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "postprocess.py")
    spec = importlib.util.spec_from_file_location("postprocess_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "seg.h5"
    assert module.main(["-i", str(tmp_path / "probs.h5"), "-o", str(out), "--opts", "POSTPROCESS.MIN_SIZE", "10"]) == 0
    labels = read_volume(str(out))
    table = load_scores(str(tmp_path / "seg_scores.txt"))
    ids, means = brute_force(labels, maps[0])
    assert len(ids) >= 2
    np.testing.assert_allclose(table, np.stack([ids, means / 255.0], 1), atol=1e-6)


def test_unknown_score_is_a_config_error():
    with pytest.raises(ConfigError, match=r"EVAL.SCORE = 'confidence': must be size or foreground"):
        load_cfg(None, ["EVAL.SCORE", "confidence"])


def test_tuning_scores_decodes_with_the_configured_ranking(tmp_path):
    from connectomics.engine.tune import run_tuning

    gt, _, maps = ranking_case()
    write_volume(str(tmp_path / "probs.h5"), maps)
    write_volume(str(tmp_path / "gt.h5"), gt)
    fixed = ["POSTPROCESS.SEED_THRESHOLD", "0.5", "POSTPROCESS.FOREGROUND_THRESHOLD", "0.5",
             "POSTPROCESS.CONTOUR_THRESHOLD", "0.8", "POSTPROCESS.MIN_SIZE", "0", "EVAL.CRUMB_SIZE", "0",
             "POSTPROCESS.TUNE.SEED_THRESHOLDS", "[0.5]", "POSTPROCESS.TUNE.CONTOUR_THRESHOLDS", "[0.8]",
             "POSTPROCESS.TUNE.FOREGROUND_THRESHOLDS", "[0.5]"]
    for score, ap in (("size", "0.6667"), ("foreground", "1.0000")):
        report = run_tuning(load_cfg(None, fixed + ["EVAL.SCORE", score]), str(tmp_path / "probs.h5"),
                            str(tmp_path / "gt.h5"), str(tmp_path / score))
        row = next(line for line in report.splitlines() if line.startswith("AP-75"))
        assert row.split()[-2:] == [ap, ap], report


def test_a_failed_rewrite_leaves_no_stale_score_file(tmp_path):
    """The score file of earlier instances is removed before new instances are written."""
    from connectomics.postprocess import build_decoder, postprocess_file

    _, _, maps = ranking_case()
    write_volume(str(tmp_path / "probs.h5"), maps)
    out = tmp_path / "instances.h5"
    stale = tmp_path / "instances_scores.txt"
    stale.write_text("# stale\n1 0.5\n")
    out.mkdir()  # the instance volume cannot be written (a folder in the way: refused, or with overwrite kept)
    with pytest.raises(ResumeError):
        postprocess_file(str(tmp_path / "probs.h5"), str(out), build_decoder(load_cfg()))
    assert stale.exists()  # refused before anything was touched
    with pytest.raises(OSError):
        postprocess_file(str(tmp_path / "probs.h5"), str(out), build_decoder(load_cfg()), overwrite=True)
    assert not stale.exists() and out.is_dir()
