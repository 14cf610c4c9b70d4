"""Format benchmark: instances written as an OME-Zarr pyramid vs as plain zarr, on a 2-worker Dask cluster.

A synthetic uint32 instance volume (random ellipsoids, painted once into a source zarr store in
--workdir) is exported block by block the way the blockwise post-processing exports its result:
each worker reads its block and writes it into the output the format's writer started
(``connectomics.storage.output.output_writer(...).start``), then ``finish`` publishes it (OME-Zarr:
the pyramid, made from level 0 chunk by chunk, and its metadata). For each format, on a fresh
cluster: wall time, and the peak RSS of every process (client and workers). Target: OME-Zarr
<= 1.5x the time of plain zarr; peaks bounded by the block, flat when the volume doubles.

    python benchmarks/bench_formats.py                    # 128 x 2048 x 2048 and 256 x 2048 x 2048
    python benchmarks/bench_formats.py --quick            # 32 x 1024 x 1024 and 64 x 1024 x 1024
"""
import argparse
import functools
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BLOCK = (64, 512, 512)


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _paint(index, grid, objects, path):
    from bench_scale import paint_labels

    from connectomics.storage import open_array

    box = grid.box(index)
    open_array(path, "r+")[box.slices()] = paint_labels(list(zip(box.begin, box.end)), objects)
    return 0


def _copy(index, grid, src, dst):
    from connectomics.storage import open_array
    from connectomics.storage.output import write_region

    box = grid.box(index)
    write_region(dst, box.slices(), open_array(src)[box.slices()])
    return 0


def make_source(workdir, shape, client):
    from bench_scale import _objects

    from connectomics.geometry import BlockGrid
    from connectomics.storage import create_array

    path = os.path.join(workdir, f"labels_{'x'.join(map(str, shape))}.zarr")
    grid = BlockGrid(shape, BLOCK)
    if not os.path.exists(os.path.join(path, "zarr.json")) or not os.path.exists(path + ".done"):
        create_array(path, shape, BLOCK, np.uint32, {"bench": list(shape)})
        client.gather(client.map(functools.partial(_paint, grid=grid, objects=_objects(shape, 0), path=path),
                                 list(grid.indices())))
        open(path + ".done", "w").close()
    return path, grid


def export(src, grid, out, client):
    """Blocks of ``src`` into ``out`` through its format's parallel writer; returns seconds."""
    from connectomics.storage import remove_path
    from connectomics.storage.output import output_writer

    remove_path(out)
    started = time.perf_counter()
    writer = output_writer(out, parallel=True)
    tmp, where = writer.start(out, None, grid.shape, np.uint32, grid.block, {"bench": 1},
                              {"voxel_size": [30, 8, 8]})
    client.gather(client.map(functools.partial(_copy, grid=grid, src=src, dst=where), list(grid.indices())))
    writer.finish(tmp, out)
    return time.perf_counter() - started


def run_format(workdir, shape, name):
    """A fresh 2-worker cluster (so the peaks are this run's): export, then every process's peak."""
    from dask.distributed import Client

    from connectomics.blockwise.cluster import local_cluster, trim_after_tasks

    with local_cluster(2, 1, dashboard_address=None) as cluster, Client(cluster) as client:
        trim_after_tasks(client)
        src, grid = make_source(workdir, shape, client)
        client.restart()  # painting's peaks are not the export's
        seconds = export(src, grid, os.path.join(workdir, f"out_{name}"), client)
        workers = sorted(client.run(_peak_mib).values())
    return seconds, workers


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", type=int, default=128)
    parser.add_argument("--xy", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="32 x 1024 x 1024 and its double")
    parser.add_argument("--workdir", default=None, help="source volumes are cached here (default: a temp folder)")
    args = parser.parse_args()
    from connectomics.utils.cpu import cpu_description

    print(f"CPU: {cpu_description()}", flush=True)
    shape = (32, 1024, 1024) if args.quick else (args.depth, args.xy, args.xy)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_formats_")
    results = {}
    for depth in (shape[0], 2 * shape[0]):
        size = (depth,) + shape[1:]
        row = {}
        for name in ("plain.zarr", "pyramid.ome.zarr"):
            seconds, workers = run_format(workdir, size, name)
            row[name] = dict(seconds=round(seconds, 2), worker_peak_mib=[round(w) for w in workers])
        row["ratio"] = round(row["pyramid.ome.zarr"]["seconds"] / row["plain.zarr"]["seconds"], 2)
        row["client_peak_mib"] = round(_peak_mib())
        results["x".join(map(str, size))] = row
        print(json.dumps({"shape": size, **row}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
