#!/usr/bin/env python
"""A training checkpoint -> weights to ship or share (state dict, architecture, how they were made).

    python scripts/export_weights.py outputs/Pretrain-CPU/checkpoint_004000.pth.tar \\
        connectomics/weights/unet_residual_3d-cpu-synthetic.pth --made-with "configs/Pretrain/Pretrain-CPU.yaml, 4000 it"

The output drops the optimizer, scheduler and RNG states (a third of the size); MODEL.PRE_MODEL
reads it (``shipped:<name>`` for a file in connectomics/weights).
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.engine.cli import run_command  # noqa: E402

logger = logging.getLogger("export_weights")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint_XXXXXX.pth.tar of a training run")
    parser.add_argument("output", help="weights file to write (.pth)")
    parser.add_argument("--made-with", default="", help="how the weights were made (command, iterations, time)")
    return run_command(run, parser.parse_args(argv), logger)


def run(args):
    from connectomics.checkpoint import export_weights

    path = export_weights(args.checkpoint, args.output, args.made_with)
    logger.info("wrote %s (%.1f MB)", path, os.path.getsize(path) / 1e6)


if __name__ == "__main__":
    sys.exit(main())
