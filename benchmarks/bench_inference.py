"""Benchmark of chunked inference: whole pipeline vs the model's bare forward, and peak RSS.

1. Throughput: ``infer_volume_to_file`` (HDF5 input read, forward, TTA merge,
   blending, uint8 HDF5 write) against the bare ``model(x)`` over exactly the
   same windows (the same count and batch sizes, chunk-border windows included),
   measured alternately in the same run; medians. Overhead = pipeline / forward - 1.
2. Memory: each run in a child process reading its own peak RSS (VmHWM); the input
   grows 4x with the chunk fixed, so the peak should stay flat. Per chunk voxel:
   (peak - peak of a child that only runs one forward batch) / chunk voxels.
   The memory children use a 1x1x1 conv as the model so that they are fast
   and measure the pipeline's own memory (model activations depend on the
   batch, not the chunk; the forward-only child holds one batch of them).
3. With CUDA: voxels/s of the pipeline with and without mixed precision.
4. CPU precision (``--part precision``): the pipeline as it ran before issue 19 (float32,
   contiguous layout) against the default now (channels-last 3D; bfloat16 autocast where the CPU
   has AMX-BF16 or AVX512-BF16), alternately in the same run, on the MitoEM model (random init,
   windows 9 x 128 x 128, batch 4) and on the shipped CPU weights (their own window): voxels/s,
   the ratio, and how far the uint8 maps are apart (target on a bf16 CPU: >= 1.7x, within 2
   levels on 99.9% of voxels). Prints the CPU features; on a CPU without bf16 it says so.

Model: ``connectomics.model.build_model`` with the config defaults and small
FILTERS if it exists, else a representative conv stack (the report says which).

    python benchmarks/bench_inference.py            # default sizes (a few minutes on 2 cores)
    python benchmarks/bench_inference.py --quick    # smoke run
    python benchmarks/bench_inference.py --part precision   # the CPU default against float32 (issue 19)
    python benchmarks/bench_inference.py --part throughput --devices cuda --filters 28 36 48 64 80 \
        --volume 32 1024 1024 --chunk 32 512 512 --batch 16    # a GPU, the MitoEM model
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.inference import Predictor, infer_volume_to_file  # noqa: E402
from connectomics.storage import h5_chunks  # noqa: E402

SIZES = {  # geometry, throughput volume; RSS: chunk and volume (grown 4x in z)
    "default": dict(window=(8, 128, 128), stride=(4, 64, 64), pad=(2, 32, 32), chunk=(16, 256, 256),
                    volume=(32, 256, 256), rss_chunk=(16, 512, 512), rss_volume=(32, 512, 512), repeats=3,
                    batch=4),
    "quick": dict(window=(4, 32, 32), stride=(2, 16, 16), pad=(1, 8, 8), chunk=(8, 48, 48),
                  volume=(8, 64, 64), rss_chunk=(8, 128, 128), rss_volume=(8, 128, 128), repeats=1, batch=4),
}
FILTERS = [8, 12, 16, 20, 24]


def build(window, filters=FILTERS):
    """(model, description): the real U-Net if the model stage exists, else a conv stack."""
    try:
        from connectomics.config import load_cfg
        from connectomics.model import build_model
    except ImportError:
        build_model = None
    if build_model is not None:
        cfg = load_cfg(None, ["MODEL.FILTERS", str(filters), "MODEL.INPUT_SIZE", str(list(window)),
                              "INFERENCE.STRIDE", str(list(window)), "MODEL.OUT_PLANES", "2",
                              "MODEL.TARGET_OPT", "['0', '4-2-1']", "MODEL.WEIGHT_OPT", "[['1'], ['1']]",
                              "MODEL.LOSS_OPTION", "[['WeightedBCE'], ['WeightedBCE']]",
                              "MODEL.LOSS_WEIGHT", "[[1.0], [1.0]]"])
        torch.manual_seed(0)
        return build_model(cfg), f"connectomics.model.build_model({cfg.MODEL.ARCHITECTURE}, FILTERS={filters})"
    torch.manual_seed(0)
    layers, c = [], 1
    for f in filters[:3]:
        layers += [torch.nn.Conv3d(c, f, 3, padding=1), torch.nn.ELU()]
        c = f
    layers.append(torch.nn.Conv3d(c, 2, 1))
    return torch.nn.Sequential(*layers), f"conv stack 3x(3x3x3 conv + ELU) {filters[:3]} + 1x1 conv to 2"


TILE = 256  # larger inputs repeat a synthetic tile of this in-plane size (generating 10^7+ voxels takes a minute)


def write_input(path, shape, seed=0, synthetic=True):
    """An uncompressed HDF5 input: the synthetic EM image if available (realistic output to compress)."""
    image = None
    if synthetic:
        try:
            from connectomics.data.synthetic import make_synthetic_pair

            tile = (shape[0], min(shape[1], TILE), min(shape[2], TILE))
            image = make_synthetic_pair(tile, seed=seed)[0]
            reps = (1, -(-shape[1] // tile[1]), -(-shape[2] // tile[2]))
            image = np.tile(image, reps)[:, :shape[1], :shape[2]]
        except ImportError:
            pass
    if image is None:
        image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("main", data=image, chunks=h5_chunks(shape, (8, 128, 128)))
    return f"{path}:main"


def batch_sizes(predictor, shape, chunk):
    """The batch sizes the pipeline runs, chunk by chunk."""
    sizes = []
    for c in predictor.tiling(shape, chunk).chunks():
        n = len(c.windows)
        full, rest = divmod(n, predictor.batch_size)
        sizes += [predictor.batch_size] * full + ([rest] if rest else [])
    return sizes


def time_forward(model, window, sizes, device):
    inputs = {b: torch.rand((b, 1) + tuple(window), device=device) for b in set(sizes)}
    model.eval()
    with torch.inference_mode():
        start = time.perf_counter()
        for b in sizes:
            model(inputs[b])
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - start


class TimedModel(torch.nn.Module):
    """Wraps a model and adds up the wall time of its forward calls (the in-run split)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seconds = model, 0.0

    def forward(self, x):
        start = time.perf_counter()
        y = self.model(x)
        if y.is_cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return y


