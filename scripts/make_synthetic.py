#!/usr/bin/env python
"""Write a synthetic EM image/label pair (HDF5) and a preview PNG; print the instance sizes.

    python scripts/make_synthetic.py --out-dir data/synthetic --shape 48 192 192 --seed 0
    python scripts/make_synthetic.py --image train.h5:image --label train.h5:label --artefacts
"""
import argparse
import logging
import os
import sys

try:
    import connectomics  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.data.synthetic import write_synthetic_pair  # noqa: E402


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", help="write DIR/image.h5, DIR/label.h5 and DIR/preview.png")
    parser.add_argument("--image", help="image volume file.h5[:key] (with --label, instead of --out-dir)")
    parser.add_argument("--label", help="label volume file.h5[:key]")
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 192, 192], metavar=("Z", "Y", "X"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artefacts", action="store_true", help="add missing and misaligned sections")
    parser.add_argument("--myelin", type=int, default=0,
                        help="myelinated axons to paint: dark rings and bands that are background (hard negatives)")
    parser.add_argument("--png", help="preview PNG path (default DIR/preview.png with --out-dir)")
    return parser


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.out_dir:
        image = args.image or os.path.join(args.out_dir, "image.h5")
        label = args.label or os.path.join(args.out_dir, "label.h5")
        png = args.png or os.path.join(args.out_dir, "preview.png")
    elif args.image and args.label:
        image, label, png = args.image, args.label, args.png
    else:
        parser.error("give --out-dir DIR, or both --image and --label")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from connectomics.engine.cli import report_errors

    with report_errors(logging.getLogger("make_synthetic"), extra=(ValueError,)) as status:
        stats = write_synthetic_pair(image, label, tuple(args.shape), args.seed, png=png,
                                     artefacts=args.artefacts, myelin=args.myelin)
    if status.code:
        return status.code
    print(f"image: {image}\nlabel: {label}" + (f"\npreview: {png}" if png else ""))
    print(f"{stats['n_instances']} instances: {stats['small']} small (< 5e3 voxels), {stats['medium']} medium, "
          f"{stats['large']} large (> 3e4); sizes min {stats['min']}, median {stats['median']:.0f}, "
          f"max {stats['max']}; foreground {100 * stats['foreground']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
