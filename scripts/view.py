#!/usr/bin/env python
"""Look at a volume and its results in neuroglancer (served locally; no internet needed).

    python scripts/view.py --config-file configs/Synthetic/Synthetic-BC.yaml      # that config's inference outputs
    python scripts/view.py --image I [--instances S] [--maps P] [--gt G] [--voxel-size Z Y X]
    python scripts/view.py ... --screenshot view.png                                # render headlessly, write a PNG, exit

Volumes: HDF5 (file.h5[:key]), zarr (store.zarr[:array]), OME-Zarr (store.ome.zarr[:labels/NAME]), TIFF.
Layers: the image, the maps as two channels (foreground green, contour magenta), the instances and
the ground truth as segmentation layers (the segments of the centre slice selected; 3D meshes of
a segment on demand). Chunks are read when the browser asks for them: a volume larger than RAM
opens with memory set by the chunks on screen. The voxel size (nm) comes from --voxel-size, the
config, or what the files record. Prints the URL and serves until Ctrl-C. --screenshot needs
headless Chromium (`apt-get install chromium chromium-driver`).
"""
import argparse
import logging
import os
import sys
import time

try:
    import connectomics  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from connectomics.engine.cli import run_command  # noqa: E402

logger = logging.getLogger("view")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=None, help="view the inference outputs of this config (its first "
                        "INFERENCE.IMAGE_NAME volume, or --volume N)")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ...")
    parser.add_argument("--volume", type=int, default=0, help="with --config-file: which inference volume (0-based)")
    parser.add_argument("--image", default=None, help="the EM image (Z, Y, X)")
    parser.add_argument("--instances", default=None, help="instance labels (Z, Y, X)")
    parser.add_argument("--maps", default=None, help="probability maps (C, Z, Y, X)")
    parser.add_argument("--gt", default=None, help="ground-truth instances (Z, Y, X)")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="voxel size in nm (default: the config's, else what the files record)")
    parser.add_argument("--errors", action="store_true", help="colour the errors of --instances against --gt: "
                        "missed GT red, split GT orange, merged GT purple, background false positives yellow")
    parser.add_argument("--crumb-size", type=int, default=2000, help="with --errors: GT instances smaller than "
                        "this are left out, as in the AP (default 2000)")
    parser.add_argument("--bind-address", default="127.0.0.1", help="server address (0.0.0.0: reachable from "
                        "other machines)")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--screenshot", default=None, metavar="PNG", help="render headlessly into this PNG and exit")
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 768], metavar=("W", "H"),
                        help="screenshot size in pixels (default: 1024 768)")
    return parser


def volumes_of_config(args):
    """``(image, instances, maps, gt, configured voxel size)`` of the config's inference outputs."""
    from connectomics.config import load_cfg
    from connectomics.engine.outputs import output_names, volume_folders
    from connectomics.errors import VolumeError
    from connectomics.storage import parse_spec

    cfg = load_cfg(args.config_file, args.opts)
    jobs = volume_folders(cfg)
    if not 0 <= args.volume < len(jobs):
        raise VolumeError(f"--volume {args.volume}: the config has {len(jobs)} inference volume(s)")
    image, gt, folder = jobs[args.volume]
    candidates = [output_names(cfg, folder, blockwise) for blockwise in (False, True)]
    found = [(m, i) for m, i in candidates if os.path.exists(parse_spec(i)[0])]
    if not found:
        raise VolumeError(f"no instances in {folder} (looked for {candidates[0][1]} and {candidates[1][1]}): run "
                          f"`python scripts/main.py --config-file {args.config_file} --inference` first")
    maps, instances = found[0]
    return image, instances, maps if os.path.exists(maps) else None, gt or None, list(cfg.DATASET.VOXEL_SIZE)


def run(args):
    from connectomics.storage.voxel import resolve_voxel_size
    from connectomics.viewer import screenshot, view

    configured = args.voxel_size
    if args.config_file:
        image, instances, maps, gt, from_cfg = volumes_of_config(args)
        image, instances, maps, gt = (args.image or image, args.instances or instances, args.maps or maps,
                                      args.gt or gt)
        configured = configured or from_cfg
    else:
        image, instances, maps, gt = args.image, args.instances, args.maps, args.gt
    voxel = resolve_voxel_size(configured, [image, instances, maps, gt], override=bool(args.voxel_size),
                               key="--voxel-size")
    with view(image, instances, maps, gt, voxel, args.bind_address, args.port, args.errors,
              args.crumb_size) as viewer:
        if args.screenshot:
            screenshot(viewer, args.screenshot, size=tuple(args.size))
            print(f"screenshot: {args.screenshot}", flush=True)
            return 0
        print(f"neuroglancer: {viewer.get_viewer_url()}  (voxel size {voxel or 'unknown'} nm; Ctrl-C to stop)",
              flush=True)
        while True:
            time.sleep(3600)


def main(argv=None):
    return run_command(run, get_parser().parse_args(argv), logger)


if __name__ == "__main__":
    sys.exit(main())
