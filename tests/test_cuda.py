"""The CUDA paths: mixed-precision training and inference, GPU checkpoints on the CPU.

Skipped without a CUDA device (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
"""
import numpy as np
import pytest
import torch
from test_engine import losses, run_main, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_amp_training_on_cuda_resumes_and_its_checkpoint_infers_on_the_cpu(tmp_path):
    config = tiny_config(tmp_path, total=6, save=3)
    gpu = ["SYSTEM.DEVICE", "cuda", "SOLVER.AMP", "True", "SYSTEM.INFER_AFTER_TRAIN", "False"]
    first = run_main("--config-file", config, "--opts", *gpu, "SOLVER.ITERATION_TOTAL", "3", timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "outputs" / "Synthetic-BC"
    state = torch.load(out / "checkpoint_000003.pth.tar", map_location="cpu", weights_only=False)
    assert state["scaler"] and state["scaler"]["scale"] > 0  # the AMP loss scale is saved
    # the newest checkpoint in the folder is picked up: iterations 3..5 run on
    second = run_main("--config-file", config, "--opts", *gpu, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    logged = losses(out / "log.txt")
    assert len(logged) >= 6 and all(np.isfinite(v) for v in logged.values())
    assert "resuming from the latest checkpoint" in second.stderr
    cpu = run_main("--config-file", config, "--inference", "--checkpoint", str(out / "checkpoint_000006.pth.tar"),
                   "--opts", "SYSTEM.DEVICE", "cpu", timeout=600)
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    assert "AP-75" in cpu.stdout + cpu.stderr


def _predict(model, volume, device, amp):
    from connectomics.inference import Predictor, predict_volume

    predictor = Predictor(model.to(device), window=(5, 48, 48), stride=(3, 32, 32), pad=(1, 8, 8),
                          batch_size=4, device=device, amp=amp)
    return predict_volume(predictor, volume)


@pytest.fixture(scope="module")
def model_and_volume():
    from connectomics.config import load_cfg
    from connectomics.model import build_model

    cfg = load_cfg(None, ["MODEL.FILTERS", "[8, 12, 16, 20, 24]", "MODEL.INPUT_SIZE", "[5, 48, 48]",
                          "INFERENCE.STRIDE", "[3, 32, 32]"])
    torch.manual_seed(0)
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    return model, rng.integers(0, 256, (12, 96, 96), dtype=np.uint8)


def test_cuda_fp32_inference_matches_the_cpu(model_and_volume):
    model, volume = model_and_volume
    cpu = _predict(model, volume, "cpu", amp=False).astype(int)
    gpu = _predict(model, volume, "cuda", amp=False).astype(int)
    assert cpu.shape == gpu.shape and cpu.dtype == gpu.dtype
    assert np.abs(cpu - gpu).max() <= 1  # uint8 rounding of float sums taken in another order


def test_amp_inference_stays_within_a_few_levels_of_fp32(model_and_volume):
    model, volume = model_and_volume
    fp32 = _predict(model, volume, "cuda", amp=False).astype(int)
    half = _predict(model, volume, "cuda", amp=True).astype(int)
    diff = np.abs(fp32 - half)
    assert np.mean(diff <= 2) > 0.999 and diff.max() <= 8
