"""Morphometrics of an instance volume: sums over slabs (or Dask blocks), then shape measures on
each instance's crop read from the store.

Memory: one slab (``slab`` z-slices of the labels, image and maps) in the first pass, one
instance's crop in the second, whatever the volume size. On Dask the blocks of the first pass
and the instances of the second run on the workers.
"""
import functools
import logging
import math
import time

import numpy as np
from tqdm import tqdm

from connectomics.errors import VolumeError
from connectomics.measure.shape import covariance, principal_axes, skeleton_measures, sphericity, surface_area
from connectomics.measure.sums import block_sums, merge_sums
from connectomics.storage import open_volume

logger = logging.getLogger(__name__)


def _check_inputs(labels_spec, image_spec, maps_spec):
    """The labels' (Z, Y, X) shape; VolumeError for float labels or an image / maps of another shape."""
    with open_volume(labels_spec) as labels:
        shape, dtype = tuple(int(n) for n in labels.shape), np.dtype(labels.dtype)
    if len(shape) != 3:
        raise VolumeError(f"{labels_spec}: expected (Z, Y, X) instance labels, got shape {list(shape)}")
    if dtype.kind not in "ui":
        raise VolumeError(f"{labels_spec}: instance labels must be integers, got {dtype}")
    for name, spec, ndim in (("image", image_spec, 3), ("maps", maps_spec, 4)):
        if spec:
            with open_volume(spec) as volume:
                other = tuple(int(n) for n in volume.shape)
            if len(other) != ndim or other[-3:] != shape:
                raise VolumeError(f"{name} {spec} has shape {list(other)}; the instances {labels_spec} have "
                                  f"{list(shape)} (expected {'(C, ' if ndim == 4 else '('}Z, Y, X) of the same size)")
    return shape


def slab_sums(box, labels_spec, image_spec=None, maps_spec=None):
    """:func:`block_sums` of the (Z, Y, X) ``box`` ((z0, z1), (y0, y1), (x0, x1)) of the volumes."""
    index = tuple(slice(a, b) for a, b in box)
    with open_volume(labels_spec) as volume:
        labels = np.asarray(volume[index])
    image = foreground = None
    if image_spec:
        with open_volume(image_spec) as volume:
            image = np.asarray(volume[index])
    if maps_spec:
        with open_volume(maps_spec) as volume:
            foreground = np.asarray(volume[(0,) + index])
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        raise VolumeError(f"{labels_spec}: negative instance labels in z {box[0][0]}..{box[0][1]}")
    return block_sums(labels, [a for a, _ in box], image, foreground)


def instance_row(record, labels_spec, shape, voxel_size, skeleton=True, surface=True):
    """One table row (:func:`~connectomics.measure.table.columns`) from an instance's sums
    (``record``: dict of the sum fields and ``id``); reads its crop (bounding box plus one voxel) for
    the surface and skeleton. ``voxel_size``: (z, y, x) nm, or None (then everything in voxels);
    ``surface`` / ``skeleton``: False leaves those columns (and sphericity) empty."""
    voxel = tuple(float(v) for v in voxel_size) if voxel_size else (1.0, 1.0, 1.0)
    lo = [int(record[f"min_{a}"]) for a in "zyx"]
    hi = [int(record[f"max_{a}"]) + 1 for a in "zyx"]
    count = int(record["count"])
    axes, elongation = principal_axes(covariance(record), voxel)
    area = length = branches = None
    if surface or skeleton:  # the crop: bounding box plus one voxel
        crop_lo, crop_hi = [max(0, a - 1) for a in lo], [min(n, b + 1) for b, n in zip(hi, shape)]
        with open_volume(labels_spec) as volume:
            crop = np.asarray(volume[tuple(slice(a, b) for a, b in zip(crop_lo, crop_hi))])
        mask = crop == np.asarray(record["id"]).astype(crop.dtype)
        area = surface_area(mask, voxel) if surface else None
        length, branches = skeleton_measures(mask, voxel) if skeleton else (None, None)
    volume = count * math.prod(voxel)
    # nm -> um (um^2, um^3) when the voxel size is known; voxels otherwise
    to_um, names = (1e-3, ("um3", "um2", "um")) if voxel_size else (1.0, ("vox3", "vox2", "vox"))
    length_unit = "nm" if voxel_size else "vox"
    row = {"id": int(record["id"]), "voxels": count, f"volume_{names[0]}": volume * to_um ** 3,
           f"surface_{names[1]}": area * to_um ** 2 if surface else None,
           "sphericity": sphericity(volume, area) if surface else None,
           f"skeleton_{names[2]}": length * to_um if length is not None else None, "branches": branches, "elongation": elongation,
           "touches_border": int(any(a == 0 for a in lo) or any(b == n for b, n in zip(hi, shape))),
           "mean_foreground": record["sum_fg"] / count / 255 if record.get("has_maps") else None,
           "mean_intensity": record["sum_image"] / count if record.get("has_image") else None}
    for axis, name in enumerate("zyx"):
        row[f"bbox_{name}0"], row[f"bbox_{name}1"] = lo[axis], hi[axis]
        row[f"centroid_{name}_{length_unit}"] = record[f"sum_{name}"] / count * voxel[axis]
    for name, value in zip(("major", "middle", "minor"), axes):
        row[f"axis_{name}_{length_unit}"] = float(value)
    return row


