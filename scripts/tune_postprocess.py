#!/usr/bin/env python
"""Search the decoder's thresholds for the best AP-75 against ground truth.

    python scripts/tune_postprocess.py --config-file X.yaml -i probs.h5 -gt gt.h5 [--max-evals 40] \\
        [--output-dir DIR] [--scheduler [ADDRESS]] [--opts POSTPROCESS.DECODER bc_watershed]

The decoder and the starting (default) thresholds come from POSTPROCESS.*, the grids from
POSTPROCESS.TUNE.* (empty: the decoder's own grids). With --scheduler every trial is decoded
blockwise on Dask and scored from its store (maps larger than memory). Writes
DIR/tune_heatmap.png (AP-75 over seed x contour thresholds) and DIR/tune_best.yaml (a
POSTPROCESS snippet to merge into a config); prints best vs default.
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.config import load_cfg  # noqa: E402
from connectomics.engine.cli import add_scheduler_argument, run_command, scheduler_opts  # noqa: E402

logger = logging.getLogger("tune_postprocess")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", metavar="YAML", default=None, help="config (default: the defaults)")
    parser.add_argument("-i", "--input", required=True, metavar="PROBS.h5[:key]", help="probability maps")
    parser.add_argument("-gt", "--gt", required=True, metavar="GT.h5[:key]", help="ground-truth instances")
    parser.add_argument("--max-evals", type=int, default=None,
                        help="decodes at most (default POSTPROCESS.TUNE.MAX_EVALS)")
    parser.add_argument("--output-dir", default=None,
                        help="folder of the heat map and YAML snippet (default: the input's folder)")
    add_scheduler_argument(parser, "each trial")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides (must come last)")
    return parser


def main(argv=None):
    return run_command(run, get_parser().parse_args(argv), logger, extra=(ValueError,))


def run(args):
    from connectomics.engine.tune import run_tuning
    from connectomics.storage import parse_spec

    cfg = load_cfg(args.config_file, list(args.opts) + scheduler_opts(args))
    folder = args.output_dir or os.path.dirname(os.path.abspath(parse_spec(args.input)[0]))
    print(run_tuning(cfg, args.input, args.gt, folder, args.max_evals, scheduler=args.scheduler), flush=True)


if __name__ == "__main__":
    sys.exit(main())
