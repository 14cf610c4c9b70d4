"""OME-Zarr (NGFF 0.4 on zarr v2): multiscale images and image-labels, read and written block by block.

Layout of ``result.ome.zarr``: the root is a multiscale image (levels ``0``, ``1``, ... halved in y
and x until the smaller side is at most ``MIN_SIDE``; uint8 image or (C, Z, Y, X) maps averaged),
and ``result.ome.zarr:labels/NAME`` is an ``image-label`` under it (levels by the 2 x 2 mode, so
an instance never takes a value that is not among its voxels). The voxel size (nm, z y x) is
the ``scale`` of level 0 and doubles in y and x per level. The metadata is written with the
``ome-zarr`` package (``write_multiscales_metadata`` / ``write_label_metadata``); the tests validate
what is written with ``ome-zarr-models`` and read it back with ``ome_zarr.reader``.

Why NGFF 0.4 on zarr v2: it is the version napari-ome-zarr, neuroglancer and webKnossos all open
(0.5 needs zarr v3 readers that not every installed viewer has), and zarr-python 3 writes it.
"""
import contextlib
import math
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage.output import Writer, publish_zarr, require_group, zarr_member_temporary
from connectomics.storage.paths import remove_path
from connectomics.storage.settings import SETTINGS, normalise
from connectomics.storage.zarr_array import sub_chunks

NGFF_VERSION = "0.4"
MIN_SIDE = 256  # levels are added while the smaller of y, x is above this
VOXEL_SIZE = "voxel_size"  # attribute: (z, y, x) nm, as every output records it
PYRAMID = "connectomics_pyramid"  # level-0 attribute: {"levels": n, "labels": bool} when blocks write every level


def _fmt():
    from ome_zarr.format import FormatV04

    return FormatV04()


def _compressor():
    import numcodecs

    return numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.NOSHUFFLE)  # shuffle: 2.4x slower writes


