"""Evaluator inputs: dtypes, ids, shapes, files, scores, slices, and the errors for bad input."""
import logging

import h5py
import numpy as np
import pytest

from connectomics.evaluation import LabelError, ScoreError, evaluate_volumes, load_scores
from connectomics.storage import parse_iteration
from connectomics.fixtures.label_pairs import make_label_pair
from connectomics.storage import VolumeError


@pytest.fixture(scope="module")
def pair():
    return make_label_pair((16, 64, 64), 14, np.random.default_rng(7), radius_z=(2, 5),
                           radius_xy=(6, 22), max_id=5000)


@pytest.fixture(scope="module")
def expected(pair):
    return evaluate_volumes(*pair, crumb_size=500).summary


def same(result, expected):
    return {k: result.summary[k] for k in expected} == expected


@pytest.mark.parametrize("gt_dtype, pred_dtype", [(np.uint64, np.uint64), (np.int64, np.int16),
                                                  (np.int32, np.uint16), (np.uint16, np.int64)])
def test_integer_dtypes_agree(pair, expected, gt_dtype, pred_dtype):
    gt, pred = pair
    assert same(evaluate_volumes(gt.astype(gt_dtype), pred.astype(pred_dtype), crumb_size=500), expected)


def test_big_endian_labels(pair, expected, tmp_path):
    gt, pred = (v.astype(">u4") for v in pair)
    assert same(evaluate_volumes(gt, pred.astype(">i8"), crumb_size=500), expected)
    with h5py.File(tmp_path / "be.h5", "w") as f:
        f["gt"], f["pred"] = gt, pred
    assert same(evaluate_volumes(f"{tmp_path / 'be.h5'}:gt", f"{tmp_path / 'be.h5'}:pred", crumb_size=500), expected)


def test_huge_non_consecutive_ids(pair, expected):
    gt, pred = (v.astype(np.uint64) for v in pair)
    gt[gt > 0] += np.uint64(2**63 + 12345)  # ids above 2**63
    pred[pred > 0] *= np.uint64(2**40)
    result = evaluate_volumes(gt, pred, crumb_size=500)
    assert same(result, expected)
    assert result.matches.all_gt_ids.min() > 2**63
    assert result.matches.all_gt_ids.dtype == np.uint64


def test_float_labels_warn(pair, expected, caplog):
    gt, pred = pair
    with caplog.at_level(logging.WARNING):
        result = evaluate_volumes(gt.astype(np.float64), pred.astype(np.float32), crumb_size=500)
    assert same(result, expected)
    assert "float labels" in caplog.text


def test_leading_singleton_axis(pair, expected, tmp_path):
    gt, pred = pair
    assert same(evaluate_volumes(gt[None], pred[None], crumb_size=500), expected)
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gt/seg", data=gt[None], chunks=(1, 4, 64, 64))
        f.create_dataset("pred", data=pred)
    result = evaluate_volumes(f"{path}:gt/seg", f"{path}:pred", crumb_size=500, chunk_slices=5)
    assert same(result, expected)
    with h5py.File(path, "r") as f:  # open h5py datasets work too
        assert same(evaluate_volumes(f["gt/seg"], f["pred"], crumb_size=500, chunk_slices=3), expected)


@pytest.mark.parametrize("chunk", [1, 3, 16, 100])
def test_chunk_size_does_not_change_the_result(pair, expected, chunk):
    assert same(evaluate_volumes(*pair, crumb_size=500, chunk_slices=chunk), expected)


def test_slab_cap(pair, expected):
    from connectomics.evaluation.overlap import slab_depth

    assert slab_depth(100, (100, 2048, 2048), (4, 4)) == 8
    assert slab_depth(100, (100, 2048, 2048), (8, 2), max_slab_mib=None) == 100
    assert slab_depth(5, (10, 64, 64), (1, 1)) == 5
    assert slab_depth(100, (10, 10**5, 10**5), (8, 8)) == 1
    assert same(evaluate_volumes(*pair, crumb_size=500, max_slab_mib=0.02), expected)  # 1-slice reads


def test_slices_equal_cropping(pair):
    gt, pred = pair
    cropped = evaluate_volumes(gt[3:11], pred[3:11], crumb_size=500).summary
    assert evaluate_volumes(gt, pred, crumb_size=500, slices=(3, 11), chunk_slices=3).summary == cropped
    with pytest.raises(ValueError, match="slice range"):
        evaluate_volumes(gt, pred, slices=(5, 99))


def test_shape_mismatch_names_both(pair, tmp_path):
    gt, pred = pair
    path = tmp_path / "pred.h5"
    with h5py.File(path, "w") as f:
        f["main"] = pred[:8]
    with pytest.raises(LabelError, match=r"shape mismatch.*pred\.h5:/main.*\(8, 64, 64\)"):
        evaluate_volumes(gt, str(path))


