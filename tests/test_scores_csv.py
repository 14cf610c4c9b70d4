"""The scores CSV (sum_results_map75.csv): main.py / eval_iter.sh rows and evaluate.py --csv rows in one file."""
import math

import pytest

from connectomics.evaluation.scores_csv import append_score, read_scores


def test_rerun_replaces_the_row_of_an_iteration(tmp_path):
    path = tmp_path / "sum_results_map75.csv"
    append_score(path, 300, {"AP75": 0.5, "AP50": 0.6})
    append_score(path, 600, {"AP75": 0.7, "AP50": 0.8})
    append_score(path, 300, {"AP75": 0.55, "AP50": 0.65})  # --inference run again (other thresholds)
    assert path.read_text().splitlines() == ["iteration,AP75,AP50", "600,0.700000,0.800000",
                                             "300,0.550000,0.650000"]
    assert read_scores(path) == {300: {"AP75": 0.55, "AP50": 0.65}, 600: {"AP75": 0.7, "AP50": 0.8}}


def test_evaluate_csv_rows_keep_the_layout_of_a_sweep_csv(tmp_path):
    path = tmp_path / "sum_results_map75.csv"
    append_score(path, 300, {"AP75": 0.5, "AP50": 0.6})
    append_score(path, 1200, {"AP75": 0.75, "AP50": 0.9}, header=False)  # evaluate.py --csv into a sweep's CSV
    assert path.read_text().splitlines()[-1] == "1200,0.750000,0.900000"
    assert read_scores(path)[1200] == {"AP75": 0.75, "AP50": 0.9}


def test_official_headerless_rows_are_read(tmp_path):
    path = tmp_path / "sum_results_map75.csv"
    append_score(path, 1500, {"AP75": 0.25, "AP50": 0.5}, header=False)  # a fresh file: official iteration,AP75
    append_score(path, 3000, {"AP75": 0.5}, header=False)
    append_score(path, 1500, {"AP75": 0.3}, header=False)  # evaluated again: its row replaced
    assert path.read_text().splitlines() == ["3000,0.500000", "1500,0.300000"]
    scores = read_scores(path)
    assert sorted(scores) == [1500, 3000] and scores[3000]["AP75"] == 0.5 and math.isnan(scores[3000]["AP50"])
    path.write_text("iteration,AP75,AP50\n300,0.5,0.6\n600,0.7\n")  # mixed: a 2-column row in a 3-column file
    assert read_scores(path)[600]["AP75"] == 0.7 and math.isnan(read_scores(path)[600]["AP50"])


def test_a_malformed_row_names_the_file_and_line(tmp_path):
    path = tmp_path / "sum_results_map75.csv"
    path.write_text("iteration,AP75,AP50\n300,0.5,0.6\nthree hundred,x\n")
    with pytest.raises(ValueError, match=r"sum_results_map75.csv, line 3"):
        read_scores(path)


def test_scores_of_other_settings_are_moved_aside(tmp_path, caplog):
    from connectomics.engine.scores import use_score_settings

    path = tmp_path / "sum_results_map75.csv"
    a = {"image": "im.h5", "POSTPROCESS": {"SEED_THRESHOLD": 0.8}}
    assert use_score_settings(path, a) is False
    append_score(path, 300, {"AP75": 0.5, "AP50": 0.6})
    assert use_score_settings(path, a) is False and read_scores(path) == {300: {"AP75": 0.5, "AP50": 0.6}}
    b = {"image": "im.h5", "POSTPROCESS": {"SEED_THRESHOLD": 0.6}}
    assert use_score_settings(path, b) is True
    assert "POSTPROCESS.SEED_THRESHOLD: 0.8 -> 0.6" in caplog.text
    assert not path.exists() and read_scores(tmp_path / "sum_results_map75.stale-1.csv")[300]["AP75"] == 0.5
    append_score(path, 300, {"AP75": 0.7, "AP50": 0.8})
    assert use_score_settings(path, a) is True  # back again: a second stale file, nothing overwritten
    assert read_scores(tmp_path / "sum_results_map75.stale-2.csv")[300]["AP75"] == 0.7
    assert (tmp_path / "sum_results_map75.stale-1.csv.settings.json").exists()


def test_score_settings_ignore_file_names_and_memory_knobs():
    from connectomics.config import load_cfg
    from connectomics.engine.scores import score_settings

    base = score_settings(load_cfg(None), "im.h5", "gt.h5")
    same = score_settings(load_cfg(None, ["INFERENCE.OUTPUT_PATH", "elsewhere", "INFERENCE.CHUNK_SIZE", "[8, 64, 64]",
                                          "EVAL.CHUNK_SLICES", "10"]), "im.h5", "gt.h5")
    assert base == same
    assert score_settings(load_cfg(None, ["INFERENCE.STRIDE", "[2, 64, 64]"]), "im.h5", "gt.h5") != base
    assert score_settings(load_cfg(None), "im.h5", "other_gt.h5") != base


def test_settings_written_before_a_key_existed_are_not_stale(tmp_path):
    """A table scored before EVAL.SCORE existed was ranked by size: it stays; a confidence ranking does not."""
    import json

    from connectomics.config import load_cfg
    from connectomics.engine.scores import score_settings, use_score_settings

    path = tmp_path / "sum_results_map75.csv"
    old = score_settings(load_cfg(None), "im.h5", "gt.h5")
    del old["EVAL"]["SCORE"]
    (tmp_path / "sum_results_map75.csv.settings.json").write_text(json.dumps(old))
    append_score(path, 300, {"AP75": 0.5, "AP50": 0.6})
    assert use_score_settings(path, score_settings(load_cfg(None), "im.h5", "gt.h5")) is False
    assert read_scores(path)[300]["AP75"] == 0.5
    ranked = score_settings(load_cfg(None, ["EVAL.SCORE", "foreground"]), "im.h5", "gt.h5")
    assert use_score_settings(path, ranked) is True and not path.exists()
