"""Reports (official text layouts, JSON, PNG, CSV) and the scripts/evaluate.py entry point."""
import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from connectomics.evaluation import evaluate_volumes, format_table, map_lines, write_reports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "evaluate.py")


@pytest.fixture
def split_case():
    """One 10000-voxel GT (id 4) split into 7600 (id 1) + 2400 (id 2) voxels: AP .6, AP75 1."""
    gt = np.full((10, 10, 100), 4, np.uint32)
    pred = np.ones_like(gt)
    pred[:, :, 76:] = 2
    return gt, pred


def test_map_lines_official_format(split_case):
    lines = map_lines(evaluate_volumes(*split_case).summary)
    assert lines == [
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.600",
        " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 1.000",
        " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 1.000",
        " Average Precision  (AP) @[ IoU=0.75      | area= small | maxDets=100 ] = -1.000",
        " Average Precision  (AP) @[ IoU=0.75      | area=medium | maxDets=100 ] = 1.000",
        " Average Precision  (AP) @[ IoU=0.75      | area= large | maxDets=100 ] = -1.000"]


def test_write_reports(split_case, tmp_path):
    result = evaluate_volumes(*split_case)
    prefix = str(tmp_path / "sub" / "run")
    csv_path = tmp_path / "sum_results_map75.csv"
    paths = write_reports(result, prefix, iteration=1500, csv_path=csv_path)
    write_reports(result, prefix, iteration=3000, csv_path=csv_path)
    assert all(os.path.exists(p) for p in paths)
    match_p = open(prefix + "_match_p.txt").read().splitlines()
    assert match_p[0].startswith("# \tprediction  |") and match_p[2] == "# " + "-" * 108
    assert match_p[3:] == ["1\t\t7600\t\t4\t10000\t0.7600\t\t0\t   0\t0.0000\t\t4\t10000\t0.7600\t\t0\t   0\t0.0000",
                           "2\t\t2400\t\t4\t10000\t0.2400\t\t0\t   0\t0.0000\t\t4\t10000\t0.2400\t\t0\t   0\t0.0000"]
    match_fn = open(prefix + "_match_fn.txt").read().splitlines()
    assert match_fn == ["# \tprediction \t|\t\tgt \t", "# ID\tSIZE\t| ID\tSIZE\tIoU ", "# " + "-" * 40]
    data = json.load(open(prefix + ".json"))
    assert data["summary"] == result.summary and data["iteration"] == 3000
    assert len(data["precision"]["all"]) == 10 and data["ap_per_iou"]["all"][5] == pytest.approx(1)
    assert data["ap_per_iou"]["small"] == [-1.0] * 10
    assert open(prefix + "_pr.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert csv_path.read_text().splitlines() == [f"1500,{result.summary['AP75']:.6f}",
                                                 f"3000,{result.summary['AP75']:.6f}"]
    with pytest.raises(ValueError, match="iteration"):
        write_reports(result, prefix, csv_path=csv_path)


def test_false_negative_rows(tmp_path):
    gt = np.zeros((10, 10, 100), np.uint32)
    gt[:, :, :50] = 1
    gt[:, :, 50:] = 2
    pred = np.zeros_like(gt)
    pred[:, :, 40:60] = 7  # IoU 10/60 with both: it takes GT 1 (lower id wins the tie)
    result = evaluate_volumes(gt, pred)
    write_reports(result, str(tmp_path / "r"))
    rows = open(tmp_path / "r_match_fn.txt").read().splitlines()[3:]
    assert rows == ["7\t\t2000\t\t2\t5000\t0.1667"]  # GT 1 is taken, so not a FN
    assert result.summary["fn75"] == 2


def test_format_table_states_undefined(split_case):
    text = format_table(evaluate_volumes(*split_case))
    assert "AP-75 small         -1   0 GT, size <= 5000 voxels: undefined, no GT in this range" in text
    assert "AP-75 medium    1.0000   1 GT, 5000 < size <= 30000 voxels" in text
    for label, value in (("TP @0.75", 1), ("FP @0.75", 1), ("FN @0.75", 0), ("predictions", 2)):
        assert f"{label:<14}{value:>8}" in text
    empty = format_table(evaluate_volumes(split_case[0], np.zeros_like(split_case[1])))
    assert "no instances" in empty and "AP-75           0.0000" in empty


def _load_script():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def h5_pair(split_case, tmp_path):
    gt_path, pred_path = tmp_path / "gt.h5", tmp_path / "checkpoint_004500_instances.h5"
    with h5py.File(gt_path, "w") as f:
        f["main"] = split_case[0]
    with h5py.File(pred_path, "w") as f:
        f["seg"] = split_case[1].astype(np.int64)
    return str(gt_path), str(pred_path)


def test_cli_end_to_end(h5_pair, tmp_path):
    gt, pred = h5_pair
    csv_path = tmp_path / "scores.csv"
    cmd = [sys.executable, SCRIPT, "-gt", gt, "-p", f"{pred}:seg", "-o", str(tmp_path / "out" / "e"),
           "-th", "5e3, 3e4", "-thc", "2000", "-cz", "3", "-sl", "0, 10", "--csv", str(csv_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "AP-75           1.0000" in run.stdout and "AP@[.50:.95]    0.6000" in run.stdout
    assert csv_path.read_text().startswith("4500,")
    for suffix in ("_map.txt", "_match_p.txt", "_match_fn.txt", ".json", "_pr.png"):
        assert os.path.exists(tmp_path / "out" / f"e{suffix}")


def test_cli_default_prefix_and_errors(h5_pair, tmp_path, caplog, split_case):
    gt, pred = h5_pair
    main = _load_script().main
    assert main(["-gt", gt, "-p", pred, "--iteration", "7"]) == 0
    assert os.path.exists(pred[:-3] + "_map.txt")
    bad = tmp_path / "short.h5"
    with h5py.File(bad, "w") as f:
        f["main"] = split_case[1][:4]
    assert main(["-gt", gt, "-p", str(bad)]) == 2
    assert "shape mismatch" in caplog.text and "short.h5" in caplog.text
    assert main(["-gt", gt, "-p", str(bad), "--csv", str(tmp_path / "c.csv")]) == 2
    assert "pass --iteration" in caplog.text
    assert main(["-gt", f"{gt}:nope", "-p", pred]) == 2
    assert "no dataset 'nope'" in caplog.text
    assert main(["-gt", gt, "-p", pred, "-th", "5e3"]) == 2
    assert "-th expects 2" in caplog.text
