"""Per-instance sums of a block, and their merge over blocks: voxel count, coordinate sums and
second moments, bounding box, image and foreground sums.

A block's sums are exact integers (coordinates and their products in int64, intensity sums of
uint8 values), so sums over blocks equal the sums over the whole volume whatever the block size:
the single-process and blockwise tables are the same. Memory: one block, plus its foreground
voxels' coordinates, plus a few numbers per instance present in it.
"""
import numpy as np

MOMENTS = ("zz", "yy", "xx", "zy", "zx", "yx")  # sum of the products of voxel coordinates
FIELDS = ("count", "sum_z", "sum_y", "sum_x", "min_z", "min_y", "min_x", "max_z", "max_y", "max_x",
          "sum_image", "sum_fg") + tuple(f"sum_{m}" for m in MOMENTS)
FLOAT_FIELDS = ("sum_image", "sum_fg")


def block_sums(labels, origin=(0, 0, 0), image=None, foreground=None):
    """Sums of the instances in ``labels`` ((Z, Y, X) integer block whose first voxel is at
    ``origin``): ``{"ids": uint64 (N,) ascending, field: (N,) for field in FIELDS}``, background 0 left out.

    ``image`` / ``foreground``: same-shape uint8 blocks (or None: their sums are 0).
    """
    import cc3d
    import fastremap

    labels = np.ascontiguousarray(labels)
    if labels.dtype.kind not in "ui":
        raise ValueError(f"instance labels must be integers, got {labels.dtype}")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise ValueError("instance labels must not be negative")
    dense, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    if dense.dtype.itemsize > 4:
        dense = dense.astype(np.uint32)
    order = sorted((new, old) for old, new in mapping.items() if new)
    ids = np.array([old for _, old in order], np.uint64)
    n = len(ids)
    out = {"ids": ids}
    if not n:
        return dict(out, **{f: np.zeros(0, np.float64 if f in FLOAT_FIELDS else np.int64) for f in FIELDS})
    stats = cc3d.statistics(dense)
    counts = np.asarray(stats["voxel_counts"][1:n + 1], np.int64)
    boxes = stats["bounding_boxes"][1:n + 1]
    out["count"] = counts
    flat = dense.reshape(-1)
    where = np.flatnonzero(flat)
    label = flat[where].astype(np.intp)
    coords = [c.astype(np.int64) for c in np.unravel_index(where, dense.shape)]

    def total(weights):  # exact: each block's sums stay far below 2^53
        return np.rint(np.bincount(label, weights=weights, minlength=n + 1)[1:n + 1]).astype(np.int64)

    local = {name: total(c) for name, c in zip("zyx", coords)}
    shift = [int(o) for o in origin]
    for axis, name in enumerate("zyx"):
        out[f"sum_{name}"] = local[name] + counts * shift[axis]
        out[f"min_{name}"] = np.array([b[axis].start for b in boxes], np.int64) + shift[axis]
        out[f"max_{name}"] = np.array([b[axis].stop - 1 for b in boxes], np.int64) + shift[axis]
    for a, b in MOMENTS:  # sum (p + o_p)(q + o_q) = S_pq + o_q S_p + o_p S_q + n o_p o_q
        i, j = "zyx".index(a), "zyx".index(b)
        out[f"sum_{a}{b}"] = (total(coords[i] * coords[j]) + shift[j] * local[a] + shift[i] * local[b]
                              + counts * shift[i] * shift[j])
    for name, values in (("sum_image", image), ("sum_fg", foreground)):
        out[name] = (np.bincount(label, weights=np.asarray(values).reshape(-1)[where].astype(np.float64),
                                 minlength=n + 1)[1:n + 1] if values is not None else np.zeros(n, np.float64))
    order = np.argsort(ids, kind="stable")  # ids ascending, as merge_sums gives them
    return {key: values[order] for key, values in out.items()}


def merge_sums(parts):
    """One table from the sums of several blocks (:func:`block_sums`), ids sorted ascending."""
    parts = [p for p in parts if len(p["ids"])]
    if not parts:
        return block_sums(np.zeros((1, 1, 1), np.uint32))
    ids = np.concatenate([p["ids"] for p in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    out = {"ids": unique}
    for field in FIELDS:
        values = np.concatenate([p[field] for p in parts])
        if field.startswith("min_"):
            merged = np.full(len(unique), np.iinfo(np.int64).max, np.int64)
            np.minimum.at(merged, inverse, values)
        elif field.startswith("max_"):
            merged = np.full(len(unique), -1, np.int64)
            np.maximum.at(merged, inverse, values)
        else:
            merged = np.zeros(len(unique), values.dtype)
            np.add.at(merged, inverse, values)
        out[field] = merged
    return out
