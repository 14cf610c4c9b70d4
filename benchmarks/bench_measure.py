"""Morphometrics benchmark: ``connectomics.measure`` against scikit-image ``regionprops_table``.

A synthetic uint32 instance volume (random ellipsoids at 30 x 8 x 8 nm, about 1,000 instances) and
a uint8 image in HDF5. Each measurement runs in its own child process (so its peak RSS is its own):

* the measures regionprops has (voxel count, bounding box, centroid, principal axis lengths at
  the voxel size, mean intensity): ours (slab sums from the file, gzip HDF5) vs
  ``regionprops_table(labels, image, spacing=...)`` (the volume read whole): wall time, ratio,
  peak RSS, largest difference of every measure (target <= 1e-6 relative); and the computation
  alone on the arrays in memory (median of 3; target >= 3x), since both read the same file;
* the mesh (surface, sphericity) and skeleton measures: seconds per instance on the first
  ``--shape-instances`` instances;
* the blockwise run on a 2-worker local Dask cluster: wall time and the peak RSS of every worker,
  on the volume and on one of twice its depth (the peaks must not grow).

    python benchmarks/bench_measure.py                 # 128 x 1024 x 1024, ~1,000 instances
    python benchmarks/bench_measure.py --quick         # 32 x 512 x 512, ~60 instances
"""
import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VOXEL = (30.0, 8.0, 8.0)
COMPARED = ("voxels", "bbox", "centroid", "axes", "mean_intensity")


def make_volume(path, shape, n, seed=0):
    """Random non-overlapping-ish ellipsoids (later ones overwrite), written slab by slab."""
    import h5py

    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (n, 3)) * np.asarray(shape)
    radii = np.stack([rng.uniform(2, 8, n), rng.uniform(8, 30, n), rng.uniform(8, 30, n)], 1)
    with h5py.File(path, "w") as f:
        labels = f.create_dataset("labels", shape, np.uint32, chunks=(16, 256, 256), compression="gzip",
                                  compression_opts=1)
        image = f.create_dataset("image", shape, np.uint8, chunks=(16, 256, 256), compression="gzip",
                                 compression_opts=1)
        for z0 in range(0, shape[0], 16):
            z1 = min(z0 + 16, shape[0])
            slab = np.zeros((z1 - z0,) + tuple(shape[1:]), np.uint32)
            for i, (c, r) in enumerate(zip(centres, radii), start=1):
                lo = np.maximum(np.floor(c - r).astype(int), [z0, 0, 0])
                hi = np.minimum(np.ceil(c + r).astype(int) + 1, [z1, shape[1], shape[2]])
                if np.any(hi <= lo):
                    continue
                z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
                inside = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 <= 1
                view = slab[lo[0] - z0:hi[0] - z0, lo[1]:hi[1], lo[2]:hi[2]]
                view[inside] = i
            labels[z0:z1] = slab
            image[z0:z1] = np.where(slab > 0, 180, 60).astype(np.uint8) + rng.integers(0, 40, slab.shape, np.uint8)


def _child(task, queue):
    started = time.perf_counter()
    result = task()
    queue.put((time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result))


