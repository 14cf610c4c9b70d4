"""Zarr volumes: open an array (or a group's member), create an output array with its run settings."""
import os

from connectomics.errors import VolumeError
from connectomics.storage.paths import remove_path
from connectomics.storage.settings import SETTINGS, normalise, stored_settings

SUB_CHUNK = (32, 256, 256)  # target (z, y, x) of the chunks inside a block: halo reads decode little


def open_zarr_array(path, key=None):
    """The zarr array at ``path`` (an array store) or ``path``'s member ``key`` (a group).

    A group opened without a key yields its array ``main``, else its only array.
    Read-only; raises VolumeError naming the store and the arrays it has.
    """
    import zarr

    try:
        node = zarr.open(path.rstrip("/"), mode="r")
    except Exception as err:  # zarr raises several types for a folder that is not a store
        raise VolumeError(f"{path} is not a readable zarr store ({type(err).__name__}: {err})") from err
    if isinstance(node, zarr.Array):
        if key:
            raise VolumeError(f"{path} is a zarr array, not a group: it has no member {key!r}")
        return node
    if key and "/" in key.strip("/"):  # a nested member: group/array
        try:
            member = node[key.strip("/")]
        except KeyError:
            member = None
        if isinstance(member, zarr.Array):
            return member
    names = sorted(node.array_keys())
    name = key or ("main" if "main" in names else (names[0] if len(names) == 1 else None))
    if name is None or name not in names:
        what = f"no array {key!r}" if key else "several arrays and none called 'main'; name one as store.zarr:key"
        raise VolumeError(f"{path} has {what}; it has: {', '.join(names) or 'none'}")
    return node[name]


def _compressors():
    """Blosc zstd level 1 without shuffle: 1.8x the write and 1.5x the read speed of plain zstd
    level 1 on uint32 labels, about the same size."""
    import zarr

    return [zarr.codecs.BloscCodec(cname="zstd", clevel=1, shuffle="noshuffle")]


def sub_chunks(block, target=SUB_CHUNK):
    """Chunks that tile ``block`` exactly: per axis the largest divisor of the block size <= target.

    A block then writes whole chunks of its own (no two blocks share one),
    while a neighbour reading a thin halo decodes only the chunks it touches.
    Leading axes of ``block`` beyond (z, y, x) are kept whole.
    """
    block = tuple(int(b) for b in block)
    lead, zyx = block[:-3], block[-3:]
    return lead + tuple(max(d for d in range(1, min(b, t) + 1) if b % d == 0) for b, t in zip(zyx, target))


def create_array(path, shape, chunks, dtype, settings, fill_value=0):
    """Create (or reopen, if its settings match) a zarr array store at ``path``.

    ``chunks``: the block shape; the store's chunks are :func:`sub_chunks` of it.
    """
    import zarr

    if os.path.exists(path):
        if stored_settings(path)[1] == normalise(settings):
            return zarr.open_array(path, mode="r+")
        remove_path(path)
    array = zarr.create_array(store=path, shape=tuple(shape), chunks=sub_chunks(chunks), dtype=dtype,
                              fill_value=fill_value, compressors=_compressors(), overwrite=True)
    array.attrs[SETTINGS] = normalise(settings)
    return array


def open_array(path, mode="r"):
    import zarr

    return zarr.open_array(path, mode=mode)
