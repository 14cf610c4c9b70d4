#!/usr/bin/env python
"""Measure every instance of a segmentation: one CSV row per instance, and a summary PNG.

    python scripts/measure.py -i instances.h5[:key] [--image I] [--maps P] [--voxel-size Z Y X] -o stats.csv
    python scripts/measure.py -i result.ome.zarr:labels/instances -o stats.csv --scheduler local   # on Dask

Columns: id, voxels, volume (um^3), surface (um^2, marching cubes on the anisotropic grid),
sphericity, bounding box (voxels, end exclusive), centroid (nm), principal axes (nm) and elongation,
skeleton length (um) and branches (kimimaro TEASAR), touches_border (1: the instance is cut by the
volume border and its measures are lower bounds), mean foreground probability (--maps), mean
image intensity (--image). The voxel size comes from --voxel-size or what the files record;
without one, everything is in voxels (said in the column names and the CSV's first line).
Memory: a slab of z-slices, then one instance's crop. Writes stats.csv and stats.png.
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.engine.cli import add_scheduler_argument, run_command  # noqa: E402

logger = logging.getLogger("measure")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--instances", required=True, help="instance labels (Z, Y, X): h5 / zarr / OME-Zarr")
    parser.add_argument("-o", "--output", required=True, help="the CSV to write (the PNG goes beside it)")
    parser.add_argument("--image", default=None, help="the EM image, for the mean intensity per instance")
    parser.add_argument("--maps", default=None, help="probability maps (C, Z, Y, X), for the mean foreground")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="voxel size in nm (default: what the files record)")
    parser.add_argument("--coco", default=None, metavar="JSON", help="also write the instances as COCO-style JSON "
                        "(3D R-CNN layout: bbox [x, y, w, h, z, d], segmentation = the label volume + id)")
    parser.add_argument("--scores", default=None, metavar="TXT", help="with --coco: the [id, score] table "
                        "(e.g. instances_scores.txt); default score: the voxel count")
    parser.add_argument("--no-skeleton", action="store_true", help="skip skeleton length and branches (faster)")
    parser.add_argument("--slab", type=int, default=32, help="z-slices per block of the first pass (default 32)")
    add_scheduler_argument(parser)
    return parser


def run(args):
    import numpy as np

    from connectomics.measure import measure_instances, save_summary_png, write_table
    from connectomics.storage.voxel import resolve_voxel_size

    if not args.output.endswith(".csv"):
        from connectomics.errors import VolumeError

        raise VolumeError(f"--output {args.output}: name a .csv file (the PNG is written beside it)")
    voxel = resolve_voxel_size(args.voxel_size, [args.instances, args.image, args.maps], key="--voxel-size")
    with _client(args.scheduler) as client:
        rows, shape = measure_instances(args.instances, args.image, args.maps, voxel, not args.no_skeleton,
                                        args.slab, client)
    write_table(args.output, rows, voxel, shape)
    png = os.path.splitext(args.output)[0] + ".png"
    save_summary_png(rows, shape, voxel, png, title=os.path.basename(args.instances))
    outputs = [args.output, png]
    if args.coco:
        from connectomics.evaluation.scores import load_scores
        from connectomics.measure.coco import coco_document, write_coco

        scores = None
        if args.scores:
            table = load_scores(args.scores)
            scores = {int(i): float(v) for i, v in np.asarray(table).reshape(-1, 2)}
        outputs.append(write_coco(args.coco, coco_document(args.instances, rows, shape, scores, voxel)))
    print(f"{len(rows)} instances -> {', '.join(outputs)}", flush=True)


def _client(scheduler):
    import contextlib

    if not scheduler or scheduler == "inprocess":
        return contextlib.nullcontext(None)
    from connectomics.blockwise.cluster import connect

    return connect(scheduler)


def main(argv=None):
    return run_command(run, get_parser().parse_args(argv), logger)


if __name__ == "__main__":
    sys.exit(main())