def _slabs(shape, slab):
    return [((z, min(z + slab, shape[0])), (0, shape[1]), (0, shape[2])) for z in range(0, shape[0], slab)]


def _records(sums, has_image, has_maps):
    keys = [k for k in sums if k != "ids"]
    return [dict({k: sums[k][i].item() for k in keys}, id=int(sums["ids"][i]), has_image=has_image,
                 has_maps=has_maps) for i in range(len(sums["ids"]))]


def measure_instances(labels_spec, image_spec=None, maps_spec=None, voxel_size=None, skeleton=True, slab=32,
                      client=None, surface=True):
    """``(rows, shape)``: the morphometrics of every instance of ``labels_spec``, ids ascending.

    ``image_spec`` / ``maps_spec``: same-size uint8 image / (C, Z, Y, X) maps (mean intensity / mean
    foreground probability per instance); ``voxel_size``: (z, y, x) nm or None (measures in voxels);
    ``skeleton``: compute skeleton length and branches (kimimaro; the slowest measure);
    ``client``: a Dask client (slabs and instances on its workers) or None (this process);
    ``surface``: False skips the mesh (surface, sphericity).
    """
    started = time.perf_counter()
    shape = _check_inputs(labels_spec, image_spec, maps_spec)
    run = _runner(client)
    sums = merge_sums(run(functools.partial(slab_sums, labels_spec=labels_spec, image_spec=image_spec,
                                            maps_spec=maps_spec), _slabs(shape, slab), "sums"))
    records = _records(sums, bool(image_spec), bool(maps_spec))
    rows = run(functools.partial(instance_row, labels_spec=labels_spec, shape=shape, voxel_size=voxel_size,
                                 skeleton=skeleton, surface=surface), records, "shapes")
    logger.info("%s: %d instances measured in %.1f s (%s)", labels_spec, len(rows), time.perf_counter() - started,
                f"voxel size {list(voxel_size)} nm" if voxel_size else "voxel size unknown: measures in voxels")
    return rows, shape


def length_categories(gt_spec, pred_spec, edges, voxel_size=None, client=None):
    """Skeleton-length categories of the GT and predicted instances for the error analysis
    (``categories`` of :func:`connectomics.evaluation.evaluate_volumes`).

    ``edges``: category bounds in um (voxels when ``voxel_size`` is None): the instances are
    skeletonised as in the morphometrics (one crop at a time) and binned by cable length.
    """
    from connectomics.evaluation.errors import value_categories

    lengths = []
    for spec in (gt_spec, pred_spec):
        rows, _ = measure_instances(spec, voxel_size=voxel_size, skeleton=True, surface=False, client=client)
        key = "skeleton_um" if voxel_size else "skeleton_vox"
        lengths.append({row["id"]: row[key] for row in rows})
    return value_categories(lengths[0], lengths[1], edges, "length", "um" if voxel_size else "vox")


BATCH = 16  # items per Dask task


def _each(fn, items):
    return [fn(item) for item in items]


def _runner(client):
    """``run(fn, items, desc) -> [fn(item) ...]`` in this process or on the Dask ``client``, in order."""
    def local(fn, items, desc):
        return [fn(item) for item in tqdm(items, desc=desc, unit="item", disable=None)]

    def dask(fn, items, desc):  # in batches: a task per instance would cost more than its work
        batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
        logger.info("%s: %d items in %d tasks on %s", desc, len(items), len(batches), client.scheduler.address)
        done = client.gather(client.map(functools.partial(_each, fn), batches, pure=False))
        return [result for batch in done for result in batch]

    return local if client is None else dask


def measure_to_files(labels_spec, csv_path, image_spec=None, maps_spec=None, voxel_size=None, skeleton=True,
                     client=None, title=None):
    """:func:`measure_instances`, then the CSV ``csv_path`` and its summary PNG (same name, ``.png``).

    Skipped when the CSV records the same source (the instances' stored settings, the image's
    content identity, the voxel size, ``skeleton``): a rerun on unchanged results costs nothing,
    one on changed results measures again. Returns ``(csv_path, png_path, measured)``.
    """
    import hashlib
    import json
    import os

    from connectomics.measure.summary import save_summary_png
    from connectomics.measure.table import source_of, write_table
    from connectomics.storage import parse_spec, stored_settings, volume_identity

    path, key = parse_spec(labels_spec)
    made_by = stored_settings(path, key)[1]
    source = hashlib.sha1(json.dumps([made_by or volume_identity(labels_spec),
                                      volume_identity(image_spec) if image_spec else None,
                                      maps_spec and os.path.abspath(parse_spec(maps_spec)[0]),
                                      list(voxel_size or []), bool(skeleton)], sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]
    png = os.path.splitext(csv_path)[0] + ".png"
    if os.path.exists(csv_path) and os.path.exists(png) and source_of(csv_path) == source:
        logger.info("%s is up to date; not measured again", csv_path)
        return csv_path, png, False
    rows, shape = measure_instances(labels_spec, image_spec, maps_spec, voxel_size, skeleton, client=client)
    write_table(csv_path, rows, voxel_size, shape, source=source)
    save_summary_png(rows, shape, voxel_size, png, title=title or os.path.basename(path))
    return csv_path, png, True