def test_missing_key_and_file(pair, tmp_path):
    gt, _ = pair
    path = tmp_path / "gt.h5"
    with h5py.File(path, "w") as f:
        f["main"] = gt
    with pytest.raises(VolumeError, match=r"gt\.h5 has no dataset 'labels'; it has: main"):
        evaluate_volumes(f"{path}:labels", gt)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        evaluate_volumes(gt, str(tmp_path / "missing.h5"))


def test_non_integer_labels_rejected(pair, tmp_path):
    gt, pred = pair
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        f["seg"] = pred.astype(np.float32) + 0.5
    with pytest.raises(LabelError, match=r"p\.h5:/seg: labels must be non-negative integers, found"):
        evaluate_volumes(gt, f"{path}:seg")
    with pytest.raises(LabelError, match="label ids must be >= 0"):
        evaluate_volumes(gt.astype(np.int32) - 1, pred)
    with pytest.raises(LabelError, match="labels must be integers"):
        evaluate_volumes(gt.astype(np.complex64), pred)
    with pytest.raises(LabelError, match=r"expected a \(Z, Y, X\)"):
        evaluate_volumes(gt[0], pred[0])


def test_score_files(pair, tmp_path):
    gt, pred = pair
    ids = np.unique(pred)[1:]
    scores = np.column_stack([ids, np.arange(len(ids))[::-1] * 0.1])
    direct = evaluate_volumes(gt, pred, scores=scores).summary
    np.savetxt(tmp_path / "s.txt", scores)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["scores"] = scores.T  # 2 x N is transposed
    assert evaluate_volumes(gt, pred, scores=str(tmp_path / "s.txt")).summary == direct
    assert evaluate_volumes(gt, pred, scores=f"{tmp_path / 's.h5'}:scores").summary == direct
    assert evaluate_volumes(gt, pred, scores=dict(zip(ids.tolist(), scores[:, 1]))).summary == direct
    assert load_scores(tmp_path / "s.txt").shape == (len(ids), 2)


def test_scores_control_which_predictions_count(pair):
    gt, pred = pair
    ids = np.unique(pred)[1:]
    scores = np.column_stack([np.r_[ids[:3], 999999, ids[0]], [1, 2, 3, 4, 5]])
    result = evaluate_volumes(gt, pred, scores=scores)
    # unscored predictions are not evaluated, unknown ids dropped, the last duplicate wins
    assert result.matches.pred_ids.tolist() == [ids[0], ids[2], ids[1]]
    assert result.matches.pred_scores.tolist() == [5, 3, 2]
    assert any("no score" in n for n in result.notes) and any("absent" in n for n in result.notes)


def test_bad_scores_rejected(pair, tmp_path):
    gt, pred = pair
    with pytest.raises(ScoreError, match="N x 2"):
        evaluate_volumes(gt, pred, scores=np.zeros((3, 3)))
    with pytest.raises(ScoreError, match="ids must be integers"):
        evaluate_volumes(gt, pred, scores=np.array([[1.5, 2.0]]))
    (tmp_path / "s.dat").write_text("1 2\n")
    with pytest.raises(ScoreError, match="unknown score file format"):
        evaluate_volumes(gt, pred, scores=str(tmp_path / "s.dat"))


def test_bad_parameters(pair):
    with pytest.raises(ValueError, match="area thresholds"):
        evaluate_volumes(*pair, area_thresholds=(3e4, 5e3))
    with pytest.raises(ValueError, match="chunk_slices"):
        evaluate_volumes(*pair, chunk_slices=0)


@pytest.mark.parametrize("name, iteration", [
    ("checkpoint_012000.pth.tar", 12000), ("/out/297000_out_100_256_256_aug_0.h5", 297000),
    ("/runs/checkpoint_000150/instances.h5", None), ("run3/checkpoint_1500_instances.h5", 1500),
    ("instances.h5", None), ("00042.h5", 42)])
def test_parse_iteration(name, iteration):
    assert parse_iteration(name) == iteration


def test_zarr_prediction_and_ground_truth(pair, expected, tmp_path):
    import zarr

    gt, pred = pair
    with h5py.File(tmp_path / "gt.h5", "w") as f:
        f.create_dataset("label", data=gt)
    zarr.create_array(store=str(tmp_path / "pred.zarr"), shape=pred.shape, chunks=(4, 32, 32),
                      dtype=pred.dtype)[...] = pred
    group = zarr.open_group(str(tmp_path / "both.zarr"), mode="w")
    group.create_array("gt", shape=gt.shape, chunks=(8, 64, 64), dtype=gt.dtype)[...] = gt
    assert same(evaluate_volumes(f"{tmp_path}/gt.h5:label", f"{tmp_path}/pred.zarr", crumb_size=500), expected)
    assert same(evaluate_volumes(f"{tmp_path}/both.zarr:gt", f"{tmp_path}/pred.zarr", crumb_size=500,
                                 max_slab_mib=0.05), expected)  # slabs of a few slices, whatever the chunks
    with pytest.raises(VolumeError, match="no array 'nope'; it has: gt"):
        evaluate_volumes(f"{tmp_path}/both.zarr:nope", f"{tmp_path}/pred.zarr")
