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


DIRECT_IDS = 1 << 22  # ids below this index the sums directly; larger ones are renumbered first


def _kernel_labels(labels):
    """``(labels as uint16/32/64, ids (N,) of the dense indices 1..n-1 or None, n)``."""
    import fastremap

    if labels.dtype.kind == "i":
        if labels.size and labels.min() < 0:
            raise ValueError("instance labels must not be negative")
        labels = labels.view(np.dtype(f"u{labels.dtype.itemsize}"))
    if labels.dtype.itemsize == 1:
        labels = labels.astype(np.uint16)
    top = int(labels.max(initial=0))
    if top < DIRECT_IDS:
        return np.ascontiguousarray(labels), None, top + 1
    dense, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    ids = np.zeros(len(mapping) + 1, np.uint64)
    for old, new in mapping.items():
        ids[new] = old
    if dense.dtype.itemsize == 1:
        dense = dense.astype(np.uint16)
    return np.ascontiguousarray(dense), ids, len(ids)


def block_sums(labels, origin=(0, 0, 0), image=None, foreground=None):
    """Sums of the instances in ``labels`` ((Z, Y, X) integer block whose first voxel is at
    ``origin``): ``{"ids": uint64 (N,) ascending, field: (N,) for field in FIELDS}``, background 0 left out.

    ``image`` / ``foreground``: same-shape uint8 blocks (or None: their sums are 0). One pass of
    the Cython kernel ``connectomics._ext.moments`` over the block.
    """
    from connectomics._ext.moments import label_sums

    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise ValueError(f"instance labels must be integers, got {labels.dtype}")
    dense, ids, n = _kernel_labels(labels)
    dummy = np.zeros((1, 1, 1), np.uint8)
    image8 = np.ascontiguousarray(image, np.uint8) if image is not None else dummy
    fg8 = np.ascontiguousarray(foreground, np.uint8) if foreground is not None else dummy
    count, lo, hi, first, second, isum, fsum = label_sums(dense, n, image8, fg8, image is not None,
                                                          foreground is not None)
    present = np.flatnonzero(count[1:]) + 1
    out = {"ids": (ids[present] if ids is not None else present).astype(np.uint64), "count": count[present]}
    count, shift = count[present], [int(o) for o in origin]
    local = first[present]
    for axis, name in enumerate("zyx"):
        out[f"sum_{name}"] = local[:, axis] + count * shift[axis]
        out[f"min_{name}"] = lo[present, axis] + shift[axis]
        out[f"max_{name}"] = hi[present, axis] + shift[axis]
    for k, (a, b) in enumerate(MOMENTS):  # sum (p + o_p)(q + o_q) = S_pq + o_q S_p + o_p S_q + n o_p o_q
        i, j = "zyx".index(a), "zyx".index(b)
        out[f"sum_{a}{b}"] = (second[present, k] + shift[j] * local[:, i] + shift[i] * local[:, j]
                              + count * shift[i] * shift[j])
    out["sum_image"], out["sum_fg"] = isum[present].astype(np.float64), fsum[present].astype(np.float64)
    order = np.argsort(out["ids"], kind="stable")  # ids ascending, as merge_sums gives them
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
