"""The storage layer: every volume format, read and written in one place.

``paths``: volume names (``file.h5:key``, ``store.zarr:array``, ``a.h5@b.h5``) and atomic
temporary-name-then-rename writes; ``volume``: open / read / write by name, whatever the format;
``hdf5`` (``hdf5_direct``: whole gzip datasets on threads), ``zarr_array``, ``ome_zarr`` (OME-Zarr
images and labels), ``images`` (TIFF, image folders), ``tiff_output``, ``tiles`` (JSON tile
descriptors): the formats; ``output``: the writers of the writable ones; ``partial``: resumable
chunk-by-chunk outputs; ``markers``: per-block done markers; ``work_store``: a blockwise run's
intermediate arrays; ``settings``: the run settings an output
records and the comparison a rerun makes; ``identity``: the content identity of an input;
``convert``: format conversion. Imports only :mod:`connectomics.errors` and :mod:`connectomics.geometry`.
"""
from connectomics.errors import ResumeError, VolumeError
from connectomics.storage.hdf5 import copy_other_datasets, h5_chunks
from connectomics.storage.identity import volume_identity
from connectomics.storage.images import ImageStack, read_image_stack
from connectomics.storage.markers import Markers
from connectomics.storage.output import WRITERS, create_output, publish_zarr, require_group, zarr_member_temporary
from connectomics.storage.paths import (FORMATS, H5_EXTENSIONS, TIFF_EXTENSIONS, ZARR_EXTENSIONS, atomic_path,
                                        format_of, parse_iteration, parse_spec, publish, remove_path, split_names,
                                        temporary_name)
from connectomics.storage.settings import SETTINGS, check_existing, difference, normalise, stored_settings
from connectomics.storage.tiles import TileVolume, read_tile_volume
from connectomics.storage.volume import open_volume, read_volume, register_format, write_volume
from connectomics.storage.zarr_array import create_array, open_array, open_zarr_array, sub_chunks
from connectomics.storage import ome_zarr as _ome_zarr

_ome_zarr.register()  # a format module registers itself: its opener, writer and voxel-size reader
from connectomics.storage import tiff_output as _tiff_output  # noqa: E402

_tiff_output.register()

__all__ = ["FORMATS", "H5_EXTENSIONS", "SETTINGS", "TIFF_EXTENSIONS", "WRITERS", "ZARR_EXTENSIONS", "ImageStack", "Markers",
           "ResumeError", "TileVolume", "VolumeError", "atomic_path", "check_existing", "copy_other_datasets",
           "create_array", "create_output", "difference", "format_of", "h5_chunks", "normalise", "open_array",
           "open_volume", "open_zarr_array", "parse_iteration", "parse_spec", "publish", "publish_zarr",
           "read_image_stack", "read_tile_volume", "read_volume", "register_format", "remove_path",
           "require_group", "split_names", "stored_settings", "sub_chunks", "temporary_name", "volume_identity",
           "write_volume", "zarr_member_temporary"]
