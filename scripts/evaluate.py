#!/usr/bin/env python
"""AP of an instance segmentation against ground truth (MitoEM challenge mAP_3Dvolume semantics).

    python scripts/evaluate.py -gt GT.h5[:key] -p PRED.h5[:key] [-ps SCORES] [-o PREFIX]
                               [-th '5e3, 3e4'] [-thc 2000] [-cz 100] [-sl 'z0, z1']
                               [--csv sum_results_map75.csv [--iteration N]]

Prints AP@[.50:.95], AP-50, AP-75, AP-90, AP-75 small/medium/large and the TP/FP/FN counts at
IoU 0.75, and writes PREFIX_map.txt, PREFIX_match_p.txt, PREFIX_match_fn.txt, PREFIX.json and
PREFIX_pr.png. -1 means "undefined": the area range holds no ground-truth instance.
Memory: two slabs of -cz slices of each volume, one slab capped at 128 MiB (so at most ~0.5 GiB).
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.storage import VolumeError, parse_iteration, parse_spec  # noqa: E402
from connectomics.utils.logging import setup_logging  # noqa: E402

logger = logging.getLogger("evaluate")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-gt", "--gt-seg", required=True, metavar="GT.h5[:key]", help="ground-truth instances")
    parser.add_argument("-p", "--predict-seg", required=True, metavar="PRED.h5[:key]", help="predicted instances")
    parser.add_argument("-ps", "--predict-score", default="", metavar="SCORES",
                        help="N x 2 [id, score] (.txt or .h5), e.g. the instances_scores.txt post-processing "
                             "writes (mean foreground probability); default: score = instance voxel count")
    parser.add_argument("-th", "--threshold", default="5e3, 3e4",
                        help="small/medium and medium/large voxel bounds (default: '5e3, 3e4')")
    parser.add_argument("-thc", "--threshold-crumb", type=int, default=2000,
                        help="GT instances smaller than this are removed (default: 2000)")
    parser.add_argument("-cz", "--chunk-size", type=int, default=100,
                        help="z-slices read at a time (default: 100; a slab is capped at 128 MiB)")
    parser.add_argument("-sl", "--slices", default="-1", help="z range 'z0, z1' to evaluate (default: -1 = all)")
    parser.add_argument("-o", "--output-name", default=None, metavar="PREFIX",
                        help="report prefix (default: the prediction path without its extension)")
    parser.add_argument("--csv", default=None, metavar="PATH", help="append 'iteration,AP75' to this CSV")
    parser.add_argument("--iteration", type=int, default=None,
                        help="model iteration for --csv (default: parsed from the prediction file name: "
                             "checkpoint_XXXXXX or leading digits)")
    parser.add_argument("--length-bins", type=float, nargs="+", default=None, metavar="UM",
                        help="also report the matching metrics per skeleton-length category (TIMISE-style), "
                             "bounded by these lengths in um (voxels without a voxel size), e.g. 1 3; "
                             "skeletonises every instance (tens of ms each)")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="nm, for --length-bins (default: read from the ground-truth file)")
    return parser


def parse_numbers(text, flag, count=None):
    """'5e3, 3e4' -> [5000.0, 30000.0]; a clear error otherwise."""
    try:
        values = [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        values = []
    if not values or (count is not None and len(values) != count):
        raise ValueError(f"{flag} expects {count or 'some'} comma-separated numbers, got {text!r}")
    return values


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging()
    from connectomics.evaluation import LabelError, ScoreError, evaluate_volumes, format_table, write_reports

    try:
        if args.threshold_crumb < 0:
            raise ValueError(f"-thc (--threshold-crumb) = {args.threshold_crumb}: must be >= 0 voxels")
        if args.chunk_size < 1:
            raise ValueError(f"-cz (--chunk-size) = {args.chunk_size}: must be >= 1 slice")
        thresholds = parse_numbers(args.threshold, "-th", 2)
        slices = None if args.slices.strip() == "-1" else [int(v) for v in parse_numbers(args.slices, "-sl", 2)]
        iteration = args.iteration if args.iteration is not None else parse_iteration(parse_spec(args.predict_seg)[0])
        if args.csv and iteration is None:
            raise ValueError(f"--csv needs the model iteration: {args.predict_seg} does not start with digits "
                             "or contain checkpoint_XXXXXX; pass --iteration N")
        predicted, scores = args.predict_seg, args.predict_score or None
        if parse_spec(predicted)[0].endswith(".json"):  # COCO-style instances (scripts/measure.py --coco)
            from connectomics.measure.coco import read_coco

            predicted, table = read_coco(predicted)
            scores = scores or table
        categories = None
        if args.length_bins:
            from connectomics.measure.api import length_categories
            from connectomics.storage.voxel import read_voxel_size

            voxel_size = args.voxel_size or read_voxel_size(args.gt_seg)
            categories = length_categories(args.gt_seg, predicted, args.length_bins, voxel_size)
        result = evaluate_volumes(args.gt_seg, predicted, scores=scores,
                                  area_thresholds=thresholds, crumb_size=args.threshold_crumb,
                                  chunk_slices=args.chunk_size, slices=slices,
                                  other_rankings={"size (the challenge's)": None} if scores is not None else None,
                                  categories=categories)
    except (FileNotFoundError, VolumeError, LabelError, ScoreError, ValueError) as err:
        logger.error("%s", err)
        return 2
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    prefix = args.output_name or os.path.splitext(parse_spec(args.predict_seg)[0])[0]
    print(format_table(result), flush=True)
    from connectomics.engine.cli import report_errors

    with report_errors(logger) as status:
        paths = write_reports(result, prefix, iteration=iteration, csv_path=args.csv)
        print("wrote " + ", ".join(paths))
    return status.code


if __name__ == "__main__":
    sys.exit(main())
