"""Scale benchmark: blockwise post-processing on a 2-worker local Dask cluster, from zarr.

Makes a synthetic (2, Z, Y, X) uint8 map pair in zarr (foreground and contour of
random touching ellipsoids, painted block by block by the cluster, cached in
--workdir), then for a volume of Z slices and one of 2 Z slices:

* blockwise ``bc_watershed`` (``connectomics.blockwise.postprocess_blockwise``)
  with W workers into a zarr output: wall time, Mvoxel/s, and the peak RSS of
  every process (the client, which also hosts the scheduler, and each worker);
* the single-machine path on the Z-slice volume (maps read into memory,
  ``decode``, in a child process): wall time and peak RSS, and the agreement of
  the two results after id matching.

Targets: every process under 2 GB at both sizes, and no growth with the volume.

    python benchmarks/bench_scale.py                    # 300 x 2048 x 2048 and 600 x 2048 x 2048 (1.26 / 2.52 G voxels)
    python benchmarks/bench_scale.py --depth 500 --xy 4096   # a MitoEM test volume (8.4 G voxels)
    python benchmarks/bench_scale.py --quick            # 64 x 512 x 512 smoke run
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARAMS = dict(seed_threshold=0.9, contour_threshold=0.8, foreground_threshold=0.85, min_size=128,
              small_mode="background", connectivity=6)
OBJECT_VOXELS = 600_000  # volume per object: foreground about 5%, in the range of MitoEM


def _objects(shape, seed):
    """Ellipsoids (centre z, y, x, radii z, y, x, in-plane angle) for the whole volume."""
    rng = np.random.default_rng(seed)
    n = max(4, int(np.prod(shape) // OBJECT_VOXELS))
    centres = rng.uniform(0, 1, (n, 3)) * np.asarray(shape)
    radii = np.stack([rng.uniform(4, 14, n), rng.uniform(12, 48, n), rng.uniform(12, 48, n)], axis=1)
    return np.concatenate([centres, radii, rng.uniform(0, np.pi, (n, 1))], axis=1)


def paint_labels(box, objects):
    """(box shape) uint32 labels of the ellipsoids (later ones overwrite earlier) within ``box``."""
    origin = np.array([a for a, _ in box])
    end = np.array([b for _, b in box])
    labels = np.zeros(tuple(end - origin), np.uint32)
    for label, (cz, cy, cx, rz, ry, rx, angle) in enumerate(objects, start=1):
        centre, radius = np.array([cz, cy, cx]), np.array([rz, max(ry, rx), max(ry, rx)])
        lo = np.maximum(np.floor(centre - radius).astype(int), origin)
        hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, end)
        if np.any(hi <= lo):
            continue
        z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        dy, dx = y - cy, x - cx
        u, v = np.cos(angle) * dy + np.sin(angle) * dx, -np.sin(angle) * dy + np.cos(angle) * dx
        inside = ((z - cz) / rz) ** 2 + (u / ry) ** 2 + (v / rx) ** 2 <= 1
        labels[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, origin))][inside] = label
    return labels


def paint_block(index, path, grid, objects, seed):
    """Write the maps of one block: foreground inside objects, contour along every change of label."""
    import zarr

    from connectomics.fixtures.scenes import instance_borders
    from connectomics.geometry import slices

    box = grid.box(index)
    ext = grid.box(index, (1, 2, 2))
    labels = paint_labels(ext, objects)
    border = instance_borders(labels, 2)[slices(box, [a for a, _ in ext])]
    labels = labels[slices(box, [a for a, _ in ext])]
    rng = np.random.default_rng([seed, grid.flat(index)])
    maps = np.empty((2,) + labels.shape, np.uint8)
    maps[0] = np.where(labels > 0, 235, 15)
    maps[1] = np.where(border, 230, 12)
    maps += rng.integers(0, 16, maps.shape, dtype=np.uint8)  # noise, no wrap-around: max 250
    zarr.open_array(path, mode="r+")[(slice(None),) + slices(box)] = maps
    return {}


def make_maps(shape, block, workdir, workers, seed=0):
    """The cached zarr map pair of ``shape``, painted on a local cluster."""
    import zarr

    from connectomics.blockwise import connect, run_blocks
    from connectomics.storage import Markers
    from connectomics.geometry import BlockGrid
    from connectomics.storage import create_array, publish, temporary_name

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"maps_{'x'.join(map(str, shape))}_{seed}.zarr")
    settings = {"shape": list(shape), "block": list(block), "seed": seed, "generator": 1}
    if os.path.exists(path):
        return path
    tmp = temporary_name(path)
    create_array(tmp, (2,) + tuple(shape), (2,) + tuple(block), np.uint8, settings)
    grid = BlockGrid(shape, block)
    import functools

    fn = functools.partial(paint_block, path=tmp, grid=grid, objects=_objects(shape, seed), seed=seed)
    with connect("local", workers=workers) as client:
        run_blocks(client, fn, grid.indices(), Markers(tmp + ".blocks", settings), "paint maps")
    publish(tmp, path)
    zarr.open_array(path, mode="r")  # check it opens
    return path


def peak_rss():
    """This process's peak RSS in bytes: VmHWM, which exec resets (``ru_maxrss`` of a child would
    include the RSS of the parent it was forked from)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_blockwise(maps, out, workers, block, halo):
    """In a child process: blockwise post-processing on a fresh local cluster; one JSON line."""
    from connectomics.blockwise import connect, postprocess_blockwise
    from connectomics.storage import remove_path

    remove_path(out)  # a complete output from an earlier run would be reused, not measured
    with connect("local", workers=workers) as client:
        started = time.perf_counter()
        postprocess_blockwise(maps, out, "bc_watershed", PARAMS, client=client, block=block, halo=halo,
                              overwrite=True)
        seconds = time.perf_counter() - started
        workers_rss = client.run(peak_rss)
    print(json.dumps({"seconds": seconds, "client": peak_rss(), "workers": sorted(workers_rss.values())}))


