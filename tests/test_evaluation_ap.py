"""Hand-computed AP cases: every rule of the official MitoEM evaluator, pinned on tiny volumes.

Notation in the comments: sequences like [TP, FP] are the predictions in score order at one IoU
threshold; AP_t is the mean over the 101 recall points of the interpolated precision.
Precision is tp / (tp + fp + eps), so "1" is 1 - 2e-16: compare with a tolerance.
"""
import numpy as np
import pytest

from connectomics.evaluation import evaluate_volumes

TOL = 1e-9


def box(volume, label, z, y, x):
    """Paint the box ``z = (z0, z1)``, ``y``, ``x`` with ``label``."""
    volume[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = label


def summary(gt, pred, **kwargs):
    return evaluate_volumes(gt, pred, chunk_slices=3, **kwargs).summary


def check(s, **expected):
    for key, value in expected.items():
        assert s[key] == pytest.approx(value, abs=TOL), key


@pytest.fixture
def three_sizes():
    """GT: small (4000 voxels), medium (10000), large (40000); ids 7, 30, 500."""
    gt = np.zeros((10, 80, 100), np.uint32)
    box(gt, 7, (0, 10), (0, 20), (0, 20))
    box(gt, 30, (0, 10), (20, 40), (0, 50))
    box(gt, 500, (0, 10), (40, 80), (0, 100))
    return gt


def test_perfect_prediction(three_sizes):
    pred = three_sizes * 3 + 1  # other ids, background -> 1 ...
    pred[three_sizes == 0] = 0
    check(summary(three_sizes, pred), AP=1, AP50=1, AP75=1, AP90=1, AP75_small=1, AP75_medium=1,
          AP75_large=1, n_gt=3, n_pred=3, tp75=3, fp75=0, fn75=0)


def test_empty_prediction(three_sizes):
    result = evaluate_volumes(three_sizes, np.zeros_like(three_sizes))
    check(result.summary, AP=0, AP50=0, AP75=0, AP75_small=0, AP75_medium=0, AP75_large=0,
          n_gt=3, n_pred=0, tp75=0, fp75=0, fn75=3)
    assert any("no instances" in note for note in result.notes)
    assert len(result.matches.fn_gt_ids) == 3 and not result.matches.fn_pred_ids.any()


def test_empty_ground_truth_gives_minus_one(three_sizes):
    result = evaluate_volumes(np.zeros_like(three_sizes), three_sizes)
    check(result.summary, AP=-1, AP50=-1, AP75=-1, AP90=-1, AP75_small=-1, AP75_medium=-1,
          AP75_large=-1, n_gt=0, n_pred=3, fp75=3)
    assert (result.precision == -1).all() and (result.recall == -1).all()


def test_split_prediction():
    # GT 10000 voxels (medium); P1 covers 7600 (IoU .76), P2 2400 (IoU .24).
    # all: [TP, FP] for t <= .75 (6 thresholds) -> AP_t = 1; [FP, FP] above -> 0. AP = 0.6.
    # medium at .75: P2 is unmatched and small -> ignored: [TP] -> 1. small: no GT -> -1.
    gt = np.zeros((10, 10, 100), np.uint16)
    gt[:] = 4
    pred = np.zeros_like(gt)
    box(pred, 1, (0, 10), (0, 10), (0, 76))
    box(pred, 2, (0, 10), (0, 10), (76, 100))
    result = evaluate_volumes(gt, pred)
    check(result.summary, AP=0.6, AP50=1, AP75=1, AP90=0, AP75_small=-1, AP75_medium=1,
          AP75_large=-1, n_gt=1, n_pred=2, tp75=1, fp75=1, fn75=0)
    m = result.matches
    assert m.pred_ids.tolist() == [1, 2] and m.gt_ids[:, 0].tolist() == [4, 4]
    assert m.ious[:, 0] == pytest.approx([0.76, 0.24])
    assert m.gt_ids[:, 1].tolist() == [0, 0] and m.gt_ids[:, 2].tolist() == [4, 4]


def test_merged_prediction():
    # G1 6000 voxels (medium), G2 4000 (small), one prediction P over both: IoU .6 and .4.
    # all: P takes G1; TP for t in {.5, .55, .6}: recall .5, precision 1 -> AP_t = 51/101.
    # small: P's in-range GT is G2 (IoU .4) -> unmatched, P (10000) is not small -> ignored -> 0.
    # medium at .75: unmatched, P is medium -> FP -> 0.
    gt = np.zeros((10, 20, 50), np.uint32)
    box(gt, 1, (0, 10), (0, 20), (0, 30))
    box(gt, 2, (0, 10), (0, 20), (30, 50))
    pred = (gt > 0).astype(np.uint32) * 9
    check(summary(gt, pred), AP=3 * 51 / 101 / 10, AP50=51 / 101, AP75=0, AP75_small=0,
          AP75_medium=0, AP75_large=-1, n_gt=2, n_pred=1, tp75=0, fp75=1, fn75=2)


def test_eroded_prediction():
    # GT cube 20^3 = 8000, prediction its 18^3 = 5832 interior: IoU .729 -> TP for t <= .70.
    gt = np.zeros((20, 20, 20), np.uint32)
    gt[:] = 3
    pred = np.zeros_like(gt)
    box(pred, 8, (1, 19), (1, 19), (1, 19))
    check(summary(gt, pred), AP=0.5, AP50=1, AP75=0, AP90=0, AP75_medium=0, tp75=0, fp75=1, fn75=1)


def test_iou_exactly_at_threshold_counts():
    # IoU exactly 0.75 (6000 of 8000 voxels) matches at 0.75 (>=), not at 0.80: AP = 6/10.
    gt = np.zeros((10, 20, 40), np.uint32)
    gt[:] = 1
    pred = np.zeros_like(gt)
    box(pred, 2, (0, 10), (0, 20), (0, 30))
    check(summary(gt, pred), AP=0.6, AP75=1, AP90=0, tp75=1)


def test_crumb_only_overlap_is_false_positive():
    # A 10000-voxel GT exactly predicted, and a 1000-voxel GT crumb (< 2000, removed) with an
    # exact prediction. By size: [TP, FP] -> AP 1, but FP counted. Crumb scored first: [FP, TP]
    # -> precision .5 at recall 1 -> AP .5.
    gt = np.zeros((10, 10, 110), np.uint32)
    box(gt, 1, (0, 10), (0, 10), (0, 100))
    box(gt, 2, (0, 10), (0, 10), (100, 110))
    pred = gt * 10
    check(summary(gt, pred), AP=1, AP75=1, n_gt=1, n_gt_crumbs=1, n_pred=2, tp75=1, fp75=1, fn75=0)
    scores = np.array([[10, 0.5], [20, 0.9]])
    check(summary(gt, pred, scores=scores), AP=0.5, AP50=0.5, AP75=0.5, fp75=1)
    # with no crumb filter the small GT counts: both TP
    check(summary(gt, pred, crumb_size=0), AP=1, n_gt=2, n_gt_crumbs=0, fp75=0)


def test_crumb_size_boundary():
    # 2000 voxels is kept (size >= crumb_size), 1999 is removed
    gt = np.zeros((10, 10, 40), np.uint32)
    box(gt, 1, (0, 10), (0, 10), (0, 20))
    box(gt, 2, (0, 10), (0, 10), (20, 40))
    gt[0, 0, 39] = 0
    s = summary(gt, gt)
    check(s, n_gt=1, n_gt_crumbs=1, fp75=1, tp75=1)


def test_size_bins_at_exact_boundaries():
    # GT sizes 5000 (small: <= 5000), 5001 and 30000 (medium), 30001 (large); exact predictions
    gt = np.zeros((10, 40, 300), np.uint32)
    box(gt, 1, (0, 10), (0, 10), (0, 50))
    box(gt, 2, (0, 10), (10, 20), (0, 50))
    gt[0, 10, 50] = 2
    box(gt, 3, (0, 10), (20, 30), (0, 300))
    box(gt, 4, (0, 10), (30, 40), (0, 300))
    gt[0, 0, 299] = 4
    check(summary(gt, gt), n_gt=4, n_gt_small=1, n_gt_medium=2, n_gt_large=1, AP75_small=1,
          AP75_medium=1, AP75_large=1, AP=1)
    only_5000 = np.where(gt == 1, gt, 0)
    check(summary(only_5000, only_5000), AP75_small=1, AP75_medium=-1, AP75_large=-1)


def test_unmatched_prediction_size_bin_boundary():
    # GT: S 4000 (small) and M 10000 (medium), exactly predicted; F: a 5000-voxel false positive.
    # Order by size: M, F, S.  all: [TP, FP, TP] -> AP = (51 + 50 * 2/3) / 101.
    # small: M's prediction matches an out-of-range GT -> ignored; F (5000 <= 5000) is small -> FP:
    #   [ign, FP, TP] -> precision .5 everywhere -> .5.   medium: F (not > 5000) ignored -> 1.
    gt = np.zeros((10, 40, 200), np.uint32)
    box(gt, 1, (0, 10), (0, 20), (0, 20))
    box(gt, 2, (0, 10), (20, 40), (0, 50))
    pred = gt.copy()
    box(pred, 3, (0, 10), (0, 10), (100, 150))
    check(summary(gt, pred), AP75=(51 + 50 * 2 / 3) / 101, AP75_small=0.5, AP75_medium=1,
          AP75_large=-1, tp75=2, fp75=1)


def test_custom_area_thresholds():
    gt = np.zeros((10, 20, 100), np.uint32)
    box(gt, 1, (0, 10), (0, 10), (0, 30))  # 3000
    box(gt, 2, (0, 10), (10, 20), (0, 100))  # 10000
    s = summary(gt, gt, area_thresholds=(1e3, 4e3))
    check(s, n_gt_small=0, n_gt_medium=1, n_gt_large=1, AP75_small=-1, AP75_large=1)


@pytest.mark.parametrize("fp_id, tp_id, expected", [(5, 9, 0.5), (9, 5, 1.0)])
def test_score_ties_ordered_by_ascending_id(fp_id, tp_id, expected):
    # Two 8000-voxel predictions (equal default score): the lower id comes first.
    # FP first: [FP, TP] -> .5;  TP first: [TP, FP] -> 1.
    gt = np.zeros((20, 20, 40), np.uint32)
    box(gt, 1, (0, 20), (0, 20), (0, 20))
    pred = np.zeros_like(gt)
    box(pred, tp_id, (0, 20), (0, 20), (0, 20))
    box(pred, fp_id, (0, 20), (0, 20), (20, 40))
    check(summary(gt, pred), AP=expected, AP75=expected)
    scores = np.array([[fp_id, 1.0], [tp_id, 1.0]])  # explicit equal scores: same rule
    check(summary(gt, pred, scores=scores), AP75=expected)


def test_no_exclusive_matching():
    # Two halves of one GT, IoU exactly .5 each: both are TPs at .5 (no one-to-one assignment),
    # so recall reaches 2.0, as in the official code.
    gt = np.ones((10, 10, 100), np.uint32)
    pred = np.ones_like(gt)
    pred[:, :, 50:] = 2
    result = evaluate_volumes(gt, pred)
    assert result.recall[0, 0] == pytest.approx(2.0)
    check(result.summary, AP50=1, AP75=0, tp75=0, fp75=2, fn75=1)