def time_pipeline(predictor, spec, out, chunk):
    start = time.perf_counter()
    infer_volume_to_file(predictor, spec, out, chunk, overwrite=True)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def throughput(cfg, model, device, tmp, amp=False, aug_num=0):
    timed = TimedModel(model)
    predictor = Predictor(timed, cfg["window"], cfg["stride"], cfg["pad"], aug_num=aug_num,
                          batch_size=cfg["batch"], device=device, amp=amp, chunk_size=cfg["chunk"])
    spec = write_input(os.path.join(tmp, "input.h5"), cfg["volume"])
    out = os.path.join(tmp, "probs.h5")
    sizes = batch_sizes(predictor, cfg["volume"], cfg["chunk"])
    voxels = int(np.prod(cfg["volume"]))
    time_forward(model, cfg["window"], sizes[:2], device)  # warm-up
    forward, pipeline, inside = [], [], []
    for _ in range(cfg["repeats"]):
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=predictor.amp):
            forward.append(time_forward(model, cfg["window"], sizes, device) * len(predictor.variants))
        timed.seconds = 0.0
        pipeline.append(time_pipeline(predictor, spec, out, cfg["chunk"]))
        inside.append(pipeline[-1] / timed.seconds - 1)
    tiling = predictor.tiling(cfg["volume"], cfg["chunk"])
    fwd, pipe = statistics.median(forward), statistics.median(pipeline)
    return {"windows_run": sum(sizes), "windows_global": tiling.num_windows, "forward_vox_per_s": voxels / fwd,
            "pipeline_vox_per_s": voxels / pipe, "overhead": pipe / fwd - 1,
            "overhead_inside": statistics.median(inside)}


def child_rss(args):
    """Child process: one pipeline run on --input (or one forward batch without it); print peak RSS."""
    cfg = SIZES[args.size]
    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 2, 1)
    if not args.input:
        time_forward(model, cfg["window"], [cfg["batch"]], torch.device("cpu"))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            predictor = Predictor(model, cfg["window"], cfg["stride"], cfg["pad"], batch_size=cfg["batch"])
            infer_volume_to_file(predictor, args.input, os.path.join(tmp, "probs.h5"), cfg["rss_chunk"])
    print(json.dumps({"peak_kb": peak_rss_kb()}))


