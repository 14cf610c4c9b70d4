#!/usr/bin/env python
"""Copy a volume to zarr, OME-Zarr or HDF5 with a given chunking (rechunk a zarr store, HDF5 maps -> zarr, ...).

    python scripts/convert_volume.py probs.h5:main probs.zarr --chunks 64 512 512
    python scripts/convert_volume.py instances.zarr instances.h5
    python scripts/convert_volume.py image.h5 result.ome.zarr --voxel-size 30 8 8       # an OME-Zarr image
    python scripts/convert_volume.py instances.h5 result.ome.zarr:labels/instances       # its label
    python scripts/convert_volume.py result.ome.zarr:labels/instances instances.tif      # TIFF, voxel size kept

OME-Zarr (NGFF 0.4): a multiscale pyramid with the voxel size (nm) as its scale; the voxel size
comes from --voxel-size or what the input records (HDF5 / zarr attributes, OME-Zarr, ImageJ TIFF)
and goes with every output.

Memory: one slab of the chunk's z depth at a time. The output appears only when complete.
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

logger = logging.getLogger("convert_volume")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="file.h5[:key], store.zarr[:array], TIFF or JSON tiles")
    parser.add_argument("output", help="out.zarr[:array], out.h5[:key], out.ome.zarr, out.ome.zarr:labels/NAME "
                        "or out.tif")
    parser.add_argument("--chunks", type=int, nargs=3, default=[64, 512, 512], metavar=("Z", "Y", "X"),
                        help="output chunk (z, y, x); channels stay whole (default: 64 512 512)")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="voxel size in nm (default: what the input records)")
    parser.add_argument("--override-voxel-size", action="store_true",
                        help="use --voxel-size even where the input records another one")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return run_command(run, parser.parse_args(argv), logger, extra=(ValueError,))


def run(args):
    from connectomics.storage.convert import convert_volume

    convert_volume(args.input, args.output, args.chunks, args.overwrite, args.voxel_size, args.override_voxel_size)


if __name__ == "__main__":
    sys.exit(main())
