"""COCO-style JSON of 3D instances, in the layout of the 3D R-CNN annotation format, and back.

One image (the volume) and one category (``mitochondrion``); per instance an annotation with
``id``, ``image_id``, ``category_id``, ``area`` (voxels), the 6-value ``bbox``
``[x, y, w, h, z, d]`` (voxels: corner and extent), ``score``, ``iscrowd`` 0 and the segmentation
as a reference to the label volume and the instance's label id
(``{"volume": "instances.h5:main", "label": id}``), not as masks. :func:`read_coco` gives back
the label volume and the ``[id, score]`` table, the evaluator's inputs.
"""
import json
import os

import numpy as np

from connectomics.errors import VolumeError
from connectomics.storage import atomic_path, parse_spec

CATEGORY = {"id": 1, "name": "mitochondrion", "supercategory": "organelle"}


def coco_document(labels_spec, rows, shape, scores=None, voxel_size=None):
    """The JSON document (dict) of the instances of the morphometrics ``rows``
    (:func:`~connectomics.measure.api.measure_instances`); ``scores``: ``{id: score}`` (default:
    the voxel count, as the challenge ranks)."""
    path, key = parse_spec(labels_spec)
    volume = f"{os.path.abspath(path)}{':' + key if key else ''}"
    image = {"id": 1, "file_name": volume, "depth": int(shape[0]), "height": int(shape[1]), "width": int(shape[2])}
    if voxel_size:
        image["voxel_size_nm"] = [float(v) for v in voxel_size]
    annotations = []
    for i, row in enumerate(rows):
        label, count = int(row["id"]), int(row["voxels"])
        lo = [int(row[f"bbox_{a}0"]) for a in "zyx"]
        hi = [int(row[f"bbox_{a}1"]) for a in "zyx"]
        annotations.append({
            "id": i + 1, "image_id": 1, "category_id": 1, "area": count, "iscrowd": 0,
            "bbox": [lo[2], lo[1], hi[2] - lo[2], hi[1] - lo[1], lo[0], hi[0] - lo[0]],
            "score": float(scores.get(label, 0.0)) if scores is not None else float(count),
            "segmentation": {"volume": volume, "label": int(label)}})
    return {"info": {"description": "connectomics instances (3D R-CNN layout: bbox [x, y, w, h, z, d])"},
            "images": [image], "categories": [CATEGORY], "annotations": annotations}


def write_coco(path, document):
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
    return path


def read_coco(path):
    """``(label volume spec, (N, 2) [label id, score] array)`` of a document :func:`write_coco` wrote;
    VolumeError naming what is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        volumes = {a["segmentation"]["volume"] for a in document["annotations"]} or \
            {document["images"][0]["file_name"]}
        table = np.array([[a["segmentation"]["label"], a["score"]] for a in document["annotations"]],
                         np.float64).reshape(-1, 2)
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise VolumeError(f"{path} is not a COCO instance file of this format ({type(err).__name__}: {err})") from None
    if len(volumes) != 1:
        raise VolumeError(f"{path}: the annotations refer to {len(volumes)} label volumes; expected one")
    return volumes.pop(), table
