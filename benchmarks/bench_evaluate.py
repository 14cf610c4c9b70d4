#!/usr/bin/env python
"""Benchmark: the streaming evaluator vs the per-instance reference, on one synthetic HDF5 pair.

    python benchmarks/bench_evaluate.py                 # 100 x 2048 x 2048 uint32, ~5000 instances
    python benchmarks/bench_evaluate.py --quick         # 32 x 512 x 512, 300 instances (smoke run)
    python benchmarks/bench_evaluate.py --shape 200 4096 4096 --instances 20000 --reference-limit 500

The pair is written to uncompressed (or --compression lzf) HDF5 files chunked along z (one
slice per chunk), then each stage runs in a fresh child process so its peak RSS (VmHWM) is its
own: the fast evaluator (--repeats times; median reported), a plain chunked read of both files
(the I/O floor), and the per-instance reference (official structure: sizes, bounding boxes, then
one bounding-box read per prediction). With --reference-limit K the reference loop runs on the
first K predictions only and its loop time is extrapolated linearly to all predictions (stated
in the output).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args):
    """Run one stage in this (fresh) process; print a JSON line."""
    import numpy as np

    from connectomics.evaluation import evaluate_volumes, reference_evaluate
    from connectomics.evaluation.sources import open_pair

    out = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    if args.child == "fast":
        out["summary"] = evaluate_volumes(args.gt, args.pred, chunk_slices=args.cz[0], max_slab_mib=None).summary
    elif args.child == "read":
        with open_pair(args.gt, args.pred) as (gt, pred, (z0, z1)):
            for z in range(z0, z1, args.cz[0]):
                np.add(gt.read(z, min(z + args.cz[0], z1))[0, 0, 0], pred.read(z, min(z + args.cz[0], z1))[0, 0, 0])
    else:
        limit = args.reference_limit or None
        ref = reference_evaluate(args.gt, args.pred, chunk_slices=args.cz[0], max_predictions=limit)
        out.update(stages=ref["seconds"], n_pred=ref["n_pred"], n_done=len(ref["result_p"]))
        out["summary"] = ref["summary"] if limit is None else None
    out["seconds"] = time.perf_counter() - start
    out["cpu"] = time.process_time() - cpu_start
    out["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out))


def run_child(args, stage, cz):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", stage, "--gt", args.gt, "--pred", args.pred,
           "--cz", str(cz), "--reference-limit", str(args.reference_limit)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} child failed:\n{proc.stderr[-3000:]}")
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result = json.loads(line[len("RESULT "):])
    result["wall"] = wall
    return result


def make_files(args, folder):
    import h5py
    import numpy as np

    from connectomics.fixtures.label_pairs import make_label_pair

    z, y, x = args.shape
    scale = (y * x / 2048**2) ** 0.5 if args.quick else 1.0
    start = time.perf_counter()
    gt, pred = make_label_pair((z, y, x), args.instances, np.random.default_rng(args.seed), radius_z=(2, 7),
                               radius_xy=(8 * max(scale, 0.5), 40 * max(scale, 0.5)))
    paths = []
    for name, vol in (("gt", gt), ("pred", pred)):
        path = os.path.join(folder, f"{name}.h5")
        with h5py.File(path, "w") as f:
            f.create_dataset("main", data=vol, chunks=(1, y, x),
                             compression=None if args.compression == "none" else args.compression)
        paths.append(path)
    print(f"generated {z} x {y} x {x} uint32 pair in {time.perf_counter() - start:.1f} s: "
          f"{len(np.unique(gt[::4])) - 1}+ GT instances, foreground {np.count_nonzero(gt) / gt.size:.1%} "
          f"(files: {args.compression}, chunks (1, {y}, {x}), {sum(os.path.getsize(p) for p in paths) / 1e9:.2f} GB)")
    return paths


def report(args, fast, read, ref):
    times = [r["seconds"] for r in fast]
    med = statistics.median(times)
    s = fast[0]["summary"]
    print(f"\nvolumes: {args.shape[0]} x {args.shape[1]} x {args.shape[2]}, n_gt {s['n_gt']}, n_pred {s['n_pred']}, "
          f"AP-75 {s['AP75']:.4f}, AP {s['AP']:.4f}")
    print(f"fast evaluator (-cz {args.cz[0]}): median {med:.2f} s over {len(times)} runs "
          f"({', '.join(f'{t:.2f}' for t in times)}; CPU {statistics.median(r['cpu'] for r in fast):.2f} s), "
          f"process wall incl. start-up {fast[0]['wall']:.2f} s, "
          f"peak RSS {max(r['peak_rss_mb'] for r in fast):.0f} MB")
    for cz, runs in sorted(args.extra.items()):
        print(f"fast evaluator (-cz {cz}): {runs['seconds']:.2f} s (CPU {runs['cpu']:.2f} s), "
              f"peak RSS {runs['peak_rss_mb']:.0f} MB")
    print(f"plain chunked read of both files (I/O floor): {read['seconds']:.2f} s, "
          f"peak RSS {read['peak_rss_mb']:.0f} MB")
    if ref is None:
        return
    st = ref["stages"]
    if ref["n_done"] < ref["n_pred"]:
        total = st["sizes"] + st["boxes"] + st["match"] * ref["n_pred"] / max(ref["n_done"], 1) + st["ap"]
        how = (f"EXTRAPOLATED: per-prediction loop timed on {ref['n_done']} of {ref['n_pred']} predictions "
               f"({st['match']:.1f} s) and scaled linearly; sizes {st['sizes']:.1f} s + boxes "
               f"{st['boxes']:.1f} s measured")
    else:
        total = ref["seconds"]
        how = (f"full run: sizes {st['sizes']:.1f} s, boxes {st['boxes']:.1f} s, per-prediction loop "
               f"{st['match']:.1f} s, AP {st['ap']:.1f} s")
        agree = max(abs(ref["summary"][k] - s[k]) for k in ref["summary"])
        how += f"; max |AP difference| vs fast = {agree:.1e}"
    print(f"per-instance reference: {total:.1f} s ({how}; CPU {ref['cpu']:.1f} s), "
          f"peak RSS {ref['peak_rss_mb']:.0f} MB")
    print(f"speed-up (reference / fast median): {total / med:.1f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[100, 2048, 2048], metavar=("Z", "Y", "X"))
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="32 x 512 x 512, 300 instances")
    parser.add_argument("--cz", type=int, nargs="+", default=[8],
                        help="chunk slices (the slab cap is disabled here to show memory scaling); the first "
                             "is timed with repeats, the others once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compression", choices=["none", "lzf", "gzip"], default="none")
    parser.add_argument("--reference-limit", type=int, default=0,
                        help="time the reference loop on the first K predictions and extrapolate (0: all)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="folder for the HDF5 pair (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the HDF5 files")
    parser.add_argument("--reuse", action="store_true",
                        help="use gt.h5 / pred.h5 already in --workdir (from a --keep run) instead of generating")
    parser.add_argument("--child", choices=["fast", "read", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--gt", help=argparse.SUPPRESS)
    parser.add_argument("--pred", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.quick:
        args.shape, args.instances = [32, 512, 512], 300
    folder = args.workdir or tempfile.mkdtemp(prefix="bench_evaluate_")
    os.makedirs(folder, exist_ok=True)
    existing = [os.path.join(folder, f"{name}.h5") for name in ("gt", "pred")]
    if args.reuse and all(os.path.exists(p) for p in existing):
        args.gt, args.pred = existing
        print(f"reusing {existing[0]} and {existing[1]}")
    else:
        args.gt, args.pred = make_files(args, folder)
    try:
        fast = [run_child(args, "fast", args.cz[0]) for _ in range(args.repeats)]
        args.extra = {cz: run_child(args, "fast", cz) for cz in args.cz[1:]}
        read = run_child(args, "read", args.cz[0])
        ref = None if args.no_reference else run_child(args, "reference", args.cz[0])
        report(args, fast, read, ref)
    finally:
        if not (args.keep or args.reuse):
            for path in (args.gt, args.pred):
                os.remove(path)
            if not args.workdir:
                os.rmdir(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
