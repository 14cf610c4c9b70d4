"""Fast path vs oracles: the Cython pair counter vs NumPy, the evaluator vs the per-instance reference."""
import h5py
import numpy as np
import pytest

from connectomics.evaluation import evaluate_volumes, overlap_table, reference_evaluate
from connectomics.evaluation.overlap import count_pairs_numpy
from connectomics.fixtures.label_pairs import make_label_pair

kernel = pytest.importorskip("connectomics._ext.overlap", reason="Cython kernel not built")


def _sorted_items(gt, pred, counts):
    order = np.lexsort((pred, gt))
    return gt[order].tolist(), pred[order].tolist(), counts[order].tolist()


@pytest.mark.parametrize("dtypes", [(np.uint32, np.uint32), (np.uint32, np.uint64),
                                    (np.uint64, np.uint32), (np.uint64, np.uint64)])
def test_kernel_matches_numpy(dtypes):
    rng = np.random.default_rng(0)
    # runs of repeated pairs plus many distinct pairs (forces several table growths)
    gt = np.repeat(rng.integers(0, 3000, 4000), rng.integers(1, 6, 4000)).astype(dtypes[0])
    pred = rng.integers(0, 50, gt.size).astype(dtypes[1])
    pred[::7] = 0
    if dtypes[0] == np.uint64:
        gt[gt > 100] += np.uint64(2**63)
    table = kernel.PairCounter()
    half = gt.size // 2
    kernel.count_pairs(table, gt[:half], pred[:half])
    kernel.count_pairs(table, gt[half:], pred[half:])
    kernel.count_pairs(table, gt[:0], pred[:0])
    assert len(table) > 4096
    assert _sorted_items(*table.items()) == _sorted_items(*count_pairs_numpy(gt, pred))
    with pytest.raises(ValueError, match="differ in length"):
        kernel.count_pairs(table, gt[:5], pred[:4])


def test_numpy_path_gives_the_same_table():
    gt, pred = make_label_pair((12, 48, 48), 10, np.random.default_rng(3), radius_xy=(4, 15))
    fast = overlap_table(gt, pred, chunk_slices=5)
    slow = overlap_table(gt, pred, chunk_slices=5, use_kernel=False)
    for name in ("gt_ids", "gt_sizes", "pred_ids", "pred_sizes", "pair_gt", "pair_pred", "pair_voxels"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.gt_sizes.sum() == np.count_nonzero(gt)
    assert fast.pair_voxels.sum() == np.count_nonzero((gt > 0) & (pred > 0))


def _compare(result, ref):
    m = result.matches
    rows = [(int(m.pred_ids[j]), int(m.pred_sizes[j]),
             [(int(m.gt_ids[j, a]), int(m.gt_sizes[j, a]), float(m.ious[j, a])) for a in range(4)])
            for j in range(len(m.pred_ids))]
    assert rows == [(p, s, list(r)) for p, s, r in ref["result_p"]]
    fn = [(int(p), int(ps), int(g), int(gs), float(i)) for p, ps, g, gs, i in
          zip(m.fn_pred_ids, m.fn_pred_sizes, m.fn_gt_ids, m.fn_gt_sizes, m.fn_ious)]
    assert fn == ref["result_fn"]
    for (t, a), curve in ref["precision"].items():
        assert np.allclose(result.precision[t, :, a], curve, rtol=0, atol=1e-12)
    for key, value in ref["summary"].items():
        assert result.summary[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed", range(8))
def test_fast_matches_reference_on_random_volumes(seed):
    rng = np.random.default_rng(100 + seed)
    shape = (int(rng.integers(8, 24)), int(rng.integers(40, 90)), int(rng.integers(40, 90)))
    gt, pred = make_label_pair(shape, int(rng.integers(5, 30)), rng, radius_z=(1, 6),
                               radius_xy=(3, 28), max_id=int(rng.choice([300, 2**20, 2**40])),
                               dtype=np.uint64)
    scores = None
    if seed % 3 == 1:  # explicit scores with many ties
        ids = np.unique(pred)[1:]
        scores = np.column_stack([ids, rng.integers(0, 4, len(ids))])
    thresholds = (1e3, 4e3) if seed % 2 else (5e3, 3e4)
    crumb = (2000, 300, 100)[seed % 3]
    result = evaluate_volumes(gt, pred, scores=scores, area_thresholds=thresholds, crumb_size=crumb,
                              chunk_slices=4)
    ref = reference_evaluate(gt, pred, scores=scores, area_thresholds=thresholds, crumb_size=crumb,
                             chunk_slices=7)
    _compare(result, ref)


def test_reference_on_hdf5_and_slices(tmp_path):
    gt, pred = make_label_pair((20, 60, 60), 15, np.random.default_rng(11), radius_xy=(4, 20))
    path = tmp_path / "pair.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gt", data=gt, chunks=(2, 60, 60), compression="lzf")
        f.create_dataset("pred", data=pred, chunks=(2, 60, 60))
    args = dict(crumb_size=200, slices=(2, 17))
    result = evaluate_volumes(f"{path}:gt", f"{path}:pred", chunk_slices=4, **args)
    ref = reference_evaluate(f"{path}:gt", f"{path}:pred", chunk_slices=6, **args)
    _compare(result, ref)
    assert ref["seconds"]["match"] >= 0 and ref["n_pred"] == result.summary["n_pred"]
