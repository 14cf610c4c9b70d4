"""Error analysis: association classes and matching metrics on hand-made cases."""
import math

import numpy as np
import pytest

from connectomics.evaluation import AREA_NAMES, area_ranges, overlap_table
from connectomics.evaluation.errors import analyse_errors, one_to_one


def _analyse(gt, pred, crumb=0):
    table = overlap_table(gt, pred, progress=False)
    return analyse_errors(table, area_ranges((50, 500)), AREA_NAMES, crumb)


def _row(result, threshold, name="all"):
    return next(r for r in result.matching if r["threshold"] == threshold and r["bin"] == name)


def _scene():
    """One slice of 1 x 40 x 60: each GT instance with a known fate."""
    gt = np.zeros((1, 40, 60), np.uint32)
    pred = np.zeros_like(gt)
    gt[0, 0:10, 0:10] = 1; pred[0, 0:10, 0:9] = 11            # one-to-one, IoU 0.9
    gt[0, 0:10, 20:30] = 2                                   # missing
    gt[0, 0:10, 40:60] = 3; pred[0, 0:10, 40:50] = 31; pred[0, 0:10, 50:60] = 32   # split in two
    gt[0, 20:30, 0:10] = 4; gt[0, 20:30, 10:20] = 5; pred[0, 20:30, 0:20] = 45     # merged pair
    pred[0, 30:40, 50:60] = 99                               # background false positive
    return gt, pred


def test_each_association_class():
    result = _analyse(*_scene())
    by_id = dict(zip(result.gt["ids"].tolist(), result.gt["association"].tolist()))
    assert by_id == {1: "one-to-one", 2: "missing", 3: "split", 4: "merged", 5: "merged"}
    assert result.background_fp["ids"].tolist() == [99]
    assert result.counts() == {"one-to-one": 1, "missing": 1, "split": 1, "merged": 2, "many-to-many": 0,
                               "background FP": 1}
    assert result.gt["n_preds"].tolist() == [1, 0, 2, 1, 0]
    assert result.gt["best_iou"][0] == pytest.approx(0.9)


def test_many_to_many():
    gt = np.zeros((1, 10, 40), np.uint32)
    pred = np.zeros_like(gt)
    gt[0, :, 0:20] = 1; gt[0, :, 20:40] = 2
    pred[0, :, 0:8] = 7; pred[0, :, 8:31] = 8; pred[0, :, 31:40] = 9
    # 7 and 8 both lie mostly on 1 (split); 8 also covers most of 2 (11 of its 20 columns): 1 is split
    # and merged, 2 is merged
    result = _analyse(gt, pred)
    assert result.gt["association"].tolist() == ["many-to-many", "merged"]


def test_matching_metrics_by_hand():
    result = _analyse(*_scene())
    r = _row(result, 0.75)  # only 1 <-> 11 (IoU 0.9) passes
    assert (r["tp"], r["fp"], r["fn"]) == (1, 4, 4)
    assert r["precision"] == pytest.approx(1 / 5) and r["recall"] == pytest.approx(1 / 5)
    assert r["accuracy"] == pytest.approx(1 / 9) and r["f1"] == pytest.approx(2 / 10)
    assert r["pq"] == pytest.approx(0.9 / (1 + 2 + 2)) and r["mean_iou"] == pytest.approx(0.9)
    r5 = _row(result, 0.5)  # 3 <-> 31 (0.5) and 4 <-> 45, 5 <-> 45 (0.5 each): one-to-one keeps one of 4 / 5
    assert r5["tp"] == 3 and r5["fp"] == 2 and r5["fn"] == 2
    assert _row(result, 0.3)["tp"] == 3
    small = _row(result, 0.75, "small")  # GT 1 (100 voxels) is 'medium' with bins (50, 500]: no small GT
    assert small["tp"] == 0 and math.isnan(small["recall"])


def test_optimal_matching_prefers_more_matches_then_iou():
    # gt a overlaps p (0.45) and q (0.40); gt b overlaps only p (0.35): greedy would take a-p and leave b
    pair_gt = np.array([1, 1, 2], np.uint64)
    pair_pred = np.array([10, 11, 10], np.uint64)
    ious = np.array([0.45, 0.40, 0.35])
    kept = one_to_one(pair_gt, pair_pred, ious, 0.3)
    assert sorted(zip(pair_gt[kept].tolist(), pair_pred[kept].tolist())) == [(1, 11), (2, 10)]


def test_crumbs_are_left_out():
    gt, pred = _scene()
    gt[0, 35:37, 0:2] = 8; pred[0, 35:37, 0:2] = 88     # a 4-voxel GT and its prediction
    result = _analyse(gt, pred, crumb=10)
    assert 8 not in result.gt["ids"].tolist() and 88 not in result.background_fp["ids"].tolist()
    assert _row(result, 0.75)["fp"] == 4  # 88 counts neither as TP nor as FP


