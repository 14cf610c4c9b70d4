"""Reruns as a user meets them: changed inputs and options, interruptions, bad input (issue 14).

Each test is a reproduction from the issue turned into the expected behaviour: no stale result,
no failure after the work, one line and exit 2 for bad input, a checkpoint on Ctrl-C.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from test_engine import MAIN, REPO, run_main, tiny_config

from connectomics.storage import ResumeError, read_volume, write_volume


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 6-iteration tiny run with inference in its folder (copied by tests that change it)."""
    tmp = tmp_path_factory.mktemp("reruns")
    result = run_main("--config-file", tiny_config(tmp), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp


def copy_run(run, tmp_path):
    """The run's data and outputs under ``tmp_path``, with a config rooted there."""
    for name in ("datasets", "outputs"):
        shutil.copytree(run / name, tmp_path / name)
    return tiny_config(tmp_path)


def main_ok(*args, timeout=600):
    result = run_main(*args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def refused(result, *needles):
    """Exit 2, one ERROR line holding every needle, no traceback."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def settings_of(path):
    """The settings an output recorded (maps: on the file; instances: on dataset 'main')."""
    from connectomics.storage.settings import stored_settings

    return stored_settings(str(path))[1]


# ---------------------------------------------------------------- 1, 2: changed input content


def test_inference_on_a_replaced_input_is_made_again(run, tmp_path):
    """The input's content changed under the same name: the maps and instances are made again."""
    config = copy_run(run, tmp_path)
    inference = tmp_path / "outputs" / "Synthetic-BC" / "inference"
    main_ok("--config-file", config, "--inference")  # results of the copied paths
    before = read_volume(str(inference / "probs.h5"))
    test = str(tmp_path / "datasets" / "synthetic" / "test.h5")
    image = read_volume(test + ":image")
    write_volume(test + ":image", np.ascontiguousarray(image[:, ::-1]))  # same name, shape and dtype
    result = main_ok("--config-file", config, "--inference")
    assert "probs.h5 (made with other settings: input_id" in result.stderr
    after = read_volume(str(inference / "probs.h5"))
    fresh = tmp_path / "fresh"
    main_ok("--config-file", config, "--inference", "--opts", "INFERENCE.OUTPUT_PATH", str(fresh))
    assert not np.array_equal(after, before) and np.array_equal(after, read_volume(str(fresh / "probs.h5")))
    assert np.array_equal(read_volume(str(inference / "instances.h5")), read_volume(str(fresh / "instances.h5")))


class Conv(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def test_a_partial_run_is_not_resumed_on_a_changed_input(tmp_path):
    """Killed after 2 chunks, input fixed, same command: the old chunks are not mixed in."""
    from connectomics.inference import Predictor, infer_volume_to_file

    rng = np.random.default_rng(0)
    source = str(tmp_path / "vol.h5")
    write_volume(source, rng.integers(0, 256, (8, 32, 32), dtype=np.uint8))
    predictor = Predictor(Conv(), window=(4, 16, 16), stride=(2, 8, 8), pad=(1, 4, 4), batch_size=2)
    out = str(tmp_path / "probs.h5")

    def kill(chunk, n_done, n_total):
        if n_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        infer_volume_to_file(predictor, source, out, chunk_size=(4, 16, 16), on_chunk_done=kill)
    write_volume(source, rng.integers(0, 256, (8, 32, 32), dtype=np.uint8))  # the input, fixed
    with pytest.raises(ResumeError, match="partial output .* other settings .*input_id"):
        infer_volume_to_file(predictor, source, out, chunk_size=(4, 16, 16))
    infer_volume_to_file(predictor, source, out, chunk_size=(4, 16, 16), overwrite=True)
    reference = str(tmp_path / "reference.h5")
    infer_volume_to_file(predictor, source, reference, chunk_size=(4, 16, 16))
    assert np.array_equal(read_volume(out), read_volume(reference))


def test_blockwise_postprocessing_sees_maps_changed_in_place(tmp_path):
    """One zarr chunk rewritten in place (metadata untouched): the instances are not reused."""
    import zarr

    from connectomics.blockwise import postprocess_blockwise
    from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids

    rng = np.random.default_rng(1)
    maps = maps_from_labels(random_ellipsoids((16, 64, 64), 6, rng), rng)
    store = str(tmp_path / "probs.zarr")
    zarr.create_array(store=store, data=maps, chunks=(2, 16, 32, 32))
    out = str(tmp_path / "instances.h5")
    postprocess_blockwise(store, out, block=(16, 32, 32), halo=(2, 8, 8))
    assert read_volume(out).max() > 0
    zarr.open_array(store, mode="r+")[0] = 0  # no foreground left
    with pytest.raises(ResumeError, match="other settings .*input_id"):
        postprocess_blockwise(store, out, block=(16, 32, 32), halo=(2, 8, 8))
    postprocess_blockwise(store, out, block=(16, 32, 32), halo=(2, 8, 8), overwrite=True)
    assert read_volume(out).max() == 0


def test_single_process_postprocessing_records_settings_and_refuses_others(tmp_path):
    """Same command: reused; other thresholds: refused unless overwrite (as blockwise)."""
    from connectomics.config import load_cfg
    from connectomics.fixtures.scenes import maps_from_labels, random_ellipsoids
    from connectomics.postprocess import build_decoder, postprocess_file

    rng = np.random.default_rng(2)
    probs = str(tmp_path / "probs.h5")
    write_volume(probs, maps_from_labels(random_ellipsoids((16, 64, 64), 6, rng), rng))
    out = tmp_path / "instances.h5"
    postprocess_file(probs, str(out), build_decoder(load_cfg()))
    assert settings_of(out)["params"]["seed_threshold"] == 0.9
    made = out.stat().st_mtime_ns
    postprocess_file(probs, str(out), build_decoder(load_cfg()))
    assert out.stat().st_mtime_ns == made
    other = build_decoder(load_cfg(None, ["POSTPROCESS.SEED_THRESHOLD", "0.95"]))
    with pytest.raises(ResumeError, match="seed_threshold"):
        postprocess_file(probs, str(out), other)
    assert out.stat().st_mtime_ns == made
    postprocess_file(probs, str(out), other, overwrite=True)
    assert settings_of(out)["params"]["seed_threshold"] == 0.95


# ---------------------------------------------------------------- 3, 5: the run folder


def test_another_synthetic_seed_is_refused_in_a_run_of_seed_0_and_generated_elsewhere(run, tmp_path):
    config = copy_run(run, tmp_path)
    train = tmp_path / "datasets" / "synthetic" / "train.h5"
    made, saved = train.stat().st_mtime_ns, (tmp_path / "outputs" / "Synthetic-BC" / "config.yaml").read_text()
    result = run_main("--config-file", config, "--opts", "DATASET.SYNTHETIC.SEED", "10", timeout=300)
    refused(result, "DATASET.SYNTHETIC.SEED: 0 -> 10", "--overwrite")
    assert train.stat().st_mtime_ns == made  # refused before the data was touched
    assert (tmp_path / "outputs" / "Synthetic-BC" / "config.yaml").read_text() == saved
    main_ok("--config-file", config, "--opts", "DATASET.SYNTHETIC.SEED", "10", "DATASET.OUTPUT_PATH", "outputs/seed10",
            "SOLVER.ITERATION_TOTAL", "1", "SYSTEM.INFER_AFTER_TRAIN", "False")
    with h5py.File(train, "r") as f:  # the files now hold what the config says
        assert f["image"].attrs["synthetic_seed"] == 10 and f["label"].attrs["synthetic_seed"] == 10
    with h5py.File(tmp_path / "datasets" / "synthetic" / "test.h5", "r") as f:
        assert f["image"].attrs["synthetic_seed"] == 12


def test_overwrite_moves_a_run_of_other_settings_aside(run, tmp_path):
    config = copy_run(run, tmp_path)
    folder = tmp_path / "outputs" / "Synthetic-BC"
    main_ok("--config-file", config, "--overwrite", "--opts", "SOLVER.BASE_LR", "1e-3", "SOLVER.ITERATION_TOTAL", "3",
            "SYSTEM.INFER_AFTER_TRAIN", "False")
    aside = tmp_path / "outputs" / "Synthetic-BC.previous-1"
    assert (aside / "checkpoint_000006.pth.tar").exists()  # nothing deleted
    assert sorted(p.name for p in folder.glob("checkpoint_*")) == ["checkpoint_000003.pth.tar"]
    assert "BASE_LR: 0.001" in (folder / "config.yaml").read_text()


def test_a_run_that_fails_keeps_the_config_that_describes_its_checkpoints(run, tmp_path):
    config = copy_run(run, tmp_path)
    folder = tmp_path / "outputs" / "Synthetic-BC"
    saved, inferred = (folder / "config.yaml").read_text(), (folder / "inference" / "config.yaml").read_text()
    result = run_main("--config-file", config, "--opts", "MODEL.ARCHITECTURE", "rsunet", timeout=300)
    refused(result, "MODEL.ARCHITECTURE: 'unet_residual_3d' -> 'rsunet'")
    result = run_main("--config-file", config, "--inference", "--opts", "MODEL.ARCHITECTURE", "rsunet", timeout=300)
    refused(result, "rsunet", "unet_residual_3d")  # the checkpoint mismatch, after the config would have been saved
    assert (folder / "config.yaml").read_text() == saved
    assert (folder / "inference" / "config.yaml").read_text() == inferred


# ---------------------------------------------------------------- 4, 6: results follow the run's newest model


def test_training_longer_gives_the_new_models_results(run, tmp_path):
    config = copy_run(run, tmp_path)
    inference = tmp_path / "outputs" / "Synthetic-BC" / "inference"
    main_ok("--config-file", config, "--inference")  # the scores row of iteration 6 with the copied paths
    model_before = settings_of(inference / "probs.h5")["model"]
    result = main_ok("--config-file", config, "--opts", "SOLVER.ITERATION_TOTAL", "9")
    assert "resuming from the latest checkpoint" in result.stderr and "AP-75" in result.stdout
    assert (tmp_path / "outputs" / "Synthetic-BC" / "checkpoint_000009.pth.tar").exists()
    assert settings_of(inference / "probs.h5")["model"] != model_before
    rows = (inference / "sum_results_map75.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["6", "9"]  # one run: its rows stay together


def test_named_results_are_protected_before_training_starts(run, tmp_path):
    config = copy_run(run, tmp_path)
    named = ["INFERENCE.OUTPUT_PATH", str(tmp_path / "results")]
    main_ok("--config-file", config, "--inference", "--opts", *named)
    result = run_main("--config-file", config, "--opts", "SOLVER.ITERATION_TOTAL", "9", *named, timeout=300)
    refused(result, "results", "probs.h5 exists", "--overwrite")
    assert not (tmp_path / "outputs" / "Synthetic-BC" / "checkpoint_000009.pth.tar").exists()  # nothing trained
    main_ok("--config-file", config, "--overwrite", "--opts", "SOLVER.ITERATION_TOTAL", "9", *named)
    assert (tmp_path / "results" / "eval.json").exists()


def test_scores_of_two_runs_never_share_a_table(run, tmp_path):
    """A second run's model scored with --overwrite in the same folder: the first run's rows move aside."""
    config = copy_run(run, tmp_path)
    named = ["INFERENCE.OUTPUT_PATH", str(tmp_path / "results")]
    main_ok("--config-file", config, "--inference", "--opts", *named)
    other = ["DATASET.OUTPUT_PATH", "outputs/other", "SOLVER.ITERATION_TOTAL", "3", "SYSTEM.SEED", "1"]
    main_ok("--config-file", config, "--overwrite", "--opts", *other, *named)
    table = (tmp_path / "results" / "sum_results_map75.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in table[1:]] == ["3"]
    stale = (tmp_path / "results" / "sum_results_map75.stale-1.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in stale[1:]] == ["6"]


# ---------------------------------------------------------------- 7: checked before the work starts


def test_inputs_and_outputs_are_checked_before_training(run, tmp_path):
    config = copy_run(run, tmp_path)
    fresh = ["DATASET.OUTPUT_PATH", "outputs/fresh"]
    (tmp_path / "a_file").write_text("")
    flat = str(tmp_path / "flat.h5")
    write_volume(flat, np.zeros((64, 64), np.uint8))
    wrong_gt = str(tmp_path / "gt.h5")
    write_volume(wrong_gt, np.zeros((16, 64, 48), np.uint32))
    cases = [(["INFERENCE.OUTPUT_PATH", str(tmp_path / "a_file" / "out")], "a_file is a file, not a folder"),
             (["INFERENCE.IMAGE_NAME", flat], "non-empty (Z, Y, X) volume, got shape (64, 64)"),
             (["EVAL.GT_NAME", wrong_gt], "has shape (16, 64, 48), its image")]
    if os.path.isdir("/sys"):  # sysfs refuses new folders even to root: an unwritable place on any Linux
        cases.append((["INFERENCE.OUTPUT_PATH", "/sys/connectomics_out"], "/sys/connectomics_out: cannot write there"))
    for opts, message in cases:
        refused(run_main("--config-file", config, "--opts", *fresh, *opts, timeout=300), message)
        assert not list((tmp_path / "outputs" / "fresh").glob("checkpoint_*"))


def test_bad_slices_and_float_ranges_are_found_before_inference(run, tmp_path):
    import tifffile

    config = copy_run(run, tmp_path)
    slices = tmp_path / "slices"
    slices.mkdir()
    for z in range(16):
        tifffile.imwrite(slices / f"z{z:03d}.tif", np.zeros((64, 48) if z == 14 else (64, 64), np.uint8))
    floats = str(tmp_path / "float.h5")
    volume = np.full((16, 64, 64), 0.5, np.float32)
    volume[15, 63, 63] = 1.5
    write_volume(floats, volume)
    for image, message in ((str(slices), "z014.tif (slice 14) is (64, 48)"), (floats, "found values in [0.5, 1.5]")):
        out = tmp_path / f"out_{os.path.basename(image)}"
        result = run_main("--config-file", config, "--inference", "--opts", "INFERENCE.IMAGE_NAME", image,
                          "EVAL.GT_NAME", "", "INFERENCE.OUTPUT_PATH", str(out), timeout=300)
        refused(result, message)
        assert not [p for p in out.iterdir() if p.name != "log.txt"]  # no partial maps


# ---------------------------------------------------------------- 8, 9: messages a user can act on


def test_corrupt_files_and_bad_configs_get_one_line(run, tmp_path):
    config = copy_run(run, tmp_path)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes((tmp_path / "datasets" / "synthetic" / "test.h5").read_bytes()[:3000])
    script = os.path.join(REPO, "scripts")
    commands = [
        [MAIN, "--config-file", config, "--inference", "--opts", "INFERENCE.IMAGE_NAME", str(corrupt)],
        [os.path.join(script, "postprocess.py"), "-i", str(corrupt), "-o", str(tmp_path / "x.h5")],
        [os.path.join(script, "evaluate.py"), "-gt", str(corrupt), "-p", str(corrupt)],
        [os.path.join(script, "tune_postprocess.py"), "-i", str(corrupt), "-gt", str(corrupt)],
    ]
    for cmd in commands:
        result = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=300, cwd=REPO)
        refused(result, "corrupt.h5", "not a readable HDF5 file")
    listing, null = tmp_path / "list.yaml", tmp_path / "null.yaml"
    listing.write_text("- SYSTEM\n- MODEL\n")
    null.write_text("SOLVER:\n  BASE_LR:\n")
    refused(run_main("--config-file", str(listing), timeout=120), "list.yaml", "top level, got a list")
    refused(run_main("--config-file", str(null), timeout=120), "SOLVER.BASE_LR", "got null")
    maps = str(tmp_path / "outputs" / "Synthetic-BC" / "inference" / "probs.h5")
    (tmp_path / "a_file.h5").write_text("")
    result = subprocess.run([sys.executable, os.path.join(script, "postprocess.py"), "-i", maps, "-o",
                             str(tmp_path / "a_file.h5" / "x.h5")], capture_output=True, text=True, timeout=300)
    refused(result, "a_file.h5")
    result = subprocess.run([sys.executable, os.path.join(script, "postprocess.py"), "-i", str(tmp_path), "-o",
                             str(tmp_path / "x.h5")], capture_output=True, text=True, timeout=300)
    refused(result, "is a folder: probability maps are read from probs.h5")
    for flag, value, message in (("-thc", "-5", "-thc (--threshold-crumb) = -5"), ("-cz", "0", "-cz (--chunk-size) = 0")):
        result = subprocess.run([sys.executable, os.path.join(script, "evaluate.py"), "-gt", maps, "-p", maps, flag,
                                 value], capture_output=True, text=True, timeout=300)
        refused(result, message)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_training_saves_a_checkpoint_and_says_how_to_resume(run, tmp_path, signum):
    config = copy_run(run, tmp_path)
    folder = tmp_path / "outputs" / "long"
    opts = ["--opts", "DATASET.OUTPUT_PATH", "outputs/long", "SOLVER.ITERATION_TOTAL", "1000", "SOLVER.ITERATION_SAVE",
            "1000", "SYSTEM.INFER_AFTER_TRAIN", "False"]
    proc = subprocess.Popen([sys.executable, MAIN, "--config-file", config, *opts], cwd=REPO, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        log = folder / "log.txt"
        if log.exists() and "[iter 000003]" in log.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr and "run the same command again to resume" in stderr, stderr[-3000:]
    saved = sorted(folder.glob("checkpoint_*"))
    assert len(saved) == 1 and 3 <= int(saved[0].name[11:17]) < 1000
    resumed = main_ok("--config-file", config, *opts[:1], *opts[1:5], "SOLVER.ITERATION_TOTAL",
                      str(int(saved[0].name[11:17]) + 1), "SYSTEM.INFER_AFTER_TRAIN", "False")
    assert f"resuming from the latest checkpoint in the output folder: {saved[0]}" in resumed.stderr


def test_empty_labels_warn_and_an_empty_validation_label_skips_validation(tmp_path):
    rng = np.random.default_rng(0)
    image = str(tmp_path / "data.h5:image")
    write_volume(image, rng.integers(0, 256, (16, 64, 64), dtype=np.uint8))
    write_volume(str(tmp_path / "data.h5:label"), np.zeros((16, 64, 64), np.uint32))
    config = tiny_config(tmp_path)
    opts = ["DATASET.SYNTHETIC.ENABLED", "False", "DATASET.IMAGE_NAME", image, "DATASET.LABEL_NAME",
            str(tmp_path / "data.h5:label"), "DATASET.VAL_IMAGE_NAME", image, "DATASET.VAL_LABEL_NAME",
            str(tmp_path / "data.h5:label"), "SOLVER.ITERATION_TOTAL", "2", "SOLVER.ITERATION_VAL", "1",
            "SOLVER.ITERATION_SAVE", "1", "SYSTEM.INFER_AFTER_TRAIN", "False"]
    result = main_ok("--config-file", config, "--opts", *opts)
    assert "data.h5:label holds no foreground" in result.stderr
    assert "training runs without validation" in result.stderr and "new best" not in result.stderr
    assert not (tmp_path / "outputs" / "Synthetic-BC" / "best.pth.tar").exists()


def test_validation_rows_of_other_settings_are_moved_aside_on_resume(run, tmp_path):
    config = copy_run(run, tmp_path)
    folder = tmp_path / "outputs" / "Synthetic-BC"
    opts = ["SOLVER.ITERATION_VAL", "1", "SYSTEM.INFER_AFTER_TRAIN", "False"]
    main_ok("--config-file", config, "--opts", "SOLVER.ITERATION_TOTAL", "7", *opts)
    main_ok("--config-file", config, "--opts", "SOLVER.ITERATION_TOTAL", "8", *opts)
    assert [r.split(",")[0] for r in (folder / "validation.csv").read_text().splitlines()[1:]] == ["7", "8"]
    result = main_ok("--config-file", config, "--opts", "SOLVER.ITERATION_TOTAL", "9", "POSTPROCESS.SEED_THRESHOLD",
                     "0.85", *opts)
    assert "POSTPROCESS.SEED_THRESHOLD: 0.9 -> 0.85" in result.stderr
    assert [r.split(",")[0] for r in (folder / "validation.stale-1.csv").read_text().splitlines()[1:]] == ["7", "8"]
    assert [r.split(",")[0] for r in (folder / "validation.csv").read_text().splitlines()[1:]] == ["9"]


def test_the_size_prior_from_the_training_labels_reaches_the_decoder_and_the_record(run, tmp_path):
    """POSTPROCESS.MAX_SECTION_FROM_LABELS: the limit comes from the training labels, enters the
    instances' settings (another factor makes them again, from the same maps) and removes what it must."""
    from connectomics.postprocess.label_prior import largest_label_section
    from connectomics.storage import split_names

    config = copy_run(run, tmp_path)
    inference = tmp_path / "outputs" / "Synthetic-BC" / "inference"
    # thresholds any map passes: the 6-iteration model's maps then give instances (it segments nothing at 0.9)
    loose = ["POSTPROCESS.SEED_THRESHOLD", "0.01", "POSTPROCESS.FOREGROUND_THRESHOLD", "0.01",
             "POSTPROCESS.CONTOUR_THRESHOLD", "0.99", "POSTPROCESS.MIN_SIZE", "1"]
    main_ok("--config-file", config, "--inference", "--opts", *loose)
    maps_made = os.path.getmtime(inference / "probs.h5")
    unlimited = read_volume(str(inference / "instances.h5"))
    assert unlimited.max() > 0  # something for the limit to remove
    labels = [str(tmp_path / "datasets" / "synthetic" / name) + ":label"
              for name in ("train.h5", "train1.h5", "train2.h5", "train3.h5")]
    widest = largest_label_section(tuple(split_names("@".join(labels))))
    assert widest > 0
    main_ok("--config-file", config, "--inference", "--opts", *loose, "POSTPROCESS.MAX_SECTION_FROM_LABELS", "1.5")
    assert settings_of(inference / "instances.h5")["params"]["max_section"] == round(1.5 * widest)
    assert os.path.getmtime(inference / "probs.h5") == maps_made  # the maps are kept, only the decoding reruns
    main_ok("--config-file", config, "--inference", "--opts", *loose, "POSTPROCESS.MAX_SECTION_FROM_LABELS", "1000")
    assert np.array_equal(read_volume(str(inference / "instances.h5")), unlimited)  # a limit nothing reaches
    result = main_ok("--config-file", config, "--inference", "--opts", *loose,
                     "POSTPROCESS.MAX_SECTION_FROM_LABELS", "0.01")
    assert settings_of(inference / "instances.h5")["params"]["max_section"] == round(0.01 * widest)
    assert read_volume(str(inference / "instances.h5")).max() == 0 and "POSTPROCESS.MAX_SECTION" in result.stderr
