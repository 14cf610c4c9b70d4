#!/usr/bin/env python
"""Write a PNG of augmented training samples (middle slice: image | label overlay).

    python scripts/show_augmentation.py --config-file X.yaml --out aug.png [-n 4] [--seed 0] [--opts KEY VALUE ...]

Reads a random crop of the first DATASET.IMAGE_NAME / LABEL_NAME when both
exist, else a synthetic pair (dark ellipsoids on grey), and runs it through
the augmentor that training builds from the config (AUGMENTOR.*, MODEL.INPUT_SIZE).
"""
import argparse
import logging
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.config import load_cfg  # noqa: E402
from connectomics.data.augmentation import Compose, build_train_augmentor  # noqa: E402
from connectomics.data.augmentation.preview import render_samples, synthetic_pair, training_pair  # noqa: E402
from connectomics.engine.cli import run_command  # noqa: E402
from connectomics.storage import parse_spec, split_names  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=None, help="YAML config (defaults if omitted)")
    parser.add_argument("--out", default="augmentation.png", help="PNG to write")
    parser.add_argument("-n", type=int, default=4, help="number of augmented samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numpy Generator")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_command(run, parse_args(argv), logging.getLogger("show_augmentation"), log_setup=False)


def run(args):
    cfg = load_cfg(args.config_file, args.opts)
    augmentor = build_train_augmentor(cfg) or Compose([], cfg.MODEL.INPUT_SIZE, smooth=False)
    rng = np.random.default_rng(args.seed)
    images, labels = split_names(cfg.DATASET.IMAGE_NAME), split_names(cfg.DATASET.LABEL_NAME)
    use_file = bool(images and labels) and all(os.path.exists(parse_spec(s)[0]) for s in (images[0], labels[0]))
    samples = []
    for _ in range(args.n):
        if use_file:
            image, label = training_pair(images[0], labels[0], augmentor.sample_size, rng)
        else:
            image, label = synthetic_pair(augmentor.sample_size, rng)
        samples.append(augmentor(image, label, rng))
    source = images[0] if use_file else "synthetic ellipsoids"
    render_samples(samples, args.out, title=f"{source}\n{augmentor}")
    print(args.out)


if __name__ == "__main__":
    sys.exit(main())
