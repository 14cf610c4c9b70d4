"""The morphometrics table: one row per instance, in physical units when the voxel size is known
(in voxels otherwise, said in the column names and the CSV's first line)."""
import csv
import math

import numpy as np

from connectomics.storage import atomic_path


def columns(physical):
    """The CSV columns; ``physical``: the voxel size is known (nm, um^2, um^3, um)."""
    length, area, volume, big = ("nm", "um2", "um3", "um") if physical else ("vox", "vox2", "vox3", "vox")
    return (["id", "voxels", f"volume_{volume}", f"surface_{area}", "sphericity",
             "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1",
             f"centroid_z_{length}", f"centroid_y_{length}", f"centroid_x_{length}",
             f"axis_major_{length}", f"axis_middle_{length}", f"axis_minor_{length}", "elongation",
             f"skeleton_{big}", "branches", "touches_border", "mean_foreground", "mean_intensity"])


def header_line(voxel_size, shape, source=None):
    """The CSV's first line: units, volume size, and (``source``) what the table was made from."""
    tail = f"; source {source}" if source else ""
    if voxel_size:
        size = " x ".join(f"{v:g}" for v in voxel_size)
        return (f"# connectomics morphometrics; voxel size (z, y, x) {size} nm; volume {list(shape)} voxels; "
                f"bbox in voxels (end exclusive); touches_border 1: measures are lower bounds{tail}")
    return (f"# connectomics morphometrics; voxel size unknown: lengths, areas and volumes in voxels; volume "
            f"{list(shape)} voxels; bbox end exclusive; touches_border 1: measures are lower bounds{tail}")


def source_of(path):
    """The ``source`` a table's first line records, or None."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    return first.rsplit("; source ", 1)[1].strip() if "; source " in first else None


def _cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(int(value)) if isinstance(value, (bool, np.bool_, np.integer)) else str(value)


def write_table(path, rows, voxel_size, shape, source=None):
    """Write ``rows`` (dicts keyed by :func:`columns`) to the CSV ``path`` atomically; returns ``path``."""
    names = columns(bool(voxel_size))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(header_line(voxel_size, shape, source) + "\n")
            writer = csv.writer(f)
            writer.writerow(names)
            for row in rows:
                writer.writerow([_cell(row.get(name)) for name in names])
    return path


def read_table(path):
    """``(rows as dicts of floats / ints, the first line)`` of a table :func:`write_table` wrote."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
        reader = csv.DictReader(f)
        rows = [{k: (float(v) if v not in ("",) else float("nan")) for k, v in row.items()} for row in reader]
    return rows, first
