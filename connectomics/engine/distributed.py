"""Several GPUs (or CPU processes) with DistributedDataParallel, launched by ``torchrun``.

    torchrun --nproc_per_node=4 scripts/main.py --config-file X.yaml

Each process trains on ``SAMPLES_PER_BATCH / world_size`` samples per iteration; the
global sample indices of an iteration are split between the ranks, so the samples of a
run do not depend on the number of processes. Rank 0 alone checkpoints, logs and validates.
"""
import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


def world():
    """``(rank, world_size, local_rank)`` from the torchrun environment (``(0, 1, 0)`` without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def is_main_process():
    return world()[0] == 0


def init_distributed(device):
    """Join the process group when launched with several processes; returns the device to use."""
    rank, size, local = world()
    if size == 1:
        return device
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if local >= visible:
            from connectomics.config import ConfigError

            raise ConfigError(f"torchrun started a process with LOCAL_RANK {local} ({size} processes in all), but "
                              f"this process sees {visible} GPU(s). Run one process per GPU: --nproc_per_node <= "
                              f"{visible}; a launcher that restricts CUDA_VISIBLE_DEVICES per task (e.g. srun) "
                              "must leave all of the node's GPUs visible to every process")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    logger.info("process %d of %d on %s", rank, size, device)
    return device


def wrap_model(model, device):
    """DistributedDataParallel around ``model`` when several processes run, else ``model``."""
    if world()[1] == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def per_rank_batch(batch_size):
    """Samples per iteration of this process; the global batch must split evenly."""
    size = world()[1]
    if batch_size % size:
        raise ValueError(f"SOLVER.SAMPLES_PER_BATCH {batch_size} does not split over {size} processes")
    return batch_size // size


class RankIndices(torch.utils.data.Sampler):
    """Global sample indices of iterations ``first_iter .. last_iter - 1`` that belong to this rank."""

    def __init__(self, first_iter, last_iter, batch_size):
        self.first, self.last, self.batch = first_iter, last_iter, batch_size
        self.rank, self.size, _ = world()
        self.local = batch_size // self.size

    def __iter__(self):
        for it in range(self.first, self.last):
            start = it * self.batch + self.rank * self.local
            yield from range(start, start + self.local)

    def __len__(self):
        return (self.last - self.first) * self.local


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