def _generated_case(seed):
    """GT ellipsoids and a prediction with the usual errors: shifted masks, splits, merges, misses, FPs."""
    from connectomics.fixtures.scenes import random_ellipsoids

    rng = np.random.default_rng(seed)
    gt = random_ellipsoids((12, 96, 96), 14, rng, radius_yx=(6, 16), radius_z=(2, 5))
    pred = np.roll(gt, rng.integers(-1, 2, 2), axis=(1, 2)).astype(np.uint32) * 3  # shifted in-plane, other ids
    ids = np.unique(gt)[1:]
    for i in rng.choice(ids, 2, replace=False):  # splits: one half of a prediction gets a new id
        half = (pred == 3 * i) & (np.arange(96)[None, None, :] < np.median(np.nonzero(pred == 3 * i)[2]))
        pred[half] = 1000 + i
    a, b = rng.choice(ids, 2, replace=False)  # a merge
    pred[pred == 3 * b] = 3 * a
    pred[pred == 3 * rng.choice(ids)] = 0  # a miss
    pred[2:5, 80:90, 2:12] = 5000  # a false positive on background (or on whatever lies there)
    return gt, pred


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matching_equals_stardist_on_generated_cases(seed):
    """The matching metrics as StarDist's ``matching`` (the reference implementation of accuracy
    TP / (TP + FP + FN) and panoptic quality that instance-segmentation leaderboards quote) computes them."""
    from stardist.matching import matching  # in the test extra (setup.py)
    gt, pred = _generated_case(seed)
    result = _analyse(gt, pred)
    counts = result.counts()  # the scene holds every kind of error, so the metrics can disagree
    assert counts["one-to-one"] and counts["split"] and counts["merged"] and counts["missing"]
    row = _row(result, 0.5)
    assert row["tp"] and row["fp"] and row["fn"]
    for threshold in (0.3, 0.5, 0.75):
        ours, theirs = _row(result, threshold), matching(gt, pred, thresh=threshold)
        assert (ours["tp"], ours["fp"], ours["fn"]) == (theirs.tp, theirs.fp, theirs.fn), threshold
        for key, name in (("precision", "precision"), ("recall", "recall"), ("accuracy", "accuracy"), ("f1", "f1"),
                          ("pq", "panoptic_quality"), ("mean_iou", "mean_matched_score")):
            if math.isnan(ours[key]):  # an empty denominator: '-' in our report, 0 in StarDist's
                assert getattr(theirs, name) == 0, (threshold, key)
            else:
                assert ours[key] == pytest.approx(getattr(theirs, name), rel=1e-6), (threshold, key)  # float32 IoU


def test_skeleton_length_categories(tmp_path):
    """Rods of known length binned by their skeleton: TP / FN by the GT rod's length, FP by the prediction's."""
    import subprocess
    import sys

    import h5py

    from connectomics.evaluation import evaluate_volumes
    from connectomics.measure.api import length_categories

    gt = np.zeros((8, 64, 160), np.uint32)
    gt[2:6, 5:11, 10:150] = 1    # a rod of 140 voxels
    gt[2:6, 30:36, 10:40] = 2    # a short rod of 30 voxels
    gt[2:6, 50:56, 60:140] = 3   # a rod of 80 voxels, missed
    pred = np.zeros_like(gt)
    pred[2:6, 5:11, 10:150] = 7  # found
    pred[2:6, 30:36, 10:40] = 8  # found
    pred[2:6, 44:48, 100:130] = 9  # a short false positive on background
    paths = []
    for name, data in (("gt.h5", gt), ("pred.h5", pred)):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("main", data=data)
        paths.append(str(tmp_path / name))
    names, of_gt, of_pred = length_categories(*paths, [50, 100])  # no voxel size: lengths in voxels
    assert names == ["length<=50vox", "length 50-100vox", "length>100vox"]
    assert of_gt == {1: "length>100vox", 2: "length<=50vox", 3: "length 50-100vox"}
    assert of_pred == {7: "length>100vox", 8: "length<=50vox", 9: "length<=50vox"}
    result = evaluate_volumes(gt, pred, crumb_size=0, categories=(names, of_gt, of_pred))
    rows = {row["bin"]: row for row in result.errors.matching if row["threshold"] == 0.75}
    assert (rows["length>100vox"]["tp"], rows["length>100vox"]["fp"], rows["length>100vox"]["fn"]) == (1, 0, 0)
    assert (rows["length<=50vox"]["tp"], rows["length<=50vox"]["fp"], rows["length<=50vox"]["fn"]) == (1, 1, 0)
    assert (rows["length 50-100vox"]["tp"], rows["length 50-100vox"]["fn"]) == (0, 1)
    assert rows["all"]["tp"] == 2 and rows["all"]["fp"] == 1 and rows["all"]["fn"] == 1
    script = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py")
    done = subprocess.run([sys.executable, script, "-gt", paths[0], "-p", paths[1], "-thc", "0", "--length-bins",
                           "50", "100", "-o", str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "length>100vox 1.000 (1/0/0)" in done.stdout
    matching = (tmp_path / "report_matching.csv").read_text()
    assert "0.75,length<=50vox,1,1,0" in matching
    with pytest.raises(ValueError, match="ascending"):
        length_categories(*paths, [100, 50])
