"""DistributedDataParallel on the CPU (gloo): two processes train like one with the same global batch."""
import os
import subprocess
import sys

import torch
from test_engine import MAIN, REPO, run_main, tiny_config


def test_two_processes_match_one(tmp_path):
    config = tiny_config(tmp_path, total=2, save=2)
    opts = ["--opts", "SYSTEM.INFER_AFTER_TRAIN", "False", "MODEL.NORM_MODE", "none"]
    single = run_main("--config-file", config, *opts, "DATASET.OUTPUT_PATH", str(tmp_path / "one"), timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                          MAIN, "--config-file", config, *opts, "DATASET.OUTPUT_PATH", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "process 1 of 2" in ddp.stderr
    one = torch.load(tmp_path / "one" / "checkpoint_000002.pth.tar", weights_only=False)["state_dict"]
    two = torch.load(tmp_path / "two" / "checkpoint_000002.pth.tar", weights_only=False)["state_dict"]
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    """One process per GPU: LOCAL_RANK 1 on a node that shows one GPU fails before touching CUDA."""
    import pytest

    from connectomics.config import ConfigError
    from connectomics.engine.distributed import init_distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: pytest.fail("set_device was reached"))
    with pytest.raises(ConfigError, match=r"LOCAL_RANK 1 \(2 processes in all\).*1 GPU\(s\).*--nproc_per_node <= 1"):
        init_distributed(torch.device("cuda"))
