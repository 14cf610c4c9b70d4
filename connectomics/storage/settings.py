"""Run settings stored with an output, and what a rerun does with an output that exists.

Every output (probability maps, instances; HDF5 dataset or zarr array)
records the settings that made it, as JSON in the attribute ``SETTINGS``.
A rerun compares them with its own: the same settings mean the output is
complete and is reused; other settings mean it is refused (``ResumeError``,
nothing touched) unless the caller may replace it (``overwrite``: ``--overwrite``,
or an output inside the run folder that follows the run's newest model).
"""
import json
import logging
import os

from connectomics.errors import ResumeError
from connectomics.storage.paths import format_of, remove_path

logger = logging.getLogger(__name__)

SETTINGS = "connectomics_settings"  # attribute / file holding the settings of an output or work folder


def normalise(settings):
    """``settings`` as stored: JSON round trip (tuples -> lists, keys sorted)."""
    return json.loads(json.dumps(settings, sort_keys=True))


def difference(old, new, prefix=""):
    """``'key: old -> new, ...'`` of the keys that differ, nested ones as ``key.sub`` ('' when equal);
    ``old`` may be None."""
    old, new = old or {}, normalise(new)
    parts = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            parts.append(difference(a, b, f"{prefix}{k}."))
        elif a != b:
            parts.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return ", ".join(p for p in parts if p)


def stored_settings(path, key=None):
    """``(exists, settings or None, readable)`` of the output array / dataset ``key`` of ``path``.

    ``path``: ``store.zarr`` (``key``: a member of a group) or ``file.h5`` (``key``: the
    dataset, default ``main``).
    """
    if format_of(path) == "zarr" or (os.path.isdir(path) and format_of(path) != "hdf5"):
        # a zarr store (a temporary one has no .zarr ending)
        target = os.path.join(path, key) if key else path
        if not os.path.exists(target):
            return False, None, True
        import zarr

        try:
            node = zarr.open(target, mode="r")
        except Exception:  # noqa: BLE001 - a folder that is not a store
            return True, None, False
        value = node.attrs.asdict().get(SETTINGS)
        return True, (json.loads(value) if isinstance(value, str) else value), True
    if not os.path.exists(path):
        return False, None, True
    import h5py

    try:
        with h5py.File(path, "r") as f:
            name = key or "main"
            if name not in f:
                return False, None, True
            text = f[name].attrs.get(SETTINGS)
            if text is None and len(f) == 1:  # written before settings moved to the dataset
                text = f.attrs.get(SETTINGS)
    except OSError:
        return True, None, False
    return True, (json.loads(text) if text is not None else None), True


def check_existing(path, settings, overwrite, what="output", key=None):
    """True if the output holds a complete result with these settings; refuse or clear another one.

    ``path``: ``store.zarr`` or ``file.h5``; ``key``: the array of a zarr group or the
    dataset of an HDF5 file (default ``main``). Other settings: ResumeError unless
    ``overwrite``; with it a zarr array is removed now, an HDF5 file is left to the
    writer (which replaces only that dataset, keeping the file's others).
    """
    exists, old, readable = stored_settings(path, key)
    if not exists:
        return False
    diff = difference(old, settings) if readable else "unreadable"
    if not diff:
        logger.info("%s %s is already complete; nothing to do", what, path)
        return True
    name = f"{path}:{key}" if key else path
    if not overwrite and not readable:
        kind = "zarr store" if format_of(path) == "zarr" else "HDF5 file"
        raise ResumeError(f"{what} {name} exists and is not a readable {kind}; pass --overwrite (overwrite=True) "
                          "to replace it, or choose another output name")
    if not overwrite:
        raise ResumeError(f"{what} {name} exists and was made with other settings ({diff}); pass --overwrite "
                          "(overwrite=True) to replace it, or choose another output name")
    logger.warning("replacing %s (made with other settings: %s)", name, diff)
    if format_of(path) == "zarr":
        remove_path(os.path.join(path, key) if key else path)
    elif not readable and not os.path.isdir(path):  # a folder in the way is the user's: never removed
        remove_path(path)
    return False
