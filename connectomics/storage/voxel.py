"""Voxel size (nm, z y x): read from the inputs that carry it, checked against the config, recorded
with every output.

Read from: HDF5 / zarr attributes ``voxel_size`` or ``resolution`` (nm) or ``element_size_um``
(um, as Fiji / ilastik write it), on the dataset first, then the file / group; OME-Zarr
``coordinateTransformations`` (its axis units); ImageJ TIFF spacing (``spacing`` and
``unit`` of the ImageJ metadata, X/YResolution tags). Every output records it as the attribute
``voxel_size`` (OME-Zarr: the ``scale`` of its levels).
"""
import os

from connectomics.errors import VolumeError
from connectomics.storage.paths import format_of, parse_spec

VOXEL_SIZE = "voxel_size"  # the attribute every output records: [z, y, x] nm
NM_ATTRIBUTES = ("voxel_size", "resolution")  # read in nm
UM_ATTRIBUTES = ("element_size_um",)  # read in um
UNIT_NM = {"nm": 1.0, "nanometer": 1.0, "um": 1000.0, "micron": 1000.0, "micrometer": 1000.0, "\u00b5m": 1000.0,
           "mm": 1e6, "angstrom": 0.1}


def _from_attrs(*attribute_sets):
    for attrs in attribute_sets:
        for names, factor in ((NM_ATTRIBUTES, 1.0), (UM_ATTRIBUTES, 1000.0)):
            for name in names:
                value = attrs.get(name)
                if value is not None and len(value) >= 3:
                    return tuple(float(v) * factor for v in list(value)[-3:])
    return None


def _hdf5(path, key):
    from connectomics.storage.hdf5 import open_dataset

    f, dataset = open_dataset(path, key)
    with f:
        return _from_attrs(dict(dataset.attrs), dict(f.attrs))


def _zarr(path, key):
    import zarr

    from connectomics.storage.zarr_array import open_zarr_array

    array = open_zarr_array(path, key)
    root = zarr.open(path.rstrip("/"), mode="r")
    return _from_attrs(array.attrs.asdict(), root.attrs.asdict() if root is not array else {})


def _tiff(path, key):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or (tif.shaped_metadata[0] if tif.shaped_metadata else None) or {}
        tags = tif.pages[0].tags
        if "spacing" not in meta or "XResolution" not in tags:
            return None
        factor = UNIT_NM.get(str(meta.get("unit", "")).strip(), None)
        if factor is None:
            return None
        x_num, x_den = tags["XResolution"].value
        y_num, y_den = tags["YResolution"].value if "YResolution" in tags else (x_num, x_den)
        return tuple(float(v) * factor for v in (meta["spacing"], y_den / y_num, x_den / x_num))


READERS = {"hdf5": _hdf5, "zarr": _zarr, "tiff": _tiff}  # format -> reader(path, key); a format module adds its own


def read_voxel_size(spec):
    """The (z, y, x) voxel size in nm an input records, or None (a format or file without it)."""
    path, key = parse_spec(spec)
    reader = READERS.get(format_of(path))
    if reader is None or not os.path.exists(path):
        return None
    return reader(path, key)


def resolve_voxel_size(configured, specs, override=False, key="DATASET.VOXEL_SIZE"):
    """The voxel size of a run: ``configured`` ((z, y, x) nm, or empty: from the files) checked
    against what the files ``specs`` record.

    A file that disagrees with ``configured`` (or with another file) is a VolumeError naming both,
    unless ``override`` (the configured value wins). Returns a tuple of 3 floats, or None when
    neither the config nor any file gives one.
    """
    configured = tuple(float(v) for v in configured) if configured else None
    found = [(spec, size) for spec in specs if spec for size in [read_voxel_size(spec)] if size is not None]
    if configured is not None and len(configured) != 3:
        raise VolumeError(f"{key} must be three numbers (z, y, x) in nm, got {list(configured)}")
    if configured is not None and override:
        return configured
    reference = configured
    for spec, size in found:
        if reference is None:
            reference, source = size, spec
            continue
        if not _close(size, reference):
            what = f"{key} {_fmt(reference)}" if configured is not None else f"{source} records {_fmt(reference)}"
            raise VolumeError(f"{spec} records voxel size {_fmt(size)} nm, {what}: fix the config or the file, or "
                              f"set {key}_OVERRIDE True to use the config's value")
    return reference


def _close(a, b):
    return all(abs(x - y) <= 1e-6 * max(abs(x), abs(y), 1.0) for x, y in zip(a, b))


def _fmt(size):
    return "[" + ", ".join(f"{v:g}" for v in size) + "]"
