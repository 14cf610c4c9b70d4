"""Benchmark: forward + backward time of the MitoEM networks on the CPU.

Each case runs in a child process (so its peak RSS is its own). Prints parameter counts, the
median of ``--repeats`` timed iterations after one warm-up, and, for single-sample inputs, the
ratio against stock ``nn.Conv3d`` dispatch (``blocks.Z_LAST_ON_CPU = False``) measured in the
same run.

    python benchmarks/bench_model.py                       # (2,1,8,128,128) and (1,1,8,64,64)
    python benchmarks/bench_model.py --shape 1 1 8 64 64 --repeats 5
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

CASES = {
    "unet_residual_3d": dict(arch="unet_residual_3d", filters=[28, 36, 48, 64, 80]),
    "rsunet": dict(arch="rsunet", filters=[16, 32, 48, 64, 80]),
    "unet_residual_3d-small": dict(arch="unet_residual_3d", filters=[8, 16, 24, 32, 48]),
}


def run_case(name, shape, repeats, threads, z_last):
    import torch

    from connectomics.model import RSUNet, UNetResidual3D, blocks

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    blocks.Z_LAST_ON_CPU = z_last
    case = CASES[name]
    if case["arch"] == "rsunet":
        model = RSUNet(1, 2, case["filters"], decoder_channels=[1, 1], partial_conv=True)
    else:
        model = UNetResidual3D(1, 2, case["filters"])
    x = torch.rand(*shape)
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(x).square().mean().backward()
        if i:  # the first iteration creates the oneDNN primitives
            times.append(time.perf_counter() - start)
    return dict(params=sum(p.numel() for p in model.parameters()), median_s=statistics.median(times),
                times=[round(t, 3) for t in times])


def child(name, shape, repeats, threads, z_last):
    cmd = [sys.executable, __file__, "--child", name, "--shape", *map(str, shape), "--repeats", str(repeats),
           "--threads", str(threads)] + ([] if z_last else ["--stock"])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=5, action="append", help="input (B, C, Z, Y, X)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = args.shape or [[2, 1, 8, 128, 128], [1, 1, 8, 64, 64]]
    if args.child:
        result = run_case(args.child, shapes[0], args.repeats, args.threads, not args.stock)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    print(f"{'case':24s} {'input':18s} {'params':>10s} {'median s':>9s} {'stock s':>8s} "
          f"{'speed-up':>8s} {'peak MB':>8s}")
    for name in args.cases:
        for shape in shapes:
            fast = child(name, shape, args.repeats, args.threads, z_last=True)
            stock = child(name, shape, args.repeats, args.threads, z_last=False) if shape[0] == 1 else None
            ratio = f"{stock['median_s'] / fast['median_s']:8.2f}" if stock else f"{'-':>8s}"
            stock_s = f"{stock['median_s']:8.3f}" if stock else f"{'-':>8s}"
            print(f"{name:24s} {str(tuple(shape)):18s} {fast['params']:10,d} {fast['median_s']:9.3f} {stock_s} "
                  f"{ratio} {fast['peak_rss_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
