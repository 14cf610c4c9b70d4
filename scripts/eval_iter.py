#!/usr/bin/env python
"""Score a series of checkpoints: inference + post-processing + AP-75 for each, one CSV row each.

    python scripts/eval_iter.py --config-file X.yaml --checkpoints DIR --gt GT.h5[:key] [--from N --to M] \\
        [--scheduler [ADDRESS]]

Rows go to INFERENCE.OUTPUT_PATH/sum_results_map75.csv (iteration,AP75,AP50); checkpoints already
there are skipped; ap_over_iterations.png plots AP-75 and AP-50 over the training iteration.
With --scheduler each checkpoint runs blockwise on Dask (zarr maps), as main.py --inference does.
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.config import ConfigError, check_input_files, load_cfg, save_cfg  # noqa: E402
from connectomics.engine.cli import add_scheduler_argument, run_command, scheduler_opts  # noqa: E402
from connectomics.utils.logging import setup_logging  # noqa: E402

logger = logging.getLogger("eval_iter")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", metavar="YAML", default=None, help="the training config")
    parser.add_argument("--checkpoints", metavar="DIR", default=None,
                        help="folder of checkpoint_XXXXXX.pth.tar files (default: DATASET.OUTPUT_PATH)")
    parser.add_argument("--gt", metavar="GT.h5[:key]", default=None,
                        help="ground-truth instances of INFERENCE.IMAGE_NAME (default: EVAL.GT_NAME)")
    parser.add_argument("--image", metavar="IMAGE.h5[:key]", default=None,
                        help="volume to segment (default: INFERENCE.IMAGE_NAME)")
    parser.add_argument("--from", dest="first", type=int, default=0, help="first iteration to score")
    parser.add_argument("--to", dest="last", type=int, default=None, help="last iteration to score")
    parser.add_argument("--output", metavar="DIR", default=None, help="results folder (default: INFERENCE.OUTPUT_PATH)")
    add_scheduler_argument(parser, "each checkpoint")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides (must come last)")
    return parser


def main(argv=None):
    return run_command(run, get_parser().parse_args(argv), logger, resume_hint=True, extra=(ValueError,))


def run(args):
    opts = list(args.opts) + scheduler_opts(args)
    for flag, key in ((args.gt, "EVAL.GT_NAME"), (args.image, "INFERENCE.IMAGE_NAME"),
                      (args.output, "INFERENCE.OUTPUT_PATH")):
        if flag:
            opts += [key, flag]  # relative paths resolve against the current directory
    cfg = load_cfg(args.config_file, opts)
    from connectomics.engine.evaluate_checkpoints import evaluate_checkpoints
    from connectomics.engine.preflight import check_inference_volumes, check_writable_folder

    if not cfg.EVAL.GT_NAME:
        raise ConfigError("no ground truth: pass --gt GT.h5 or set EVAL.GT_NAME")
    # before any checkpoint is run: a missing or mismatched image or GT would fail only after the first inference
    check_input_files(cfg, "test")
    check_writable_folder(cfg.INFERENCE.OUTPUT_PATH, "INFERENCE.OUTPUT_PATH")
    check_inference_volumes(cfg)
    setup_logging(cfg.INFERENCE.OUTPUT_PATH)
    save_cfg(cfg, cfg.INFERENCE.OUTPUT_PATH)
    folder = os.path.abspath(args.checkpoints) if args.checkpoints else cfg.DATASET.OUTPUT_PATH
    evaluate_checkpoints(cfg, folder, args.first, args.last, scheduler=args.scheduler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
