#!/usr/bin/env python
"""Time one training sample through the default augmentor (all transforms enabled).

    python benchmarks/bench_augmentation.py [--sizes 17,128,128 36,320,320] [-n 15]

For each input size, in a child process (so its peak RSS is its own): the
median time of the full Compose (each transform at its configured
probability), and of the geometric part alone at p = 1 against a baseline
measured in the same run: the predecessor's way, three scipy.ndimage
resamplings (rotate, zoom, elastic map_coordinates) of the whole enlarged
sample followed by a crop. Single core (the loader runs one sample per worker);
times are CPU seconds of the child, so other load on the machine inflates them less.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _median_time(func, n):
    """Median CPU seconds of ``func`` (robust on a shared machine; one thread, so ~ wall time)."""
    times = []
    for _ in range(n):
        start = time.process_time()
        func()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _baseline_geometric(image, label, out_size, rng):
    """Rotate, rescale and elastic-warp the whole sample one after the other, then crop."""
    from scipy import ndimage

    angle = rng.uniform(0, 360)
    image = ndimage.rotate(image, angle, axes=(1, 2), reshape=False, order=1)
    label = ndimage.rotate(label, angle, axes=(1, 2), reshape=False, order=0)
    zoom = (1, *rng.uniform(0.8, 1.2, 2))
    image = ndimage.zoom(image, zoom, order=1)
    label = ndimage.zoom(label, zoom, order=0)
    h, w = image.shape[1:]
    field = [ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), 4) * 16 for _ in range(2)]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.stack([yy + field[0], xx + field[1]])
    image = np.stack([ndimage.map_coordinates(s, coords, order=1) for s in image])
    label = np.stack([ndimage.map_coordinates(s, coords, order=0) for s in label])
    box = tuple(slice((n - s) // 2, (n - s) // 2 + s) for n, s in zip(image.shape, out_size))
    return image[box], label[box]


def child(size, n):
    from connectomics.config import get_cfg_defaults
    from connectomics.data.augmentation import Compose, Elastic, Rescale, Rotate, build_train_augmentor
    from connectomics.data.augmentation.preview import synthetic_pair

    cfg = get_cfg_defaults()
    cfg.MODEL.INPUT_SIZE = list(size)
    compose = build_train_augmentor(cfg)
    rng = np.random.default_rng(0)
    image8, label = synthetic_pair(compose.sample_size, rng)
    image = image8.astype(np.float32) / 255
    full = _median_time(lambda: compose(image, label, rng), n)
    full_uint8 = _median_time(lambda: compose(image8, label, rng), n)
    geometric = Compose([Rotate(p=1), Rescale(p=1), Elastic(p=1)], size, smooth=False)
    g_image, g_label = image[tuple(slice(0, s) for s in geometric.sample_size)], label[
        tuple(slice(0, s) for s in geometric.sample_size)]
    ours = _median_time(lambda: geometric(g_image, g_label, rng), n)
    base = _median_time(lambda: _baseline_geometric(g_image, g_label, size, rng), max(3, n // 3))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"input_size": list(size), "sample_size": list(compose.sample_size), "full_s": full,
            "full_uint8_s": full_uint8, "geometric_s": ours, "baseline_geometric_s": base,
            "peak_rss_mb": peak_mb}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["17,128,128", "36,320,320"], help="input sizes z,y,x")
    parser.add_argument("-n", type=int, default=15, help="repetitions (median)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child([int(v) for v in args.child.split(",")], args.n)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", size, "-n", str(args.n)],
                             check=True, capture_output=True, text=True, env=env).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"input {r['input_size']} sample {r['sample_size']}: full augmentation median "
              f"{r['full_s'] * 1e3:.1f} ms (uint8 input {r['full_uint8_s'] * 1e3:.1f} ms); geometric "
              f"(rotate+rescale+elastic, p=1) {r['geometric_s'] * 1e3:.1f} ms vs sequential scipy baseline "
              f"{r['baseline_geometric_s'] * 1e3:.1f} ms = {r['baseline_geometric_s'] / r['geometric_s']:.1f}x "
              f"faster; peak RSS {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
