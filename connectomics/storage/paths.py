"""Volume names and atomic paths: ``file.h5[:key]`` / ``store.zarr[:array]`` specs, name lists, and the
temporary-name-then-rename that every writer uses (a killed run never leaves a half-written result under
its final name).
"""
import contextlib
import os
import re

H5_EXTENSIONS = (".h5", ".hdf5", ".hdf")
TIFF_EXTENSIONS = (".tif", ".tiff")
ZARR_EXTENSIONS = (".zarr",)
FORMATS = {"hdf5": H5_EXTENSIONS, "zarr": ZARR_EXTENSIONS, "tiff": TIFF_EXTENSIONS, "tiles": (".json",)}


def format_of(path):
    """The format of a volume file name (without its ``:key``): one of ``FORMATS`` by its ending
    (case-insensitive), else ``'images'`` (a folder or glob of 2D image slices)."""
    lower = os.fspath(path).lower().rstrip("/")
    return next((name for name, endings in FORMATS.items() if lower.endswith(endings)), "images")


def parse_spec(spec):
    """Split ``'file.h5:key'`` into ``('file.h5', 'key')``; ``'file.h5'`` -> ``('file.h5', None)``."""
    spec = os.fspath(spec)
    head, sep, tail = spec.rpartition(":")
    if sep and head.lower().endswith(H5_EXTENSIONS + ZARR_EXTENSIONS):
        return head, tail.strip("/") or None
    return spec, None


def parse_iteration(name, leading_digits=True):
    """The training iteration in a file name: ``checkpoint_XXXXXX`` anywhere, else (``leading_digits``)
    its leading digits; None if neither (the one parser of iterations in names).

    ``'checkpoint_012000.pth.tar'`` -> 12000, ``'/out/297000_out_100_256.h5'`` -> 297000,
    ``'instances.h5'`` -> None.
    """
    base = os.path.basename(os.fspath(name))
    match = re.search(r"checkpoint_(\d+)", base) or (re.match(r"(\d+)", base) if leading_digits else None)
    return int(match.group(1)) if match else None


def split_names(value):
    """A list of volume names joined by ``@``: ``'a.h5@b.h5'`` -> ``['a.h5', 'b.h5']``; ``''`` -> ``[]``."""
    return [part for part in value.split("@") if part]


def temporary_name(path):
    """The temporary sibling of ``path`` that atomic writes use."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.partial")


def remove_path(path):
    """Remove a file or a folder (a zarr store) if it exists."""
    if os.path.isdir(path):
        import shutil

        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path; rename it to ``path`` if the block succeeds, else remove it.

    Works for files and for folders (zarr stores); an existing ``path`` is replaced.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_name(path)
    remove_path(tmp)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if os.path.isdir(tmp):
        remove_path(path)  # os.replace cannot replace a non-empty folder
    os.replace(tmp, path)


def publish(tmp, path):
    """Rename a completed temporary store (or file) to its final name."""
    remove_path(path)
    os.replace(tmp, path)
    return path
