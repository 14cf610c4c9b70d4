"""scripts/show_augmentation.py: one command writes a PNG of augmented samples."""
import os
import runpy

import h5py
import numpy as np
import pytest

from connectomics.data.augmentation.preview import synthetic_pair, training_pair

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "show_augmentation.py")
CONFIG = """
MODEL:
  INPUT_SIZE: [5, 32, 48]
INFERENCE:
  STRIDE: [1, 16, 16]
DATASET:
  IMAGE_NAME: {image}
  LABEL_NAME: {label}
"""


def _run(tmp_path, image="", label="", extra=()):
    config = tmp_path / "aug.yaml"
    config.write_text(CONFIG.format(image=image or "''", label=label or "''"))
    out = tmp_path / "aug.png"
    main = runpy.run_path(SCRIPT, run_name="show_augmentation")["main"]
    main(["--config-file", str(config), "--out", str(out), "-n", "2", "--opts", *extra])
    assert out.stat().st_size > 1000
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_png_from_synthetic_pair(tmp_path):
    _run(tmp_path, extra=["AUGMENTOR.SMOOTH", "False"])


def test_png_from_training_volume(tmp_path):
    image, label = synthetic_pair((6, 40, 40), np.random.default_rng(0))  # smaller than the sample: padded
    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as f:
        f["image"], f["label"] = image, label
    _run(tmp_path, image=f"{path}:image", label=f"{path}:label")


def test_training_pair_checks_shapes(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["image"] = np.zeros((4, 8, 8), np.uint8)
        f["label"] = np.zeros((4, 8, 9), np.uint32)
    with pytest.raises(ValueError, match="shape"):
        training_pair(f"{path}:image", f"{path}:label", (2, 4, 4), np.random.default_rng(0))
    image, label = training_pair(f"{path}:image", f"{path}:image", (6, 10, 4), np.random.default_rng(0))
    assert image.shape == label.shape == (6, 10, 4) and image.dtype == np.float32


def test_config_typo_exits_cleanly(tmp_path, capsys):
    main = runpy.run_path(SCRIPT, run_name="show_augmentation")["main"]
    out = tmp_path / "aug.png"
    assert main(["--out", str(out), "-n", "1", "--opts", "AUGMENTOR.ROTAT.P", "1"]) == 2
    assert not out.exists()
