#!/usr/bin/env python
"""Training throughput: model steps per second vs data-loader samples per second.

    python benchmarks/bench_train.py [--config-file configs/MitoEM/MitoEM-R-BC.yaml]
        [--window 9 128 128] [--batch 2] [--workers 2] [--steps 6]

Builds the config's model, loss and optimizer and times forward + backward + step on random
batches at a small window (median of ``--steps``), then times the real data loader (synthetic
volume, the config's full augmentation, targets, weights) with ``--workers`` worker processes.
On CUDA the step rate is measured in float32 and with mixed precision (the faster one is what
the loader must feed). Prints both rates and the ratio loader samples/s / (step rate x batch);
the loader keeps up when the ratio is >= 2. The step is also timed with the model and the batch in
the channels-last 3D layout (what inference uses on the CPU), printed as a ratio to the contiguous
step, with the CPU it ran on.

    python benchmarks/bench_train.py --config-file configs/Finetune/Finetune-BC.yaml --window 5 96 96 --batch 4
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from connectomics.config import load_cfg  # noqa: E402


def step_rate(cfg, batch, steps, device, amp=False, channels_last=False):
    from connectomics.engine.solver import build_optimizer
    from connectomics.losses import build_criterion
    from connectomics.model import build_model

    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    criterion, optimizer = build_criterion(cfg), build_optimizer(cfg, model)
    z, y, x = cfg.MODEL.INPUT_SIZE
    image = torch.rand(batch, 1, z, y, x, device=device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last_3d)
    targets = [(torch.rand(batch, 1, z, y, x, device=device) > 0.8).float() for _ in cfg.MODEL.TARGET_OPT]
    weights = [torch.ones_like(t) for t in targets]
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            logits = model(image)
        loss, _ = criterion(logits.float(), targets, weights)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times), sum(p.numel() for p in model.parameters())


def loader_rate(cfg, batch, workers, batches):
    from connectomics.data.dataset import build_train_dataset, sample_loader

    loader = sample_loader(build_train_dataset(cfg), batch, range(10 ** 6), workers)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="configs/MitoEM/MitoEM-R-BC.yaml")
    parser.add_argument("--window", type=int, nargs=3, default=[9, 128, 128])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--loader-batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    tmp = tempfile.mkdtemp()
    opts = ["MODEL.INPUT_SIZE", str(args.window), "INFERENCE.INPUT_SIZE", str(args.window),
            "INFERENCE.STRIDE", str([max(1, w // 2) for w in args.window]),
            "DATASET.IMAGE_NAME", f"{tmp}/v.h5:image", "DATASET.LABEL_NAME", f"{tmp}/v.h5:label",
            "DATASET.VAL_IMAGE_NAME", "", "DATASET.VAL_LABEL_NAME", "", "DATASET.INPUT_PATH", tmp,
            "DATASET.SYNTHETIC.ENABLED", "True", "DATASET.SYNTHETIC.SHAPE", "[64, 384, 384]",
            "INFERENCE.IMAGE_NAME", "", "EVAL.GT_NAME", "", "SYSTEM.NUM_CPUS", str(args.workers)]
    os.environ.setdefault("MITOEM_DIR", tmp)
    cfg = load_cfg(args.config_file, opts, freeze=False)
    from connectomics.data.synthetic import ensure_synthetic

    ensure_synthetic(cfg)
    cfg.freeze()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as in training: fixed window, fastest kernels
    rate, params = step_rate(cfg, args.batch, args.steps, device)
    from connectomics.utils.cpu import cpu_description

    name = (torch.cuda.get_device_name() if device.type == "cuda"
            else f"{torch.get_num_threads()} CPU threads, {cpu_description()}")
    print(f"model {cfg.MODEL.ARCHITECTURE} {list(cfg.MODEL.FILTERS)} ({params:,} parameters), "
          f"window {args.window}, batch {args.batch}, {device} ({name})")
    print(f"  training steps/s            {rate:8.3f}   ({rate * args.batch:.2f} samples/s)")
    last_rate, _ = step_rate(cfg, args.batch, args.steps, device, channels_last=True)
    print(f"  training steps/s, channels-last 3D {last_rate:8.3f}   (x{last_rate / rate:.2f} vs contiguous)")
    if device.type == "cuda":  # mixed precision (SOLVER.AMP), the GPU default worth having
        amp_rate, _ = step_rate(cfg, args.batch, args.steps, device, amp=True)
        print(f"  training steps/s, AMP       {amp_rate:8.3f}   ({amp_rate * args.batch:.2f} samples/s, "
              f"x{amp_rate / rate:.2f} vs float32)")
        rate = max(rate, amp_rate)
    samples = loader_rate(cfg, args.batch, args.workers, args.loader_batches)
    print(f"  loader samples/s ({args.workers} workers) {samples:8.2f}   (full augmentation, targets, weights)")
    print(f"  ratio loader / model        {samples / (rate * args.batch):8.2f}   (>= 2: the loader keeps up)")


if __name__ == "__main__":
    main()
