"""scripts/eval_iter.py (what eval_iter.sh runs): input checks before any checkpoint is scored."""
import os
import runpy

import h5py
import numpy as np

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "eval_iter.py")


def test_missing_ground_truth_fails_before_any_inference(tmp_path, caplog):
    image = tmp_path / "image.h5"
    with h5py.File(image, "w") as f:
        f["raw"] = np.zeros((4, 32, 32), np.uint8)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    (ckpts / "checkpoint_000010.pth.tar").write_bytes(b"not read: the check comes first")
    out = tmp_path / "sweep"
    main = runpy.run_path(SCRIPT, run_name="eval_iter")["main"]
    rc = main(["--checkpoints", str(ckpts), "--image", f"{image}:raw", "--gt", str(tmp_path / "gt_missing.h5"),
               "--output", str(out)])
    assert rc == 2
    assert "EVAL.GT_NAME" in caplog.text and "gt_missing.h5" in caplog.text
    assert not (out / "iter_000010").exists()


def test_unwritable_output_name_fails_before_any_inference(tmp_path, caplog):
    image, gt = tmp_path / "image.h5", tmp_path / "gt.h5"
    for path, dtype in ((image, np.uint8), (gt, np.uint32)):
        with h5py.File(path, "w") as f:
            f["main"] = np.zeros((4, 32, 32), dtype)
    ckpts = tmp_path / "ckpts"
    ckpts.mkdir()
    (ckpts / "checkpoint_000010.pth.tar").write_bytes(b"not read: the check comes first")
    out = tmp_path / "sweep"
    main = runpy.run_path(SCRIPT, run_name="eval_iter")["main"]
    rc = main(["--checkpoints", str(ckpts), "--image", str(image), "--gt", str(gt), "--output", str(out),
               "--opts", "POSTPROCESS.OUTPUT_NAME", "instances.png"])
    assert rc == 2 and "POSTPROCESS.OUTPUT_NAME" in caplog.text
    assert not (out / "iter_000010").exists()