def child_single(maps, out):
    """In a child process: read the maps, decode them whole, write HDF5; one JSON line."""
    from connectomics.postprocess import decode
    from connectomics.storage import read_volume, write_volume

    started = time.perf_counter()
    labels = decode(read_volume(maps), "bc_watershed", **PARAMS)
    write_volume(out, labels, level=1)
    print(json.dumps({"seconds": time.perf_counter() - started, "client": peak_rss()}))


def run_child(*args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a_spec, b_spec, slab=16):
    """Fraction of foreground voxels whose ids agree after matching, streamed in z-slabs."""
    import fastremap

    from connectomics.storage import open_volume

    totals, union = {}, 0
    with open_volume(a_spec) as a, open_volume(b_spec) as b:
        for z in range(0, a.shape[0], slab):
            x, y = np.asarray(a[z:z + slab]).astype(np.uint64), np.asarray(b[z:z + slab]).astype(np.uint64)
            fg = (x > 0) | (y > 0)
            union += int(fg.sum())
            keys, counts = fastremap.unique((x[fg] << np.uint64(32)) | y[fg], return_counts=True)
            for key, count in zip(keys.tolist(), counts.tolist()):
                totals[key] = totals.get(key, 0) + count
    best = {}
    for key, count in totals.items():
        own, ref = key >> 32, key & 0xFFFFFFFF
        if own and ref and count > best.get(own, 0):
            best[own] = count
    return sum(best.values()) / max(union, 1)


def _times(runs):
    return ", ".join(f"{run['seconds']:.1f}" for run in runs)


