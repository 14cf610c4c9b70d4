#!/usr/bin/env python
"""Train, or run inference + post-processing + evaluation, from one config.

    python scripts/main.py --config-file configs/Synthetic/Synthetic-BC.yaml
    python scripts/main.py --config-file X.yaml --inference --checkpoint C.pth.tar
    python scripts/main.py --config-file X.yaml --opts SOLVER.BASE_LR 1e-4 SYSTEM.NUM_CPUS 4
"""
import argparse
import logging
import os
import sys

# Idle OpenMP threads sleep instead of spinning: on a few busy cores (data-loader workers beside
# the training threads) spinning threads slow small models down many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.config import ConfigError, check_input_files, load_cfg, save_cfg  # noqa: E402
from connectomics.utils.logging import setup_logging  # noqa: E402

logger = logging.getLogger("main")


def get_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Relative paths in a config resolve against SYSTEM.ROOT_DIR (default: the current "
               "directory); $VARS in paths are expanded.")
    parser.add_argument("--config-file", metavar="YAML", default=None,
                        help="experiment config; overrides the defaults of connectomics/config/defaults.py "
                             "and may inherit from another YAML with _BASE_")
    parser.add_argument("--inference", action="store_true",
                        help="segment INFERENCE.IMAGE_NAME instead of training: sliding-window inference "
                             "-> probs.h5 -> post-processing -> instances.h5 -> AP-75 if EVAL.GT_NAME is set")
    parser.add_argument("--checkpoint", metavar="PATH", default=None,
                        help="training: resume from this checkpoint (default: the newest checkpoint in "
                             "DATASET.OUTPUT_PATH); inference: the weights to use (default: the newest)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None, nargs="?", const="local",
                        help="inference: run blockwise on Dask (zarr maps, global instance ids): 'local' (a local "
                             "cluster, one worker per core; the default of a bare --scheduler), 'inprocess', or a "
                             "scheduler address tcp://host:port; overrides SYSTEM.SCHEDULER")
    parser.add_argument("--overwrite", action="store_true",
                        help="inference: redo outputs that exist from a run with other settings")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 1e-4 (must come last)")
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging()
    opts = list(args.opts) + (["SYSTEM.SCHEDULER", args.scheduler] if args.scheduler else [])
    try:
        cfg = load_cfg(args.config_file, opts, freeze=False)
    except ConfigError as err:
        logger.error("%s", err)
        return 2
    mode = "test" if args.inference else "train"
    out = cfg.INFERENCE.OUTPUT_PATH if args.inference else cfg.DATASET.OUTPUT_PATH
    log = cfg.MONITOR.LOG_OPT  # [console, tensorboard, log.txt]
    setup_logging(out if log[2] else None, console=bool(log[0]))
    main_process = int(os.environ.get("RANK", 0)) == 0  # torchrun: one process prepares, all train
    if cfg.DATASET.SYNTHETIC.ENABLED and main_process:
        from connectomics.data.synthetic import ensure_synthetic

        try:
            ensure_synthetic(cfg)
        except (ValueError, FileExistsError) as err:  # a bad SYNTHETIC key or a volume it would overwrite
            logger.error("%s", err)
            return 2
    cfg.freeze()
    try:
        wait = 0 if main_process else 600  # other ranks wait for the files rank 0 generates
        check_input_files(cfg, mode, wait_seconds=wait)
        if args.checkpoint and not os.path.isfile(args.checkpoint):
            raise FileNotFoundError(f"--checkpoint {args.checkpoint} not found")
    except FileNotFoundError as err:
        logger.error("%s", err)
        return 2
    if main_process:
        save_cfg(cfg, out)
        logger.info("merged config saved to %s", os.path.join(out, "config.yaml"))
    from connectomics.engine.errors import USER_ERRORS

    try:
        run(cfg, args)
    except USER_ERRORS as err:
        logger.error("%s: %s", type(err).__name__, err)
        return 2
    return 0


def run(cfg, args):
    from connectomics.engine.infer import run_inference

    if args.inference:
        run_inference(cfg, args.checkpoint, overwrite=args.overwrite, scheduler=args.scheduler)
        return
    from connectomics.engine.train import run_training

    last = run_training(cfg, args.checkpoint)
    if cfg.SYSTEM.INFER_AFTER_TRAIN and cfg.INFERENCE.IMAGE_NAME:
        run_inference(cfg, last, overwrite=args.overwrite, scheduler=args.scheduler)


if __name__ == "__main__":
    sys.exit(main())