def level_shapes(shape):
    """Shapes of the pyramid levels of a (..., Z, Y, X) volume: y and x halved (rounded up) per level."""
    shapes = [tuple(int(n) for n in shape)]
    while min(shapes[-1][-2:]) > MIN_SIDE:
        last = shapes[-1]
        shapes.append(last[:-2] + tuple(-(-n // 2) for n in last[-2:]))
    return shapes


def downsample(block, labels):
    """Halve the last two axes of ``block`` (odd edges repeat their last row / column): the mean
    (rounded, same dtype) or, for ``labels``, the most frequent of each 2 x 2 (ties: the first)."""
    pad = [(0, 0)] * (block.ndim - 2) + [(0, n % 2) for n in block.shape[-2:]]
    block = np.pad(block, pad, mode="edge") if any(p[1] for p in pad) else block
    quads = [block[..., i::2, j::2] for i in (0, 1) for j in (0, 1)]
    if not labels:
        mean = sum(q.astype(np.float32) for q in quads) / 4
        return np.rint(mean).astype(block.dtype) if np.issubdtype(block.dtype, np.integer) else mean.astype(block.dtype)
    if block.ndim == 3 and block.dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        from connectomics._ext.pyramid import mode_2x2

        out = np.empty((block.shape[0], block.shape[1] // 2, block.shape[2] // 2), block.dtype)
        mode_2x2(np.ascontiguousarray(block), out)
        return out
    a, b, c, d = quads
    best = a.copy()
    mixed = (a != b) | (a != c) | (a != d)  # most 2 x 2 groups are uniform: only the others are counted
    if mixed.any():
        values = [q[mixed] for q in quads]
        counts = [sum((v == other) for other in values) for v in values]
        pick, pick_count = values[0].copy(), counts[0]
        for v, n in zip(values[1:], counts[1:]):
            better = n > pick_count
            pick[better], pick_count = v[better], np.maximum(pick_count, n)
        best[mixed] = pick
    return best


def _axes(ndim):
    space = [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]
    return ([{"name": "c", "type": "channel"}] if ndim == 4 else []) + space


def _datasets(ndim, n_levels, voxel_size):
    voxel = [float(v) for v in (voxel_size or (1.0, 1.0, 1.0))]
    lead = [1.0] * (ndim - 3)
    return [{"path": str(k), "coordinateTransformations": [
        {"type": "scale", "scale": lead + [voxel[0], voxel[1] * 2**k, voxel[2] * 2**k]}]} for k in range(n_levels)]


def build_pyramid(group, labels, name="image"):
    """Levels 1, 2 ... of ``group`` from its level ``0``, chunk by chunk of the new level (memory:
    four chunks of the level below), unless the blocks wrote them (:func:`write_region`); then
    the multiscales metadata."""
    base = group["0"]
    shapes = level_shapes(base.shape)
    for k in range(1, len(shapes) if not base.attrs.asdict().get(PYRAMID) else 0):
        src = group[str(k - 1)]
        dst = group.create_array(str(k), shape=shapes[k], chunks=src.chunks, dtype=src.dtype, fill_value=0,
                                 compressors=_compressor(), chunk_key_encoding={"name": "v2", "separator": "/"},
                                 overwrite=True)
        step = [int(c) for c in dst.chunks]
        for corner in np.ndindex(*[math.ceil(n / c) for n, c in zip(dst.shape, step)]):
            out = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(corner, step, dst.shape))
            src_box = out[:-2] + tuple(slice(2 * s.start, min(2 * s.stop, n)) for s, n in zip(out[-2:], src.shape[-2:]))
            dst[out] = downsample(np.asarray(src[src_box]), labels)
    from ome_zarr.writer import write_multiscales_metadata

    voxel = group.attrs.asdict().get(VOXEL_SIZE)
    write_multiscales_metadata(group, _datasets(base.ndim, len(shapes), voxel), fmt=_fmt(), axes=_axes(base.ndim),
                               name=name)


def _create_group(tmp, shape, dtype, chunks, attrs):
    import zarr

    remove_path(tmp)
    group = zarr.open_group(tmp, mode="w", zarr_format=2)
    group.attrs.update(attrs)
    group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0, compressors=_compressor(),
                       chunk_key_encoding={"name": "v2", "separator": "/"})
    return group


def _create_levels(group, block, labels):
    """Levels 1, 2 ... in chunks that tile each block's share of the level, so that every block
    writes its own chunks of every level (:func:`write_region`). Only when the block's y and x
    halve evenly down to the last level; else :func:`build_pyramid` makes them at the end."""
    base = group["0"]
    shapes = level_shapes(base.shape)
    if len(shapes) == 1 or any(b % 2 ** (len(shapes) - 1) for b in block[-2:]):
        return
    for k in range(1, len(shapes)):
        level_block = block[:-2] + tuple(b // 2 ** k for b in block[-2:])
        group.create_array(str(k), shape=shapes[k], chunks=sub_chunks(level_block), dtype=base.dtype, fill_value=0,
                           compressors=_compressor(), chunk_key_encoding={"name": "v2", "separator": "/"})
    base.attrs[PYRAMID] = {"levels": len(shapes), "labels": bool(labels)}


def write_levels(level0, where, slices, data):
    """After ``level0[slices] = data`` (a block): its share of every further level, if the array
    ``where`` (level 0 of a group made by :meth:`OmeZarrWriter.start`) has them."""
    import zarr

    pyramid = level0.attrs.asdict().get(PYRAMID)
    if not pyramid:
        return
    folder = os.path.dirname(where.rstrip("/"))
    for k in range(1, pyramid["levels"]):
        data = downsample(data, pyramid["labels"])
        slices = tuple(slices[:-2]) + tuple(slice(s.start // 2, -(-s.stop // 2)) for s in slices[-2:])
        zarr.open_array(os.path.join(folder, str(k)), mode="r+")[slices] = data


def _is_label(key, dtype):
    """Labels (mode, not mean): a member under ``labels/``, or integers wider than a byte."""
    dtype = np.dtype(dtype)
    return bool(key and key.strip("/").startswith("labels/")) or (dtype.kind in "iu" and dtype.itemsize > 1)


def _name(path, key):
    return os.path.basename(key.strip("/")) if key else os.path.basename(path.rstrip("/")).split(".")[0] or "image"


def _publish(tmp, path, key):
    """Move the completed multiscale group ``tmp`` to ``path`` (the image) or ``path/key`` (a label:
    listed in ``path/labels``; the image's other members kept)."""
    import zarr

    if not key:
        if os.path.isdir(os.path.join(path, "labels")):  # the labels of the image stay with it
            os.replace(os.path.join(path, "labels"), os.path.join(tmp, "labels"))
        return publish_zarr(tmp, path)
    if not os.path.exists(path):
        zarr.open_group(path, mode="w", zarr_format=2)
    publish_zarr(tmp, path, key)
    parent, name = os.path.split(key.strip("/"))
    if parent == "labels":
        from ome_zarr.writer import write_label_metadata

        labels = zarr.open_group(os.path.join(path, "labels"), mode="a", zarr_format=2)
        listed = [n for n in labels.attrs.asdict().get("labels", []) if n != name]
        labels.attrs["labels"] = listed  # write_label_metadata appends the name again
        write_label_metadata(labels, name, fmt=_fmt(), source={"image": "../../"})
    return path


class OmeZarrWriter(Writer):
    """OME-Zarr outputs: level 0 written by one process or many (by path), the pyramid and the
    metadata made by :meth:`finish`."""

    parallel = True

    def check(self, path, key=None):
        if os.path.exists(path):
            require_group(path)

    def start(self, path, key, shape, dtype, block, settings, attrs=None):
        import zarr

        tmp = zarr_member_temporary(path, key)
        if os.path.exists(tmp):
            group = zarr.open_group(tmp, mode="r+")
            if group.attrs.asdict().get(SETTINGS) == normalise(settings) and "0" in group:
                return tmp, os.path.join(tmp, "0")
        group = _create_group(tmp, tuple(shape), dtype, sub_chunks(block),
                              dict(attrs or {}, **{SETTINGS: normalise(settings)}))
        _create_levels(group, tuple(int(b) for b in block), _is_label(key, dtype))
        return tmp, os.path.join(tmp, "0")

    def finish(self, tmp, path, key=None):
        import zarr

        group = zarr.open_group(tmp, mode="r+")
        build_pyramid(group, _is_label(key, group["0"].dtype), _name(path, key))
        return _publish(tmp, path, key)


@contextlib.contextmanager
def _sequential(path, key, shape, dtype, chunks, attrs, level):
    tmp = zarr_member_temporary(path, key)
    try:
        group = _create_group(tmp, shape, dtype, chunks, attrs)
        yield group["0"]
        build_pyramid(group, _is_label(key, dtype), _name(path, key))
    except BaseException:
        remove_path(tmp)
        raise
    _publish(tmp, path, key)


def multiscale_level(group, level=0):
    """The array of pyramid ``level`` of a multiscale group; VolumeError if the group has none."""
    multiscales = group.attrs.asdict().get("multiscales")
    if not multiscales:
        raise VolumeError(f"{group.store_path} is not an OME-Zarr image (no 'multiscales' metadata); name an image "
                          "store.ome.zarr or a label store.ome.zarr:labels/NAME")
    datasets = multiscales[0]["datasets"]
    return group[datasets[min(level, len(datasets) - 1)]["path"]]


def open_ome_zarr(path, key=None):
    """Level 0 of the image ``path`` or of its member ``key`` (``labels/NAME``); a key naming an
    array (``labels/NAME/1``) opens that level. Read-only."""
    import zarr

    target = os.path.join(path.rstrip("/"), key.strip("/")) if key else path.rstrip("/")
    try:
        node = zarr.open(target, mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises several types for a folder that is not a store
        raise VolumeError(f"{target} is not a readable OME-Zarr store ({type(err).__name__}: {err})") from err
    return node if isinstance(node, zarr.Array) else multiscale_level(node)


def voxel_size_of(path, key=None):
    """The (z, y, x) nm scale of level 0 of an OME-Zarr image / label, or None."""
    import zarr

    target = os.path.join(path.rstrip("/"), key.strip("/")) if key else path.rstrip("/")
    node = zarr.open(target, mode="r")
    if isinstance(node, zarr.Array):
        return None
    multiscales = node.attrs.asdict().get("multiscales") or [{}]
    axes = multiscales[0].get("axes", [])
    datasets = multiscales[0].get("datasets", [])
    if not datasets or not axes:
        return None
    scale = [t["scale"] for t in datasets[0].get("coordinateTransformations", []) if t.get("type") == "scale"]
    if not scale:
        return None
    factor = {"nanometer": 1.0, "micrometer": 1000.0, "angstrom": 0.1, None: 1.0}
    named = {a["name"]: s * factor.get(a.get("unit"), 1.0) for a, s in zip(axes, scale[0])}
    return tuple(float(named[n]) for n in "zyx") if all(n in named for n in "zyx") else None


def register():
    """Make OME-Zarr a format of the storage layer: read (``*.ome.zarr`` before ``*.zarr``), written
    (one process or many), its voxel size read."""
    from connectomics.storage.output import REGION_HOOKS, register_writer
    from connectomics.storage.volume import register_format
    from connectomics.storage.voxel import READERS

    register_format("ome-zarr", (".ome.zarr",), lambda path, key: contextlib.nullcontext(open_ome_zarr(path, key)))
    register_writer("ome-zarr", OmeZarrWriter(_sequential))
    REGION_HOOKS.append(write_levels)
    READERS["ome-zarr"] = voxel_size_of
