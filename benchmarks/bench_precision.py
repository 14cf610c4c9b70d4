"""Benchmark: bfloat16 autocast against float32 on this CPU (SYSTEM.CPU_BF16).

The Finetune template's CPU model (unet_residual_3d, filters [8, 16, 24, 32, 48]): a training step
(forward + backward of a (4, 1, 5, 96, 96) batch) and an inference forward of (8, 1, 5, 96, 96)
without gradients, each precision in its own child process (peak RSS its own). Prints the CPU,
its features, what SYSTEM.CPU_BF16 auto picks here, the median seconds and the float32 / bfloat16
time ratio (> 1: bfloat16 is faster). On a CPU without AMX-BF16 or AVX512-BF16 torch emulates
bfloat16 and the ratio is far below 1; that is why 'auto' keeps float32 there.

    python benchmarks/bench_precision.py [--repeats 5] [--threads 2]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FILTERS = [8, 16, 24, 32, 48]
CASES = {"train step": (4, 1, 5, 96, 96), "inference": (8, 1, 5, 96, 96)}


def run_case(case, bf16, repeats, threads):
    import torch

    from connectomics.model import UNetResidual3D
    from connectomics.utils.precision import autocast

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNetResidual3D(1, 2, FILTERS, norm="bn")
    x = torch.rand(*CASES[case])
    dtype = torch.bfloat16 if bf16 else None
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        if case == "train step":
            model.zero_grad(set_to_none=True)
            with autocast("cpu", dtype):
                y = model(x)
            y.float().square().mean().backward()
        else:
            with torch.inference_mode(), autocast("cpu", dtype):
                model.eval()(x)
        if i:  # the first iteration creates the oneDNN primitives
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(median_s=statistics.median(times), peak_rss_mb=peak_mb)


def child(case, bf16, repeats, threads):
    cmd = [sys.executable, __file__, "--child", case, "--repeats", str(repeats), "--threads", str(threads)]
    out = subprocess.run(cmd + (["--bf16"] if bf16 else []), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.bf16, args.repeats, args.threads)))
        return
    from connectomics.utils.cpu import cpu_description
    from connectomics.utils.precision import autocast_dtype, describe

    print(f"CPU: {cpu_description()}, {args.threads} threads")
    print(f"SYSTEM.CPU_BF16 auto here: {describe('cpu', autocast_dtype('cpu'), 'auto')}")
    print(f"{'case':12s} {'input':20s} {'float32 s':>10s} {'bfloat16 s':>11s} {'f32/bf16':>9s} "
          f"{'peak MB f32/bf16':>17s}")
    for case, shape in CASES.items():
        f32, b16 = child(case, False, args.repeats, args.threads), child(case, True, args.repeats, args.threads)
        print(f"{case:12s} {str(shape):20s} {f32['median_s']:10.3f} {b16['median_s']:11.3f} "
              f"{f32['median_s'] / b16['median_s']:9.2f} {f32['peak_rss_mb']:8.0f}/{b16['peak_rss_mb']:.0f}",
              flush=True)


if __name__ == "__main__":
    main()