def gib(value):
    return f"{value / 2**30:.2f} GiB"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=300, help="z slices of the smaller volume (default 300)")
    parser.add_argument("--xy", type=int, default=2048, help="y and x size (default 2048)")
    parser.add_argument("--quick", action="store_true", help="64 x 512 x 512 (and 128 x 512 x 512)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block", type=int, nargs=3, default=[64, 512, 512])
    parser.add_argument("--halo", type=int, nargs=3, default=[8, 64, 64])
    parser.add_argument("--no-double", action="store_true", help="skip the 2 x depth volume")
    parser.add_argument("--no-single", action="store_true", help="skip the single-machine comparison")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "bench_scale"))
    parser.add_argument("--repeats", type=int, default=3,
                        help="blockwise and single runs on the first volume, alternated (medians; default 3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = json.loads(args.child)
        return child_blockwise(*rest) if kind == "blockwise" else child_single(*rest)
    depth, xy = (64, 512) if args.quick else (args.depth, args.xy)
    os.makedirs(args.workdir, exist_ok=True)
    sizes = [depth] + ([] if args.no_double else [2 * depth])
    print(f"bc_watershed, blocks {args.block}, halo {args.halo}, {args.workers} workers; machine: "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    for z in sizes:
        shape = (z, xy, xy)
        started = time.perf_counter()
        maps = make_maps(shape, args.block, args.workdir, args.workers)
        voxels = int(np.prod(shape))
        print(f"maps {shape} ({voxels / 1e9:.2f} G voxels) ready in {time.perf_counter() - started:.0f} s",
              flush=True)
        out = os.path.join(args.workdir, f"instances_{z}.zarr")
        single_out = os.path.join(args.workdir, f"single_{z}.h5")
        compare = z == depth and not args.no_single
        runs, singles = [], []
        for _ in range(args.repeats if compare else 1):  # alternated: both see the same machine load
            runs.append(run_child("blockwise", maps, out, args.workers, args.block, args.halo))
            if compare:
                singles.append(run_child("single", maps, single_out))
        result = dict(runs[-1], seconds=statistics.median(r["seconds"] for r in runs),
                      client=max(r["client"] for r in runs),
                      workers=[max(w) for w in zip(*[sorted(r["workers"]) for r in runs])])
        worst = max([result["client"]] + result["workers"])
        rows.append((shape, result, worst))
        print(f"  blockwise: {result['seconds']:.1f} s (median of {_times(runs)}), "
              f"{voxels / result['seconds'] / 1e6:.1f} Mvoxel/s; peak RSS "
              f"client+scheduler {gib(result['client'])}, workers {', '.join(gib(w) for w in result['workers'])}"
              f" ({worst / voxels:.3f} B/voxel of the volume at the largest)", flush=True)
        if compare:
            single = dict(singles[-1], seconds=statistics.median(r["seconds"] for r in singles),
                          client=max(r["client"] for r in singles))
            agree = agreement(out, single_out)
            print(f"  single machine: {single['seconds']:.1f} s (median of "
                  f"{_times(singles)}), "
                  f"{voxels / single['seconds'] / 1e6:.1f} Mvoxel/s, "
                  f"peak RSS {gib(single['client'])} ({single['client'] / voxels:.2f} B/voxel); "
                  f"blockwise vs single: {agree:.5%} of foreground voxels agree", flush=True)
            ratio = single["seconds"] / result["seconds"]
            print(f"  -> blockwise throughput {ratio:.2f}x the single process's (time {1 / ratio:.2f}x; "
                  "target >= 0.7x: "
                  f"{'PASS' if ratio >= 0.7 else 'FAIL'}), largest process {worst / single['client']:.3f}x of the "
                  "single-machine peak", flush=True)
    if len(rows) == 2:
        growth = rows[1][2] / rows[0][2]
        print(f"volume x2 -> largest process peak RSS x{growth:.2f}")
        checks = {"every process < 2 GB": all(r[2] < 2 * 2**30 for r in rows),
                  "no growth with the volume (< 10%)": growth < 1.10}
        print("targets: " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in checks.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
