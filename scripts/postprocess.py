#!/usr/bin/env python
"""Probability maps -> instance labels with the decoder chosen in the config (POSTPROCESS.*).

    python scripts/postprocess.py -i probs.h5 -o instances.h5
    python scripts/postprocess.py --config-file X.yaml -i probs.h5:main -o instances.h5 \\
        --opts POSTPROCESS.DECODER seed_agglomerate POSTPROCESS.CONTOUR_THRESHOLD 0.75
    python scripts/postprocess.py --scheduler local -i probs.zarr -o instances.h5     # blockwise, on Dask

With --scheduler (or SYSTEM.SCHEDULER) the maps are decoded block by block (BLOCKWISE.*) with
globally consistent ids; a killed run resumes at the first unfinished block.

Input: (2, Z, Y, X) maps, channel 0 foreground, channel 1 instance contour, uint8 0..255 (as
inference writes them) or float in [0, 1] (quantised as floor(255 * p + 0.5)). Output: dataset
`main` (unless named), uint32 ids 1..N, 0 = background, written atomically, with the settings
that made it (decoder, thresholds, the maps' content identity): the same command again reuses
it, other thresholds or changed maps are refused unless --overwrite; beside it
`<output>_scores.txt`, the mean foreground probability of every instance (`id score` rows), which
`scripts/evaluate.py -ps` takes to rank predictions by confidence instead of size.
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

logger = logging.getLogger("postprocess")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", metavar="YAML", default=None,
                        help="config whose POSTPROCESS section picks the decoder (default: the defaults)")
    parser.add_argument("-i", "--input", required=True, metavar="PROBS.h5[:key]", help="probability maps")
    parser.add_argument("-o", "--output", required=True, metavar="INSTANCES.h5[:key]", help="instance labels")
    add_scheduler_argument(parser, "post-processing")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an output (and, blockwise, a work folder) made with other settings or "
                             "from other maps; without it such an output is refused and kept")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE",
                        help="config overrides, e.g. POSTPROCESS.SEED_THRESHOLD 0.85 (must come last)")
    return parser


def main(argv=None):
    return run_command(run, get_parser().parse_args(argv), logger, resume_hint=True, extra=(ValueError,))


def run(args):
    from connectomics.blockwise.build import connect_from_cfg, postprocess_from_cfg, use_blockwise
    from connectomics.postprocess import build_decoder, postprocess_file
    from connectomics.postprocess.io import check_maps_name

    cfg = load_cfg(args.config_file, list(args.opts) + scheduler_opts(args))
    check_maps_name(args.input)
    if use_blockwise(cfg):
        with connect_from_cfg(cfg) as client:
            postprocess_from_cfg(cfg, args.input, args.output, client, overwrite=args.overwrite)
    else:
        postprocess_file(args.input, args.output, build_decoder(cfg), overwrite=args.overwrite)


if __name__ == "__main__":
    sys.exit(main())
