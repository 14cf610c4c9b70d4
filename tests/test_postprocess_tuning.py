"""Threshold tuning: search logic with a real score, outputs, and the script end to end."""
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from connectomics.config import load_cfg
from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
from connectomics.postprocess import decode
from connectomics.postprocess.tuning import (best_yaml, format_report, main_axes, plan_grid, save_heatmap, thin,
                                             tune_decoder)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def matched_at_75(gt):
    """score_fn: fraction of GT instances matched by a prediction at IoU >= 0.75 (no double use)."""
    gt_ids, gt_sizes = np.unique(gt, return_counts=True)
    sizes = dict(zip(gt_ids.tolist(), gt_sizes.tolist()))

    def score(pred):
        pred_ids, pred_sizes = np.unique(pred, return_counts=True)
        psizes = dict(zip(pred_ids.tolist(), pred_sizes.tolist()))
        both = (gt > 0) & (pred > 0)
        keys, counts = np.unique(gt[both].astype(np.int64) * 2 ** 32 + pred[both], return_counts=True)
        hits = {k // 2 ** 32 for k, c in zip(keys.tolist(), counts.tolist())
                if c / (sizes[k // 2 ** 32] + psizes[k % 2 ** 32] - c) >= 0.75}
        return len(hits) / max(1, len(gt_ids) - 1)
    return score


@pytest.fixture(scope="module")
def small_scene():
    rng = np.random.default_rng(11)
    labels = random_ellipsoids((20, 96, 96), 8, rng)
    return labels, maps_from_labels(labels, rng)


def test_thin_and_plan_grid():
    assert thin([1, 2, 3, 4, 5], 3) == [1, 3, 5]
    assert thin([1, 2, 3], 5) == [1, 2, 3]
    assert thin([1, 2, 3], 1) == [2]
    xs, ys = plan_grid(range(6), range(7), 12)
    assert len(xs) * len(ys) <= 12 and xs[0] == 0 and xs[-1] == 5
    assert plan_grid([1, 2], [3], 10) == ([1, 2], [3])
    assert main_axes("bc_watershed") == ("seed_threshold", "contour_threshold")
    assert main_axes("binary_watershed") == ("seed_threshold", "foreground_threshold")


def test_tuning_improves_a_bad_start_within_budget(small_scene, tmp_path):
    labels, maps = small_scene
    score_fn = matched_at_75(labels)
    start = {"seed_threshold": 0.9, "contour_threshold": 0.99, "foreground_threshold": 0.85}  # merges objects
    grids = {"seed_threshold": [0.8, 0.9], "contour_threshold": [0.3, 0.6, 0.8, 0.99],
             "foreground_threshold": [0.6, 0.85]}
    result = tune_decoder(maps, score_fn, "bc_watershed", start, grids, max_evals=9, progress=False)
    assert len(result.trials) <= 9
    assert result.default_score == pytest.approx(score_fn(decode(maps, "bc_watershed", **start)))
    assert result.best_score > result.default_score
    assert result.best_score == pytest.approx(score_fn(decode(maps, "bc_watershed", **result.best_params)))
    assert result.best_score == max(score for _, score in result.trials)
    assert result.grid.shape == (len(result.axes[0][1]), len(result.axes[1][1]))
    assert np.nanmax(result.grid) <= result.best_score
    snippet = yaml.safe_load(best_yaml(result))["POSTPROCESS"]
    assert snippet["DECODER"] == "bc_watershed" and snippet["CONTOUR_THRESHOLD"] < 0.99
    path = tmp_path / "best.yaml"
    path.write_text(best_yaml(result))
    assert load_cfg(str(path)).POSTPROCESS.CONTOUR_THRESHOLD == snippet["CONTOUR_THRESHOLD"]
    png = save_heatmap(result, str(tmp_path / "heat.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "best" in format_report(result)


def test_tuning_a_merge_threshold(small_scene):
    labels, maps = small_scene
    result = tune_decoder(maps, matched_at_75(labels), "watershed_agglomerate",
                          {"seed_threshold": 0.9, "contour_threshold": 0.5, "merge_threshold": 0.0},
                          {"contour_threshold": [0.5], "merge_threshold": [0.0, 0.5]}, max_evals=4, progress=False)
    assert result.axes[1] == ("contour_threshold", [0.5])
    assert {p["merge_threshold"] for p, _ in result.trials} == {0.0, 0.5}


def _write_scene(small_scene, tmp_path):
    """The scene's maps and labels as probs.h5 / gt.h5 (dataset 'main'); returns both paths."""
    labels, maps = small_scene
    probs, gt = str(tmp_path / "probs.h5"), str(tmp_path / "gt.h5")
    for path, data in ((probs, maps), (gt, labels)):
        with h5py.File(path, "w") as f:
            f.create_dataset("main", data=data)
    return probs, gt


def test_script_end_to_end(small_scene, tmp_path):
    probs, gt = _write_scene(small_scene, tmp_path)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "tune_postprocess.py"), "-i", probs, "-gt", gt,
           "--max-evals", "5", "--output-dir", str(tmp_path / "tune"),
           "--opts", "POSTPROCESS.TUNE.SEED_THRESHOLDS", "[0.85, 0.9]",
           "POSTPROCESS.TUNE.CONTOUR_THRESHOLDS", "[0.6, 0.8]", "EVAL.CRUMB_SIZE", "100"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "AP-75" in done.stdout and "POSTPROCESS:" in done.stdout
    assert (tmp_path / "tune" / "tune_heatmap.png").exists()
    snippet = yaml.safe_load((tmp_path / "tune" / "tune_best.yaml").read_text())
    assert snippet["POSTPROCESS"]["SEED_THRESHOLD"] in (0.85, 0.9)


def test_run_tuning_max_evals_zero_is_refused_not_the_default(small_scene, tmp_path):
    """--max-evals 0 must not silently run POSTPROCESS.TUNE.MAX_EVALS (80) decodes."""
    from connectomics.engine.tune import run_tuning

    probs, gt = _write_scene(small_scene, tmp_path)
    with pytest.raises(ValueError, match="max_evals = 0"):
        run_tuning(load_cfg(None, []), probs, gt, str(tmp_path / "tune"), max_evals=0)


def test_blockwise_tuning_scores_every_trial_as_the_in_memory_search(small_scene, tmp_path):
    """--scheduler (here the in-process runner): each trial decoded block by block into a store and
    scored from it gives the same trials and scores as the in-memory search, and leaves no store."""
    from connectomics.engine.tune import run_tuning

    probs, gt = _write_scene(small_scene, tmp_path)
    opts = ["POSTPROCESS.TUNE.SEED_THRESHOLDS", "[0.85, 0.9]", "POSTPROCESS.TUNE.CONTOUR_THRESHOLDS", "[0.6, 0.8]",
            "EVAL.CRUMB_SIZE", "100", "BLOCKWISE.BLOCK_SIZE", "[16, 32, 32]", "BLOCKWISE.HALO", "[16, 64, 64]"]
    memory = run_tuning(load_cfg(None, opts), probs, gt, str(tmp_path / "memory"), max_evals=5)
    blocks = run_tuning(load_cfg(None, opts), probs, gt, str(tmp_path / "blocks"), max_evals=5, scheduler="inprocess")
    assert blocks.replace("blocks", "memory") == memory
    best = float(re.search(r"AP-75\s+[0-9.]+\s+([0-9.]+)", memory).group(1))
    assert best > 0.5  # the scene is decoded well: equal reports are not two empty results
    assert sorted(os.listdir(tmp_path / "blocks")) == ["tune_best.yaml", "tune_heatmap.png"]