def in_child(task):
    """``(seconds, peak RSS MiB, result)`` of ``task()`` run in a fresh process."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(task, queue))
    process.start()
    out = queue.get()
    process.join()
    return out


def ours(path):
    from connectomics.measure import measure_instances

    rows, _ = measure_instances(f"{path}:labels", f"{path}:image", voxel_size=VOXEL, skeleton=False, surface=False)
    return {r["id"]: [r["voxels"], r["bbox_z0"], r["bbox_y0"], r["bbox_x0"], r["bbox_z1"], r["bbox_y1"], r["bbox_x1"],
                      r["centroid_z_nm"] / VOXEL[0], r["centroid_y_nm"] / VOXEL[1], r["centroid_x_nm"] / VOXEL[2],
                      r["axis_major_nm"], r["axis_minor_nm"], r["mean_intensity"]] for r in rows}


def _load(path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["labels"][...], f["image"][...]


def ours_in_memory(path):
    """Our first pass and rows on arrays already in memory: ``(seconds of the computation, table)``."""
    from connectomics.measure.api import _records, instance_row
    from connectomics.measure.sums import block_sums

    labels, image = _load(path)
    started = time.perf_counter()
    records = _records(block_sums(labels, (0, 0, 0), image), True, False)
    rows = [instance_row(r, None, labels.shape, VOXEL, skeleton=False, surface=False) for r in records]
    return time.perf_counter() - started, len(rows)


def skimage_in_memory(path):
    labels, image = _load(path)
    started = time.perf_counter()
    table = _skimage(labels, image)
    return time.perf_counter() - started, len(table)


def skimage_table(path):
    return _skimage(*_load(path))


def _skimage(labels, image):
    from skimage.measure import regionprops_table

    t = regionprops_table(labels, image, spacing=VOXEL, properties=(
        "label", "area", "bbox", "centroid", "axis_major_length", "axis_minor_length", "intensity_mean"))
    voxel_volume = float(np.prod(VOXEL))
    return {int(t["label"][i]): [t["area"][i] / voxel_volume] + [t[f"bbox-{k}"][i] for k in range(6)]
            + [t[f"centroid-{k}"][i] / VOXEL[k] for k in range(3)]
            + [t["axis_major_length"][i], t["axis_minor_length"][i], t["intensity_mean"][i]] for i in range(len(t["label"]))}


def shapes(path, n):
    from connectomics.measure.api import _records, instance_row
    from connectomics.measure.sums import merge_sums
    from connectomics.measure.api import slab_sums
    from connectomics.storage import open_volume

    with open_volume(f"{path}:labels") as volume:
        shape = tuple(volume.shape)
    sums = merge_sums([slab_sums(((0, shape[0]), (0, shape[1]), (0, shape[2])), f"{path}:labels")])
    records = _records(sums, False, False)[:n]
    timings = {}
    for name, kwargs in (("surface", dict(surface=True, skeleton=False)), ("skeleton", dict(surface=False, skeleton=True))):
        started = time.perf_counter()
        for record in records:
            instance_row(record, f"{path}:labels", shape, VOXEL, **kwargs)
        timings[name] = (time.perf_counter() - started) / max(1, len(records))
    return timings


def blockwise(path):
    from distributed import Client

    from connectomics.blockwise.cluster import local_cluster, trim_after_tasks
    from connectomics.measure import measure_instances

    with local_cluster(2, 1, dashboard_address=None) as cluster, Client(cluster) as client:
        trim_after_tasks(client)
        started = time.perf_counter()
        rows, _ = measure_instances(f"{path}:labels", f"{path}:image", voxel_size=VOXEL, skeleton=False,
                                    surface=False, client=client)
        seconds = time.perf_counter() - started
        workers = sorted(round(v) for v in client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                      / 1024).values())
    return dict(seconds=round(seconds, 2), instances=len(rows), worker_peak_mib=workers)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shape-instances", type=int, default=50)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    from connectomics.utils.cpu import cpu_description

    print(f"CPU: {cpu_description()}", flush=True)
    shape, n = ((32, 512, 512), 60) if args.quick else ((128, 1024, 1024), 1100)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_measure_")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, f"volume_{'x'.join(map(str, shape))}.h5")
    if not os.path.exists(path):
        make_volume(path, shape, n)
    import skimage.measure  # noqa: F401  imported before the children fork: their times are the work's

    import connectomics.measure  # noqa: F401
    ours_s, ours_mib, a = in_child(lambda: ours(path))
    sk_s, sk_mib, b = in_child(lambda: skimage_table(path))
    assert sorted(a) == sorted(b), "different instances"
    worst = {}
    for name, columns in (("voxels", [0]), ("bbox", range(1, 7)), ("centroid", range(7, 10)), ("axes", [10, 11]),
                          ("mean_intensity", [12])):
        worst[name] = max(abs(a[i][c] - b[i][c]) / max(abs(b[i][c]), 1e-12) for i in a for c in columns)
    result = dict(shape=shape, instances=len(a), from_file=dict(
        ours_seconds=round(ours_s, 2), skimage_seconds=round(sk_s, 2), ratio=round(sk_s / ours_s, 2),
        ours_peak_mib=round(ours_mib), skimage_peak_mib=round(sk_mib)),
        largest_relative_difference={k: float(f"{v:.2g}") for k, v in worst.items()})
    print(json.dumps(result), flush=True)
    ours_c = sorted(in_child(lambda: ours_in_memory(path))[2][0] for _ in range(3))[1]
    sk_c = sorted(in_child(lambda: skimage_in_memory(path))[2][0] for _ in range(3))[1]
    print(json.dumps({"in_memory_median_of_3": dict(ours_seconds=round(ours_c, 3), skimage_seconds=round(sk_c, 3),
                                                      ratio=round(sk_c / ours_c, 2))}), flush=True)
    _, _, per_instance = in_child(lambda: shapes(path, args.shape_instances))
    print(json.dumps({"seconds_per_instance": {k: round(v, 3) for k, v in per_instance.items()},
                      "instances": args.shape_instances}), flush=True)
    print(json.dumps({"blockwise_2_workers": blockwise(path)}), flush=True)
    double = (2 * shape[0],) + tuple(shape[1:])  # peaks per worker must not grow with the volume
    path2 = os.path.join(workdir, f"volume_{'x'.join(map(str, double))}.h5")
    if not os.path.exists(path2):
        make_volume(path2, double, 2 * n, seed=1)
    print(json.dumps({"blockwise_2_workers_double_depth": dict(shape=double, **blockwise(path2))}), flush=True)


if __name__ == "__main__":
    main()
