#!/usr/bin/env python
"""Train, or run inference + post-processing + evaluation, from one config.

    python scripts/main.py --config-file configs/Synthetic/Synthetic-BC.yaml
    python scripts/main.py --config-file X.yaml --inference --checkpoint C.pth.tar
    python scripts/main.py --config-file X.yaml --opts SOLVER.BASE_LR 1e-4 SYSTEM.NUM_CPUS 4
"""
import time

STARTED = time.time()  # the origin of SOLVER.TIME_BUDGET: the budget covers the whole command

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

# Idle OpenMP threads sleep instead of spinning: on a few busy cores (data-loader workers beside
# the training threads) spinning threads slow small models down many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.config import check_input_files, load_cfg  # noqa: E402
from connectomics.engine.cli import add_scheduler_argument, run_command, scheduler_opts  # noqa: E402
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
    add_scheduler_argument(parser)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results made with other settings: inference outputs outside the training "
                             "run's folder (inside it they follow the newest model anyway); training: move a run "
                             "of other settings in DATASET.OUTPUT_PATH aside (to FOLDER.previous-N) and start anew")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 1e-4 (must come last)")
    return parser


def main(argv=None):
    return run_command(run_main, get_parser().parse_args(argv), logger, resume_hint=True)


def run_main(args):
    """Config -> run folder check -> logging -> synthetic data -> preflight -> training / inference."""
    opts = list(args.opts) + scheduler_opts(args)
    cfg = load_cfg(args.config_file, opts, freeze=False)
    mode = "test" if args.inference else "train"
    out = cfg.INFERENCE.OUTPUT_PATH if args.inference else cfg.DATASET.OUTPUT_PATH
    main_process = int(os.environ.get("RANK", 0)) == 0  # torchrun: one process prepares, all train
    if mode == "train" and main_process:
        from connectomics.engine.run_folder import check_run_folder

        check_run_folder(cfg, overwrite=args.overwrite)  # other settings: refused, or moved aside
    log = cfg.MONITOR.LOG_OPT  # [console, tensorboard, log.txt]
    from connectomics.engine.preflight import check_writable_folder

    check_writable_folder(out, "INFERENCE.OUTPUT_PATH" if args.inference else "DATASET.OUTPUT_PATH")
    setup_logging(out if log[2] else None, console=bool(log[0]))
    if cfg.DATASET.SYNTHETIC.ENABLED and main_process:
        from connectomics.config import ConfigError
        from connectomics.data.synthetic import ensure_synthetic

        try:
            ensure_synthetic(cfg)
        except ValueError as err:  # a bad SYNTHETIC key
            raise ConfigError(str(err)) from None
    cfg.freeze()
    if args.checkpoint and not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint {args.checkpoint} not found")
    if main_process:
        from connectomics.engine.preflight import preflight

        preflight(cfg, mode, overwrite=args.overwrite, scheduler=args.scheduler)
    else:
        check_input_files(cfg, mode, wait_seconds=600)  # other ranks wait for the files rank 0 generates
    run(cfg, args)
    return 0


def run(cfg, args):
    from connectomics.engine.infer import run_inference

    if args.inference:
        run_inference(cfg, args.checkpoint, overwrite=args.overwrite, scheduler=args.scheduler)
        return
    from connectomics.engine.train import run_training

    last = run_training(cfg, args.checkpoint, started=STARTED)
    if cfg.SYSTEM.INFER_AFTER_TRAIN and cfg.INFERENCE.IMAGE_NAME:
        run_inference(cfg, last, overwrite=args.overwrite, scheduler=args.scheduler)


if __name__ == "__main__":
    sys.exit(main())