def peak_rss_kb():
    """This process's peak RSS: VmHWM (reset by exec, unlike ru_maxrss, which keeps the forking parent's)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(size, extra):
    cmd = [sys.executable, os.path.abspath(__file__), "--size", size, "--child"] + extra
    result = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_kb"] / 1024.0


def report(name, r):
    print(f"{name}: windows run {r['windows_run']} (global grid {r['windows_global']}); bare forward "
          f"{r['forward_vox_per_s']:.3g} vox/s, pipeline {r['pipeline_vox_per_s']:.3g} vox/s, overhead "
          f"{100 * r['overhead']:.1f}% vs the bare-forward run, {100 * r['overhead_inside']:.1f}% vs the "
          "forward time inside the pipeline run")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--part", choices=("all", "throughput", "memory", "precision"), default="all",
                        help="what to measure")
    parser.add_argument("--devices", choices=("all", "cpu", "cuda"), default="all",
                        help="throughput on these devices (cuda: float32 and mixed precision)")
    parser.add_argument("--filters", type=int, nargs=5, default=None,
                        help=f"U-Net FILTERS (default {FILTERS}; the MitoEM model: 28 36 48 64 80)")
    parser.add_argument("--volume", type=int, nargs=3, default=None, help="throughput volume (z, y, x)")
    parser.add_argument("--chunk", type=int, nargs=3, default=None, help="output chunk (z, y, x)")
    parser.add_argument("--batch", type=int, default=None, help="windows per forward pass")
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.size = args.size or ("quick" if args.quick else "default")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        return child_rss(args)
    cfg = dict(SIZES[args.size])
    for key in ("volume", "chunk"):
        if getattr(args, key) is not None:
            cfg[key] = tuple(getattr(args, key))
    if args.batch is not None:
        cfg["batch"] = args.batch
    model, description = build(cfg["window"], args.filters or FILTERS)
    print(f"model: {description}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"window {cfg['window']} stride {cfg['stride']} pad {cfg['pad']} chunk {cfg['chunk']} "
          f"batch {cfg['batch']} volume {cfg['volume']}; medians of {cfg['repeats']}; target overhead < 15%")
    if args.part in ("all", "throughput"):
        measure_throughput(cfg, model, args.devices)
    if args.part in ("all", "memory"):
        measure_memory(args.size, cfg)
    if args.part in ("all", "precision"):
        measure_precision(args.size)


def measure_throughput(cfg, model, devices="all"):
    with tempfile.TemporaryDirectory() as tmp:
        if devices != "cuda":
            report("CPU, TTA off", throughput(cfg, model, torch.device("cpu"), tmp))
        if devices != "cpu" and not torch.cuda.is_available():
            print("CUDA: no CUDA device here, GPU throughput skipped")
        elif devices != "cpu":
            model.to("cuda")
            for amp in (False, True):
                report(f"CUDA, TTA off, amp={amp}", throughput(cfg, model, torch.device("cuda"), tmp, amp=amp))


PRECISION = {"default": dict(volume=(9, 256, 256), repeats=3), "quick": dict(volume=(9, 160, 160), repeats=1)}


def precision_models():
    """(name, model, window, stride) of the two models the precision part runs."""
    from connectomics.checkpoint import load_model_weights, read_checkpoint
    from connectomics.config import load_cfg
    from connectomics.model import build_model

    torch.manual_seed(0)
    mitoem = build_model(load_cfg(None, ["MODEL.INPUT_SIZE", "[9, 128, 128]"]))
    for name in ("TRAIN_IMAGE", "TRAIN_LABEL", "TEST_IMAGE", "TEST_LABEL"):  # the template's paths: unused here
        os.environ.setdefault(name, "unused.h5")
    template = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "Finetune",
                            "Finetune-BC.yaml")
    cfg = load_cfg(template, ["SYSTEM.DEVICE", "cpu", "EVAL.GT_NAME", "", "MODEL.PRE_MODEL",
                              "shipped:bc-cpu-synthetic-myelin"])  # the CPU profile these weights were trained with
    shipped = build_model(cfg)
    load_model_weights(shipped, read_checkpoint(cfg.MODEL.PRE_MODEL, bare=True), cfg.MODEL.ARCHITECTURE,
                       cfg.MODEL.PRE_MODEL)
    window, stride = tuple(cfg.INFERENCE.INPUT_SIZE), tuple(cfg.INFERENCE.STRIDE)
    return [("MitoEM model [28..80] (random init)", mitoem, (9, 128, 128), (6, 96, 96)),
            ("shipped CPU weights [8..48]", shipped, window, stride)]


def measure_precision(size):
    """The float32 contiguous pipeline (before) against the CPU default (after): speed and map agreement."""
    from connectomics.utils.cpu import cpu_description
    from connectomics.utils.precision import STAGE_DEFAULTS, autocast_dtype, cpu_has_bf16

    sizes = PRECISION[size]
    dtype = autocast_dtype("cpu", cpu_bf16=STAGE_DEFAULTS["inference"])
    print(f"\nCPU precision: {cpu_description()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not cpu_has_bf16():
        print("  this CPU has neither AMX-BF16 nor AVX512-BF16: inference stays float32 here (bfloat16 would be "
              "emulated, far slower); the only change is the channels-last layout")
    print(f"  before: float32, contiguous; after (the default): "
          f"{'bfloat16 autocast' if dtype is not None else 'float32'}, channels-last 3D; volume {sizes['volume']}, "
          f"medians of {sizes['repeats']}")
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_input(os.path.join(tmp, "input.h5"), sizes["volume"])
        voxels = int(np.prod(sizes["volume"]))
        for index, (name, model, window, stride) in enumerate(precision_models()):
            pad = tuple(max(0, (w - s) // 2) for w, s in zip(window, stride))
            runs = {"before": dict(channels_last=False, cpu_bf16="off"),
                    "after": dict(channels_last=None, cpu_bf16=STAGE_DEFAULTS["inference"])}
            seconds, maps = {k: [] for k in runs}, {}
            for _ in range(sizes["repeats"]):
                for key, options in runs.items():  # alternately: both see the same machine load
                    predictor = Predictor(model, window, stride, pad, batch_size=4, chunk_size=sizes["volume"],
                                          **options)
                    out = os.path.join(tmp, f"{key}{index}.h5")
                    if os.path.exists(out):  # a complete output of the same settings would be reused, not timed
                        os.remove(out)
                    seconds[key].append(time_pipeline(predictor, spec, out, sizes["volume"]))
                    with h5py.File(out, "r") as f:
                        maps[key] = f["main"][...]
            diff = np.abs(maps["before"].astype(np.int16) - maps["after"].astype(np.int16))
            before, after = (voxels / statistics.median(seconds[k]) for k in ("before", "after"))
            print(f"  {name}: before {before:.3g} vox/s, after {after:.3g} vox/s: {after / before:.2f}x; uint8 maps: "
                  f"{(diff == 0).mean():.4%} equal, {(diff <= 2).mean():.4%} within 2 levels, max {int(diff.max())}")


def measure_memory(size, cfg):
    base = run_child(size, [])
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for grow in (1, 4):  # the input is written here, so that the children hold only the pipeline
            shape = (cfg["rss_volume"][0] * grow,) + tuple(cfg["rss_volume"][1:])
            spec = write_input(os.path.join(tmp, f"input{grow}.h5"), shape, synthetic=False)
            peaks.append(run_child(size, ["--input", spec]))
    chunk_voxels = int(np.prod(cfg["rss_chunk"]))
    print(f"peak RSS (1x1x1-conv model, chunk {cfg['rss_chunk']}): forward-only child {base:.0f} MiB; "
          f"volume {cfg['rss_volume']}: {peaks[0]:.0f} MiB, 4x in z: {peaks[1]:.0f} MiB "
          f"(ratio {peaks[1] / peaks[0]:.3f}); {(max(peaks) - base) * 2**20 / chunk_voxels:.1f} bytes per chunk voxel")


if __name__ == "__main__":
    main()
